//! Issue 5's options in the simulator: each example scenario against itself with the option off.

use lbsim::report::{MemberReport, Report};
use lbsim::sim::{run, RunOptions, Scenario};
use lbsim::Strategy;
use std::path::Path;

fn load(name: &str) -> Scenario {
    Scenario::load(Path::new(&format!("scenarios/{name}.toml"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn sim(sc: &Scenario, s: Strategy) -> Report {
    let mut o = RunOptions::new(s);
    o.deterministic = true;
    let r = run(sc, o).expect("run");
    assert_eq!(r.requests.total, r.requests.ok + r.requests.failed);
    r
}

fn member<'a>(r: &'a Report, m: &str) -> &'a MemberReport {
    r.members.iter().find(|x| x.member == m).unwrap_or_else(|| panic!("no member {m}"))
}

/// The member's share of the attempts in consecutive windows of `width` timeline steps from
/// step `from`.
fn window_shares(r: &Report, m: &str, from: usize, width: usize, n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|k| {
            let entries = &r.timeline[from + k * width..from + (k + 1) * width];
            let mine: u64 = entries.iter().map(|e| e.per_member[m]).sum();
            let all: u64 = entries.iter().flat_map(|e| e.per_member.values()).sum();
            (mine as f64 / all as f64, all as f64)
        })
        .collect()
}

#[test]
fn slow_start_ramps_the_recovered_member_in_the_simulator() {
    let on = load("slow_start");
    let mut off = on.clone();
    off.balancer.slow_start_s = None;
    let m = "192.168.80.13:8080";
    for s in Strategy::ALL {
        let r = sim(&on, s);
        let recovered = member(&r, m).health.iter().rev().find(|h| h.state == "healthy").unwrap().at_s;
        assert!(recovered > 60.0 && recovered < 63.0, "{s}: recovered at {recovered}");
        // Windows of slow_start_s / 10 = 3 s (three timeline steps of 1 s) from the first whole
        // step after the recovery.
        let from = recovered.ceil() as usize;
        let w = window_shares(&r, m, from, 3, 10);
        // Near the floor: 0.1 / 3.1 = 3 % at the first step, up to 7 % a few steps in. WLC sits
        // higher: in-flight counts are small integers (about 2.5 per member here), and a member
        // with none open is picked whatever its weight.
        let floor = if s == Strategy::Wlc { 0.12 } else { 0.08 };
        assert!(w[0].0 < floor, "{s}: first window near the floor: {w:?}");
        crate::support::assert_ramp_never_falls(&w, &s.to_string());
        let late = window_shares(&r, m, from + 32, 3, 5);
        assert!(late.iter().all(|x| (x.0 - 0.25).abs() < 0.04), "{s}: full share after the ramp {late:?}");
        // The same scenario without slow start: the full share in the first window.
        let r = sim(&off, s);
        let recovered = member(&r, m).health.iter().rev().find(|h| h.state == "healthy").unwrap().at_s;
        let w = window_shares(&r, m, recovered.ceil() as usize, 3, 1);
        assert!((w[0].0 - 0.25).abs() < 0.04, "{s}: no ramp when off: {w:?}");
    }
}

#[test]
fn bounded_load_caps_peak_in_flight_under_a_zipf_key_mix_in_the_simulator() {
    let on = load("bounded_load");
    assert_eq!(on.balancer.hash_balance_factor, Some(125));
    let mut off = on.clone();
    off.balancer.hash_balance_factor = None;
    let weight_share = [0.2, 0.2, 0.2, 0.4];
    for s in [Strategy::SourceIp, Strategy::UriHash] {
        // A member's in-flight count stays within 1.25 x its weighted share of the total in flight
        // (+1). The total at the moment of its peak is at most the sum of all members' peaks.
        let within = |r: &Report| {
            let sum: u64 = r.members.iter().map(|m| m.peak_in_flight).sum();
            r.members.iter().zip(weight_share).all(|(m, w)| m.peak_in_flight as f64 <= 1.25 * w * sum as f64 + 1.0)
        };
        let a = sim(&on, s);
        let moved = a.hash.as_ref().and_then(|h| h.moved_off_first_choice).unwrap();
        assert!(moved > 0.02 && moved < 0.4, "{s}: moved off first choice {moved}");
        assert!(within(&a), "{s}: {:?}", a.members.iter().map(|m| m.peak_in_flight).collect::<Vec<_>>());
        assert_eq!(a.balancer.hash_balance_factor, Some(125), "the report shows the options in force");
        let b = sim(&off, s);
        assert_eq!(b.hash.as_ref().unwrap().moved_off_first_choice, None);
        assert!(!within(&b), "{s}: the skewed mix overloads a member without the bound");
        let (fa, fb) = (a.fairness.max_over_expected.unwrap(), b.fairness.max_over_expected.unwrap());
        assert!(fa < 1.25 && fb > fa + 0.2, "{s}: max over expected {fa} with, {fb} without");
    }
}

#[test]
fn outlier_detection_ejects_a_failing_member_for_growing_times_in_the_simulator() {
    let on = load("outlier");
    let mut off = on.clone();
    off.balancer.outlier_consecutive_errors = None;
    off.balancer.outlier_failure_rate = None;
    let m = "192.168.60.13:8080";
    for s in Strategy::ALL {
        let a = sim(&on, s);
        let h = &member(&a, m).health;
        let states: Vec<&str> = h.iter().map(|p| p.state.as_str()).collect();
        assert_eq!(states, ["unknown", "ejected", "unknown", "ejected", "unknown", "ejected", "unknown"], "{s}");
        assert!(h[1].at_s >= 20.0 && h[1].at_s < 21.0, "{s}: ejected soon after the fault starts: {h:?}");
        // The n-th ejection lasts n x 10 s.
        for (k, pair) in h[1..].chunks(2).enumerate() {
            let len = pair[1].at_s - pair[0].at_s;
            assert!((len - 10.0 * (k + 1) as f64).abs() < 1e-6, "{s}: ejection {k} lasted {len}: {h:?}");
        }
        // No traffic to the member while it is ejected (whole timeline steps inside 21-29 s).
        let idle: u64 = a.timeline[21..29].iter().map(|e| e.per_member[m]).sum();
        assert_eq!(idle, 0, "{s}");
        let b = sim(&off, s);
        assert!(member(&b, m).health.len() == 1, "{s}: nothing ejects without the option");
        let (fa, fb) = (a.requests.failed, b.requests.failed);
        assert!(fb > 5000 && fa * 20 < fb, "{s}: failed {fa} with outlier detection, {fb} without");
    }
}

#[test]
fn check_intervals_and_retriable_codes_detect_and_recover_sooner_in_the_simulator() {
    let on = load("check_intervals");
    let mut off = on.clone();
    off.balancer.unhealthy_interval = None;
    off.balancer.retriable_codes = None;
    for s in [Strategy::Wrr, Strategy::SourceIp] {
        let a = sim(&on, s);
        let b = sim(&off, s);
        let (fa, fb) = (&a.faults[0], &b.faults[0]);
        let (da, db) = (fa.detected_at_s.unwrap(), fb.detected_at_s.unwrap());
        // Checks every 10 s +-10 %: a fatal 500 is caught by the first check after 20 s; three
        // ordinary failures need two more intervals.
        assert!(da > 20.0 && da <= 31.0, "{s}: detected at {da} with retriable_codes");
        assert!(db >= da + 16.0, "{s}: detected at {db} without, {da} with");
        // Recovery: three successes 1 s apart once the fault ends at 60 s.
        let (ra, rb) = (fa.recovered_at_s.unwrap(), fb.recovered_at_s.unwrap());
        assert!(ra > 60.0 && ra < 64.0, "{s}: recovered at {ra} with unhealthy_interval");
        assert!(rb > 75.0, "{s}: recovered at {rb} without");
        assert!(a.requests.failed * 2 < b.requests.failed, "{s}: fewer 500s reach clients");
    }
    // Jitter draws from the seeded probe stream: the same seed gives the same report, and the
    // jitter moves the checks (detection time differs from the unjittered run).
    let again = sim(&on, Strategy::Wrr);
    assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&sim(&on, Strategy::Wrr)).unwrap());
    let mut steady = on.clone();
    steady.balancer.interval_jitter_percent = None;
    assert_ne!(sim(&steady, Strategy::Wrr).faults[0].detected_at_s, again.faults[0].detected_at_s);
}

#[test]
fn panic_mode_spreads_traffic_over_failing_checks_instead_of_burying_the_healthy_member() {
    let on = load("panic_mode");
    let mut off = on.clone();
    off.balancer.panic_threshold = None;
    for s in [Strategy::Wrr, Strategy::Wlc, Strategy::SourceIp, Strategy::UriHash] {
        // In panic, the three members whose checks fail still take their share and answer it
        // (slowly): no request fails, and 90 % of them took 1.2 s or less.
        let r = sim(&on, s);
        assert_eq!(r.requests.failed, 0, "{s:?}: {:?}", r.requests.failed_by_reason);
        assert!(member(&r, "192.168.90.2:8080").share > 0.2, "{s:?}");
        // Without it, the one healthy member (500/s of capacity) gets all 1,500/s from the
        // detection (about 37 s) to the recovery (about 96 s): most of those requests time out.
        let r = sim(&off, s);
        let timeouts = r.requests.failed_by_reason.get("timeout").copied().unwrap_or(0);
        assert!(timeouts > 60_000, "{s:?}: {:?}", r.requests.failed_by_reason);
    }
}

#[test]
fn backup_mode_first_gives_the_first_eligible_backup_everything() {
    let first = load("backup_modes");
    let mut all = first.clone();
    all.balancer.backup_mode = Default::default();
    for s in [Strategy::Wrr, Strategy::Wlc, Strategy::SourceIp, Strategy::UriHash] {
        // About 60 s of 120 without a primary: the backups take about half of the requests.
        let r = sim(&first, s);
        let (b3, b4) = (member(&r, "192.168.70.3:8080"), member(&r, "192.168.70.4:8080"));
        assert!((b3.share - 0.49).abs() < 0.02 && b4.requests == 0, "{s:?}: {} {}", b3.share, b4.requests);
        let r = sim(&all, s);
        let (b3, b4) = (member(&r, "192.168.70.3:8080"), member(&r, "192.168.70.4:8080"));
        assert!((b3.share - 0.245).abs() < 0.02 && (b4.share - 0.245).abs() < 0.02, "{s:?}: {} {}", b3.share, b4.share);
    }
}
