//! `lbsim serve`: the control API (architecture.md §6, §9) until Ctrl-C.

use super::live::{logging, runtime};
use super::{load, Failure};
use crate::control::auth::{Auth, KeyPair, Scope, Token};
use crate::control::dataplane::Env;
use crate::control::{Limits, Quotas, ServeConfig, ServeError, Server};
use crate::live::operate::{Ask, Signals};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The project of a scenario's channels when no token names one.
const DEFAULT_PROJECT: &str = "lbsim";

#[derive(Args)]
pub(super) struct ServeArgs {
    /// Loopback address of the API (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Start with the scenario's channels (in the first `T@PROJECT` token's project, else
    /// `lbsim`), its members' behaviour and availability zones (`[[backends]]`), service times,
    /// retries and `[balancer]` options.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Accepted token (`X-Auth-Token`, or ZStack's `Authorization: OAuth`); `T@PROJECT` limits it
    /// to one project. Repeatable. Default: $LBSIM_TOKEN.
    #[arg(long)]
    token: Vec<String>,
    /// Access key accepted in AK/SK-signed requests (`SDK-HMAC-SHA256`, as the cloud's SDKs
    /// sign); with --sk.
    #[arg(long, requires = "sk")]
    ak: Option<String>,
    /// Secret key of --ak.
    #[arg(long, requires = "ak")]
    sk: Option<String>,
    /// Durable state file: every acknowledged change is written to it before the answer, and
    /// the server starts from it.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Seconds a client has to send a request's headers, from connecting or from its previous
    /// answer; an idle connection is closed after it.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a client has to send a request's body once its headers are in (408 after).
    #[arg(long, default_value_t = 30.0)]
    body_timeout: f64,
    /// Connections served at once; as many again are answered 503, more are closed at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// VPC channels one project may have (ROMA Connect's documented quota: 200).
    #[arg(long, default_value_t = 200)]
    quota_channels: usize,
    /// Members one VPC channel may have.
    #[arg(long, default_value_t = 200)]
    quota_members: usize,
    /// Members all of one project's VPC channels may have together (each simulated member is a
    /// loopback listener: this bounds the descriptors one project can take).
    #[arg(long, default_value_t = 1000)]
    quota_project_members: usize,
    /// Seconds an SDRS job (create, failover, delete) takes.
    #[arg(long, default_value_t = 1.0)]
    job_duration: f64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Log level on stderr: error, warn, info, debug, trace (or a tracing filter).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log lines on stderr: text (no colours unless stderr is a terminal and NO_COLOR is unset)
    /// or json (one object per line).
    #[arg(long, default_value = "text")]
    log_format: crate::live::logging::LogFormat,
}

pub(super) fn serve(args: ServeArgs) -> Result<(), Failure> {
    if !args.listen.ip().is_loopback() {
        return Err(Failure::Input(format!(
            "--listen {}: serve listens on loopback only (127.0.0.1 or ::1)",
            args.listen
        )));
    }
    if !(args.job_duration >= 0.0 && args.job_duration <= 3600.0) {
        return Err(Failure::Input(format!("--job-duration must be within 0-3600 seconds, got {}", args.job_duration)));
    }
    let seconds = |flag: &str, v: f64| {
        if v > 0.0 && v <= 3600.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(Failure::Input(format!("--{flag} must be within 0-3600 seconds (not 0), got {v}")))
        }
    };
    let limits = Limits {
        header_timeout: seconds("header-timeout", args.header_timeout)?,
        body_timeout: seconds("body-timeout", args.body_timeout)?,
        max_connections: args.max_connections,
    };
    if limits.max_connections == 0 {
        return Err(Failure::Input("--max-connections must be at least 1".into()));
    }
    let mut raw = args.token.clone();
    if raw.is_empty() {
        raw.extend(std::env::var("LBSIM_TOKEN").ok().filter(|t| !t.is_empty()));
    }
    let aksk = match (&args.ak, &args.sk) {
        (Some(ak), Some(sk)) if !ak.is_empty() && !sk.is_empty() => Some(KeyPair { ak: ak.clone(), sk: sk.clone() }),
        (None, None) => None,
        _ => return Err(Failure::Input("--ak and --sk must both be given, and not empty".into())),
    };
    if raw.is_empty() && aksk.is_none() {
        return Err(Failure::Input(
            "serve needs a credential: --token T[@PROJECT] (or LBSIM_TOKEN), or --ak and --sk".into(),
        ));
    }
    let tokens = raw
        .iter()
        .map(|t| Token::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Input(format!("--token: {e}")))?;
    for (i, t) in tokens.iter().enumerate() {
        if let Scope::Project(p) = &t.scope {
            eprintln!("lbsim serve: token {} may touch project `{p}` only (write `\\@` for an `@` of a secret)", i + 1);
        }
    }
    let project = tokens
        .iter()
        .find_map(|t| match &t.scope {
            Scope::Project(p) => Some(p.clone()),
            Scope::All => None,
        })
        .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
    let scenario = args.scenario.as_deref().map(load).transpose()?;
    let mut cfg = ServeConfig::new(args.listen, Auth { tokens, aksk });
    cfg.state = args.state.clone();
    let state_path = args.state.clone();
    cfg.limits = limits;
    cfg.quotas = Quotas {
        channels: args.quota_channels,
        members: args.quota_members,
        project_members: args.quota_project_members,
    };
    cfg.job_duration = Duration::from_secs_f64(args.job_duration);
    if let Some(sc) = &scenario {
        cfg.env = Env {
            options: sc.balancer.clone(),
            backends: sc.backends.clone(),
            service: sc.traffic.service_time_ms.clone(),
            retries: sc.traffic.retries,
            request_timeout: Duration::from_secs_f64(sc.traffic.request_timeout_ms / 1e3),
            seed: sc.seed,
            ..Env::default()
        };
    }
    logging(&args.log_level, args.log_format);
    // Announcements: plain lines on stderr, or log lines when every line must be JSON.
    let json = args.log_format == crate::live::logging::LogFormat::Json;
    let say = move |msg: String| {
        if json {
            tracing::info!("{msg}");
        } else {
            eprintln!("lbsim serve: {msg}");
        }
    };
    runtime(args.workers)?.block_on(async move {
        // Caught before the API listens: SIGTERM and SIGINT drain, SIGHUP is logged.
        let mut signals = Signals::new().map_err(|e| Failure::Runtime(format!("catching signals: {e}")))?;
        let server = Server::start(cfg).await.map_err(|e| match e {
            ServeError::Damaged(_) => Failure::Input(e.to_string()),
            e => Failure::Runtime(e.to_string()),
        })?;
        if server.started_on_empty_state() {
            let path = state_path.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
            say(format!("warning: state file {path} was empty; starting with an empty state in it"));
        }
        say(format!("API on http://{} (OpenAPI at /openapi.json)", server.addr()));
        // A state file that already holds channels wins over the scenario's.
        let restored = server.channel_count().await;
        if restored > 0 {
            say(format!("{restored} channel(s) restored from the state file"));
        }
        if let Some(sc) = scenario.as_ref().filter(|_| restored == 0) {
            let channels: Vec<_> = sc.channels.iter().map(|c| c.channel.clone()).collect();
            server
                .load_channels(&project, &channels)
                .await
                .map_err(|e| Failure::Input(format!("scenario channels: {}", e.message)))?;
            say(format!(
                "{} channel(s) from the scenario in project `{project}`; ports at /lbsim/channels",
                channels.len()
            ));
        }
        let by = loop {
            match signals.next().await {
                Ask::Drain(by) => break by,
                Ask::Reload => {
                    tracing::warn!("SIGHUP ignored: serve's configuration changes through its API")
                }
            }
        };
        tracing::info!(signal = by, "draining: finishing in-flight requests");
        server.shutdown().await;
        Ok(())
    })
}
