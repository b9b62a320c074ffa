//! Traffic models (`[traffic]`): arrival processes, client and URI popularity, service times.

use crate::model::Collector;
use rand::Rng;
use rand_distr::{Exp1, StandardNormal};
use serde::{Deserialize, Deserializer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `[traffic]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Traffic {
    /// Mean arrival rate (requests per second) for `poisson` and `constant`.
    pub rate_rps: f64,
    pub arrival: Arrival,
    /// Distinct client source addresses.
    pub clients: u32,
    /// Zipf exponent of client popularity (0: uniform).
    pub client_zipf: f64,
    /// Fraction of clients with IPv6 addresses (0-1).
    pub ipv6_fraction: f64,
    /// Distinct request paths.
    pub uris: u32,
    pub uri_zipf: f64,
    pub service_time_ms: ServiceTime,
    /// An attempt unanswered by then fails (and may be retried).
    pub request_timeout_ms: f64,
    /// Failed attempts (refused, reset, timed out, 503 from a full queue) are retried on another
    /// member up to this many times; a 5xx answer is not.
    pub retries: u32,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            rate_rps: 1000.0,
            arrival: Arrival::Poisson,
            clients: 1000,
            client_zipf: 1.0,
            ipv6_fraction: 0.0,
            uris: 1000,
            uri_zipf: 1.0,
            service_time_ms: ServiceTime::Exponential { mean: 10.0 },
            request_timeout_ms: 30_000.0,
            retries: 0,
        }
    }
}

/// How requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Exponential gaps at `rate_rps`.
    Poisson,
    /// Evenly spaced at `rate_rps`.
    Constant,
    /// Poisson at `peak_rps` for `on_s`, then nothing for `off_s`, in turns.
    Bursts { on_s: f64, off_s: f64, peak_rps: f64 },
    /// Poisson with a rate that follows a cosine between `min_rps` (at 0) and `max_rps` (at half
    /// the period).
    Daily { period_s: f64, min_rps: f64, max_rps: f64 },
}

impl<'de> Deserialize<'de> for Arrival {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
        enum Table {
            Poisson,
            Constant,
            Bursts { on_s: f64, off_s: f64, peak_rps: f64 },
            Daily { period_s: f64, min_rps: f64, max_rps: f64 },
        }
        let v = serde_json::Value::deserialize(d)?;
        if let Some(s) = v.as_str() {
            return match s {
                "poisson" => Ok(Arrival::Poisson),
                "constant" => Ok(Arrival::Constant),
                other => Err(D::Error::custom(format!(
                    "`{other}` is not an arrival process: poisson, constant, or a table with kind = \"bursts\" or \"daily\""
                ))),
            };
        }
        Ok(match Table::deserialize(v).map_err(D::Error::custom)? {
            Table::Poisson => Arrival::Poisson,
            Table::Constant => Arrival::Constant,
            Table::Bursts { on_s, off_s, peak_rps } => Arrival::Bursts { on_s, off_s, peak_rps },
            Table::Daily { period_s, min_rps, max_rps } => Arrival::Daily { period_s, min_rps, max_rps },
        })
    }
}

/// Service-time distribution of a member at speed 1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceTime {
    Fixed {
        value: f64,
    },
    Exponential {
        mean: f64,
    },
    /// Given by its median and 99th percentile.
    Lognormal {
        median: f64,
        p99: f64,
    },
}

impl ServiceTime {
    /// A draw in milliseconds.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        self.sampler().sample(rng)
    }

    /// The distribution with its parameters worked out once, for drawing many times.
    pub fn sampler(&self) -> ServiceSampler {
        match *self {
            ServiceTime::Fixed { value } => ServiceSampler::Fixed(value),
            ServiceTime::Exponential { mean } => ServiceSampler::Exponential(mean),
            ServiceTime::Lognormal { median, p99 } => {
                ServiceSampler::Lognormal { median, sigma: (p99 / median).ln() / Z99 }
            }
        }
    }

    /// The median in milliseconds (what a health probe's answer takes).
    pub fn median(&self) -> f64 {
        match *self {
            ServiceTime::Fixed { value } => value,
            ServiceTime::Exponential { mean } => mean * std::f64::consts::LN_2,
            ServiceTime::Lognormal { median, .. } => median,
        }
    }
}

/// A [`ServiceTime`] ready to draw from (the lognormal's sigma computed once).
#[derive(Debug, Clone, Copy)]
pub enum ServiceSampler {
    Fixed(f64),
    Exponential(f64),
    Lognormal { median: f64, sigma: f64 },
}

impl ServiceSampler {
    /// A draw in milliseconds.
    #[inline]
    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        match *self {
            ServiceSampler::Fixed(value) => value,
            ServiceSampler::Exponential(mean) => mean * rng.sample::<f64, _>(Exp1),
            ServiceSampler::Lognormal { median, sigma } => {
                median * (sigma * rng.sample::<f64, _>(StandardNormal)).exp()
            }
        }
    }
}

/// The standard normal's 99th percentile.
const Z99: f64 = 2.326_347_874_040_841;

/// A 64-bit mix of two values (splitmix64's finalizer over their combination): seeds of the
/// random streams and the addresses of simulated clients.
pub(crate) fn mix_seed(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The source address of client `index` (of `[traffic] clients`) in a scenario with this seed:
/// 10.0.0.0/8 for IPv4, 2001:db8::/32 for the `ipv6_fraction` of clients with IPv6. The
/// simulator and the live load generator both use it, so that a client has the same address in
/// both modes.
pub fn client_addr(seed: u64, index: u32, ipv6_fraction: f64) -> IpAddr {
    let h = mix_seed(seed ^ 0xC11E, u64::from(index));
    let v6 = ((h >> 11) as f64 / (1u64 << 53) as f64) < ipv6_fraction;
    if v6 {
        IpAddr::V6(Ipv6Addr::from(0x2001_0db8u128 << 96 | u128::from(h)))
    } else {
        IpAddr::V4(Ipv4Addr::from((10u32 << 24) | (h as u32 & 0x00FF_FFFF)))
    }
}

impl Traffic {
    pub(crate) fn check(&self, c: &mut Collector, path: &str) {
        let pos = |c: &mut Collector, f: &str, v: f64| {
            if !(v > 0.0 && v.is_finite()) {
                c.invalid(format!("{path}.{f}"), format!("must be above 0, got {v}"));
            }
        };
        let nonneg = |c: &mut Collector, f: &str, v: f64| {
            if !(v >= 0.0 && v.is_finite()) {
                c.invalid(format!("{path}.{f}"), format!("must be 0 or more, got {v}"));
            }
        };
        pos(c, "rate_rps", self.rate_rps);
        match self.arrival {
            Arrival::Bursts { on_s, off_s, peak_rps } => {
                pos(c, "arrival.on_s", on_s);
                nonneg(c, "arrival.off_s", off_s);
                pos(c, "arrival.peak_rps", peak_rps);
            }
            Arrival::Daily { period_s, min_rps, max_rps } => {
                pos(c, "arrival.period_s", period_s);
                nonneg(c, "arrival.min_rps", min_rps);
                pos(c, "arrival.max_rps", max_rps);
                if max_rps < min_rps {
                    c.invalid(
                        format!("{path}.arrival.max_rps"),
                        format!("must be at least min_rps ({min_rps}), got {max_rps}"),
                    );
                }
            }
            _ => {}
        }
        for (f, n) in [("clients", self.clients), ("uris", self.uris)] {
            if n == 0 || n > 10_000_000 {
                c.invalid(format!("{path}.{f}"), format!("must be within 1-10000000, got {n}"));
            }
        }
        nonneg(c, "client_zipf", self.client_zipf);
        nonneg(c, "uri_zipf", self.uri_zipf);
        if !(0.0..=1.0).contains(&self.ipv6_fraction) {
            c.invalid(format!("{path}.ipv6_fraction"), format!("must be within 0-1, got {}", self.ipv6_fraction));
        }
        match self.service_time_ms {
            ServiceTime::Fixed { value } => nonneg(c, "service_time_ms.value", value),
            ServiceTime::Exponential { mean } => pos(c, "service_time_ms.mean", mean),
            ServiceTime::Lognormal { median, p99 } => {
                pos(c, "service_time_ms.median", median);
                if !(p99 > median && p99.is_finite()) {
                    c.invalid(
                        format!("{path}.service_time_ms.p99"),
                        format!("must be above the median ({median}), got {p99}"),
                    );
                }
            }
        }
        pos(c, "request_timeout_ms", self.request_timeout_ms);
        if self.retries > 100 {
            c.invalid(format!("{path}.retries"), format!("must be within 0-100, got {}", self.retries));
        }
    }

    /// Gap in seconds from `t` to the next arrival.
    #[inline]
    pub fn next_gap<R: Rng>(&self, t: f64, rng: &mut R) -> f64 {
        let exp = |rng: &mut R, rate: f64| rng.sample::<f64, _>(Exp1) / rate;
        match self.arrival {
            Arrival::Poisson => exp(rng, self.rate_rps),
            Arrival::Constant => 1.0 / self.rate_rps,
            Arrival::Bursts { on_s, off_s, peak_rps } => {
                let period = on_s + off_s;
                let gap = exp(rng, peak_rps);
                let phase = (t + gap) % period;
                if phase < on_s {
                    gap
                } else {
                    // Skip to the start of the next on-phase.
                    gap + (period - phase)
                }
            }
            Arrival::Daily { period_s, min_rps, max_rps } => {
                // Thinning (Lewis-Shedler): candidates at max_rps, kept with rate(t)/max_rps.
                let mut s = t;
                loop {
                    s += exp(rng, max_rps);
                    let phase = (s % period_s) / period_s;
                    let rate = min_rps + (max_rps - min_rps) * 0.5 * (1.0 - (std::f64::consts::TAU * phase).cos());
                    if rng.gen::<f64>() * max_rps <= rate || s - t > period_s * 4.0 {
                        return s - t;
                    }
                }
            }
        }
    }
}

/// Draws indices `0..n` with Zipf(s) popularity in O(1) (Vose's alias method; rand_distr's
/// Zipf sampler rejects and takes powers on every draw, several times slower at this rate).
#[derive(Debug, Clone)]
pub struct Popularity {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Popularity {
    pub fn zipf(n: u32, s: f64) -> Popularity {
        let n = n.max(1) as usize;
        let w: Vec<f64> = (1..=n).map(|k| if s == 0.0 { 1.0 } else { (k as f64).powf(-s) }).collect();
        let total: f64 = w.iter().sum();
        let mut prob: Vec<f64> = w.iter().map(|x| x * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s_i), Some(&l_i)) = (small.pop(), large.last()) {
            alias[s_i] = l_i as u32;
            prob[l_i] -= 1.0 - prob[s_i];
            if prob[l_i] < 1.0 {
                large.pop();
                small.push(l_i);
            }
        }
        for i in small.into_iter().chain(large) {
            prob[i] = 1.0;
        }
        Popularity { prob, alias }
    }

    #[inline]
    pub fn sample<R: Rng>(&self, rng: &mut R) -> u32 {
        let x = rng.gen::<f64>() * self.prob.len() as f64;
        let i = (x as usize).min(self.prob.len() - 1);
        if x - (i as f64) < self.prob[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_alias_matches_the_distribution() {
        let p = Popularity::zipf(100, 1.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut counts = vec![0u32; 100];
        let n = 400_000;
        for _ in 0..n {
            counts[p.sample(&mut rng) as usize] += 1;
        }
        let h: f64 = (1..=100).map(|k| 1.0 / k as f64).sum();
        for (k, &c) in counts.iter().enumerate().take(10) {
            let expected = n as f64 / ((k + 1) as f64 * h);
            assert!((f64::from(c) - expected).abs() < 5.0 * expected.sqrt(), "rank {k}: {c} vs {expected}");
        }
        let u = Popularity::zipf(4, 0.0);
        let mut c = [0u32; 4];
        for _ in 0..40_000 {
            c[u.sample(&mut rng) as usize] += 1;
        }
        assert!(c.iter().all(|&x| (9_400..10_600).contains(&x)), "{c:?}");
    }

    #[test]
    fn lognormal_median_and_p99() {
        let st = ServiceTime::Lognormal { median: 20.0, p99: 200.0 };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut v: Vec<f64> = (0..200_000).map(|_| st.sample(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        let med = v[100_000];
        let p99 = v[198_000];
        assert!((med - 20.0).abs() < 0.5, "median {med}");
        assert!((p99 - 200.0).abs() < 10.0, "p99 {p99}");
    }

    #[test]
    fn bursts_only_arrive_in_on_phases() {
        let t = Traffic { arrival: Arrival::Bursts { on_s: 1.0, off_s: 3.0, peak_rps: 1000.0 }, ..Traffic::default() };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut now = 0.0;
        let mut n = 0;
        while now < 40.0 {
            now += t.next_gap(now, &mut rng);
            assert!(now % 4.0 < 1.0 + 1e-9, "arrival at {now}");
            n += 1;
        }
        assert!((9_000..11_000).contains(&n), "{n} arrivals in 10 on-seconds");
    }
}
