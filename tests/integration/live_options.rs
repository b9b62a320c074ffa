#![cfg(feature = "live")]
//! Issue 5's options through the live proxy on loopback: outlier detection ejects a member from
//! its real 500 answers; the member slow-starts when its ejection ends; `backup_mode = "first"`,
//! panic mode and bounded-load hashing decide where real requests go. Bounded in time and count.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lbsim::health::HealthState;
use lbsim::live::backends::{self, Backends, LiveClock, MEMBER_HEADER};
use lbsim::live::proxy::{Proxy, ProxyConfig};
use lbsim::live::stats::ProxyStats;
use lbsim::model::Format;
use lbsim::sim::scenario::member_ids;
use lbsim::sim::Scenario;
use lbsim::{Balancer, MemberId};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Two members; 10.1.0.2 answers only 500s from the start (`until`: a line that ends the fault,
/// or nothing), and three in a row eject it for `ejection_s`. `extra`: more `[balancer]` lines.
fn failing_member(ejection_s: u32, extra: &str, until: &str) -> String {
    format!(
        r#"
name = "live_outlier"
seed = 5
duration_s = 10
[balancer]
outlier_consecutive_errors = 3
outlier_base_ejection_s = {ejection_s}
max_ejection_percent = 50
{extra}
[traffic]
service_time_ms = {{ dist = "fixed", value = 1 }}
[channel]
name = "live_outlier"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{{ host = "10.1.0.1" }}, {{ host = "10.1.0.2" }}]
[[faults]]
member = "10.1.0.2:8080"
kind = "errors"
rate = 1.0
at_s = 0
{until}
"#
    )
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The scenario's loopback backends, a balancer with its `[balancer]` options and the proxy.
async fn start(scenario: &str) -> (Arc<Balancer>, Backends, Proxy, HttpClient) {
    let sc = Scenario::parse(scenario, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    let clock = LiveClock::now();
    let backends = backends::start(backends::plans(&sc, sc.seed), clock).await.expect("backends");
    let ch = &sc.channels[0].channel;
    let lb = Arc::new(Balancer::builder(ch).options(sc.balancer.clone()).build().expect("channel"));
    let stats = Arc::new(ProxyStats::new(&member_ids(ch), clock.start, 1.0, 30));
    let cfg = ProxyConfig::new(backends.addrs().into_iter().collect());
    let proxy = Proxy::start(Arc::clone(&lb), cfg, "127.0.0.1:0".parse().unwrap(), stats).await.expect("proxy");
    (lb, backends, proxy, Client::builder(TokioExecutor::new()).build(HttpConnector::new()))
}

/// One request through the proxy: its status and the member that answered.
async fn get(client: &HttpClient, proxy: &Proxy, i: usize) -> (u16, Option<String>) {
    let req = hyper::Request::get(format!("http://{}/r/{i}", proxy.addr())).body(Full::new(Bytes::new())).unwrap();
    let resp = client.request(req).await.expect("request");
    let status = resp.status().as_u16();
    let member = resp.headers().get(MEMBER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let _ = resp.into_body().collect().await;
    (status, member)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_member_from_its_real_500_answers() {
    let run = async {
        let (lb, backends, proxy, client) = start(&failing_member(600, "", "")).await;
        let mut seen = Vec::new();
        for i in 0..30 {
            seen.push(get(&client, &proxy, i).await);
        }
        proxy.shutdown(Duration::from_secs(1)).await;
        backends.shutdown().await;
        (lb, seen)
    };
    let (lb, seen) = tokio::time::timeout(Duration::from_secs(30), run).await.expect("bounded in time");
    let bad = MemberId::new("10.1.0.2", 8080);
    // The bad member answers exactly three requests, all 500, then is ejected: everything after
    // its third answer is a 200 from the good one. (The proxy's worker threads keep their own
    // WRR cursors, so the order of the first few picks varies.)
    let bad_answers: Vec<usize> =
        seen.iter().enumerate().filter(|(_, s)| s.1.as_deref() == Some("10.1.0.2:8080")).map(|(i, _)| i).collect();
    assert_eq!(bad_answers.len(), 3, "{seen:?}");
    assert!(bad_answers.iter().all(|&i| seen[i].0 == 500), "{seen:?}");
    assert!(seen[bad_answers[2] + 1..].iter().all(|s| s.0 == 200 && s.1.as_deref() == Some("10.1.0.1:8080")));
    assert!(seen.iter().filter(|s| s.0 == 200).count() == 27);
    assert_eq!(lb.health().state(bad), Some(HealthState::Ejected));
    assert!(!lb.members()[1].eligible);
}

/// Slow start in the live proxy: member 2 answers 500s for half a second, is ejected for 1 s,
/// and on its return its share ramps over `slow_start_s` = 3 s from the floor (0.1 of its
/// weight, a share near 0.09 beside an equal member) to an even split. In windows of
/// `slow_start_s / 10`, each window's share is at least the previous one's minus two binomial
/// standard deviations (issue 5's criterion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_member_slow_starts_through_the_proxy() {
    let run = async {
        let scenario = failing_member(1, "slow_start_s = 3\nslow_start_floor = 0.1", "until_s = 0.5");
        let (lb, backends, proxy, client) = start(&scenario).await;
        let back = "10.1.0.2:8080";
        let mut i = 0;
        // Until the member is back: its three 500s eject it, it returns a second later.
        let deadline = Instant::now() + Duration::from_secs(5);
        let t0 = loop {
            assert!(Instant::now() < deadline, "the member did not return");
            i += 1;
            if let (200, Some(m)) = get(&client, &proxy, i).await {
                if m == back {
                    break Instant::now();
                }
            }
        };
        // Sequential requests for the ramp and half a second after it.
        let mut answers: Vec<(Duration, bool)> = Vec::new();
        while t0.elapsed() < Duration::from_millis(3500) {
            i += 1;
            let (status, member) = get(&client, &proxy, i).await;
            assert_eq!(status, 200, "no failure once the fault ended");
            answers.push((t0.elapsed(), member.as_deref() == Some(back)));
        }
        proxy.shutdown(Duration::from_secs(1)).await;
        backends.shutdown().await;
        (lb, answers)
    };
    let (lb, answers) = tokio::time::timeout(Duration::from_secs(30), run).await.expect("bounded in time");
    let window = Duration::from_millis(300);
    let share = |from: Duration, to: Duration| {
        let w: Vec<bool> = answers.iter().filter(|(t, _)| *t >= from && *t < to).map(|&(_, b)| b).collect();
        (w.iter().filter(|&&b| b).count() as f64 / w.len().max(1) as f64, w.len())
    };
    let shares: Vec<(f64, usize)> = (0..10).map(|k| share(window * k, window * (k + 1))).collect();
    println!("shares per {window:?}: {shares:?}");
    assert!(shares.iter().all(|&(_, n)| n >= 30), "too few requests per window: {shares:?}");
    assert!(shares[0].0 <= 0.25, "the first window is near the floor: {shares:?}");
    let windows: Vec<(f64, f64)> = shares.iter().map(|&(s, n)| (s, n as f64)).collect();
    crate::support::assert_ramp_never_falls(&windows, "live slow start");
    assert!(shares[9].0 >= 0.38, "the ramp ends near an even split: {shares:?}");
    let (after, _) = share(Duration::from_millis(3050), Duration::from_millis(3500));
    assert!((after - 0.5).abs() <= 0.1, "even after the ramp: {after}");
    // No active check: back from ejection, the member is eligible with its health unknown.
    assert_eq!(lb.health().state(MemberId::new("10.1.0.2", 8080)), Some(HealthState::Unknown));
    assert!(lb.members()[1].eligible);
}

/// A channel of `members` with `balancer` options, 5 ms service and a TCP check that no prober
/// runs (the tests set health themselves).
fn channel(balancer: &str, strategy: u8, members: &str) -> String {
    format!(
        r#"
name = "live_options"
seed = 5
duration_s = 10
[balancer]
{balancer}
[traffic]
service_time_ms = {{ dist = "fixed", value = 5 }}
[channel]
name = "live_options"
port = 8080
balance_strategy = {strategy}
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{members}]
vpc_health_config = {{ protocol = "TCP", threshold_normal = 2, threshold_abnormal = 2, time_interval = 10, timeout = 1 }}
"#
    )
}

/// Who answered each of `n` sequential requests (`None`: a failure).
async fn answers(scenario: &str, n: usize, before: impl FnOnce(&Balancer)) -> Vec<Option<String>> {
    let run = async {
        let (lb, backends, proxy, client) = start(scenario).await;
        before(&lb);
        let mut seen = Vec::new();
        for i in 0..n {
            let (status, member) = get(&client, &proxy, i).await;
            seen.push(if status == 200 { member } else { None });
        }
        proxy.shutdown(Duration::from_secs(1)).await;
        backends.shutdown().await;
        seen
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("bounded in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_mode_first_sends_everything_to_the_first_backup_through_the_proxy() {
    let members = r#"{ host = "10.2.0.1", status = 2 }, { host = "10.2.0.2", is_backup = true },
        { host = "10.2.0.3", is_backup = true }"#;
    let count = |seen: &[Option<String>], m: &str| seen.iter().filter(|s| s.as_deref() == Some(m)).count();
    let first = answers(&channel(r#"backup_mode = "first""#, 1, members), 40, |_| {}).await;
    assert_eq!((count(&first, "10.2.0.2:8080"), count(&first, "10.2.0.3:8080")), (40, 0), "{first:?}");
    let all = answers(&channel("", 1, members), 40, |_| {}).await;
    // Even, within what the proxy's two worker threads (a WRR cursor each) can skew.
    let (a, b) = (count(&all, "10.2.0.2:8080"), count(&all, "10.2.0.3:8080"));
    assert!(a + b == 40 && a.abs_diff(20) <= 4, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_mode_keeps_the_proxy_serving_through_members_whose_checks_fail() {
    let members = r#"{ host = "10.3.0.1" }, { host = "10.3.0.2" }"#;
    let fail_checks = |lb: &Balancer| {
        for m in ["10.3.0.1", "10.3.0.2"] {
            lb.health().force_unhealthy(MemberId::new(m, 8080));
        }
    };
    // Both members fail their checks but serve: in panic both still answer, every request.
    let panic = answers(&channel("panic_threshold = 50", 1, members), 20, fail_checks).await;
    assert!(panic.iter().all(Option::is_some), "{panic:?}");
    assert!(panic.iter().any(|m| m.as_deref() == Some("10.3.0.2:8080")), "{panic:?}");
    // Without panic the proxy has no member to send them to.
    let off = answers(&channel("", 1, members), 20, fail_checks).await;
    assert!(off.iter().all(Option::is_none), "{off:?}");
}

/// Bounded-load hashing through the proxy: 40 concurrent requests for one URI (50 ms each) over
/// four members. Without a factor they all go to the key's first member; with 125 no member
/// holds more than 1.25 x the average in-flight (+1) and the rest overflow down the key's
/// preference order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_load_hashing_spreads_a_hot_key_through_the_proxy() {
    let members = r#"{ host = "10.4.0.1" }, { host = "10.4.0.2" }, { host = "10.4.0.3" }, { host = "10.4.0.4" }"#;
    let burst = |balancer: &'static str| async move {
        let scenario = channel(balancer, 4, members).replace("value = 5", "value = 50");
        let (_lb, backends, proxy, client) = start(&scenario).await;
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let (client, url) = (client.clone(), format!("http://{}/hot/key", proxy.addr()));
                tokio::spawn(async move {
                    let resp = client.request(hyper::Request::get(url).body(Full::new(Bytes::new())).unwrap()).await;
                    let resp = resp.expect("request");
                    assert_eq!(resp.status(), 200);
                    resp.headers().get(MEMBER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string)
                })
            })
            .collect();
        let mut per_member = std::collections::BTreeMap::<String, usize>::new();
        for c in calls {
            *per_member.entry(c.await.expect("task").expect("member header")).or_default() += 1;
        }
        proxy.shutdown(Duration::from_secs(1)).await;
        backends.shutdown().await;
        per_member
    };
    let run = async {
        let off = burst("").await;
        assert_eq!(off.len(), 1, "one key, one member: {off:?}");
        let bounded = burst("hash_balance_factor = 125").await;
        // 40 in flight over 4 members: average 10, bound 12.5 (+1).
        assert!(bounded.len() >= 3 && bounded.values().all(|&n| n <= 14), "{bounded:?}");
        // The overflow starts from the member the key hashes to.
        assert!(bounded.contains_key(off.keys().next().unwrap()), "{bounded:?} {off:?}");
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("bounded in time");
}
