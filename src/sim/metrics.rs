//! What a run measures, and the report it becomes. Memory is bounded by members x timeline
//! windows and the key pools, never by the number of requests.

use super::engine::{Backend, Failure};
use super::scenario::{BackendSpec, FaultKind, Scenario};
use crate::balancer::{KeySpace, MemberId, Strategy};
use crate::health::HealthState;
use crate::report::*;
use crate::Balancer;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// How a hash key space moves over a run: its buckets that ever left their first owner, and
/// those back with it now (bitsets), as seen after each health transition. Shared by the
/// simulator's and the live reports (`hash.remapped_on_fault`, `hash.returned_on_recovery`).
pub(crate) struct KeyMoves {
    base: KeySpace,
    moved: Vec<u64>,
    back: Vec<u64>,
}

impl KeyMoves {
    pub(crate) fn new(base: KeySpace) -> KeyMoves {
        let words = base.buckets().div_ceil(64);
        KeyMoves { base, moved: vec![0; words], back: vec![0; words] }
    }

    /// Compares the key space now with the first one, bucket for bucket.
    pub(crate) fn observe(&mut self, now: &KeySpace) {
        let shift = 64 - u32::from(self.base.bits());
        for b in 0..self.base.buckets() {
            let (w, bit) = (b / 64, 1u64 << (b % 64));
            if now.owner_of_key((b as u64) << shift) != self.base.owner_of_bucket(b) {
                self.moved[w] |= bit;
                self.back[w] &= !bit;
            } else if self.moved[w] & bit != 0 {
                self.back[w] |= bit;
            }
        }
    }

    /// (buckets that ever moved, buckets back now, buckets).
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (popcount(&self.moved), popcount(&self.back), self.base.buckets() as u64)
    }
}

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
    seen_clients: Vec<u64>,
    seen_uris: Vec<u64>,
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
    spec: BackendSpec,
    latency: Recorder,
    health: Vec<(f64, HealthState)>,
    expected_acc: f64,
    expected_now: f64,
    /// (fault index, from, until)
    faults: Vec<(usize, f64, f64)>,
}

/// A latency histogram (hdrhistogram, auto-resizing, so any latency fits) recorded per request
/// with 16-bit counts: a quarter of the memory of 64-bit ones, so that 100 members' hot buckets
/// stay in cache (recording is a cache miss otherwise). Every `u16::MAX` records, before any
/// count could saturate, the counts move into a 64-bit histogram of the same precision, bucket
/// for bucket, so percentiles, max and mean come out as if every value had gone there.
struct Recorder {
    hot: Histogram<u16>,
    all: Histogram<u64>,
}

impl Recorder {
    /// The run's histogram: 3 significant digits.
    fn run() -> Recorder {
        Recorder::new(3)
    }

    /// A member's histogram: 2 significant digits (1% resolution); at 3 digits 100 members'
    /// histograms outgrow the caches.
    fn member() -> Recorder {
        Recorder::new(2)
    }

    fn new(digits: u8) -> Recorder {
        fn histogram<T: hdrhistogram::Counter>(digits: u8) -> Histogram<T> {
            Histogram::new(digits).unwrap_or_else(|_| unreachable!("2 and 3 significant digits are valid"))
        }
        Recorder { hot: histogram(digits), all: histogram(digits) }
    }

    /// Records microseconds (0 counts as 1).
    #[inline]
    fn record(&mut self, us: u64) {
        if self.hot.len() >= u64::from(u16::MAX) {
            self.spill();
        }
        let _ = self.hot.record(us.max(1));
    }

    fn spill(&mut self) {
        for v in self.hot.iter_recorded() {
            let _ = self.all.record_n(v.value_iterated_to(), u64::from(v.count_at_value()));
        }
        self.hot.reset();
    }

    /// The percentiles of everything recorded: from the 16-bit counts when they never spilled
    /// (the same buckets; a walk of the histogram and a copy less per member at the end).
    fn latency(&mut self) -> Latency {
        if self.all.is_empty() {
            Latency::from_micros(&self.hot)
        } else {
            Latency::from_micros(self.histogram())
        }
    }

    /// Everything recorded.
    fn histogram(&mut self) -> &Histogram<u64> {
        self.spill();
        &self.all
    }
}

/// Attempts started per timeline window and member, window-major: the window being filled is
/// one contiguous row, so counting an attempt touches the same few cache lines whichever member
/// it went to (a vector per member cost a cache miss per attempt at 100 members). A member's
/// `requests` is the sum of its column.
struct Timeline {
    counts: Vec<u64>,
    /// Row length: members this layout has room for (doubles when full).
    stride: usize,
    members: usize,
}

impl Timeline {
    fn add_member(&mut self, windows: usize) {
        if self.members == self.stride {
            let stride = (self.stride * 2).max(8);
            let mut counts = vec![0; windows * stride];
            for w in 0..windows {
                let (from, to) = (w * self.stride, w * stride);
                counts[to..to + self.members].copy_from_slice(&self.counts[from..from + self.members]);
            }
            self.counts = counts;
            self.stride = stride;
        }
        self.members += 1;
    }

    #[inline]
    fn count(&mut self, w: usize, m: usize) {
        self.counts[w * self.stride + m] += 1;
    }

    fn at(&self, w: usize, m: usize) -> u64 {
        self.counts[w * self.stride + m]
    }

    fn total(&self, m: usize, windows: usize) -> u64 {
        (0..windows).map(|w| self.at(w, m)).sum()
    }
}

fn set_bit(bits: &mut [u64], i: u32) {
    if let Some(w) = bits.get_mut(i as usize / 64) {
        *w |= 1 << (i % 64);
    }
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
            timeline: Timeline { counts: Vec::new(), stride: 0, members: 0 },
            strategy,
            total: 0,
            ok: 0,
            failed: 0,
            retried: 0,
            failed_by: BTreeMap::new(),
            latency: Recorder::run(),
            members: Vec::new(),
            expected_since: 0.0,
            seen_clients: vec![0; (sc.traffic.clients as usize).div_ceil(64)],
            seen_uris: vec![0; (sc.traffic.uris as usize).div_ceil(64)],
            hash_base: Vec::new(),
            fault_failed: vec![0; sc.faults.len()],
            channel_requests: vec![0; sc.channels.len()],
            failover: (None, None),
            failover_failed: 0,
        }
    }

    pub(crate) fn add_member(
        &mut self,
        id: MemberId,
        spec: &BackendSpec,
        faults: Vec<(usize, f64, f64)>,
        initial: HealthState,
        now: f64,
    ) {
        self.timeline.add_member(self.windows);
        self.members.push(MemberMetrics {
            id,
            spec: spec.clone(),
            latency: Recorder::member(),
            health: vec![(now, initial)],
            expected_acc: 0.0,
            expected_now: 0.0,
            faults,
        });
    }

    pub(crate) fn arrived(&mut self, client: u32, uri: u32, channel: usize) {
        self.total += 1;
        set_bit(&mut self.seen_clients, client);
        set_bit(&mut self.seen_uris, uri);
        self.channel_requests[channel] += 1;
    }

    pub(crate) fn attempt_started(&mut self, m: u32, t: f64) {
        let w = ((t / self.step) as usize).min(self.windows - 1);
        self.timeline.count(w, m as usize);
    }

    /// A successful attempt's latency in microseconds (0 counts as 1).
    pub(crate) fn attempt_done(&mut self, m: u32, latency_us: u64) {
        self.members[m as usize].latency.record(latency_us);
    }

    pub(crate) fn attempt_failed(&mut self, m: u32, t: f64) {
        for &(f, from, until) in &self.members[m as usize].faults {
            if t >= from && t < until {
                self.fault_failed[f] += 1;
            }
        }
    }

    /// A finished request: its latency in microseconds from arrival (0 counts as 1).
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

    pub(crate) fn finish(mut self, f: Finish<'_>) -> Report {
        let shares: Vec<f64> = self.members.iter().map(|m| m.expected_now).collect();
        self.expected_from(self.duration, &shares);
        let requests: Vec<u64> = (0..self.members.len()).map(|m| self.timeline.total(m, self.windows)).collect();
        let attempts: u64 = requests.iter().sum();
        // Each member's configuration as the balancer has it at the end: (group, weight, backup).
        // `members()` counts the hash table, so it is read once per channel.
        let statuses: Vec<Vec<crate::balancer::MemberStatus>> = f.lbs.iter().map(|lb| lb.members()).collect();
        let configs: Vec<(Option<String>, u32, bool)> = f
            .backends
            .iter()
            .map(|b| {
                statuses[b.channel].iter().find(|s| s.member.id() == b.id).map_or((None, 0, false), |s| {
                    (s.member.group().map(str::to_string), s.member.weight(), s.member.is_backup())
                })
            })
            .collect();
        let members: Vec<MemberReport> = self
            .members
            .iter_mut()
            .enumerate()
            .map(|(i, m)| MemberReport {
                member: m.id.to_string(),
                group: configs[i].0.clone(),
                weight: configs[i].1,
                backup: configs[i].2,
                az: m.spec.az.clone(),
                requests: requests[i],
                share: if attempts > 0 { requests[i] as f64 / attempts as f64 } else { 0.0 },
                expected_share: m.expected_acc / self.duration,
                latency_ms: m.latency.latency(),
                peak_in_flight: f.backends[i].peak_in_flight(),
                health: m
                    .health
                    .iter()
                    .map(|&(at, s)| HealthPoint { at_s: round6(at), state: s.as_str().to_string() })
                    .collect(),
            })
            .collect();
        let fairness = Fairness::of(members.iter().map(|m| (m.share, m.expected_share)));
        let faults = f
            .scenario
            .faults
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                // The first unhealthy transition of an affected member inside the fault's
                // detection window (`FaultSpec::detection_end`).
                let detection = |m: &MemberMetrics, b: &Backend| {
                    let timeout = f.lbs[b.channel].check().map_or(0.0, |c| f64::from(c.timeout_s));
                    let end = spec.detection_end(timeout);
                    m.health
                        .iter()
                        .find(|&&(t, s)| t >= spec.at_s && t <= end && s == HealthState::Unhealthy)
                        .map(|&(t, _)| t)
                };
                let detected = self
                    .members
                    .iter()
                    .zip(f.backends)
                    .filter(|(m, _)| m.faults.iter().any(|&(fi, _, _)| fi == i))
                    .filter_map(|(m, b)| detection(m, b).map(|t| (m, t)))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                let recovered = detected.and_then(|(m, d)| {
                    m.health.iter().find(|&&(t, s)| t > d && s == HealthState::Healthy).map(|&(t, _)| t)
                });
                FaultReport {
                    member: if spec.kind == FaultKind::AzDown { None } else { spec.member.clone() },
                    az: spec.az.clone(),
                    kind: spec.kind.as_str().to_string(),
                    at_s: spec.at_s,
                    until_s: spec.until_s,
                    detected_at_s: detected.map(|d| round6(d.1)),
                    recovered_at_s: recovered.map(round6),
                    failed_requests: self.fault_failed[i],
                }
            })
            .collect();
        let (mut moved, mut back, mut buckets) = (0u64, 0u64, 0u64);
        for (m, b, n) in self.hash_base.iter().flatten().map(KeyMoves::counts) {
            moved += m;
            back += b;
            buckets += n;
        }
        let frac = |n: u64| if buckets > 0 { round6(n as f64 / buckets as f64) } else { 0.0 };
        let hash = self.strategy.is_hash().then(|| HashReport {
            keys: if self.strategy == Strategy::SourceIp {
                popcount(&self.seen_clients)
            } else {
                popcount(&self.seen_uris)
            },
            remapped_on_fault: Some(frac(moved)),
            returned_on_recovery: Some(frac(back)),
            moved_off_first_choice: moved_off_first_choice(f.lbs),
        });
        let timeline = (0..self.windows)
            .map(|w| TimelineEntry {
                t_s: round6(w as f64 * self.step),
                per_member: self
                    .members
                    .iter()
                    .enumerate()
                    .map(|(m, mm)| (mm.id.to_string(), self.timeline.at(w, m)))
                    .collect(),
            })
            .collect();
        let total_eg: u64 = self.channel_requests.iter().sum();
        let endpoint_groups = f
            .scenario
            .channels
            .iter()
            .zip(&self.channel_requests)
            .filter_map(|(c, &n)| {
                let g = c.endpoint_group.as_ref()?;
                Some(EndpointGroupReport {
                    name: g.name.clone(),
                    region_id: g.region_id.clone(),
                    traffic_dial_percentage: g.traffic_dial_percentage.unwrap_or(100).clamp(0, 100) as u32,
                    status: "ACTIVE".into(),
                    requests: n,
                    share: if total_eg > 0 { n as f64 / total_eg as f64 } else { 0.0 },
                })
            })
            .collect();
        let protection_group = f.scenario.protection_group.as_ref().map(|p| {
            let (start, done) = f.failover;
            ProtectionGroupReport {
                name: p.body.server_group.name.clone(),
                job_id: start.map(|_| job_id(f.seed, &p.body.server_group.name)),
                started_at_s: start.map(round6),
                finished_at_s: done.map(round6),
                status: match (start, done) {
                    (None, _) => "protected",
                    (Some(_), None) => "failing_over",
                    (Some(_), Some(_)) => "failed_over",
                }
                .into(),
                failed_requests: self.failover_failed,
            }
        });
        let run_latency = self.latency.histogram();
        let cdf = latency_cdf(run_latency);
        Report {
            scenario: f.scenario.name.clone(),
            strategy: self.strategy.name().to_string(),
            mode: "sim".into(),
            seed: f.seed,
            duration_s: f.duration_s,
            requests: Requests {
                total: self.total,
                ok: self.ok,
                failed: self.failed,
                retried: self.retried,
                failed_by_reason: self.failed_by.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
            latency_ms: Latency::from_micros(run_latency),
            members,
            faults,
            hash,
            fairness,
            timeline,
            endpoint_groups,
            protection_group,
            sim: Some(SimStats {
                events: f.events,
                wall_ms: f.wall_ms.map(round6),
                requests_per_s: f.wall_ms.map(|w| if w > 0.0 { (self.total as f64 / (w / 1e3)).round() } else { 0.0 }),
            }),
            balancer: f.scenario.balancer.clone(),
            latency_cdf: cdf,
        }
    }
}

/// `hash.moved_off_first_choice` over the channels' balancers; `None` when bounded-load hashing
/// is off.
pub(crate) fn moved_off_first_choice(lbs: &[Balancer]) -> Option<f64> {
    let stats: Vec<(u64, u64)> = lbs.iter().filter_map(Balancer::bounded_load_stats).collect();
    if stats.is_empty() {
        return None;
    }
    let (picks, moved) = stats.iter().fold((0, 0), |a, s| (a.0 + s.0, a.1 + s.1));
    Some(if picks > 0 { round6(moved as f64 / picks as f64) } else { 0.0 })
}

fn popcount(bits: &[u64]) -> u64 {
    bits.iter().map(|w| u64::from(w.count_ones())).sum()
}

/// A job id in SDRS's style (32 hex digits), derived from the seed and the group's name so that
/// reports stay byte-identical.
fn job_id(seed: u64, name: &str) -> String {
    let a = xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), seed);
    let b = xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), !seed);
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::Timeline;

    #[test]
    fn timeline_keeps_counts_when_members_outgrow_its_rows() {
        let windows = 3;
        let mut tl = Timeline { counts: Vec::new(), stride: 0, members: 0 };
        for m in 0..20 {
            tl.add_member(windows);
            // Member m gets m + 1 attempts in window m % 3, counted before later members join.
            for _ in 0..=m {
                tl.count(m % windows, m);
            }
        }
        assert_eq!(tl.stride, 32);
        for m in 0..20 {
            for w in 0..windows {
                assert_eq!(tl.at(w, m), if w == m % windows { m as u64 + 1 } else { 0 }, "window {w} member {m}");
            }
            assert_eq!(tl.total(m, windows), m as u64 + 1);
        }
    }
}
