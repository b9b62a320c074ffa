//! Weighted least connections: the eligible member with the smallest `in_flight / weight`
//! (compared by cross-multiplication), ties broken by smooth WRR among the tied members with
//! WLC's own current weights, as nginx's `least_conn` does: only the tied members' current
//! weights change on a pick.
//!
//! The scan is O(members of the chosen group). The counters are per-member atomics; with
//! several threads, concurrent picks may see each other's counts a moment late, which keeps
//! shares within a few picks of exact.

use super::member::MemberState;
use super::snapshot::Active;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

impl Active {
    #[inline]
    pub(crate) fn wlc_pick(&self, states: &[Arc<MemberState>], stripe: usize) -> u32 {
        self.wlc_pick_filtered(states, stripe, &|_| true).unwrap_or(self.groups[0].members[0])
    }

    pub(crate) fn wlc_pick_filtered(
        &self,
        states: &[Arc<MemberState>],
        stripe: usize,
        keep: &dyn Fn(u32) -> bool,
    ) -> Option<u32> {
        let plan = &self.groups[self.group_for(stripe)];
        let (members, weights) = (&plan.members, &plan.weights);
        // Pass 1: the first member with the smallest in_flight / weight, and whether it is tied.
        let mut best: Option<(usize, u64, u64)> = None; // (position, in_flight, weight)
        let mut tied = false;
        for (p, (&m, &w)) in members.iter().zip(weights.iter()).enumerate() {
            if w == 0 || !keep(m) {
                continue;
            }
            let load = u64::from(states[m as usize].inner.in_flight.load(Relaxed));
            let w = u64::from(w);
            match best {
                None => best = Some((p, load, w)),
                Some((_, bl, bw)) => {
                    let (lhs, rhs) = (load * bw, bl * w);
                    if lhs < rhs {
                        best = Some((p, load, w));
                        tied = false;
                    } else if lhs == rhs {
                        tied = true;
                    }
                }
            }
        }
        let (first, bl, bw) = best?;
        if !tied {
            return Some(members[first]);
        }
        // Pass 2: smooth WRR among the members tied with the best.
        let mut total = 0i64;
        let mut winner = first;
        let mut winner_cw = i64::MIN;
        for p in first..members.len() {
            let (m, w) = (members[p], u64::from(weights[p]));
            if w == 0 || !keep(m) {
                continue;
            }
            let s = &states[m as usize].inner;
            if u64::from(s.in_flight.load(Relaxed)) * bw != bl * w {
                continue;
            }
            // Load and store, not an atomic add: the tie pass touches every tied member, and
            // a lost update under concurrency only nudges one tie-break.
            let cw = s.wlc_current.load(Relaxed) + w as i64;
            s.wlc_current.store(cw, Relaxed);
            total += w as i64;
            if cw > winner_cw {
                winner_cw = cw;
                winner = p;
            }
        }
        let s = &states[members[winner] as usize].inner;
        s.wlc_current.store(winner_cw - total, Relaxed);
        Some(members[winner])
    }
}
