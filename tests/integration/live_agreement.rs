#![cfg(feature = "live")]
//! `lbsim compare scenarios/live_quick.toml --live`: the live run agrees with the simulation.
//! Per-member shares within 2 percentage points for WRR and the hash strategies and 5 for WLC
//! (whose shares follow real latencies), and the fault's detection time within one check
//! interval; the hash strategies' `hash.keys` equal. Takes about 4 x 24 s of real time.

use std::process::Command;

#[test]
fn live_quick_agrees_with_the_simulation() {
    let out = Command::new(env!("CARGO_BIN_EXE_lbsim"))
        .args(["compare", "scenarios/live_quick.toml", "--live", "--format", "json", "--deterministic"])
        .output()
        .expect("lbsim runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 8, "sim and live for each of four strategies");
    for pair in runs.chunks(2) {
        let (sim, live) = (&pair[0], &pair[1]);
        assert_eq!((sim["mode"].as_str(), live["mode"].as_str()), (Some("sim"), Some("live")));
        let strategy = sim["strategy"].as_str().unwrap_or_default();
        let tolerance = if strategy == "wlc" { 0.05 } else { 0.02 };
        let (sm, lm) = (sim["members"].as_array().unwrap(), live["members"].as_array().unwrap());
        for (a, b) in sm.iter().zip(lm) {
            assert_eq!(a["member"], b["member"]);
            let (x, y) = (a["share"].as_f64().unwrap(), b["share"].as_f64().unwrap());
            assert!((x - y).abs() <= tolerance, "{strategy} {}: sim {x:.4} live {y:.4}", a["member"]);
        }
        let (ds, dl) = (sim["faults"][0]["detected_at_s"].as_f64(), live["faults"][0]["detected_at_s"].as_f64());
        let (ds, dl) = (ds.expect("sim detected"), dl.expect("live detected"));
        assert!((ds - dl).abs() <= 2.0, "{strategy}: detection sim {ds} live {dl} (time_interval = 2)");
        if let Some(keys) = sim["hash"]["keys"].as_u64() {
            // Both count the distinct keys their requests carried; the load generator draws the
            // simulator's arrivals, clients and URIs, so the counts are equal.
            assert_eq!(live["hash"]["keys"].as_u64(), Some(keys), "{strategy}: hash.keys sim {keys}");
        }
        let total = live["requests"]["total"].as_u64().unwrap();
        assert_eq!(total, live["requests"]["ok"].as_u64().unwrap() + live["requests"]["failed"].as_u64().unwrap());
    }
}
