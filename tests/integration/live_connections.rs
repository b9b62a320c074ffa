#![cfg(feature = "live")]
//! Client connections of the live proxy: silent and idle connections are closed by their
//! timeouts (so that they cannot hold the connection limit), request checks (Host, CONNECT),
//! and which headers go upstream. Every test is bounded in count and time, loopback only.

use lbsim::control::dataplane::{ChannelRuntime, Env};
use lbsim::live::backends::{self, Backends, LiveClock};
use lbsim::live::proxy::{Proxy, ProxyConfig};
use lbsim::live::stats::ProxyStats;
use lbsim::model::{Format, VpcChannel};
use lbsim::sim::scenario::member_ids;
use lbsim::sim::Scenario;
use lbsim::{Balancer, MemberId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(60);

fn scenario(members: &str) -> Scenario {
    let text = format!(
        r#"
name = "connections"
seed = 3
duration_s = 10
[traffic]
service_time_ms = {{ dist = "fixed", value = 1 }}
[channel]
name = "connections"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{members}]
"#
    );
    Scenario::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e}"))
}

async fn start(
    sc: &Scenario,
    upstreams: Option<HashMap<MemberId, SocketAddr>>,
    cfg: impl FnOnce(&mut ProxyConfig),
) -> (Proxy, Option<Backends>) {
    let clock = LiveClock::now();
    let (backends, upstreams) = match upstreams {
        Some(u) => (None, u),
        None => {
            let b = backends::start(backends::plans(sc, sc.seed), clock).await.expect("backends");
            let u = b.addrs().into_iter().collect();
            (Some(b), u)
        }
    };
    let lb = Arc::new(Balancer::from_channel(&sc.channels[0].channel).expect("channel"));
    let mut config = ProxyConfig::new(upstreams);
    config.workers = 2;
    cfg(&mut config);
    let stats = Arc::new(ProxyStats::new(&member_ids(&sc.channels[0].channel), clock.start, 1.0, 30));
    let proxy = Proxy::start(lb, config, "127.0.0.1:0".parse().expect("addr"), stats).await.expect("proxy");
    (proxy, backends)
}

/// Sends `req` on a new connection and reads the answer's status (0: closed without one).
async fn status_of(addr: SocketAddr, req: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(req).await.expect("write");
    read_status(&mut s, Duration::from_secs(5)).await
}

async fn read_status(s: &mut TcpStream, within: Duration) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    std::str::from_utf8(&buf).ok().and_then(|t| t.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Whether the proxy closes `s` within `within` (a read returns end of stream or an error).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Issue 17, finding 2: with twice `max_connections` sockets open that never send a byte, real
/// clients are served once the header timeout has closed the silent ones. On the code before the
/// fix the silent sockets held every slot for as long as they stayed open (this test's reads time
/// out and its clients get 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_real_clients_are_served() {
    tokio::time::timeout(LIMIT, async {
        const MAX: usize = 20;
        let sc = scenario(r#"{ host = "192.168.0.1" }, { host = "192.168.0.2" }"#);
        let (proxy, backends) = start(&sc, None, |c| {
            c.max_connections = MAX;
            c.header_read_timeout = Duration::from_millis(300);
        })
        .await;
        let addr = proxy.addr();
        let mut silent = Vec::new();
        for _ in 0..2 * MAX {
            silent.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let opened = Instant::now();
        for (i, s) in silent.iter_mut().enumerate() {
            assert!(closed_within(s, Duration::from_secs(5)).await, "silent connection {i} still open after 5 s");
        }
        let waited = opened.elapsed();
        assert!(waited >= Duration::from_millis(250), "closed before the header timeout: {waited:?}");
        for i in 0..50 {
            let status = status_of(addr, format!("GET /real/{i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await;
            assert_eq!(status, 200, "real client {i} after the silent connections");
        }
        let c = proxy.stats().connections();
        // Those within the limit time out; those over it are answered or closed by the bound.
        assert!(c.timed_out >= MAX as u64, "{c:?}");
        assert_eq!(c.peak, MAX as u64, "{c:?}");
        proxy.shutdown(Duration::from_secs(1)).await;
        if let Some(b) = backends {
            b.shutdown().await;
        }
    })
    .await
    .expect("bounded");
}

/// A keep-alive connection is closed after the idle timeout, not before, and one that keeps
/// sending requests is not (issue 17, finding 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#);
        let (proxy, backends) = start(&sc, None, |c| {
            c.header_read_timeout = Duration::from_secs(10);
            c.idle_timeout = Duration::from_millis(400);
        })
        .await;
        let addr = proxy.addr();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // Requests 150 ms apart keep the connection: each arrives within the idle timeout.
        for i in 0..6 {
            s.write_all(format!("GET /busy/{i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.expect("write");
            assert_eq!(read_status(&mut s, Duration::from_secs(5)).await, 200, "request {i}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let idle_from = Instant::now();
        assert!(closed_within(&mut s, Duration::from_secs(5)).await, "idle connection still open");
        let idled = idle_from.elapsed();
        assert!(idled >= Duration::from_millis(200), "closed {idled:?} into a 400 ms idle timeout");
        assert_eq!(proxy.stats().connections().timed_out, 1);
        proxy.shutdown(Duration::from_secs(1)).await;
        if let Some(b) = backends {
            b.shutdown().await;
        }
    })
    .await
    .expect("bounded");
}

/// A one-shot upstream that records the request head it receives and answers 200.
async fn recording_upstream() -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut heads = Vec::new();
        while let Ok(Ok((mut s, _))) = tokio::time::timeout(Duration::from_secs(3), l.accept()).await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    heads.push(String::from_utf8_lossy(&buf[..end]).to_lowercase());
                    buf.drain(..end + 4);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-up: 1\r\nconnection: x-up\r\n\r\nok\n")
                        .await;
                }
                match tokio::time::timeout(Duration::from_secs(1), s.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            if heads.len() >= 2 {
                break;
            }
        }
        heads
    });
    (addr, task)
}

/// Issue 17, finding 8: headers the `Connection` header names are hop-by-hop (RFC 9110 §7.6.1)
/// and not forwarded, in either direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_named_in_connection_are_not_forwarded() {
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#);
        let (up, heads) = recording_upstream().await;
        let upstreams = HashMap::from([(MemberId::new("192.168.0.1", 8080), up)]);
        let (proxy, _) = start(&sc, Some(upstreams), |_| {}).await;
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        s.write_all(
            b"GET /h HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, x-secret\r\nx-secret: 1\r\nkeep-alive: timeout=5\r\nx-kept: 2\r\n\r\n",
        )
        .await
        .expect("write");
        let mut resp = Vec::new();
        let mut chunk = [0u8; 4096];
        while !resp.ends_with(b"ok\n") {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => resp.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let resp = String::from_utf8_lossy(&resp).to_lowercase();
        assert!(resp.starts_with("http/1.1 200"), "{resp}");
        assert!(!resp.contains("x-up:"), "a header the member's Connection named came back: {resp}");
        drop(s);
        proxy.shutdown(Duration::from_secs(1)).await;
        let heads = heads.await.expect("upstream");
        let head = heads.first().expect("the request reached the member");
        assert!(head.contains("x-kept: 2"), "{head}");
        for gone in ["x-secret", "keep-alive:", "connection: keep-alive"] {
            assert!(!head.contains(gone), "`{gone}` was forwarded: {head}");
        }
    })
    .await
    .expect("bounded");
}

/// Issue 17, finding 8: an HTTP/1.1 request without Host gets 400 (RFC 9112 §3.2), CONNECT gets
/// 405 (the proxy opens no tunnels); HTTP/1.0 needs no Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_host_and_connect_are_refused() {
    tokio::time::timeout(LIMIT, async {
        let sc = scenario(r#"{ host = "192.168.0.1" }"#);
        let (proxy, backends) = start(&sc, None, |_| {}).await;
        let addr = proxy.addr();
        assert_eq!(status_of(addr, b"GET /no-host HTTP/1.1\r\n\r\n").await, 400);
        assert_eq!(status_of(addr, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nhost: 127.0.0.1:22\r\n\r\n").await, 405);
        assert_eq!(status_of(addr, b"GET /old HTTP/1.0\r\n\r\n").await, 200);
        assert_eq!(status_of(addr, b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n").await, 200);
        let r = proxy.stats().requests();
        assert_eq!((r.total, r.ok, r.by_reason.get("bad_request").copied()), (4, 2, Some(2)), "{r:?}");
        proxy.shutdown(Duration::from_secs(1)).await;
        if let Some(b) = backends {
            b.shutdown().await;
        }
    })
    .await
    .expect("bounded");
}

/// Issue 20: a channel of the control API counts its members' requests, including members
/// added by an update. (One thread: the WRR sequence is the exact one.)
#[tokio::test(flavor = "current_thread")]
async fn control_api_channels_count_per_member_figures() {
    tokio::time::timeout(LIMIT, async {
        let channel = |members: &str| -> VpcChannel {
            let sc = scenario(members);
            sc.channels[0].channel.clone()
        };
        let one = channel(r#"{ host = "192.168.1.1" }"#);
        let rt = ChannelRuntime::start(&one, Arc::new(Env::default())).await.expect("channel");
        let addr = rt.listen_addr();
        for i in 0..4 {
            assert_eq!(status_of(addr, format!("GET /a/{i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await, 200);
        }
        let update = channel(r#"{ host = "192.168.1.1" }, { host = "192.168.1.2" }"#);
        rt.apply(rt.plan(), &update).await.expect("update");
        for i in 0..4 {
            assert_eq!(status_of(addr, format!("GET /b/{i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await, 200);
        }
        let figures: HashMap<String, u64> =
            rt.stats().members().into_iter().map(|m| (m.member.to_string(), m.attempts)).collect();
        assert_eq!(figures.get("192.168.1.1:8080"), Some(&6), "{figures:?}");
        assert_eq!(figures.get("192.168.1.2:8080"), Some(&2), "{figures:?}");
        rt.shutdown().await;
    })
    .await
    .expect("bounded");
}
