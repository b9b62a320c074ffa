//! What the proxy counts: per member attempts by outcome, in-flight counts and peaks, ejections,
//! latency and a timeline; per request the outcome, why it failed and the tier of its pick;
//! client connections. Request counters are kept per thread stripe and summed when read, so that
//! the workers never share a written cache line on their account; member counters are atomics
//! per member with one histogram lock per member.

use crate::balancer::{stripe, MemberId, STRIPES};
use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an attempt or a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NoMember,
    Refused,
    Timeout,
    QueueFull,
    Reset,
    Error5xx,
    BodyTooLarge,
    ClientAbort,
    BadRequest,
    /// The client did not send its whole body within the body read timeout (408).
    ClientTimeout,
    /// The request came on a connection over the proxy's connection limit (503).
    ConnectionLimit,
    /// The request line and headers were over the limit (431, answered by hyper).
    HeadersTooLarge,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::NoMember,
        Reason::Refused,
        Reason::Timeout,
        Reason::QueueFull,
        Reason::Reset,
        Reason::Error5xx,
        Reason::BodyTooLarge,
        Reason::ClientAbort,
        Reason::BadRequest,
        Reason::ClientTimeout,
        Reason::ConnectionLimit,
        Reason::HeadersTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoMember => "no_member",
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::QueueFull => "queue_full",
            Reason::Reset => "reset",
            Reason::Error5xx => "error_5xx",
            Reason::BodyTooLarge => "body_too_large",
            Reason::ClientAbort => "client_abort",
            Reason::BadRequest => "bad_request",
            Reason::ClientTimeout => "client_timeout",
            Reason::ConnectionLimit => "connection_limit",
            Reason::HeadersTooLarge => "headers_too_large",
        }
    }

    /// Retried whatever the method: the member did not see the request, or said it was full.
    /// A reset is retried only for idempotent methods.
    pub fn retriable(self) -> bool {
        matches!(self, Reason::Refused | Reason::Timeout | Reason::QueueFull)
    }
}

/// What became of one attempt at a member, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered below 500.
    Ok,
    /// Answered 500 or above (a 503 that was retried is `QueueFull`).
    Error5xx,
    Refused,
    Timeout,
    QueueFull,
    Reset,
    /// The client went away first.
    ClientAbort,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Error5xx,
        Outcome::Refused,
        Outcome::Timeout,
        Outcome::QueueFull,
        Outcome::Reset,
        Outcome::ClientAbort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error5xx => "error_5xx",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::QueueFull => "queue_full",
            Outcome::Reset => "reset",
            Outcome::ClientAbort => "client_abort",
        }
    }

    fn of_failure(why: Reason) -> Outcome {
        match why {
            Reason::Refused | Reason::NoMember => Outcome::Refused,
            Reason::Timeout => Outcome::Timeout,
            Reason::QueueFull => Outcome::QueueFull,
            Reason::ClientAbort | Reason::ClientTimeout => Outcome::ClientAbort,
            _ => Outcome::Reset,
        }
    }
}

/// Which tier a pick came from (`Balancer::tier` when it was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickTier {
    Primary,
    Backup,
    Panic,
}

impl PickTier {
    pub const ALL: [PickTier; 3] = [PickTier::Primary, PickTier::Backup, PickTier::Panic];

    pub fn as_str(self) -> &'static str {
        match self {
            PickTier::Primary => "primary",
            PickTier::Backup => "backup",
            PickTier::Panic => "panic",
        }
    }
}

impl From<crate::balancer::Tier> for PickTier {
    fn from(t: crate::balancer::Tier) -> PickTier {
        match t {
            crate::balancer::Tier::Primary => PickTier::Primary,
            crate::balancer::Tier::Backup => PickTier::Backup,
            crate::balancer::Tier::Panic => PickTier::Panic,
        }
    }
}

struct MemberCounters {
    attempts: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    ejections: AtomicU64,
    /// Sum of the latencies the histogram holds, in microseconds (its own sum is approximate).
    latency_sum_us: AtomicU64,
    latency: Mutex<Option<Histogram<u64>>>,
    timeline: Vec<AtomicU64>,
}

impl MemberCounters {
    fn new(windows: usize) -> MemberCounters {
        MemberCounters {
            attempts: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            outcomes: Default::default(),
            ejections: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            timeline: (0..windows.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn outcome(&self, o: Outcome) {
        self.outcomes[o as usize].fetch_add(1, Relaxed);
    }
}

/// The members counted, in the order they were added. Members are added (a channel update),
/// never removed: a removed member's counters stay, as Prometheus counters must.
#[derive(Default)]
struct Table {
    index: HashMap<MemberId, usize>,
    members: Vec<(MemberId, Arc<MemberCounters>)>,
}

/// Request counters of one thread stripe (summed when read), so that requests on different
/// workers never write one cache line.
#[derive(Default)]
struct Shard {
    total: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    by_reason: [AtomicU64; Reason::ALL.len()],
    picks: [AtomicU64; PickTier::ALL.len()],
    latency: Mutex<Option<Histogram<u64>>>,
}

/// The proxy's counters. Cheap to share (`Arc`).
pub struct ProxyStats {
    start: Instant,
    step: f64,
    windows: usize,
    table: ArcSwap<Table>,
    /// Serializes [`ProxyStats::add_members`].
    adding: Mutex<()>,
    shards: Box<[CachePadded<Shard>]>,
    connections: Connections,
}

/// Client connections: open now, the most open at once, and those turned away.
#[derive(Default)]
struct Connections {
    accepted: AtomicU64,
    open: AtomicU64,
    peak: AtomicU64,
    /// Over the limit, answered 503 on every request.
    rejected: AtomicU64,
    /// Over the limit with no room left even to answer: closed at once.
    dropped: AtomicU64,
    /// Closed for sending no request head in time, or for idling past the idle timeout.
    timed_out: AtomicU64,
}

/// Client-connection figures (see [`ProxyStats::connections`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionFigures {
    /// Accepted within the limit, since the start.
    pub accepted: u64,
    pub open: u64,
    pub peak: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub timed_out: u64,
}

fn histogram() -> Option<Histogram<u64>> {
    // 1 us to 1 h at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()
}

fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, u128::from(u64::MAX)) as u64
}

fn record(h: &Mutex<Option<Histogram<u64>>>, us: u64) {
    if let Some(h) = h.lock().as_mut() {
        h.saturating_record(us);
    }
}

/// One member's figures.
#[derive(Debug, Clone)]
pub struct MemberFigures {
    pub member: MemberId,
    pub attempts: u64,
    pub failed: u64,
    pub in_flight: u64,
    pub peak_in_flight: u64,
    /// Attempts by outcome, in [`Outcome::ALL`]'s order.
    pub outcomes: [u64; Outcome::ALL.len()],
    /// Ejections by outlier detection caused by this proxy's responses.
    pub ejections: u64,
    /// Latency of the attempts answered below 500 (microseconds), and its exact sum.
    pub latency: Option<Histogram<u64>>,
    pub latency_sum_us: u64,
    pub timeline: Vec<u64>,
}

/// Request figures.
#[derive(Debug, Clone)]
pub struct RequestFigures {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    pub retried: u64,
    pub by_reason: BTreeMap<String, u64>,
    /// Picks by tier, in [`PickTier::ALL`]'s order.
    pub picks: [u64; PickTier::ALL.len()],
    pub latency: Option<Histogram<u64>>,
}

impl ProxyStats {
    /// Counters for these members, with a timeline of `windows` windows of `step_s` from `start`.
    pub fn new(members: &[MemberId], start: Instant, step_s: f64, windows: usize) -> ProxyStats {
        let stats = ProxyStats {
            start,
            step: step_s.max(1e-3),
            windows: windows.max(1),
            table: ArcSwap::from_pointee(Table::default()),
            adding: Mutex::new(()),
            shards: (0..STRIPES)
                .map(|_| CachePadded::new(Shard { latency: Mutex::new(histogram()), ..Default::default() }))
                .collect(),
            connections: Connections::default(),
        };
        stats.add_members(members);
        stats
    }

    /// Counts these members too (those already counted keep their counters).
    pub fn add_members(&self, ids: &[MemberId]) {
        let _one = self.adding.lock();
        let now = self.table.load();
        if ids.iter().all(|id| now.index.contains_key(id)) {
            return;
        }
        let mut next = Table { index: now.index.clone(), members: now.members.clone() };
        for id in ids {
            if !next.index.contains_key(id) {
                next.index.insert(*id, next.members.len());
                next.members.push((*id, Arc::new(MemberCounters::new(self.windows))));
            }
        }
        self.table.store(Arc::new(next));
    }

    fn with_member(&self, id: MemberId, f: impl FnOnce(&MemberCounters)) {
        let table = self.table.load();
        if let Some(&i) = table.index.get(&id) {
            f(&table.members[i].1);
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[stripe()]
    }

    pub(crate) fn attempt_started(&self, id: MemberId) {
        let w = (self.start.elapsed().as_secs_f64() / self.step) as usize;
        self.with_member(id, |m| {
            m.attempts.fetch_add(1, Relaxed);
            let now = m.in_flight.fetch_add(1, Relaxed) + 1;
            if now > m.peak_in_flight.load(Relaxed) {
                m.peak_in_flight.fetch_max(now, Relaxed);
            }
            if let Some(slot) = m.timeline.get(w.min(m.timeline.len() - 1)) {
                slot.fetch_add(1, Relaxed);
            }
        });
    }

    /// The member answered (any status); its in-flight count ends with the body.
    pub(crate) fn attempt_answered(&self, id: MemberId, status: u16, elapsed: Duration) {
        self.with_member(id, |m| {
            if status >= 500 {
                m.failed.fetch_add(1, Relaxed);
                m.outcome(Outcome::Error5xx);
            } else {
                m.outcome(Outcome::Ok);
                let us = micros(elapsed);
                m.latency_sum_us.fetch_add(us, Relaxed);
                record(&m.latency, us);
            }
        });
    }

    pub(crate) fn attempt_ended(&self, id: MemberId) {
        self.with_member(id, |m| {
            m.in_flight.fetch_sub(1, Relaxed);
        });
    }

    /// An attempt that [`ProxyStats::attempt_started`] counted failed before an answer.
    pub(crate) fn attempt_failed(&self, id: MemberId, why: Reason) {
        self.with_member(id, |m| {
            m.failed.fetch_add(1, Relaxed);
            m.in_flight.fetch_sub(1, Relaxed);
            m.outcome(Outcome::of_failure(why));
        });
    }

    pub(crate) fn body_reset(&self, id: MemberId) {
        self.with_member(id, |m| {
            m.failed.fetch_add(1, Relaxed);
        });
    }

    /// Outlier detection ejected the member after one of this proxy's responses.
    pub(crate) fn ejected(&self, id: MemberId) {
        self.with_member(id, |m| {
            m.ejections.fetch_add(1, Relaxed);
        });
    }

    pub(crate) fn picked(&self, tier: PickTier) {
        self.shard().picks[tier as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.shard().retried.fetch_add(1, Relaxed);
    }

    /// A request got an answer from a member: ok below 500, else failed (`error_5xx`).
    pub(crate) fn request_answered(&self, status: u16, elapsed: Duration) {
        let s = self.shard();
        s.total.fetch_add(1, Relaxed);
        if status >= 500 {
            s.failed.fetch_add(1, Relaxed);
            s.by_reason[Reason::Error5xx as usize].fetch_add(1, Relaxed);
        } else {
            s.ok.fetch_add(1, Relaxed);
            record(&s.latency, micros(elapsed));
        }
    }

    pub(crate) fn request_failed(&self, why: Reason) {
        let s = self.shard();
        s.total.fetch_add(1, Relaxed);
        s.failed.fetch_add(1, Relaxed);
        s.by_reason[why as usize].fetch_add(1, Relaxed);
    }

    pub fn requests(&self) -> RequestFigures {
        let sum = |f: &dyn Fn(&Shard) -> &AtomicU64| self.shards.iter().map(|s| f(s).load(Relaxed)).sum::<u64>();
        RequestFigures {
            total: sum(&|s| &s.total),
            ok: sum(&|s| &s.ok),
            failed: sum(&|s| &s.failed),
            retried: sum(&|s| &s.retried),
            by_reason: Reason::ALL
                .iter()
                .filter_map(|r| {
                    let n = sum(&|s| &s.by_reason[*r as usize]);
                    (n > 0).then(|| (r.as_str().to_string(), n))
                })
                .collect(),
            picks: PickTier::ALL.map(|t| sum(&|s| &s.picks[t as usize])),
            latency: self.shards.iter().fold(histogram(), |acc, s| match (acc, s.latency.lock().as_ref()) {
                (Some(mut a), Some(b)) => {
                    let _ = a.add(b);
                    Some(a)
                }
                (a, _) => a,
            }),
        }
    }

    pub fn members(&self) -> Vec<MemberFigures> {
        self.table
            .load()
            .members
            .iter()
            .map(|(id, m)| MemberFigures {
                member: *id,
                attempts: m.attempts.load(Relaxed),
                failed: m.failed.load(Relaxed),
                in_flight: m.in_flight.load(Relaxed),
                peak_in_flight: m.peak_in_flight.load(Relaxed),
                outcomes: Outcome::ALL.map(|o| m.outcomes[o as usize].load(Relaxed)),
                ejections: m.ejections.load(Relaxed),
                latency: m.latency.lock().clone(),
                latency_sum_us: m.latency_sum_us.load(Relaxed),
                timeline: m.timeline.iter().map(|x| x.load(Relaxed)).collect(),
            })
            .collect()
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.accepted.fetch_add(1, Relaxed);
        let now = self.connections.open.fetch_add(1, Relaxed) + 1;
        self.connections.peak.fetch_max(now, Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn connection_rejected(&self) {
        self.connections.rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_dropped(&self) {
        self.connections.dropped.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_timed_out(&self) {
        self.connections.timed_out.fetch_add(1, Relaxed);
    }

    /// Client connections served (open now and peak, within the limit), and turned away.
    pub fn connections(&self) -> ConnectionFigures {
        let c = &self.connections;
        ConnectionFigures {
            accepted: c.accepted.load(Relaxed),
            open: c.open.load(Relaxed),
            peak: c.peak.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            timed_out: c.timed_out.load(Relaxed),
        }
    }

    /// Attempts currently open per member.
    pub fn in_flight(&self, id: MemberId) -> u64 {
        let table = self.table.load();
        table.index.get(&id).map_or(0, |&i| table.members[i].1.in_flight.load(Relaxed))
    }
}

/// What one request has counted so far. the proxy's handler is dropped when the client goes
/// away mid-request; the drop then counts the request as `client_abort` and ends its open attempt, so
/// that every request is counted once and no attempt stays open.
pub(crate) struct Tally {
    stats: Arc<ProxyStats>,
    attempt: Option<MemberId>,
    counted: bool,
}

impl Tally {
    pub(crate) fn new(stats: Arc<ProxyStats>) -> Tally {
        Tally { stats, attempt: None, counted: false }
    }

    pub(crate) fn attempt_started(&mut self, id: MemberId) {
        self.stats.attempt_started(id);
        self.attempt = Some(id);
    }

    pub(crate) fn attempt_failed(&mut self, id: MemberId, why: Reason) {
        self.stats.attempt_failed(id, why);
        self.attempt = None;
    }

    /// From here the response body ends the attempt (`PickBody`).
    pub(crate) fn attempt_answered(&mut self, id: MemberId, status: u16, elapsed: Duration) {
        self.stats.attempt_answered(id, status, elapsed);
        self.attempt = None;
    }

    pub(crate) fn failed(&mut self, why: Reason) {
        self.stats.request_failed(why);
        self.counted = true;
    }

    pub(crate) fn answered(&mut self, status: u16, elapsed: Duration) {
        self.stats.request_answered(status, elapsed);
        self.counted = true;
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Some(id) = self.attempt.take() {
            self.stats.attempt_failed(id, Reason::ClientAbort);
        }
        if !self.counted {
            self.stats.request_failed(Reason::ClientAbort);
        }
    }
}
