#![cfg(feature = "live")]
//! The live proxy on loopback: shares follow the strategy, a member killed mid-run loses no
//! request that could be retried, backups serve only while the primaries are down, and a request
//! in flight survives a configuration update. Every test is bounded in time and count.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lbsim::live::backends::{self, Backends, LiveClock, MEMBER_HEADER};
use lbsim::live::loadgen::{self, LoadPlan};
use lbsim::live::probe::{spawn_probes, ProbeOptions};
use lbsim::live::proxy::{Proxy, ProxyConfig};
use lbsim::live::stats::ProxyStats;
use lbsim::model::Format;
use lbsim::sim::scenario::member_ids;
use lbsim::sim::Scenario;
use lbsim::{Balancer, MemberId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn scenario(members: &str, extra: &str, service_ms: u32, retries: u32) -> Scenario {
    let text = format!(
        r#"
name = "live_test"
seed = 5
duration_s = 10
[traffic]
rate_rps = 200
arrival = "constant"
service_time_ms = {{ dist = "fixed", value = {service_ms} }}
request_timeout_ms = 2000
retries = {retries}
[channel]
name = "live_test"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{members}]
{extra}
"#
    );
    Scenario::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e}"))
}

struct Live {
    lb: Arc<Balancer>,
    proxy: Proxy,
    backends: Backends,
    clock: LiveClock,
}

async fn start(sc: &Scenario, retries: u32) -> Live {
    let clock = LiveClock::now();
    let backends = backends::start(backends::plans(sc, sc.seed), clock).await.expect("backends");
    let lb = Arc::new(Balancer::from_channel(&sc.channels[0].channel).expect("channel"));
    let members = member_ids(&sc.channels[0].channel);
    let mut cfg = ProxyConfig::new(backends.addrs().into_iter().collect());
    cfg.retries = retries;
    cfg.request_timeout = Duration::from_secs(2);
    let stats = Arc::new(ProxyStats::new(&members, clock.start, 1.0, 30));
    let proxy = Proxy::start(Arc::clone(&lb), cfg, "127.0.0.1:0".parse().unwrap(), stats).await.expect("proxy");
    Live { lb, proxy, backends, clock }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// One GET through the proxy: (status, member that answered).
async fn get(c: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    let req = hyper::Request::get(format!("http://{addr}{path}")).body(Full::new(Bytes::new())).unwrap();
    match c.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let member = resp.headers().get(MEMBER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
            let _ = resp.into_body().collect().await;
            (status, member)
        }
        Err(_) => (0, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_shares_follow_wrr() {
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(
            r#"{ host = "192.168.0.1", weight = 3 }, { host = "192.168.0.2", weight = 2 }, { host = "192.168.0.3", weight = 1 }"#,
            "",
            1,
            0,
        );
        let live = start(&sc, 0).await;
        let c = client();
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..600 {
            let (status, member) = get(&c, live.proxy.addr(), &format!("/p/{i}")).await;
            assert_eq!(status, 200);
            *counts.entry(member.expect("member header")).or_insert(0) += 1;
        }
        // The proxy's requests run on two worker threads, each with its own cursor into the WRR
        // schedule (architecture.md §3): exact to within a period (6 picks) per thread.
        for (m, expected) in [("192.168.0.1:8080", 300i64), ("192.168.0.2:8080", 200), ("192.168.0.3:8080", 100)] {
            let got = i64::from(counts[m]);
            assert!((got - expected).abs() <= 12, "{m}: {got} of 600, expected {expected}: {counts:?}");
        }
        live.proxy.shutdown(Duration::from_secs(1)).await;
        live.backends.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_run_loses_no_retriable_request() {
    tokio::time::timeout(LIMIT, async {
        // No health check: the proxy keeps picking the dead member, and every refused attempt
        // must be retried on another one.
        let sc = scenario(
            r#"{ host = "192.168.0.1" }, { host = "192.168.0.2" }, { host = "192.168.0.3" }"#,
            "[[faults]]\nmember = \"192.168.0.2:8080\"\nkind = \"down\"\nat_s = 1\nuntil_s = 2.5",
            2,
            1,
        );
        let live = start(&sc, 1).await;
        let plan = LoadPlan::new(sc.traffic.clone(), Duration::from_secs(4), sc.seed);
        let result = loadgen::run(live.proxy.addr(), plan).await;
        let stats = live.proxy.stats().requests();
        assert_eq!(result.sent, result.ok + result.failed, "every request is accounted for");
        assert!(result.sent >= 780, "sent {}", result.sent);
        assert_eq!(result.failed, 0, "failed: {:?}", result.failed_by_reason);
        assert_eq!(stats.total, stats.ok + stats.failed);
        assert!(stats.retried > 50, "refused attempts were retried: {}", stats.retried);
        let dead =
            live.proxy.stats().members().into_iter().find(|m| m.member == MemberId::new("192.168.0.2", 8080)).unwrap();
        assert!(
            dead.failed > 50 && dead.failed == stats.retried,
            "dead member failures {} vs retried {}",
            dead.failed,
            stats.retried
        );
        live.proxy.shutdown(Duration::from_secs(1)).await;
        live.backends.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_serve_only_while_the_primaries_are_down() {
    tokio::time::timeout(LIMIT, async {
        let check = r#"vpc_health_config = { protocol = "TCP", threshold_normal = 1, threshold_abnormal = 1, time_interval = 2, timeout = 1 }"#;
        let faults = "[[faults]]\nmember = \"192.168.0.1:8080\"\nkind = \"down\"\nat_s = 1\nuntil_s = 3";
        let sc = scenario(
            r#"{ host = "192.168.0.1" }, { host = "192.168.0.9", is_backup = true }"#,
            &format!("{check}\n{faults}"),
            1,
            0,
        );
        let live = start(&sc, 0).await;
        let check = live.lb.check().expect("check");
        let opts = ProbeOptions {
            seed: 1,
            tls: None,
            interval_override: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        let prober = spawn_probes(Arc::clone(&live.lb), check, live.backends.addrs(), opts);
        let c = client();
        let mut seen: Vec<(f64, String)> = Vec::new();
        while live.clock.start.elapsed() < Duration::from_millis(4500) {
            let (status, member) = get(&c, live.proxy.addr(), "/").await;
            if status == 200 {
                seen.push((live.clock.start.elapsed().as_secs_f64(), member.unwrap_or_default()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let events = prober.events();
        prober.shutdown().await;
        let primary = MemberId::new("192.168.0.1", 8080);
        let down = events.iter().find(|e| e.member == primary && e.state == lbsim::health::HealthState::Unhealthy).expect("detected");
        let up = events.iter().find(|e| e.member == primary && e.state == lbsim::health::HealthState::Healthy).expect("recovered");
        // Event times are since the prober started, a moment after the clock: allow 50 ms.
        let (d, u) = (down.at.as_secs_f64(), up.at.as_secs_f64());
        for (t, m) in &seen {
            if *t < 1.0 || *t > u + 0.1 {
                assert_eq!(m, "192.168.0.1:8080", "primary serves at {t:.2} (down detected {d:.2}, up {u:.2})");
            } else if *t > d + 0.1 && *t < 3.0 {
                assert_eq!(m, "192.168.0.9:8080", "backup serves at {t:.2} (down detected {d:.2}, up {u:.2})");
            }
        }
        assert!(seen.iter().any(|(_, m)| m == "192.168.0.9:8080"), "the backup took over");
        live.proxy.shutdown(Duration::from_secs(1)).await;
        live.backends.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_survives_a_configuration_update() {
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }, { host = "192.168.0.2" }"#, "", 800, 0);
        let live = start(&sc, 0).await;
        let addr = live.proxy.addr();
        let slow = tokio::spawn(async move { get(&client(), addr, "/slow").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Reweight and drop the other member while the request is being served.
        let mut ch = sc.channels[0].channel.clone();
        ch.members[0].weight = Some(7);
        ch.members.truncate(1);
        let before = Instant::now();
        live.lb.update(&ch).expect("update");
        assert!(before.elapsed() < Duration::from_millis(100), "updates do not wait for requests");
        let (status, member) = slow.await.expect("join");
        assert_eq!(status, 200);
        assert!(member.is_some());
        assert_eq!(live.lb.members().len(), 1);
        assert!(live.lb.members().iter().all(|m| m.in_flight == 0), "the in-flight count ended with the exchange");
        live.proxy.shutdown(Duration::from_secs(1)).await;
        live.backends.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }, { host = "192.168.0.2" }"#, "", 1, 0);
        let live = start(&sc, 0).await;
        // h2c with prior knowledge: the proxy speaks HTTP/2 to clients, HTTP/1.1 to members.
        let h2: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).http2_only(true).build(HttpConnector::new());
        let mut members = std::collections::BTreeSet::new();
        for i in 0..20 {
            let req = hyper::Request::get(format!("http://{}/h2/{i}", live.proxy.addr()))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = h2.request(req).await.expect("h2 request");
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            members.insert(resp.headers().get(MEMBER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string));
        }
        assert_eq!(members.len(), 2, "both members served over h2");
        live.proxy.shutdown(Duration::from_secs(1)).await;
        live.backends.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_and_limits_answer() {
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#, "", 600, 0);
        let live = start(&sc, 0).await;
        let addr = live.proxy.addr();
        // Over the 1 MiB body limit: 413 at once, before any member is asked.
        let big = hyper::Request::post(format!("http://{addr}/upload"))
            .body(Full::new(Bytes::from(vec![b'x'; (1 << 20) + 1])))
            .unwrap();
        assert_eq!(client().request(big).await.expect("answer").status(), 413);
        let slow = tokio::spawn(async move { get(&client(), addr, "/slow").await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let stats = Arc::clone(live.proxy.stats());
        live.proxy.shutdown(Duration::from_secs(5)).await;
        let (status, _) = slow.await.expect("join");
        assert_eq!(status, 200, "the request in flight at shutdown completed");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
        let r = stats.requests();
        assert_eq!((r.total, r.ok, r.failed), (2, 1, 1));
        assert_eq!(r.by_reason.get("body_too_large"), Some(&1));
        live.backends.shutdown().await;
    })
    .await
    .expect("bounded");
}
