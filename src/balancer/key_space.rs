//! [`KeySpace`]: which member owns each bucket of a hash strategy's table at one moment (the
//! reports' remapped and returned fractions, and the hash tests).

use super::snapshot::Snapshot;
use super::table;
use super::{hash, MemberId};
use std::sync::Arc;

/// The hash key space at one moment: which member owns each bucket.
pub struct KeySpace {
    pub(super) snap: Arc<Snapshot>,
}

impl KeySpace {
    fn table(&self) -> &table::HashTable {
        // A KeySpace is only made from a snapshot that has a table.
        match self.snap.active.as_ref().ok().and_then(|a| a.table.as_ref()) {
            Some(t) => t,
            None => unreachable!("KeySpace without a table"),
        }
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.table().owners.len()
    }

    /// The table has `2^bits` buckets; a key's bucket is its hash's top `bits` bits.
    pub fn bits(&self) -> u8 {
        self.table().bits
    }

    /// The owner of bucket `b` (`b < buckets()`).
    pub fn owner_of_bucket(&self, b: usize) -> MemberId {
        let t = self.table();
        self.snap.members[t.owners[b % t.owners.len()] as usize].id
    }

    /// The owner of the bucket that a key hash falls into.
    pub fn owner_of_key(&self, key: u64) -> MemberId {
        let t = self.table();
        self.snap.members[t.owners[hash::bucket_of(key, t.bits)] as usize].id
    }

    /// Fraction of the key space (0-1) whose owner differs between two key spaces.
    pub fn moved_fraction(&self, other: &KeySpace) -> f64 {
        let (a, b) = (self.table(), other.table());
        if a.bits != b.bits {
            // Different table sizes: compare at the finer resolution.
            let bits = a.bits.max(b.bits);
            let n = 1usize << bits;
            let moved = (0..n)
                .filter(|&k| {
                    let key = (k as u64) << (64 - u32::from(bits));
                    self.owner_of_key(key) != other.owner_of_key(key)
                })
                .count();
            return moved as f64 / n as f64;
        }
        let moved = a
            .owners
            .iter()
            .zip(b.owners.iter())
            .filter(|(&x, &y)| self.snap.members[x as usize].id != other.snap.members[y as usize].id)
            .count();
        moved as f64 / a.owners.len() as f64
    }

    /// Each owning member's share of the key space, in member order.
    pub fn shares(&self) -> Vec<(MemberId, f64)> {
        let t = self.table();
        let mut counts = vec![0u64; self.snap.members.len()];
        for &o in t.owners.iter() {
            counts[o as usize] += 1;
        }
        let n = t.owners.len() as f64;
        counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (self.snap.members[i].id, c as f64 / n))
            .collect()
    }
}
