//! The control API's connections: how many may be open at once, and how long one may keep a
//! slot without sending a request.
//!
//! Each connection has a watchdog: it is closed when no request is being answered and none has
//! started for [`Limits::header_timeout`] (from the moment it opened, or from its last answer).
//! That covers a client that connects and sends nothing (hyper's own header timeout only starts
//! once the protocol is known, at the first byte), one that trickles its headers, and an idle
//! keep-alive connection, for HTTP/1.1 and HTTP/2 alike. A body must arrive within
//! [`Limits::body_timeout`] of the headers (408, see `server::answer`).
//!
//! Up to [`Limits::max_connections`] connections are served; as many again are accepted only
//! to answer each request 503 (`Connection: close`, `Retry-After: 1`) under the same watchdog;
//! connections past that are closed at once. Every accepted socket therefore holds a slot for at
//! most `header_timeout` unless it is sending requests.

use parking_lot::Mutex;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Connection limits of `lbsim serve` (`--header-timeout`, `--body-timeout`,
/// `--max-connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this long of the connection opening or of its
    /// previous answer; an idle connection is closed after it.
    pub header_timeout: Duration,
    /// A request's body must arrive within this long of its headers (408 otherwise).
    pub body_timeout: Duration,
    /// Connections served at once; as many again get 503.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(30), max_connections: 1024 }
    }
}

/// What an accepted connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    Serve,
    /// Over the limit: every request gets 503 and the connection closes.
    Busy,
    /// Far over the limit: closed at once.
    Refuse,
}

/// Counts open connections; a [`Slot`] is one of them.
#[derive(Debug, Default, Clone)]
pub(super) struct Gate {
    open: Arc<AtomicUsize>,
}

/// An open connection's place in the count, given back when dropped.
pub(super) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub(super) fn admit(&self, max: usize) -> (Admission, Slot) {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(&self.open));
        let admission = if before < max {
            Admission::Serve
        } else if before < max.saturating_mul(2) {
            Admission::Busy
        } else {
            Admission::Refuse
        };
        (admission, slot)
    }
}

/// A connection's requests as its watchdog sees them: how many are being answered, and when
/// the last one ended (or the connection opened).
#[derive(Debug)]
pub(super) struct Activity {
    in_flight: AtomicU32,
    last: Mutex<Instant>,
}

/// One request being answered; ends when dropped (also when hyper drops the request because
/// the client left).
pub(super) struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.last.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity { in_flight: AtomicU32::new(0), last: Mutex::new(Instant::now()) }
    }

    pub(super) fn begin(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self)
    }

    /// When the connection will have been idle for `idle`, if nothing starts; `None` while a
    /// request is being answered.
    fn idle_until(&self, idle: Duration) -> Option<Instant> {
        let last = *self.last.lock();
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| last + idle)
    }
}

/// Runs `conn` until it ends, or until it has been idle for `idle` (then drops it, which
/// closes the socket).
pub(super) async fn watch(conn: impl Future, activity: &Activity, idle: Duration) {
    tokio::pin!(conn);
    loop {
        let wake = activity.idle_until(idle).unwrap_or_else(|| Instant::now() + idle);
        tokio::select! {
            _ = &mut conn => return,
            _ = tokio::time::sleep_until(wake) => {
                if activity.idle_until(idle).is_some_and(|until| until <= Instant::now()) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_serves_then_answers_busy_then_refuses() {
        let gate = Gate::default();
        let slots: Vec<(Admission, Slot)> = (0..5).map(|_| gate.admit(2)).collect();
        let kinds: Vec<Admission> = slots.iter().map(|(a, _)| *a).collect();
        use Admission::*;
        assert_eq!(kinds, [Serve, Serve, Busy, Busy, Refuse]);
        drop(slots);
        assert_eq!(gate.admit(2).0, Serve, "closed connections give their slots back");
    }

    #[tokio::test]
    async fn an_idle_connection_is_dropped_and_a_busy_one_is_not() {
        let idle = Duration::from_millis(100);
        let bound = Duration::from_secs(10);
        let activity = Activity::new();
        let start = Instant::now();
        let watched = tokio::time::timeout(bound, watch(std::future::pending::<()>(), &activity, idle)).await;
        assert!(watched.is_ok() && start.elapsed() >= idle);
        // A request in progress keeps the connection past the idle time; its end starts it again.
        let busy = activity.begin();
        let start = Instant::now();
        let release = async {
            tokio::time::sleep(3 * idle).await;
            drop(busy);
        };
        let (watched, ()) =
            tokio::join!(tokio::time::timeout(bound, watch(std::future::pending::<()>(), &activity, idle)), release);
        assert!(watched.is_ok() && start.elapsed() >= 4 * idle, "{:?}", start.elapsed());
    }
}
