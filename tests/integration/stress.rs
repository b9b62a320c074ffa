//! Concurrency stress: many threads pick (`select`, `select_excluding`), holding picks open and
//! dropping them in random order, while one thread keeps replacing the member set (`update`) and
//! flipping members' health. Bounded by iteration counts, not time.
//!
//! What must hold:
//! - no panic, no deadlock (the test ends);
//! - a pick is always a member that was eligible in some configuration published between the
//!   moment the pick started and the moment it returned (a pick never sees a configuration that
//!   was already replaced when it started), and a retry never returns a member it excluded;
//! - `select` fails only when some configuration in that window had no eligible member;
//! - once every pick is dropped, every member's in-flight count is back to 0, including members
//!   that were removed and re-added while their picks were open.

use crate::support::{channel, channel_json, host};
use lbsim::health::Outcome;
use lbsim::{Balancer, MemberId, Request};
use parking_lot::RwLock;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

const POOL: usize = 10;
const PICKERS: usize = 6;
/// Each picker picks at least this many times, and goes on until the updater has made
/// `MIN_UPDATES` changes, up to `MAX_PICKS`.
const PICKS_PER_THREAD: usize = 20_000;
const MAX_PICKS: usize = 2_000_000;
const MIN_UPDATES: usize = 200;
const MAX_UPDATES: usize = 4_000;

/// A small xorshift generator: each thread gets its own seed, so a failure names its inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One member of a configuration, as the updater sets it.
#[derive(Clone, Copy)]
struct Spec {
    index: usize,
    weight: i64,
    disabled: bool,
    backup: bool,
}

fn body(strategy: i64, specs: &[Spec]) -> lbsim::model::VpcChannel {
    let members = specs
        .iter()
        .map(|s| {
            json!({"host": host(s.index), "weight": s.weight, "status": if s.disabled { 2 } else { 1 },
                "is_backup": s.backup})
        })
        .collect();
    let mut v = channel_json(strategy, members, vec![]);
    v["vpc_health_config"] = json!({"protocol": "TCP", "threshold_normal": 1, "threshold_abnormal": 1,
        "time_interval": 5, "timeout": 2});
    channel(v)
}

fn id(i: usize) -> MemberId {
    MemberId::new(&host(i), 8080)
}

/// architecture.md §3, computed apart from the balancer: enabled (status 1, weight > 0) and healthy;
/// backups only when no primary is eligible.
fn eligible(specs: &[Spec], healthy: &[bool; POOL]) -> BTreeSet<MemberId> {
    let ok = |s: &&Spec| !s.disabled && s.weight > 0 && healthy[s.index];
    let primaries: BTreeSet<MemberId> = specs.iter().filter(ok).filter(|s| !s.backup).map(|s| id(s.index)).collect();
    if !primaries.is_empty() {
        return primaries;
    }
    specs.iter().filter(ok).map(|s| id(s.index)).collect()
}

fn random_specs(rng: &mut Rng) -> Vec<Spec> {
    let mut specs = Vec::new();
    for index in 0..POOL {
        if rng.below(4) != 0 {
            let weight = [0, 1, 1, 2, 5, 100][rng.below(6)];
            specs.push(Spec { index, weight, disabled: rng.below(6) == 0, backup: rng.below(4) == 0 });
        }
    }
    if specs.is_empty() {
        vec![Spec { index: rng.below(POOL), weight: 1, disabled: false, backup: false }]
    } else {
        specs
    }
}

/// The configurations published so far: entry `v` is the eligible set after the `v`-th change.
/// The updater holds the write lock while it changes the balancer.
type History = RwLock<Vec<BTreeSet<MemberId>>>;

fn stress(strategy: i64, seed: u64) {
    let mut rng = Rng(seed);
    let first = random_specs(&mut rng);
    // The smallest hash table: cheap rebuilds, so that updates come often.
    let lb = Balancer::builder(&body(strategy, &first))
        .track_in_flight(true)
        .hash_table_bits(12)
        .build()
        .expect("valid channel");
    let mut healthy = [true; POOL];
    let history: History = RwLock::new(vec![eligible(&first, &healthy)]);
    let done = AtomicUsize::new(0);

    std::thread::scope(|s| {
        for t in 0..PICKERS {
            let (lb, history, done) = (&lb, &history, &done);
            s.spawn(move || {
                picker(lb, history, Rng(seed ^ (0x9e37_79b9 * (t as u64 + 1))), t);
                done.fetch_add(1, Ordering::Release);
            });
        }
        let (lb, history, done) = (&lb, &history, &done);
        s.spawn(move || {
            let mut specs = first;
            for round in 0..MAX_UPDATES {
                if done.load(Ordering::Acquire) == PICKERS {
                    break;
                }
                // The history lock is held across the change, so a picker that reads the history
                // after its pick sees every configuration the pick could have seen.
                let mut published = history.write();
                if round % 3 == 0 {
                    // A health transition of a configured member (thresholds are 1: one result flips it).
                    let s = specs[rng.below(specs.len())];
                    let outcome = if healthy[s.index] { Outcome::Failure } else { Outcome::Success };
                    if lb.health().record(id(s.index), outcome).is_some() {
                        healthy[s.index] = !healthy[s.index];
                    }
                } else {
                    let next = random_specs(&mut rng);
                    // A member that leaves the channel comes back with a fresh health state.
                    for (i, h) in healthy.iter_mut().enumerate() {
                        if !next.iter().any(|s| s.index == i) {
                            *h = true;
                        }
                    }
                    lb.update(&body(strategy, &next)).expect("valid update");
                    specs = next;
                }
                let expected = eligible(&specs, &healthy);
                let reported: BTreeSet<MemberId> =
                    lb.members().iter().filter(|m| m.eligible).map(|m| m.member.id()).collect();
                assert_eq!(reported, expected, "strategy {strategy}: eligibility after round {round}");
                published.push(expected);
            }
        });
    });

    // Every pick has been dropped: bring every identity back and check its count.
    let all: Vec<Spec> = (0..POOL).map(|index| Spec { index, weight: 1, disabled: false, backup: false }).collect();
    lb.update(&body(strategy, &all)).expect("valid update");
    for m in lb.members() {
        assert_eq!(m.in_flight, 0, "strategy {strategy}: {} still counts open picks", m.member.id());
    }
    assert!(history.read().len() > MIN_UPDATES, "strategy {strategy}: the updater barely ran");
}

fn picker(lb: &Balancer, history: &History, mut rng: Rng, thread: usize) {
    let updates = || history.read().len() - 1;
    let mut held = Vec::new();
    let client = std::net::IpAddr::from([192, 0, 2, thread as u8]);
    let mut uri = String::with_capacity(32);
    for n in 0..MAX_PICKS {
        if n >= PICKS_PER_THREAD && updates() >= MIN_UPDATES {
            break;
        }
        uri.clear();
        uri.push_str("/item/");
        uri.push_str(&rng.below(1000).to_string());
        let req = Request::new(client, &uri);
        let before = history.read().len() - 1;
        let first = lb.select(&req);
        let retry_of = first.as_ref().ok().map(|p| p.member().id()).filter(|_| rng.below(4) == 0);
        let retry = retry_of.map(|tried| (tried, lb.select_excluding(&req, &[tried])));
        let after = history.read().len();
        let window: Vec<BTreeSet<MemberId>> = history.read()[before..after].to_vec();
        let seen_in_window = |m: MemberId| window.iter().any(|set| set.contains(&m));
        match &first {
            Ok(p) => assert!(
                seen_in_window(p.member().id()),
                "thread {thread} pick {n}: {} was not eligible in any configuration {before}..{after}",
                p.member().id()
            ),
            Err(e) => assert!(
                window.iter().any(BTreeSet::is_empty),
                "thread {thread} pick {n}: `{e}` while every configuration {before}..{after} had a member"
            ),
        }
        if let Some((tried, Ok(p))) = &retry {
            assert_ne!(p.member().id(), *tried, "thread {thread} pick {n}: a retry returned the member it excluded");
            assert!(seen_in_window(p.member().id()), "thread {thread} pick {n}: retry picked an ineligible member");
        }
        // Hold up to 32 picks open; drop a random one now and then, out of order.
        held.extend(first.ok());
        held.extend(retry.and_then(|(_, r)| r.ok()));
        while held.len() > 32 || (!held.is_empty() && rng.below(3) == 0) {
            let i = rng.below(held.len());
            drop(held.swap_remove(i));
        }
    }
}

#[test]
fn wrr_under_concurrent_updates() {
    stress(1, 0x5eed_0001);
}

#[test]
fn wlc_under_concurrent_updates() {
    stress(2, 0x5eed_0002);
}

#[test]
fn source_ip_hash_under_concurrent_updates() {
    stress(3, 0x5eed_0003);
}

#[test]
fn uri_hash_under_concurrent_updates() {
    stress(4, 0x5eed_0004);
}
