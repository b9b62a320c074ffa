#![cfg(feature = "live")]
//! `lbsim serve` against clients that hold its resources without a credential or without
//! finishing a request: the caller is checked from the headers before any body is read; silent
//! and stalled connections are closed on time; connections over the limit get 503 in the API
//! family's shape. Raw loopback sockets, each wait bounded.

use lbsim::control::auth::{Auth, Token};
use lbsim::control::{Limits, Quotas, ServeConfig, Server};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "limits-token";
/// Longest wait for anything the server should do at once or after a short timeout.
const BOUND: Duration = Duration::from_secs(10);

async fn start(limits: Limits) -> Server {
    start_with(limits, Quotas::default()).await
}

async fn start_with(limits: Limits, quotas: Quotas) -> Server {
    let mut cfg = ServeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Auth { tokens: vec![Token::parse(TOKEN).unwrap()], aksk: None },
    );
    cfg.limits = limits;
    cfg.quotas = quotas;
    Server::start(cfg).await.expect("server")
}

/// One JSON exchange on a fresh connection: status and body.
async fn call(addr: SocketAddr, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    let mut s = connect(addr).await;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: lbsim\r\nX-Auth-Token: {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (resp, _) = read_to_close(&mut s).await;
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn channel(name: &str, hosts: &[&str]) -> Value {
    let members: Vec<Value> = hosts.iter().map(|h| json!({"host": h})).collect();
    json!({"name": name, "port": 8080, "balance_strategy": 1, "member_type": "ip",
        "instance_ids": ["eea73cde015940908ae0117d67bf7330"], "members": members})
}

/// Reads until the server closes the connection or `BOUND` passes; the text read and whether
/// the connection was closed.
async fn read_to_close(s: &mut TcpStream) -> (String, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), false),
        }
    }
}

/// Reads one response (headers and a `Content-Length` body) without waiting for the close.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return text,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: lbsim\r\nX-Auth-Token: {TOKEN}\r\n\r\n")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(BOUND, TcpStream::connect(addr)).await.expect("in time").expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_credential_is_refused_before_its_body_is_read() {
    let server = start(Limits { body_timeout: Duration::from_secs(300), ..Limits::default() }).await;
    let mut s = connect(server.addr()).await;
    // A megabyte announced, a kilobyte sent, then nothing: the answer must not wait for the rest.
    let head = "POST /v2/p1/apic/vpc-channels HTTP/1.1\r\nHost: lbsim\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[b' '; 1000]).await.unwrap();
    let (text, closed) = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text:?}");
    assert!(text.contains("APIG.1002"), "{text}");
    assert!(closed, "the connection is closed after the refusal, its body unread");
    // The same holds for a wrong AK/SK signature (no key pair configured here) and ZStack's shape.
    let mut s = connect(server.addr()).await;
    let head = "POST /zstack/v1/load-balancers/servergroups/x/backendservers HTTP/1.1\r\nHost: lbsim\r\n\
                Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date, Signature=00\r\nContent-Length: 1000000\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let (text, closed) = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 401") && text.contains("ID.1001") && closed, "{text:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed_after_the_header_timeout() {
    let limits = Limits { header_timeout: Duration::from_millis(300), ..Limits::default() };
    let server = start(limits).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect(server.addr()).await);
    }
    // One that trickles a request line and stops, one idle after a complete exchange.
    let mut trickle = connect(server.addr()).await;
    trickle.write_all(b"GET /openapi.json HT").await.unwrap();
    let mut idle = connect(server.addr()).await;
    idle.write_all(get("/openapi.json").as_bytes()).await.unwrap();
    let first = read_response(&mut idle).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first:?}");
    for (i, s) in silent.iter_mut().chain([&mut trickle, &mut idle]).enumerate() {
        let (text, closed) = read_to_close(s).await;
        assert!(closed, "connection {i} still open after {BOUND:?}");
        assert!(text.is_empty(), "connection {i} got {text:?}");
    }
    // The server still answers.
    let mut s = connect(server.addr()).await;
    s.write_all(get("/openapi.json").as_bytes()).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_408_and_the_connection_closes() {
    let limits = Limits { body_timeout: Duration::from_millis(300), ..Limits::default() };
    let server = start(limits).await;
    let mut s = connect(server.addr()).await;
    let head = format!(
        "POST /v2/p1/apic/vpc-channels HTTP/1.1\r\nHost: lbsim\r\nX-Auth-Token: {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (text, closed) = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(
        text.contains("\"error_code\":\"APIG.2011\"") && text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(closed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_and_the_limit_holds() {
    let limits = Limits { max_connections: 4, header_timeout: Duration::from_secs(60), ..Limits::default() };
    let server = start(limits).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect(server.addr()).await;
        s.write_all(get("/openapi.json").as_bytes()).await.unwrap();
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    for (path, code) in [("/v2/p1/apic/instances/i/vpc-channels", "APIG.9999"), ("/zstack/v1/x", "SYS.1000")] {
        let mut s = connect(server.addr()).await;
        s.write_all(get(path).as_bytes()).await.unwrap();
        let (text, closed) = read_to_close(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
        let lower = text.to_ascii_lowercase();
        assert!(
            text.contains(code) && lower.contains("retry-after: 1") && lower.contains("connection: close"),
            "{text}"
        );
        assert!(closed);
    }
    // Connections far over the limit are closed at once, without an answer.
    let mut extra = Vec::new();
    for _ in 0..4 {
        extra.push(connect(server.addr()).await);
    }
    let mut past = connect(server.addr()).await;
    past.write_all(get("/openapi.json").as_bytes()).await.unwrap();
    let (text, closed) = read_to_close(&mut past).await;
    assert!(closed && text.is_empty(), "{text:?}");
    drop(extra);
    drop(held);
    // Once the held connections close, new ones are served again.
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let mut s = connect(server.addr()).await;
        s.write_all(get("/openapi.json").as_bytes()).await.unwrap();
        let text = read_response(&mut s).await;
        if text.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still refused: {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_what_one_project_may_not_create_and_spare_the_others() {
    let server = start_with(Limits::default(), Quotas { channels: 2, members: 3, project_members: 5 }).await;
    let addr = server.addr();
    let mut ids = Vec::new();
    for name in ["quota_one", "quota_two"] {
        let (s, v) = call(addr, "POST", "/v2/p1/apic/vpc-channels", &channel(name, &["10.0.0.1", "10.0.0.2"])).await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["project_vpc_channels"][0]["id"].as_str().unwrap().to_string());
    }
    let (s, v) = call(addr, "POST", "/v2/p1/apic/vpc-channels", &channel("quota_three", &["10.0.0.1"])).await;
    assert_eq!((s, v["error_code"].as_str()), (403, Some("APIG.3109")), "{v}");
    // Another project is not starved by the first one's use.
    let (s, v) = call(addr, "POST", "/v2/p2/apic/vpc-channels", &channel("quota_one", &["10.0.0.1"])).await;
    assert_eq!(s, 201, "{v}");
    let members =
        |i: usize| format!("/v2/p1/apic/instances/eea73cde015940908ae0117d67bf7330/vpc-channels/{}/members", ids[i]);
    let body = |hosts: &[&str]| json!({"members": hosts.iter().map(|h| json!({"host": h})).collect::<Vec<_>>()});
    // Per channel: 2 + 2 > 3.
    let (s, v) = call(addr, "POST", &members(0), &body(&["10.0.1.1", "10.0.1.2"])).await;
    assert_eq!((s, v["error_code"].as_str()), (403, Some("APIG.3110")), "{v}");
    let (s, v) = call(addr, "POST", &members(0), &body(&["10.0.1.1"])).await;
    assert_eq!(s, 201, "{v}");
    // Per project: 3 + 2 + 1 > 5.
    let (s, v) = call(addr, "POST", &members(1), &body(&["10.0.1.1"])).await;
    assert_eq!((s, v["error_code"].as_str()), (403, Some("APIG.3110")), "{v}");
    // Updating members that exist adds none: allowed at the limit.
    let (s, v) = call(addr, "POST", &members(0), &json!({"members": [{"host": "10.0.0.1", "weight": 5}]})).await;
    assert_eq!((s, v["members"][0]["weight"].as_i64()), (201, Some(5)), "{v}");
    // A new channel's members count as well.
    let (s, v) = call(
        addr,
        "POST",
        "/v2/p3/apic/vpc-channels",
        &channel("quota_big", &["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]),
    )
    .await;
    assert_eq!((s, v["error_code"].as_str()), (403, Some("APIG.3110")), "{v}");
    server.shutdown().await;
}
