#![cfg(feature = "live")]
//! Issue 5's options through the live proxy on loopback: outlier detection ejects a member from
//! its real 500 answers. Bounded in time and count.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lbsim::health::HealthState;
use lbsim::live::backends::{self, LiveClock, MEMBER_HEADER};
use lbsim::live::proxy::{Proxy, ProxyConfig};
use lbsim::live::stats::ProxyStats;
use lbsim::model::Format;
use lbsim::sim::scenario::member_ids;
use lbsim::sim::Scenario;
use lbsim::{Balancer, MemberId};
use std::sync::Arc;
use std::time::Duration;

const SCENARIO: &str = r#"
name = "live_outlier"
seed = 5
duration_s = 10
[balancer]
outlier_consecutive_errors = 3
outlier_base_ejection_s = 600
max_ejection_percent = 50
[traffic]
service_time_ms = { dist = "fixed", value = 1 }
[channel]
name = "live_outlier"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{ host = "10.1.0.1" }, { host = "10.1.0.2" }]
[[faults]]
member = "10.1.0.2:8080"
kind = "errors"
rate = 1.0
at_s = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_member_from_its_real_500_answers() {
    let run = async {
        let sc = Scenario::parse(SCENARIO, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
        let clock = LiveClock::now();
        let backends = backends::start(backends::plans(&sc, sc.seed), clock).await.expect("backends");
        let ch = &sc.channels[0].channel;
        let lb = Arc::new(Balancer::builder(ch).options(sc.balancer.clone()).build().expect("channel"));
        let members = member_ids(ch);
        let stats = Arc::new(ProxyStats::new(&members, clock.start, 1.0, 30));
        let cfg = ProxyConfig::new(backends.addrs().into_iter().collect());
        let proxy = Proxy::start(Arc::clone(&lb), cfg, "127.0.0.1:0".parse().unwrap(), stats).await.expect("proxy");
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut seen = Vec::new();
        for i in 0..30 {
            let req =
                hyper::Request::get(format!("http://{}/r/{i}", proxy.addr())).body(Full::new(Bytes::new())).unwrap();
            let resp = client.request(req).await.expect("request");
            let status = resp.status().as_u16();
            let member = resp.headers().get(MEMBER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
            let _ = resp.into_body().collect().await;
            seen.push((status, member));
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
