//! Reports (architecture.md §7): the figures of one run, and their renderers (JSON, terminal table,
//! CSV, self-contained HTML with charts).
//!
//! Every key of the JSON form is always present: a figure that does not apply is `null` (or `[]`
//! for a list). Maps are `BTreeMap`s so that the same run always prints the same bytes.

use serde::Serialize;
use std::collections::BTreeMap;

mod csv;
mod html;
mod render;
mod svg;
pub mod sweep;
mod table;

pub use render::{render, render_comparison, render_run, OutputFormat, UnknownFormat};

/// One run of one scenario under one strategy, simulated or live.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `wrr`, `wlc`, `sh` or `uri`.
    pub strategy: String,
    /// `sim` or `live`.
    pub mode: String,
    pub seed: u64,
    pub duration_s: f64,
    pub requests: Requests,
    pub latency_ms: Latency,
    pub members: Vec<MemberReport>,
    pub faults: Vec<FaultReport>,
    pub hash: Option<HashReport>,
    pub fairness: Fairness,
    pub timeline: Vec<TimelineEntry>,
    pub endpoint_groups: Vec<EndpointGroupReport>,
    pub protection_group: Option<ProtectionGroupReport>,
    pub sim: Option<SimStats>,
    /// The `[balancer]` options in force (an option that is off is `null`).
    pub balancer: crate::balancer::Options,
    /// Latency CDF points `(ms, fraction of requests at or below)`, for the HTML chart. Not part
    /// of the JSON contract.
    #[serde(skip)]
    pub latency_cdf: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Requests {
    /// Requests that arrived within `duration_s`; `total = ok + failed`.
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// Requests that needed more than one attempt.
    pub retried: u64,
    /// Failed requests by the reason of their last attempt: `refused`, `timeout`, `error_5xx`,
    /// `queue_full`, `no_member`, `reset`.
    pub failed_by_reason: BTreeMap<String, u64>,
}

/// Latency percentiles in milliseconds; `null` when no request completed.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberReport {
    /// `host:port`.
    pub member: String,
    pub group: Option<String>,
    pub weight: u32,
    pub backup: bool,
    pub az: Option<String>,
    /// Attempts sent to this member.
    pub requests: u64,
    /// `requests` over the sum across members.
    pub share: f64,
    /// Weight share among the members eligible at the time, averaged over the run (hash
    /// strategies: share of the key space).
    pub expected_share: f64,
    pub latency_ms: Latency,
    pub peak_in_flight: u64,
    /// Health transitions, starting with the initial state at 0.
    pub health: Vec<HealthPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthPoint {
    pub at_s: f64,
    /// `unknown`, `healthy`, `unhealthy`, or `ejected` (outlier detection).
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    /// `null` for an `az_down` fault.
    pub member: Option<String>,
    pub az: Option<String>,
    /// `down`, `slow`, `errors`, `flap`, `az_down`.
    pub kind: String,
    pub at_s: f64,
    pub until_s: Option<f64>,
    /// When a check turned the (first) affected member unhealthy; `null` if none did.
    pub detected_at_s: Option<f64>,
    /// When it turned healthy again; `null` if it did not.
    pub recovered_at_s: Option<f64>,
    /// Requests that failed on the affected members between `at_s` and the end of the fault.
    pub failed_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HashReport {
    /// Distinct keys seen.
    pub keys: u64,
    /// Fraction of the key space (0-1) that left its first owner when health checks turned
    /// members unhealthy during the run (each bucket counted once).
    pub remapped_on_fault: Option<f64>,
    /// Fraction of the key space (0-1) that left its first owner and was back with it at the end
    /// of the run (keys return when their member recovers).
    pub returned_on_recovery: Option<f64>,
    /// Bounded-load hashing (`hash_balance_factor`): the fraction (0-1) of hash picks that went
    /// past their key's first choice because it was full; `null` when the option is off.
    pub moved_off_first_choice: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fairness {
    /// Jain's index over `share / expected_share`.
    pub jain: Option<f64>,
    pub max_over_expected: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub t_s: f64,
    /// Attempts per member started in this window.
    pub per_member: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointGroupReport {
    pub name: String,
    pub region_id: String,
    pub traffic_dial_percentage: u32,
    /// `ACTIVE`, `PENDING`, `ERROR`, `DELETING`.
    pub status: String,
    pub requests: u64,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtectionGroupReport {
    pub name: String,
    pub job_id: Option<String>,
    pub started_at_s: Option<f64>,
    pub finished_at_s: Option<f64>,
    /// `protected` (no failover), `failing_over`, `failed_over`.
    pub status: String,
    /// Requests that failed between the failover's start and its end.
    pub failed_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimStats {
    pub events: u64,
    /// Wall-clock time of the run; left out with `--deterministic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<f64>,
    /// Simulated requests per wall-clock second; left out with `--deterministic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<f64>,
}

/// `compare`: several runs side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub runs: Vec<Report>,
}

/// Rounds to a microsecond (six decimals) so that reports print stable, short numbers.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn ms(us: u64) -> f64 {
    round6(us as f64 / 1e3)
}

impl Latency {
    /// The percentiles of a histogram of microseconds, in milliseconds; all `null` when it is
    /// empty.
    pub fn from_micros<T: hdrhistogram::Counter>(h: &hdrhistogram::Histogram<T>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: Some(ms(h.value_at_quantile(0.50))),
            p90: Some(ms(h.value_at_quantile(0.90))),
            p99: Some(ms(h.value_at_quantile(0.99))),
            p999: Some(ms(h.value_at_quantile(0.999))),
            max: Some(ms(h.max())),
            mean: Some(round6(h.mean() / 1e3)),
        }
    }
}

/// CDF points `(ms, fraction at or below)` of a histogram of microseconds, for the HTML chart.
pub fn latency_cdf(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let qs = (0..=100).map(|i| f64::from(i) / 100.0).chain([0.995, 0.999, 0.9999]);
    let mut out: Vec<(f64, f64)> = qs.map(|q| (ms(h.value_at_quantile(q)), q)).collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    out
}

impl Fairness {
    /// Jain's index and the largest ratio over `(share, expected_share)` pairs whose expected
    /// share is above zero.
    pub fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> Fairness {
        let ratios: Vec<f64> = pairs.into_iter().filter(|&(_, e)| e > 0.0).map(|(s, e)| s / e).collect();
        if ratios.is_empty() {
            return Fairness::default();
        }
        let sum: f64 = ratios.iter().sum();
        let sq: f64 = ratios.iter().map(|r| r * r).sum();
        let jain = if sq > 0.0 { sum * sum / (ratios.len() as f64 * sq) } else { 0.0 };
        Fairness { jain: Some(jain), max_over_expected: ratios.iter().copied().reduce(f64::max) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_is_one_when_shares_match_and_drops_with_skew() {
        let f = Fairness::of([(0.5, 0.5), (0.25, 0.25), (0.25, 0.25)]);
        assert!((f.jain.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(f.max_over_expected, Some(1.0));
        let g = Fairness::of([(1.0, 0.5), (0.0, 0.5)]);
        assert!((g.jain.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(g.max_over_expected, Some(2.0));
        assert_eq!(Fairness::of([]), Fairness::default());
    }
}
