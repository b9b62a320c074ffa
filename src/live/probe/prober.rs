//! The prober: one task per member, seeded first-probe jitter, results into the balancer.

use super::{probe_host, ProbeResult, TlsProbe};
use crate::balancer::{Balancer, MemberId};
use crate::health::{CheckConfig, CheckPolicy, HealthState, Outcome, Verdict};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// How many recent probe results [`ProbeHandle::probes`] keeps per member.
pub const RECENT_PROBES: usize = 64;

/// Options of [`spawn_probes`].
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// Seeds the first-probe jitter ([`first_probe_delay`]); the scenario's seed.
    pub seed: u64,
    /// TLS for HTTPS checks; `None`: accept any certificate, no client certificate.
    pub tls: Option<TlsProbe>,
    /// Probe every this often instead of `time_interval` (tests and fast demos); an
    /// `unhealthy_interval` and the jitter scale it as they scale `time_interval`. The probe
    /// timeout stays `timeout`; one member's probes never overlap.
    pub interval_override: Option<Duration>,
    /// `unhealthy_interval`, `interval_jitter_percent` and `retriable_codes` (a status outside
    /// it and `http_code` marks the member unhealthy at once).
    pub policy: crate::health::CheckPolicy,
}

/// A member's health transition, as the prober caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub member: MemberId,
    /// When the probe that caused it completed, since the prober started.
    pub at: Duration,
    pub state: HealthState,
    /// The last probe's failure when turning unhealthy; `None` when turning healthy.
    pub reason: Option<String>,
}

/// One completed probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// When it completed, since the prober started.
    pub at: Duration,
    pub result: ProbeResult,
}

/// The first check of a member comes `first_probe_delay(seed, member, interval)` after the
/// prober starts: a value in `[0, interval)` that depends only on the seed and the member's
/// identity, so that runs replay and checks of many members do not fire at once.
///
/// splitmix64 over the seed and the xxh3 hash of `host:port`; the 64-bit result scales the
/// interval as a fraction in `[0, 1)`.
pub fn first_probe_delay(seed: u64, member: MemberId, interval: Duration) -> Duration {
    let h = xxh3_64(member.to_string().as_bytes());
    let x = splitmix64(seed ^ splitmix64(h));
    let nanos = interval.as_nanos().min(u128::from(u64::MAX));
    // nanos * x / 2^64 < nanos, and it fits u64 since nanos does.
    Duration::from_nanos(((nanos * u128::from(x)) >> 64) as u64)
}

fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Shared {
    start: Instant,
    events: Mutex<Vec<HealthEvent>>,
    recent: Mutex<HashMap<MemberId, VecDeque<ProbeRecord>>>,
    tx: broadcast::Sender<HealthEvent>,
}

/// Running probes. Stops them on [`ProbeHandle::shutdown`] or when dropped.
pub struct ProbeHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    delays: Vec<(MemberId, Duration)>,
}

impl ProbeHandle {
    /// Every transition so far, in order.
    pub fn events(&self) -> Vec<HealthEvent> {
        self.shared.events.lock().clone()
    }

    /// Transitions from now on (a lagging receiver loses the oldest; see [`Self::events`]).
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.shared.tx.subscribe()
    }

    /// The member's last (up to [`RECENT_PROBES`]) completed probes, oldest first.
    pub fn probes(&self, member: MemberId) -> Vec<ProbeRecord> {
        self.shared.recent.lock().get(&member).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// Each member's first-probe delay, in the order the targets were given.
    pub fn first_delays(&self) -> &[(MemberId, Duration)] {
        &self.delays
    }

    /// Time since the prober started (the origin of `at` in events and records).
    pub fn elapsed(&self) -> Duration {
        self.shared.start.elapsed()
    }

    /// Stops every task (a probe in flight is abandoned) and waits for them to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            // A task that panicked has stopped too; nothing more to do about it here.
            let _ = task.await;
        }
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts probing: one task per target, each checking every `time_interval` (or
/// `opts.interval_override`), the first check after [`first_probe_delay`]. Each result goes to
/// `lb.health().record(member, outcome)` when the probe completes. A slow or hung member only
/// delays its own task: every probe is bounded by `timeout`, and tasks are independent.
///
/// `targets` are the addresses to probe, already resolved (see [`super::check_target`] for the
/// check's `port`); a member host that is a DNS name is used for SNI and the `Host` header.
///
/// Must be called within a tokio runtime (it spawns tasks, and panics otherwise, as
/// `tokio::spawn` does).
pub fn spawn_probes(
    lb: Arc<Balancer>,
    check: CheckConfig,
    targets: Vec<(MemberId, SocketAddr)>,
    opts: ProbeOptions,
) -> ProbeHandle {
    let interval = opts
        .interval_override
        .unwrap_or(Duration::from_secs(u64::from(check.interval_s)))
        .max(Duration::from_millis(1));
    let (tx, _) = broadcast::channel(256);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        events: Mutex::new(Vec::new()),
        recent: Mutex::new(HashMap::new()),
        tx,
    });
    let (stop, _) = watch::channel(false);
    let check = Arc::new(check);
    let tls = opts.tls.map(Arc::new);
    let policy = Arc::new(opts.policy);
    let mut tasks = Vec::with_capacity(targets.len());
    let mut delays = Vec::with_capacity(targets.len());
    for (member, addr) in targets {
        let delay = first_probe_delay(opts.seed, member, interval);
        delays.push((member, delay));
        let task = MemberTask {
            lb: lb.clone(),
            check: check.clone(),
            tls: tls.clone(),
            member,
            addr,
            first: shared.start + delay,
            interval,
            seed: opts.seed,
            shared: shared.clone(),
            policy: policy.clone(),
        };
        tasks.push(tokio::spawn(task.run(stop.subscribe())));
    }
    ProbeHandle { shared, stop, tasks, delays }
}

struct MemberTask {
    lb: Arc<Balancer>,
    check: Arc<CheckConfig>,
    tls: Option<Arc<TlsProbe>>,
    member: MemberId,
    addr: SocketAddr,
    first: Instant,
    interval: Duration,
    seed: u64,
    shared: Arc<Shared>,
    policy: Arc<CheckPolicy>,
}

impl MemberTask {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut at = self.first;
        for n in 0u64.. {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            // As in the simulator: the next check's interval follows the member's health as this
            // one starts.
            let unhealthy = self.lb.health().state(self.member) == Some(HealthState::Unhealthy);
            let next = at + self.next_interval(unhealthy, n);
            let probe = probe_host(&self.check, self.addr, Some(self.member.host()), self.tls.as_deref());
            let result = tokio::select! {
                _ = stop.changed() => return,
                r = probe => r,
            };
            self.record(result);
            // A probe never overlaps the member's next one: a start that passed while it ran
            // (only possible when the interval is overridden below the timeout) comes now.
            at = next.max(Instant::now());
        }
    }

    /// The wait after check `n` starts: `time_interval` (or the override), scaled as
    /// `unhealthy_interval` and `interval_jitter_percent` scale it; the jitter's draw depends
    /// only on the seed, the member and `n`, as the first delay does.
    fn next_interval(&self, unhealthy: bool, n: u64) -> Duration {
        let u = if self.policy.jitters() {
            let h = xxh3_64(self.member.to_string().as_bytes());
            (splitmix64(self.seed ^ splitmix64(h ^ splitmix64(n))) >> 11) as f64 / (1u64 << 53) as f64
        } else {
            0.5
        };
        let base = f64::from(self.check.interval_s.max(1));
        self.interval.mul_f64(self.policy.interval_s(&self.check, unhealthy, u) / base).max(Duration::from_millis(1))
    }

    fn record(&self, result: ProbeResult) {
        let at = self.shared.start.elapsed();
        let fatal = result.status.is_some_and(|s| self.policy.verdict(&self.check, s) == Verdict::Fatal);
        let transition = if fatal {
            self.lb.health().force_unhealthy(self.member)
        } else {
            self.lb.health().record(self.member, result.outcome)
        };
        let status = result.status;
        let elapsed_ms = result.elapsed.as_millis() as u64;
        let failure = result.failure.as_ref().map(|f| f.to_string());
        tracing::debug!(member = %self.member, outcome = ?result.outcome, status, elapsed_ms, failure, "probe");
        {
            let mut recent = self.shared.recent.lock();
            let q = recent.entry(self.member).or_default();
            if q.len() == RECENT_PROBES {
                q.pop_front();
            }
            q.push_back(ProbeRecord { at, result: result.clone() });
        }
        if let Some(state) = transition {
            let reason = match result.outcome {
                Outcome::Failure => failure,
                Outcome::Success => None,
            };
            tracing::info!(member = %self.member, state = %state, reason, at_ms = at.as_millis() as u64, "health transition");
            let event = HealthEvent { member: self.member, at, state, reason };
            self.shared.events.lock().push(event.clone());
            // No receiver is fine: `events()` keeps the history.
            let _ = self.shared.tx.send(event);
        }
    }
}
