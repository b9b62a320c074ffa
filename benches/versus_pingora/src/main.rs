//! lbsim's `Balancer::select` against pingora-load-balancing's `LoadBalancer::select`, in one
//! process, at N = 1024 members with weights 1-5.
//!
//! Cases: a baseline that is the floor under any weighted pick (an atomic counter indexing a
//! precomputed slot array, each member present `weight` times), lbsim's four strategies, and
//! pingora's weighted round robin and Ketama consistent hashing. Each round times every case
//! once, one after the other, so that a noisy neighbour slows all cases of a round alike; the
//! report is each case's median over the rounds, and the ratios that matter: lbsim WRR against
//! the baseline and against pingora's round robin, lbsim's two hash strategies against Ketama.
//!
//! Run from this directory: `cargo run --release` (options: `--rounds N`, `--picks N`).

// A benchmark times with the wall clock, which the repository's clippy.toml bans elsewhere.
#![allow(clippy::disallowed_methods)]

use futures::FutureExt;
use lbsim::{Balancer, Request};
use pingora_load_balancing::selection::{BackendIter, BackendSelection, Consistent, RoundRobin};
use pingora_load_balancing::{discovery, Backend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Members of every balancer.
const N: usize = 1024;
/// Distinct request keys, cycled through (a power of two: the index is a mask).
const KEYS: usize = 4096;

fn weight_of(i: usize) -> usize {
    1 + i % 5
}

/// A 64-bit mix (splitmix64's finalizer): well-spread keys from a counter.
fn spread(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A balancer over a create-VPC-channel body with N members, under `balance_strategy`.
fn lbsim_balancer(balance_strategy: u8) -> Balancer {
    let members: Vec<serde_json::Value> = (0..N)
        .map(|i| serde_json::json!({"host": format!("10.1.{}.{}", i / 256, i % 256), "weight": weight_of(i)}))
        .collect();
    let body = serde_json::json!({
        "name": "versus_pingora", "port": 8080, "balance_strategy": balance_strategy, "member_type": "ip",
        "instance_ids": ["eea73cde015940908ae0117d67bf7330"], "members": members,
    });
    let channel: lbsim::model::VpcChannel = serde_json::from_value(body).expect("a valid channel body");
    Balancer::from_channel(&channel).expect("the channel validates")
}

/// A pingora load balancer over the same N weighted members, its backend set loaded.
fn pingora_balancer<S>() -> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let backends: BTreeSet<Backend> = (0..N)
        .map(|i| {
            let addr = format!("10.1.{}.{}:8080", i / 256, i % 256);
            Backend::new_with_weight(&addr, weight_of(i)).expect("a valid address")
        })
        .collect();
    let lb = LoadBalancer::<S>::from_backends(Backends::new(discovery::Static::new(backends)));
    // Static discovery answers at once: the future is ready on its first poll.
    lb.update().now_or_never().expect("static discovery is ready").expect("the update succeeds");
    lb
}

/// Mean nanoseconds per call of `pick` over `picks` calls (`pick` gets the call's index).
fn ns_per_pick(picks: usize, mut pick: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..picks {
        pick(i);
    }
    start.elapsed().as_nanos() as f64 / picks as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

struct Settings {
    rounds: usize,
    picks: usize,
}

fn settings() -> Settings {
    let mut s = Settings { rounds: 9, picks: 200_000 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<usize>().ok()).filter(|&v| v > 0);
        match (flag.as_str(), value) {
            ("--rounds", Some(v)) => s.rounds = v,
            ("--picks", Some(v)) => s.picks = v,
            _ => {
                eprintln!("usage: versus-pingora [--rounds N] [--picks N]  (N > 0)");
                std::process::exit(2);
            }
        }
    }
    s
}

fn main() {
    let Settings { rounds, picks } = settings();

    // Request keys: client addresses (source-IP hash), paths (URI hash), byte keys (pingora).
    let clients: Vec<IpAddr> = (0..KEYS as u64).map(|k| IpAddr::V4(Ipv4Addr::from(spread(k) as u32))).collect();
    let paths: Vec<String> = (0..KEYS as u64).map(|k| format!("/api/v1/items/{:016x}", spread(k ^ 0xFACE))).collect();
    let by_client: Vec<Request> = clients.iter().map(|&c| Request::new(c, "/")).collect();
    let by_path: Vec<Request> = paths.iter().map(|p| Request::new(clients[0], p)).collect();
    let byte_keys: Vec<[u8; 8]> = (0..KEYS as u64).map(|k| spread(k).to_le_bytes()).collect();
    let mask = KEYS - 1;

    let (wrr, wlc, sh, uri) = (lbsim_balancer(1), lbsim_balancer(2), lbsim_balancer(3), lbsim_balancer(4));
    let rr = pingora_balancer::<RoundRobin>();
    let ketama = pingora_balancer::<Consistent>();
    let slots: Vec<u32> = (0..N).flat_map(|i| std::iter::repeat_n(i as u32, weight_of(i))).collect();
    let counter = AtomicUsize::new(0);

    // A picked member's port is read so that the pick cannot be optimized away; each pick is
    // dropped at once (for WLC, the member's in-flight count goes back down).
    let lbsim_pick = |lb: &Balancer, req: &Request| {
        black_box(lb.select(req).map(|p| p.member().port()).ok());
    };
    type Case<'a> = (&'static str, Box<dyn Fn() -> f64 + 'a>);
    let cases: Vec<Case> = vec![
        (
            "baseline",
            Box::new(|| {
                ns_per_pick(picks, |_| {
                    let c = counter.fetch_add(1, Ordering::Relaxed);
                    black_box(slots[c % slots.len()]);
                })
            }),
        ),
        ("lbsim wrr", Box::new(|| ns_per_pick(picks, |i| lbsim_pick(&wrr, &by_client[i & mask])))),
        ("lbsim wlc", Box::new(|| ns_per_pick(picks, |i| lbsim_pick(&wlc, &by_client[i & mask])))),
        ("lbsim sh", Box::new(|| ns_per_pick(picks, |i| lbsim_pick(&sh, &by_client[i & mask])))),
        ("lbsim uri", Box::new(|| ns_per_pick(picks, |i| lbsim_pick(&uri, &by_path[i & mask])))),
        (
            "pingora rr",
            Box::new(|| {
                ns_per_pick(picks, |i| {
                    black_box(rr.select(&byte_keys[i & mask], 256));
                })
            }),
        ),
        (
            "pingora ketama",
            Box::new(|| {
                ns_per_pick(picks, |i| {
                    black_box(ketama.select(&byte_keys[i & mask], 256));
                })
            }),
        ),
    ];

    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); cases.len()];
    for _ in 0..rounds {
        for (case, out) in cases.iter().zip(samples.iter_mut()) {
            out.push((case.1)());
        }
    }
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    let m = |name: &str| medians[cases.iter().position(|c| c.0 == name).expect("a known case")];

    println!("N = {N} members, weights 1-5; {rounds} interleaved rounds of {picks} picks; medians");
    for (case, ns) in cases.iter().zip(&medians) {
        println!("  {:<16} {:>8.1} ns/pick", case.0, ns);
    }
    println!("ratios:");
    println!("  lbsim wrr / baseline          {:>6.1}x", m("lbsim wrr") / m("baseline"));
    println!("  pingora rr / lbsim wrr        {:>6.1}x", m("pingora rr") / m("lbsim wrr"));
    println!("  pingora rr / lbsim wlc        {:>6.1}x", m("pingora rr") / m("lbsim wlc"));
    println!("  pingora ketama / lbsim sh     {:>6.1}x", m("pingora ketama") / m("lbsim sh"));
    println!("  pingora ketama / lbsim uri    {:>6.1}x", m("pingora ketama") / m("lbsim uri"));
}
