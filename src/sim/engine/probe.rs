//! Active health checks on simulated backends: what a check finds (refused, a status, a
//! timeout), when its result arrives, and when the next check starts.

use super::{Engine, Ev};
use crate::health::{HealthState, Outcome, Verdict};
use crate::model::CheckProtocol;
use crate::sim::time::{clock, secs, us, us_ms, Micros};
use rand::Rng;

impl Engine<'_, '_> {
    /// A check of member `m` starts at `t`: its result is scheduled, and so is the next check.
    pub(super) fn probe(&mut self, t: Micros, m: u32) {
        if t >= self.end {
            return;
        }
        let b = &self.backends[m as usize];
        let (bc, bid) = (b.channel, b.id);
        let Some(check) = self.checks[b.channel].clone() else { return };
        let cond = b.condition(t);
        let (verdict, after) = if cond.down {
            (Verdict::Failure, 0) // refused at once
        } else if check.protocol == CheckProtocol::Tcp {
            (Verdict::Success, 0)
        } else if b.saturated() {
            (self.policy.verdict(&check, 503), 0)
        } else {
            let lat_ms = self.sc.traffic.service_time_ms.median() * b.speed * cond.slow;
            let timeout_ms = f64::from(check.timeout_s) * 1e3;
            if lat_ms >= timeout_ms {
                (Verdict::Failure, us_ms(timeout_ms))
            } else {
                let status =
                    if cond.error_rate > 0.0 && self.rng.probes.gen::<f64>() < cond.error_rate { 500 } else { 200 };
                (self.policy.verdict(&check, status), us_ms(lat_ms))
            }
        };
        let ev = match verdict {
            Verdict::Success => Ev::ProbeResult(m, Outcome::Success),
            Verdict::Failure => Ev::ProbeResult(m, Outcome::Failure),
            Verdict::Fatal => Ev::ProbeFatal(m),
        };
        self.schedule(t + after, ev);
        // `unhealthy_interval` and `interval_jitter_percent`: the next check's interval follows
        // the member's health as this one starts; a jitter draw only when jitter is on.
        let unhealthy = self.lbs[bc].health().state(bid) == Some(HealthState::Unhealthy);
        let u = if self.policy.jitters() { self.rng.probes.gen::<f64>() } else { 0.5 };
        self.schedule(t + us(self.policy.interval_s(&check, unhealthy, u)).max(1), Ev::Probe(m));
    }

    /// A check's result; `None`: a status that marks the member unhealthy at once.
    pub(super) fn probe_result(&mut self, t: Micros, m: u32, outcome: Option<Outcome>) {
        let b = &self.backends[m as usize];
        let lb = &self.lbs[b.channel];
        let c = b.channel;
        let changed = match outcome {
            Some(o) => lb.health().record_at(b.id, o, clock(t)),
            None => lb.health().force_unhealthy(b.id),
        };
        if let Some(state) = changed {
            self.m.health_changed(m, secs(t), state);
            if let Some(ks) = lb.key_space() {
                self.m.key_space_changed(c, &ks);
            }
            self.account(t);
            self.arm_tick(c);
        }
    }
}
