//! Open-loop load generator (architecture.md §9): the scenario's traffic on real sockets.
//!
//! Requests start at the scenario's arrival times (`Traffic::next_gap`, seeded as the simulator
//! seeds it) whether or not earlier ones have completed, each in its own task. Paths follow the
//! scenario's URI popularity; with `client_ip_header` set, each request names its simulated
//! client's address (the simulator's, see [`crate::sim::traffic::client_addr`]) in that header.
//! Beyond `concurrency_limit` requests in flight a new one is not queued: it fails at once with
//! reason `client_overload`, so that an overloaded generator shows in the figures.

use crate::sim::keys::Seen;
use crate::sim::traffic::{client_addr, mix_seed, Popularity, Traffic};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::backends::MEMBER_HEADER;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Arrivals, popularity, `request_timeout_ms`.
    pub traffic: Traffic,
    /// No request starts after this long.
    pub duration: Duration,
    /// No more than this many requests start (0: no limit).
    pub max_requests: u64,
    /// The scenario's seed: arrival, client and URI streams are seeded as the simulator seeds them.
    pub seed: u64,
    /// Header that carries the simulated client's address (e.g. `x-forwarded-for`); none: not sent.
    pub client_ip_header: Option<String>,
    /// Requests in flight at most; an arrival beyond it fails with `client_overload` (0: 1024).
    pub concurrency_limit: usize,
}

impl LoadPlan {
    /// The scenario's traffic for `duration`, without a client header, at most 1024 in flight.
    pub fn new(traffic: Traffic, duration: Duration, seed: u64) -> LoadPlan {
        LoadPlan { traffic, duration, max_requests: 0, seed, client_ip_header: None, concurrency_limit: 1024 }
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Requests started (or refused with `client_overload`); `sent == ok + failed`.
    pub sent: u64,
    /// Answered with a status below 400.
    pub ok: u64,
    pub failed: u64,
    /// `status_503`, `status_5xx` (other 5xx), `status_4xx`, `timeout`, `connect` (refused or
    /// unreachable), `reset` (connection closed or broken mid-request), `client_overload`.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Latency of the ok requests in microseconds, from the request's start to its body's end.
    pub latency: Histogram<u64>,
    /// Ok requests by the `x-lbsim-member` header of their answer (`unknown` without one).
    pub per_member: BTreeMap<String, u64>,
    /// Distinct clients and distinct paths among the requests sent (the simulator's `hash.keys`
    /// for the source-IP and URI hashes).
    pub distinct_clients: u64,
    pub distinct_uris: u64,
    pub started_at: Instant,
    pub finished_at: Instant,
}

impl LoadResult {
    fn new(started_at: Instant) -> LoadResult {
        LoadResult {
            sent: 0,
            ok: 0,
            failed: 0,
            failed_by_reason: BTreeMap::new(),
            latency: new_histogram(),
            per_member: BTreeMap::new(),
            distinct_clients: 0,
            distinct_uris: 0,
            started_at,
            finished_at: started_at,
        }
    }

    fn fail(&mut self, reason: &str) {
        self.failed += 1;
        *self.failed_by_reason.entry(reason.to_string()).or_default() += 1;
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok { micros, member } => {
                self.ok += 1;
                self.latency.saturating_record(micros.max(1));
                *self.per_member.entry(member.unwrap_or_else(|| "unknown".into())).or_default() += 1;
            }
            Outcome::Failed(reason) => self.fail(reason),
        }
    }

    /// Latency percentile `q` (0-100) of the ok requests in milliseconds; `None` without any.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_percentile(q) as f64 / 1000.0)
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to an hour at 3 significant figures (longer values saturate): constant, valid bounds.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

enum Outcome {
    Ok { micros: u64, member: Option<String> },
    Failed(&'static str),
}

/// The reason a failed request is counted under.
fn classify(e: &hyper_util::client::legacy::Error) -> &'static str {
    if e.is_connect() || super::caused_by(e, std::io::ErrorKind::ConnectionRefused) {
        "connect"
    } else {
        "reset"
    }
}

async fn one(client: Client<HttpConnector, Empty<Bytes>>, req: Request<Empty<Bytes>>, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| classify(&e))?;
        let status = resp.status();
        let member = resp.headers().get(MEMBER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        resp.into_body().collect().await.map_err(|_| "reset")?;
        Ok::<_, &'static str>((status, member))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Outcome::Failed("timeout"),
        Ok(Err(reason)) => Outcome::Failed(reason),
        Ok(Ok((status, _))) if status == StatusCode::SERVICE_UNAVAILABLE => Outcome::Failed("status_503"),
        Ok(Ok((status, _))) if status.is_server_error() => Outcome::Failed("status_5xx"),
        Ok(Ok((status, _))) if status.is_client_error() => Outcome::Failed("status_4xx"),
        Ok(Ok((_, member))) => Outcome::Ok { micros: start.elapsed().as_micros() as u64, member },
    }
}

/// Drives `plan`'s traffic at `target` (a loopback address: anything else gets no request and
/// an empty result) and returns when every started request has completed or timed out.
pub async fn run(target: SocketAddr, plan: LoadPlan) -> LoadResult {
    let started_at = Instant::now();
    let mut result = LoadResult::new(started_at);
    if !target.ip().is_loopback() {
        tracing::error!(%target, "the load generator only sends to loopback addresses");
        return result;
    }
    let tr = &plan.traffic;
    let timeout = Duration::from_secs_f64((tr.request_timeout_ms / 1000.0).clamp(0.001, 86_400.0));
    let limit = if plan.concurrency_limit == 0 { 1024 } else { plan.concurrency_limit };
    let slots = Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS)));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(timeout));
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(limit)
        .build(connector);

    let header =
        plan.client_ip_header.as_deref().and_then(|h| match hyper::header::HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                tracing::warn!(header = h, "not a valid header name; client addresses are not sent");
                None
            }
        });
    let stream = |k: u64| ChaCha8Rng::seed_from_u64(mix_seed(plan.seed, k));
    let (mut arrivals, mut client_rng, mut uri_rng) = (stream(1), stream(2), stream(3));
    let clients = Popularity::zipf(tr.clients, tr.client_zipf);
    let uris = Popularity::zipf(tr.uris, tr.uri_zipf);
    let (mut seen_clients, mut seen_uris) = (Seen::new(tr.clients), Seen::new(tr.uris));

    let end_us = plan.duration.as_micros().min(u128::from(u64::MAX)) as u64;
    let max = if plan.max_requests == 0 { u64::MAX } else { plan.max_requests };
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    // Arrival times in whole microseconds, as the simulator keeps them.
    let mut t_us: u64 = 0;
    while t_us < end_us && result.sent < max {
        tokio::time::sleep_until(tokio::time::Instant::from_std(started_at + Duration::from_micros(t_us))).await;
        while let Some(done) = tasks.try_join_next() {
            result.record(done.unwrap_or(Outcome::Failed("reset")));
        }
        let client_idx = clients.sample(&mut client_rng);
        let uri = uris.sample(&mut uri_rng);
        seen_clients.insert(client_idx);
        seen_uris.insert(uri);
        result.sent += 1;
        match slots.clone().try_acquire_owned() {
            Err(_) => result.fail("client_overload"),
            Ok(permit) => {
                let mut req = Request::new(Empty::<Bytes>::new());
                // Always a valid URI: an address and a number.
                if let Ok(u) = format!("http://{target}/api/v1/items/{uri}").parse() {
                    *req.uri_mut() = u;
                }
                if let Some(name) = &header {
                    let ip = client_addr(plan.seed, client_idx, tr.ipv6_fraction);
                    if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
                        req.headers_mut().insert(name.clone(), v);
                    }
                }
                let client = client.clone();
                tasks.spawn(async move {
                    let out = one(client, req, timeout).await;
                    drop(permit);
                    out
                });
            }
        }
        let gap = tr.next_gap(t_us as f64 / 1e6, &mut arrivals);
        let gap_us = if gap.is_finite() { (gap * 1e6).round().clamp(1.0, 1e15) as u64 } else { u64::MAX };
        t_us = t_us.saturating_add(gap_us);
    }
    while let Some(done) = tasks.join_next().await {
        result.record(done.unwrap_or(Outcome::Failed("reset")));
    }
    result.distinct_clients = seen_clients.count();
    result.distinct_uris = seen_uris.count();
    result.finished_at = Instant::now();
    result
}
