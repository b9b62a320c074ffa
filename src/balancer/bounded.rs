//! Bounded-load consistent hashing (`hash_balance_factor`, Mirrokni et al., "Consistent Hashing
//! with Bounded Loads", as Envoy and HAProxy apply it): a member takes a key only while its
//! in-flight count stays within `factor / 100` of its weighted share of all requests in flight,
//! counting the new one. With `T` requests in flight, member `i` of weight share `s_i` accepts
//! while `in_flight_i + 1 <= ceil(factor / 100 x (T + 1) x s_i)`, i.e.
//! `100 x in_flight_i < factor x (T + 1) x s_i`; a key whose first choice is full goes to the next
//! member in its own preference order (`Balancer::preference`), so the fallbacks stay consistent
//! and weighted. Since the capacities add up to more than `T + 1`, some member always accepts.
//!
//! In-flight counts are atomics per member slot plus one total, shared by all threads (no lock).
//! The slot counters sit in segments that double in size and are created on first use, so a
//! member added later finds its counter without a lock or a resize.

use super::snapshot::Active;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Segment `k` holds `FIRST << k` counters.
const FIRST: usize = 64;
const SEGMENTS: usize = 32;

/// In-flight counts for bounded-load hashing, and how many picks left their key's first choice.
pub(crate) struct Loads {
    factor: u32,
    total: AtomicU64,
    segments: [OnceLock<Box<[AtomicU32]>>; SEGMENTS],
    picks: AtomicU64,
    moved: AtomicU64,
}

impl Loads {
    pub(crate) fn new(factor: u32) -> Loads {
        Loads {
            factor,
            total: AtomicU64::new(0),
            segments: std::array::from_fn(|_| OnceLock::new()),
            picks: AtomicU64::new(0),
            moved: AtomicU64::new(0),
        }
    }

    fn counter(&self, slot: u32) -> &AtomicU32 {
        let x = slot as usize / FIRST + 1;
        let k = (usize::BITS - 1 - x.leading_zeros()) as usize;
        let offset = slot as usize - FIRST * ((1 << k) - 1);
        let seg =
            self.segments[k.min(SEGMENTS - 1)].get_or_init(|| (0..FIRST << k).map(|_| AtomicU32::new(0)).collect());
        &seg[offset.min(seg.len() - 1)]
    }

    pub(crate) fn open(&self, slot: u32) {
        self.counter(slot).fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn close(&self, slot: u32) {
        // Saturating: a count never wraps, even if an embedder misuses picks.
        if self.counter(slot).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
            let _ = self.total.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// (picks made, picks that went past their key's first choice).
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.picks.load(Ordering::Relaxed), self.moved.load(Ordering::Relaxed))
    }

    /// The member (index) for a key of bucket `bucket` whose first choice is `first`: the first
    /// in the key's preference order under its bound. `slot_of` and `share_of` give a member
    /// index's slot and weight share.
    pub(crate) fn choose(
        &self,
        active: &Active,
        bucket: usize,
        first: u32,
        slot_of: impl Fn(u32) -> u32,
        share_of: impl Fn(u32) -> f64,
    ) -> u32 {
        self.picks.fetch_add(1, Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed) + 1;
        let room = |i: u32| {
            let n = self.counter(slot_of(i)).load(Ordering::Relaxed);
            f64::from(n) * 100.0 < f64::from(self.factor) * total as f64 * share_of(i)
        };
        if room(first) {
            return first;
        }
        let mut found = None;
        active.walk_preference(bucket, |i| {
            if i != first && room(i) {
                found = Some(i);
                return false;
            }
            true
        });
        match found {
            Some(i) => {
                self.moved.fetch_add(1, Ordering::Relaxed);
                i
            }
            // Only under races between threads: every bound looked full.
            None => first,
        }
    }
}

impl Active {
    /// Calls `f` with a bucket's preference order (as [`Active::preference`] lists it) until it
    /// returns false, without allocating: each next candidate is the least draw after
    /// the previous one. O(n^2) in the members of a group; only overflowing picks walk it.
    pub(crate) fn walk_preference(&self, bucket: usize, mut f: impl FnMut(u32) -> bool) {
        use super::hash::{bucket_seed, mix, Draw};
        let bs = bucket_seed(bucket);
        let ms = mix(bs ^ super::snapshot::MEMBER_LEVEL);
        let single = self.groups.len() == 1;
        let mut prev_g: Option<Draw> = None;
        for _ in 0..self.groups.len() {
            let next_g = (0..self.groups.len() as u32)
                .map(|g| self.group_draw(bs, g, single))
                .filter(|d| prev_g.is_none_or(|p| p.before(d)))
                .min_by(Draw::cmp);
            let Some(gd) = next_g else { return };
            prev_g = Some(gd);
            let p = &self.groups[gd.idx as usize];
            let mut prev_m: Option<Draw> = None;
            for _ in 0..p.members.len() {
                let next_m = p
                    .members
                    .iter()
                    .zip(p.weights.iter())
                    .filter(|(_, &w)| w > 0)
                    .map(|(&i, &w)| Draw::new(ms, p.race_seed(i), w, i))
                    .filter(|d| prev_m.is_none_or(|q| q.before(d)))
                    .min_by(Draw::cmp);
                let Some(md) = next_m else { break };
                prev_m = Some(md);
                if !f(md.idx) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_of_any_slot_are_distinct_and_saturate() {
        let l = Loads::new(125);
        for s in [0u32, 63, 64, 191, 192, 10_000] {
            l.open(s);
            l.open(s);
        }
        for s in [0u32, 63, 64, 191, 192, 10_000] {
            assert_eq!(l.counter(s).load(Ordering::Relaxed), 2, "slot {s}");
        }
        assert_eq!(l.counter(1).load(Ordering::Relaxed), 0);
        l.close(1);
        assert_eq!(l.counter(1).load(Ordering::Relaxed), 0, "never below zero");
        assert_eq!(l.total.load(Ordering::Relaxed), 12);
    }
}
