//! Stopping a run at a simulated moment and looking at the balancers (`lbsim explain`).
//!
//! The engine is deterministic, so the state at time S is found by running the same scenario
//! from the start up to S: every event before S runs, and so does every other event at S (the
//! run handles an arrival after everything else at its moment). What a request arriving at S would find is then
//! exactly what [`Paused`] shows.

use super::{balancers, Engine, Ev, RunOptions, SimError};
use crate::balancer::MemberId;
use crate::health::HealthState;
use crate::sim::time::{secs, us};
use crate::sim::Scenario;
use crate::Balancer;

/// A run stopped at `at_s`, before the arrival at that moment (if any) is handled.
pub struct Paused<'a> {
    pub at_s: f64,
    /// One balancer per channel (GA: per endpoint group), in scenario order, as the next request
    /// would find them: health, configuration changes, WRR schedule positions and in-flight
    /// counts of the attempts still open.
    pub balancers: &'a [Balancer],
    /// Every simulated member's health transitions up to `at_s`, starting with its initial state.
    pub health: Vec<(MemberId, Vec<(f64, HealthState)>)>,
    /// SDRS: when the failover started and when it completed, if it has by `at_s`.
    pub failover: (Option<f64>, Option<f64>),
}

impl Paused<'_> {
    /// A member's health transitions up to `at_s` (empty for an unknown member).
    pub fn health_of(&self, id: MemberId) -> &[(f64, HealthState)] {
        self.health.iter().find(|(m, _)| *m == id).map_or(&[], |(_, h)| h.as_slice())
    }
}

/// Runs a scenario under `opts.strategy` up to `at_s` simulated seconds and hands the state to
/// `inspect`. `opts.trace` and `opts.progress` work as in [`super::run`].
pub fn run_until<R>(
    sc: &Scenario,
    mut opts: RunOptions<'_>,
    at_s: f64,
    inspect: impl FnOnce(&Paused<'_>) -> R,
) -> Result<R, SimError> {
    let seed = opts.seed.unwrap_or(sc.seed);
    let duration = opts.duration_s.unwrap_or(sc.duration_s);
    let (channels, lbs) = balancers(sc, opts.strategy)?;
    let mut e = Engine::new(sc, opts.strategy, seed, duration, &lbs, channels, opts.trace.take());
    e.start();
    let stop = us(at_s);
    while let Some((t, ev)) = e.peek() {
        if t > stop || (t == stop && Ev::is_arrival(ev)) {
            break;
        }
        e.pop();
        e.step(t, ev)?;
        if let Some(p) = opts.progress.as_mut() {
            if e.events.is_multiple_of(1 << 16) {
                p((secs(t) / at_s.max(f64::MIN_POSITIVE)).min(1.0));
            }
        }
    }
    let health = e.backends.iter().enumerate().map(|(m, b)| (b.id, e.m.health_of(m as u32).to_vec())).collect();
    let paused = Paused { at_s, balancers: &lbs, health, failover: e.cloud.failover_times() };
    Ok(inspect(&paused))
}
