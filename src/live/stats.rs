//! What the proxy counts: per member attempts, answers, failures, in-flight peaks, latency and a
//! timeline; per request the outcome and why it failed. Atomics per member and one histogram
//! lock per member, so that requests to different members never wait on each other.

use crate::balancer::{stripe, MemberId, STRIPES};
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

#[derive(Default)]
struct MemberCounters {
    attempts: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    latency: Mutex<Option<Histogram<u64>>>,
    timeline: Vec<AtomicU64>,
}

/// The proxy's counters. Cheap to share (`Arc`).
pub struct ProxyStats {
    start: Instant,
    step: f64,
    index: HashMap<MemberId, usize>,
    members: Vec<(MemberId, MemberCounters)>,
    total: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    by_reason: [AtomicU64; Reason::ALL.len()],
    connections: Connections,
    /// Request latency, one histogram per thread stripe (merged when read), so that requests on
    /// different threads never wait for one lock.
    latency: Box<[CachePadded<Shard>]>,
}

/// Client connections: open now, the most open at once, and those turned away.
#[derive(Default)]
struct Connections {
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
    pub open: u64,
    pub peak: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub timed_out: u64,
}

/// One stripe's request-latency histogram.
type Shard = Mutex<Option<Histogram<u64>>>;

fn histogram() -> Option<Histogram<u64>> {
    // 1 us to 1 h at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()
}

fn record(h: &Mutex<Option<Histogram<u64>>>, d: Duration) {
    if let Some(h) = h.lock().as_mut() {
        h.saturating_record(d.as_micros().clamp(1, u128::from(u64::MAX)) as u64);
    }
}

/// One member's figures.
#[derive(Debug, Clone)]
pub struct MemberFigures {
    pub member: MemberId,
    pub attempts: u64,
    pub failed: u64,
    pub peak_in_flight: u64,
    pub latency: Option<Histogram<u64>>,
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
    pub latency: Option<Histogram<u64>>,
}

impl ProxyStats {
    /// Counters for these members, with a timeline of `windows` windows of `step_s` from `start`.
    pub fn new(members: &[MemberId], start: Instant, step_s: f64, windows: usize) -> ProxyStats {
        ProxyStats {
            start,
            step: step_s.max(1e-3),
            index: members.iter().enumerate().map(|(i, m)| (*m, i)).collect(),
            members: members
                .iter()
                .map(|m| {
                    let c = MemberCounters {
                        latency: Mutex::new(histogram()),
                        timeline: (0..windows.max(1)).map(|_| AtomicU64::new(0)).collect(),
                        ..Default::default()
                    };
                    (*m, c)
                })
                .collect(),
            total: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            by_reason: Default::default(),
            connections: Connections::default(),
            latency: (0..STRIPES).map(|_| CachePadded::new(Mutex::new(histogram()))).collect(),
        }
    }

    fn member(&self, id: MemberId) -> Option<&MemberCounters> {
        self.index.get(&id).map(|&i| &self.members[i].1)
    }

    pub(crate) fn attempt_started(&self, id: MemberId) {
        if let Some(m) = self.member(id) {
            m.attempts.fetch_add(1, Relaxed);
            let now = m.in_flight.fetch_add(1, Relaxed) + 1;
            m.peak_in_flight.fetch_max(now, Relaxed);
            let w = (self.start.elapsed().as_secs_f64() / self.step) as usize;
            if let Some(slot) = m.timeline.get(w.min(m.timeline.len() - 1)) {
                slot.fetch_add(1, Relaxed);
            }
        }
    }

    /// The member answered (any status); its in-flight count ends with the body.
    pub(crate) fn attempt_answered(&self, id: MemberId, status: u16, elapsed: Duration) {
        if let Some(m) = self.member(id) {
            if status >= 500 {
                m.failed.fetch_add(1, Relaxed);
            } else {
                record(&m.latency, elapsed);
            }
        }
    }

    pub(crate) fn attempt_ended(&self, id: MemberId) {
        if let Some(m) = self.member(id) {
            m.in_flight.fetch_sub(1, Relaxed);
        }
    }

    /// An attempt that [`ProxyStats::attempt_started`] counted failed before an answer.
    pub(crate) fn attempt_failed(&self, id: MemberId, _why: Reason) {
        if let Some(m) = self.member(id) {
            m.failed.fetch_add(1, Relaxed);
            m.in_flight.fetch_sub(1, Relaxed);
        }
    }

    pub(crate) fn body_reset(&self, id: MemberId) {
        if let Some(m) = self.member(id) {
            m.failed.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// A request got an answer from a member: ok below 500, else failed (`error_5xx`).
    pub(crate) fn request_answered(&self, status: u16, elapsed: Duration) {
        self.total.fetch_add(1, Relaxed);
        if status >= 500 {
            self.failed.fetch_add(1, Relaxed);
            self.by_reason[Reason::Error5xx as usize].fetch_add(1, Relaxed);
        } else {
            self.ok.fetch_add(1, Relaxed);
            // The balancer's thread stripes spread threads over the histograms too.
            record(&self.latency[stripe()], elapsed);
        }
    }

    pub(crate) fn request_failed(&self, why: Reason) {
        self.total.fetch_add(1, Relaxed);
        self.failed.fetch_add(1, Relaxed);
        self.by_reason[why as usize].fetch_add(1, Relaxed);
    }

    pub fn requests(&self) -> RequestFigures {
        RequestFigures {
            total: self.total.load(Relaxed),
            ok: self.ok.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            by_reason: Reason::ALL
                .iter()
                .filter_map(|r| {
                    let n = self.by_reason[*r as usize].load(Relaxed);
                    (n > 0).then(|| (r.as_str().to_string(), n))
                })
                .collect(),
            latency: self.latency.iter().fold(histogram(), |acc, h| match (acc, h.lock().as_ref()) {
                (Some(mut a), Some(b)) => {
                    let _ = a.add(b);
                    Some(a)
                }
                (a, _) => a,
            }),
        }
    }

    pub fn members(&self) -> Vec<MemberFigures> {
        self.members
            .iter()
            .map(|(id, m)| MemberFigures {
                member: *id,
                attempts: m.attempts.load(Relaxed),
                failed: m.failed.load(Relaxed),
                peak_in_flight: m.peak_in_flight.load(Relaxed),
                latency: m.latency.lock().clone(),
                timeline: m.timeline.iter().map(|x| x.load(Relaxed)).collect(),
            })
            .collect()
    }

    pub(crate) fn connection_opened(&self) {
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
            open: c.open.load(Relaxed),
            peak: c.peak.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            timed_out: c.timed_out.load(Relaxed),
        }
    }

    /// Attempts currently open per member.
    pub fn in_flight(&self, id: MemberId) -> u64 {
        self.member(id).map_or(0, |m| m.in_flight.load(Relaxed))
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
