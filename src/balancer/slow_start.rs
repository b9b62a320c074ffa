//! Slow start (`slow_start_s`, `slow_start_floor`): a member that becomes eligible (new, recovered,
//! re-enabled, back from ejection) ramps its weight linearly from `floor x weight` to its full
//! weight over `slow_start_s`.
//!
//! The balancer has no clock: it is told the time (`Balancer::tick`, `HealthHandle::record_at`,
//! `HealthHandle::record_response`), virtual microseconds in the simulator and a monotonic clock
//! in the live proxy. The ramp is cut into [`STEPS`] steps; at each step the writer rebuilds the
//! snapshot with the scaled weights, so the selection hot path is the same with the option on or
//! off. Every strategy reads the scaled weights: WRR's schedule, WLC's `in_flight / weight`, and
//! the hash strategies' weighted rendezvous race, where a smaller weight wins fewer buckets, so a
//! returning member's keys come back gradually, in their preference order.

use super::member::{Member, MemberId};
use super::snapshot::GroupSpec;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Steps of one ramp: the snapshot is rebuilt this many times while a member ramps.
pub(crate) const STEPS: u32 = 20;
/// While any member ramps, every weight is multiplied by this so that fractions of a weight are
/// representable (and divided again by the schedule's gcd where possible).
const SCALE: u32 = 100;
/// `slow_start_floor` when the option leaves it out.
pub const DEFAULT_FLOOR: f64 = 0.1;

/// Each member's ramp: when it last became eligible, and which members are eligible now.
#[derive(Debug, Default)]
pub(crate) struct Ramps {
    ramp: Option<(Duration, f64)>,
    since: HashMap<MemberId, Duration>,
    eligible: HashSet<MemberId>,
    /// False until the first observation: the members a balancer starts with do not ramp.
    seen: bool,
}

impl Ramps {
    /// Ramps of `ramp_s` seconds from `floor` (0-1); `None` turns slow start off.
    pub(crate) fn new(ramp_s: Option<f64>, floor: Option<f64>) -> Ramps {
        let ramp = ramp_s
            .filter(|s| *s > 0.0 && s.is_finite())
            .map(|s| (Duration::from_secs_f64(s), floor.unwrap_or(DEFAULT_FLOOR).clamp(0.0, 1.0)));
        Ramps { ramp, ..Ramps::default() }
    }

    /// Records which members are eligible at `now`; those that were not at the last observation
    /// start their ramp. Ramps that are over are forgotten.
    pub(crate) fn observe(&mut self, now: Duration, eligible: impl Iterator<Item = MemberId>) {
        let Some((ramp, _)) = self.ramp else { return };
        let now_eligible: HashSet<MemberId> = eligible.collect();
        if self.seen {
            for &id in now_eligible.difference(&self.eligible) {
                self.since.insert(id, now);
            }
        }
        self.since.retain(|id, t| now_eligible.contains(id) && now.saturating_sub(*t) < ramp);
        self.eligible = now_eligible;
        self.seen = true;
    }

    /// The weight factor of a member at `now` (1 when it is not ramping), quantized to steps.
    pub(crate) fn factor(&self, id: MemberId, now: Duration) -> f64 {
        let (Some((ramp, floor)), Some(&t0)) = (self.ramp, self.since.get(&id)) else { return 1.0 };
        let step = step_of(now.saturating_sub(t0), ramp);
        floor + (1.0 - floor) * f64::from(step) / f64::from(STEPS)
    }

    /// Whether some member is still ramping at `now`.
    fn ramping(&self, now: Duration) -> bool {
        self.ramp.is_some_and(|(ramp, _)| self.since.values().any(|&t0| now.saturating_sub(t0) < ramp))
    }

    /// The next time a ramp's step changes, after `now`.
    pub(crate) fn next_step(&self, now: Duration) -> Option<Duration> {
        let (ramp, _) = self.ramp?;
        self.since
            .values()
            .filter(|&&t0| now.saturating_sub(t0) < ramp)
            .map(|&t0| {
                let next = step_of(now.saturating_sub(t0), ramp) + 1;
                t0 + ramp.mul_f64(f64::from(next) / f64::from(STEPS))
            })
            .min()
    }

    /// The members and group weights the strategies should use at `now`: unchanged when nothing
    /// ramps; else every weight times [`SCALE`], a ramping member's times its factor too (at
    /// least 1, so that it stays eligible).
    pub(crate) fn scaled(&self, now: Duration, members: &[Member], groups: &[GroupSpec]) -> Option<Scaled> {
        if !self.ramping(now) {
            return None;
        }
        let scale =
            |w: u32, f: f64| if w == 0 { 0 } else { ((f64::from(w) * f64::from(SCALE) * f).round() as u32).max(1) };
        let members = members
            .iter()
            .map(|m| {
                let f = self.factor(m.id, now);
                Member { weight: scale(m.weight, f), effective_weight: scale(m.effective_weight, f), ..*m }
            })
            .collect();
        let groups = groups
            .iter()
            .map(|g| GroupSpec { name: g.name, weight: g.weight.map(|w| w.saturating_mul(SCALE)) })
            .collect();
        Some(Scaled { members, groups })
    }
}

/// Weights for one rebuild while some member ramps.
pub(crate) struct Scaled {
    pub(crate) members: Vec<Member>,
    pub(crate) groups: Vec<GroupSpec>,
}

/// The ramp step (0..=STEPS) after `elapsed` of a ramp of length `ramp`.
fn step_of(elapsed: Duration, ramp: Duration) -> u32 {
    let x = elapsed.as_secs_f64() / ramp.as_secs_f64() * f64::from(STEPS);
    (x.floor() as u32).min(STEPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<MemberId> {
        (0..n).map(|i| MemberId::new(&format!("10.9.0.{i}"), 80)).collect()
    }

    #[test]
    fn a_member_that_becomes_eligible_ramps_in_steps_from_the_floor() {
        let m = ids(2);
        let mut r = Ramps::new(Some(10.0), Some(0.2));
        r.observe(Duration::ZERO, m.iter().copied());
        assert_eq!(r.factor(m[0], Duration::ZERO), 1.0, "initial members do not ramp");
        r.observe(Duration::from_secs(1), [m[0]].into_iter());
        r.observe(Duration::from_secs(2), m.iter().copied());
        let at = |s: f64| r.factor(m[1], Duration::from_secs_f64(s));
        assert!((at(2.0) - 0.2).abs() < 1e-12);
        assert!((at(2.49) - 0.2).abs() < 1e-12, "one step is 0.5 s");
        assert!((at(2.5) - 0.24).abs() < 1e-12);
        assert!((at(7.0) - 0.6).abs() < 1e-12);
        assert_eq!(at(12.0), 1.0);
        assert_eq!(r.next_step(Duration::from_secs_f64(2.2)), Some(Duration::from_secs_f64(2.5)));
        r.observe(Duration::from_secs(12), m.iter().copied());
        assert_eq!(r.next_step(Duration::from_secs(12)), None, "the ramp is over");
    }

    #[test]
    fn off_without_a_duration() {
        let m = ids(1);
        let mut r = Ramps::new(None, None);
        r.observe(Duration::ZERO, std::iter::empty());
        r.observe(Duration::from_secs(1), m.iter().copied());
        assert_eq!(r.factor(m[0], Duration::from_secs(1)), 1.0);
        assert_eq!(r.next_step(Duration::from_secs(1)), None);
    }
}
