//! One channel's live data plane: its balancer, a proxy listener on loopback, a loopback backend
//! per simulated member, and health probes.
//!
//! A member whose host is a loopback address is proxied to itself (`host:port`); any other
//! member is played by a loopback backend started for it (architecture.md §9), with its `[[backends]]`
//! behaviour when the server started from a scenario.
//!
//! A change ([`ChannelRuntime::apply`]) never drops a request: backends of new members start and
//! join the upstream map before the balancer can pick them; the balancer is then updated
//! (members that stay keep their health and in-flight counts); backends of removed members keep
//! serving for a grace period, so that requests already sent to them finish, and only then stop.
//! The probes are restarted over the new member set (health carries over in the balancer).
//!
//! A runtime is shared (`Arc`) and changed through `&self`: the API plans a change
//! ([`ChannelRuntime::plan`], a generation number) while it holds the registry, and applies it
//! after letting the registry go, so that rebuilding a large channel's data plane never holds up
//! other channels. Changes of one channel apply one at a time; a change whose generation is
//! older than the one applied is skipped (the newer one already contains it).

use crate::balancer::{MemberId, Options};
use crate::health::HealthState;
use crate::live::backends::{self, BackendPlan, Backends, LiveClock};
use crate::live::probe::{spawn_probes, ProbeHandle, ProbeOptions};
use crate::live::proxy::{Proxy, ProxyConfig, Upstreams};
use crate::live::stats::ProxyStats;
use crate::model::{ValidationErrors, VpcChannel};
use crate::sim::scenario::{member_ids, BackendSpec, FaultSpec};
use crate::sim::traffic::{mix_seed, ServiceTime};
use crate::Balancer;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every channel's data plane shares: the scenario's behaviour, or defaults.
#[derive(Debug, Clone)]
pub struct Env {
    pub options: Options,
    /// `[[backends]]`: speed, capacity and availability zone of simulated members.
    pub backends: Vec<BackendSpec>,
    pub service: ServiceTime,
    pub retries: u32,
    pub request_timeout: Duration,
    pub seed: u64,
    pub clock: LiveClock,
    /// How long a removed member's backend keeps serving requests already sent to it.
    pub retire_grace: Duration,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            options: Options::default(),
            backends: Vec::new(),
            service: ServiceTime::Fixed { value: 1.0 },
            retries: 0,
            request_timeout: Duration::from_secs(30),
            seed: 42,
            clock: LiveClock::now(),
            retire_grace: Duration::from_secs(5),
        }
    }
}

impl Env {
    /// The availability zone of a member, from `[[backends]]`.
    pub fn az(&self, id: MemberId) -> Option<&str> {
        self.backends.iter().find(|b| MemberId::parse(&b.member) == Some(id)).and_then(|b| b.az.as_deref())
    }

    fn plan(&self, id: MemberId) -> BackendPlan {
        let mut plan = BackendPlan::new(
            id,
            self.service.clone(),
            mix_seed(self.seed, xxhash_rust::xxh3::xxh3_64(id.to_string().as_bytes())),
        );
        if let Some(spec) = self.backends.iter().find(|b| MemberId::parse(&b.member) == Some(id)) {
            plan.spec = spec.clone();
        }
        plan
    }
}

/// A running channel.
pub struct ChannelRuntime {
    lb: Arc<Balancer>,
    proxy: Mutex<Option<Proxy>>,
    listen: SocketAddr,
    /// What the channel's proxy has counted (per member too).
    stats: Arc<ProxyStats>,
    upstreams: Upstreams,
    /// The loopback backends of simulated members.
    backends: Mutex<BTreeMap<MemberId, Backends>>,
    env: Arc<Env>,
    /// The last generation handed out by [`ChannelRuntime::plan`].
    planned: AtomicU64,
    /// The last generation applied (or that failed to apply), and who waits for it.
    done: AtomicU64,
    settled: tokio::sync::Notify,
    /// Held while a change applies: the generation applied, where members are served, probes.
    applied: tokio::sync::Mutex<Applied>,
}

struct Applied {
    generation: u64,
    /// Where each member is served now (loopback members: themselves).
    addrs: HashMap<MemberId, SocketAddr>,
    probes: Option<ProbeHandle>,
}

/// Why a channel's data plane could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn loopback_addr(id: MemberId) -> Option<SocketAddr> {
    let ip: IpAddr = id.host().parse().ok()?;
    ip.is_loopback().then(|| SocketAddr::new(ip, id.port()))
}

impl ChannelRuntime {
    /// Builds the balancer, starts the members' backends, the proxy (on an ephemeral loopback
    /// port) and the probes.
    pub async fn start(channel: &VpcChannel, env: Arc<Env>) -> Result<ChannelRuntime, DataPlaneError> {
        let lb = Arc::new(Balancer::builder(channel).options(env.options.clone()).build()?);
        let upstreams = Upstreams::default();
        let stats = Arc::new(ProxyStats::new(&member_ids(channel), Instant::now(), 1.0, 1));
        let mut cfg = ProxyConfig::new(HashMap::new());
        cfg.upstreams = upstreams.clone();
        cfg.retries = env.retries;
        cfg.request_timeout = env.request_timeout;
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let proxy = Proxy::start(Arc::clone(&lb), cfg, listen, Arc::clone(&stats))
            .await
            .map_err(|source| DataPlaneError::Io { what: "starting the channel's proxy".into(), source })?;
        let rt = ChannelRuntime {
            lb,
            listen: proxy.addr(),
            stats,
            proxy: Mutex::new(Some(proxy)),
            upstreams,
            backends: Mutex::new(BTreeMap::new()),
            env,
            planned: AtomicU64::new(0),
            done: AtomicU64::new(0),
            settled: tokio::sync::Notify::new(),
            applied: tokio::sync::Mutex::new(Applied { generation: 0, addrs: HashMap::new(), probes: None }),
        };
        {
            let mut applied = rt.applied.lock().await;
            if let Err(e) = rt.start_backends(channel, &mut applied.addrs).await {
                drop(applied);
                rt.shutdown().await;
                return Err(e);
            }
            rt.upstreams.store(applied.addrs.clone());
            rt.restart_probes(&mut applied).await;
        }
        Ok(rt)
    }

    /// Starts a backend for each simulated member that has none yet.
    async fn start_backends(
        &self,
        channel: &VpcChannel,
        addrs: &mut HashMap<MemberId, SocketAddr>,
    ) -> Result<(), DataPlaneError> {
        for id in member_ids(channel) {
            if let Some(addr) = loopback_addr(id) {
                addrs.insert(id, addr);
            } else if !self.backends.lock().contains_key(&id) {
                let b = backends::start(vec![self.env.plan(id)], self.env.clock)
                    .await
                    .map_err(|source| DataPlaneError::Io { what: format!("starting the backend of {id}"), source })?;
                if let Some(addr) = b.addr(id) {
                    addrs.insert(id, addr);
                }
                self.backends.lock().insert(id, b);
            }
        }
        Ok(())
    }

    async fn restart_probes(&self, applied: &mut Applied) {
        if let Some(p) = applied.probes.take() {
            p.shutdown().await;
        }
        applied.probes = self.lb.check().map(|check| {
            let targets = self
                .lb
                .members()
                .iter()
                .filter_map(|m| applied.addrs.get(&m.member.id()).map(|a| (m.member.id(), *a)))
                .collect();
            let opts = ProbeOptions {
                seed: self.env.seed,
                tls: None,
                interval_override: None,
                policy: self.env.options.check_policy(),
            };
            spawn_probes(Arc::clone(&self.lb), check, targets, opts)
        });
    }

    /// The generation of the next change; call it in the order changes are made.
    pub fn plan(&self) -> u64 {
        self.planned.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Makes `channel` (the configuration of change `generation`) the running one without
    /// dropping requests (see the module doc); nothing to do when a later change already applied.
    pub async fn apply(&self, generation: u64, channel: &VpcChannel) -> Result<(), DataPlaneError> {
        let mut applied = self.applied.lock().await;
        if applied.generation >= generation {
            return Ok(());
        }
        let result = self.apply_locked(&mut applied, channel).await;
        // A change that failed is done too: the next one applies the whole configuration again.
        applied.generation = generation;
        self.done.fetch_max(generation, Ordering::AcqRel);
        self.settled.notify_waiters();
        result
    }

    /// Whether every planned change has been applied.
    pub fn is_settled(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.planned.load(Ordering::Acquire)
    }

    /// Waits until every change planned so far has been applied.
    pub async fn settled(&self) {
        let target = self.planned.load(Ordering::Acquire);
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.done.load(Ordering::Acquire) >= target {
                return;
            }
            notified.await;
        }
    }

    async fn apply_locked(&self, applied: &mut Applied, channel: &VpcChannel) -> Result<(), DataPlaneError> {
        self.start_backends(channel, &mut applied.addrs).await?;
        // Removed members stay in the map (pointing at their retiring backend, or nowhere once it
        // stops): the balancer no longer picks them, and a request that already did still finds
        // its address.
        self.upstreams.store(applied.addrs.clone());
        self.stats.add_members(&member_ids(channel));
        self.lb.update(channel)?;
        let keep: HashSet<MemberId> = member_ids(channel).into_iter().collect();
        let gone: Vec<Backends> = {
            let mut backends = self.backends.lock();
            let ids: Vec<MemberId> = backends.keys().copied().filter(|id| !keep.contains(id)).collect();
            ids.iter().filter_map(|id| backends.remove(id)).collect()
        };
        for b in gone {
            let grace = self.env.retire_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                b.shutdown().await;
            });
        }
        self.restart_probes(applied).await;
        Ok(())
    }

    /// Holds the data plane as a change in progress would (tests of what does not wait for it).
    #[cfg(test)]
    pub(crate) async fn hold_apply(&self) -> impl Sized + '_ {
        self.applied.lock().await
    }

    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.lb
    }

    /// What the channel's proxy has counted (per member too).
    pub fn stats(&self) -> &Arc<ProxyStats> {
        &self.stats
    }

    /// The loopback address the channel's proxy listens on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where a member's traffic goes: its loopback backend, or itself.
    pub fn upstream(&self, id: MemberId) -> Option<SocketAddr> {
        self.upstreams.get(id)
    }

    /// Whether a loopback backend plays the member (fault injection needs one).
    pub fn has_backend(&self, id: MemberId) -> bool {
        self.backends.lock().contains_key(&id)
    }

    pub fn health(&self, id: MemberId) -> HealthState {
        self.lb.health().state(id).unwrap_or(HealthState::Unknown)
    }

    /// Injects a fault into a simulated member's backend; false when it has none.
    pub fn inject(&self, id: MemberId, fault: &FaultSpec) -> bool {
        self.backends.lock().get(&id).is_some_and(|b| b.inject(id, fault))
    }

    pub fn clear_faults(&self, id: MemberId) -> bool {
        self.backends.lock().get(&id).is_some_and(|b| b.clear_injected(id))
    }

    /// Stops the proxy (letting in-flight requests finish), the probes and the backends.
    pub async fn shutdown(&self) {
        let probes = self.applied.lock().await.probes.take();
        if let Some(p) = probes {
            p.shutdown().await;
        }
        let proxy = self.proxy.lock().take();
        if let Some(proxy) = proxy {
            proxy.shutdown(Duration::from_secs(5)).await;
        }
        let backends = std::mem::take(&mut *self.backends.lock());
        for (_, b) in backends {
            b.shutdown().await;
        }
    }
}
