//! The report of a run, assembled in one place from the figures that both the simulator and
//! live mode measure ([`RunFigures`]): what each mode counts differs (virtual time and simulated
//! backends, or a proxy's counters and a load generator's), what the report says about those
//! counts does not.

use super::scenario::{FaultKind, FaultSpec, Scenario};
use crate::balancer::{MemberId, MemberStatus, Strategy};
use crate::health::HealthState;
use crate::report::*;
use crate::Balancer;
use hdrhistogram::Histogram;

/// What one member did over a run.
pub(crate) struct MemberRun {
    pub id: MemberId,
    /// The channel (GA: endpoint group) whose balancer has it.
    pub channel: usize,
    /// Attempts sent to it.
    pub attempts: u64,
    pub latency: Latency,
    pub peak_in_flight: u64,
    /// Health transitions in seconds since the start (unrounded), starting with the initial
    /// state.
    pub health: Vec<(f64, HealthState)>,
    /// Its expected share, averaged over the run.
    pub expected_share: f64,
}

/// What a run measured, in either mode.
pub(crate) struct RunFigures<'a> {
    /// `sim` or `live`.
    pub mode: &'static str,
    pub strategy: Strategy,
    pub seed: u64,
    pub duration_s: f64,
    pub requests: Requests,
    /// Latency of the requests that succeeded, in microseconds.
    pub latency: Option<&'a Histogram<u64>>,
    pub members: Vec<MemberRun>,
    /// Timeline windows, and the attempts started in one window on one member (window, member
    /// index in `members`).
    pub windows: usize,
    pub timeline: &'a dyn Fn(usize, usize) -> u64,
    /// Per fault of the scenario: the failed attempts it caused.
    pub fault_failed: Vec<u64>,
    /// Hash strategies: distinct keys (client addresses or URIs) the run's requests carried.
    pub hash_keys: u64,
    /// Buckets of the channels' key spaces that ever left their first owner, those back with it
    /// at the end, and all buckets.
    pub key_moves: (u64, u64, u64),
    /// Requests per channel (GA: per endpoint group).
    pub channel_requests: Vec<u64>,
    /// SDRS: when the failover started and completed, and the requests that failed in between.
    pub failover: (Option<f64>, Option<f64>),
    pub failover_failed: u64,
    /// The simulator's own figures; `None` live.
    pub sim: Option<SimStats>,
}

/// The run's report. `lbs` are the run's balancers at its end, one per channel.
pub(crate) fn assemble(sc: &Scenario, lbs: &[Balancer], f: RunFigures<'_>) -> Report {
    let members = members(sc, lbs, &f);
    let fairness = Fairness::of(members.iter().map(|m| (m.share, m.expected_share)));
    let faults = sc.faults.iter().enumerate().map(|(i, spec)| fault(sc, lbs, &f, i, spec)).collect();
    let hash = hash(&f, lbs);
    let timeline = timeline(sc, &f);
    let endpoint_groups = endpoint_groups(sc, &f);
    let protection_group = protection_group(sc, &f);
    let latency_ms = f.latency.map(Latency::from_micros).unwrap_or_default();
    let latency_cdf = f.latency.map(latency_cdf).unwrap_or_default();
    Report {
        scenario: sc.name.clone(),
        strategy: f.strategy.name().to_string(),
        mode: f.mode.into(),
        seed: f.seed,
        duration_s: f.duration_s,
        requests: f.requests,
        latency_ms,
        members,
        faults,
        hash,
        fairness,
        timeline,
        endpoint_groups,
        protection_group,
        sim: f.sim,
        balancer: sc.balancer.clone(),
        latency_cdf,
    }
}

/// Each member with its configuration as its balancer has it at the end (group, weight, backup).
fn members(sc: &Scenario, lbs: &[Balancer], f: &RunFigures<'_>) -> Vec<MemberReport> {
    let attempts: u64 = f.members.iter().map(|m| m.attempts).sum();
    // `members()` counts the hash table, so it is read once per channel.
    let statuses: Vec<Vec<MemberStatus>> = lbs.iter().map(Balancer::members).collect();
    f.members
        .iter()
        .map(|m| {
            let st = statuses.get(m.channel).and_then(|s| s.iter().find(|s| s.member.id() == m.id));
            MemberReport {
                member: m.id.to_string(),
                group: st.and_then(|s| s.member.group().map(str::to_string)),
                weight: st.map_or(0, |s| s.member.weight()),
                backup: st.is_some_and(|s| s.member.is_backup()),
                az: sc.plan().az_of(m.id).map(str::to_string),
                requests: m.attempts,
                share: if attempts > 0 { m.attempts as f64 / attempts as f64 } else { 0.0 },
                expected_share: m.expected_share,
                latency_ms: m.latency.clone(),
                peak_in_flight: m.peak_in_flight,
                health: m
                    .health
                    .iter()
                    .map(|&(at, s)| HealthPoint { at_s: round6(at), state: s.as_str().to_string() })
                    .collect(),
            }
        })
        .collect()
}

/// Fault `i`: when a check first turned a member it hits unhealthy inside its detection window
/// ([`FaultSpec::detection_end`]), and when that member turned healthy again.
fn fault(sc: &Scenario, lbs: &[Balancer], f: &RunFigures<'_>, i: usize, spec: &FaultSpec) -> FaultReport {
    let plan = sc.plan();
    let detection = |m: &MemberRun| {
        let timeout = lbs.get(m.channel).and_then(Balancer::check).map_or(0.0, |c| f64::from(c.timeout_s));
        let end = spec.detection_end(timeout);
        m.health.iter().find(|&&(t, s)| t >= spec.at_s && t <= end && s == HealthState::Unhealthy).map(|&(t, _)| t)
    };
    let detected = f
        .members
        .iter()
        .filter(|m| plan.hits(i, m.id))
        .filter_map(|m| detection(m).map(|t| (m, t)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let recovered = detected
        .and_then(|(m, d)| m.health.iter().find(|&&(t, s)| t > d && s == HealthState::Healthy).map(|&(t, _)| t));
    FaultReport {
        member: if spec.kind == FaultKind::AzDown { None } else { spec.member.clone() },
        az: spec.az.clone(),
        kind: spec.kind.as_str().to_string(),
        at_s: spec.at_s,
        until_s: spec.until_s,
        detected_at_s: detected.map(|d| round6(d.1)),
        recovered_at_s: recovered.map(round6),
        failed_requests: f.fault_failed.get(i).copied().unwrap_or(0),
    }
}

fn hash(f: &RunFigures<'_>, lbs: &[Balancer]) -> Option<HashReport> {
    let (moved, back, buckets) = f.key_moves;
    let frac = |n: u64| if buckets > 0 { round6(n as f64 / buckets as f64) } else { 0.0 };
    f.strategy.is_hash().then(|| HashReport {
        keys: f.hash_keys,
        remapped_on_fault: Some(frac(moved)),
        returned_on_recovery: Some(frac(back)),
        moved_off_first_choice: moved_off_first_choice(lbs),
    })
}

/// `hash.moved_off_first_choice` over the channels' balancers; `None` when bounded-load hashing
/// is off.
fn moved_off_first_choice(lbs: &[Balancer]) -> Option<f64> {
    let stats: Vec<(u64, u64)> = lbs.iter().filter_map(Balancer::bounded_load_stats).collect();
    if stats.is_empty() {
        return None;
    }
    let (picks, moved) = stats.iter().fold((0, 0), |a, s| (a.0 + s.0, a.1 + s.1));
    Some(if picks > 0 { round6(moved as f64 / picks as f64) } else { 0.0 })
}

fn timeline(sc: &Scenario, f: &RunFigures<'_>) -> Vec<TimelineEntry> {
    (0..f.windows)
        .map(|w| TimelineEntry {
            t_s: round6(w as f64 * sc.timeline_step_s),
            per_member: f.members.iter().enumerate().map(|(m, mm)| (mm.id.to_string(), (f.timeline)(w, m))).collect(),
        })
        .collect()
}

fn endpoint_groups(sc: &Scenario, f: &RunFigures<'_>) -> Vec<EndpointGroupReport> {
    let total: u64 = f.channel_requests.iter().sum();
    sc.channels
        .iter()
        .zip(&f.channel_requests)
        .zip(sc.plan().channels())
        .filter_map(|((c, &n), cp)| {
            let g = c.endpoint_group.as_ref()?;
            Some(EndpointGroupReport {
                name: g.name.clone(),
                region_id: g.region_id.clone(),
                traffic_dial_percentage: cp.dial,
                status: "ACTIVE".into(),
                requests: n,
                share: if total > 0 { n as f64 / total as f64 } else { 0.0 },
            })
        })
        .collect()
}

fn protection_group(sc: &Scenario, f: &RunFigures<'_>) -> Option<ProtectionGroupReport> {
    let p = sc.protection_group.as_ref()?;
    let (start, done) = f.failover;
    Some(ProtectionGroupReport {
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
        failed_requests: f.failover_failed,
    })
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
    use super::*;
    use crate::model::Format;

    fn scenario() -> Scenario {
        Scenario::parse(
            r#"
            name = "assemble"
            duration_s = 10
            timeline_step_s = 5
            [channel]
            name = "assemble_test"
            port = 80
            balance_strategy = 1
            member_type = "ip"
            instance_ids = ["eea73cde015940908ae0117d67bf7330"]
            members = [{ host = "10.0.0.1", weight = 3 }, { host = "10.0.0.2", weight = 1 }]
            vpc_health_config = { protocol = "TCP", threshold_normal = 1, threshold_abnormal = 1, time_interval = 2, timeout = 1 }
            [[backends]]
            member = "10.0.0.2:80"
            az = "az1"
            [[faults]]
            member = "10.0.0.2:80"
            kind = "down"
            at_s = 2
            until_s = 4
            "#,
            Format::Toml,
        )
        .expect("valid scenario")
    }

    fn member(host: &str, attempts: u64, health: Vec<(f64, HealthState)>, expected_share: f64) -> MemberRun {
        MemberRun {
            id: MemberId::new(host, 80),
            channel: 0,
            attempts,
            latency: Latency::default(),
            peak_in_flight: 1,
            health,
            expected_share,
        }
    }

    #[test]
    fn a_runs_figures_become_its_report() {
        let sc = scenario();
        let lb = Balancer::builder(&sc.channels[0].channel).strategy(Strategy::SourceIp).build().expect("balancer");
        let counts = [[10, 2], [20, 0]];
        let figures = RunFigures {
            mode: "live",
            strategy: Strategy::SourceIp,
            seed: 7,
            duration_s: 10.0,
            requests: Requests { total: 32, ok: 30, failed: 2, ..Requests::default() },
            latency: None,
            members: vec![
                member("10.0.0.1", 30, vec![(0.0, HealthState::Healthy)], 0.8),
                member(
                    "10.0.0.2",
                    2,
                    vec![
                        (0.0, HealthState::Healthy),
                        // Before the fault: not its detection.
                        (1.5, HealthState::Unhealthy),
                        (1.8, HealthState::Healthy),
                        (2.000_000_4, HealthState::Unhealthy),
                        (4.5, HealthState::Healthy),
                    ],
                    0.2,
                ),
            ],
            windows: 2,
            timeline: &|w, m| counts[w][m],
            fault_failed: vec![2],
            hash_keys: 25,
            key_moves: (10, 5, 40),
            channel_requests: vec![32],
            failover: (None, None),
            failover_failed: 0,
            sim: None,
        };
        let r = assemble(&sc, std::slice::from_ref(&lb), figures);
        assert_eq!((r.mode.as_str(), r.strategy.as_str(), r.seed), ("live", "sh", 7));
        let shares: Vec<f64> = r.members.iter().map(|m| m.share).collect();
        assert_eq!(shares, [30.0 / 32.0, 2.0 / 32.0]);
        assert_eq!((r.members[0].weight, r.members[1].weight), (3, 1));
        assert_eq!((r.members[0].az.as_deref(), r.members[1].az.as_deref()), (None, Some("az1")));
        assert_eq!(r.members[1].health[3].at_s, 2.0);
        let f = &r.faults[0];
        assert_eq!((f.detected_at_s, f.recovered_at_s, f.failed_requests), (Some(2.0), Some(4.5), 2));
        let h = r.hash.expect("a hash strategy reports hash figures");
        assert_eq!((h.keys, h.remapped_on_fault, h.returned_on_recovery), (25, Some(0.25), Some(0.125)));
        let tl: Vec<Vec<u64>> = r.timeline.iter().map(|e| e.per_member.values().copied().collect()).collect();
        assert_eq!(tl, [[10, 2], [20, 0]]);
        assert_eq!((r.timeline[1].t_s, r.endpoint_groups.len(), r.protection_group.is_none()), (5.0, 0, true));
        assert!(r.fairness.jain.is_some() && r.sim.is_none() && r.latency_ms == Latency::default());
    }
}
