//! Selection speed: each strategy at N = 8, 64 and 1024 members with mixed weights (1-5), on one
//! thread and on two threads picking from one shared balancer, against the physical limit
//! measured in the same run (an atomic counter indexing a precomputed slot array).
//!
//!     cargo bench --bench select
//!
//! `health_flip/` times what one member's health change costs (the snapshot rebuilds).
//!
//! Inputs (keys, URIs, balancers) are prepared before timing. Two-thread benches count one
//! element per pick, so criterion's elements/s compare directly with the one-thread figure.
// The two-thread benches time their own rounds.
#![allow(clippy::disallowed_methods)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lbsim::health::Outcome;
use lbsim::model::VpcChannel;
use lbsim::{Balancer, Pick, Request};
use std::collections::VecDeque;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [8, 64, 1024];
const KEYS: usize = 4096;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn weight(i: usize) -> usize {
    i % 5 + 1
}

/// N members with weights 1-5, a health check configured, and one backup (not selected while
/// primaries are healthy): health and backups are in force.
fn balancer(strategy: u8, n: usize) -> Balancer {
    let mut members: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"host":"10.{}.{}.{}","weight":{}}}"#, i / 65536, (i / 256) % 256, i % 256, weight(i)))
        .collect();
    members.push(r#"{"host":"10.255.255.254","weight":1,"is_backup":true}"#.to_string());
    let body = format!(
        r#"{{"name":"bench","port":8080,"balance_strategy":{strategy},"member_type":"ip","instance_ids":["eea73cde015940908ae0117d67bf7330"],
        "vpc_health_config":{{"protocol":"TCP","threshold_normal":2,"threshold_abnormal":3,"time_interval":10,"timeout":5}},
        "members":[{}]}}"#,
        members.join(",")
    );
    let ch: VpcChannel = serde_json::from_str(&body).expect("bench channel parses");
    Balancer::from_channel(&ch).expect("bench channel is valid")
}

struct Keys {
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
    uris: Vec<String>,
}

fn keys() -> Keys {
    Keys {
        v4: (0..KEYS as u64).map(|i| IpAddr::V4(Ipv4Addr::from(mix(i) as u32))).collect(),
        v6: (0..KEYS as u64)
            .map(|i| IpAddr::V6(Ipv6Addr::from((u128::from(mix(i)) << 64) | u128::from(mix(!i)))))
            .collect(),
        // 40 bytes: "/api/v1/catalog/items/" (22) + 16 hex + "/x" (2).
        uris: (0..KEYS as u64).map(|i| format!("/api/v1/catalog/items/{:016x}/x", mix(i))).collect(),
    }
}

/// One pick by key index, shared by two threads.
type PickFn<'a> = Box<dyn Fn(u64) + Sync + 'a>;

/// Runs `f(i)` for `iters` picks on each of two threads; returns the wall time of both.
fn two_threads(iters: u64, f: &(dyn Fn(u64) + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                for i in 0..iters {
                    f(i.wrapping_mul(2).wrapping_add(t));
                }
            });
        }
    });
    start.elapsed()
}

fn bench_select(c: &mut Criterion) {
    let k = keys();
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("select/n{n}"));
        g.throughput(Throughput::Elements(1));
        g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));

        let slots: Vec<u32> = (0..n).flat_map(|i| std::iter::repeat_n(i as u32, weight(i))).collect();
        let ctr = AtomicU64::new(0);
        g.bench_function("baseline", |b| {
            b.iter(|| black_box(slots[ctr.fetch_add(1, Ordering::Relaxed) as usize % slots.len()]))
        });

        let wrr = balancer(1, n);
        let req = Request::new(ip, "/");
        g.bench_function("wrr", |b| b.iter(|| black_box(wrr.select(&req).map(|p| p.member().port()).ok())));

        let wlc = balancer(2, n);
        g.bench_function("wlc_idle", |b| b.iter(|| black_box(wlc.select(&req).map(|p| p.member().port()).ok())));
        // Realistic load: a rolling window of 8 open picks per member (WLC spreads them by
        // weight: about 3-13 in flight per member), one opened and the oldest closed per pick.
        g.bench_function("wlc_loaded", |b| {
            let mut open: VecDeque<Pick<'_>> = VecDeque::with_capacity(8 * n + 1);
            for _ in 0..8 * n {
                open.push_back(wlc.select(&req).expect("pick"));
            }
            b.iter(|| {
                open.push_back(wlc.select(&req).expect("pick"));
                black_box(open.pop_front());
            });
        });

        let sh = balancer(3, n);
        let v4: Vec<Request<'_>> = k.v4.iter().map(|&a| Request::new(a, "/")).collect();
        let v6: Vec<Request<'_>> = k.v6.iter().map(|&a| Request::new(a, "/")).collect();
        g.bench_function("sh_ipv4", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                black_box(sh.select(&v4[i]).map(|p| p.member().port()).ok())
            })
        });
        g.bench_function("sh_ipv6", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                black_box(sh.select(&v6[i]).map(|p| p.member().port()).ok())
            })
        });
        let uri = balancer(4, n);
        let uris: Vec<Request<'_>> = k.uris.iter().map(|u| Request::new(ip, u)).collect();
        g.bench_function("uri_40b", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                black_box(uri.select(&uris[i]).map(|p| p.member().port()).ok())
            })
        });
        g.finish();

        let mut g = c.benchmark_group(format!("select_2threads/n{n}"));
        g.throughput(Throughput::Elements(2));
        g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
        let cases: [(&str, PickFn<'_>); 5] = [
            (
                "baseline",
                Box::new(|_| {
                    black_box(slots[ctr.fetch_add(1, Ordering::Relaxed) as usize % slots.len()]);
                }),
            ),
            (
                "wrr",
                Box::new(|_| {
                    black_box(wrr.select(&req).map(|p| p.member().port()).ok());
                }),
            ),
            (
                "wlc_idle",
                Box::new(|_| {
                    black_box(wlc.select(&req).map(|p| p.member().port()).ok());
                }),
            ),
            (
                "sh_ipv4",
                Box::new(|i| {
                    black_box(sh.select(&v4[i as usize & (KEYS - 1)]).map(|p| p.member().port()).ok());
                }),
            ),
            (
                "uri_40b",
                Box::new(|i| {
                    black_box(uri.select(&uris[i as usize & (KEYS - 1)]).map(|p| p.member().port()).ok());
                }),
            ),
        ];
        for (name, f) in &cases {
            g.bench_with_input(BenchmarkId::from_parameter(name), f, |b, f| {
                b.iter_custom(|iters| two_threads(iters, f))
            });
        }
        g.finish();
    }
}

/// What a change of the eligible set costs: one member marked unhealthy and brought back (two
/// snapshot rebuilds) per iteration. The hash strategies carry their bucket table over instead of
/// building it whole (`src/balancer/table.rs`).
fn bench_health_flip(c: &mut Criterion) {
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("health_flip/n{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
        for (name, strategy) in [("wrr", 1), ("wlc", 2), ("sh", 3), ("uri", 4)] {
            let lb = balancer(strategy, n);
            let id = lb.members()[n / 2].member.id();
            g.bench_function(name, |b| {
                b.iter(|| {
                    lb.health().force_unhealthy(id);
                    // threshold_normal is 2.
                    lb.health().record(id, Outcome::Success);
                    black_box(lb.health().record(id, Outcome::Success))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_select, bench_health_flip);
criterion_main!(benches);
