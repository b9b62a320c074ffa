#![cfg(feature = "live")]
//! Faults under load on loopback: backends killed and restarted mid-load, backends that accept and
//! never answer, slowloris clients (headers and body), clients that disconnect mid-body, bodies and
//! headers over the limits, and more connections than the proxy serves at once. For each: the
//! proxy stays up (a plain request still gets 200 afterwards), its memory stays bounded (resident
//! set growth measured from /proc/self/statm), every request is accounted for (proxy stats:
//! total = ok + failed, and failed = the sum by reason), and the limits answer with the right
//! status. Every test is bounded in count and time; the tests of this file run one at a time so
//! that each one's memory measurement is its own.

use crate::support::{own_process, run_module_in_own_process};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lbsim::live::backends::{self, Backends, LiveClock};
use lbsim::live::loadgen::{self, LoadPlan};
use lbsim::live::proxy::{Proxy, ProxyConfig};
use lbsim::live::stats::ProxyStats;
use lbsim::model::Format;
use lbsim::sim::scenario::member_ids;
use lbsim::sim::Scenario;
use lbsim::{Balancer, MemberId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The module's tests measure the process's resident set, so they run in a process of their own.
#[test]
fn in_own_process() {
    run_module_in_own_process("live_faults", 7);
}

const LIMIT: Duration = Duration::from_secs(60);
/// Resident-set growth allowed over one fault run (allocator caches, tokio's worker queues).
const RSS_BUDGET: u64 = 64 << 20;

/// One test at a time: resident-set measurements are per process (and the module runs in a process
/// of its own: `in_own_process`).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn assert_rss_bounded(before: u64) {
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    eprintln!("resident set: {} KiB before, {} KiB after", before >> 10, after >> 10);
    assert!(grown < RSS_BUDGET, "resident set grew by {grown} bytes");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

fn scenario(members: &str, extra: &str, service_ms: u32, rate: u32) -> Scenario {
    let text = format!(
        r#"
name = "faults"
seed = 9
duration_s = 10
[traffic]
rate_rps = {rate}
arrival = "constant"
service_time_ms = {{ dist = "fixed", value = {service_ms} }}
request_timeout_ms = 3000
[channel]
name = "faults"
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
    members: Vec<MemberId>,
}

/// Backends for the scenario (`extra_upstreams` override or add members), then the proxy.
async fn start(sc: &Scenario, cfg: impl FnOnce(&mut ProxyConfig), extra_upstreams: &[(MemberId, SocketAddr)]) -> Live {
    let clock = LiveClock::now();
    let backends = backends::start(backends::plans(sc, sc.seed), clock).await.expect("backends");
    let lb = Arc::new(Balancer::from_channel(&sc.channels[0].channel).expect("channel"));
    let members = member_ids(&sc.channels[0].channel);
    let mut upstreams: HashMap<MemberId, SocketAddr> = backends.addrs().into_iter().collect();
    upstreams.extend(extra_upstreams.iter().copied());
    let mut config = ProxyConfig::new(upstreams);
    config.request_timeout = Duration::from_secs(2);
    cfg(&mut config);
    let stats = Arc::new(ProxyStats::new(&members, clock.start, 1.0, 60));
    let proxy =
        Proxy::start(Arc::clone(&lb), config, "127.0.0.1:0".parse().expect("addr"), stats).await.expect("proxy");
    Live { lb, proxy, backends, members }
}

impl Live {
    /// The proxy is up, every request it took is accounted for, and nothing is left in flight.
    async fn check_and_stop(self) -> lbsim::live::stats::RequestFigures {
        let c = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let req = hyper::Request::get(format!("http://{}/still-up", self.proxy.addr()))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(5), c.request(req)).await;
        let status = resp.ok().and_then(Result::ok).map(|r| r.status().as_u16());
        assert!(matches!(status, Some(200 | 504)), "the proxy still answers after the fault: {status:?}");
        drop(c);
        // Bodies end a moment after their answers: wait for the counters to settle (bounded).
        for _ in 0..100 {
            if self.members.iter().all(|m| self.proxy.stats().in_flight(*m) == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = self.proxy.stats().requests();
        assert_eq!(r.total, r.ok + r.failed, "total = ok + failed: {r:?}");
        assert_eq!(r.failed, r.by_reason.values().sum::<u64>(), "failed = sum by reason: {:?}", r.by_reason);
        for m in &self.members {
            assert_eq!(self.proxy.stats().in_flight(*m), 0, "{m}: proxy attempts left open");
        }
        for m in self.lb.members() {
            assert_eq!(m.in_flight, 0, "{}: balancer in-flight left open", m.member.id());
        }
        eprintln!("proxy: {} requests, {} ok, failed by reason {:?}", r.total, r.ok, r.by_reason);
        self.proxy.shutdown(Duration::from_secs(1)).await;
        self.backends.shutdown().await;
        r
    }
}

/// Sends raw bytes and reads the status code of the answer (0: the connection closed without
/// one) within `within`. A write cut short by the proxy's answer still reads that answer.
async fn raw_status(addr: SocketAddr, bytes: impl AsRef<[u8]>, within: Duration) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes.as_ref()).await;
    read_status(&mut s, within).await
}

async fn read_status(s: &mut TcpStream, within: Duration) -> u16 {
    let mut buf = vec![0u8; 1024];
    let mut got = 0;
    let read = async {
        while got < 12 {
            match s.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    std::str::from_utf8(&buf[..got.min(12)])
        .ok()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn reason(r: &lbsim::live::stats::RequestFigures, key: &str) -> u64 {
    r.by_reason.get(key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_killed_and_restarted_mid_load() {
    if !own_process("live_faults") {
        return;
    }
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        // Two of three members flap: every 0.4 s their listener and open connections are torn
        // down, then bound again. Requests take 30 ms, so some are cut mid-exchange.
        let flap = |m: &str| format!("[[faults]]\nmember = \"{m}\"\nkind = \"flap\"\nat_s = 0.5\nperiod_s = 0.4\n");
        let sc = scenario(
            r#"{ host = "192.168.0.1" }, { host = "192.168.0.2" }, { host = "192.168.0.3" }"#,
            &format!("{}{}", flap("192.168.0.1:8080"), flap("192.168.0.2:8080")),
            30,
            300,
        );
        let live = start(&sc, |c| c.retries = 2, &[]).await;
        let before = rss_bytes();
        let result =
            loadgen::run(live.proxy.addr(), LoadPlan::new(sc.traffic.clone(), Duration::from_secs(4), 1)).await;
        assert_rss_bounded(before);
        assert_eq!(result.sent, result.ok + result.failed, "load generator: every request accounted for");
        assert!(result.sent >= 1000, "sent {}", result.sent);
        let killed: u64 = ["192.168.0.1:8080", "192.168.0.2:8080"]
            .iter()
            .filter_map(|m| live.proxy.stats().members().into_iter().find(|f| f.member.to_string() == *m))
            .map(|f| f.failed)
            .sum();
        assert!(killed > 20, "the flapping members failed attempts: {killed}");
        let r = live.check_and_stop().await;
        // Every request the load generator sent reached the proxy and was counted there once
        // (plus the final check), and the proxy's answers agree with what the client saw.
        assert_eq!(r.total, result.sent + 1, "proxy {r:?} vs load generator {result:?}");
        assert_eq!(r.ok, result.ok + 1, "ok: proxy {r:?} vs load generator {:?}", result.failed_by_reason);
        // Retried attempts went to the healthy member: almost nothing fails.
        assert!(result.failed * 100 <= result.sent, "failed {:?} of {}", result.failed_by_reason, result.sent);
    })
    .await
    .expect("bounded");
}

/// A backend that accepts connections, reads what comes and never answers.
async fn silent_backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            held.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            }));
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_gets_504_and_every_request_is_counted() {
    if !own_process("live_faults") {
        return;
    }
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#, "", 1, 100);
        let silent = MemberId::new("192.168.0.1", 8080);
        let (addr, task) = silent_backend().await;
        let live = start(&sc, |c| c.request_timeout = Duration::from_millis(300), &[(silent, addr)]).await;
        let before = rss_bytes();
        let c = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut calls = Vec::new();
        for i in 0..200 {
            let req = hyper::Request::get(format!("http://{}/s/{i}", live.proxy.addr()))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let c = c.clone();
            calls.push(tokio::spawn(async move { c.request(req).await.map(|r| r.status().as_u16()).unwrap_or(0) }));
        }
        for call in calls {
            assert_eq!(call.await.expect("task"), 504, "a silent backend gives 504");
        }
        assert_rss_bounded(before);
        let r = live.check_and_stop().await;
        assert_eq!((r.total, r.ok, reason(&r, "timeout")), (201, 0, 201), "{r:?}");
        task.abort();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_off_and_others_are_served() {
    if !own_process("live_faults") {
        return;
    }
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }, { host = "192.168.0.2" }"#, "", 1, 100);
        let live = start(
            &sc,
            |c| {
                c.header_read_timeout = Duration::from_millis(500);
                c.body_read_timeout = Duration::from_millis(500);
            },
            &[],
        )
        .await;
        let addr = live.proxy.addr();
        let before = rss_bytes();
        // 100 clients trickle their headers, 100 their body, one byte every 100 ms.
        let mut slow = Vec::new();
        for i in 0..200 {
            slow.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                let (head, trickle): (String, &[u8]) = if i % 2 == 0 {
                    ("GET /slow HTTP/1.1\r\nhost: x\r\n".into(), b"x-slow: abcdefghijklmnopqrstuvwxyz0123456789")
                } else {
                    ("POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 64\r\n\r\n".into(), &[b'b'; 64])
                };
                let _ = s.write_all(head.as_bytes()).await;
                let started = tokio::time::Instant::now();
                for b in trickle {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if s.write_all(std::slice::from_ref(b)).await.is_err() {
                        break;
                    }
                    if started.elapsed() > Duration::from_secs(3) {
                        break;
                    }
                }
                (i, read_status(&mut s, Duration::from_secs(3)).await, started.elapsed())
            }));
        }
        // Meanwhile a well-behaved client is served.
        for i in 0..50 {
            let status = raw_status(addr, format!("GET /ok/{i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes(), LIMIT).await;
            assert_eq!(status, 200, "request {i} during the slowloris");
        }
        for s in slow {
            let (i, status, elapsed) = s.await.expect("task");
            // Headers: hyper closes the connection (no status); body: 408 from the proxy.
            let expected = if i % 2 == 0 { 0 } else { 408 };
            assert_eq!(status, expected, "slow client {i}");
            assert!(elapsed < Duration::from_millis(2500), "slow client {i} held on for {elapsed:?}");
        }
        assert_rss_bounded(before);
        let r = live.check_and_stop().await;
        // The header tricklers never made a request; the body tricklers each made one.
        assert_eq!((r.total, r.ok, reason(&r, "client_timeout")), (151, 51, 100), "{r:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_disconnect_mid_body_are_counted_as_aborted() {
    if !own_process("live_faults") {
        return;
    }
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#, "", 1, 100);
        let live = start(&sc, |_| {}, &[]).await;
        let addr = live.proxy.addr();
        let before = rss_bytes();
        for i in 0..300 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let head = format!("POST /upload/{i} HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n");
            s.write_all(head.as_bytes()).await.expect("write");
            s.write_all(&[b'z'; 1000]).await.expect("write");
            drop(s);
        }
        // The proxy notices each close as it reads: wait for all of them (bounded).
        for _ in 0..250 {
            if live.proxy.stats().requests().total >= 300 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_rss_bounded(before);
        let r = live.check_and_stop().await;
        assert_eq!((r.total, r.ok, reason(&r, "client_abort")), (301, 1, 300), "{r:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_headers_over_the_limits_get_413_and_431() {
    if !own_process("live_faults") {
        return;
    }
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#, "", 1, 100);
        let live = start(
            &sc,
            |c| {
                c.max_body_bytes = 4096;
                c.max_header_bytes = 8192;
            },
            &[],
        )
        .await;
        let addr = live.proxy.addr();
        let before = rss_bytes();
        let big_body = vec![b'a'; 8192];
        let big_header = "v".repeat(16_384);
        for i in 0..100 {
            // Declared length over the limit, and a chunked body that grows past it.
            let mut req =
                format!("POST /b/{i} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", big_body.len()).into_bytes();
            req.extend_from_slice(&big_body);
            assert_eq!(raw_status(addr, &req, Duration::from_secs(5)).await, 413, "body {i}");
            let mut chunked =
                format!("POST /c/{i} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes();
            for _ in 0..5 {
                chunked.extend_from_slice(b"400\r\n");
                chunked.extend_from_slice(&[b'c'; 0x400]);
                chunked.extend_from_slice(b"\r\n");
            }
            chunked.extend_from_slice(b"0\r\n\r\n");
            assert_eq!(raw_status(addr, &chunked, Duration::from_secs(5)).await, 413, "chunked body {i}");
            let req = format!("GET /h/{i} HTTP/1.1\r\nhost: x\r\nx-big: {big_header}\r\n\r\n");
            assert_eq!(raw_status(addr, req.as_bytes(), Duration::from_secs(5)).await, 431, "headers {i}");
        }
        // Just under the limits is fine.
        let mut ok = b"POST /fits HTTP/1.1\r\nhost: x\r\ncontent-length: 4096\r\n\r\n".to_vec();
        ok.extend_from_slice(&[b'a'; 4096]);
        assert_eq!(raw_status(addr, &ok, Duration::from_secs(5)).await, 200);
        assert_rss_bounded(before);
        let r = live.check_and_stop().await;
        assert_eq!(
            (r.total, r.ok, reason(&r, "body_too_large"), reason(&r, "headers_too_large")),
            (302, 2, 200, 100),
            "{r:?}"
        );
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_and_the_limit_holds() {
    if !own_process("live_faults") {
        return;
    }
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        const MAX: usize = 40;
        let sc = scenario(r#"{ host = "192.168.0.1" }, { host = "192.168.0.2" }"#, "", 1, 100);
        let live = start(&sc, |c| c.max_connections = MAX, &[]).await;
        let addr = live.proxy.addr();
        let before = rss_bytes();
        // MAX keep-alive connections, each served once and then held open.
        let mut held = Vec::new();
        for i in 0..MAX {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(format!("GET /keep/{i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.expect("write");
            assert_eq!(read_status(&mut s, Duration::from_secs(5)).await, 200, "connection {i} within the limit");
            held.push(s);
        }
        // Every connection beyond them is answered 503, ten at a time (within the spare places
        // for answering them).
        for wave in 0..10 {
            let over: Vec<_> = (0..10)
                .map(|i| {
                    let req = format!("GET /over/{wave}/{i} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes();
                    tokio::spawn(raw_status(addr, req, Duration::from_secs(5)))
                })
                .collect();
            for (i, o) in over.into_iter().enumerate() {
                assert_eq!(o.await.expect("task"), 503, "connection {wave}/{i} over the limit");
            }
        }
        let conns = live.proxy.stats().connections();
        assert_eq!((conns.peak, conns.open, conns.rejected, conns.dropped), (MAX as u64, MAX as u64, 100, 0));
        // Closing the held connections frees their places.
        drop(held);
        for _ in 0..100 {
            if live.proxy.stats().connections().open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(raw_status(addr, b"GET /again HTTP/1.1\r\nhost: x\r\n\r\n", Duration::from_secs(5)).await, 200);
        assert_rss_bounded(before);
        assert!(live.proxy.stats().connections().peak <= MAX as u64, "the limit held");
        let r = live.check_and_stop().await;
        assert_eq!((r.total, r.ok, reason(&r, "connection_limit")), (142, 42, 100), "{r:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_leave_while_the_member_thinks_are_counted_and_their_attempts_end() {
    if !own_process("live_faults") {
        return;
    }
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#, "", 1, 100);
        let silent = MemberId::new("192.168.0.1", 8080);
        let (addr, task) = silent_backend().await;
        let live = start(&sc, |c| c.request_timeout = Duration::from_millis(1500), &[(silent, addr)]).await;
        let before = rss_bytes();
        for i in 0..100 {
            let mut s = TcpStream::connect(live.proxy.addr()).await.expect("connect");
            s.write_all(format!("GET /gone/{i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.expect("write");
            tokio::time::sleep(Duration::from_millis(2)).await;
            drop(s);
        }
        // Their attempts end (and are counted) when the proxy notices, at the latest when the
        // request timeout would have fired.
        for _ in 0..150 {
            if live.proxy.stats().requests().total >= 100 && live.proxy.stats().in_flight(silent) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_rss_bounded(before);
        let r = live.check_and_stop().await;
        // The final check also meets the silent member: 504.
        assert_eq!((r.total, r.ok), (101, 0), "{r:?}");
        assert_eq!(reason(&r, "client_abort") + reason(&r, "timeout"), 101, "{r:?}");
        assert!(reason(&r, "client_abort") >= 90, "most clients left before the timeout: {r:?}");
        task.abort();
    })
    .await
    .expect("bounded");
}
