//! Range checks of the `[balancer]` options added for issue 5 (slow start, bounded-load hashing,
//! outlier detection, check intervals), each reported with its path (`LBSIM.1002`).

// Range checks are written `!(x > 0.0)` on purpose: a NaN must fail them.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use crate::balancer::Options;
use crate::model::Collector;

pub(crate) fn check(o: &Options, c: &mut Collector) {
    if let Some(s) = o.slow_start_s {
        if !(s > 0.0 && s.is_finite()) {
            c.invalid("balancer.slow_start_s", format!("must be above 0 (seconds), got {s}"));
        }
    }
    if let Some(f) = o.slow_start_floor {
        if !(0.0..=1.0).contains(&f) {
            c.invalid("balancer.slow_start_floor", format!("must be within 0-1, got {f}"));
        }
    }
    if let Some(f) = o.hash_balance_factor {
        if !(101..=10_000).contains(&f) {
            c.invalid("balancer.hash_balance_factor", format!("must be within 101-10000 (percent), got {f}"));
        }
    }
    let positive =
        [("outlier_interval_s", o.outlier_interval_s), ("outlier_base_ejection_s", o.outlier_base_ejection_s)];
    for (name, v) in positive {
        if let Some(v) = v {
            if !(v > 0.0 && v.is_finite()) {
                c.invalid(format!("balancer.{name}"), format!("must be above 0 (seconds), got {v}"));
            }
        }
    }
    for (name, v) in
        [("outlier_consecutive_errors", o.outlier_consecutive_errors), ("outlier_min_requests", o.outlier_min_requests)]
    {
        if v == Some(0) {
            c.invalid(format!("balancer.{name}"), "must be at least 1");
        }
    }
    if let Some(p) = o.outlier_failure_rate {
        if !(1..=100).contains(&p) {
            c.invalid("balancer.outlier_failure_rate", format!("must be within 1-100 (percent), got {p}"));
        }
    }
    if let Some(p) = o.max_ejection_percent {
        if p > 100 {
            c.invalid("balancer.max_ejection_percent", format!("must be within 0-100 (percent), got {p}"));
        }
    }
    if o.unhealthy_interval == Some(0) {
        c.invalid("balancer.unhealthy_interval", "must be at least 1 (seconds)");
    }
    if let Some(p) = o.interval_jitter_percent {
        if p > 100 {
            c.invalid("balancer.interval_jitter_percent", format!("must be within 0-100 (percent), got {p}"));
        }
    }
    if let Some(r) = &o.retriable_codes {
        if let Err(e) = crate::model::HttpCodes::parse(r) {
            c.invalid("balancer.retriable_codes", e);
        }
    }
}
