//! [`HealthHandle`]: active and passive health results into the members' state machines; a
//! change of eligibility publishes a new snapshot.

use super::Balancer;
use crate::balancer::MemberId;
use crate::health::{HealthMachine, HealthState, Outcome};
use std::time::Duration;

/// Feeds check results into the members' threshold state machines.
pub struct HealthHandle<'a> {
    pub(super) lb: &'a Balancer,
}

impl HealthHandle<'_> {
    /// Counts one check result for a member. Returns the member's new state when this result
    /// changed it (eligibility follows at once); `None` otherwise, and for an unknown id.
    pub fn record(&self, id: MemberId, outcome: Outcome) -> Option<HealthState> {
        self.apply(id, |m| m.record(outcome))
    }

    /// [`HealthHandle::record`] at a time (see [`Balancer::tick`]): a member that recovers starts
    /// its slow-start ramp then.
    pub fn record_at(&self, id: MemberId, outcome: Outcome, now: Duration) -> Option<HealthState> {
        let mut w = self.lb.writer.lock();
        if now > w.now {
            w.now = now;
        }
        drop(w);
        self.record(id, outcome)
    }

    /// Passive health: one response of a member at `now` (see [`Balancer::tick`]); a 5xx answer
    /// or a failed connection is an `Outcome::Failure`. Returns `Some(Ejected)` when this response
    /// made outlier detection eject the member; `None` otherwise, always when it is off.
    pub fn record_response(&self, id: MemberId, outcome: Outcome, now: Duration) -> Option<HealthState> {
        let (rules, counters) = self.lb.outlier.as_ref()?;
        if !counters.lock().record(rules, id, outcome, now) {
            return None;
        }
        let mut w = self.lb.writer.lock();
        if now > w.now {
            w.now = now;
        }
        w.index.get(&id)?;
        let (now, n) = (w.now, w.config.members.len());
        w.ejections.eject(rules, id, now, n)?;
        self.lb.publish(&mut w);
        Some(HealthState::Ejected)
    }

    /// Marks a member unhealthy at once, without waiting for `threshold_abnormal`.
    pub fn force_unhealthy(&self, id: MemberId) -> Option<HealthState> {
        self.apply(id, HealthMachine::force_unhealthy)
    }

    /// The member's current health, `None` for an unknown id.
    pub fn state(&self, id: MemberId) -> Option<HealthState> {
        let w = self.lb.writer.lock();
        w.index.get(&id).map(|&i| w.health_of(i))
    }

    fn apply(&self, id: MemberId, f: impl FnOnce(&mut HealthMachine) -> Option<HealthState>) -> Option<HealthState> {
        let mut w = self.lb.writer.lock();
        let i = *w.index.get(&id)?;
        let changed = f(&mut w.machines[i]);
        if changed.is_some() {
            self.lb.publish(&mut w);
        }
        changed
    }
}
