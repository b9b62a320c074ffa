//! `lbsim explain` agrees with what the simulator did: traced requests (before a fault, during it
//! before the checks notice, after detection, after recovery) are replayed through `explain` at
//! the moment each attempt started, under each strategy. Also: exclusion reasons at time 0 and the
//! input errors (exit 2).

use crate::support::{lbsim, s, write_file};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "lbsim failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// Three weighted primaries and a backup; .10 is down from 12 s to 24 s. No retries, so every
/// traced attempt 1 is the balancer's first pick for its request.
const FAULTY: &str = r#"name = "explain_fault"
seed = 77
duration_s = 36
[traffic]
rate_rps = 150
arrival = "poisson"
clients = 300
uris = 200
service_time_ms = { dist = "lognormal", median = 20, p99 = 150 }
request_timeout_ms = 2000
retries = 0
[channel]
name = "VPC_explain"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [
  { host = "10.9.0.10", weight = 3 },
  { host = "10.9.0.11", weight = 2 },
  { host = "10.9.0.12", weight = 1 },
  { host = "10.9.0.20", weight = 1, is_backup = true },
]
vpc_health_config = { protocol = "TCP", threshold_normal = 2, threshold_abnormal = 2, time_interval = 2, timeout = 1 }
[[faults]]
member = "10.9.0.10:8080"
kind = "down"
at_s = 12
until_s = 24
"#;

/// One traced attempt: its start in microseconds, client, URI, member.
struct Traced {
    start_us: i64,
    client: String,
    uri: String,
    member: String,
}

fn traced(line: &Value) -> Traced {
    let t_us = (line["t_s"].as_f64().expect("t_s") * 1e6).round() as i64;
    let lat_us = line["latency_ms"].as_f64().map_or(0, |l| (l * 1e3).round() as i64);
    Traced {
        start_us: t_us - lat_us,
        client: line["client"].as_str().expect("client").to_string(),
        uri: line["uri"].as_str().expect("uri").to_string(),
        member: line["member"].as_str().expect("member").to_string(),
    }
}

/// The health state of `member` at `t` according to the run report's timeline.
fn health_at(report: &Value, member: &str, t: f64) -> String {
    let m = report["members"].as_array().expect("members").iter().find(|m| m["member"] == member).expect("member");
    let mut state = String::new();
    for p in m["health"].as_array().expect("health") {
        if p["at_s"].as_f64().expect("at_s") <= t {
            state = p["state"].as_str().expect("state").to_string();
        }
    }
    state
}

#[test]
fn explain_agrees_with_traced_requests_under_every_strategy() {
    let sc = write_file("fault.toml", FAULTY);
    for strategy in ["wrr", "wlc", "sh", "uri"] {
        let trace = sc.with_file_name(format!("trace-{strategy}.jsonl"));
        let run = lbsim(&[
            "run",
            s(&sc),
            "--strategy",
            strategy,
            "--trace",
            s(&trace),
            "--format",
            "json",
            "--deterministic",
        ]);
        let report = ok_json(&run);
        let fault = &report["faults"][0];
        let detected = fault["detected_at_s"].as_f64().expect("the checks notice the fault");
        let recovered = fault["recovered_at_s"].as_f64().expect("the member recovers");
        assert!(detected > 12.0 && detected < 16.0 && recovered > 24.0, "{fault}");
        let lines: Vec<Value> = std::fs::read_to_string(&trace)
            .expect("trace")
            .lines()
            .map(|l| serde_json::from_str(l).expect("trace line"))
            .filter(|l: &Value| l["attempt"] == 1 && l["member"].is_string())
            .collect();
        let first_after = |t: f64| {
            lines
                .iter()
                .map(traced)
                .filter(|x| x.start_us as f64 / 1e6 >= t)
                .min_by_key(|x| x.start_us)
                .expect("a traced attempt after t")
        };
        // Before the fault, during it before detection, after detection, after recovery; and a
        // few more spread over the run.
        let times = [3.0, 12.0, detected + 0.5, recovered + 1.0, 7.7, 19.3, 30.1];
        for (k, &t) in times.iter().enumerate() {
            let x = first_after(t);
            let at = format!("{}", x.start_us as f64 / 1e6);
            let ex = ok_json(&lbsim(&[
                "explain",
                s(&sc),
                "--client",
                &x.client,
                "--uri",
                &x.uri,
                "--at",
                &at,
                "--strategy",
                strategy,
                "--format",
                "json",
            ]));
            let ch = &ex["channels"][0];
            let ctx = format!("{strategy} at {at}: traced {}, explain {}", x.member, ch["decision"]);
            // The same member: hash strategies by key; WRR and WLC because the state (schedule
            // position, in-flight counts) is the one the traced request found.
            assert_eq!(ch["decision"]["member"], x.member.as_str(), "{ctx}");
            let members = ch["members"].as_array().expect("members");
            let me = members.iter().find(|m| m["member"] == x.member.as_str()).expect("traced member listed");
            assert_eq!(me["eligible"], true, "{ctx}");
            if strategy == "sh" || strategy == "uri" {
                assert_eq!(ch["preference"][0], x.member.as_str(), "{ctx}");
                assert_eq!(ch["decision"]["basis"], "hash");
            } else {
                assert_eq!(ch["preference"], serde_json::json!([]), "{ctx}");
                assert_eq!(ch["decision"]["basis"], if strategy == "wrr" { "schedule" } else { "least_loaded" });
            }
            // Exclusions agree with the run's health timeline at that moment.
            let at_s = x.start_us as f64 / 1e6;
            for m in members {
                let id = m["member"].as_str().expect("id");
                let unhealthy = health_at(&report, id, at_s) == "unhealthy";
                let codes: Vec<&str> = m["excluded_by"]
                    .as_array()
                    .expect("reasons")
                    .iter()
                    .map(|r| r["code"].as_str().unwrap_or(""))
                    .collect();
                assert_eq!(codes.contains(&"unhealthy"), unhealthy, "{ctx}: {id} {codes:?}");
                let backup = m["backup"] == true;
                assert_eq!(codes.contains(&"backup_held_back"), backup, "{ctx}: {id} {codes:?}");
                assert_eq!(m["eligible"], codes.is_empty(), "{ctx}: {id}");
            }
            let faulty = members.iter().find(|m| m["member"] == "10.9.0.10:8080").expect("faulty member");
            match k {
                // During the fault, before the checks notice: still eligible, the fault noted.
                1 => {
                    assert_eq!(faulty["eligible"], true, "{ctx}");
                    let notes = faulty["notes"][0].as_str().unwrap_or("");
                    assert!(notes.contains("fault `down`") && notes.contains("not detected"), "{ctx}: {notes}");
                }
                // After detection: excluded, unhealthy since the detection the report gives.
                2 => {
                    assert_eq!(faulty["excluded_by"][0]["code"], "unhealthy", "{ctx}");
                    assert_eq!(faulty["health_since_s"].as_f64(), Some(detected), "{ctx}");
                    assert_ne!(x.member, "10.9.0.10:8080");
                }
                3 => assert_eq!(faulty["eligible"], true, "{ctx}"),
                _ => {}
            }
        }
    }
}

#[test]
fn explain_names_each_exclusion_at_time_zero() {
    let text = FAULTY
        .replace(r#"{ host = "10.9.0.11", weight = 2 }"#, r#"{ host = "10.9.0.11", weight = 2, status = 2 }"#)
        .replace(r#"{ host = "10.9.0.12", weight = 1 }"#, r#"{ host = "10.9.0.12", weight = 0 }"#);
    let sc = write_file("reasons.toml", &text);
    let ex = ok_json(&lbsim(&["explain", s(&sc), "--client", "192.0.2.1", "--uri", "/a", "--format", "json"]));
    let ch = &ex["channels"][0];
    let codes: Vec<Value> =
        ch["members"].as_array().expect("members").iter().map(|m| m["excluded_by"][0]["code"].clone()).collect();
    assert_eq!(codes, vec![Value::Null, "disabled".into(), "weight_0".into(), "backup_held_back".into()]);
    assert_eq!(ch["tier"], "primary");
    // Only one member is eligible: every strategy picks it.
    for strategy in ["wrr", "wlc", "sh", "uri"] {
        let ex = ok_json(&lbsim(&[
            "explain",
            s(&sc),
            "--client",
            "192.0.2.1",
            "--uri",
            "/a",
            "--strategy",
            strategy,
            "--format",
            "json",
        ]));
        assert_eq!(ex["channels"][0]["decision"]["member"], "10.9.0.10:8080", "{strategy}");
    }
    let table = lbsim(&["explain", s(&sc), "--client", "192.0.2.1", "--uri", "/a"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    assert!(text.contains("disabled: status 2") && text.contains("decision: 10.9.0.10:8080 (schedule)"), "{text}");
}

#[test]
fn explain_rejects_bad_input_with_exit_2() {
    let sc = write_file("bad.toml", FAULTY);
    for (args, needle) in [
        (vec!["--client", "not-an-ip", "--uri", "/a"], "--client"),
        (vec!["--client", "192.0.2.1", "--uri", "/a", "--at", "99"], "--at must be within 0-36"),
        (vec!["--client", "192.0.2.1", "--uri", "/a", "--at=-1"], "--at must be"),
        (vec!["--client", "192.0.2.1", "--uri", "/a", "--strategy", "rr"], "not a strategy"),
        (vec!["--uri", "/a"], "--client"),
    ] {
        let mut all = vec!["explain", s(&sc)];
        all.extend(args.iter().copied());
        let o = lbsim(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let o = lbsim(&["explain", "no/such/file.toml", "--client", "192.0.2.1", "--uri", "/a"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The options' states: a member ejected by outlier detection is excluded as `ejected` since the
/// report's ejection time, and a member ramping under slow start carries its weight fraction
/// (recovered at 60.713076 s, 30 s ramp in 20 steps of 1.5 s: 6 steps done at 70 s, 0.1 + 0.9 x
/// 6 / 20 = 37%) and its share of 0.37 / 3.37.
#[test]
fn explain_names_ejected_and_slow_starting_members() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let outlier = root.join("outlier.toml");
    let args = ["--client", "192.0.2.1", "--uri", "/a", "--strategy", "wrr", "--format", "json"];
    let run = ok_json(&lbsim(&["run", s(&outlier), "--strategy", "wrr", "--format", "json", "--deterministic"]));
    let run = run.get("runs").map_or(&run, |r| &r[0]);
    let member = run["members"].as_array().expect("members").iter().find(|m| m["member"] == "192.168.60.13:8080");
    let health = member.expect("the failing member")["health"].as_array().expect("health timeline").clone();
    let ejected_at = health.iter().find(|h| h["state"] == "ejected").expect("an ejection")["at_s"].clone();
    let mut argv = vec!["explain", s(&outlier), "--at", "25"];
    argv.extend(args);
    let ex = ok_json(&lbsim(&argv));
    let m13 = &ex["channels"][0]["members"][3];
    assert_eq!(m13["member"], "192.168.60.13:8080");
    assert_eq!(m13["excluded_by"][0]["code"], "ejected", "{m13}");
    assert_eq!(m13["health_since_s"], ejected_at);

    let slow = root.join("slow_start.toml");
    let mut argv = vec!["explain", s(&slow), "--at", "70"];
    argv.extend(args);
    let ex = ok_json(&lbsim(&argv));
    let m13 = &ex["channels"][0]["members"][3];
    assert_eq!(m13["member"], "192.168.80.13:8080");
    assert_eq!(m13["eligible"], true);
    assert_eq!(m13["notes"][0], "slow start: at 37% of its weight", "{m13}");
    let share = m13["expected_share"].as_f64().expect("share");
    assert!((share - 0.37 / 3.37).abs() < 1e-6, "{share}");
}
