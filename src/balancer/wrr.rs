//! Smooth weighted round robin (nginx's), precomputed as one period of picks and replayed with
//! per-thread cursors.
//!
//! nginx's algorithm: on each pick every eligible member's current weight grows by its weight,
//! the largest current weight wins (first in member order on ties), and the winner's current
//! weight drops by the total. The sequence is periodic with period `sum(weights) / gcd`, so the
//! balancer computes one period when the eligible set changes and the hot path only reads it.

use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// One period of smooth WRR over `weights` (indices into `weights`). Members with weight 0 never
/// appear. Empty when every weight is 0.
pub(crate) fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0u32, gcd);
    if g == 0 {
        return Vec::new();
    }
    let w: Vec<i64> = weights.iter().map(|&w| i64::from(w / g)).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        let mut best_cw = i64::MIN;
        for (i, (cw, &wi)) in current.iter_mut().zip(&w).enumerate() {
            if wi == 0 {
                continue;
            }
            *cw += wi;
            if *cw > best_cw {
                best_cw = *cw;
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Number of cursor stripes. Each thread uses one stripe (threads are spread over them in the
/// order they first pick), so threads rarely write the same cache line; one thread alone always
/// walks the exact sequence.
pub(crate) const STRIPES: usize = 16;
const SLOTS_PER_LINE: usize = 16;

/// The stripe of the calling thread.
#[inline]
pub(crate) fn stripe() -> usize {
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(v);
        v
    })
}

/// Per-stripe cursors into the schedules of one snapshot: slot 0 walks the group schedule, slot
/// `1 + g` the member schedule of group `g`.
pub(crate) struct Cursors {
    lines: Box<[CachePadded<[AtomicU32; SLOTS_PER_LINE]>]>,
    lines_per_stripe: usize,
}

impl Cursors {
    pub(crate) fn new(slots: usize) -> Cursors {
        let lines_per_stripe = slots.div_ceil(SLOTS_PER_LINE).max(1);
        let lines = (0..lines_per_stripe * STRIPES).map(|_| CachePadded::new(Default::default())).collect();
        Cursors { lines, lines_per_stripe }
    }

    #[inline]
    fn slot(&self, stripe: usize, slot: usize) -> &AtomicU32 {
        &self.lines[stripe * self.lines_per_stripe + slot / SLOTS_PER_LINE][slot % SLOTS_PER_LINE]
    }

    /// Returns the stripe's position in a schedule of length `len` (> 0) and advances it.
    /// Load-and-store rather than an atomic add: threads that share a stripe may occasionally
    /// repeat or skip a position, which keeps counts within a few picks of exact, and one
    /// thread alone never races with itself.
    #[inline]
    pub(crate) fn advance(&self, stripe: usize, slot: usize, len: usize) -> usize {
        let c = self.slot(stripe, slot);
        let mut pos = c.load(Ordering::Relaxed) as usize;
        if pos >= len {
            pos %= len;
        }
        let next = if pos + 1 == len { 0 } else { pos + 1 };
        c.store(next as u32, Ordering::Relaxed);
        pos
    }

    /// Carries positions over from the previous snapshot's cursors, scaled to the new schedule
    /// lengths, so that frequent rebuilds do not keep restarting every schedule at its start.
    pub(crate) fn carry_from(&self, old: &Cursors, old_lens: &[usize], new_lens: &[usize]) {
        for stripe in 0..STRIPES {
            for (slot, (&ol, &nl)) in old_lens.iter().zip(new_lens).enumerate() {
                if ol == 0 || nl == 0 || slot >= self.lines_per_stripe * SLOTS_PER_LINE {
                    continue;
                }
                if slot >= old.lines_per_stripe * SLOTS_PER_LINE {
                    continue;
                }
                let pos = old.slot(stripe, slot).load(Ordering::Relaxed) as usize % ol;
                let scaled = (pos as u64 * nl as u64 / ol as u64) as u32;
                self.slot(stripe, slot).store(scaled, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[u32]) -> String {
        s.iter().map(|&i| (b'a' + i as u8) as char).collect()
    }

    #[test]
    fn nginx_sequence_for_5_1_1() {
        assert_eq!(names(&smooth_schedule(&[5, 1, 1])), "aabacaa");
    }

    #[test]
    fn period_is_reduced_by_gcd_and_zero_weights_never_appear() {
        assert_eq!(names(&smooth_schedule(&[10, 2, 2])), "aabacaa");
        assert_eq!(names(&smooth_schedule(&[2, 0, 1])), "aca");
        assert!(smooth_schedule(&[0, 0]).is_empty());
        assert_eq!(names(&smooth_schedule(&[1, 1, 1])), "abc");
    }

    #[test]
    fn counts_match_weights_exactly_per_period() {
        let w = [7, 3, 11, 1, 5];
        let s = smooth_schedule(&w);
        for (i, &wi) in w.iter().enumerate() {
            assert_eq!(s.iter().filter(|&&x| x as usize == i).count(), wi as usize);
        }
    }
}
