//! `lbsim proxy`: one scenario live on loopback, reported in the simulator's format.
//!
//! Starts a loopback backend per member (or maps members onto running servers), the balancer,
//! the real health probes, the proxy and, with a duration, the load generator with the
//! scenario's traffic; then reports in architecture.md §7's format with `"mode": "live"`.

use super::admin::{Admin, AdminState};
use super::backends::{self, Backends, LiveClock};
use super::loadgen::{self, LoadPlan, LoadResult};
use super::operate::{self, Operations, Reloader, Signals};
use super::probe::{spawn_probes, HealthEvent, ProbeHandle, ProbeOptions, TlsProbe};
use super::proxy::{Proxy, ProxyConfig};
use super::stats::{MemberFigures, ProxyStats, RequestFigures};
use crate::balancer::{MemberId, Strategy};
use crate::health::HealthState;
use crate::report::{Latency, Report, Requests};
use crate::sim::assemble::{assemble, MemberRun, RunFigures};
use crate::sim::keys::KeyMoves;
use crate::sim::Scenario;
use crate::Balancer;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The client-address header the built-in load generator sends and the proxy then trusts, when
/// `--client-ip-header` names none.
pub const DEFAULT_CLIENT_IP_HEADER: &str = "x-lbsim-client-ip";

/// How to run a scenario live.
#[derive(Debug)]
pub struct LiveOptions {
    pub strategy: Strategy,
    pub listen: SocketAddr,
    /// Drive the scenario's traffic for this long, then report; `None`: serve until Ctrl-C.
    pub duration: Option<Duration>,
    /// Members mapped onto running loopback servers instead of started ones.
    pub backends: Option<Vec<(MemberId, SocketAddr)>>,
    /// The proxy trusts this header for the client address (hashing only).
    pub client_ip_header: Option<String>,
    pub seed: Option<u64>,
    /// TLS for HTTPS checks (default: accept any certificate).
    pub probe_tls: Option<TlsProbe>,
    /// Client connections the proxy serves at once (`--max-connections`).
    pub max_connections: usize,
    /// The proxy's worker threads (`--workers`; 0: on the caller's runtime).
    pub workers: usize,
    /// Timeouts of client connections (`--header-timeout`, `--idle-timeout`).
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Admin server, reload and drain of a serving proxy (no `duration`).
    pub ops: Operations,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    Unsupported(String),
    #[error("the scenario's channel is invalid: {0}")]
    Channel(#[from] crate::model::ValidationErrors),
    #[error("--backends: {0}")]
    Backends(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// Runs a scenario live and reports it.
pub async fn run(sc: &Scenario, mut opts: LiveOptions) -> Result<Report, LiveError> {
    if sc.channels.len() != 1 || sc.channels[0].endpoint_group.is_some() || sc.protection_group.is_some() {
        return Err(LiveError::Unsupported(
            "live mode runs scenarios with one [channel]; GA endpoint groups and SDRS protection groups run in the simulator"
                .into(),
        ));
    }
    // Caught from the start: a SIGTERM while starting drains too, instead of killing.
    let mut signals = match opts.duration {
        None => Some(Signals::new().map_err(|source| LiveError::Io { what: "catching signals".into(), source })?),
        Some(_) => None,
    };
    let seed = opts.seed.unwrap_or(sc.seed);
    let members: Vec<MemberId> = sc.plan().members().iter().map(|m| m.id).collect();
    let clock = LiveClock::now();
    let (started, upstreams) = upstreams(sc, &opts, seed, &members, clock).await?;

    let lb = Arc::new(
        Balancer::builder(&sc.channels[0].channel).options(sc.balancer.clone()).strategy(opts.strategy).build()?,
    );
    let probe_start = Instant::now();
    let probe_tls = opts.probe_tls.take();
    let popts = ProbeOptions { seed, tls: probe_tls, interval_override: None, policy: sc.balancer.check_policy() };
    let mut prober: Option<ProbeHandle> = lb.check().map(|check| {
        let targets = members.iter().filter_map(|m| upstreams.get(m).map(|a| (*m, *a))).collect();
        spawn_probes(Arc::clone(&lb), check, targets, popts.clone())
    });
    // Expected shares in force from each health transition on, and the key space's moves.
    let tracker =
        prober.as_ref().map(|p| tokio::spawn(track(Arc::clone(&lb), p.subscribe(), clock.start, probe_start)));

    let duration = opts.duration.unwrap_or(Duration::ZERO);
    let windows = ((duration.as_secs_f64() / sc.timeline_step_s).ceil() as usize).max(1);
    let stats = Arc::new(ProxyStats::new(&members, clock.start, sc.timeline_step_s, windows));
    let header = opts.client_ip_header.clone().or_else(|| opts.duration.map(|_| DEFAULT_CLIENT_IP_HEADER.to_string()));
    let cfg = proxy_config(sc, &opts, upstreams.clone(), header.as_deref())?;
    let proxy_upstreams = cfg.upstreams.clone();
    let proxy = Proxy::start(Arc::clone(&lb), cfg, opts.listen, Arc::clone(&stats))
        .await
        .map_err(|source| LiveError::Io { what: format!("listening on {}", opts.listen), source })?;
    tracing::info!(addr = %proxy.addr(), members = members.len(), strategy = %opts.strategy, "lbsim proxy listening");
    let admin_state = Arc::new(AdminState {
        channel: sc.channels[0].channel.name.clone(),
        lb: Arc::clone(&lb),
        stats: Arc::clone(&stats),
        reloads: Arc::default(),
        draining: Default::default(),
    });
    let _admin = match opts.ops.admin {
        Some(at) => Some(
            Admin::start(at, Arc::clone(&admin_state))
                .await
                .map_err(|source| LiveError::Io { what: format!("admin server on {at}"), source })?,
        ),
        None => None,
    };

    let mut reloaded = None;
    let load = match opts.duration {
        Some(d) => {
            let mut plan = LoadPlan::new(sc.traffic.clone(), d, seed);
            plan.client_ip_header = header.clone();
            // Bounded: at most twice the scenario's mean rate over the run.
            plan.max_requests = ((sc.traffic.rate_rps * d.as_secs_f64() * 2.0).ceil() as u64).max(1);
            Some(loadgen::run(proxy.addr(), plan).await)
        }
        None => {
            let mut reloader = Reloader {
                path: opts.ops.scenario_path.clone(),
                lb: Arc::clone(&lb),
                upstreams: proxy_upstreams,
                addrs: upstreams,
                mapped: opts.backends.is_some(),
                seed,
                clock,
                stats: Arc::clone(&stats),
                reloads: Arc::clone(&admin_state.reloads),
                probe_opts: popts,
                started: Vec::new(),
            };
            if let Some(signals) = signals.as_mut() {
                let by = operate::until_drain(signals, &mut reloader, &mut prober).await;
                admin_state.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    signal = by,
                    grace_s = opts.ops.drain_timeout.as_secs_f64(),
                    "draining: finishing in-flight requests"
                );
            }
            reloaded = Some(reloader);
            None
        }
    };
    proxy.shutdown(if opts.duration.is_some() { Duration::from_secs(5) } else { opts.ops.drain_timeout }).await;
    if let Some(r) = reloaded {
        r.shutdown().await;
    }
    let events = prober.as_ref().map(|p| p.events()).unwrap_or_default();
    if let Some(p) = prober {
        p.shutdown().await;
    }
    // The prober's shutdown closes its event channel, which ends the tracker.
    let tracked = match tracker {
        Some(t) => tokio::time::timeout(Duration::from_secs(5), t).await.ok().and_then(Result::ok),
        None => None,
    };
    if let Some(b) = started {
        b.shutdown().await;
    }
    let run = LiveRun {
        sc,
        opts: &opts,
        seed,
        lb: &lb,
        stats: &stats,
        load,
        events: &events,
        probe_offset: probe_start - clock.start,
        elapsed: clock.start.elapsed().as_secs_f64(),
        tracked: tracked.unwrap_or_default(),
    };
    Ok(report(run))
}

/// The members' servers: loopback backends started from the scenario's plan, or the running
/// servers `--backends` maps them onto.
async fn upstreams(
    sc: &Scenario,
    opts: &LiveOptions,
    seed: u64,
    members: &[MemberId],
    clock: LiveClock,
) -> Result<(Option<Backends>, HashMap<MemberId, SocketAddr>), LiveError> {
    match &opts.backends {
        Some(map) => {
            let upstreams: HashMap<_, _> = map.iter().copied().collect();
            if let Some(missing) = members.iter().find(|m| !upstreams.contains_key(m)) {
                return Err(LiveError::Backends(format!(
                    "member {missing} is not mapped (give HOST:PORT=127.0.0.1:PORT for every member)"
                )));
            }
            Ok((None, upstreams))
        }
        None => {
            let b = backends::start(backends::plans(sc, seed), clock)
                .await
                .map_err(|source| LiveError::Io { what: "starting loopback backends".into(), source })?;
            let upstreams = b.addrs().into_iter().collect();
            Ok((Some(b), upstreams))
        }
    }
}

/// The proxy's configuration: the scenario's retries and request timeout, the client-address
/// header it trusts.
fn proxy_config(
    sc: &Scenario,
    opts: &LiveOptions,
    upstreams: HashMap<MemberId, SocketAddr>,
    header: Option<&str>,
) -> Result<ProxyConfig, LiveError> {
    let mut cfg = ProxyConfig::new(upstreams);
    cfg.header_read_timeout = opts.header_read_timeout;
    cfg.idle_timeout = opts.idle_timeout;
    cfg.retries = sc.traffic.retries;
    cfg.max_connections = opts.max_connections;
    cfg.workers = opts.workers;
    cfg.request_timeout = Duration::from_secs_f64(sc.traffic.request_timeout_ms / 1e3);
    cfg.client_ip_header = match header {
        Some(h) => Some(
            hyper::header::HeaderName::from_bytes(h.as_bytes())
                .map_err(|e| LiveError::Unsupported(format!("--client-ip-header `{h}`: {e}")))?,
        ),
        None => None,
    };
    Ok(cfg)
}

/// What the tracker saw: expected shares from each moment on, and the key space's moves.
#[derive(Default)]
struct Tracked {
    shares: Vec<(f64, Vec<(MemberId, f64)>)>,
    /// (buckets that ever moved, buckets back at the end, buckets).
    moves: (u64, u64, u64),
}

async fn track(
    lb: Arc<Balancer>,
    mut rx: tokio::sync::broadcast::Receiver<HealthEvent>,
    start: Instant,
    probe_start: Instant,
) -> Tracked {
    let offset = (probe_start - start).as_secs_f64();
    let shares = |lb: &Balancer| lb.members().iter().map(|m| (m.member.id(), m.expected_share)).collect::<Vec<_>>();
    let mut t = Tracked { shares: vec![(0.0, shares(&lb))], ..Default::default() };
    let mut moves = lb.key_space().map(KeyMoves::new);
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => break,
        };
        t.shares.push((offset + ev.at.as_secs_f64(), shares(&lb)));
        if let (Some(moves), Some(now)) = (moves.as_mut(), lb.key_space()) {
            moves.observe(&now);
            t.moves = moves.counts();
        }
    }
    t
}

/// Everything a live run leaves for its report.
struct LiveRun<'a> {
    sc: &'a Scenario,
    opts: &'a LiveOptions,
    seed: u64,
    lb: &'a Balancer,
    stats: &'a ProxyStats,
    load: Option<LoadResult>,
    events: &'a [HealthEvent],
    /// When the probes started, after the scenario's time 0.
    probe_offset: Duration,
    elapsed: f64,
    tracked: Tracked,
}

/// The live run's figures, assembled as the simulator's are.
fn report(run: LiveRun<'_>) -> Report {
    let LiveRun { sc, opts, lb, stats, .. } = run;
    let duration = opts.duration.map_or(run.elapsed, |d| d.as_secs_f64());
    let figures = stats.members();
    let members = member_runs(&run, &figures, duration);
    // Live counts a member's failed attempts over the whole run.
    let fault_failed = (0..sc.faults.len())
        .map(|i| figures.iter().filter(|f| sc.plan().hits(i, f.member)).map(|f| f.failed).sum())
        .collect();
    let proxied = stats.requests();
    let (requests, latency) = requests(run.load.as_ref(), &proxied);
    let hash_keys = run.load.as_ref().map_or(0, |l| {
        if opts.strategy == Strategy::SourceIp {
            l.distinct_clients
        } else {
            l.distinct_uris
        }
    });
    let total = requests.total;
    let figures_ref = &figures;
    let run_figures = RunFigures {
        mode: "live",
        strategy: opts.strategy,
        seed: run.seed,
        duration_s: duration,
        requests,
        latency,
        members,
        windows: figures.first().map_or(0, |f| f.timeline.len()),
        timeline: &|w, m| figures_ref[m].timeline[w],
        fault_failed,
        hash_keys,
        key_moves: run.tracked.moves,
        channel_requests: vec![total],
        failover: (None, None),
        failover_failed: 0,
        sim: None,
    };
    assemble(sc, std::slice::from_ref(lb), run_figures)
}

/// Each member's figures, with its health transitions from the probes' events.
fn member_runs(run: &LiveRun<'_>, figures: &[MemberFigures], duration: f64) -> Vec<MemberRun> {
    let (sc, lb) = (run.sc, run.lb);
    let expected = expected_shares(lb, &run.tracked, duration);
    let initial = match lb.check() {
        None => HealthState::Unknown,
        Some(_) if sc.balancer.initial_health == crate::balancer::InitialHealth::Unhealthy => HealthState::Unhealthy,
        Some(_) => HealthState::Healthy,
    };
    figures
        .iter()
        .map(|f| {
            let mut health = vec![(0.0, initial)];
            health.extend(
                run.events
                    .iter()
                    .filter(|e| e.member == f.member)
                    .map(|e| ((run.probe_offset + e.at).as_secs_f64(), e.state)),
            );
            MemberRun {
                id: f.member,
                channel: 0,
                attempts: f.attempts,
                latency: f.latency.as_ref().map(Latency::from_micros).unwrap_or_default(),
                peak_in_flight: f.peak_in_flight,
                health,
                expected_share: if duration > 0.0 {
                    expected.get(&f.member).copied().unwrap_or(0.0) / duration
                } else {
                    0.0
                },
            }
        })
        .collect()
}

/// The requests as the load generator saw them (with the proxy's reasons beside its own), or,
/// without it, as the proxy counted them; and their latency.
fn requests<'a>(load: Option<&'a LoadResult>, proxied: &'a RequestFigures) -> (Requests, Option<&'a Histogram<u64>>) {
    match load {
        Some(l) => {
            let mut by = l.failed_by_reason.clone();
            // The proxy knows why: refused, queue_full, ... (the client sees a 502/503/504).
            for (k, v) in &proxied.by_reason {
                by.insert(format!("proxy_{k}"), *v);
            }
            (
                Requests { total: l.sent, ok: l.ok, failed: l.failed, retried: proxied.retried, failed_by_reason: by },
                Some(&l.latency),
            )
        }
        None => (
            Requests {
                total: proxied.total,
                ok: proxied.ok,
                failed: proxied.failed,
                retried: proxied.retried,
                failed_by_reason: proxied.by_reason.clone(),
            },
            proxied.latency.as_ref(),
        ),
    }
}

/// Each member's expected share integrated over the run (share x seconds), from the shares in
/// force after each health transition.
fn expected_shares(lb: &Balancer, tracked: &Tracked, duration: f64) -> HashMap<MemberId, f64> {
    let mut expected: HashMap<MemberId, f64> = HashMap::new();
    let points = if tracked.shares.is_empty() {
        vec![(0.0, lb.members().iter().map(|m| (m.member.id(), m.expected_share)).collect())]
    } else {
        tracked.shares.clone()
    };
    for (i, (t0, shares)) in points.iter().enumerate() {
        let t1 = points.get(i + 1).map_or(duration, |p| p.0).min(duration);
        let dt = (t1 - t0.min(duration)).max(0.0);
        for (m, s) in shares {
            *expected.entry(*m).or_insert(0.0) += s * dt;
        }
    }
    expected
}
