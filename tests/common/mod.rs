//! Helpers shared by the integration tests.
#![allow(dead_code)]

use lbsim::model::VpcChannel;
use serde_json::{json, Value};

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
