//! Passive health, Envoy-style outlier detection: the embedder reports each response's outcome
//! (`HealthHandle::record_response`: a 5xx answer or a failed connection is a failure), and a
//! member is **ejected** (not eligible, as if unhealthy) when
//!
//! - `outlier_consecutive_errors` responses in a row failed, or
//! - in the current window of `outlier_interval_s` it answered at least `outlier_min_requests`
//!   requests and at least `outlier_failure_rate` percent of them failed.
//!
//! The n-th ejection of a member lasts `n x outlier_base_ejection_s`; then the member returns (and
//! slow-starts, when that is on). At most `max_ejection_percent` of the members are ejected at
//! once, but one member always can be (Envoy's rule). The counters live apart from the writer's
//! lock, under their own, and the selection hot path never reads them: an ejection rebuilds the
//! snapshot like a health transition does.

use super::member::MemberId;
use super::Options;
use crate::health::Outcome;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `outlier_min_requests` when absent.
pub const DEFAULT_MIN_REQUESTS: u32 = 20;
/// `outlier_interval_s` when absent.
pub const DEFAULT_INTERVAL_S: f64 = 10.0;
/// `outlier_base_ejection_s` when absent.
pub const DEFAULT_BASE_EJECTION_S: f64 = 30.0;
/// `max_ejection_percent` when absent.
pub const DEFAULT_MAX_EJECTION_PERCENT: u8 = 10;

/// The detection rules in force; `None` from [`Rules::of`] when neither rule is set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    consecutive: Option<u32>,
    rate: Option<u8>,
    min_requests: u32,
    interval: Duration,
    base: Duration,
    max_percent: u8,
}

impl Rules {
    pub(crate) fn of(o: &Options) -> Option<Rules> {
        if o.outlier_consecutive_errors.is_none() && o.outlier_failure_rate.is_none() {
            return None;
        }
        let secs =
            |v: Option<f64>, d: f64| Duration::from_secs_f64(v.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(d));
        Some(Rules {
            consecutive: o.outlier_consecutive_errors.map(|n| n.max(1)),
            rate: o.outlier_failure_rate.map(|r| r.clamp(1, 100)),
            min_requests: o.outlier_min_requests.unwrap_or(DEFAULT_MIN_REQUESTS).max(1),
            interval: secs(o.outlier_interval_s, DEFAULT_INTERVAL_S),
            base: secs(o.outlier_base_ejection_s, DEFAULT_BASE_EJECTION_S),
            max_percent: o.max_ejection_percent.unwrap_or(DEFAULT_MAX_EJECTION_PERCENT).min(100),
        })
    }
}

/// Per-member response counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    per: HashMap<MemberId, Count>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    consecutive: u32,
    window_start: Duration,
    requests: u32,
    failures: u32,
}

impl Counters {
    /// Counts one response; true when the member should now be ejected (its counters restart).
    pub(crate) fn record(&mut self, rules: &Rules, id: MemberId, outcome: Outcome, now: Duration) -> bool {
        let c = self.per.entry(id).or_insert(Count { window_start: now, ..Count::default() });
        if now.saturating_sub(c.window_start) >= rules.interval {
            *c = Count { consecutive: c.consecutive, window_start: now, ..Count::default() };
        }
        c.requests += 1;
        match outcome {
            Outcome::Success => c.consecutive = 0,
            Outcome::Failure => {
                c.consecutive += 1;
                c.failures += 1;
            }
        }
        let by_run = rules.consecutive.is_some_and(|n| c.consecutive >= n);
        let by_rate = rules.rate.is_some_and(|r| {
            c.requests >= rules.min_requests && u64::from(c.failures) * 100 >= u64::from(r) * u64::from(c.requests)
        });
        if by_run || by_rate {
            *c = Count { window_start: now, ..Count::default() };
        }
        by_run || by_rate
    }
}

/// Which members are ejected, until when, and how often each has been (writer state).
#[derive(Debug, Default)]
pub(crate) struct Ejections {
    /// (ejected until, if ejected now; number of ejections so far). Ordered, so that returns
    /// are reported in a stable order.
    per: BTreeMap<MemberId, (Option<Duration>, u32)>,
}

impl Ejections {
    pub(crate) fn is_ejected(&self, id: MemberId) -> bool {
        self.per.get(&id).is_some_and(|e| e.0.is_some())
    }

    /// Ejects a member at `now` unless `max_ejection_percent` of `members` are ejected already
    /// (one always can be). Returns when it returns.
    pub(crate) fn eject(&mut self, rules: &Rules, id: MemberId, now: Duration, members: usize) -> Option<Duration> {
        let ejected = self.per.values().filter(|e| e.0.is_some()).count();
        if self.is_ejected(id) || (ejected > 0 && (ejected + 1) * 100 > usize::from(rules.max_percent) * members) {
            return None;
        }
        let e = self.per.entry(id).or_insert((None, 0));
        e.1 += 1;
        let until = now + rules.base * e.1;
        e.0 = Some(until);
        Some(until)
    }

    /// Ends the ejections that are over at `now`; returns those members, in identity order.
    pub(crate) fn expire(&mut self, now: Duration) -> Vec<MemberId> {
        let mut back = Vec::new();
        for (id, e) in self.per.iter_mut() {
            if e.0.is_some_and(|until| until <= now) {
                e.0 = None;
                back.push(*id);
            }
        }
        back
    }

    /// When the next ejection ends.
    pub(crate) fn next_end(&self) -> Option<Duration> {
        self.per.values().filter_map(|e| e.0).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(consecutive: Option<u32>, rate: Option<u8>, max_percent: u8) -> Rules {
        let o = Options {
            outlier_consecutive_errors: consecutive,
            outlier_failure_rate: rate,
            outlier_min_requests: Some(10),
            outlier_interval_s: Some(5.0),
            outlier_base_ejection_s: Some(30.0),
            max_ejection_percent: Some(max_percent),
            ..Options::default()
        };
        Rules::of(&o).unwrap()
    }

    fn id(i: u8) -> MemberId {
        MemberId::new(&format!("10.8.0.{i}"), 80)
    }

    #[test]
    fn consecutive_errors_eject_and_a_success_resets_the_run() {
        let r = rules(Some(3), None, 100);
        let mut c = Counters::default();
        let t = Duration::ZERO;
        assert!(!c.record(&r, id(1), Outcome::Failure, t));
        assert!(!c.record(&r, id(1), Outcome::Failure, t));
        assert!(!c.record(&r, id(1), Outcome::Success, t));
        assert!(!c.record(&r, id(1), Outcome::Failure, t));
        assert!(!c.record(&r, id(1), Outcome::Failure, t));
        assert!(c.record(&r, id(1), Outcome::Failure, t));
        assert!(!c.record(&r, id(1), Outcome::Failure, t), "counters restart after an ejection");
    }

    #[test]
    fn failure_rate_needs_min_requests_within_one_window() {
        let r = rules(None, Some(50), 100);
        let mut c = Counters::default();
        let s = Duration::from_secs;
        // 9 responses, 5 failed: under min_requests (10).
        for i in 0..9 {
            let o = if i % 2 == 0 { Outcome::Failure } else { Outcome::Success };
            assert!(!c.record(&r, id(1), o, s(0)));
        }
        // The window (5 s) ends: counts restart, so 1 more does not reach 10.
        assert!(!c.record(&r, id(1), Outcome::Failure, s(5)));
        for _ in 0..8 {
            assert!(!c.record(&r, id(1), Outcome::Success, s(6)));
        }
        // 10th response of the window: 2 of 10 failed, under 50 %.
        assert!(!c.record(&r, id(1), Outcome::Failure, s(6)));
        let mut c = Counters::default();
        for _ in 0..5 {
            assert!(!c.record(&r, id(2), Outcome::Success, s(0)));
        }
        for _ in 0..4 {
            assert!(!c.record(&r, id(2), Outcome::Failure, s(0)));
        }
        assert!(c.record(&r, id(2), Outcome::Failure, s(0)), "5 of 10 failed: 50 %");
    }

    #[test]
    fn ejection_time_grows_and_max_percent_caps_but_one_always_can() {
        let r = rules(Some(1), None, 30);
        let mut e = Ejections::default();
        let s = Duration::from_secs;
        assert_eq!(e.eject(&r, id(1), s(0), 4), Some(s(30)), "one member always can be ejected");
        assert_eq!(e.eject(&r, id(2), s(0), 4), None, "2 of 4 is over 30 %");
        assert_eq!(e.next_end(), Some(s(30)));
        assert_eq!(e.expire(s(29)), vec![]);
        assert_eq!(e.expire(s(30)), vec![id(1)]);
        assert!(!e.is_ejected(id(1)));
        assert_eq!(e.eject(&r, id(1), s(40), 4), Some(s(100)), "second ejection: 2 x base");
        assert_eq!(e.eject(&r, id(1), s(41), 4), None, "already ejected");
    }
}
