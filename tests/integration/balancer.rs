//! The balancer's selection semantics (architecture.md §3) observed through the public API.

use crate::support::*;
use lbsim::balancer::{GroupWeights, MemberId, UriHashKey};
use lbsim::health::{HealthState, Outcome};
use lbsim::{Balancer, Request, SelectError, Strategy};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

fn req() -> Request<'static> {
    Request::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), "/")
}

fn letters(lb: &Balancer, n: usize) -> String {
    (0..n)
        .map(|_| {
            let p = lb.select(&req()).unwrap();
            let last = p.member().host().rsplit('.').next().unwrap().parse::<u8>().unwrap();
            (b'a' + last - 1) as char
        })
        .collect()
}

fn id(i: usize) -> MemberId {
    MemberId::new(&host(i), 8080)
}

#[test]
fn wrr_5_1_1_is_nginx_smooth_sequence() {
    let lb = Balancer::from_channel(&weighted(1, &[5, 1, 1])).unwrap();
    assert_eq!(letters(&lb, 14), "aabacaaaabacaa");
}

#[test]
fn wrr_stays_smooth_when_a_member_leaves_and_rejoins() {
    let ch = channel(with_check(
        channel_json(1, (0..4).map(|i| json!({"host": host(i), "weight": 1})).collect(), vec![]),
        1,
        1,
    ));
    let lb = Balancer::from_channel(&ch).unwrap();
    assert_eq!(letters(&lb, 8), "abcdabcd");
    lb.health().record(id(1), Outcome::Failure);
    let s = letters(&lb, 9);
    assert!(!s.contains('b'));
    for c in ['a', 'c', 'd'] {
        assert_eq!(s.matches(c).count(), 3, "{s}");
    }
    lb.health().record(id(1), Outcome::Success);
    let s = letters(&lb, 40);
    // No burst: no member is picked twice in a row, and every window of 4 holds each member once.
    for w in s.as_bytes().windows(2) {
        assert_ne!(w[0], w[1], "burst in {s}");
    }
    for c in ['a', 'b', 'c', 'd'] {
        assert_eq!(s.matches(c).count(), 10, "{s}");
    }
}

#[test]
fn wrr_shares_are_exact_per_period() {
    let weights = [3, 7, 1, 9, 4];
    let lb = Balancer::from_channel(&weighted(1, &weights)).unwrap();
    let mut counts = BTreeMap::new();
    for _ in 0..24 * 10 {
        *counts.entry(lb.select(&req()).unwrap().member().id()).or_insert(0) += 1;
    }
    for (i, w) in weights.iter().enumerate() {
        assert_eq!(counts[&id(i)], w * 10);
    }
}

#[test]
fn status_2_and_weight_0_are_never_selected() {
    let ch = channel(channel_json(
        1,
        vec![
            json!({"host": host(0), "weight": 1}),
            json!({"host": host(1), "weight": 0}),
            json!({"host": host(2), "weight": 5, "status": 2}),
        ],
        vec![],
    ));
    for s in Strategy::ALL {
        let lb = Balancer::builder(&ch).strategy(s).build().unwrap();
        for i in 0..200 {
            let uri = format!("/p/{i}");
            let r = Request::new(IpAddr::V4(Ipv4Addr::from(i as u32 * 7919)), &uri);
            assert_eq!(lb.select(&r).unwrap().member().id(), id(0), "{s}");
        }
    }
}

#[test]
fn select_errors_say_why() {
    let empty = channel(channel_json(1, vec![], vec![]));
    assert_eq!(Balancer::from_channel(&empty).unwrap().select(&req()).unwrap_err(), SelectError::NoMembers);
    let disabled = channel(channel_json(
        1,
        vec![json!({"host": host(0), "status": 2}), json!({"host": host(1), "weight": 0})],
        vec![],
    ));
    assert_eq!(Balancer::from_channel(&disabled).unwrap().select(&req()).unwrap_err(), SelectError::AllDisabled);
    let ch = channel(with_check(
        channel_json(1, vec![json!({"host": host(0)}), json!({"host": host(1), "status": 2})], vec![]),
        1,
        1,
    ));
    let lb = Balancer::from_channel(&ch).unwrap();
    lb.health().record(id(0), Outcome::Failure);
    let e = lb.select(&req()).unwrap_err();
    assert_eq!(e, SelectError::AllUnhealthy);
    assert!(e.to_string().contains("unhealthy"));
}

#[test]
fn backups_serve_only_while_no_primary_is_eligible_under_every_strategy() {
    for strategy in 1..=4 {
        let members = vec![
            json!({"host": host(0), "weight": 2}),
            json!({"host": host(1), "weight": 1}),
            json!({"host": host(2), "weight": 1, "is_backup": true}),
            json!({"host": host(3), "weight": 3, "is_backup": true}),
        ];
        let lb = Balancer::from_channel(&channel(with_check(channel_json(strategy, members, vec![]), 2, 1))).unwrap();
        let picks = |lb: &Balancer| -> Vec<MemberId> {
            (0..400)
                .map(|i| {
                    let uri = format!("/k/{i}");
                    lb.select(&Request::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), &uri)).unwrap().member().id()
                })
                .collect()
        };
        assert!(picks(&lb).iter().all(|m| *m == id(0) || *m == id(1)), "strategy {strategy}: primaries only");
        lb.health().record(id(0), Outcome::Failure);
        assert!(picks(&lb).iter().all(|m| *m == id(1)), "strategy {strategy}: one primary left, no backup");
        lb.health().record(id(1), Outcome::Failure);
        let p = picks(&lb);
        assert!(p.iter().all(|m| *m == id(2) || *m == id(3)), "strategy {strategy}: backups take over");
        assert!(p.contains(&id(2)) && p.contains(&id(3)), "strategy {strategy}: across all eligible backups");
        // Hand back when one primary returns (threshold_normal = 2).
        lb.health().record(id(1), Outcome::Success);
        assert!(picks(&lb).iter().all(|m| *m == id(2) || *m == id(3)), "one success is not enough");
        lb.health().record(id(1), Outcome::Success);
        assert!(picks(&lb).iter().all(|m| *m == id(1)), "strategy {strategy}: handed back");
    }
}

#[test]
fn wlc_follows_in_flight_counts_and_breaks_ties_by_smooth_wrr() {
    // All idle: ties everywhere, so the sequence is smooth WRR's.
    let lb = Balancer::from_channel(&weighted(2, &[5, 1, 1])).unwrap();
    assert_eq!(letters(&lb, 7), "aabacaa");

    // Held picks: a (weight 2) takes two for every one of b (weight 1).
    let lb = Balancer::from_channel(&weighted(2, &[2, 1])).unwrap();
    let mut held = Vec::new();
    let mut seq = String::new();
    for _ in 0..6 {
        let p = lb.select(&req()).unwrap();
        seq.push(if p.member().id() == id(0) { 'a' } else { 'b' });
        held.push(p);
    }
    assert_eq!(seq.matches('a').count(), 4, "{seq}");
    assert_eq!(seq.matches('b').count(), 2, "{seq}");
    let loads: Vec<u32> = lb.members().iter().map(|m| m.in_flight).collect();
    assert_eq!(loads, vec![4, 2]);
    // Release two of a's: a is now strictly least loaded (2/2 < 2/1) and takes the next two.
    held.retain(|p| p.member().id() != id(0));
    assert_eq!(lb.members()[0].in_flight, 0);
    let p1 = lb.select(&req()).unwrap();
    let p2 = lb.select(&req()).unwrap();
    let p3 = lb.select(&req()).unwrap();
    assert_eq!((p1.member().id(), p2.member().id()), (id(0), id(0)));
    // 2/2 == 2/1: tied again; the tie-break is WRR among the tied, and picks stay balanced.
    assert!(p3.member().id() == id(0) || p3.member().id() == id(1));
    drop((p1, p2, p3, held));
    assert!(lb.members().iter().all(|m| m.in_flight == 0));
}

#[test]
fn wlc_tie_break_updates_only_tied_members() {
    // a is busy; b and c (equal weights) are tied at zero and alternate, a is never picked.
    let lb = Balancer::from_channel(&weighted(2, &[1, 1, 1])).unwrap();
    let busy = lb.select(&req()).unwrap();
    assert_eq!(busy.member().id(), id(0));
    let seq: Vec<MemberId> = (0..6).map(|_| lb.select(&req()).unwrap().member().id()).collect();
    assert_eq!(seq, vec![id(1), id(2), id(1), id(2), id(1), id(2)]);
}

fn key_counts(lb: &Balancer, strategy: i64, n: u32) -> BTreeMap<MemberId, u32> {
    let mut counts = BTreeMap::new();
    let mut uri = String::new();
    for k in 0..n {
        let x = splitmix(u64::from(k) ^ 0xDEAD_BEEF);
        uri.clear();
        uri.push_str(&format!("/api/items/{x:016x}"));
        let r = Request::new(IpAddr::V4(Ipv4Addr::from(x as u32)), &uri);
        let m = lb.select(&r).unwrap().member().id();
        let _ = strategy;
        *counts.entry(m).or_insert(0) += 1;
    }
    counts
}

/// architecture.md §3's tolerance: 5% relative, or four binomial standard deviations where wider.
fn assert_share(count: u32, n: u32, p: f64, what: &str) {
    let expected = p * f64::from(n);
    let tol = (0.05 * expected).max(4.0 * (f64::from(n) * p * (1.0 - p)).sqrt());
    assert!((f64::from(count) - expected).abs() <= tol, "{what}: {count} keys, expected {expected:.0} +- {tol:.0}");
}

#[test]
fn ipv6_and_path_query_keys() {
    let lb = Balancer::from_channel(&weighted(3, &[1, 1, 1, 1, 1, 1, 1, 1])).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..2000u128 {
        let ip = IpAddr::V6((0x2001_0db8u128 << 96 | splitmix(i as u64) as u128).into());
        let a = lb.select(&Request::new(ip, "/")).unwrap().member().id();
        assert_eq!(a, lb.select(&Request::new(ip, "/other")).unwrap().member().id(), "SH ignores the URI");
        seen.insert(a);
    }
    assert_eq!(seen.len(), 8);
    let c = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let path = Balancer::from_channel(&weighted(4, &[1; 16])).unwrap();
    let pq = Balancer::builder(&weighted(4, &[1; 16])).uri_hash_key(UriHashKey::PathQuery).build().unwrap();
    let mut differ = 0;
    for i in 0..200 {
        let (a, b) = (format!("/x/{i}?q=1#f"), format!("/x/{i}?q=2"));
        let pick = |lb: &Balancer, u: &str| lb.select(&Request::new(c, u)).unwrap().member().id();
        assert_eq!(pick(&path, &a), pick(&path, &b), "path mode ignores the query");
        assert_eq!(pick(&pq, &a), pick(&pq, &format!("/x/{i}?q=1")), "fragment is never part of the key");
        differ += usize::from(pick(&pq, &a) != pick(&pq, &b));
    }
    assert!(differ > 150, "path_query keys differ with the query: {differ}/200");
}

#[test]
fn hierarchical_and_inherit_group_weights_give_their_shares_under_every_strategy() {
    // Groups blue (weight 1: two members 1 and 3) and green (weight 3: one member, own weight 1).
    let groups = vec![
        json!({"member_group_name": "blue", "member_group_weight": 1}),
        json!({"member_group_name": "green", "member_group_weight": 3}),
    ];
    let members = |s| {
        channel(channel_json(
            s,
            vec![
                json!({"host": host(0), "weight": 1, "member_group_name": "blue"}),
                json!({"host": host(1), "weight": 3, "member_group_name": "blue"}),
                json!({"host": host(2), "weight": 1, "member_group_name": "green"}),
            ],
            groups.clone(),
        ))
    };
    // inherit: every member takes its group's weight: 1, 1, 3 -> 0.2, 0.2, 0.6.
    // hierarchical: blue 1/4 split 1:3, green 3/4 -> 0.0625, 0.1875, 0.75.
    let cases = [(GroupWeights::Inherit, [0.2, 0.2, 0.6]), (GroupWeights::Hierarchical, [0.0625, 0.1875, 0.75])];
    for s in 1..=4 {
        for (mode, shares) in cases {
            let lb = Balancer::builder(&members(s)).group_weights(mode).build().unwrap();
            let n = 100_000;
            let counts = if s <= 2 {
                let mut c = BTreeMap::new();
                for _ in 0..n {
                    *c.entry(lb.select(&req()).unwrap().member().id()).or_insert(0u32) += 1;
                }
                c
            } else {
                key_counts(&lb, s, n)
            };
            for (i, p) in shares.iter().enumerate() {
                let got = counts.get(&id(i)).copied().unwrap_or(0);
                if s <= 2 {
                    // Deterministic strategies: exact to within one pick per period.
                    assert!((f64::from(got) - p * f64::from(n)).abs() <= 16.0, "{mode:?} s={s} member {i}: {got}");
                } else {
                    assert_share(got, n, *p, &format!("{mode:?} s={s} member {i}"));
                }
            }
            let expected: Vec<f64> = lb.members().iter().map(|m| m.expected_share).collect();
            for (e, p) in expected.iter().zip(shares) {
                let tol = if s <= 2 { 1e-9 } else { 0.05 * p };
                assert!((e - p).abs() <= tol, "{mode:?} s={s}: expected_share {expected:?} vs {shares:?}");
            }
        }
    }
}

#[test]
fn update_keeps_health_and_in_flight_of_unchanged_members() {
    let v = with_check(channel_json(2, (0..3).map(|i| json!({"host": host(i), "weight": 1})).collect(), vec![]), 1, 1);
    let lb = Balancer::from_channel(&channel(v.clone())).unwrap();
    lb.health().record(id(2), Outcome::Failure);
    let held = lb.select(&req()).unwrap();
    let held_id = held.member().id();
    let mut v2 = v;
    v2["members"][0]["weight"] = json!(7);
    v2["members"][1] = json!({"host": host(9), "weight": 1});
    lb.update(&channel(v2)).unwrap();
    let ms = lb.members();
    assert_eq!(ms[0].member.weight(), 7);
    assert_eq!(ms[2].health, HealthState::Unhealthy, "health carried over");
    assert_eq!(ms[1].member.id(), id(9));
    assert_eq!(ms[1].health, HealthState::Healthy, "new member starts healthy");
    let in_flight: u32 = ms.iter().filter(|m| m.member.id() == held_id).map(|m| m.in_flight).sum();
    assert_eq!(in_flight, u32::from(held_id == id(0)), "in-flight carried over for unchanged members");
    drop(held);
    assert!(lb.members().iter().all(|m| m.in_flight == 0));
}

#[test]
fn many_threads_keep_exact_shares_and_in_flight_returns_to_zero() {
    use std::sync::Arc;
    let weights = [5, 3, 2, 1, 1];
    // (strategy, picks each thread keeps open). WLC balances in-flight counts, not request
    // counts: with picks open on other threads its shares follow those counts, so for WLC the
    // test checks that every member gets its part within a factor and that in-flight returns to 0.
    for (strategy, hold) in [(1, 0), (1, 8), (2, 0), (2, 8)] {
        let lb = Arc::new(Balancer::from_channel(&weighted(strategy, &weights)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lb = Arc::clone(&lb);
                std::thread::spawn(move || {
                    let mut counts = [0u32; 5];
                    let mut held = std::collections::VecDeque::new();
                    for _ in 0..12_000 {
                        let p = lb.select(&req()).unwrap();
                        counts[p.member().id().host().rsplit('.').next().unwrap().parse::<usize>().unwrap() - 1] += 1;
                        held.push_back(p);
                        if held.len() > hold {
                            held.pop_front();
                        }
                    }
                    counts
                })
            })
            .collect();
        let mut total = [0u32; 5];
        for t in threads {
            for (a, b) in total.iter_mut().zip(t.join().unwrap()) {
                *a += b;
            }
        }
        let n: u32 = total.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let expected = f64::from(n) * *w as f64 / 12.0;
            if strategy == 1 {
                // Within a few picks per thread of exact.
                assert!(
                    (f64::from(total[i]) - expected).abs() <= 4.0 * 12.0,
                    "strategy {strategy} member {i}: {total:?}"
                );
            } else {
                assert!(f64::from(total[i]) > 0.5 * expected, "strategy {strategy} member {i}: {total:?}");
            }
        }
        assert!(lb.members().iter().all(|m| m.in_flight == 0), "strategy {strategy}");
    }
}

#[test]
fn backup_mode_first_sends_everything_to_the_first_eligible_backup() {
    use lbsim::balancer::BackupMode;
    let members = vec![
        json!({"host": host(0)}),
        json!({"host": host(1), "is_backup": true}),
        json!({"host": host(2), "is_backup": true}),
    ];
    let ch = channel(with_check(channel_json(1, members, vec![]), 1, 1));
    let all = Balancer::from_channel(&ch).unwrap();
    let first = Balancer::builder(&ch).backup_mode(BackupMode::First).build().unwrap();
    for lb in [&all, &first] {
        lb.health().record(id(0), Outcome::Failure);
    }
    assert_eq!(letters(&all, 4), "bcbc", "default: balance across all eligible backups");
    assert_eq!(letters(&first, 4), "bbbb", "first: the first eligible backup takes everything");
    first.health().record(id(1), Outcome::Failure);
    assert_eq!(letters(&first, 3), "ccc", "then the next eligible backup");
    first.health().record(id(0), Outcome::Success);
    assert_eq!(letters(&first, 2), "aa", "handed back to the primary");
}

#[test]
fn panic_mode_spreads_over_all_primaries_when_too_few_are_healthy_and_no_backup_is() {
    use lbsim::balancer::Tier;
    let members: Vec<_> = (0..4).map(|i| json!({"host": host(i)})).collect();
    let ch = channel(with_check(channel_json(1, members.clone(), vec![]), 1, 1));
    let lb = Balancer::builder(&ch).panic_threshold(50).build().unwrap();
    lb.health().record(id(0), Outcome::Failure);
    assert_eq!(lb.tier(), Ok(Tier::Primary), "75% healthy: normal");
    assert_eq!(letters(&lb, 3), "bcd");
    lb.health().record(id(1), Outcome::Failure);
    assert_eq!(lb.tier(), Ok(Tier::Primary), "50% healthy is not below 50%");
    lb.health().record(id(2), Outcome::Failure);
    assert_eq!(lb.tier(), Ok(Tier::Panic), "25% healthy: panic");
    let mut spread: Vec<char> = letters(&lb, 8).chars().collect();
    spread.sort_unstable();
    assert_eq!(spread.into_iter().collect::<String>(), "aabbccdd", "every enabled primary, healthy or not");
    lb.health().record(id(3), Outcome::Failure);
    assert_eq!(lb.tier(), Ok(Tier::Panic), "none healthy: still spread rather than failing");
    // Off by default: the same state fails.
    let off = Balancer::from_channel(&ch).unwrap();
    for i in 0..4 {
        off.health().record(id(i), Outcome::Failure);
    }
    assert_eq!(off.select(&req()).unwrap_err(), SelectError::AllUnhealthy);
    // Backups come first: with an eligible backup there is no panic.
    let mut with_backup = members;
    with_backup.push(json!({"host": host(4), "is_backup": true}));
    let lb = Balancer::builder(&channel(with_check(channel_json(1, with_backup, vec![]), 1, 1)))
        .panic_threshold(50)
        .build()
        .unwrap();
    for i in 0..4 {
        lb.health().record(id(i), Outcome::Failure);
    }
    assert_eq!(lb.tier(), Ok(Tier::Backup));
    assert_eq!(letters(&lb, 2), "ee");
}
