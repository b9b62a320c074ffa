//! The cloud systems around the channels: Global Accelerator's endpoint groups, which split a
//! listener's traffic by their traffic dials, and an SDRS protection group, whose target-AZ
//! members stand by until a failover moves the traffic to them.

use super::{Engine, Ev, SimError};
use crate::balancer::MemberId;
use crate::model::VpcChannel;
use crate::sim::scenario::{FaultKind, Scenario};
use crate::sim::time::{clock, secs, us, Micros};
use rand::Rng;

/// GA's dials in force and SDRS's failover progress.
#[derive(Default)]
pub(super) struct Cloud {
    /// Per channel: its endpoint group's dial, or 0 while the group has no eligible member
    /// (refreshed where eligibility changes, so arrivals read it without recomputing).
    dials: Vec<f64>,
    failover_started: Option<Micros>,
    failover_done: Option<Micros>,
}

impl Cloud {
    /// The failover has completed: the source AZ is drained and the target AZ serves.
    pub(super) fn failed_over(&self) -> bool {
        self.failover_done.is_some()
    }

    /// When the failover started and when it completed, in seconds.
    pub(super) fn failover_times(&self) -> (Option<f64>, Option<f64>) {
        (self.failover_started.map(secs), self.failover_done.map(secs))
    }
}

/// The channel as the balancer sees it under a protection group: target-AZ members stand by
/// (status 2) until the failover completes; after it, the source AZ's members take no traffic.
pub(super) fn standby_overlay(sc: &Scenario, ch: &VpcChannel, failed_over: bool) -> VpcChannel {
    let Some(pg) = &sc.protection_group else { return ch.clone() };
    let g = &pg.body.server_group;
    let off_az = if failed_over { &g.source_availability_zone } else { &g.target_availability_zone };
    let mut out = ch.clone();
    for m in out.members.iter_mut() {
        let id = MemberId::of(ch, m);
        if sc.plan().az_of(id) == Some(off_az.as_str()) {
            m.status = Some(2);
        }
    }
    out
}

impl Engine<'_, '_> {
    /// GA: the endpoint group of an arriving request, drawn by the groups' dials among the
    /// groups with an eligible member.
    #[inline]
    pub(super) fn choose_channel(&mut self) -> usize {
        if self.lbs.len() == 1 {
            return 0;
        }
        let dials = &self.cloud.dials;
        let total: f64 = dials.iter().sum();
        let x = self.rng.groups.gen::<f64>() * total;
        let mut acc = 0.0;
        for (i, d) in dials.iter().enumerate() {
            acc += d;
            if x < acc {
                return i;
            }
        }
        // Nothing eligible anywhere (or every dial 0): the first group, which will fail the request.
        dials.iter().position(|&d| d > 0.0).unwrap_or(0)
    }

    /// Refreshes the dials in force after a change of eligibility; returns their sum.
    pub(super) fn refresh_dials(&mut self) -> f64 {
        let plan = self.sc.plan();
        self.cloud.dials = plan
            .channels()
            .iter()
            .zip(self.lbs)
            .map(|(c, lb)| if lb.tier().is_ok() { f64::from(c.dial) } else { 0.0 })
            .collect();
        self.cloud.dials.iter().sum()
    }

    /// The share of the traffic that channel `c` takes, given the dials' sum.
    pub(super) fn group_share(&self, c: usize, total: f64) -> f64 {
        if self.lbs.len() == 1 {
            1.0
        } else if total > 0.0 {
            self.cloud.dials[c] / total
        } else {
            0.0
        }
    }

    /// SDRS: the failover starts with the first `az_down` fault of the source AZ.
    pub(super) fn schedule_failover(&mut self) {
        let Some(pg) = &self.sc.protection_group else { return };
        let src = &pg.body.server_group.source_availability_zone;
        let start = self
            .sc
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::AzDown && f.az.as_ref() == Some(src))
            .map(|f| f.at_s)
            .reduce(f64::min);
        if let Some(at) = start {
            self.schedule(us(at), Ev::FailoverStart);
        }
    }

    pub(super) fn failover_start(&mut self, t: Micros) {
        let fs = self.sc.protection_group.as_ref().map_or(0.0, |p| p.failover_s);
        self.cloud.failover_started = Some(t);
        self.m.failover_started(secs(t));
        self.schedule(t + us(fs), Ev::FailoverDone);
    }

    /// The failover completed: every channel drains the source AZ and serves from the target.
    pub(super) fn failover_done(&mut self, t: Micros) -> Result<(), SimError> {
        self.cloud.failover_done = Some(t);
        self.m.failover_done(secs(t));
        for c in 0..self.channels.len() {
            let ch = standby_overlay(self.sc, &self.channels[c], true);
            self.lbs[c].tick(clock(t));
            self.lbs[c].update(&ch)?;
            self.arm_tick(c);
        }
        self.account(t);
        Ok(())
    }
}
