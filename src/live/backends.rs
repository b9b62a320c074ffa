//! Loopback HTTP backends that play the scenario's members (architecture.md §9).
//!
//! One hyper HTTP/1.1 server per member on `127.0.0.1:0`. Every request is answered after the
//! member's modelled service time (`service.sample * speed * slow factor`, one seeded random
//! stream per member) with a small body and `x-lbsim-member: <member id>`: 200, or 500 at the
//! `errors` fault's rate. At most `max_in_flight` requests are served at once and at most
//! `max_queue` wait for a slot; beyond that the answer is 503 at once.
//!
//! Down windows (`down`, the down phases of `flap`, `az_down`) close the listener and every open
//! connection at the window's start; the same port is bound again at its end, so that clients
//! see refused connections during the window and a working member after it. Fault times are
//! seconds since the [`LiveClock`]'s start (time 0 of the scenario).

use crate::balancer::MemberId;
use crate::sim::faults::{Condition, MemberFaults};
use crate::sim::scenario::{BackendSpec, FaultKind, FaultSpec, Scenario};
use crate::sim::traffic::{mix_seed, ServiceTime};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// The header that names the member that answered.
pub const MEMBER_HEADER: &str = "x-lbsim-member";

/// The live run's clock: its start is time 0 of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct LiveClock {
    pub start: Instant,
}

impl LiveClock {
    /// A clock whose time 0 is now.
    pub fn now() -> LiveClock {
        LiveClock { start: Instant::now() }
    }

    pub fn new(start: Instant) -> LiveClock {
        LiveClock { start }
    }

    /// Seconds since the start.
    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The instant `t` seconds after the start (`t` clamped to 0 - 10 years).
    pub fn at(&self, t: f64) -> Instant {
        let t = if t.is_finite() { t.clamp(0.0, 3.15e8) } else { 3.15e8 };
        self.start + Duration::from_secs_f64(t)
    }
}

/// How one member's loopback backend behaves.
#[derive(Debug, Clone)]
pub struct BackendPlan {
    pub member: MemberId,
    pub spec: BackendSpec,
    /// The fault windows that touch the member (for the service time, errors and down state).
    pub faults: MemberFaults,
    /// The same faults as written, for the times at which the down state changes.
    pub fault_specs: Vec<FaultSpec>,
    pub service: ServiceTime,
    /// Seed of the member's random stream (service times, errors).
    pub seed: u64,
}

impl BackendPlan {
    /// A plan with the scenario's defaults and no faults.
    pub fn new(member: MemberId, service: ServiceTime, seed: u64) -> BackendPlan {
        BackendPlan {
            member,
            spec: BackendSpec::default_for(member),
            faults: MemberFaults::default(),
            fault_specs: Vec::new(),
            service,
            seed,
        }
    }

    /// Adds a fault window (open windows last as long as the backend runs).
    pub fn add_fault(&mut self, index: usize, f: &FaultSpec) {
        self.faults.add(index, f, f64::INFINITY);
        self.fault_specs.push(f.clone());
    }

    /// The first time after `t` at which the member goes down or comes back up, if any.
    fn next_down_edge(&self, t: f64) -> Option<f64> {
        let mut best: Option<f64> = None;
        let mut offer = |x: f64| {
            if x > t && x.is_finite() && best.is_none_or(|b| x < b) {
                best = Some(x);
            }
        };
        for f in &self.fault_specs {
            let end = f.until_s.unwrap_or(f64::INFINITY);
            match f.kind {
                FaultKind::Down | FaultKind::AzDown => {
                    offer(f.at_s);
                    offer(end);
                }
                FaultKind::Flap => {
                    offer(f.at_s);
                    offer(end);
                    let period = f.period_s.unwrap_or(1.0);
                    if period > 0.0 && t >= f.at_s && t < end {
                        let k = ((t - f.at_s) / period).floor() + 1.0;
                        offer(f.at_s + k * period);
                    }
                }
                FaultKind::Slow | FaultKind::Errors => {}
            }
        }
        best
    }
}

/// One plan per member of the scenario's plan ([`Scenario::plan`]), with its backend and the
/// faults that hit it, in the plan's order. Each member's random stream is derived from `seed`
/// and its position.
pub fn plans(sc: &Scenario, seed: u64) -> Vec<BackendPlan> {
    let plan = sc.plan();
    plan.members()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut p =
                BackendPlan::new(m.id, sc.traffic.service_time_ms.clone(), mix_seed(seed ^ 0xBAC4_E2D5, i as u64));
            p.spec = m.spec.clone();
            for &f in &m.faults {
                p.add_fault(f, &plan.faults()[f]);
            }
            p
        })
        .collect()
}

/// Counters of one backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Requests received (answered or not).
    pub requests: u64,
    /// Requests answered after their service time (200 or 500).
    pub served: u64,
    /// 500s sent (the `errors` fault).
    pub status_5xx: u64,
    /// 503s sent (every slot busy and the queue full).
    pub status_503: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    served: AtomicU64,
    status_5xx: AtomicU64,
    status_503: AtomicU64,
}

/// What a backend's connections share.
struct Shared {
    plan: BackendPlan,
    clock: LiveClock,
    rng: parking_lot::Mutex<ChaCha8Rng>,
    slots: Arc<Semaphore>,
    waiting: AtomicU32,
    counters: Counters,
    member_header: HeaderValue,
    /// Faults injected while running ([`Backends::inject`]), on top of the plan's.
    injected: ArcSwap<MemberFaults>,
    /// Wakes the driver when the injected faults change.
    changed: Notify,
}

/// Holds a place in a backend's wait queue; leaving (or the client going away) frees it.
struct QueuePlace<'a>(&'a AtomicU32);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// The plan's faults and the injected ones at `t`.
    fn condition(&self, t: f64) -> Condition {
        let (a, b) = (self.plan.faults.at(t), self.injected.load().at(t));
        Condition { down: a.down || b.down, slow: a.slow * b.slow, error_rate: a.error_rate.max(b.error_rate) }
    }

    fn enter_queue(&self) -> Option<QueuePlace<'_>> {
        let max = self.plan.spec.max_queue;
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| (w < max).then_some(w + 1))
            .ok()
            .map(|_| QueuePlace(&self.waiting))
    }

    fn respond(&self, status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *resp.status_mut() = status;
        resp.headers_mut().insert(MEMBER_HEADER, self.member_header.clone());
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        resp
    }

    async fn handle(self: Arc<Self>, _req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let _permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let Some(place) = self.enter_queue() else {
                    self.counters.status_503.fetch_add(1, Ordering::Relaxed);
                    return Ok(self.respond(StatusCode::SERVICE_UNAVAILABLE, "busy\n"));
                };
                let permit = self.slots.clone().acquire_owned().await;
                drop(place);
                match permit {
                    Ok(p) => p,
                    Err(_) => {
                        self.counters.status_503.fetch_add(1, Ordering::Relaxed);
                        return Ok(self.respond(StatusCode::SERVICE_UNAVAILABLE, "busy\n"));
                    }
                }
            }
        };
        let cond = self.condition(self.clock.elapsed_s());
        let (ms, fail) = {
            let mut rng = self.rng.lock();
            let ms = self.plan.service.sample(&mut *rng) * self.plan.spec.speed * cond.slow;
            let fail = cond.error_rate > 0.0 && rng.gen::<f64>() < cond.error_rate;
            (ms, fail)
        };
        if ms.is_finite() && ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64((ms / 1000.0).min(3.15e8))).await;
        }
        self.counters.served.fetch_add(1, Ordering::Relaxed);
        if fail {
            self.counters.status_5xx.fetch_add(1, Ordering::Relaxed);
            Ok(self.respond(StatusCode::INTERNAL_SERVER_ERROR, "error\n"))
        } else {
            Ok(self.respond(StatusCode::OK, "ok\n"))
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it is gone (its resources dropped).
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts connections until aborted; aborting drops the listener and every connection.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let svc = service_fn(move |req| shared.clone().handle(req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Binds `addr` again, retrying for about a second (the port was ours until a moment ago).
async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

/// Runs one backend: serves while up, closes everything while down, until told to stop.
async fn drive(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr, mut stop: watch::Receiver<bool>) {
    let mut listener = Some(listener);
    let mut serving: Option<AbortOnDrop> = None;
    let mut t = shared.clock.elapsed_s();
    loop {
        let down = shared.condition(t).down;
        if down {
            listener = None;
            if let Some(task) = serving.take() {
                task.stop().await;
            }
        } else if serving.is_none() {
            let l = match listener.take() {
                Some(l) => Ok(l),
                None => rebind(addr).await,
            };
            match l {
                Ok(l) => {
                    serving = Some(AbortOnDrop(tokio::spawn(accept_loop(l, shared.clone()))));
                }
                Err(e) => tracing::warn!(member = %shared.plan.member, %addr, error = %e, "cannot bind the port again"),
            }
        }
        let next = shared.plan.next_down_edge(t);
        let wake = async {
            match next {
                Some(x) => tokio::time::sleep_until(tokio::time::Instant::from_std(shared.clock.at(x))).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wake => {}
            _ = shared.changed.notified() => {}
            _ = stop.changed() => break,
        }
        // Evaluate just past the edge, whatever the timer's rounding.
        t = shared.clock.elapsed_s().max(next.unwrap_or(0.0) + 1e-9);
    }
    if let Some(task) = serving.take() {
        task.stop().await;
    }
}

struct Running {
    member: MemberId,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The running backends. Dropping it stops them all (without waiting); [`Backends::shutdown`]
/// stops them and waits until every listener and connection is closed.
pub struct Backends {
    running: Vec<Running>,
    drivers: Vec<AbortOnDrop>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.running.iter().map(|r| (r.member, r.addr))).finish()
    }
}

/// Starts one loopback backend per plan (a member planned twice gets one). Fault windows are
/// timed from `clock`'s start. Must be called within a tokio runtime.
pub async fn start(plans: Vec<BackendPlan>, clock: LiveClock) -> std::io::Result<Backends> {
    let (stop, stop_rx) = watch::channel(false);
    let mut backends = Backends { running: Vec::new(), drivers: Vec::new(), stop };
    for plan in plans {
        if backends.running.iter().any(|r| r.member == plan.member) {
            continue;
        }
        let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await?;
        let addr = listener.local_addr()?;
        let member_header = HeaderValue::from_str(&plan.member.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid-member-id"));
        let shared = Arc::new(Shared {
            clock,
            rng: parking_lot::Mutex::new(ChaCha8Rng::seed_from_u64(plan.seed)),
            slots: Arc::new(Semaphore::new((plan.spec.max_in_flight.max(1) as usize).min(Semaphore::MAX_PERMITS))),
            waiting: AtomicU32::new(0),
            counters: Counters::default(),
            member_header,
            injected: ArcSwap::from_pointee(MemberFaults::default()),
            changed: Notify::new(),
            plan,
        });
        let driver = tokio::spawn(drive(shared.clone(), listener, addr, stop_rx.clone()));
        backends.drivers.push(AbortOnDrop(driver));
        backends.running.push(Running { member: shared.plan.member, addr, shared });
    }
    Ok(backends)
}

impl Backends {
    /// The loopback address serving `member`.
    pub fn addr(&self, member: MemberId) -> Option<SocketAddr> {
        self.running.iter().find(|r| r.member == member).map(|r| r.addr)
    }

    /// Every member and its loopback address, in plan order.
    pub fn addrs(&self) -> Vec<(MemberId, SocketAddr)> {
        self.running.iter().map(|r| (r.member, r.addr)).collect()
    }

    /// The counters of `member`'s backend.
    pub fn stats(&self, member: MemberId) -> Option<BackendStats> {
        self.running.iter().find(|r| r.member == member).map(|r| stats_of(&r.shared))
    }

    /// The counters of every backend, in plan order.
    pub fn all_stats(&self) -> Vec<(MemberId, BackendStats)> {
        self.running.iter().map(|r| (r.member, stats_of(&r.shared))).collect()
    }

    /// Injects a `down`, `slow` or `errors` fault into `member`'s backend, from now until
    /// [`Backends::clear_injected`] (the fault's own times are not used); `down` closes the
    /// listener and every connection at once. False when no backend plays `member`.
    pub fn inject(&self, member: MemberId, fault: &FaultSpec) -> bool {
        let Some(r) = self.running.iter().find(|r| r.member == member) else { return false };
        let f = FaultSpec { at_s: r.shared.clock.elapsed_s(), until_s: None, ..fault.clone() };
        let mut faults = MemberFaults::clone(&r.shared.injected.load());
        faults.add(usize::MAX, &f, f64::INFINITY);
        r.shared.injected.store(Arc::new(faults));
        r.shared.changed.notify_one();
        true
    }

    /// Removes every injected fault of `member`'s backend (the plan's faults stay). False when no
    /// backend plays `member`.
    pub fn clear_injected(&self, member: MemberId) -> bool {
        let Some(r) = self.running.iter().find(|r| r.member == member) else { return false };
        r.shared.injected.store(Arc::new(MemberFaults::default()));
        r.shared.changed.notify_one();
        true
    }

    /// Stops every backend and waits until their listeners and connections are closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for mut d in std::mem::take(&mut self.drivers) {
            let _ = (&mut d.0).await;
        }
    }
}

fn stats_of(s: &Shared) -> BackendStats {
    let c = &s.counters;
    BackendStats {
        requests: c.requests.load(Ordering::Relaxed),
        served: c.served.load(Ordering::Relaxed),
        status_5xx: c.status_5xx.load(Ordering::Relaxed),
        status_503: c.status_503.load(Ordering::Relaxed),
    }
}

/// Parses the CLI's `--backends host:port=127.0.0.1:PORT,...`: which running loopback server
/// plays which member. Targets must be loopback addresses (127.0.0.0/8 or ::1): live mode never
/// sends a byte anywhere else.
pub fn parse_backend_map(s: &str) -> Result<Vec<(MemberId, SocketAddr)>, String> {
    let mut out: Vec<(MemberId, SocketAddr)> = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (member, target) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}`: expected MEMBER=TARGET, e.g. 192.168.0.5:8080=127.0.0.1:9001"))?;
        let id = MemberId::parse(member.trim())
            .ok_or_else(|| format!("`{entry}`: member `{}` is not host:port", member.trim()))?;
        let target = target.trim();
        let addr: SocketAddr = target
            .parse()
            .map_err(|_| format!("`{entry}`: target `{target}` is not an IP address and port (e.g. 127.0.0.1:9001)"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "`{entry}`: target `{target}` is not a loopback address; live mode only sends traffic to 127.0.0.0/8 or ::1"
            ));
        }
        if addr.port() == 0 {
            return Err(format!("`{entry}`: target `{target}` has port 0"));
        }
        if out.iter().any(|(m, _)| *m == id) {
            return Err(format!("`{entry}`: member `{id}` is mapped twice"));
        }
        out.push((id, addr));
    }
    if out.is_empty() {
        return Err("no MEMBER=TARGET pair given".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, at: f64, until: Option<f64>, period: Option<f64>) -> FaultSpec {
        FaultSpec { member: None, az: None, kind, at_s: at, until_s: until, factor: None, rate: None, period_s: period }
    }

    #[test]
    fn down_edges() {
        let mut p = BackendPlan::new(MemberId::new("10.0.0.1", 80), ServiceTime::Fixed { value: 1.0 }, 1);
        p.add_fault(0, &fault(FaultKind::Down, 10.0, Some(20.0), None));
        p.add_fault(1, &fault(FaultKind::Flap, 30.0, Some(40.0), Some(3.0)));
        p.add_fault(2, &fault(FaultKind::Slow, 1.0, Some(2.0), None));
        let mut t = 0.0;
        let mut edges = Vec::new();
        while let Some(x) = p.next_down_edge(t) {
            edges.push(x);
            t = x;
        }
        assert_eq!(edges, [10.0, 20.0, 30.0, 33.0, 36.0, 39.0, 40.0]);
    }

    #[test]
    fn backend_map() {
        let m = parse_backend_map("192.168.0.5:8080=127.0.0.1:9001, [2001:db8::1]:80=[::1]:9002").unwrap();
        assert_eq!(m.len(), 2);
        assert!(parse_backend_map("a:1=10.0.0.1:80").unwrap_err().contains("not a loopback"));
        assert!(parse_backend_map("a:1=127.0.0.1:80,a:1=127.0.0.1:81").is_err());
        assert!(parse_backend_map("a=127.0.0.1:80").is_err());
        assert!(parse_backend_map("").is_err());
    }
}
