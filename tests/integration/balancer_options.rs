//! Issue 5's balancer options through the public API: slow start, bounded-load hashing,
//! outlier detection (passive health). Each is off by default.

use crate::support::*;
use lbsim::balancer::MemberId;
use lbsim::health::Outcome;
use lbsim::{Balancer, Request};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn id(i: usize) -> MemberId {
    MemberId::new(&host(i), 8080)
}

/// Four members of weight 1 with a check (thresholds 1/1), under `strategy`.
fn four(strategy: i64) -> lbsim::model::VpcChannel {
    channel(with_check(
        channel_json(strategy, (0..4).map(|i| json!({"host": host(i), "weight": 1})).collect(), vec![]),
        1,
        1,
    ))
}

fn client(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + n))
}

/// Picks `n` requests (distinct clients and URIs from `next`), each ended at once; how many went
/// to `who`.
fn count(lb: &Balancer, who: MemberId, n: u32, next: &mut u32) -> u32 {
    let mut hits = 0;
    for _ in 0..n {
        *next += 1;
        let uri = format!("/k/{next}");
        let p = lb.select(&Request::new(client(*next), &uri)).unwrap();
        hits += u32::from(p.member().id() == who);
    }
    hits
}

/// The recovered member's share in each of 10 windows of `slow_start_s / 10` after it recovers,
/// then over the window after the ramp.
fn ramp_shares(strategy: i64, slow_start: bool) -> (Vec<f64>, f64) {
    let ch = four(strategy);
    let mut b = Balancer::builder(&ch);
    if slow_start {
        b = b.slow_start(Duration::from_secs(10), 0.1);
    }
    let lb = b.build().unwrap();
    lb.tick(Duration::from_secs(1));
    lb.health().record(id(3), Outcome::Failure);
    assert!(!lb.members()[3].eligible);
    let t0 = Duration::from_secs(100);
    assert!(lb.health().record_at(id(3), Outcome::Success, t0).is_some());
    let (per_window, sub) = (2000u32, 10u32);
    let mut next = 0;
    let mut shares = Vec::new();
    for w in 0..10u32 {
        let mut hits = 0;
        for s in 0..sub {
            lb.tick(t0 + Duration::from_millis(u64::from(w * 1000 + s * 100)));
            hits += count(&lb, id(3), per_window / sub, &mut next);
        }
        shares.push(f64::from(hits) / f64::from(per_window));
    }
    lb.tick(t0 + Duration::from_secs(10));
    assert_eq!(lb.next_tick(), None, "no tick is needed once the ramp is over");
    let after = f64::from(count(&lb, id(3), per_window, &mut next)) / f64::from(per_window);
    (shares, after)
}

#[test]
fn slow_start_ramps_a_recovered_members_share_for_every_strategy() {
    for strategy in [1, 2, 3, 4] {
        let (shares, after) = ramp_shares(strategy, true);
        // Floor 0.1 among three others of weight 1: 0.1 / 3.1 = 3.2 % at the first step, 5.3 % at
        // the second (0.5 s later): the first window averages about 4 %.
        assert!(shares[0] > 0.01 && shares[0] < 0.08, "strategy {strategy}: first window {shares:?}");
        let windows: Vec<(f64, f64)> = shares.iter().map(|&s| (s, 2000.0)).collect();
        crate::support::assert_ramp_never_falls(&windows, &format!("strategy {strategy}"));
        assert!(shares[9] > 0.19, "strategy {strategy}: near full weight at the end {shares:?}");
        assert!((after - 0.25).abs() < 0.04, "strategy {strategy}: full share after the ramp, {after}");
        // Without slow start the member takes its full share at once.
        let (off, _) = ramp_shares(strategy, false);
        assert!((off[0] - 0.25).abs() < 0.04, "strategy {strategy}: no ramp when off {off:?}");
    }
}

#[test]
fn slow_start_wrr_shares_follow_the_scaled_weights_exactly() {
    let lb = Balancer::builder(&four(1)).slow_start(Duration::from_secs(20), 0.5).build().unwrap();
    lb.health().record(id(0), Outcome::Failure);
    lb.health().record_at(id(0), Outcome::Success, Duration::from_secs(5));
    // Step 0: weights 50, 100, 100, 100 (scaled by 100): one period of 350 picks gives 50.
    let mut next = 0;
    assert_eq!(count(&lb, id(0), 350, &mut next), 50);
    assert_eq!(lb.next_tick(), Some(Duration::from_secs(6)), "20 steps over 20 s");
    lb.tick(Duration::from_secs(15));
    // Step 10: 0.5 + 0.5 x 10 / 20 = 0.75: weights 75, 100, 100, 100, a period of 375.
    assert_eq!(count(&lb, id(0), 375, &mut next), 75);
    assert!((lb.members()[0].expected_share - 75.0 / 375.0).abs() < 1e-9, "expected shares follow the ramp");
}

#[test]
fn slow_start_applies_to_a_member_added_by_update_but_not_to_the_initial_ones() {
    let three = channel(channel_json(1, (0..3).map(|i| json!({"host": host(i)})).collect(), vec![]));
    let lb = Balancer::builder(&three).slow_start(Duration::from_secs(10), 0.1).build().unwrap();
    assert_eq!(lb.next_tick(), None, "the members a balancer starts with do not ramp");
    lb.tick(Duration::from_secs(3));
    lb.update(&four(1)).unwrap();
    assert_eq!(lb.next_tick(), Some(Duration::from_millis(3500)));
    let mut next = 0;
    // Weights 100, 100, 100, 10: 1 in 31.
    assert_eq!(count(&lb, id(3), 310, &mut next), 10);
}

/// Four members of weight 1 under URI hash (4) with bounded loads at `factor`.
fn bounded(factor: u32, weights: &[i64]) -> Balancer {
    let ch = channel(channel_json(
        4,
        weights.iter().enumerate().map(|(i, &w)| json!({"host": host(i), "weight": w})).collect(),
        vec![],
    ));
    Balancer::builder(&ch).hash_balance_factor(factor).build().unwrap()
}

#[test]
fn bounded_load_overflow_walks_the_keys_preference_order_exactly() {
    let lb = bounded(125, &[1, 1, 1, 1]);
    let req = Request::new(client(1), "/hot");
    let pref = lb.preference(&req);
    assert_eq!(pref.len(), 4);
    // Held picks of one key: member i accepts while 100 x in_flight_i < 125 x (T + 1) / 4.
    // T=0: first. T=1: first has 1 (100 >= 62.5): second. T=2: third. T=3 (cap 125): first.
    // T=4 (156.25): first has 2, second 1: second. T=5 (187.5): third. T=6 (218.75): first has
    // 2 (200): first. T=7 (250): first has 3: second.
    let mut held = Vec::new();
    let mut got = Vec::new();
    for _ in 0..8 {
        let p = lb.select(&req).unwrap();
        got.push(pref.iter().position(|&m| m == p.member().id()).unwrap());
        held.push(p);
    }
    assert_eq!(got, [0, 1, 2, 0, 1, 2, 0, 1]);
    assert_eq!(lb.bounded_load_stats(), Some((8, 5)));
    drop(held);
    assert!(lb.members().iter().all(|m| m.in_flight == 0), "every pick's count ends with it");
    let p = lb.select(&req).unwrap();
    assert_eq!(p.member().id(), pref[0], "back to the first choice once loads drop");
    // Off by default: the same key always goes to its first choice.
    let plain =
        Balancer::from_channel(&channel(channel_json(4, (0..4).map(|i| json!({"host": host(i)})).collect(), vec![])))
            .unwrap();
    let held: Vec<_> = (0..8).map(|_| plain.select(&req).unwrap()).collect();
    assert!(held.iter().all(|p| p.member().id() == pref[0]));
    assert_eq!(plain.bounded_load_stats(), None);
}

/// xorshift64*: a fixed pseudo-random sequence for the tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn bounded_load_keeps_every_member_within_the_factor_under_a_zipf_key_mix() {
    let weights = [1i64, 2, 1, 3, 1];
    let lb = bounded(125, &weights);
    let total_w: i64 = weights.iter().sum();
    let ids: Vec<MemberId> = (0..weights.len()).map(id).collect();
    // Zipf(1.1) over 1000 keys: the top key alone is about 13 % of the requests.
    let cdf: Vec<f64> = {
        let w: Vec<f64> = (1..=1000).map(|r| 1.0 / f64::powf(r as f64, 1.1)).collect();
        let sum: f64 = w.iter().sum();
        w.iter()
            .scan(0.0, |acc, x| {
                *acc += x / sum;
                Some(*acc)
            })
            .collect()
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut held: Vec<lbsim::Pick<'_>> = Vec::new();
    let mut peak_ratio: f64 = 0.0;
    for _ in 0..20_000 {
        let u = rng.unit();
        let key = cdf.partition_point(|&c| c < u);
        let uri = format!("/item/{key}");
        let p = lb.select(&Request::new(client(1), &uri)).unwrap();
        held.push(p);
        let total = held.len() as f64;
        let m = held.last().unwrap().member().id();
        let i = ids.iter().position(|&x| x == m).unwrap();
        let n = held.iter().filter(|p| p.member().id() == m).count() as f64;
        let avg = total * weights[i] as f64 / total_w as f64;
        assert!(n <= (1.25 * avg).ceil(), "{m} holds {n} of {total}: over 1.25 x its weighted average {avg} (+1)");
        peak_ratio = peak_ratio.max(n / (1.25 * avg + 1.0));
        // Keep about 40 requests in flight: end a random one now and then.
        while held.len() > 40 || (held.len() > 5 && rng.unit() < 0.5) {
            let k = (rng.next() % held.len() as u64) as usize;
            drop(held.swap_remove(k));
        }
    }
    let (picks, moved) = lb.bounded_load_stats().unwrap();
    assert_eq!(picks, 20_000);
    assert!(moved > 1000 && moved < 15_000, "the hot keys overflow, most do not: {moved}");
    assert!(peak_ratio <= 1.0);
}

#[test]
fn outlier_detection_ejects_after_consecutive_errors_and_returns_after_its_time() {
    use lbsim::health::HealthState;
    let ch = channel(channel_json(1, (0..4).map(|i| json!({"host": host(i)})).collect(), vec![]));
    let mut o = lbsim::balancer::Options {
        outlier_consecutive_errors: Some(3),
        outlier_base_ejection_s: Some(10.0),
        max_ejection_percent: Some(25),
        ..Default::default()
    };
    let lb = Balancer::builder(&ch).options(o.clone()).build().unwrap();
    let s = Duration::from_secs;
    let h = lb.health();
    assert_eq!(h.record_response(id(1), Outcome::Failure, s(1)), None);
    assert_eq!(h.record_response(id(1), Outcome::Failure, s(1)), None);
    assert_eq!(h.record_response(id(1), Outcome::Failure, s(2)), Some(HealthState::Ejected));
    assert_eq!(h.state(id(1)), Some(HealthState::Ejected));
    assert!(!lb.members()[1].eligible);
    let mut next = 0;
    assert_eq!(count(&lb, id(1), 30, &mut next), 0, "an ejected member takes nothing");
    // One of four is 25 %: a second member cannot be ejected now.
    for _ in 0..3 {
        assert_eq!(h.record_response(id(2), Outcome::Failure, s(3)), None);
    }
    assert_eq!(lb.next_tick(), Some(s(12)));
    assert_eq!(lb.tick(s(11)), vec![]);
    assert_eq!(lb.tick(s(12)), vec![(id(1), HealthState::Unknown)]);
    assert_eq!(count(&lb, id(1), 40, &mut next), 10, "back with its full share");
    // The second ejection lasts twice the base.
    for _ in 0..3 {
        h.record_response(id(1), Outcome::Failure, s(20));
    }
    assert_eq!(lb.next_tick(), Some(s(40)));
    // Off by default: failures change nothing.
    o.outlier_consecutive_errors = None;
    let plain = Balancer::builder(&ch).options(o).build().unwrap();
    for _ in 0..10 {
        assert_eq!(plain.health().record_response(id(1), Outcome::Failure, s(1)), None);
    }
    assert!(plain.members()[1].eligible);
}
