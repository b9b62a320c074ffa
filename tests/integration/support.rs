//! Helpers shared by the integration tests.
#![allow(dead_code)]

use lbsim::model::VpcChannel;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A channel body with `balance_strategy` and members given as JSON values.
pub fn channel_json(strategy: i64, members: Vec<Value>, groups: Vec<Value>) -> Value {
    json!({
        "name": "test_channel", "port": 8080, "balance_strategy": strategy, "member_type": "ip",
        "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
        "member_groups": groups, "members": members,
    })
}

pub fn channel(v: Value) -> VpcChannel {
    serde_json::from_value(v).expect("test channel parses")
}

/// Members `10.0.0.1..` with the given weights.
pub fn weighted(strategy: i64, weights: &[i64]) -> VpcChannel {
    let members = weights.iter().enumerate().map(|(i, w)| json!({"host": host(i), "weight": w})).collect();
    channel(channel_json(strategy, members, vec![]))
}

pub fn host(i: usize) -> String {
    format!("10.0.{}.{}", i / 250, i % 250 + 1)
}

pub fn with_check(mut v: Value, normal: i64, abnormal: i64) -> Value {
    v["vpc_health_config"] = json!({"protocol": "TCP", "threshold_normal": normal, "threshold_abnormal": abnormal,
        "time_interval": 5, "timeout": 2});
    v
}

/// architecture.md §7's top-level report keys, each always present (null or [] when it does not apply).
pub const TOP_KEYS: [&str; 16] = [
    "scenario",
    "strategy",
    "mode",
    "seed",
    "duration_s",
    "requests",
    "latency_ms",
    "members",
    "faults",
    "hash",
    "fairness",
    "timeline",
    "endpoint_groups",
    "protection_group",
    "sim",
    "balancer",
];

/// Slow start's monotone ramp, as the tests check it: `windows` holds each window's share of the
/// recovering member and the requests it counted. No window may fall more than two standard
/// deviations (of the previous window's share, over this window's count) below the one before.
pub fn assert_ramp_never_falls(windows: &[(f64, f64)], what: &str) {
    for k in 1..windows.len() {
        let (p, n) = (windows[k - 1].0, windows[k].1);
        let sd = (p * (1.0 - p) / n).sqrt();
        assert!(windows[k].0 >= p - 2.0 * sd, "{what}: window {k} fell: {windows:?}");
    }
}

// The `lbsim` binary, as a user runs it

/// Runs the `lbsim` binary built with these tests, from the repository root.
pub fn lbsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lbsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run lbsim")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output of a run that must have succeeded (the failure shows its standard error).
pub fn ok(o: &Output) -> &[u8] {
    assert!(o.status.success(), "lbsim failed: {}", stderr(o));
    &o.stdout
}

/// Standard output of a successful run, parsed as JSON.
pub fn json(o: &Output) -> Value {
    serde_json::from_slice(ok(o)).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

/// A fresh directory under the system temp dir, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("lbsim-test-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Writes `text` to a file named `name` in a fresh temp dir; returns its path.
pub fn write_file(name: &str, text: &str) -> PathBuf {
    let path = temp_dir(name.split('.').next().unwrap_or("f")).join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// splitmix64: the tests' own deterministic stream of well-mixed keys.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// Tests that measure the whole process

/// The environment variable that marks a child process running one module's tests by themselves.
const OWN_PROCESS: &str = "LBSIM_TEST_OWN_PROCESS";

/// For tests that measure something process-wide (the resident set): they must not share the
/// process with the rest of the suite. Each such test starts with
/// `if !own_process("module") { return; }`: in the suite's process that returns false and the
/// test does nothing, and [`run_module_in_own_process`] (called by one test of the module) runs
/// the module's tests again in a child process, one at a time, where this returns true.
pub fn own_process(module: &str) -> bool {
    std::env::var(OWN_PROCESS).is_ok_and(|m| m == module)
}

/// Runs every test under `module::` in a child process of this test binary, one at a time, and
/// fails unless each of them passed there. `expected` is how many tests the module holds besides
/// the caller, so that a filter that matches nothing cannot pass.
pub fn run_module_in_own_process(module: &str, expected: usize) {
    if own_process(module) {
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([&format!("{module}::"), "--test-threads=1", "--nocapture"])
        .env(OWN_PROCESS, module)
        .output()
        .expect("run the module's tests in a child process");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{module}'s tests failed in their own process:\n{text}");
    let passed = text.lines().filter(|l| l.starts_with("test ") && l.ends_with(" ok")).count();
    assert_eq!(passed, expected + 1, "{module}: tests run in their own process:\n{text}");
}
