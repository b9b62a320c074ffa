//! The event loop: arrivals, attempts on simulated backends, retries, health probes, faults,
//! configuration changes and the other cloud systems (GA dials, SDRS failover).

use super::faults::{Condition, MemberFaults};
use super::metrics::Metrics;
use super::queue::EventQueue;
use super::scenario::{add_backend_servers, upsert_member_groups, BackendSpec, ChangeKind, FaultKind, Scenario};
use super::traffic::{client_addr, mix_seed, Popularity, ServiceSampler};
use crate::balancer::{Lease, MemberId, Pick, Strategy};
use crate::health::{CheckConfig, CheckPolicy, HealthState, Outcome, Verdict};
use crate::model::{CheckProtocol, VpcChannel};
use crate::report::Report;
use crate::{Balancer, Request};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

mod event;
mod pause;
use event::{Ev, MAX_SLOTS};
pub use pause::{run_until, Paused};

/// How to run one scenario.
pub struct RunOptions<'a> {
    pub strategy: Strategy,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Overrides the scenario's duration.
    pub duration_s: Option<f64>,
    /// Leave the wall-clock figures out of the report.
    pub deterministic: bool,
    /// JSON lines, one per attempt.
    pub trace: Option<&'a mut dyn Write>,
    /// Called now and then with the fraction of simulated time done.
    pub progress: Option<&'a mut dyn FnMut(f64)>,
}

impl RunOptions<'_> {
    pub fn new(strategy: Strategy) -> Self {
        RunOptions { strategy, seed: None, duration_s: None, deterministic: false, trace: None, progress: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the scenario's channel is invalid: {0}")]
    Channel(#[from] crate::model::ValidationErrors),
    #[error("writing the trace failed: {0}")]
    Trace(#[from] std::io::Error),
    #[error("more than {MAX_SLOTS} attempts in flight at once: lower [traffic] rate_rps or request_timeout_ms")]
    TooManyAttempts,
}

/// Simulated time in microseconds.
type Micros = u64;

/// Seconds to microseconds, rounded half away from zero; negatives and NaN give 0. The same as
/// `(s * 1e6).round().max(0.0) as u64` for every input, without a call to libm's `round` (not
/// inlined on baseline x86-64) or u64 conversions (several instructions each), on every
/// event's path.
#[inline]
fn us(s: f64) -> Micros {
    round_us(s * 1e6)
}

/// Milliseconds to microseconds, as [`us`] rounds (one multiplication: a division by 1e3 first
/// cost a `divsd` on every request's path).
#[inline]
fn us_ms(ms: f64) -> Micros {
    round_us(ms * 1e3)
}

#[inline]
fn round_us(x: f64) -> Micros {
    const EXACT: f64 = (1u64 << 52) as f64;
    if (0.0..EXACT).contains(&x) {
        // Below 2^52 the integer part fits an i64 exactly, and x - i is exact (for i >= 1, x and
        // i are within a factor 2 of each other).
        let i = x as i64;
        (if x - i as f64 >= 0.5 { i + 1 } else { i }) as Micros
    } else {
        // NaN or negative: 0; from 2^52 on every f64 is an integer (the cast saturates).
        x.max(0.0) as Micros
    }
}

/// Microseconds to seconds.
#[inline]
fn secs(t: Micros) -> f64 {
    // i64 -> f64 is one instruction, u64 -> f64 several; the same value below 2^63.
    let f = if let Ok(i) = i64::try_from(t) { i as f64 } else { t as f64 };
    f / 1e6
}

/// Request paths are this followed by the URI's index.
const URI_PREFIX: &str = "/api/v1/items/";

/// `/api/v1/items/{uri}` into `buf` (cleared first), digits written directly: the `fmt`
/// machinery cost as much as the URI hash's whole selection.
fn write_uri(buf: &mut String, uri: u32) {
    buf.clear();
    buf.push_str(URI_PREFIX);
    let mut digits = [0u8; 10];
    let mut n = uri;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        buf.push(char::from(d));
    }
}

/// Simulated time as the balancer's clock.
fn clock(t: Micros) -> Duration {
    Duration::from_micros(t)
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Refused,
    Timeout,
    QueueFull,
    Reset,
    Error5xx,
    NoMember,
}

impl Failure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout => "timeout",
            Failure::QueueFull => "queue_full",
            Failure::Reset => "reset",
            Failure::Error5xx => "error_5xx",
            Failure::NoMember => "no_member",
        }
    }

    fn retriable(self) -> bool {
        matches!(self, Failure::Refused | Failure::Timeout | Failure::QueueFull | Failure::Reset)
    }
}

struct Req {
    arrival: Micros,
    client: u32,
    uri: u32,
    channel: u16,
    attempts: u32,
    tried: Vec<MemberId>,
    last_failure: Failure,
}

struct Attempt<'a> {
    gen: u32,
    req: u32,
    member: u32,
    start: Micros,
    /// The client gave up (timeout); the backend may still be busy with it.
    abandoned: bool,
    /// Holding a backend slot (as opposed to waiting in its queue).
    serving: bool,
    /// Ends the attempt's in-flight count when dropped.
    lease: Option<Lease<'a>>,
}

/// A simulated member's backend. What every attempt reads and writes comes first and fits one
/// cache line (`repr(C)` keeps the order, the alignment keeps it in one line): spread over a
/// 152-byte struct it cost up to three misses per attempt.
#[repr(C, align(64))]
pub(crate) struct Backend {
    busy: u32,
    /// The most attempts it has held at once, serving and queued (kept here, beside what it
    /// counts, rather than in the metrics).
    peak: u32,
    /// `spec`'s `max_in_flight`, `max_queue` and `speed`, beside the counters.
    max_in_flight: u32,
    max_queue: u32,
    speed: f64,
    queue: VecDeque<(u32, u32)>,
    /// Some fault touches it.
    faulty: bool,
    pub(crate) id: MemberId,
    pub(crate) channel: usize,
    pub(crate) spec: BackendSpec,
    pub(crate) faults: MemberFaults,
}

impl Backend {
    fn new(id: MemberId, channel: usize, spec: BackendSpec, faults: MemberFaults) -> Backend {
        Backend {
            busy: 0,
            peak: 0,
            max_in_flight: spec.max_in_flight,
            max_queue: spec.max_queue,
            speed: spec.speed,
            queue: VecDeque::new(),
            faulty: !faults.is_empty(),
            id,
            channel,
            spec,
            faults,
        }
    }

    pub(crate) fn peak_in_flight(&self) -> u64 {
        u64::from(self.peak)
    }

    /// What its faults make it do at `t` (most members have none: no conversion of `t` then).
    #[inline]
    fn condition(&self, t: Micros) -> Condition {
        if !self.faulty {
            Condition::NORMAL
        } else {
            self.faults.at(secs(t))
        }
    }

    fn note_in_flight(&mut self) {
        self.peak = self.peak.max(self.busy + self.queue.len() as u32);
    }
}

/// Random streams, one per model.
struct Streams {
    arrivals: ChaCha8Rng,
    clients: ChaCha8Rng,
    uris: ChaCha8Rng,
    service: ChaCha8Rng,
    faults: ChaCha8Rng,
    probes: ChaCha8Rng,
    groups: ChaCha8Rng,
}

impl Streams {
    fn new(seed: u64) -> Streams {
        let s = |k: u64| ChaCha8Rng::seed_from_u64(mix_seed(seed, k));
        Streams { arrivals: s(1), clients: s(2), uris: s(3), service: s(4), faults: s(5), probes: s(6), groups: s(7) }
    }
}

struct Engine<'a, 'w> {
    sc: &'a Scenario,
    /// The run's seed (`--seed` or the scenario's).
    seed: u64,
    strategy: Strategy,
    end: Micros,
    /// `[traffic] request_timeout_ms`.
    timeout: Micros,
    /// `[traffic] service_time_ms`.
    service: ServiceSampler,
    lbs: &'a [Balancer],
    channels: Vec<VpcChannel>,
    checks: Vec<Option<CheckConfig>>,
    backends: Vec<Backend>,
    index: HashMap<MemberId, u32>,
    /// Per channel: the balancer's member slot -> backend index (the hot path's lookup).
    by_slot: Vec<Vec<u32>>,
    /// Pending events but arrivals, by time; simultaneous ones in the order they were scheduled.
    queue: EventQueue<u64>,
    /// The next request's arrival, if before the end (see [`Engine::peek`]).
    next_arrival: Option<Micros>,
    reqs: Vec<Req>,
    free_reqs: Vec<u32>,
    attempts: Vec<Attempt<'a>>,
    free_attempts: Vec<u32>,
    rng: Streams,
    /// Client and URI popularity, when the run draws them.
    clients: Option<Popularity>,
    uris: Option<Popularity>,
    uri_buf: String,
    m: Metrics,
    trace: Option<&'w mut dyn Write>,
    failover: Failover,
    events: u64,
    /// GA dials in force (0 for a group with nothing eligible), kept by `account`.
    dials: Vec<f64>,
    /// Per channel: the pending `Ev::Tick`, if any.
    ticks: Vec<Option<Micros>>,
    /// Outlier detection is on: attempts' outcomes go to the balancers.
    outlier: bool,
    /// `unhealthy_interval`, `interval_jitter_percent`, `retriable_codes`.
    policy: CheckPolicy,
}

#[derive(Default)]
struct Failover {
    started: Option<Micros>,
    done: Option<Micros>,
}

/// Runs a scenario under one strategy and returns its report.
pub fn run(sc: &Scenario, mut opts: RunOptions<'_>) -> Result<Report, SimError> {
    #[allow(
        clippy::disallowed_methods,
        reason = "sim.wall_ms and sim.requests_per_s measure the machine; --deterministic leaves them out"
    )]
    let wall = std::time::Instant::now();
    let seed = opts.seed.unwrap_or(sc.seed);
    let duration = opts.duration_s.unwrap_or(sc.duration_s);
    let (channels, lbs) = balancers(sc, opts.strategy)?;
    let mut e = Engine::new(sc, opts.strategy, seed, duration, &lbs, channels, opts.trace.take());
    e.start();
    let mut last_progress = 0u64;
    while let Some((t, ev)) = e.pop() {
        e.step(t, ev)?;
        if let Some(p) = opts.progress.as_mut() {
            if e.events - last_progress >= 1 << 16 {
                last_progress = e.events;
                p((secs(t) / duration).min(1.0));
            }
        }
    }
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
    let failover = (e.failover.started, e.failover.done);
    let events = e.events;
    let report = e.m.finish(super::metrics::Finish {
        scenario: sc,
        seed,
        duration_s: duration,
        backends: &e.backends,
        lbs: &lbs,
        failover: (failover.0.map(secs), failover.1.map(secs)),
        events,
        wall_ms: (!opts.deterministic).then_some(wall_ms),
    });
    Ok(report)
}

/// The scenario's channels and a balancer for each, as a run starts.
fn balancers(sc: &Scenario, strategy: Strategy) -> Result<(Vec<VpcChannel>, Vec<Balancer>), SimError> {
    let channels: Vec<VpcChannel> = sc.channels.iter().map(|c| c.channel.clone()).collect();
    let lbs = channels
        .iter()
        .map(|c| {
            let c = standby_overlay(sc, c, false, &sc.backends);
            Balancer::builder(&c).options(sc.balancer.clone()).strategy(strategy).build()
        })
        .collect::<Result<_, _>>()?;
    Ok((channels, lbs))
}

/// The channel as the balancer sees it under a protection group: target-AZ members stand by
/// (status 2) until the failover completes; after it, the source AZ's members take no traffic.
fn standby_overlay(sc: &Scenario, ch: &VpcChannel, failed_over: bool, backends: &[BackendSpec]) -> VpcChannel {
    let Some(pg) = &sc.protection_group else { return ch.clone() };
    let g = &pg.body.server_group;
    let off_az = if failed_over { &g.source_availability_zone } else { &g.target_availability_zone };
    let mut out = ch.clone();
    let ids = super::scenario::member_ids(ch);
    for (m, id) in out.members.iter_mut().zip(ids) {
        let az = backends.iter().find(|b| MemberId::parse(&b.member) == Some(id)).and_then(|b| b.az.as_deref());
        if az == Some(off_az.as_str()) {
            m.status = Some(2);
        }
    }
    out
}

impl<'a, 'w> Engine<'a, 'w> {
    fn new(
        sc: &'a Scenario,
        strategy: Strategy,
        seed: u64,
        duration: f64,
        lbs: &'a [Balancer],
        channels: Vec<VpcChannel>,
        trace: Option<&'w mut dyn Write>,
    ) -> Self {
        let checks = lbs.iter().map(|lb| lb.check()).collect();
        let mut e = Engine {
            sc,
            seed,
            strategy,
            end: us(duration),
            timeout: us_ms(sc.traffic.request_timeout_ms),
            service: sc.traffic.service_time_ms.sampler(),
            lbs,
            channels,
            checks,
            backends: Vec::new(),
            index: HashMap::new(),
            by_slot: vec![Vec::new(); lbs.len()],
            queue: EventQueue::new(),
            next_arrival: None,
            reqs: Vec::new(),
            free_reqs: Vec::new(),
            attempts: Vec::new(),
            free_attempts: Vec::new(),
            rng: Streams::new(seed),
            // Drawn only where the strategy (or the trace) uses them.
            clients: (trace.is_some() || strategy == Strategy::SourceIp)
                .then(|| Popularity::zipf(sc.traffic.clients, sc.traffic.client_zipf)),
            uris: (trace.is_some() || strategy == Strategy::UriHash)
                .then(|| Popularity::zipf(sc.traffic.uris, sc.traffic.uri_zipf)),
            uri_buf: String::with_capacity(64),
            m: Metrics::new(sc, strategy, duration),
            trace,
            failover: Failover::default(),
            events: 0,
            dials: Vec::new(),
            ticks: vec![None; lbs.len()],
            outlier: sc.balancer.outlier_consecutive_errors.is_some() || sc.balancer.outlier_failure_rate.is_some(),
            policy: sc.balancer.check_policy(),
        };
        for c in 0..e.channels.len() {
            e.register_members(c, 0);
        }
        e
    }

    /// Adds backends for members of channel `c` not seen before; schedules their probes.
    fn register_members(&mut self, c: usize, now: Micros) {
        let slots: Vec<(MemberId, usize)> =
            self.lbs[c].members().iter().map(|s| (s.member.id(), s.member.slot as usize)).collect();
        for id in super::scenario::member_ids(&self.channels[c]) {
            if self.index.contains_key(&id) {
                continue;
            }
            if let Some(&(_, slot)) = slots.iter().find(|(m, _)| *m == id) {
                let by_slot = &mut self.by_slot[c];
                if by_slot.len() <= slot {
                    by_slot.resize(slot + 1, u32::MAX);
                }
                by_slot[slot] = self.backends.len() as u32;
            }
            let spec = self
                .sc
                .backends
                .iter()
                .find(|b| MemberId::parse(&b.member) == Some(id))
                .cloned()
                .unwrap_or_else(|| BackendSpec::default_for(id));
            let mut faults = MemberFaults::default();
            for (i, f) in self.sc.faults.iter().enumerate() {
                let hit = match f.kind {
                    FaultKind::AzDown => spec.az.is_some() && f.az == spec.az,
                    _ => f.member.as_deref().and_then(MemberId::parse) == Some(id),
                };
                if hit {
                    faults.add(i, f, secs(self.end));
                }
            }
            let idx = self.backends.len() as u32;
            self.index.insert(id, idx);
            let windows: Vec<(usize, f64, f64)> = faults
                .indices()
                .map(|i| {
                    let f = &self.sc.faults[i];
                    (i, f.at_s, f.until_s.unwrap_or(f64::INFINITY))
                })
                .collect();
            let initial = self.lbs[c].health().state(id).unwrap_or(HealthState::Unknown);
            self.m.add_member(id, &spec, windows, initial, secs(now));
            self.backends.push(Backend::new(id, c, spec, faults));
            if let Some(check) = &self.checks[c] {
                let jitter = self.rng.probes.gen::<f64>() * f64::from(check.interval_s);
                self.schedule(now + us(jitter), Ev::Probe(idx));
            }
        }
    }

    #[inline]
    fn schedule(&mut self, t: Micros, ev: Ev) {
        self.queue.push(t, ev.pack());
    }

    /// The next event: the queue's earliest, or the next arrival when it comes strictly first.
    /// At one moment, queued events (ends of service, probes, changes, ...) run before the
    /// arrival. Arrivals form one stream, always one ahead, so they wait beside the queue rather
    /// than in it: a push, a pop and a move between buckets less per request.
    #[inline]
    fn peek(&mut self) -> Option<(Micros, Ev)> {
        match self.next_arrival {
            Some(ta) => Some(self.queue.peek_until(ta).map_or((ta, Ev::Arrival), |(t, x)| (t, Ev::unpack(x)))),
            None => self.queue.peek().map(|(t, x)| (t, Ev::unpack(x))),
        }
    }

    /// Takes the next event (see [`Engine::peek`]).
    #[inline]
    fn pop(&mut self) -> Option<(Micros, Ev)> {
        let next = self.peek()?;
        if matches!(next.1, Ev::Arrival) {
            self.next_arrival = None;
        } else {
            self.queue.take();
        }
        self.events += 1;
        Some(next)
    }

    fn start(&mut self) {
        self.next_arrival = (self.end > 0).then_some(0);
        for (i, ch) in self.sc.changes.iter().enumerate() {
            if us(ch.at_s) <= self.end {
                self.schedule(us(ch.at_s), Ev::Change(i as u32));
            }
        }
        if let Some(pg) = &self.sc.protection_group {
            let src = &pg.body.server_group.source_availability_zone;
            let start = self
                .sc
                .faults
                .iter()
                .filter(|f| f.kind == FaultKind::AzDown && f.az.as_ref() == Some(src))
                .map(|f| f.at_s)
                .reduce(f64::min);
            if let Some(at) = start {
                self.schedule(us(at), Ev::FailoverStart);
            }
        }
        for (c, lb) in self.lbs.iter().enumerate() {
            self.m.key_space_base(c, lb.key_space());
        }
        self.account(0);
    }

    fn step(&mut self, t: Micros, ev: Ev) -> Result<(), SimError> {
        match ev {
            Ev::Arrival => self.arrival(t)?,
            Ev::ServiceEnd(slot, gen) => self.service_end(t, slot, gen)?,
            Ev::Timeout(slot, gen) => self.timeout(t, slot, gen)?,
            Ev::Probe(m) => self.probe(t, m),
            Ev::ProbeResult(m, outcome) => self.probe_result(t, m, Some(outcome)),
            Ev::ProbeFatal(m) => self.probe_result(t, m, None),
            Ev::Change(i) => self.change(t, i as usize)?,
            Ev::FailoverStart => {
                let fs = self.sc.protection_group.as_ref().map_or(0.0, |p| p.failover_s);
                self.failover.started = Some(t);
                self.m.failover_started(secs(t));
                self.schedule(t + us(fs), Ev::FailoverDone);
            }
            Ev::FailoverDone => {
                self.failover.done = Some(t);
                self.m.failover_done(secs(t));
                for c in 0..self.channels.len() {
                    let ch = standby_overlay(self.sc, &self.channels[c], true, &self.sc.backends);
                    self.lbs[c].tick(clock(t));
                    self.lbs[c].update(&ch)?;
                    self.arm_tick(c);
                }
                self.account(t);
            }
            Ev::Tick(c) => self.tick(t, c as usize),
        }
        Ok(())
    }

    fn arrival(&mut self, t: Micros) -> Result<(), SimError> {
        let gap = self.sc.traffic.next_gap(secs(t), &mut self.rng.arrivals);
        let next = t + us(gap).max(1);
        self.next_arrival = (next < self.end).then_some(next);
        // Each draw has its own stream, so leaving out what the strategy (and the trace) does
        // not use changes nothing else in the run.
        let client = self.clients.as_ref().map_or(0, |p| p.sample(&mut self.rng.clients));
        let uri = self.uris.as_ref().map_or(0, |p| p.sample(&mut self.rng.uris));
        let channel = self.choose_channel();
        let r = Req {
            arrival: t,
            client,
            uri,
            channel: channel as u16,
            attempts: 0,
            tried: Vec::new(),
            last_failure: Failure::NoMember,
        };
        let slot = match self.free_reqs.pop() {
            Some(s) => {
                let tried = std::mem::take(&mut self.reqs[s as usize].tried);
                self.reqs[s as usize] = Req { tried, ..r };
                self.reqs[s as usize].tried.clear();
                s
            }
            None => {
                self.reqs.push(r);
                (self.reqs.len() - 1) as u32
            }
        };
        self.m.arrived(client, uri, channel);
        self.attempt(t, slot)
    }

    /// GA: a listener's traffic split by the groups' dials among groups with an eligible member.
    fn choose_channel(&mut self) -> usize {
        if self.lbs.len() == 1 {
            return 0;
        }
        let dials = &self.dials;
        let total: f64 = dials.iter().sum();
        let x = self.rng.groups.gen::<f64>() * total;
        let mut acc = 0.0;
        for (i, d) in dials.iter().enumerate() {
            acc += d;
            if x < acc {
                return i;
            }
        }
        // Nothing eligible anywhere (or every dial 0): the first group, which will fail the request.
        dials.iter().position(|&d| d > 0.0).unwrap_or(0)
    }

    fn client_ip(&self, client: u32) -> IpAddr {
        client_addr(self.seed, client, self.sc.traffic.ipv6_fraction)
    }

    fn write_uri(&mut self, uri: u32) {
        write_uri(&mut self.uri_buf, uri);
    }

    fn attempt(&mut self, t: Micros, req: u32) -> Result<(), SimError> {
        let (client, uri, channel) = {
            let r = &self.reqs[req as usize];
            (r.client, r.uri, r.channel as usize)
        };
        let ip = self.client_ip(client);
        if self.strategy == Strategy::UriHash || self.trace.is_some() {
            self.write_uri(uri);
        } else {
            self.uri_buf.clear();
            self.uri_buf.push('/');
        }
        let lbs: &'a [Balancer] = self.lbs;
        let request = Request::new(ip, &self.uri_buf);
        let r = &mut self.reqs[req as usize];
        let picked = if r.tried.is_empty() {
            lbs[channel].select(&request)
        } else {
            lbs[channel].select_excluding(&request, &r.tried)
        };
        let pick = match picked {
            Ok(p) => p,
            Err(_) => {
                // Nothing left to try: the request fails with its last attempt's reason.
                let reason = if r.tried.is_empty() { Failure::NoMember } else { r.last_failure };
                if r.tried.is_empty() {
                    // A first attempt that finds no member is still the request's attempt 1.
                    r.attempts += 1;
                    self.trace_attempt(t, req, None, reason.as_str(), None)?;
                }
                return self.finish(t, req, Err(reason));
            }
        };
        // An attempt counts once a member is picked: a retry that finds none left is no attempt.
        r.attempts += 1;
        let m = match self.by_slot[channel].get(pick.member().slot as usize) {
            Some(&m) if m != u32::MAX => m,
            // Cannot happen: every member is registered when its channel is built or changed.
            _ => return self.finish(t, req, Err(Failure::NoMember)),
        };
        self.m.attempt_started(m, secs(t));
        let slot = self.new_attempt(req, m, t, pick)?;
        let cond = self.backends[m as usize].condition(t);
        if cond.down {
            return self.attempt_failed(t, slot, Failure::Refused);
        }
        let b = &mut self.backends[m as usize];
        if b.busy < b.max_in_flight {
            b.busy += 1;
            b.note_in_flight();
            self.begin_service(t, slot);
        } else if (b.queue.len() as u32) < b.max_queue {
            let gen = self.attempts[slot as usize].gen;
            b.queue.push_back((slot, gen));
            b.note_in_flight();
            self.schedule(t + self.timeout, Ev::Timeout(slot, gen));
        } else {
            return self.attempt_failed(t, slot, Failure::QueueFull);
        }
        Ok(())
    }

    fn new_attempt(&mut self, req: u32, member: u32, t: Micros, pick: Pick<'a>) -> Result<u32, SimError> {
        let a =
            Attempt { gen: 0, req, member, start: t, abandoned: false, serving: false, lease: Some(pick.into_lease()) };
        match self.free_attempts.pop() {
            Some(s) => {
                let gen = self.attempts[s as usize].gen.wrapping_add(1);
                self.attempts[s as usize] = Attempt { gen, ..a };
                Ok(s)
            }
            // Events name a slot in 24 bits.
            None if self.attempts.len() >= MAX_SLOTS as usize => Err(SimError::TooManyAttempts),
            None => {
                self.attempts.push(a);
                Ok((self.attempts.len() - 1) as u32)
            }
        }
    }

    fn begin_service(&mut self, t: Micros, slot: u32) {
        let a = &mut self.attempts[slot as usize];
        a.serving = true;
        let (gen, m, start) = (a.gen, a.member as usize, a.start);
        let b = &self.backends[m];
        let slow = b.condition(t).slow;
        let st_ms = self.service.sample(&mut self.rng.service) * b.speed * slow;
        let done = t + us_ms(st_ms).max(1);
        self.schedule(done, Ev::ServiceEnd(slot, gen));
        let deadline = start + self.timeout;
        // A queued attempt already has its timeout scheduled from when it arrived.
        if done > deadline && start == t {
            self.schedule(deadline, Ev::Timeout(slot, gen));
        }
    }

    fn service_end(&mut self, t: Micros, slot: u32, gen: u32) -> Result<(), SimError> {
        let a = &self.attempts[slot as usize];
        if a.gen != gen {
            return Ok(());
        }
        let (m, abandoned) = (a.member, a.abandoned);
        // Free the backend slot and start the next queued attempt that is still wanted.
        let b = &mut self.backends[m as usize];
        b.busy -= 1;
        while let Some((q, qgen)) = b.queue.pop_front() {
            let qa = &self.attempts[q as usize];
            if qa.gen != qgen {
                continue;
            }
            if qa.abandoned {
                self.free_attempts.push(q);
                continue;
            }
            b.busy += 1;
            self.begin_service(t, q);
            break;
        }
        self.attempts[slot as usize].serving = false;
        if abandoned {
            self.free_attempts.push(slot);
            return Ok(());
        }
        let cond = self.backends[m as usize].condition(t);
        if cond.down {
            return self.attempt_failed(t, slot, Failure::Reset);
        }
        if cond.error_rate > 0.0 && self.rng.faults.gen::<f64>() < cond.error_rate {
            return self.attempt_failed(t, slot, Failure::Error5xx);
        }
        let a = &mut self.attempts[slot as usize];
        a.lease = None;
        let (req, start) = (a.req, a.start);
        self.m.attempt_done(m, t - start);
        self.passive(t, m, Outcome::Success);
        self.trace_attempt(t, req, Some(m), "ok", Some(t - start))?;
        self.free_attempts.push(slot);
        self.finish(t, req, Ok(()))
    }

    fn timeout(&mut self, t: Micros, slot: u32, gen: u32) -> Result<(), SimError> {
        let a = &self.attempts[slot as usize];
        if a.gen != gen || a.abandoned || a.lease.is_none() {
            return Ok(());
        }
        self.attempt_failed(t, slot, Failure::Timeout)
    }

    /// Ends a failed attempt, then retries the request or fails it.
    fn attempt_failed(&mut self, t: Micros, slot: u32, why: Failure) -> Result<(), SimError> {
        let a = &mut self.attempts[slot as usize];
        a.lease = None;
        let (req, m, start) = (a.req, a.member, a.start);
        // A timed-out attempt may still hold a backend slot or sit in a queue: the slot is
        // released when the backend is done with it.
        let keep = why == Failure::Timeout;
        if keep {
            a.abandoned = true;
        } else {
            if a.serving {
                self.backends[m as usize].busy -= 1;
            }
            self.free_attempts.push(slot);
        }
        self.m.attempt_failed(m, secs(t));
        self.passive(t, m, Outcome::Failure);
        self.trace_attempt(t, req, Some(m), why.as_str(), Some(t - start))?;
        let id = self.backends[m as usize].id;
        let r = &mut self.reqs[req as usize];
        r.last_failure = why;
        if why.retriable() && r.attempts <= self.sc.traffic.retries {
            r.tried.push(id);
            return self.attempt(t, req);
        }
        self.finish(t, req, Err(why))
    }

    fn finish(&mut self, t: Micros, req: u32, result: Result<(), Failure>) -> Result<(), SimError> {
        let r = &self.reqs[req as usize];
        self.m.request_done(t - r.arrival, r.attempts, result);
        self.free_reqs.push(req);
        Ok(())
    }

    fn trace_attempt(
        &mut self,
        t: Micros,
        req: u32,
        m: Option<u32>,
        outcome: &str,
        lat: Option<Micros>,
    ) -> Result<(), SimError> {
        if self.trace.is_none() {
            return Ok(());
        }
        let r = &self.reqs[req as usize];
        let line = serde_json::json!({
            "t_s": secs(t),
            "client": self.client_ip(r.client).to_string(),
            "uri": format!("{URI_PREFIX}{}", r.uri),
            "member": m.map(|m| self.backends[m as usize].id.to_string()),
            "outcome": outcome,
            "latency_ms": lat.map(|l| l as f64 / 1e3),
            "attempt": r.attempts,
        });
        if let Some(w) = self.trace.as_mut() {
            writeln!(w, "{line}")?;
        }
        Ok(())
    }

    fn probe(&mut self, t: Micros, m: u32) {
        if t >= self.end {
            return;
        }
        let b = &self.backends[m as usize];
        let (bc, bid) = (b.channel, b.id);
        let Some(check) = self.checks[b.channel].clone() else { return };
        let cond = b.condition(t);
        let saturated = b.busy >= b.max_in_flight && b.queue.len() as u32 >= b.max_queue;
        let (verdict, after) = if cond.down {
            (Verdict::Failure, 0) // refused at once
        } else if check.protocol == CheckProtocol::Tcp {
            (Verdict::Success, 0)
        } else if saturated {
            (self.policy.verdict(&check, 503), 0)
        } else {
            let lat_ms = self.sc.traffic.service_time_ms.median() * b.speed * cond.slow;
            let timeout_ms = f64::from(check.timeout_s) * 1e3;
            if lat_ms >= timeout_ms {
                (Verdict::Failure, us_ms(timeout_ms))
            } else {
                let status =
                    if cond.error_rate > 0.0 && self.rng.probes.gen::<f64>() < cond.error_rate { 500 } else { 200 };
                (self.policy.verdict(&check, status), us_ms(lat_ms))
            }
        };
        let ev = match verdict {
            Verdict::Success => Ev::ProbeResult(m, Outcome::Success),
            Verdict::Failure => Ev::ProbeResult(m, Outcome::Failure),
            Verdict::Fatal => Ev::ProbeFatal(m),
        };
        self.schedule(t + after, ev);
        // `unhealthy_interval` and `interval_jitter_percent`: the next check's interval follows
        // the member's health as this one starts; a jitter draw only when jitter is on.
        let unhealthy = self.lbs[bc].health().state(bid) == Some(HealthState::Unhealthy);
        let u = if self.policy.jitters() { self.rng.probes.gen::<f64>() } else { 0.5 };
        self.schedule(t + us(self.policy.interval_s(&check, unhealthy, u)).max(1), Ev::Probe(m));
    }

    /// A check's result; `None`: a status that marks the member unhealthy at once.
    fn probe_result(&mut self, t: Micros, m: u32, outcome: Option<Outcome>) {
        let b = &self.backends[m as usize];
        let lb = &self.lbs[b.channel];
        let c = b.channel;
        let changed = match outcome {
            Some(o) => lb.health().record_at(b.id, o, clock(t)),
            None => lb.health().force_unhealthy(b.id),
        };
        if let Some(state) = changed {
            self.m.health_changed(m, secs(t), state);
            if let Some(ks) = lb.key_space() {
                self.m.key_space_changed(c, &ks);
            }
            self.account(t);
            self.arm_tick(c);
        }
    }

    fn change(&mut self, t: Micros, i: usize) -> Result<(), SimError> {
        let c = 0;
        match &self.sc.changes[i].what {
            ChangeKind::MemberGroups(body) => upsert_member_groups(&mut self.channels[c], body),
            ChangeKind::BackendServers(body) => add_backend_servers(&mut self.channels[c], body),
            ChangeKind::Channel(ch) => self.channels[c] = (**ch).clone(),
        }
        let failed_over = self.failover.done.is_some();
        let ch = standby_overlay(self.sc, &self.channels[c], failed_over, &self.sc.backends);
        self.lbs[c].tick(clock(t));
        self.lbs[c].update(&ch)?;
        self.arm_tick(c);
        self.checks[c] = self.lbs[c].check();
        self.register_members(c, t);
        self.account(t);
        Ok(())
    }

    // === time-driven balancer options (slow start, outlier detection) ===

    /// Passive health: an attempt's outcome into outlier detection (when it is on).
    fn passive(&mut self, t: Micros, m: u32, outcome: Outcome) {
        if !self.outlier {
            return;
        }
        let (id, c) = (self.backends[m as usize].id, self.backends[m as usize].channel);
        if let Some(state) = self.lbs[c].health().record_response(id, outcome, clock(t)) {
            self.m.health_changed(m, secs(t), state);
            if let Some(ks) = self.lbs[c].key_space() {
                self.m.key_space_changed(c, &ks);
            }
            self.account(t);
            self.arm_tick(c);
        }
    }

    /// Schedules channel `c`'s next balancer tick, if it needs one before the end of the run.
    fn arm_tick(&mut self, c: usize) {
        let Some(next) = self.lbs[c].next_tick() else { return };
        let t = next.as_micros().min(u128::from(u64::MAX)) as Micros;
        if t >= self.end || self.ticks[c].is_some_and(|p| p <= t) {
            return;
        }
        self.ticks[c] = Some(t);
        self.schedule(t, Ev::Tick(c as u32));
    }

    fn tick(&mut self, t: Micros, c: usize) {
        if self.ticks[c] != Some(t) {
            return; // superseded by an earlier tick
        }
        self.ticks[c] = None;
        for (id, state) in self.lbs[c].tick(clock(t)) {
            if let Some(&m) = self.index.get(&id) {
                self.m.health_changed(m, secs(t), state);
            }
        }
        if let Some(ks) = self.lbs[c].key_space() {
            self.m.key_space_changed(c, &ks);
        }
        self.account(t);
        self.arm_tick(c);
    }

    /// Records the expected shares in force from `t` on.
    fn account(&mut self, t: Micros) {
        // GA dials of the groups with an eligible member (others get none); they change only
        // here, where eligibility does, so arrivals read them without recomputing.
        self.dials = self
            .sc
            .channels
            .iter()
            .zip(self.lbs)
            .map(|(c, lb)| {
                let dial = c.endpoint_group.as_ref().and_then(|g| g.traffic_dial_percentage).unwrap_or(100);
                if lb.tier().is_ok() {
                    dial as f64
                } else {
                    0.0
                }
            })
            .collect();
        let dials = &self.dials;
        let total: f64 = dials.iter().sum();
        let mut shares = vec![0.0; self.backends.len()];
        for (c, lb) in self.lbs.iter().enumerate() {
            let cs = if self.lbs.len() == 1 {
                1.0
            } else if total > 0.0 {
                dials[c] / total
            } else {
                0.0
            };
            for st in lb.members() {
                if let Some(&m) = self.index.get(&st.member.id()) {
                    shares[m as usize] = cs * st.expected_share;
                }
            }
        }
        self.m.expected_from(secs(t), &shares);
    }
}

#[cfg(test)]
mod tests {
    use super::{secs, us, us_ms, write_uri};
    use proptest::prelude::*;

    fn reference(s: f64) -> u64 {
        (s * 1e6).round().max(0.0) as u64
    }

    #[test]
    fn us_rounds_like_f64_round_at_the_edges() {
        let edges = [
            0.0,
            -0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.5e-6,
            f64::from_bits(0.5f64.to_bits() - 1) / 1e6,
            2.5e-6,
            1.5,
            ((1u64 << 52) as f64 - 0.5) / 1e6,
            (1u64 << 52) as f64 / 1e6,
            ((1u64 << 52) as f64 + 1.0) / 1e6,
            9.0e9,
            1.0e13,
            f64::MAX,
        ];
        for s in edges {
            assert_eq!(us(s), reference(s), "{s}");
        }
        for t in [0, 1, 999_999, 1 << 53, (1 << 63) - 1, 1 << 63, u64::MAX] {
            assert_eq!(secs(t), t as f64 / 1e6, "{t}");
        }
    }

    #[test]
    fn uri_paths_as_format_writes_them() {
        let mut buf = String::from("left over");
        for uri in [0, 7, 10, 99, 100, 12_345, 999_999, 1_000_000, u32::MAX] {
            write_uri(&mut buf, uri);
            assert_eq!(buf, format!("/api/v1/items/{uri}"));
        }
    }

    proptest! {
        #[test]
        fn us_matches_f64_round(bits in any::<u64>(), s in -1.0e3f64..1.0e10) {
            let x = f64::from_bits(bits);
            prop_assert_eq!(us(x), reference(x));
            prop_assert_eq!(us(s), reference(s));
            prop_assert_eq!(us(s.trunc() + 0.5e-6), reference(s.trunc() + 0.5e-6));
            prop_assert_eq!(us_ms(x), (x * 1e3).round().max(0.0) as u64);
            prop_assert_eq!(us_ms(s), (s * 1e3).round().max(0.0) as u64);
        }
    }
}
