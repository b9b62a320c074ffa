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
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    proxy: Proxy,
    upstreams: Upstreams,
    /// Where each member is served now (loopback members: themselves).
    addrs: HashMap<MemberId, SocketAddr>,
    backends: BTreeMap<MemberId, Backends>,
    probes: Option<ProbeHandle>,
    env: Arc<Env>,
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
        let stats = Arc::new(ProxyStats::new(&[], Instant::now(), 1.0, 1));
        let mut cfg = ProxyConfig::new(HashMap::new());
        cfg.upstreams = upstreams.clone();
        cfg.retries = env.retries;
        cfg.request_timeout = env.request_timeout;
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let proxy = Proxy::start(Arc::clone(&lb), cfg, listen, stats)
            .await
            .map_err(|source| DataPlaneError::Io { what: "starting the channel's proxy".into(), source })?;
        let mut rt = ChannelRuntime {
            lb,
            proxy,
            upstreams,
            addrs: HashMap::new(),
            backends: BTreeMap::new(),
            probes: None,
            env,
        };
        rt.start_backends(channel).await?;
        rt.upstreams.store(rt.addrs.clone());
        rt.restart_probes().await;
        Ok(rt)
    }

    /// Starts a backend for each simulated member that has none yet.
    async fn start_backends(&mut self, channel: &VpcChannel) -> Result<(), DataPlaneError> {
        for id in member_ids(channel) {
            if let Some(addr) = loopback_addr(id) {
                self.addrs.insert(id, addr);
            } else if !self.backends.contains_key(&id) {
                let b = backends::start(vec![self.env.plan(id)], self.env.clock)
                    .await
                    .map_err(|source| DataPlaneError::Io { what: format!("starting the backend of {id}"), source })?;
                if let Some(addr) = b.addr(id) {
                    self.addrs.insert(id, addr);
                }
                self.backends.insert(id, b);
            }
        }
        Ok(())
    }

    async fn restart_probes(&mut self) {
        if let Some(p) = self.probes.take() {
            p.shutdown().await;
        }
        self.probes = self.lb.check().map(|check| {
            let targets = self
                .lb
                .members()
                .iter()
                .filter_map(|m| self.addrs.get(&m.member.id()).map(|a| (m.member.id(), *a)))
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

    /// Makes `channel` the running configuration without dropping requests (see the module doc).
    pub async fn apply(&mut self, channel: &VpcChannel) -> Result<(), DataPlaneError> {
        self.start_backends(channel).await?;
        // Removed members stay in the map (pointing at their retiring backend, or nowhere once it
        // stops): the balancer no longer picks them, and a request that already did still finds
        // its address.
        self.upstreams.store(self.addrs.clone());
        self.lb.update(channel)?;
        let keep = member_ids(channel);
        let gone: Vec<MemberId> = self.backends.keys().copied().filter(|id| !keep.contains(id)).collect();
        for id in gone {
            if let Some(b) = self.backends.remove(&id) {
                let grace = self.env.retire_grace;
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    b.shutdown().await;
                });
            }
        }
        self.restart_probes().await;
        Ok(())
    }

    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.lb
    }

    /// The loopback address the channel's proxy listens on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// Where a member's traffic goes: its loopback backend, or itself.
    pub fn upstream(&self, id: MemberId) -> Option<SocketAddr> {
        self.addrs.get(&id).copied()
    }

    /// Whether a loopback backend plays the member (fault injection needs one).
    pub fn has_backend(&self, id: MemberId) -> bool {
        self.backends.contains_key(&id)
    }

    pub fn health(&self, id: MemberId) -> HealthState {
        self.lb.health().state(id).unwrap_or(HealthState::Unknown)
    }

    /// Injects a fault into a simulated member's backend; false when it has none.
    pub fn inject(&self, id: MemberId, fault: &FaultSpec) -> bool {
        self.backends.get(&id).is_some_and(|b| b.inject(id, fault))
    }

    pub fn clear_faults(&self, id: MemberId) -> bool {
        self.backends.get(&id).is_some_and(|b| b.clear_injected(id))
    }

    /// Stops the proxy (letting in-flight requests finish), the probes and the backends.
    pub async fn shutdown(mut self) {
        if let Some(p) = self.probes.take() {
            p.shutdown().await;
        }
        self.proxy.shutdown(Duration::from_secs(5)).await;
        for (_, b) in std::mem::take(&mut self.backends) {
            b.shutdown().await;
        }
    }
}
