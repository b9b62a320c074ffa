//! `lbsim sweep`: each variant equals a single `lbsim run` of the scenario file with the values
//! written in, byte for byte; the output does not depend on the number of threads; grids are in
//! the documented order; the crossover of `scenarios/sweep_wlc_vs_wrr.toml`; errors for bad
//! `--vary` and `--metrics` (exit 2, with the path and the LBSIM code).

use crate::support::{json, lbsim, ok, s, temp_dir};
use serde_json::Value;
use std::path::Path;

const SCENARIO: &str = "scenarios/sweep_wlc_vs_wrr.toml";

fn scenario_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCENARIO)).expect("scenario")
}

#[test]
fn each_variant_is_byte_for_byte_a_single_run_of_the_substituted_file() {
    let dir = temp_dir("bytes");
    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).expect("runs dir");
    let out = lbsim(&[
        "sweep",
        SCENARIO,
        "--vary",
        "traffic.rate_rps=150,550",
        "--vary",
        "backends[2].speed=2,4",
        "--strategy",
        "wrr,wlc",
        "--format",
        "json",
        "--runs-dir",
        s(&runs),
    ]);
    let sweep = json(&out);
    let variants = sweep["variants"].as_array().expect("variants");
    assert_eq!(variants.len(), 8, "2 x 2 variants x 2 strategies");
    let text = scenario_text();
    assert!(text.contains("rate_rps = 300\n") && text.contains("speed = 4.0\n"));
    for v in variants {
        let (k, strategy) = (v["index"].as_u64().expect("index"), v["strategy"].as_str().expect("strategy"));
        let rate = &v["params"]["traffic.rate_rps"];
        let speed = &v["params"]["backends[2].speed"];
        let file = dir.join(format!("v{k}.toml"));
        let substituted = text
            .replace("rate_rps = 300\n", &format!("rate_rps = {rate}\n"))
            .replace("speed = 4.0\n", &format!("speed = {speed}\n"));
        std::fs::write(&file, substituted).expect("write variant");
        let single = lbsim(&["run", s(&file), "--strategy", strategy, "--format", "json", "--deterministic"]);
        let written = std::fs::read(runs.join(format!("variant-{k:03}-{strategy}.json"))).expect("variant file");
        assert_eq!(ok(&single), written.as_slice(), "variant {k} {strategy}: --runs-dir file differs from `run`");
        let parsed: Value = serde_json::from_slice(&written).expect("variant JSON");
        assert_eq!(v["report"], parsed, "variant {k} {strategy}: the sweep's report differs from `run`");
        assert_eq!(v["metrics"]["p99"], parsed["latency_ms"]["p99"]);
        assert_eq!(v["metrics"]["failed"].as_f64(), parsed["requests"]["failed"].as_f64());
    }
}

#[test]
fn output_is_the_same_with_one_thread_or_many_and_grids_are_ordered() {
    let args = |jobs: &'static str, format: &'static str| {
        vec![
            "sweep",
            SCENARIO,
            "--vary",
            "traffic.rate_rps=100..500:3",
            "--vary",
            "backends[2].speed=1,4",
            "--jobs",
            jobs,
            "--format",
            format,
            "--metrics",
            "p50,p99,failed,jain",
        ]
    };
    let one = lbsim(&args("1", "json"));
    let four = lbsim(&args("4", "json"));
    assert_eq!(ok(&one), ok(&four), "thread count changed the sweep");
    let sweep = json(&one);
    // First axis outermost, the last one fastest; each variant under each of the scenario's
    // strategies (wrr, wlc) in turn.
    let order: Vec<(f64, f64, String)> = sweep["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| {
            (
                v["params"]["traffic.rate_rps"].as_f64().expect("rate"),
                v["params"]["backends[2].speed"].as_f64().expect("speed"),
                v["strategy"].as_str().expect("strategy").to_string(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for rate in [100.0, 300.0, 500.0] {
        for speed in [1.0, 4.0] {
            for st in ["wrr", "wlc"] {
                expected.push((rate, speed, st.to_string()));
            }
        }
    }
    assert_eq!(order, expected);
    assert_eq!(sweep["axes"][0]["values"], serde_json::json!([100, 300, 500]));
    // Two lines along the first axis (speed 1 and 4), one crossover entry per metric and line.
    assert_eq!(sweep["crossovers"].as_array().expect("crossovers").len(), 4 * 2);
    let csv = String::from_utf8(ok(&lbsim(&args("2", "csv"))).to_vec()).expect("utf-8");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "traffic.rate_rps,backends[2].speed,strategy,p50,p99,failed,jain");
    assert_eq!(lines.len(), 1 + 12);
    assert!(lines[1].starts_with("100,1,wrr,") && lines[12].starts_with("500,4,wlc,"), "{csv}");
}

#[test]
fn the_sweep_scenario_shows_wlc_overtaking_wrr_and_charts_it() {
    let dir = temp_dir("cross");
    let html = dir.join("sweep.html");
    let out =
        lbsim(&["sweep", SCENARIO, "--vary", "traffic.rate_rps=100..800:8", "--format", "json", "--html", s(&html)]);
    let sweep = json(&out);
    let failed = sweep["crossovers"]
        .as_array()
        .expect("crossovers")
        .iter()
        .find(|c| c["metric"] == "failed")
        .expect("a crossover entry for failed");
    let points = failed["points"].as_array().expect("points");
    assert_eq!(points.len(), 8);
    // At 100 rps neither fails a request; at 800 rps WRR overloads the slow member and WLC does not.
    assert_eq!((points[0][1].as_f64(), points[0][2].as_f64()), (Some(0.0), Some(0.0)));
    assert!(points[7][1].as_f64().expect("wrr") > 1000.0 && points[7][2].as_f64() == Some(0.0), "{failed}");
    let from = failed["wlc_better_from"].as_f64().expect("WLC overtakes WRR");
    assert!(from > 100.0 && from < 800.0, "{failed}");
    // From there on WLC fails fewer at every point, and before it not.
    for p in points {
        let (x, wrr, wlc) = (p[0].as_f64().expect("x"), p[1].as_f64().expect("wrr"), p[2].as_f64().expect("wlc"));
        assert_eq!(wlc < wrr, x >= from, "{p}");
    }
    assert!(failed["summary"].as_str().expect("summary").contains(&format!("traffic.rate_rps = {from}")));
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("where WLC overtakes WRR"));
    // One chart per default metric (p99, failed, max_over_expected), one line per strategy.
    assert_eq!(page.matches("<svg").count(), 3);
    assert_eq!(page.matches("<polyline").count(), 6);
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    let table = String::from_utf8(ok(&lbsim(&["sweep", SCENARIO, "--vary", "traffic.rate_rps=100..800:8"])).to_vec())
        .expect("utf-8");
    assert!(table.contains("failed: WLC better than WRR from traffic.rate_rps ="), "{table}");
}

#[test]
fn bad_vary_and_metrics_are_input_errors_naming_the_path() {
    for (vary, needle) in [
        ("traffic.rate_rsp=1,2", "LBSIM.1003: traffic.rate_rsp: unknown field"),
        ("backends[9].speed=1,2", "LBSIM.1006: backends[9]: the list has 3 element(s)"),
        ("traffic.arrival=1,2", "LBSIM.1002: traffic.arrival: is not a numeric field"),
        ("traffic.rate_rps=1..2", "LBSIM.1004: traffic.rate_rps:"),
        ("traffic.rate_rps=1..9:1", "LBSIM.1002: traffic.rate_rps: a range takes 2-1000 points"),
        ("traffic.rate_rps=-5,10", "LBSIM.1002: traffic.rate_rps: must be above 0, got -5"),
        ("traffic.clients=1.5,2", "LBSIM.1004: traffic.clients:"),
        ("rate=1,2", "LBSIM.1003: rate: unknown field"),
        ("traffic.rate_rps", "FIELD=FROM..TO:POINTS"),
    ] {
        let o = lbsim(&["sweep", SCENARIO, "--vary", vary]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{vary}: {err}");
        assert!(err.contains(needle), "{vary}: {err}");
        assert!(o.stdout.is_empty(), "{vary}: nothing on stdout");
    }
    for args in [
        vec!["sweep", SCENARIO, "--vary", "traffic.rate_rps=1,2", "--metrics", "p99,p98"],
        vec!["sweep", SCENARIO, "--vary", "traffic.rate_rps=1,2", "--vary", "traffic.rate_rps=3,4"],
        vec![
            "sweep",
            SCENARIO,
            "--vary",
            "traffic.rate_rps=1..2:100",
            "--vary",
            "traffic.clients=1..100:100",
            "--vary",
            "traffic.uris=1..100:2",
        ],
        vec!["sweep", SCENARIO],
        vec!["sweep", "no/such/file.toml", "--vary", "traffic.rate_rps=1,2"],
    ] {
        let o = lbsim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}
