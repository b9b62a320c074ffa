//! Check intervals and status classes beyond `vpc_health_config` (the `[balancer]` options
//! `unhealthy_interval`, `interval_jitter_percent`, `retriable_codes`), shared by the simulator's
//! and the live prober's checks.
//!
//! - `unhealthy_interval`: an unhealthy member is checked every this many seconds instead of
//!   `time_interval` (HAProxy's `fastinter`/`downinter`), so a recovery is seen sooner (or a dead
//!   member costs fewer checks).
//! - `interval_jitter_percent`: every interval is drawn uniformly within plus or minus this
//!   percentage of its length (seeded), so that checks of many members drift apart.
//! - `retriable_codes`: a status outside both `http_code` and this set marks the member unhealthy
//!   at once, without waiting for `threshold_abnormal` (a status in it is an ordinary failure).

use super::CheckConfig;
use crate::model::HttpCodes;

/// What one check's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Counts towards `threshold_abnormal`.
    Failure,
    /// Unhealthy at once (`HealthHandle::force_unhealthy`).
    Fatal,
}

/// The interval and status options in force; the default changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckPolicy {
    unhealthy_interval_s: Option<u32>,
    jitter_percent: u8,
    retriable: Option<HttpCodes>,
}

impl CheckPolicy {
    /// From the options; a `retriable_codes` that does not parse is left out (validation reports
    /// it to the user).
    pub fn new(unhealthy_interval_s: Option<u32>, jitter_percent: Option<u8>, retriable: Option<&str>) -> Self {
        CheckPolicy {
            unhealthy_interval_s: unhealthy_interval_s.filter(|&s| s > 0),
            jitter_percent: jitter_percent.unwrap_or(0).min(100),
            retriable: retriable.and_then(|r| HttpCodes::parse(r).ok()),
        }
    }

    /// Whether intervals are jittered (a random draw is needed per interval).
    pub fn jitters(&self) -> bool {
        self.jitter_percent > 0
    }

    /// Seconds to the member's next check: `time_interval`, or `unhealthy_interval` while it is
    /// unhealthy, scaled by `1 + j x (2u - 1)` for jitter `j` and a uniform draw `u` in [0, 1).
    pub fn interval_s(&self, check: &CheckConfig, unhealthy: bool, u: f64) -> f64 {
        let base = match (unhealthy, self.unhealthy_interval_s) {
            (true, Some(s)) => s,
            _ => check.interval_s,
        };
        let j = f64::from(self.jitter_percent) / 100.0;
        f64::from(base) * (1.0 + j * (2.0 * u.clamp(0.0, 1.0) - 1.0))
    }

    /// The meaning of an HTTP(S) check's status.
    pub fn verdict(&self, check: &CheckConfig, status: u16) -> Verdict {
        match &self.retriable {
            _ if check.status_ok(status) => Verdict::Success,
            Some(r) if !r.contains(status) => Verdict::Fatal,
            _ => Verdict::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VpcHealthConfig;

    fn check() -> CheckConfig {
        let h: VpcHealthConfig = serde_json::from_str(
            r#"{"protocol":"http","path":"/h","threshold_normal":2,"threshold_abnormal":3,"time_interval":10,"timeout":5,"http_code":"200-299"}"#,
        )
        .unwrap();
        CheckConfig::from_config(&h).unwrap()
    }

    #[test]
    fn intervals_follow_health_and_jitter_within_its_percentage() {
        let c = check();
        let plain = CheckPolicy::default();
        assert_eq!(plain.interval_s(&c, true, 0.9), 10.0);
        assert!(!plain.jitters());
        let p = CheckPolicy::new(Some(2), Some(20), None);
        assert_eq!(p.interval_s(&c, false, 0.5), 10.0);
        assert_eq!(p.interval_s(&c, true, 0.5), 2.0);
        assert!((p.interval_s(&c, false, 0.0) - 8.0).abs() < 1e-12);
        assert!((p.interval_s(&c, false, 0.999_999) - 12.0).abs() < 1e-4);
    }

    #[test]
    fn a_status_outside_both_sets_is_fatal() {
        let c = check();
        assert_eq!(CheckPolicy::default().verdict(&c, 500), Verdict::Failure);
        let p = CheckPolicy::new(None, None, Some("429,502-504"));
        assert_eq!(p.verdict(&c, 204), Verdict::Success);
        assert_eq!(p.verdict(&c, 503), Verdict::Failure);
        assert_eq!(p.verdict(&c, 500), Verdict::Fatal);
        assert_eq!(p.verdict(&c, 404), Verdict::Fatal);
    }
}
