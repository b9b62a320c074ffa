//! What follows a member's health: attempts' outcomes into outlier detection, the balancers'
//! time-driven rebuilds (slow start's ramps, ejections that end), and the expected shares that
//! each change leaves in force.

use super::Engine;
use super::Ev;
use crate::health::Outcome;
use crate::sim::time::{clock, secs, Micros};

impl Engine<'_, '_> {
    /// Passive health: an attempt's outcome into outlier detection (when it is on).
    #[inline]
    pub(super) fn passive(&mut self, t: Micros, m: u32, outcome: Outcome) {
        if self.outlier {
            self.record_response(t, m, outcome);
        }
    }

    fn record_response(&mut self, t: Micros, m: u32, outcome: Outcome) {
        let (id, c) = (self.backends[m as usize].id, self.backends[m as usize].channel);
        if let Some(state) = self.lbs[c].health().record_response(id, outcome, clock(t)) {
            self.m.health_changed(m, secs(t), state);
            if let Some(ks) = self.lbs[c].key_space() {
                self.m.key_space_changed(c, &ks);
            }
            self.account(t);
            self.arm_tick(c);
        }
    }

    /// Schedules channel `c`'s next balancer tick, if it needs one before the end of the run.
    pub(super) fn arm_tick(&mut self, c: usize) {
        let Some(next) = self.lbs[c].next_tick() else { return };
        let t = next.as_micros().min(u128::from(u64::MAX)) as Micros;
        if t >= self.end || self.ticks[c].is_some_and(|p| p <= t) {
            return;
        }
        self.ticks[c] = Some(t);
        self.schedule(t, Ev::Tick(c as u32));
    }

    pub(super) fn tick(&mut self, t: Micros, c: usize) {
        if self.ticks[c] != Some(t) {
            return; // superseded by an earlier tick
        }
        self.ticks[c] = None;
        for (id, state) in self.lbs[c].tick(clock(t)) {
            if let Some(&m) = self.index.get(&id) {
                self.m.health_changed(m, secs(t), state);
            }
        }
        if let Some(ks) = self.lbs[c].key_space() {
            self.m.key_space_changed(c, &ks);
        }
        self.account(t);
        self.arm_tick(c);
    }

    /// Records the expected shares in force from `t` on: each member's share of its channel,
    /// times its channel's share of the traffic.
    pub(super) fn account(&mut self, t: Micros) {
        let total = self.refresh_dials();
        let mut shares = vec![0.0; self.backends.len()];
        for (c, lb) in self.lbs.iter().enumerate() {
            let cs = self.group_share(c, total);
            for st in lb.members() {
                if let Some(&m) = self.index.get(&st.member.id()) {
                    shares[m as usize] = cs * st.expected_share;
                }
            }
        }
        self.m.expected_from(secs(t), &shares);
    }
}
