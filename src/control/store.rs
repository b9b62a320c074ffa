//! The durable store behind `lbsim serve --state PATH`: JSON records keyed by (kind, id).
//!
//! One [redb](https://docs.rs/redb) file, one table. Every [`Store::put`], [`Store::delete`] and
//! [`Store::commit`] is one write transaction, committed with redb's default
//! `Durability::Immediate` (the file is fsync'd before the commit returns), so a change the API
//! acknowledged survives a `kill -9` or a power cut at any later moment, and an API operation
//! that writes several records ([`Store::commit`]) is on disk whole or not at all. A file left by
//! a killed process is repaired when it is opened again.
//!
//! The methods block on disk I/O: call them from tokio through `spawn_blocking`. A [`Store`] is
//! `Send + Sync`; writers are serialised by redb, readers do not wait for them.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde_json::Value;

/// (kind, id) -> the record as JSON text.
const RECORDS: TableDefinition<(&str, &str), &str> = TableDefinition::new("records");

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state file cannot be created, opened or repaired (or another process holds it).
    #[error("cannot open state file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// A read or write failed in the storage layer (I/O error, full disk, corruption).
    #[error("state store: {0}")]
    Db(#[source] Box<redb::Error>),
    /// The file is not a store lbsim can read: not a redb database, truncated or altered.
    #[error("state file {} is damaged: {reason}; move it aside (or delete it) to start with an empty state", path.display())]
    Damaged { path: PathBuf, reason: String },
    /// A stored record is not JSON: the file was changed by something other than lbsim.
    #[error("state store: record {kind}/{id} is not valid JSON: {source}")]
    Corrupt {
        kind: String,
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The first bytes of every redb file.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// How [`Store::open`] found the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// It did not exist and was created.
    Created,
    /// It existed, empty (as `mktemp` makes it): a new store was started in it.
    Fresh,
    /// It held a store, now loaded.
    Existing,
}

/// Runs `f`, turning a panic into an error that carries its message, without the default
/// hook printing it (a damaged file is reported as such, not as a crash).
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

/// Any of redb's error types, boxed (they are large).
fn db_error(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(Box::new(e.into()))
}

/// One write of a [`Store::commit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put { kind: &'static str, id: String, value: Value },
    Delete { kind: &'static str, id: String },
}

/// Durable (kind, id) -> JSON records; see the module documentation.
pub struct Store {
    db: Database,
    /// Write transactions committed since the store was opened.
    commits: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the state file at `path`, creating it (and its table) if it does not exist; see
    /// [`Store::open_checked`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_checked(path).map(|(store, _)| store)
    }

    /// Opens the state file at `path`, creating it (and its table) if it does not exist, and
    /// says how it found it.
    ///
    /// An empty file (what `mktemp` makes) is a new store: it is initialised, and the answer
    /// says so ([`Opened::Fresh`]) so that the caller can warn. A file that is not a redb
    /// database, or whose contents redb cannot read (truncated, bit-flipped), is
    /// [`StoreError::Damaged`], never a panic: redb panics on some damaged files, so opening
    /// runs under `catch_unwind` with the panic message kept out of the output.
    pub fn open_checked(path: impl AsRef<Path>) -> Result<(Store, Opened), StoreError> {
        let path = path.as_ref();
        let damaged = |reason: String| StoreError::Damaged { path: path.to_path_buf(), reason };
        let opened = match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => Opened::Fresh,
            Ok(_) => {
                let mut head = [0u8; 9];
                let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
                if read.is_err() || head != REDB_MAGIC {
                    return Err(damaged("it is not a redb database (wrong or missing header)".into()));
                }
                Opened::Existing
            }
            Err(_) => Opened::Created,
        };
        if opened == Opened::Fresh {
            // redb refuses a zero-length file; an empty file holds nothing to keep.
            std::fs::remove_file(path).map_err(|e| damaged(format!("the empty file cannot be replaced: {e}")))?;
        }
        let store = quietly(|| -> Result<Store, StoreError> {
            let db = Database::create(path)
                .map_err(|source| StoreError::Open { path: path.to_path_buf(), source: Box::new(source) })?;
            let txn = db.begin_write().map_err(db_error)?;
            txn.open_table(RECORDS).map_err(db_error)?;
            txn.commit().map_err(db_error)?;
            let store = Store { db, commits: std::sync::atomic::AtomicU64::new(0) };
            // Read everything once, so that damage anywhere shows now and not mid-run.
            store.load_all()?;
            Ok(store)
        })
        .map_err(|panic| damaged(format!("redb failed reading it ({panic})")))?;
        match store {
            Ok(store) => Ok((store, opened)),
            Err(StoreError::Open { source, .. }) if matches!(*source, redb::DatabaseError::DatabaseAlreadyOpen) => {
                Err(StoreError::Open { path: path.to_path_buf(), source })
            }
            Err(e @ (StoreError::Open { .. } | StoreError::Db(_) | StoreError::Corrupt { .. })) => {
                Err(damaged(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Inserts or replaces the record (kind, id); durable on disk when this returns `Ok`.
    pub fn put(&self, kind: &str, id: &str, value: &Value) -> Result<(), StoreError> {
        let text = value.to_string();
        self.write(|table| table.insert((kind, id), text.as_str()).map(drop))
    }

    /// Removes the record (kind, id) if it exists; durable on disk when this returns `Ok`.
    pub fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        self.write(|table| table.remove((kind, id)).map(drop))
    }

    /// Applies every write in one transaction: all of them are durable when this returns `Ok`,
    /// none if it fails or the process dies first.
    pub fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let texts: Vec<Option<String>> = writes
            .iter()
            .map(|w| match w {
                Write::Put { value, .. } => Some(value.to_string()),
                Write::Delete { .. } => None,
            })
            .collect();
        self.write(|table| {
            for (w, text) in writes.iter().zip(&texts) {
                match (w, text) {
                    (Write::Put { kind, id, .. }, Some(text)) => {
                        drop(table.insert((*kind, id.as_str()), text.as_str())?)
                    }
                    (Write::Delete { kind, id }, _) => drop(table.remove((*kind, id.as_str()))?),
                    (Write::Put { .. }, None) => {}
                }
            }
            Ok(())
        })
    }

    /// Every record as (kind, id, value), sorted by kind, then id (byte order).
    pub fn load_all(&self) -> Result<Vec<(String, String, Value)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(RECORDS).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let (kind, id) = key.value();
            let parsed = serde_json::from_str(value.value()).map_err(|source| StoreError::Corrupt {
                kind: kind.to_owned(),
                id: id.to_owned(),
                source,
            })?;
            out.push((kind.to_owned(), id.to_owned(), parsed));
        }
        Ok(out)
    }

    /// Runs `change` on the table in one write transaction and commits it (fsync'd).
    fn write(
        &self,
        change: impl FnOnce(&mut redb::Table<(&str, &str), &str>) -> Result<(), redb::StorageError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(db_error)?;
            change(&mut table).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        self.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// How many write transactions this store has committed since it was opened: an API
    /// operation commits one (or none when it changes nothing durable).
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }
}
