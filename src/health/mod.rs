//! Health checks: the threshold state machine (pure, shared by the simulator and the live
//! prober) and the check configuration derived from `vpc_health_config`.
//!
//! A check's outcome is a success or a failure (refused, timed out, TLS failure, status not in
//! `http_code`). With a check configured a member starts `healthy` (or `unhealthy` when the
//! balancer's `initial_health` says so); it turns unhealthy after `threshold_abnormal`
//! consecutive failures and healthy again after `threshold_normal` consecutive successes. Without
//! a check, or with the check's `status` 2, members stay `unknown` and are eligible.

use crate::model::{CheckMethod, CheckProtocol, HttpCodes, VpcHealthConfig};
use std::fmt;

mod intervals;
pub use intervals::{CheckPolicy, Verdict};

/// The result of one health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

/// A member's health as reported (`health_status` in the create-VPC-channel API's response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HealthState {
    /// No check is configured, or it is disabled.
    Unknown,
    Healthy,
    Unhealthy,
    /// Taken out by passive health (outlier detection) until its ejection ends; never a state of
    /// the threshold machine.
    Ejected,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Ejected => "ejected",
        }
    }

    /// Whether a member in this state may be selected.
    pub fn is_eligible(self) -> bool {
        !matches!(self, HealthState::Unhealthy | HealthState::Ejected)
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Consecutive-result thresholds (`threshold_normal`, `threshold_abnormal`), each at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub normal: u32,
    pub abnormal: u32,
}

/// One member's threshold state machine. Pure: no clock, no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthMachine {
    state: HealthState,
    thresholds: Option<Thresholds>,
    successes: u32,
    failures: u32,
}

impl HealthMachine {
    /// A machine for a member: `Unknown` forever without thresholds, else `initial`.
    pub fn new(thresholds: Option<Thresholds>, initial: HealthState) -> Self {
        let state = match thresholds {
            None => HealthState::Unknown,
            Some(_) if initial == HealthState::Unknown => HealthState::Healthy,
            Some(_) => initial,
        };
        HealthMachine { state, thresholds, successes: 0, failures: 0 }
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    pub fn thresholds(&self) -> Option<Thresholds> {
        self.thresholds
    }

    /// Counts one result; returns the new state when this result changed it.
    pub fn record(&mut self, outcome: Outcome) -> Option<HealthState> {
        let t = self.thresholds?;
        match outcome {
            Outcome::Success => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.state == HealthState::Unhealthy && self.successes >= t.normal.max(1) {
                    return self.set(HealthState::Healthy);
                }
            }
            Outcome::Failure => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.state == HealthState::Healthy && self.failures >= t.abnormal.max(1) {
                    return self.set(HealthState::Unhealthy);
                }
            }
        }
        None
    }

    /// Marks the member unhealthy at once (a status that is neither a success nor retriable).
    pub fn force_unhealthy(&mut self) -> Option<HealthState> {
        self.thresholds?;
        self.successes = 0;
        if self.state == HealthState::Unhealthy {
            None
        } else {
            self.set(HealthState::Unhealthy)
        }
    }

    fn set(&mut self, s: HealthState) -> Option<HealthState> {
        self.state = s;
        self.successes = 0;
        self.failures = 0;
        Some(s)
    }
}

/// An enabled active check, typed from `vpc_health_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub protocol: CheckProtocol,
    pub path: String,
    pub method: CheckMethod,
    /// 0: the member's port.
    pub port: u16,
    pub thresholds: Thresholds,
    /// Seconds between checks of one member.
    pub interval_s: u32,
    /// Seconds before a check counts as failed.
    pub timeout_s: u32,
    pub codes: HttpCodes,
    pub client_ssl: bool,
}

impl CheckConfig {
    /// The enabled check of a health config, or `None` when `status` is 2. Values are clamped
    /// into range; validation (`model::Validate`) reports out-of-range values to the user.
    pub fn from_config(h: &VpcHealthConfig) -> Option<CheckConfig> {
        if h.status.unwrap_or(1) != 1 {
            return None;
        }
        let clamp = |v: i64| v.clamp(1, u32::MAX as i64) as u32;
        Some(CheckConfig {
            protocol: h.protocol,
            path: h.path.clone().unwrap_or_else(|| "/".to_string()),
            method: h.method.unwrap_or(CheckMethod::Get),
            port: h.port.unwrap_or(0).clamp(0, 65535) as u16,
            thresholds: Thresholds { normal: clamp(h.threshold_normal), abnormal: clamp(h.threshold_abnormal) },
            interval_s: clamp(h.time_interval),
            timeout_s: clamp(h.timeout),
            codes: h.http_code.as_deref().and_then(|c| HttpCodes::parse(c).ok()).unwrap_or_default(),
            client_ssl: h.enable_client_ssl.unwrap_or(false),
        })
    }

    /// Whether an HTTP(S) check's response status counts as a success.
    pub fn status_ok(&self, status: u16) -> bool {
        self.codes.contains(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthState::*;
    use Outcome::*;

    fn machine(normal: u32, abnormal: u32) -> HealthMachine {
        HealthMachine::new(Some(Thresholds { normal, abnormal }), Healthy)
    }

    #[test]
    fn turns_unhealthy_after_exactly_threshold_abnormal_consecutive_failures() {
        let mut m = machine(2, 3);
        assert_eq!(m.record(Failure), None);
        assert_eq!(m.record(Failure), None);
        assert_eq!(m.record(Success), None, "a success resets the failure count");
        assert_eq!(m.record(Failure), None);
        assert_eq!(m.record(Failure), None);
        assert_eq!(m.record(Failure), Some(Unhealthy));
        assert_eq!(m.record(Failure), None, "already unhealthy");
        assert_eq!(m.state(), Unhealthy);
    }

    #[test]
    fn recovers_after_exactly_threshold_normal_consecutive_successes() {
        let mut m = machine(2, 1);
        assert_eq!(m.record(Failure), Some(Unhealthy));
        assert_eq!(m.record(Success), None);
        assert_eq!(m.record(Failure), None, "a failure resets the success count");
        assert_eq!(m.record(Success), None);
        assert_eq!(m.record(Success), Some(Healthy));
        assert_eq!(m.state(), Healthy);
    }

    #[test]
    fn initial_state_and_unknown_without_a_check() {
        let mut none = HealthMachine::new(None, Healthy);
        assert_eq!(none.state(), Unknown);
        assert_eq!(none.record(Failure), None);
        assert_eq!(none.state(), Unknown);
        let mut m = HealthMachine::new(Some(Thresholds { normal: 1, abnormal: 1 }), Unhealthy);
        assert_eq!(m.state(), Unhealthy);
        assert_eq!(m.record(Success), Some(Healthy));
    }

    #[test]
    fn force_unhealthy_skips_the_threshold() {
        let mut m = machine(2, 5);
        assert_eq!(m.force_unhealthy(), Some(Unhealthy));
        assert_eq!(m.force_unhealthy(), None);
    }

    #[test]
    fn disabled_check_gives_no_config() {
        let mut h: VpcHealthConfig = serde_json::from_str(
            r#"{"protocol":"http","path":"/h","threshold_normal":2,"threshold_abnormal":3,"time_interval":10,"timeout":5,"http_code":"200,210-299"}"#,
        )
        .unwrap();
        let c = CheckConfig::from_config(&h).unwrap();
        assert!(c.status_ok(200) && c.status_ok(250) && !c.status_ok(201) && !c.status_ok(500));
        assert_eq!((c.interval_s, c.timeout_s, c.thresholds.abnormal), (10, 5, 3));
        h.status = Some(2);
        assert!(CheckConfig::from_config(&h).is_none());
    }
}
