//! Comparing strategies through the library: one scenario, simulated under WRR and WLC, with one
//! member three times slower than the others. The report of each run is the same value the
//! `lbsim compare` command prints; here the program reads its figures directly.
//!
//!     cargo run --release --example compare_strategies
//!
//! Needs the `sim` feature (on by default). The run is deterministic: the same scenario and seed
//! always give the same figures.

use lbsim::model::Format;
use lbsim::report::Report;
use lbsim::sim::{self, RunOptions, Scenario};
use lbsim::Strategy;
use std::error::Error;

const SCENARIO: &str = r#"
name = "slow_member"
seed = 7
duration_s = 120
[traffic]
rate_rps = 300
service_time_ms = { dist = "lognormal", median = 20, p99 = 120 }
[channel]
name = "orders"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{ host = "10.0.0.1" }, { host = "10.0.0.2" }, { host = "10.0.0.3" }]
[[backends]]
member = "10.0.0.3:8080"
speed = 3.0
"#;

fn slow_share(report: &Report) -> f64 {
    report.members.iter().find(|m| m.member == "10.0.0.3:8080").map_or(0.0, |m| m.share)
}

fn main() -> Result<(), Box<dyn Error>> {
    let scenario = Scenario::parse(SCENARIO, Format::Toml)?;
    let mut p99 = Vec::new();
    println!("strategy  requests  p99 ms  slow member's share");
    for strategy in [Strategy::Wrr, Strategy::Wlc] {
        let mut opts = RunOptions::new(strategy);
        opts.deterministic = true;
        let report = sim::run(&scenario, opts)?;
        let r99 = report.latency_ms.p99.unwrap_or(f64::NAN);
        println!(
            "{:<8}  {:>8}  {:>6.1}  {:>6.1}%",
            report.strategy,
            report.requests.total,
            r99,
            100.0 * slow_share(&report)
        );
        assert_eq!(report.requests.failed, 0);
        p99.push((r99, slow_share(&report)));
    }
    let ((wrr_p99, wrr_slow), (wlc_p99, wlc_slow)) = (p99[0], p99[1]);
    // WRR gives every member a third whatever its speed; WLC sends the slow member less (it holds
    // its requests longer), and the tail shortens.
    assert!((wrr_slow - 1.0 / 3.0).abs() < 0.01, "WRR's share of the slow member: {wrr_slow}");
    assert!(wlc_slow < wrr_slow - 0.05, "WLC moves load off the slow member: {wlc_slow} vs {wrr_slow}");
    assert!(wlc_p99 < wrr_p99, "WLC's p99 {wlc_p99} ms is below WRR's {wrr_p99} ms");
    Ok(())
}
