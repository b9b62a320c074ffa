//! Hash keys over a run, as both the simulator and live mode count them: the distinct keys the
//! requests carried (`hash.keys`), and how the key space moved as members' health changed
//! (`hash.remapped_on_fault`, `hash.returned_on_recovery`).

use crate::balancer::KeySpace;

/// How a hash key space moves over a run: its buckets that ever left their first owner, and
/// those back with it now (bitsets), as seen after each health transition.
pub(crate) struct KeyMoves {
    base: KeySpace,
    moved: Vec<u64>,
    back: Vec<u64>,
}

impl KeyMoves {
    pub(crate) fn new(base: KeySpace) -> KeyMoves {
        let words = base.buckets().div_ceil(64);
        KeyMoves { base, moved: vec![0; words], back: vec![0; words] }
    }

    /// Compares the key space now with the first one, bucket for bucket.
    pub(crate) fn observe(&mut self, now: &KeySpace) {
        let shift = 64 - u32::from(self.base.bits());
        for b in 0..self.base.buckets() {
            let (w, bit) = (b / 64, 1u64 << (b % 64));
            if now.owner_of_key((b as u64) << shift) != self.base.owner_of_bucket(b) {
                self.moved[w] |= bit;
                self.back[w] &= !bit;
            } else if self.moved[w] & bit != 0 {
                self.back[w] |= bit;
            }
        }
    }

    /// (buckets that ever moved, buckets back now, buckets).
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (popcount(&self.moved), popcount(&self.back), self.base.buckets() as u64)
    }
}

/// Which indices of a key pool (clients or URIs) the requests carried: one bit each.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    bits: Vec<u64>,
}

impl Seen {
    /// Room for indices below `n`.
    pub(crate) fn new(n: u32) -> Seen {
        Seen { bits: vec![0; (n as usize).div_ceil(64)] }
    }

    /// Notes index `i` (an index beyond the pool is ignored).
    #[inline]
    pub(crate) fn insert(&mut self, i: u32) {
        if let Some(w) = self.bits.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Distinct indices noted.
    pub(crate) fn count(&self) -> u64 {
        popcount(&self.bits)
    }
}

/// The sum of `(moved, back, buckets)` over several key spaces.
pub(crate) fn total_moves<'a>(moves: impl IntoIterator<Item = &'a KeyMoves>) -> (u64, u64, u64) {
    moves.into_iter().map(KeyMoves::counts).fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2))
}

fn popcount(bits: &[u64]) -> u64 {
    bits.iter().map(|w| u64::from(w.count_ones())).sum()
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn seen_counts_distinct_indices_and_ignores_those_beyond_the_pool() {
        let mut s = Seen::new(130);
        for i in [0, 1, 1, 63, 64, 129, 129, 5000] {
            s.insert(i);
        }
        assert_eq!(s.count(), 5);
    }
}
