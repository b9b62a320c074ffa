#![cfg(feature = "live")]
//! `lbsim serve` against clients that hold its resources without a credential or without
//! finishing a request: the caller is checked from the headers before any body is read; silent
//! and stalled connections are closed on time; connections over the limit get 503 in the API
//! family's shape. Raw loopback sockets, each wait bounded.

use lbsim::control::auth::{Auth, Token};
use lbsim::control::{Limits, ServeConfig, Server};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "limits-token";
/// Longest wait for anything the server should do at once or after a short timeout.
const BOUND: Duration = Duration::from_secs(10);

async fn start(limits: Limits) -> Server {
    let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), Auth { tokens: vec![Token::parse(TOKEN).unwrap()], aksk: None });
    cfg.limits = limits;
    Server::start(cfg).await.expect("server")
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
    assert!(text.contains("\"error_code\":\"APIG.2011\"") && text.to_ascii_lowercase().contains("connection: close"), "{text}");
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
        assert!(text.contains(code) && lower.contains("retry-after: 1") && lower.contains("connection: close"), "{text}");
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
