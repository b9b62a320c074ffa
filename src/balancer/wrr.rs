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
///
/// nginx's loop touches every member on every pick: O(period x n), which a large channel with
/// large weights (or slow start, which scales every weight up) turns into seconds per rebuild.
/// Members of one weight, though, always go round in member order: their current weights grow
/// alike, so the one picked longest ago (lowest index among equals) is the largest, and a pick
/// sends it to the back. So each distinct weight keeps a cursor over its members and how many
/// rounds it has completed (every member there has lost `total` per round), and a pick compares
/// the weights' next members only: O(period x distinct weights), the same sequence.
pub(crate) fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0u32, gcd);
    if g == 0 {
        return Vec::new();
    }
    struct Class {
        weight: i64,
        /// Its members, in member order.
        members: Vec<u32>,
        next: usize,
        /// Current weight of `members[next]`, less `step x weight`: `-total x rounds`.
        base: i64,
    }
    let mut classes: Vec<Class> = Vec::new();
    for (i, &w) in weights.iter().enumerate().filter(|(_, &w)| w > 0) {
        let weight = i64::from(w / g);
        match classes.iter_mut().find(|c| c.weight == weight) {
            Some(c) => c.members.push(i as u32),
            None => classes.push(Class { weight, members: vec![i as u32], next: 0, base: 0 }),
        }
    }
    let total: i64 = weights.iter().map(|&w| i64::from(w / g)).sum();
    let mut out = Vec::with_capacity(total as usize);
    for step in 1..=total {
        let (mut best, mut best_cw, mut best_idx) = (0, i64::MIN, u32::MAX);
        for (ci, c) in classes.iter().enumerate() {
            let (cw, idx) = (c.base + step * c.weight, c.members[c.next]);
            if cw > best_cw || (cw == best_cw && idx < best_idx) {
                (best, best_cw, best_idx) = (ci, cw, idx);
            }
        }
        let c = &mut classes[best];
        c.next += 1;
        if c.next == c.members.len() {
            c.next = 0;
            c.base -= total;
        }
        out.push(best_idx);
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

    /// nginx's loop, literally: every member's current weight grows, the largest wins (first
    /// in member order on ties), the winner's drops by the total.
    fn nginx(weights: &[u32]) -> Vec<u32> {
        let g = weights.iter().copied().filter(|&w| w > 0).fold(0u32, gcd);
        let w: Vec<i64> = weights.iter().map(|&w| i64::from(w.checked_div(g).unwrap_or(0))).collect();
        let total: i64 = w.iter().sum();
        let mut current = vec![0i64; w.len()];
        let mut out = Vec::new();
        for _ in 0..total {
            let mut best = 0;
            for i in 0..w.len() {
                current[i] += w[i];
                if w[i] > 0 && (w[best] == 0 || current[i] > current[best]) {
                    best = i;
                }
            }
            current[best] -= total;
            out.push(best as u32);
        }
        out
    }

    #[test]
    fn matches_nginx_loop_for_random_weights() {
        let mut seed = 0x0bad_cafe_u64;
        for case in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = 1 + (seed % 40) as usize;
            // Few distinct weights, many, zeros, and weights sharing a factor.
            let span = [3, 10, 100, 1000][case % 4];
            let factor = 1 + (case % 3) as u32;
            let w: Vec<u32> =
                (0..n as u64).map(|i| (super::super::hash::mix(seed ^ i) % span) as u32 * factor).collect();
            assert_eq!(smooth_schedule(&w), nginx(&w), "weights {w:?}");
        }
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
