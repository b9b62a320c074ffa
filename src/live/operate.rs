//! Operating a serving proxy: signals (SIGTERM and SIGINT drain, SIGHUP reloads the scenario's
//! channel), and what a reload does.
//!
//! A reload reads the scenario file again and validates it whole before anything changes; a file
//! that does not load, has other than one `[channel]`, or names a member with no loopback server
//! (with `--backends`) is logged and the running configuration kept. Otherwise, as a control-API
//! update does: new members' loopback backends start and join the upstream map first, then
//! `Balancer::update` swaps the configuration (members that stay keep their health and in-flight
//! counts), then the probes restart over the new member set when it or the check changed.
//! Requests in flight keep their member and address.

use super::backends::{self, Backends, LiveClock};
use super::metrics::Reloads;
use super::probe::{spawn_probes, ProbeHandle, ProbeOptions};
use super::proxy::Upstreams;
use super::stats::ProxyStats;
use crate::balancer::MemberId;
use crate::model::Validate;
use crate::sim::scenario::member_ids;
use crate::sim::Scenario;
use crate::Balancer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How a serving proxy is operated (`lbsim proxy` without `--duration`).
#[derive(Debug, Clone)]
pub struct Operations {
    /// Serve `/metrics` and `/healthz` here (loopback).
    pub admin: Option<SocketAddr>,
    /// The scenario file SIGHUP reloads; `None`: SIGHUP is logged and ignored.
    pub scenario_path: Option<PathBuf>,
    /// How long a drain waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for Operations {
    fn default() -> Operations {
        Operations { admin: None, scenario_path: None, drain_timeout: Duration::from_secs(10) }
    }
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit 0.
    Drain(&'static str),
    /// SIGHUP.
    Reload,
}

/// The process's SIGTERM, SIGINT and SIGHUP, caught from when this is made (their default
/// actions, which end the process at once, no longer apply).
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Must be called within a tokio runtime.
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> Ask {
        tokio::select! {
            _ = self.term.recv() => Ask::Drain("SIGTERM"),
            _ = self.int.recv() => Ask::Drain("SIGINT"),
            _ = self.hup.recv() => Ask::Reload,
        }
    }
}

/// Why a reload kept the running configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no scenario file to reload")]
    NoFile,
    #[error("{0}")]
    Load(#[from] crate::sim::LoadError),
    #[error("live mode runs scenarios with one [channel]; the file has {0}")]
    Channels(usize),
    #[error("the channel is invalid: {0}")]
    Invalid(#[from] crate::model::ValidationErrors),
    #[error("member {0} is not mapped in --backends")]
    Unmapped(MemberId),
    #[error("starting the loopback backend of {member}: {source}")]
    Backend { member: MemberId, source: std::io::Error },
}

/// What a reload changes, and keeps for the next one.
pub struct Reloader {
    pub path: Option<PathBuf>,
    pub lb: Arc<Balancer>,
    pub upstreams: Upstreams,
    /// Where each member is served now.
    pub addrs: HashMap<MemberId, SocketAddr>,
    /// Members are mapped onto running servers (`--backends`): a new member must be mapped too.
    pub mapped: bool,
    pub seed: u64,
    pub clock: LiveClock,
    pub stats: Arc<ProxyStats>,
    pub reloads: Arc<Reloads>,
    pub probe_opts: ProbeOptions,
    /// Backends started for members added by reloads (stopped with [`Reloader::shutdown`]).
    pub started: Vec<Backends>,
}

impl Reloader {
    /// Reads the file again and applies it (see the module doc); returns the new member count.
    pub async fn reload(&mut self, prober: &mut Option<ProbeHandle>) -> Result<usize, ReloadError> {
        let path = self.path.clone().ok_or(ReloadError::NoFile)?;
        let sc = Scenario::load(&path)?;
        if sc.channels.len() != 1 {
            return Err(ReloadError::Channels(sc.channels.len()));
        }
        let channel = &sc.channels[0].channel;
        channel.validate().into_result()?;
        let ids = member_ids(channel);
        let new: Vec<MemberId> = ids.iter().copied().filter(|id| !self.addrs.contains_key(id)).collect();
        if self.mapped {
            if let Some(m) = new.first() {
                return Err(ReloadError::Unmapped(*m));
            }
        } else if !new.is_empty() {
            let plans = backends::plans(&sc, self.seed).into_iter().filter(|p| new.contains(&p.member)).collect();
            let b = backends::start(plans, self.clock)
                .await
                .map_err(|source| ReloadError::Backend { member: new[0], source })?;
            self.addrs.extend(b.addrs());
            self.started.push(b);
        }
        let check_before = self.lb.check();
        let members_before: Vec<MemberId> = self.lb.members().iter().map(|m| m.member.id()).collect();
        self.stats.add_members(&ids);
        self.upstreams.store(self.addrs.clone());
        self.lb.update(channel)?;
        if self.lb.check() != check_before || members_before != ids {
            if let Some(p) = prober.take() {
                p.shutdown().await;
            }
            *prober = self.lb.check().map(|check| {
                let targets = ids.iter().filter_map(|m| self.addrs.get(m).map(|a| (*m, *a))).collect();
                let mut opts = self.probe_opts.clone();
                opts.policy = sc.balancer.check_policy();
                spawn_probes(Arc::clone(&self.lb), check, targets, opts)
            });
        }
        Ok(ids.len())
    }

    pub async fn shutdown(self) {
        for b in self.started {
            b.shutdown().await;
        }
    }
}

/// Serves until SIGTERM or SIGINT, reloading on SIGHUP. Returns the signal that ended it.
pub async fn until_drain(
    signals: &mut Signals,
    reloader: &mut Reloader,
    prober: &mut Option<ProbeHandle>,
) -> &'static str {
    let file = reloader.path.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
    loop {
        match signals.next().await {
            Ask::Drain(name) => return name,
            Ask::Reload => match reloader.reload(prober).await {
                Ok(members) => {
                    reloader.reloads.ok.fetch_add(1, Relaxed);
                    tracing::info!(%file, members, "configuration reloaded");
                }
                Err(e) => {
                    reloader.reloads.failed.fetch_add(1, Relaxed);
                    tracing::error!(%file, error = %e, "reload failed; the running configuration is kept");
                }
            },
        }
    }
}
