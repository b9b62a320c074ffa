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
        for k in 1..w.len() {
            let (p, n) = w[k - 1];
            let sd = (p * (1.0 - p) / n).sqrt();
            assert!(w[k].0 >= p - 2.0 * sd, "{s}: window {k} fell: {w:?}");
        }
        let late = window_shares(&r, m, from + 32, 3, 5);
        assert!(late.iter().all(|x| (x.0 - 0.25).abs() < 0.04), "{s}: full share after the ramp {late:?}");
        // The same scenario without slow start: the full share in the first window.
        let r = sim(&off, s);
        let recovered = member(&r, m).health.iter().rev().find(|h| h.state == "healthy").unwrap().at_s;
        let w = window_shares(&r, m, recovered.ceil() as usize, 3, 1);
        assert!((w[0].0 - 0.25).abs() < 0.04, "{s}: no ramp when off: {w:?}");
    }
}
