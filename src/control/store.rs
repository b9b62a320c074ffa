//! The durable store behind `lbsim serve --state PATH`: JSON records keyed by (kind, id).
//!
//! One [redb](https://docs.rs/redb) file, one table. Every [`Store::put`] and [`Store::delete`]
//! is its own write transaction, committed with redb's default `Durability::Immediate` (the
//! file is fsync'd before the commit returns), so a change the API acknowledged survives a
//! `kill -9` or a power cut at any later moment. A file left by a killed process is repaired
//! when it is opened again.
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
    /// A stored record is not JSON: the file was changed by something other than lbsim.
    #[error("state store: record {kind}/{id} is not valid JSON: {source}")]
    Corrupt {
        kind: String,
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Any of redb's error types, boxed (they are large).
fn db_error(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(Box::new(e.into()))
}

/// Durable (kind, id) -> JSON records; see the module documentation.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the state file at `path`, creating it (and its table) if it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let db = Database::create(path)
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source: Box::new(source) })?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(RECORDS).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(Store { db })
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
        Ok(())
    }
}
