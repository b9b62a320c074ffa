//! What a simulated run measures, and the figures it hands to the report's assembly
//! ([`super::assemble`]). Memory is bounded by members x timeline windows and the key pools,
//! never by the number of requests.

use super::assemble::{assemble, MemberRun, RunFigures};
use super::engine::{Backend, Failure};
use super::keys::{total_moves, KeyMoves, Seen};
use super::scenario::Scenario;
use crate::balancer::{KeySpace, MemberId, Strategy};
use crate::health::HealthState;
use crate::report::{Report, Requests, SimStats};
use crate::Balancer;
use std::collections::BTreeMap;

mod recorder;
mod timeline;

use recorder::Recorder;
use timeline::Timeline;

pub(crate) struct Metrics {
    duration: f64,
    step: f64,
    windows: usize,
    timeline: Timeline,
    strategy: Strategy,
    total: u64,
    ok: u64,
    failed: u64,
    retried: u64,
    failed_by: BTreeMap<&'static str, u64>,
    latency: Recorder,
    members: Vec<MemberMetrics>,
    expected_since: f64,
    seen_clients: Seen,
    seen_uris: Seen,
    /// Per channel: the key space at the start, the buckets that ever left their first owner,
    /// and those back with it now (hash strategies).
    hash_base: Vec<Option<KeyMoves>>,
    /// Failed attempts on affected members inside each fault's window.
    fault_failed: Vec<u64>,
    channel_requests: Vec<u64>,
    failover: (Option<f64>, Option<f64>),
    failover_failed: u64,
}

struct MemberMetrics {
    id: MemberId,
    latency: Recorder,
    health: Vec<(f64, HealthState)>,
    expected_acc: f64,
    expected_now: f64,
    /// (fault index, from, until)
    faults: Vec<(usize, f64, f64)>,
}

pub(crate) struct Finish<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub duration_s: f64,
    pub backends: &'a [Backend],
    pub lbs: &'a [Balancer],
    pub failover: (Option<f64>, Option<f64>),
    pub events: u64,
    pub wall_ms: Option<f64>,
}

impl Metrics {
    pub(crate) fn new(sc: &Scenario, strategy: Strategy, duration: f64) -> Metrics {
        let windows = (duration / sc.timeline_step_s).ceil().max(1.0) as usize;
        Metrics {
            duration,
            step: sc.timeline_step_s,
            windows,
            timeline: Timeline::default(),
            strategy,
            total: 0,
            ok: 0,
            failed: 0,
            retried: 0,
            failed_by: BTreeMap::new(),
            latency: Recorder::run(),
            members: Vec::new(),
            expected_since: 0.0,
            seen_clients: Seen::new(sc.traffic.clients),
            seen_uris: Seen::new(sc.traffic.uris),
            hash_base: Vec::new(),
            fault_failed: vec![0; sc.faults.len()],
            channel_requests: vec![0; sc.channels.len()],
            failover: (None, None),
            failover_failed: 0,
        }
    }

    /// A member joins at `now`: `faults` are the windows (fault index, from, until) of the
    /// faults that hit it.
    pub(crate) fn add_member(&mut self, id: MemberId, faults: Vec<(usize, f64, f64)>, initial: HealthState, now: f64) {
        self.timeline.add_member(self.windows);
        self.members.push(MemberMetrics {
            id,
            latency: Recorder::member(),
            health: vec![(now, initial)],
            expected_acc: 0.0,
            expected_now: 0.0,
            faults,
        });
    }

    #[inline]
    pub(crate) fn arrived(&mut self, client: u32, uri: u32, channel: usize) {
        self.total += 1;
        self.seen_clients.insert(client);
        self.seen_uris.insert(uri);
        self.channel_requests[channel] += 1;
    }

    #[inline]
    pub(crate) fn attempt_started(&mut self, m: u32, t: f64) {
        let w = ((t / self.step) as usize).min(self.windows - 1);
        self.timeline.count(w, m as usize);
    }

    /// A successful attempt's latency in microseconds (0 counts as 1).
    #[inline]
    pub(crate) fn attempt_done(&mut self, m: u32, latency_us: u64) {
        self.members[m as usize].latency.record(latency_us);
    }

    #[inline]
    pub(crate) fn attempt_failed(&mut self, m: u32, t: f64) {
        for &(f, from, until) in &self.members[m as usize].faults {
            if t >= from && t < until {
                self.fault_failed[f] += 1;
            }
        }
    }

    /// A finished request: its latency in microseconds from arrival (0 counts as 1).
    #[inline]
    pub(crate) fn request_done(&mut self, latency_us: u64, attempts: u32, result: Result<(), Failure>) {
        if attempts > 1 {
            self.retried += 1;
        }
        match result {
            Ok(()) => {
                self.ok += 1;
                self.latency.record(latency_us);
            }
            Err(why) => {
                self.failed += 1;
                *self.failed_by.entry(why.as_str()).or_insert(0) += 1;
                if self.failover.0.is_some() && self.failover.1.is_none() {
                    self.failover_failed += 1;
                }
            }
        }
    }

    pub(crate) fn health_changed(&mut self, m: u32, t: f64, state: HealthState) {
        self.members[m as usize].health.push((t, state));
    }

    /// Member `m`'s health transitions so far, starting with its initial state.
    pub(crate) fn health_of(&self, m: u32) -> &[(f64, HealthState)] {
        self.members.get(m as usize).map_or(&[], |mm| &mm.health)
    }

    /// The key space of channel `c` at the start of the run.
    pub(crate) fn key_space_base(&mut self, c: usize, ks: Option<KeySpace>) {
        if self.hash_base.len() <= c {
            self.hash_base.resize_with(c + 1, || None);
        }
        self.hash_base[c] = ks.map(KeyMoves::new);
    }

    /// Channel `c`'s key space after a health transition.
    pub(crate) fn key_space_changed(&mut self, c: usize, now: &KeySpace) {
        if let Some(Some(moves)) = self.hash_base.get_mut(c) {
            moves.observe(now);
        }
    }

    pub(crate) fn failover_started(&mut self, t: f64) {
        self.failover.0 = Some(t);
    }

    pub(crate) fn failover_done(&mut self, t: f64) {
        self.failover.1 = Some(t);
    }

    /// The expected shares in force from `t` on (member order).
    pub(crate) fn expected_from(&mut self, t: f64, shares: &[f64]) {
        let t = t.min(self.duration);
        let dt = t - self.expected_since;
        for (mm, s) in self.members.iter_mut().zip(shares.iter().copied().chain(std::iter::repeat(0.0))) {
            mm.expected_acc += mm.expected_now * dt;
            mm.expected_now = s;
        }
        self.expected_since = t;
    }

    /// The run's figures, assembled into its report.
    pub(crate) fn finish(mut self, f: Finish<'_>) -> Report {
        let shares: Vec<f64> = self.members.iter().map(|m| m.expected_now).collect();
        self.expected_from(self.duration, &shares);
        let (windows, duration) = (self.windows, self.duration);
        let members = self
            .members
            .iter_mut()
            .zip(f.backends)
            .enumerate()
            .map(|(i, (m, b))| MemberRun {
                id: m.id,
                channel: b.channel,
                attempts: self.timeline.total(i, windows),
                latency: m.latency.latency(),
                peak_in_flight: b.peak_in_flight(),
                health: std::mem::take(&mut m.health),
                expected_share: m.expected_acc / duration,
            })
            .collect();
        let hash_keys =
            if self.strategy == Strategy::SourceIp { self.seen_clients.count() } else { self.seen_uris.count() };
        let requests = Requests {
            total: self.total,
            ok: self.ok,
            failed: self.failed,
            retried: self.retried,
            failed_by_reason: self.failed_by.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let total = self.total;
        let timeline = &self.timeline;
        let figures = RunFigures {
            mode: "sim",
            strategy: self.strategy,
            seed: f.seed,
            duration_s: f.duration_s,
            requests,
            latency: Some(self.latency.histogram()),
            members,
            windows,
            timeline: &|w, m| timeline.at(w, m),
            fault_failed: self.fault_failed,
            hash_keys,
            key_moves: total_moves(self.hash_base.iter().flatten()),
            channel_requests: self.channel_requests,
            failover: f.failover,
            failover_failed: self.failover_failed,
            sim: Some(SimStats {
                events: f.events,
                wall_ms: f.wall_ms.map(crate::report::round6),
                requests_per_s: f.wall_ms.map(|w| if w > 0.0 { (total as f64 / (w / 1e3)).round() } else { 0.0 }),
            }),
        };
        assemble(f.scenario, f.lbs, figures)
    }
}
