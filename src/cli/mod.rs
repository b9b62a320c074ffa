//! The command-line interface (architecture.md §6). Exit codes: 0 ok, 2 invalid input, 1 runtime failure.

use crate::balancer::Strategy;
use crate::report::{render_comparison, render_run, OutputFormat, Report};
use crate::sim::{self, RunOptions, Scenario};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod explain;
mod sweep;

#[derive(Parser)]
#[command(
    name = "lbsim",
    version,
    about = concat!(
        "Load-balancing data plane and deterministic simulator for the ROMA Connect / APIG VPC channel, ",
        "ZStack server group, GA endpoint group and SDRS protection group APIs"
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a scenario under one strategy (default: the channel's balance_strategy).
    Run(RunArgs),
    /// Simulate the same scenario under each strategy and show them side by side.
    Compare(RunArgs),
    /// Run a scenario live on loopback: a backend per member, real health probes, the reverse
    /// proxy and, with --duration, the load generator; then report as `run` does.
    #[cfg(feature = "live")]
    Proxy(ProxyArgs),
    /// Why a request goes where it goes at a simulated moment: the eligible set, why each other
    /// member is excluded, and the strategy's decision (hash strategies: the key's preference order).
    Explain(explain::ExplainArgs),
    /// Run a grid of variants of a scenario (--vary FIELD=FROM..TO:POINTS or =A,B,C) under each
    /// strategy, in parallel, and report the chosen metrics against the varied parameters.
    Sweep(sweep::SweepArgs),
    /// The cloud APIs' REST endpoints (ROMA VPC channels, ZStack, GA, SDRS) over the live data
    /// plane, on loopback, until Ctrl-C.
    #[cfg(feature = "live")]
    Serve(serve::ServeArgs),
    /// Check a scenario file and print every problem at once (exit 2 when there are any).
    Validate {
        /// Scenario file (.toml or .json).
        scenario: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Scenario file (.toml or .json).
    scenario: PathBuf,
    /// Strategy: wrr, wlc, sh, uri (or 1-4). `compare` accepts a comma-separated list.
    #[arg(long, value_delimiter = ',')]
    strategy: Vec<Strategy>,
    /// Seed of the random streams (default: the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Simulated seconds (default: the scenario's `duration_s`).
    #[arg(long)]
    duration: Option<f64>,
    /// Output format.
    #[arg(long, default_value = "table")]
    format: OutputFormat,
    /// Write the report here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write one JSON line per attempt here (`run` only; with `compare`, one file per strategy:
    /// PATH gets the strategy name before its extension).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Leave the wall-clock figures (`sim.wall_ms`, `sim.requests_per_s`) out of the report, so
    /// that the same scenario and seed give byte-identical output.
    #[arg(long)]
    deterministic: bool,
    /// `compare` only: also run each strategy live on loopback (`--duration` or the scenario's
    /// `duration_s` of real time per strategy) and put the runs side by side.
    #[cfg(feature = "live")]
    #[arg(long)]
    live: bool,
}

#[cfg(feature = "live")]
#[derive(Args)]
struct ProxyArgs {
    /// Scenario file (.toml or .json) with one [channel].
    scenario: PathBuf,
    /// Loopback address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Drive the scenario's traffic through the proxy for this many seconds, then report. Without
    /// it, serve until Ctrl-C.
    #[arg(long)]
    duration: Option<f64>,
    /// Strategy (default: the channel's balance_strategy).
    #[arg(long)]
    strategy: Option<Strategy>,
    #[arg(long, default_value = "table")]
    format: OutputFormat,
    #[arg(long)]
    out: Option<PathBuf>,
    /// Map members onto running loopback servers instead of starting backends:
    /// `HOST:PORT=127.0.0.1:PORT,...` (every member of the channel).
    #[arg(long)]
    backends: Option<String>,
    /// Trust this request header for the client's address (source-IP hashing only; loopback
    /// has one address). With --duration the load generator sends `x-lbsim-client-ip` unless
    /// this names another.
    #[arg(long)]
    client_ip_header: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Client connections the proxy serves at once; connections over it get 503 and are closed.
    #[arg(long, default_value_t = crate::live::proxy::DEFAULT_MAX_CONNECTIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Log level on stderr: error, warn, info, debug, trace (or a tracing filter).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// HTTPS checks verify member certificates against this PEM bundle (default: no verification,
    /// as the cloud's checks do).
    #[arg(long)]
    probe_ca: Option<PathBuf>,
    /// Client certificate (PEM) for checks with `enable_client_ssl`.
    #[arg(long, requires = "probe_client_key")]
    probe_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "probe_client_cert")]
    probe_client_key: Option<PathBuf>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    /// Bad input: exit 2.
    Input(String),
    /// The run itself failed: exit 1.
    Runtime(String),
}

fn load(path: &Path) -> Result<Scenario, Failure> {
    Scenario::load(path).map_err(|e| match e {
        sim::LoadError::Io { .. } => Failure::Input(e.to_string()),
        sim::LoadError::Invalid { .. } => Failure::Input(e.to_string()),
    })
}

fn dispatch(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::Validate { scenario } => {
            let sc = load(&scenario)?;
            let members: usize = sc.channels.iter().map(|c| c.channel.members.len()).sum();
            println!(
                "{}: ok ({} channel(s), {members} member(s), {} fault(s), {} change(s))",
                scenario.display(),
                sc.channels.len(),
                sc.faults.len(),
                sc.changes.len()
            );
            Ok(())
        }
        Command::Run(args) => {
            let sc = load(&args.scenario)?;
            let strategy = match args.strategy.as_slice() {
                [] => sc
                    .channels
                    .first()
                    .and_then(|c| Strategy::from_code(c.channel.balance_strategy))
                    .unwrap_or(Strategy::Wrr),
                [one] => *one,
                _ => return Err(Failure::Input("`run` takes one --strategy; use `compare` for several".into())),
            };
            let report = run_one(&sc, &args, strategy, args.trace.clone())?;
            emit(&args, render_run(&report, args.format))
        }
        #[cfg(feature = "live")]
        Command::Proxy(args) => live::proxy(args),
        Command::Explain(args) => explain::explain(args),
        Command::Sweep(args) => sweep::sweep(args),
        #[cfg(feature = "live")]
        Command::Serve(args) => serve::serve(args),
        Command::Compare(args) => {
            let sc = load(&args.scenario)?;
            let strategies = if args.strategy.is_empty() { sc.strategies.clone() } else { args.strategy.clone() };
            let mut runs = Vec::with_capacity(strategies.len());
            for s in strategies {
                let trace = args.trace.as_ref().map(|p| with_suffix(p, s.name()));
                runs.push(run_one(&sc, &args, s, trace)?);
                #[cfg(feature = "live")]
                if args.live {
                    let d = args.duration.unwrap_or(sc.duration_s);
                    runs.push(live::compare_run(&sc, s, d, args.seed)?);
                }
            }
            emit(&args, render_comparison(&runs, args.format))
        }
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match p.extension() {
        Some(ext) => format!("{stem}.{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{suffix}"),
    };
    p.with_file_name(name)
}

fn run_one(sc: &Scenario, args: &RunArgs, strategy: Strategy, trace: Option<PathBuf>) -> Result<Report, Failure> {
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            return Err(Failure::Input(format!("--duration must be above 0, got {d}")));
        }
    }
    let mut trace_file = match &trace {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Failure::Runtime(format!("{}: {e}", p.display())))?,
        )),
        None => None,
    };
    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>4} [{bar:40}] {percent:>3}% simulated, {elapsed} elapsed")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(strategy.name());
    let started = Instant::now();
    let mut shown = false;
    let mut progress = |f: f64| {
        // Only runs that take longer than a second get a bar (on stderr, never on stdout).
        if !shown && started.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_position((f * 1000.0) as u64);
    };
    let mut opts = RunOptions::new(strategy);
    opts.seed = args.seed;
    opts.duration_s = args.duration;
    opts.deterministic = args.deterministic;
    opts.trace = trace_file.as_mut().map(|w| w as &mut dyn Write);
    opts.progress = Some(&mut progress);
    let report = sim::run(sc, opts).map_err(|e| Failure::Runtime(format!("{}: {e}", args.scenario.display())))?;
    bar.finish_and_clear();
    if let Some(mut w) = trace_file {
        w.flush().map_err(|e| Failure::Runtime(format!("trace: {e}")))?;
    }
    Ok(report)
}

fn emit(args: &RunArgs, text: String) -> Result<(), Failure> {
    emit_to(args.out.as_deref(), text)
}

fn emit_to(out: Option<&Path>, text: String) -> Result<(), Failure> {
    match out {
        Some(p) => std::fs::write(p, text).map_err(|e| Failure::Runtime(format!("{}: {e}", p.display()))),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| Failure::Runtime(format!("stdout: {e}")))
        }
    }
}

#[cfg(feature = "live")]
mod serve;

#[cfg(feature = "live")]
mod live {
    use super::{emit_to, load, Failure, ProxyArgs};
    use crate::balancer::Strategy;
    use crate::live::backends::parse_backend_map;
    use crate::live::probe::{Pem, TlsOptions, TlsProbe};
    use crate::live::run::{run, LiveOptions};
    use crate::report::{render_run, Report};
    use crate::sim::Scenario;
    use std::time::Duration;

    pub(super) fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, Failure> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()
            .map_err(|e| Failure::Runtime(format!("starting the async runtime: {e}")))
    }

    pub(super) fn logging(level: &str) {
        let filter = tracing_subscriber::EnvFilter::try_new(level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }

    pub(super) fn proxy(args: ProxyArgs) -> Result<(), Failure> {
        let sc = load(&args.scenario)?;
        if !args.listen.ip().is_loopback() {
            return Err(Failure::Input(format!(
                "--listen {}: live mode listens on loopback only (127.0.0.1 or ::1)",
                args.listen
            )));
        }
        if let Some(d) = args.duration {
            if !(d > 0.0 && d <= 86_400.0) {
                return Err(Failure::Input(format!("--duration must be within (0, 86400] seconds, got {d}")));
            }
        }
        let backends = args
            .backends
            .as_deref()
            .map(parse_backend_map)
            .transpose()
            .map_err(|e| Failure::Input(format!("--backends: {e}")))?;
        let probe_tls = match (&args.probe_ca, &args.probe_client_cert, &args.probe_client_key) {
            (None, None, None) => None,
            (ca, cert, key) => Some(
                TlsProbe::new(&TlsOptions {
                    verify_roots: ca.clone().map(Pem::File),
                    client_cert: cert.clone().map(Pem::File),
                    client_key: key.clone().map(Pem::File),
                })
                .map_err(|e| Failure::Input(format!("probe TLS: {e}")))?,
            ),
        };
        let strategy = args
            .strategy
            .or_else(|| sc.channels.first().and_then(|c| Strategy::from_code(c.channel.balance_strategy)))
            .unwrap_or(Strategy::Wrr);
        logging(&args.log_level);
        let opts = LiveOptions {
            strategy,
            listen: args.listen,
            duration: args.duration.map(Duration::from_secs_f64),
            backends,
            client_ip_header: args.client_ip_header.clone(),
            seed: args.seed,
            probe_tls,
            max_connections: args.max_connections as usize,
        };
        let report = runtime(args.workers)?.block_on(run(&sc, opts)).map_err(|e| Failure::Runtime(e.to_string()))?;
        if args.duration.is_some() {
            emit_to(args.out.as_deref(), render_run(&report, args.format))?;
        }
        Ok(())
    }

    /// One live run for `compare --live`: loopback backends, any free port, quiet logs.
    pub(super) fn compare_run(
        sc: &Scenario,
        strategy: Strategy,
        duration: f64,
        seed: Option<u64>,
    ) -> Result<Report, Failure> {
        logging("warn");
        let opts = LiveOptions {
            strategy,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            duration: Some(Duration::from_secs_f64(duration)),
            backends: None,
            client_ip_header: None,
            seed,
            probe_tls: None,
            max_connections: crate::live::proxy::DEFAULT_MAX_CONNECTIONS,
        };
        runtime(2)?.block_on(run(sc, opts)).map_err(|e| Failure::Runtime(e.to_string()))
    }
}
