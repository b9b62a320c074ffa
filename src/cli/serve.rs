//! `lbsim serve`: the control API (architecture.md §6, §9) until Ctrl-C.

use super::live::{logging, runtime};
use super::{load, Failure};
use crate::control::auth::{Auth, KeyPair, Scope, Token};
use crate::control::dataplane::Env;
use crate::control::{ServeConfig, Server};
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
    /// Seconds an SDRS job (create, failover, delete) takes.
    #[arg(long, default_value_t = 1.0)]
    job_duration: f64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Log level on stderr: error, warn, info, debug, trace (or a tracing filter).
    #[arg(long, default_value = "info")]
    log_level: String,
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
    logging(&args.log_level);
    runtime(args.workers)?.block_on(async move {
        let server = Server::start(cfg).await.map_err(|e| Failure::Runtime(e.to_string()))?;
        eprintln!("lbsim serve: API on http://{} (OpenAPI at /openapi.json)", server.addr());
        // A state file that already holds channels wins over the scenario's.
        let restored = server.channel_count().await;
        if restored > 0 {
            eprintln!("lbsim serve: {restored} channel(s) restored from the state file");
        }
        if let Some(sc) = scenario.as_ref().filter(|_| restored == 0) {
            let channels: Vec<_> = sc.channels.iter().map(|c| c.channel.clone()).collect();
            server
                .load_channels(&project, &channels)
                .await
                .map_err(|e| Failure::Input(format!("scenario channels: {}", e.message)))?;
            eprintln!(
                "lbsim serve: {} channel(s) from the scenario in project `{project}`; ports at /lbsim/channels",
                channels.len()
            );
        }
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("lbsim serve: shutting down");
        server.shutdown().await;
        Ok(())
    })
}
