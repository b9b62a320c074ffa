//! The reverse proxy: hyper 1.x, HTTP/1.1 and HTTP/2 (h2c) to clients, pooled keep-alive HTTP/1.1
//! to members, the balancer picking per request.
//!
//! Structure: `workers` threads, each running a current-thread tokio runtime with its own
//! `SO_REUSEPORT` listener (the kernel spreads connections over them), its own pool of upstream
//! connections and, through its thread, its own balancer stripe: a request stays on one thread
//! from accept to response, as in nginx's worker processes. With `workers = 0` the proxy runs as
//! one such worker on the caller's tokio runtime instead (for embedding, and the control API's
//! channels).
//!
//! Per request ([`forward`]): the client's address (the socket peer, or a trusted header when
//! configured) and the path go to `select`; the body is read up to `max_body_bytes` (so it can be
//! retried); the upstream exchange holds the pick (and so the member's WLC in-flight count) until
//! the response body ends. Failed attempts are retried as the scenario's `retries` says
//! (docs/architecture.md §5): a refused connection, a timeout, a 503 (a member's full queue), and
//! a reset before any response byte for idempotent methods; hash strategies retry the key's next
//! member in its preference order. `X-Forwarded-For` gets the peer's address appended; hop-by-hop
//! headers, and those the `Connection` header names, are not forwarded (RFC 9110 §7.6.1).
//! An HTTP/1.1 request without `Host` gets 400 and `CONNECT` gets 405: the proxy forwards
//! requests, it does not open tunnels.
//!
//! Connections ([`conn`]): a client must send a complete request head within
//! `header_read_timeout` of connecting (or of its next request's first byte), and a keep-alive
//! connection with no request in flight is closed after `idle_timeout`; a body must arrive
//! within `body_read_timeout` (else 408). Bodies over `max_body_bytes` get 413 and headers over
//! `max_header_bytes` 431. At most `max_connections` client connections are served at once over
//! all workers; connections over it get 503 on every request and are closed (up to as many
//! again; past that they are closed at once). Shutdown stops accepting and lets in-flight
//! requests finish (bounded by a grace period).

mod body;
mod conn;
mod forward;
mod pool;
mod worker;

use super::stats::ProxyStats;
use crate::balancer::MemberId;
use crate::Balancer;
use arc_swap::ArcSwap;
use hyper::header::HeaderName;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Default of [`ProxyConfig::max_connections`]: nginx's 1024 worker connections times four.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Default of [`ProxyConfig::idle_timeout`] (nginx's `keepalive_timeout` is 75 s, its packaged
/// configuration's 65 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// A client that does not send a complete request head this long after connecting, or after
    /// the first byte of its next request, is disconnected.
    pub header_read_timeout: Duration,
    /// A client that does not finish its request body by then gets 408.
    pub body_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long without a
    /// new request.
    pub idle_timeout: Duration,
    /// Client connections served at once (over all workers); more get 503 and are closed.
    pub max_connections: usize,
    /// Worker threads, each with its own runtime, listener and upstream pool; 0: one worker on
    /// the caller's tokio runtime.
    pub workers: usize,
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
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: 0,
        }
    }
}

/// A running proxy.
pub struct Proxy {
    addr: SocketAddr,
    stats: Arc<ProxyStats>,
    workers: Vec<worker::Handle>,
    /// Ticks the balancer's clock when a time-driven option (slow start, outlier) is on.
    ticker: Option<JoinHandle<()>>,
}

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
        let listeners = worker::listeners(listen, cfg.workers.max(1))?;
        let addr = listeners[0].local_addr()?;
        let origin = Instant::now();
        let o = lb.options();
        let timed =
            o.slow_start_s.is_some() || o.outlier_consecutive_errors.is_some() || o.outlier_failure_rate.is_some();
        let ticker = timed.then(|| tokio::spawn(tick_loop(Arc::clone(&lb), origin)));
        let common = worker::Common::new(lb, cfg, Arc::clone(&stats), origin);
        let dedicated = common.cfg.workers > 0;
        let workers = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| worker::Handle::start(i, l, Arc::clone(&common), dedicated))
            .collect::<std::io::Result<Vec<_>>>()?;
        tracing::info!(%addr, workers = workers.len(), "proxy listening");
        Ok(Proxy { addr, stats, workers, ticker })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &Arc<ProxyStats> {
        &self.stats
    }

    /// Stops accepting, then waits up to `grace` for in-flight requests to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        for w in &mut self.workers {
            w.stop(grace);
        }
        for w in std::mem::take(&mut self.workers) {
            w.join().await;
        }
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.stop(Duration::ZERO);
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
