#![cfg(feature = "live")]
//! Loopback backends and the open-loop load generator (architecture.md §9), on real sockets.

use lbsim::live::backends::{self, parse_backend_map, BackendPlan, Backends, LiveClock};
use lbsim::live::loadgen::{self, LoadPlan};
use lbsim::model::Format;
use lbsim::sim::traffic::client_addr;
use lbsim::sim::Scenario;
use lbsim::MemberId;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(15);

fn scenario(traffic: &str, extra: &str) -> Scenario {
    let text = format!(
        r#"
name = "live"
seed = 11
duration_s = 30
[traffic]
{traffic}
[channel]
name = "ch_live"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{{ host = "192.168.0.5" }}, {{ host = "192.168.0.6" }}]
{extra}
"#
    );
    Scenario::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("scenario invalid:\n{e}"))
}

const M5: &str = "192.168.0.5:8080";

fn m5() -> MemberId {
    MemberId::parse(M5).unwrap()
}

async fn start(sc: &Scenario) -> (Backends, LiveClock, SocketAddr) {
    let clock = LiveClock::now();
    let b = backends::start(backends::plans(sc, sc.seed), clock).await.expect("backends start");
    assert_eq!(b.addrs().len(), 2);
    let addr = b.addr(m5()).expect("member 5 has a backend");
    assert!(addr.ip().is_loopback());
    (b, clock, addr)
}

/// One `GET` on a fresh connection: status, `x-lbsim-member`, elapsed.
async fn get(addr: SocketAddr) -> std::io::Result<(u16, Option<String>, Duration)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /api/v1/items/1 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let elapsed = t0.elapsed();
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let member = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-lbsim-member:").map(|_| l[15..].trim().to_string()));
    Ok((status, member, elapsed))
}

async fn sleep_until(clock: LiveClock, t: f64) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(clock.at(t))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_after_the_service_time_with_the_member_header() {
    timeout(LIMIT, async {
        let sc = scenario(r#"service_time_ms = { dist = "fixed", value = 50 }"#, "");
        let (b, _, addr) = start(&sc).await;
        let (status, member, elapsed) = get(addr).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(member.as_deref(), Some(M5));
        let ms = elapsed.as_secs_f64() * 1000.0;
        assert!((50.0..=150.0).contains(&ms), "answered after {ms} ms");
        let other = b.addr(MemberId::parse("192.168.0.6:8080").unwrap()).unwrap();
        assert_ne!(other, addr);
        assert_eq!(get(other).await.unwrap().1.as_deref(), Some("192.168.0.6:8080"));
        let st = b.stats(m5()).unwrap();
        assert_eq!((st.requests, st.served, st.status_5xx, st.status_503), (1, 1, 0, 0));
        b.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err(), "closed after shutdown");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_fault_gives_500s_inside_its_window_only() {
    timeout(LIMIT, async {
        let sc = scenario(
            r#"service_time_ms = { dist = "fixed", value = 5 }"#,
            &format!("[[faults]]\nmember = \"{M5}\"\nkind = \"errors\"\nat_s = 0\nuntil_s = 1\nrate = 1.0\n"),
        );
        let (b, clock, addr) = start(&sc).await;
        for _ in 0..3 {
            assert_eq!(get(addr).await.unwrap().0, 500);
        }
        sleep_until(clock, 1.1).await;
        for _ in 0..3 {
            assert_eq!(get(addr).await.unwrap().0, 200);
        }
        let st = b.stats(m5()).unwrap();
        assert_eq!((st.served, st.status_5xx), (6, 3));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_window_refuses_connections_then_serves_on_the_same_port() {
    timeout(LIMIT, async {
        let sc = scenario(
            r#"service_time_ms = { dist = "fixed", value = 5 }"#,
            &format!("[[faults]]\nmember = \"{M5}\"\nkind = \"down\"\nat_s = 0.5\nuntil_s = 1.5\n"),
        );
        let (_b, clock, addr) = start(&sc).await;
        assert_eq!(get(addr).await.unwrap().0, 200);
        // A connection open when the window starts is closed.
        let mut open = TcpStream::connect(addr).await.unwrap();
        sleep_until(clock, 0.7).await;
        let mut byte = [0u8; 1];
        let read = timeout(Duration::from_secs(1), open.read(&mut byte)).await.expect("open connection closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let e = TcpStream::connect(addr).await.expect_err("refused while down");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        sleep_until(clock, 1.7).await;
        let (status, member, _) = get(addr).await.expect("accepts again on the same port");
        assert_eq!((status, member.as_deref()), (200, Some(M5)));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_slots_and_queue_give_503() {
    timeout(LIMIT, async {
        let sc = scenario(
            r#"service_time_ms = { dist = "fixed", value = 300 }"#,
            &format!("[[backends]]\nmember = \"{M5}\"\nmax_in_flight = 1\nmax_queue = 0\n"),
        );
        let (b, _, addr) = start(&sc).await;
        let (a, c) = tokio::join!(get(addr), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            get(addr).await
        });
        let (a, c) = (a.unwrap(), c.unwrap());
        assert_eq!((a.0, c.0), (200, 503));
        assert!(c.2 < Duration::from_millis(200), "503 at once, not after {:?}", c.2);
        let st = b.stats(m5()).unwrap();
        assert_eq!((st.requests, st.served, st.status_503), (2, 1, 1));
    })
    .await
    .expect("test timed out");
}

#[test]
fn backend_map_accepts_loopback_only() {
    let m = parse_backend_map("192.168.0.5:8080=127.0.0.1:9001,192.168.0.6:8080=127.0.0.2:9002,[::1]:1=[::1]:9003")
        .unwrap();
    assert_eq!(m[0], (m5(), "127.0.0.1:9001".parse().unwrap()));
    assert_eq!(m.len(), 3);
    let e = parse_backend_map("192.168.0.5:8080=10.0.0.1:80").unwrap_err();
    assert!(e.contains("not a loopback address"), "{e}");
    assert!(parse_backend_map("192.168.0.5:8080").is_err());
    assert!(parse_backend_map("192.168.0.5:8080=localhost:80").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_sends_the_scenario_rate_open_loop() {
    timeout(LIMIT, async {
        let sc = scenario(
            r#"rate_rps = 200
arrival = "constant"
uris = 100
service_time_ms = { dist = "fixed", value = 20 }
request_timeout_ms = 2000"#,
            "",
        );
        let (b, _, addr) = start(&sc).await;
        let plan = LoadPlan::new(sc.traffic.clone(), Duration::from_secs(2), sc.seed);
        let r = loadgen::run(addr, plan).await;
        assert!((399..=401).contains(&r.sent), "sent {}", r.sent);
        assert_eq!(r.sent, r.ok + r.failed);
        assert_eq!(r.failed, 0, "{:?}", r.failed_by_reason);
        assert_eq!(r.per_member.get(M5), Some(&r.ok));
        let p50 = r.latency_ms(50.0).unwrap();
        assert!((19.0..=40.0).contains(&p50), "p50 {p50} ms");
        let took = r.finished_at - r.started_at;
        assert!(took >= Duration::from_millis(1990) && took < Duration::from_millis(3000), "{took:?}");
        assert_eq!(b.stats(m5()).unwrap().served, r.ok);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_counts_overload_and_failures() {
    timeout(LIMIT, async {
        // Each answer takes 3 s, so the first four requests hold the four slots while the other
        // 46 arrive (all within 250 ms of the plan's virtual time): the counts are exact unless
        // the load generator falls 2.75 s behind its schedule.
        let sc = scenario(
            r#"rate_rps = 200
arrival = "constant"
service_time_ms = { dist = "fixed", value = 3000 }
request_timeout_ms = 20000"#,
            "[[faults]]\nmember = \"192.168.0.6:8080\"\nkind = \"down\"\nat_s = 0\n",
        );
        let (b, _, addr) = start(&sc).await;
        let mut plan = LoadPlan::new(sc.traffic.clone(), Duration::from_secs(1), sc.seed);
        plan.concurrency_limit = 4;
        plan.max_requests = 50;
        let r = loadgen::run(addr, plan).await;
        assert_eq!(r.sent, 50);
        assert_eq!(r.sent, r.ok + r.failed);
        assert_eq!((r.ok, r.failed), (4, 46), "{r:?}");
        assert_eq!(r.failed_by_reason.get("client_overload"), Some(&46), "{r:?}");

        // A member that is down: connect errors.
        let down = b.addr(MemberId::parse("192.168.0.6:8080").unwrap()).unwrap();
        let mut plan = LoadPlan::new(sc.traffic.clone(), Duration::from_secs(1), sc.seed);
        plan.max_requests = 10;
        let r = loadgen::run(down, plan).await;
        assert_eq!((r.sent, r.failed), (10, 10));
        assert_eq!(r.failed_by_reason.get("connect"), Some(&10), "{:?}", r.failed_by_reason);
    })
    .await
    .expect("test timed out");
}

/// A plain server that records the client-address header of every request.
async fn capture_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let v = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or("");
                    log.lock().unwrap().push(v.to_string());
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(bytes::Bytes::from("ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_sends_client_addresses_from_the_pool() {
    timeout(LIMIT, async {
        let sc = scenario(
            r#"rate_rps = 400
clients = 20
client_zipf = 1.0
ipv6_fraction = 0.3
service_time_ms = { dist = "fixed", value = 1 }"#,
            "",
        );
        let (addr, seen, server) = capture_server().await;
        let mut plan = LoadPlan::new(sc.traffic.clone(), Duration::from_secs(5), sc.seed);
        plan.max_requests = 200;
        plan.client_ip_header = Some("x-forwarded-for".into());
        let r = loadgen::run(addr, plan).await;
        server.abort();
        assert_eq!((r.sent, r.ok), (200, 200), "{:?}", r.failed_by_reason);
        assert_eq!(r.per_member.get("unknown"), Some(&200));
        let pool: BTreeSet<IpAddr> = (0..20).map(|i| client_addr(sc.seed, i, 0.3)).collect();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 200);
        let distinct: BTreeSet<IpAddr> =
            seen.iter().map(|s| s.parse().unwrap_or_else(|_| panic!("not an address: {s:?}"))).collect();
        assert!(distinct.is_subset(&pool), "{distinct:?} not within {pool:?}");
        assert!(distinct.len() >= 8, "only {} distinct clients", distinct.len());
        assert!(distinct.iter().any(IpAddr::is_ipv6) && distinct.iter().any(IpAddr::is_ipv4));
    })
    .await
    .expect("test timed out");
}

#[test]
fn plans_cover_every_member_with_its_spec_and_faults() {
    let sc = scenario(
        r#"service_time_ms = { dist = "fixed", value = 5 }"#,
        &format!(
            "[[backends]]\nmember = \"{M5}\"\nspeed = 2.0\naz = \"AZ01\"\n\
             [[faults]]\naz = \"AZ01\"\nkind = \"az_down\"\nat_s = 3\nuntil_s = 4\n\
             [[faults]]\nmember = \"{M5}\"\nkind = \"slow\"\nat_s = 1\nuntil_s = 2\nfactor = 3.0\n"
        ),
    );
    let plans: Vec<BackendPlan> = backends::plans(&sc, 1);
    assert_eq!(plans.len(), 2);
    let p = &plans[0];
    assert_eq!((p.member, p.spec.speed), (m5(), 2.0));
    assert_eq!(p.fault_specs.len(), 2);
    assert!(p.faults.at(3.5).down && !p.faults.at(4.5).down);
    assert_eq!(p.faults.at(1.5).slow, 3.0);
    assert!(plans[1].fault_specs.is_empty() && plans[1].spec.speed == 1.0);
    assert_ne!(plans[0].seed, plans[1].seed);
}
