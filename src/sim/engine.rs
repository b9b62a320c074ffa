//! The event loop: arrivals, attempts on simulated backends and retries. Members joining and
//! `[[changes]]` ([`members`]), health checks ([`probe`]), outlier detection and balancer ticks
//! ([`health`]), GA's endpoint groups and SDRS's failover ([`cloud`]) and the trace ([`trace`])
//! run from the same queue.

use super::metrics::Metrics;
use super::queue::EventQueue;
use super::scenario::Scenario;
use super::time::{secs, us, us_ms, Micros};
use super::traffic::{client_addr, Popularity, ServiceSampler};
use crate::balancer::{MemberId, Pick, Strategy};
use crate::health::{CheckConfig, CheckPolicy, Outcome};
use crate::model::VpcChannel;
use crate::report::Report;
use crate::{Balancer, Request};
use rand::Rng;
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;

mod backend;
mod cloud;
mod event;
mod health;
mod members;
mod pause;
mod probe;
mod request;
mod streams;
mod trace;
mod uri;

pub(crate) use backend::Backend;
use cloud::{standby_overlay, Cloud};
use event::{Ev, MAX_SLOTS};
pub use pause::{run_until, Paused};
pub(crate) use request::Failure;
use request::{Attempt, Req};
use streams::Streams;
use uri::write_uri;

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
    /// GA's dials and SDRS's failover.
    cloud: Cloud,
    events: u64,
    /// Per channel: the pending `Ev::Tick`, if any.
    ticks: Vec<Option<Micros>>,
    /// Outlier detection is on: attempts' outcomes go to the balancers.
    outlier: bool,
    /// `unhealthy_interval`, `interval_jitter_percent`, `retriable_codes`.
    policy: CheckPolicy,
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
    let failover = e.cloud.failover_times();
    let events = e.events;
    let report = e.m.finish(super::metrics::Finish {
        scenario: sc,
        seed,
        duration_s: duration,
        backends: &e.backends,
        lbs: &lbs,
        failover,
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
            let c = standby_overlay(sc, c, false);
            Balancer::builder(&c).options(sc.balancer.clone()).strategy(strategy).build()
        })
        .collect::<Result<_, _>>()?;
    Ok((channels, lbs))
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
            cloud: Cloud::default(),
            events: 0,
            ticks: vec![None; lbs.len()],
            outlier: sc.balancer.outlier_consecutive_errors.is_some() || sc.balancer.outlier_failure_rate.is_some(),
            policy: sc.balancer.check_policy(),
        };
        for c in 0..e.channels.len() {
            e.register_members(c, 0);
        }
        e
    }

    #[inline]
    fn schedule(&mut self, t: Micros, ev: Ev) {
        self.queue.push(t, ev.pack());
    }

    /// The next event, packed ([`Ev::pack`]): the queue's earliest, or the next arrival when it
    /// comes strictly first. At one moment, queued events (ends of service, probes, changes, ...)
    /// run before the arrival. Arrivals form one stream, always one ahead, so they wait beside
    /// the queue rather than in it: a push, a pop and a move between buckets less per request.
    /// The event stays packed until [`Engine::step`] unpacks it, so that it travels in a register
    /// (an unpacked event handed through memory was stored in pieces and loaded whole, which
    /// stalled on store forwarding).
    #[inline]
    fn peek(&mut self) -> Option<(Micros, u64)> {
        match self.next_arrival {
            Some(ta) => Some(self.queue.peek_until(ta).unwrap_or((ta, Ev::ARRIVAL))),
            None => self.queue.peek(),
        }
    }

    /// Takes the next event (see [`Engine::peek`]).
    #[inline]
    fn pop(&mut self) -> Option<(Micros, u64)> {
        let next = self.peek()?;
        if Ev::is_arrival(next.1) {
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
        self.schedule_failover();
        for (c, lb) in self.lbs.iter().enumerate() {
            self.m.key_space_base(c, lb.key_space());
        }
        self.account(0);
    }

    /// Runs the packed event `ev` at `t`.
    fn step(&mut self, t: Micros, ev: u64) -> Result<(), SimError> {
        match Ev::unpack(ev) {
            Ev::Arrival => self.arrival(t)?,
            Ev::ServiceEnd(slot, gen) => self.service_end(t, slot, gen)?,
            Ev::Timeout(slot, gen) => self.timeout(t, slot, gen)?,
            Ev::Probe(m) => self.probe(t, m),
            Ev::ProbeResult(m, outcome) => self.probe_result(t, m, Some(outcome)),
            Ev::ProbeFatal(m) => self.probe_result(t, m, None),
            Ev::Change(i) => self.change(t, i as usize)?,
            Ev::FailoverStart => self.failover_start(t),
            Ev::FailoverDone => self.failover_done(t)?,
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

    fn client_ip(&self, client: u32) -> IpAddr {
        client_addr(self.seed, client, self.sc.traffic.ipv6_fraction)
    }

    fn attempt(&mut self, t: Micros, req: u32) -> Result<(), SimError> {
        let (client, uri, channel) = {
            let r = &self.reqs[req as usize];
            (r.client, r.uri, r.channel as usize)
        };
        let ip = self.client_ip(client);
        if self.strategy == Strategy::UriHash || self.trace.is_some() {
            write_uri(&mut self.uri_buf, uri);
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
}
