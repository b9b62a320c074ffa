//! The reverse proxy: hyper 1.x, HTTP/1.1 and HTTP/2 (h2c) to clients, pooled keep-alive HTTP/1.1
//! to members, the balancer picking per request.
//!
//! Per request: the client's address (the socket peer, or a trusted header when configured)
//! and the path go to `select`; the body is read up to `max_body_bytes` (so it can be retried);
//! the upstream exchange holds the pick (and so the member's WLC in-flight count) until the
//! response body ends. Failed attempts are retried as the scenario's `retries` says (architecture.md §5):
//! a refused connection, a timeout, a 503 (a member's full queue), and a reset before any
//! response byte for idempotent methods; hash strategies retry the key's next member in its
//! preference order. `X-Forwarded-For` gets the peer's address appended. Shutdown stops
//! accepting and lets in-flight requests finish (bounded by a grace period).
//!
//! Limits: a client must send its headers within `header_read_timeout` (else it is
//! disconnected) and its body within `body_read_timeout` (else 408); bodies over `max_body_bytes`
//! get 413 and headers over `max_header_bytes` 431. At most `max_connections` client connections
//! are served at once; connections over it get 503 on every request and are closed (up to as many
//! again; past that they are closed at once).

use super::stats::{ProxyStats, Reason, Tally};
use crate::balancer::{MemberId, OwnedPick};
use crate::health::Outcome;
use crate::{Balancer, Request};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Default of [`ProxyConfig::max_connections`]: nginx's 1024 worker connections times four.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// How the proxy behaves.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where each member is served: a loopback address.
    pub upstreams: Upstreams,
    /// Take the client address for hashing from this header (first value) instead of the
    /// socket peer. Only for trusted clients: loopback has one address.
    pub client_ip_header: Option<HeaderName>,
    pub retries: u32,
    /// Bounds each attempt until the response head arrives.
    pub request_timeout: Duration,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// Request line and headers; larger ones get 431 (HTTP/1.1).
    pub max_header_bytes: usize,
    /// A client that does not finish its headers by then is disconnected.
    pub header_read_timeout: Duration,
    /// A client that does not finish its request body by then gets 408.
    pub body_read_timeout: Duration,
    /// Client connections served at once; more get 503 and are closed.
    pub max_connections: usize,
}

/// Which loopback address serves each member. Shared (cheap to clone) so that a control plane can
/// swap in a new map while the proxy runs; a request reads it without a lock.
#[derive(Debug, Clone, Default)]
pub struct Upstreams(Arc<ArcSwap<HashMap<MemberId, SocketAddr>>>);

impl Upstreams {
    pub fn new(map: HashMap<MemberId, SocketAddr>) -> Upstreams {
        Upstreams(Arc::new(ArcSwap::from_pointee(map)))
    }

    pub fn get(&self, id: MemberId) -> Option<SocketAddr> {
        self.0.load().get(&id).copied()
    }

    /// Replaces the whole map; requests already past their lookup keep their address.
    pub fn store(&self, map: HashMap<MemberId, SocketAddr>) {
        self.0.store(Arc::new(map));
    }
}

impl ProxyConfig {
    pub fn new(upstreams: HashMap<MemberId, SocketAddr>) -> ProxyConfig {
        ProxyConfig {
            upstreams: Upstreams::new(upstreams),
            client_ip_header: None,
            retries: 0,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A running proxy.
pub struct Proxy {
    addr: SocketAddr,
    stats: Arc<ProxyStats>,
    stop: Option<oneshot::Sender<Duration>>,
    task: JoinHandle<()>,
    /// Ticks the balancer's clock when a time-driven option (slow start, outlier) is on.
    ticker: Option<JoinHandle<()>>,
}

struct Shared {
    /// The origin of the balancer's clock (`Balancer::tick`, `record_response`).
    origin: Instant,
    lb: Arc<Balancer>,
    cfg: ProxyConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    stats: Arc<ProxyStats>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

impl Proxy {
    /// Binds `listen` (a loopback address) and serves until [`Proxy::shutdown`].
    pub async fn start(
        lb: Arc<Balancer>,
        cfg: ProxyConfig,
        listen: SocketAddr,
        stats: Arc<ProxyStats>,
    ) -> std::io::Result<Proxy> {
        if !listen.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{listen} is not a loopback address"),
            ));
        }
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.request_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(512)
            .build(connector);
        let origin = Instant::now();
        let o = lb.options();
        let timed =
            o.slow_start_s.is_some() || o.outlier_consecutive_errors.is_some() || o.outlier_failure_rate.is_some();
        let ticker = timed.then(|| tokio::spawn(tick_loop(Arc::clone(&lb), origin)));
        let shared = Arc::new(Shared { origin, lb, cfg, client, stats: Arc::clone(&stats) });
        let (stop, stopped) = oneshot::channel::<Duration>();
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        tracing::info!(%addr, "proxy listening");
        Ok(Proxy { addr, stats, stop: Some(stop), task, ticker })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &Arc<ProxyStats> {
        &self.stats
    }

    /// Stops accepting, then waits up to `grace` for in-flight requests to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(grace);
        }
        let _ = (&mut self.task).await;
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
        if let Some(t) = &self.ticker {
            t.abort();
        }
    }
}

/// Tells the balancer the time every 20 ms (slow-start steps, ends of ejections).
async fn tick_loop(lb: Arc<Balancer>, origin: Instant) {
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticks.tick().await;
        lb.tick(origin.elapsed());
    }
}

/// Passive health: an attempt's outcome into outlier detection (nothing when it is off).
fn passive(shared: &Shared, id: MemberId, ok: bool) {
    let outcome = if ok { Outcome::Success } else { Outcome::Failure };
    let _ = shared.lb.health().record_response(id, outcome, shared.origin.elapsed());
}

fn server_builder(cfg: &ProxyConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192));
    builder.http2().timer(TokioTimer::new()).max_header_list_size(cfg.max_header_bytes as u32);
    builder
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<Duration>) {
    let builder = server_builder(&shared.cfg);
    let mut rejecter = server_builder(&shared.cfg);
    rejecter.http1().keep_alive(false);
    let limit = shared.cfg.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let (served, spare) = (Arc::new(Semaphore::new(limit)), Arc::new(Semaphore::new(limit)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let grace = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(permit) = Arc::clone(&served).try_acquire_owned() else {
                    reject(&rejecter, &spare, &shared.stats, stream, shared.cfg.header_read_timeout);
                    continue;
                };
                shared.stats.connection_opened();
                let conn_shared = Arc::clone(&shared);
                let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&conn_shared), peer, req));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                let stats = Arc::clone(&shared.stats);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "client connection ended");
                        // hyper answered 431 itself: count the request all the same.
                        if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse_too_large) {
                            stats.request_failed(Reason::HeadersTooLarge);
                        }
                    }
                    stats.connection_closed();
                    drop(permit);
                });
            }
            grace = &mut stopped => break grace.unwrap_or(Duration::ZERO),
        }
    };
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("proxy drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_ms = grace.as_millis() as u64, "proxy grace period over"),
    }
}

/// A connection over the limit: 503 on every request, closed after the first answer (HTTP/1.1)
/// or after `bound`. With no spare slot left either, it is closed at once.
fn reject(
    rejecter: &auto::Builder<TokioExecutor>,
    spare: &Arc<Semaphore>,
    stats: &Arc<ProxyStats>,
    stream: TcpStream,
    bound: Duration,
) {
    let Ok(permit) = Arc::clone(spare).try_acquire_owned() else {
        stats.connection_dropped();
        return;
    };
    stats.connection_rejected();
    let svc_stats = Arc::clone(stats);
    let svc = hyper::service::service_fn(move |_req: hyper::Request<Incoming>| {
        svc_stats.request_failed(Reason::ConnectionLimit);
        let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
        r.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        r.headers_mut().insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
        async move { Ok::<_, Infallible>(r) }
    });
    let conn = rejecter.serve_connection(TokioIo::new(stream), svc).into_owned();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(bound, conn).await;
        drop(permit);
    });
}

fn client_ip(shared: &Shared, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let from_header = shared
        .cfg
        .client_ip_header
        .as_ref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next().and_then(|first| first.trim().parse::<IpAddr>().ok()));
    from_header.unwrap_or(peer.ip())
}

fn plain(status: StatusCode, msg: impl Into<String>) -> hyper::Response<ProxyBody> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(msg.into())).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
];

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let stats = &shared.stats;
    let mut tally = Tally::new(Arc::clone(stats));
    let client = client_ip(&shared, peer, req.headers());
    let (parts, body) = req.into_parts();
    let read =
        tokio::time::timeout(shared.cfg.body_read_timeout, Limited::new(body, shared.cfg.max_body_bytes).collect());
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Err(_) => {
            tally.failed(Reason::ClientTimeout);
            return Ok(plain(StatusCode::REQUEST_TIMEOUT, "request body not received in time\n"));
        }
        Ok(Err(e)) => {
            let too_large = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
            let (status, reason) = if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, Reason::BodyTooLarge)
            } else {
                (StatusCode::BAD_REQUEST, Reason::ClientAbort)
            };
            tally.failed(reason);
            return Ok(plain(status, format!("{}\n", status.canonical_reason().unwrap_or("error"))));
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let lreq = Request::new(client, path);
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    let mut tried: Vec<MemberId> = Vec::new();
    let mut last = Reason::NoMember;
    for attempt in 0..=shared.cfg.retries {
        let picked = if tried.is_empty() { shared.lb.select(&lreq) } else { shared.lb.select_excluding(&lreq, &tried) };
        let pick = match picked {
            Ok(p) => p.into_owned(&shared.lb),
            Err(e) => {
                if tried.is_empty() {
                    tally.failed(Reason::NoMember);
                    return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, format!("no member: {e}\n")));
                }
                break;
            }
        };
        let id = pick.member().id();
        let retry_ok =
            |r: Reason| attempt < shared.cfg.retries && (r.retriable() || (r == Reason::Reset && idempotent));
        tally.attempt_started(id);
        let Some(addr) = shared.cfg.upstreams.get(id) else {
            // A member with no loopback server: as if it refused the connection.
            last = Reason::Refused;
            tally.attempt_failed(id, last);
            tried.push(id);
            if retry_ok(last) {
                continue;
            }
            break;
        };
        let upstream = match upstream_request(&parts, &body, addr, peer) {
            Ok(r) => r,
            Err(e) => {
                tally.attempt_failed(id, Reason::BadRequest);
                tally.failed(Reason::BadRequest);
                return Ok(plain(StatusCode::BAD_REQUEST, format!("{e}\n")));
            }
        };
        let outcome = tokio::time::timeout(shared.cfg.request_timeout, shared.client.request(upstream)).await;
        let reason = match outcome {
            Err(_) => Reason::Timeout,
            // The connector's own timeout (the same length) may fire first: still a timeout (504,
            // as nginx answers a proxy_connect_timeout), not a refusal.
            Ok(Err(e)) if e.is_connect() && super::caused_by(&e, std::io::ErrorKind::TimedOut) => Reason::Timeout,
            Ok(Err(e)) if e.is_connect() => Reason::Refused,
            Ok(Err(_)) => Reason::Reset,
            Ok(Ok(resp)) if resp.status() == StatusCode::SERVICE_UNAVAILABLE && attempt < shared.cfg.retries => {
                Reason::QueueFull
            }
            Ok(Ok(resp)) => {
                let status = resp.status();
                passive(&shared, id, !status.is_server_error());
                tally.attempt_answered(id, status.as_u16(), started.elapsed());
                if !tried.is_empty() {
                    stats.retried();
                }
                tally.answered(status.as_u16(), started.elapsed());
                tracing::debug!(member = %id, status = status.as_u16(), attempt, elapsed_us = started.elapsed().as_micros() as u64, "proxied");
                let (mut head, body) = resp.into_parts();
                strip_hop_by_hop(&mut head.headers);
                let body = PickBody { inner: body, pick: Some(pick), stats: Arc::clone(stats) };
                return Ok(hyper::Response::from_parts(head, body.boxed()));
            }
        };
        tally.attempt_failed(id, reason);
        passive(&shared, id, false);
        tracing::debug!(member = %id, ?reason, attempt, "attempt failed");
        last = reason;
        tried.push(id);
        if !retry_ok(reason) {
            break;
        }
    }
    tally.failed(last);
    if tried.len() > 1 {
        stats.retried();
    }
    let status = match last {
        Reason::Timeout => StatusCode::GATEWAY_TIMEOUT,
        Reason::QueueFull | Reason::NoMember => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    Ok(plain(status, format!("upstream failed: {}\n", last.as_str())))
}

fn upstream_request(
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    addr: SocketAddr,
    peer: SocketAddr,
) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(body.clone()))?;
    let headers = req.headers_mut();
    for (k, v) in parts.headers.iter() {
        headers.append(k.clone(), v.clone());
    }
    strip_hop_by_hop(headers);
    let xff = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if !headers.contains_key(hyper::header::HOST) {
        if let Some(host) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            headers.insert(hyper::header::HOST, host);
        }
    }
    Ok(req)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// The upstream response body, holding the pick until it ends so that the member's in-flight
/// count covers the whole exchange.
struct PickBody {
    inner: Incoming,
    pick: Option<OwnedPick>,
    stats: Arc<ProxyStats>,
}

impl Body for PickBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(p) = self.pick.take() {
                    self.stats.attempt_ended(p.member().id());
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(p) = self.pick.take() {
                    self.stats.attempt_ended(p.member().id());
                    self.stats.body_reset(p.member().id());
                }
            }
            _ => {}
        }
        polled.map(|f| f.map(|r| r.map_err(|e| Box::new(e) as BoxError)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PickBody {
    fn drop(&mut self) {
        // The client went away before the body ended: the exchange is over all the same.
        if let Some(p) = self.pick.take() {
            self.stats.attempt_ended(p.member().id());
        }
    }
}
