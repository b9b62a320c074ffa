//! The command line as a user drives it (architecture.md §5-§7): the example scenarios, determinism,
//! input errors (exit 2, with the file, the field path, the problem and its code), the output
//! formats, the trace, and the flags.

use crate::support::{json, lbsim, s, stderr, stdout, temp_dir, write_file, TOP_KEYS};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A valid scenario with one channel of three members; `extra` is appended.
fn scenario(extra: &str) -> String {
    format!(
        r#"name = "cli"
seed = 11
duration_s = 20
[traffic]
rate_rps = 200
arrival = "constant"
clients = 500
uris = 500
service_time_ms = {{ dist = "fixed", value = 2 }}
[channel]
name = "VPC_cli"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [
  {{ host = "192.168.0.1", weight = 2 }},
  {{ host = "192.168.0.2", weight = 1 }},
  {{ host = "192.168.0.3", weight = 1 }},
]
{extra}
"#
    )
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "json")))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// The example scenarios

#[test]
fn every_example_scenario_validates() {
    let files = scenario_files();
    assert!(files.len() >= 9, "expected the example scenarios, found {files:?}");
    for f in files {
        let o = lbsim(&["validate", s(&f)]);
        assert!(o.status.success(), "{}: exit {:?}\n{}", f.display(), o.status.code(), stderr(&o));
        assert!(stdout(&o).contains(": ok"), "{}: {}", f.display(), stdout(&o));
    }
}

#[test]
fn every_example_scenario_runs_and_reports_every_key() {
    for f in scenario_files() {
        let o = lbsim(&["run", s(&f), "--duration", "10", "--format", "json", "--deterministic"]);
        assert_eq!(o.status.code(), Some(0), "{}: {}", f.display(), stderr(&o));
        let r = json(&o);
        for k in TOP_KEYS {
            assert!(r.get(k).is_some(), "{}: key `{k}` missing", f.display());
        }
        assert_eq!(r["mode"], "sim");
        assert_eq!(r["duration_s"].as_f64(), Some(10.0));
        let req = &r["requests"];
        let (total, ok, failed) = (req["total"].as_u64(), req["ok"].as_u64(), req["failed"].as_u64());
        assert_eq!(total, Some(ok.unwrap() + failed.unwrap()), "{}: total = ok + failed", f.display());
        assert!(r["sim"].get("wall_ms").is_none(), "{}: --deterministic keeps wall_ms out", f.display());
    }
}

#[test]
fn json_scenario_runs_like_toml() {
    let o = lbsim(&["compare", "scenarios/vpc_channel.json", "--format", "json", "--deterministic"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let runs = r["runs"].as_array().expect("runs");
    let names: Vec<&str> = runs.iter().map(|r| r["strategy"].as_str().unwrap()).collect();
    assert_eq!(names, ["wrr", "sh"], "the file's `strategies`");
    assert_eq!(runs[0]["scenario"], "vpc_channel_json");
}

// ---------------------------------------------------------------------------------------------
// Determinism

#[test]
fn deterministic_compare_is_byte_identical() {
    let args = ["compare", "scenarios/quickstart.toml", "--format", "json", "--deterministic"];
    let a = lbsim(&args);
    let b = lbsim(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(!a.stdout.is_empty());
    assert!(a.stdout == b.stdout, "two runs of the same scenario and seed differ");
    assert!(!stdout(&a).contains("wall_ms"));
}

#[test]
fn without_deterministic_wall_clock_figures_are_present() {
    let o = lbsim(&["run", "scenarios/quickstart.toml", "--duration", "5", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    assert!(r["sim"]["wall_ms"].is_number(), "sim: {}", r["sim"]);
    assert!(r["sim"]["requests_per_s"].is_number(), "sim: {}", r["sim"]);
}

#[test]
fn seed_flag_changes_the_result() {
    let run = |seed: &str| {
        let o = lbsim(&[
            "run",
            "scenarios/quickstart.toml",
            "--duration",
            "10",
            "--format",
            "json",
            "--deterministic",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        json(&o)
    };
    let (a, b) = (run("1"), run("2"));
    assert_eq!(a["seed"], 1);
    assert_eq!(b["seed"], 2);
    assert_ne!(a["requests"], b["requests"], "poisson arrivals differ with the seed");
    assert_eq!(run("1"), a, "the same seed gives the same report");
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, and stderr names the file, the field path, the problem and the code.

fn expect_invalid(path: &Path, needles: &[&str]) -> String {
    let o = lbsim(&["validate", s(path)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr:\n{err}");
    assert!(o.stdout.is_empty(), "nothing on stdout: {}", stdout(&o));
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(file), "stderr names the file `{file}`:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr mentions `{n}`:\n{err}");
    }
    // `run` refuses the same file the same way.
    let r = lbsim(&["run", s(path), "--format", "json"]);
    assert_eq!(r.status.code(), Some(2), "run: {}", stderr(&r));
    assert!(r.stdout.is_empty());
    err
}

#[test]
fn unknown_field_in_traffic() {
    let p = write_file("unknown_traffic.toml", &scenario("").replace("rate_rps = 200", "rate_rpz = 200"));
    expect_invalid(&p, &["LBSIM.1003", "traffic.rate_rpz", "unknown field"]);
}

#[test]
fn unknown_field_in_channel() {
    let p = write_file("unknown_channel.toml", &scenario("").replace("port = 8080", "port = 8080\nbalance = 2"));
    expect_invalid(&p, &["APIG.2004", "channel.balance", "unknown field"]);
}

#[test]
fn unknown_field_in_a_member() {
    let p = write_file(
        "unknown_member.toml",
        &scenario("").replace(r#"host = "192.168.0.2", weight = 1"#, r#"host = "192.168.0.2", wieght = 1"#),
    );
    expect_invalid(&p, &["APIG.2004", "channel.members[1].wieght"]);
}

#[test]
fn wrong_type() {
    let p = write_file("wrong_type.toml", &scenario("").replace("rate_rps = 200", r#"rate_rps = "fast""#));
    expect_invalid(&p, &["LBSIM.1004", "traffic.rate_rps", "invalid type"]);
    let q = write_file("wrong_type_channel.toml", &scenario("").replace("port = 8080", r#"port = "8080""#));
    expect_invalid(&q, &["APIG.2002", "channel.port", "invalid type"]);
}

#[test]
fn out_of_range_value() {
    let p = write_file("range.toml", &scenario("").replace("weight = 2", "weight = 101"));
    expect_invalid(&p, &["APIG.2011", "channel.members[0].weight", "0-100", "101"]);
    let q = write_file("range_traffic.toml", &scenario("").replace("rate_rps = 200", "rate_rps = 200\nretries = 101"));
    expect_invalid(&q, &["LBSIM.1002", "traffic.retries", "0-100"]);
}

#[test]
fn semantic_conflict_timeout_not_below_interval() {
    let hc = r#"vpc_health_config = { protocol = "TCP", threshold_normal = 2, threshold_abnormal = 2, time_interval = 5, timeout = 5 }"#;
    let p = write_file("timeout.toml", &scenario("").replace("port = 8080", &format!("port = 8080\n{hc}")));
    expect_invalid(&p, &["APIG.2011", "channel.vpc_health_config.timeout", "less than time_interval"]);
}

#[test]
fn semantic_conflict_type_and_vpc_channel_type() {
    let p = write_file(
        "both_types.toml",
        &scenario("").replace("port = 8080", "port = 8080\ntype = 2\nvpc_channel_type = \"builtin\""),
    );
    expect_invalid(&p, &["APIG.2012", "channel.vpc_channel_type", "type"]);
}

#[test]
fn fault_naming_a_missing_member() {
    let p = write_file(
        "fault_member.toml",
        &scenario("[[faults]]\nmember = \"192.168.9.9:8080\"\nkind = \"down\"\nat_s = 5\n"),
    );
    expect_invalid(&p, &["LBSIM.1006", "faults[0].member", "192.168.9.9:8080", "not a member"]);
}

#[test]
fn fault_missing_its_parameter() {
    let p = write_file(
        "fault_param.toml",
        &scenario("[[faults]]\nmember = \"192.168.0.1:8080\"\nkind = \"slow\"\nat_s = 5\n"),
    );
    expect_invalid(&p, &["LBSIM.1001", "faults[0].factor"]);
}

#[test]
fn missing_file() {
    let dir = temp_dir("missing");
    let p = dir.join("does_not_exist.toml");
    let o = lbsim(&["validate", s(&p)]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("does_not_exist.toml"), "{err}");
    assert!(err.to_lowercase().contains("no such file") || err.to_lowercase().contains("not found"), "{err}");
    let r = lbsim(&["compare", s(&p)]);
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let p = write_file("syntax.toml", "name = \"x\"\nseed = [\n");
    let err = expect_invalid(&p, &["LBSIM.1004", "syntax error"]);
    assert!(err.contains("line 2") && err.contains("column"), "{err}");
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let p = write_file("syntax.json", "{\"name\": \"x\",\n \"seed\": }\n");
    let err = expect_invalid(&p, &["LBSIM.1004", "syntax error"]);
    assert!(err.contains("line 2") && err.contains("column"), "{err}");
}

#[test]
fn several_errors_are_reported_at_once() {
    let text = scenario("[[faults]]\nmember = \"192.168.9.9:8080\"\nkind = \"down\"\nat_s = 5\n")
        .replace("port = 8080", "port = 0")
        .replace("balance_strategy = 1", "balance_strategy = 9")
        .replace("weight = 2", "weight = -1")
        .replace("rate_rps = 200", "rate_rps = -3");
    let p = write_file("several.toml", &text);
    let err = expect_invalid(
        &p,
        &[
            "5 problem(s)",
            "APIG.2011: channel.port",
            "APIG.2011: channel.balance_strategy",
            "APIG.2011: channel.members[0].weight",
            "LBSIM.1002: traffic.rate_rps",
            "faults[0].member",
        ],
    );
    let listed = err.lines().filter(|l| l.starts_with("APIG.") || l.starts_with("LBSIM.")).count();
    assert_eq!(listed, 5, "{err}");
}

#[test]
fn several_unknown_fields_are_reported_at_once() {
    let text = scenario("").replace("rate_rps = 200", "rate_rps = 200\nrate = 1\nburst = 2");
    let p = write_file("several_unknown.toml", &text);
    expect_invalid(&p, &["2 problem(s)", "LBSIM.1003: traffic.rate:", "LBSIM.1003: traffic.burst:"]);
    let text = scenario("").replace("port = 8080", "port = 8080\nbalance = 2\nhealth = 1");
    let p = write_file("several_unknown_channel.toml", &text);
    expect_invalid(&p, &["2 problem(s)", "APIG.2004: channel.balance:", "APIG.2004: channel.health:"]);
}

#[test]

fn unknown_field_and_invalid_value_are_reported_together() {
    // architecture.md §2: every error in the file at once. An unknown field in [traffic] plus a port out of
    // range in [channel] reports only the unknown field today.
    let text = scenario("").replace("rate_rps = 200", "rate_rpz = 200").replace("port = 8080", "port = 70000");
    let p = write_file("unknown_and_range.toml", &text);
    expect_invalid(&p, &["LBSIM.1003: traffic.rate_rpz", "APIG.2011: channel.port"]);
    // Unknown fields in two sections: only the [traffic] one is reported today.
    let text =
        scenario("").replace("rate_rps = 200", "rate_rpz = 200").replace("port = 8080", "port = 8080\nbalance = 2");
    let p = write_file("unknown_two_sections.toml", &text);
    expect_invalid(&p, &["LBSIM.1003: traffic.rate_rpz", "APIG.2004: channel.balance"]);
    // Unknown field in [channel] and a bad value beside it: only the unknown one is reported.
    let text = scenario("").replace("port = 8080", "port = 70000\nbalance = 2");
    let p = write_file("unknown_and_range_channel.toml", &text);
    expect_invalid(&p, &["APIG.2004: channel.balance", "APIG.2011: channel.port"]);
}

// ---------------------------------------------------------------------------------------------
// Output formats, trace, flags

#[test]
fn csv_format() {
    let o = lbsim(&["run", "scenarios/vpc_channel.json", "--duration", "5", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with("scenario,strategy,mode,seed,member,"), "{header}");
    let cols = header.split(',').count();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "one row per member: {out}");
    for r in rows {
        assert_eq!(r.split(',').count(), cols, "{r}");
        assert!(r.starts_with("vpc_channel_json,wrr,sim,1002,192.168.20."), "{r}");
    }
}

#[test]
fn html_format_to_file_is_self_contained() {
    let dir = temp_dir("html");
    let out = dir.join("report.html");
    let o = lbsim(&["compare", "scenarios/vpc_channel.json", "--duration", "5", "--format", "html", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "--out writes the file, not stdout");
    let page = std::fs::read_to_string(&out).expect("report written");
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..page.len().min(80)]);
    assert!(!page.contains("http://") && !page.contains("https://"), "no external references");
    assert!(page.contains("<svg"), "charts are inline SVG");
}

#[test]
fn json_out_file() {
    let dir = temp_dir("jsonout");
    let out = dir.join("r.json");
    let o = lbsim(&["run", "scenarios/vpc_channel.json", "--duration", "5", "--format", "json", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["scenario"], "vpc_channel_json");
}

fn read_trace(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("trace written")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("trace line is not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn trace_has_one_line_per_attempt() {
    let dir = temp_dir("trace");
    let trace = dir.join("trace.jsonl");
    let o = lbsim(&[
        "run",
        "scenarios/failover.toml",
        "--duration",
        "30",
        "--format",
        "json",
        "--deterministic",
        "--trace",
        s(&trace),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let lines = read_trace(&trace);
    for l in &lines {
        for k in ["t_s", "client", "uri", "member", "outcome", "latency_ms", "attempt"] {
            assert!(l.get(k).is_some(), "trace key `{k}` missing: {l}");
        }
    }
    let first = lines.iter().filter(|l| l["attempt"] == 1).count() as u64;
    assert_eq!(Some(first), r["requests"]["total"].as_u64(), "one first attempt per request");
    let attempts: u64 = r["members"].as_array().unwrap().iter().map(|m| m["requests"].as_u64().unwrap()).sum();
    let with_member = lines.iter().filter(|l| !l["member"].is_null()).count() as u64;
    assert_eq!(with_member, attempts, "members[].requests counts attempts");
    assert!(lines.iter().any(|l| l["outcome"] == "refused"), "the down member refuses");
    let ts: Vec<f64> = lines.iter().map(|l| l["t_s"].as_f64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "lines in time order");
}

#[test]

fn retried_counts_only_requests_with_a_second_attempt() {
    // One member, down from the start, retries = 1: every request makes one attempt (refused);
    // the retry finds nobody else to try. The trace has no attempt-2 line, yet retried == total.
    let p = write_file(
        "one_member.toml",
        r#"name = "one"
duration_s = 5
[traffic]
rate_rps = 100
arrival = "constant"
retries = 1
[channel]
name = "VPC_one"
port = 80
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [ { host = "192.168.0.1" } ]
[[faults]]
member = "192.168.0.1:80"
kind = "down"
at_s = 0
"#,
    );
    let trace = p.with_file_name("trace.jsonl");
    let o = lbsim(&["run", s(&p), "--format", "json", "--deterministic", "--trace", s(&trace)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let second = read_trace(&trace).iter().filter(|l| l["attempt"] == 2).count() as u64;
    assert_eq!(r["requests"]["retried"].as_u64(), Some(second));
}

#[test]
fn compare_trace_writes_one_file_per_strategy() {
    let dir = temp_dir("ctrace");
    let trace = dir.join("t.jsonl");
    let o =
        lbsim(&["compare", "scenarios/vpc_channel.json", "--duration", "2", "--format", "json", "--trace", s(&trace)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for st in ["wrr", "sh"] {
        assert!(!read_trace(&dir.join(format!("t.{st}.jsonl"))).is_empty(), "{st}");
    }
}

#[test]
fn strategy_flag_on_run() {
    let o = lbsim(&["run", "scenarios/quickstart.toml", "--duration", "5", "--strategy", "uri", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["strategy"], "uri");
    assert!(r["hash"]["keys"].as_u64().unwrap() > 0, "hash figures for a hash strategy");
    let w = lbsim(&["run", "scenarios/quickstart.toml", "--duration", "5", "--strategy", "wrr", "--format", "json"]);
    assert!(json(&w)["hash"].is_null(), "hash is null for WRR");
}

#[test]
fn strategy_list_on_compare() {
    let o =
        lbsim(&["compare", "scenarios/quickstart.toml", "--duration", "5", "--strategy", "wrr,sh", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let names: Vec<&str> = r["runs"].as_array().unwrap().iter().map(|r| r["strategy"].as_str().unwrap()).collect();
    assert_eq!(names, ["wrr", "sh"]);
}

#[test]
fn bad_strategy_exits_2() {
    for args in [
        &["run", "scenarios/quickstart.toml", "--strategy", "fastest"][..],
        &["compare", "scenarios/quickstart.toml", "--strategy", "wrr,bogus"][..],
        &["run", "scenarios/quickstart.toml", "--strategy", "wrr,sh"][..],
    ] {
        let o = lbsim(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert!(stderr(&o).contains("strategy"), "{}", stderr(&o));
    }
}

#[test]
fn bad_duration_and_format_exit_2() {
    let o = lbsim(&["run", "scenarios/quickstart.toml", "--duration", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let f = lbsim(&["run", "scenarios/quickstart.toml", "--format", "yaml"]);
    assert_eq!(f.status.code(), Some(2), "{}", stderr(&f));
}

#[test]
fn progress_never_reaches_stdout() {
    // A run that takes more than a second of wall time, so that the progress bar is started
    // (indicatif draws it on stderr, and only when stderr is a terminal).
    let o = lbsim(&["run", "scenarios/quickstart.toml", "--strategy", "sh", "--duration", "600", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    assert!(r["sim"]["wall_ms"].is_number(), "{}", r["sim"]);
    let table = lbsim(&["run", "scenarios/quickstart.toml", "--duration", "5"]);
    assert!(table.status.success());
    assert!(stdout(&table).starts_with("scenario: quickstart"), "{}", stdout(&table));
}

// ---------------------------------------------------------------------------------------------
// What the example scenarios promise in their headers

fn run_json(args: &[&str]) -> Value {
    let o = lbsim(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    json(&o)
}

fn member<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["members"].as_array().unwrap().iter().find(|m| m["member"] == id).unwrap_or_else(|| panic!("no member {id}"))
}

#[test]
fn member_groups_change_shifts_traffic_and_first_definition_wins() {
    let r = run_json(&["run", "scenarios/member_groups.toml", "--format", "json", "--deterministic"]);
    let tl = r["timeline"].as_array().unwrap();
    let at =
        |t: f64, m: &str| tl.iter().find(|e| e["t_s"].as_f64() == Some(t)).unwrap()["per_member"][m].as_u64().unwrap();
    assert_eq!(at(50.0, "192.168.30.20:8080"), at(50.0, "192.168.30.10:8080"), "equal before the change");
    assert_eq!(at(70.0, "192.168.30.20:8080"), 4 * at(70.0, "192.168.30.10:8080"), "green 4 : blue 1 after");
    // members[].weight is the member's own weight, not the group weight it inherits.
    assert_eq!(member(&r, "192.168.30.20:8080")["weight"], 1);
}

#[test]
fn zstack_servers_join_with_string_weights() {
    let r = run_json(&["run", "scenarios/zstack_server_group.toml", "--format", "json", "--deterministic"]);
    assert_eq!(member(&r, "192.168.40.11:80")["weight"], 20);
    assert_eq!(member(&r, "70856dd6ee693c30b28e6233850fc494:80")["weight"], 10);
    let late = member(&r, "192.168.40.12:80");
    assert_eq!(late["weight"], 20);
    let tl = r["timeline"].as_array().unwrap();
    assert_eq!(tl[5]["per_member"]["192.168.40.12:80"], 0, "not before the change");
    assert!(tl[6]["per_member"]["192.168.40.12:80"].as_u64().unwrap() > 0, "from 60 s on");
}

#[test]
fn ga_group_without_eligible_members_gets_no_traffic() {
    let r = run_json(&["run", "scenarios/ga_endpoint_groups.toml", "--format", "json", "--deterministic"]);
    let groups = r["endpoint_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let tl = r["timeline"].as_array().unwrap();
    let w = &tl[6]["per_member"]; // 60-70 s: eg-eu's members are down and detected
    assert_eq!(w["192.168.51.10:8080"], 0);
    assert_eq!(w["192.168.51.11:8080"], 0);
    let ap = w["192.168.50.10:8080"].as_u64().unwrap() + w["192.168.50.11:8080"].as_u64().unwrap();
    let la = w["192.168.52.10:8080"].as_u64().unwrap();
    let frac = ap as f64 / (ap + la) as f64;
    assert!((frac - 50.0 / 70.0).abs() < 0.03, "dials 50 : 20 among the groups left, got {frac}");
}

#[test]
fn sdrs_failover_moves_traffic_to_the_target_az() {
    let r = run_json(&["run", "scenarios/sdrs_protection_group.toml", "--format", "json", "--deterministic"]);
    let pg = &r["protection_group"];
    assert_eq!(pg["status"], "failed_over");
    assert_eq!(pg["started_at_s"].as_f64(), Some(60.0));
    assert_eq!(pg["finished_at_s"].as_f64(), Some(90.0));
    assert_eq!(pg["job_id"].as_str().map(str::len), Some(32));
    let f = &r["faults"][0];
    assert!(f["member"].is_null());
    assert_eq!(f["az"], "AZ01");
    for e in r["timeline"].as_array().unwrap() {
        let t = e["t_s"].as_f64().unwrap();
        let target = e["per_member"]["192.168.61.10:443"].as_u64().unwrap();
        let source = e["per_member"]["192.168.60.10:443"].as_u64().unwrap();
        if t < 90.0 {
            assert_eq!(target, 0, "target AZ on standby at {t}");
        } else {
            assert_eq!(source, 0, "source AZ out after the failover at {t}");
            assert!(target > 0, "target AZ serves at {t}");
        }
    }
}

#[test]
fn backups_serve_only_while_no_primary_is_eligible() {
    let r = run_json(&["run", "scenarios/failover.toml", "--format", "json", "--deterministic"]);
    for e in r["timeline"].as_array().unwrap() {
        let t = e["t_s"].as_f64().unwrap();
        let b = e["per_member"]["192.168.70.20:8443"].as_u64().unwrap();
        if !(60.0..105.0).contains(&t) {
            assert_eq!(b, 0, "backup idle at {t}");
        }
    }
    assert!(member(&r, "192.168.70.20:8443")["requests"].as_u64().unwrap() > 0);
    assert!(r["requests"]["retried"].as_u64().unwrap() > 0);
}

#[test]
fn hash_disruption_moves_about_one_tenth_per_transition() {
    let r =
        run_json(&["run", "scenarios/hash_disruption.toml", "--format", "json", "--deterministic", "--duration", "90"]);
    assert_eq!(r["strategy"], "sh");
    let h = &r["hash"];
    let remapped = h["remapped_on_fault"].as_f64().unwrap();
    let returned = h["returned_on_recovery"].as_f64().unwrap();
    assert!((remapped - 0.1).abs() < 0.02, "one member of ten: {remapped}");
    assert!((returned - remapped).abs() < 1e-9, "the same keys return: {returned}");
}

#[test]

fn hash_fractions_stay_within_0_and_1() {
    // architecture.md §7: remapped_on_fault and returned_on_recovery are fractions (0-1) of the key space.
    // failover.toml under SH: 0.5 + 0.67 + 1.0 (the switch to the backups) = 2.17.
    let r = run_json(&["run", "scenarios/failover.toml", "--strategy", "sh", "--format", "json", "--deterministic"]);
    for k in ["remapped_on_fault", "returned_on_recovery"] {
        let v = r["hash"][k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
}

#[test]

fn undetected_fault_reports_no_detection() {
    // A `slow` fault that a TCP check cannot see (10-20 s), then a `down` fault (40-50 s) on the
    // same member: the slow fault's detected_at_s should be null, not the down fault's ~42 s.
    let extra = r#"
[channel.vpc_health_config]
protocol = "TCP"
threshold_normal = 2
threshold_abnormal = 2
time_interval = 2
timeout = 1

[[faults]]
member = "192.168.0.1:8080"
kind = "slow"
factor = 2
at_s = 10
until_s = 20

[[faults]]
member = "192.168.0.1:8080"
kind = "down"
at_s = 40
until_s = 50
"#;
    let p = write_file("slow_then_down.toml", &scenario(extra).replace("duration_s = 20", "duration_s = 60"));
    let r = run_json(&["run", s(&p), "--format", "json", "--deterministic"]);
    let down = r["faults"][1]["detected_at_s"].as_f64().expect("the down fault is detected");
    assert!((40.0..50.0).contains(&down));
    assert!(r["faults"][0]["detected_at_s"].is_null(), "slow fault: {}", r["faults"][0]);
}

#[test]
fn compare_json_is_always_a_runs_object() {
    // architecture.md §7: `compare` prints {"runs": [ ... ]}, one per strategy and mode; a script that
    // reads `runs` breaks when --strategy (or the file's `strategies`) names only one.
    let r = run_json(&[
        "compare",
        "scenarios/vpc_channel.json",
        "--strategy",
        "wrr",
        "--duration",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(r["runs"].as_array().map(Vec::len), Some(1), "{}", &r.to_string()[..80]);
}
