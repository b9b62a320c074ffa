//! Consistent weighted hashing (architecture.md §3): key shares follow weights, one member's failure moves
//! only (about) its own keys, and they return when it recovers. Property tests over random
//! weights and member sets, with a fixed seed so that every run checks the same cases.

use crate::support::*;
use lbsim::balancer::MemberId;
use lbsim::health::Outcome;
use lbsim::{Balancer, Request};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

fn runner(cases: u32) -> TestRunner {
    let seed = *b"lbsim hash consistency seed 0001";
    TestRunner::new_with_rng(
        Config { cases, failure_persistence: None, ..Config::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    )
}

/// The `k`-th uniformly drawn key: a source IP (strategy 3) or a 40-byte path (strategy 4).
fn key_request(k: u64, salt: u64, uri: &mut String) -> Request<'_> {
    let x = splitmix(k ^ salt);
    uri.clear();
    uri.push_str(&format!("/api/v1/catalog/items/{x:016x}/details"));
    Request::new(IpAddr::V4(Ipv4Addr::from((x >> 32) as u32)), uri)
}

fn counts(lb: &Balancer, n: u64, salt: u64) -> HashMap<MemberId, u64> {
    let mut out = HashMap::new();
    let mut uri = String::new();
    for k in 0..n {
        let m = lb.select(&key_request(k, salt, &mut uri)).unwrap().member().id();
        *out.entry(m).or_insert(0) += 1;
    }
    out
}

fn lb_with(strategy: i64, weights: &[u32]) -> Balancer {
    let members = weights.iter().enumerate().map(|(i, w)| json!({"host": host(i), "weight": w})).collect();
    Balancer::from_channel(&channel(with_check(channel_json(strategy, members, vec![]), 1, 1))).unwrap()
}

#[test]
fn key_shares_follow_weight_shares() {
    runner(12)
        .run(&(prop::collection::vec(1u32..=100, 2..=16), 3i64..=4, any::<u64>()), |(weights, strategy, salt)| {
            let lb = lb_with(strategy, &weights);
            let n = 100_000u64;
            let c = counts(&lb, n, salt);
            let total: u32 = weights.iter().sum();
            for (i, &w) in weights.iter().enumerate() {
                let p = f64::from(w) / f64::from(total);
                let expected = p * n as f64;
                let tol = (0.05 * expected).max(4.0 * (n as f64 * p * (1.0 - p)).sqrt());
                let got = c.get(&MemberId::new(&host(i), 8080)).copied().unwrap_or(0) as f64;
                prop_assert!(
                    (got - expected).abs() <= tol,
                    "weights {weights:?} member {i}: {got} vs {expected:.0}+-{tol:.0}"
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn one_member_down_moves_only_its_keys_and_they_return() {
    runner(10)
        .run(&(prop::collection::vec(1u32..=100, 10), 3i64..=4, 0usize..10), |(weights, strategy, down)| {
            let lb = lb_with(strategy, &weights);
            let before = lb.key_space().unwrap();
            let down_id = MemberId::new(&host(down), 8080);
            lb.health().record(down_id, Outcome::Failure);
            let during = lb.key_space().unwrap();
            let ideal = f64::from(weights[down]) / f64::from(weights.iter().sum::<u32>());
            let moved = before.moved_fraction(&during);
            prop_assert!(moved <= 1.2 * ideal, "moved {moved:.4} > 1.2 x {ideal:.4} ({weights:?}, down {down})");
            prop_assert!(moved >= 0.8 * ideal, "moved {moved:.4} is not the member's share {ideal:.4}");
            // Every key that moved belonged to the failed member; sampled keys agree.
            let mut uri = String::new();
            for k in 0..20_000 {
                let r = key_request(k, 7, &mut uri);
                let key = if strategy == 3 {
                    lbsim::balancer::ip_key(r.client())
                } else {
                    lbsim::balancer::uri_key(r.uri(), Default::default())
                };
                let (a, b) = (before.owner_of_key(key), during.owner_of_key(key));
                prop_assert!(a == b || a == down_id, "key moved from a healthy member");
                prop_assert_eq!(lb.select(&r).unwrap().member().id(), b);
            }
            lb.health().record(down_id, Outcome::Success);
            let after = lb.key_space().unwrap();
            prop_assert_eq!(before.moved_fraction(&after), 0.0, "keys return on recovery");
            Ok(())
        })
        .unwrap();
}

#[test]
fn preference_order_is_where_the_key_goes_next() {
    let lb = lb_with(3, &[5, 1, 3, 2, 4, 1, 1, 2]);
    let mut uri = String::new();
    for k in 0..300 {
        let r = key_request(k, 99, &mut uri);
        let order = lb.preference(&r);
        assert_eq!(order.len(), 8);
        assert_eq!(order[0], lb.select(&r).unwrap().member().id(), "first choice is the pick");
        // A retry excluding the first goes to the second; failing the first sends the key there too.
        assert_eq!(lb.select_excluding(&r, &order[..1]).unwrap().member().id(), order[1]);
        assert_eq!(lb.select_excluding(&r, &order[..2]).unwrap().member().id(), order[2]);
    }
    let r = key_request(3, 99, &mut uri);
    let order = lb.preference(&r);
    lb.health().record(order[0], Outcome::Failure);
    assert_eq!(lb.select(&r).unwrap().member().id(), order[1]);
    assert_eq!(lb.preference(&r), order[1..].to_vec());
}
