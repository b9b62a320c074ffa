//! Virtual time: whole microseconds since the start of the run, and its conversions. Every
//! event's path converts seconds and milliseconds to microseconds, so the conversions avoid
//! libm's `round` (not inlined on baseline x86-64) and u64 <-> f64 casts (several instructions
//! each) while rounding exactly as `(x * 1e6).round().max(0.0) as u64` does.

use std::time::Duration;

/// Simulated time in microseconds.
pub(crate) type Micros = u64;

/// Seconds to microseconds, rounded half away from zero; negatives and NaN give 0. The same as
/// `(s * 1e6).round().max(0.0) as u64` for every input.
#[inline]
pub(crate) fn us(s: f64) -> Micros {
    round_us(s * 1e6)
}

/// Milliseconds to microseconds, as [`us`] rounds (one multiplication, no division).
#[inline]
pub(crate) fn us_ms(ms: f64) -> Micros {
    round_us(ms * 1e3)
}

#[inline]
fn round_us(x: f64) -> Micros {
    const EXACT: f64 = (1u64 << 52) as f64;
    if (0.0..EXACT).contains(&x) {
        // Below 2^52 the integer part fits an i64 exactly, and x - i is exact (for i >= 1, x and
        // i are within a factor 2 of each other).
        let i = x as i64;
        (if x - i as f64 >= 0.5 { i + 1 } else { i }) as Micros
    } else {
        // NaN or negative: 0; from 2^52 on every f64 is an integer (the cast saturates).
        x.max(0.0) as Micros
    }
}

/// Microseconds to seconds.
#[inline]
pub(crate) fn secs(t: Micros) -> f64 {
    // i64 -> f64 is one instruction, u64 -> f64 several; the same value below 2^63.
    let f = if let Ok(i) = i64::try_from(t) { i as f64 } else { t as f64 };
    f / 1e6
}

/// Simulated time as the balancer's clock.
#[inline]
pub(crate) fn clock(t: Micros) -> Duration {
    Duration::from_micros(t)
}

#[cfg(test)]
mod tests {
    use super::{secs, us, us_ms};
    use proptest::prelude::*;

    fn reference(s: f64) -> u64 {
        (s * 1e6).round().max(0.0) as u64
    }

    #[test]
    fn us_rounds_like_f64_round_at_the_edges() {
        let edges = [
            0.0,
            -0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.5e-6,
            f64::from_bits(0.5f64.to_bits() - 1) / 1e6,
            2.5e-6,
            1.5,
            ((1u64 << 52) as f64 - 0.5) / 1e6,
            (1u64 << 52) as f64 / 1e6,
            ((1u64 << 52) as f64 + 1.0) / 1e6,
            9.0e9,
            1.0e13,
            f64::MAX,
        ];
        for s in edges {
            assert_eq!(us(s), reference(s), "{s}");
        }
        for t in [0, 1, 999_999, 1 << 53, (1 << 63) - 1, 1 << 63, u64::MAX] {
            assert_eq!(secs(t), t as f64 / 1e6, "{t}");
        }
    }

    proptest! {
        #[test]
        fn us_matches_f64_round(bits in any::<u64>(), s in -1.0e3f64..1.0e10) {
            let x = f64::from_bits(bits);
            prop_assert_eq!(us(x), reference(x));
            prop_assert_eq!(us(s), reference(s));
            prop_assert_eq!(us(s.trunc() + 0.5e-6), reference(s.trunc() + 0.5e-6));
            prop_assert_eq!(us_ms(x), (x * 1e3).round().max(0.0) as u64);
            prop_assert_eq!(us_ms(s), (s * 1e3).round().max(0.0) as u64);
        }
    }
}
