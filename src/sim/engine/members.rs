//! Members joining the run: each gets a simulated backend as the scenario's plan resolves it
//! (its `[[backends]]` entry and the faults that hit it) and, with a health check, its first
//! probe; a `[[changes]]` entry reconfigures a channel and may add members.

use super::cloud::standby_overlay;
use super::{Backend, Engine, Ev, SimError};
use crate::balancer::MemberId;
use crate::health::HealthState;
use crate::sim::scenario::{add_backend_servers, member_ids, upsert_member_groups, ChangeKind};
use crate::sim::time::{clock, secs, us, Micros};
use rand::Rng;

impl Engine<'_, '_> {
    /// Adds a backend for each member of channel `c` not seen before (as the scenario's plan
    /// resolves it); schedules its probes.
    pub(super) fn register_members(&mut self, c: usize, now: Micros) {
        let slots: Vec<(MemberId, usize)> =
            self.lbs[c].members().iter().map(|s| (s.member.id(), s.member.slot as usize)).collect();
        let plan = self.sc.plan();
        for id in member_ids(&self.channels[c]) {
            if self.index.contains_key(&id) {
                continue;
            }
            if let Some(&(_, slot)) = slots.iter().find(|(m, _)| *m == id) {
                let by_slot = &mut self.by_slot[c];
                if by_slot.len() <= slot {
                    by_slot.resize(slot + 1, u32::MAX);
                }
                by_slot[slot] = self.backends.len() as u32;
            }
            let member = plan.resolve(id, c);
            let faults = plan.fault_windows(&member, secs(self.end));
            let idx = self.backends.len() as u32;
            self.index.insert(id, idx);
            let windows: Vec<(usize, f64, f64)> = member
                .faults
                .iter()
                .map(|&i| {
                    let f = &plan.faults()[i];
                    (i, f.at_s, f.until_s.unwrap_or(f64::INFINITY))
                })
                .collect();
            let initial = self.lbs[c].health().state(id).unwrap_or(HealthState::Unknown);
            self.m.add_member(id, windows, initial, secs(now));
            self.backends.push(Backend::new(id, c, &member.spec, faults));
            if let Some(check) = &self.checks[c] {
                let jitter = self.rng.probes.gen::<f64>() * f64::from(check.interval_s);
                self.schedule(now + us(jitter), Ev::Probe(idx));
            }
        }
    }

    /// A `[[changes]]` entry: the channel changes, its balancer takes the new configuration and
    /// new members get backends.
    pub(super) fn change(&mut self, t: Micros, i: usize) -> Result<(), SimError> {
        let c = 0;
        match &self.sc.changes[i].what {
            ChangeKind::MemberGroups(body) => upsert_member_groups(&mut self.channels[c], body),
            ChangeKind::BackendServers(body) => add_backend_servers(&mut self.channels[c], body),
            ChangeKind::Channel(ch) => self.channels[c] = (**ch).clone(),
        }
        let ch = standby_overlay(self.sc, &self.channels[c], self.cloud.failed_over());
        self.lbs[c].tick(clock(t));
        self.lbs[c].update(&ch)?;
        self.arm_tick(c);
        self.checks[c] = self.lbs[c].check();
        self.register_members(c, t);
        self.account(t);
        Ok(())
    }
}
