//! `lbsim sweep`: a grid of variants of a scenario (the cartesian product of the `--vary` axes),
//! each run under each strategy, in parallel on all cores (rayon), then the chosen metrics against
//! the varied fields (architecture.md §6).
//!
//! Each variant is the scenario file with the axes' values set in its parsed value tree, then
//! validated as `lbsim run` validates the file, and run with the scenario's seed and without the
//! wall-clock figures: a variant's report is byte for byte what `lbsim run --deterministic` prints
//! for a file with those values. Runs share nothing, so the order in which threads finish changes
//! nothing; results are collected in grid order.

mod vary;

use super::{emit_to, Failure};
use crate::balancer::Strategy;
use crate::model::{parse_text, Api, Format};
use crate::report::sweep::{crossovers, metric, render_csv, render_html, render_json, render_table, SweepReport};
use crate::report::{render_run, OutputFormat, Report};
use crate::sim::{self, RunOptions, Scenario};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vary::{Axis, MAX_VARIANTS};

#[derive(Args)]
pub(super) struct SweepArgs {
    /// Scenario file (.toml or .json).
    scenario: PathBuf,
    /// A numeric scenario field by dotted path and its values: `traffic.rate_rps=1000..20000:8`
    /// (8 evenly spaced values, both ends included) or `backends[0].speed=1,2,4`. Repeat for a
    /// grid (cartesian product).
    #[arg(long, required = true)]
    vary: Vec<String>,
    /// Strategies, comma-separated (default: the scenario's `strategies`).
    #[arg(long, value_delimiter = ',')]
    strategy: Vec<Strategy>,
    /// Metrics, comma-separated: p50, p90, p99, p999, max, mean, total, ok, failed, retried,
    /// failed_fraction, jain, max_over_expected.
    #[arg(long, value_delimiter = ',', default_value = "p99,failed,max_over_expected")]
    metrics: Vec<String>,
    /// Output format: table, json (every variant's full report too), csv or html.
    #[arg(long, default_value = "table")]
    format: OutputFormat,
    /// Write the report here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the HTML page (table, crossovers, one chart per metric) to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Also write each variant's report here, one file per variant and strategy
    /// (`variant-007-wlc.json`), exactly as `lbsim run --format json --deterministic` prints it.
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
}

pub(super) fn sweep(args: SweepArgs) -> Result<(), Failure> {
    let input = |e: crate::model::FieldError| Failure::Input(format!("--vary: {e}"));
    let axes: Vec<Axis> = args.vary.iter().map(|v| Axis::parse(v)).collect::<Result<_, _>>().map_err(input)?;
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.path == a.path) {
            return Err(Failure::Input(format!("--vary: `{}` is given twice", a.path)));
        }
    }
    let count = axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len()).filter(|&n| n <= MAX_VARIANTS));
    let Some(count) = count else {
        return Err(Failure::Input(format!("--vary: the grid has more than {MAX_VARIANTS} variants")));
    };
    let metrics: Vec<String> =
        args.metrics.iter().map(|m| metric(m).map(|x| x.name.to_string())).collect::<Option<_>>().ok_or_else(|| {
            let names: Vec<&str> = crate::report::sweep::METRICS.iter().map(|m| m.name).collect();
            Failure::Input(format!("--metrics: expected some of {}, got {}", names.join(", "), args.metrics.join(",")))
        })?;

    let text = std::fs::read_to_string(&args.scenario)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.scenario.display())))?;
    let base = parse_text(&text, Format::from_path(&args.scenario), Api::Scenario)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.scenario.display())))?;
    // Every variant is built and validated before anything runs, so that a bad value fails fast.
    let variants: Vec<(BTreeMap<String, Value>, Scenario)> =
        (0..count).map(|k| variant(&args.scenario, &base, &axes, k)).collect::<Result<_, _>>()?;
    let strategies = if args.strategy.is_empty() { variants[0].1.strategies.clone() } else { args.strategy.clone() };

    let jobs: Vec<(usize, Strategy)> = (0..count).flat_map(|k| strategies.iter().map(move |&s| (k, s))).collect();
    let reports = run_all(&args, &variants, &jobs)?;

    let mut out = SweepReport {
        scenario: variants[0].1.name.clone(),
        seed: variants[0].1.seed,
        axes: axes
            .iter()
            .map(|a| crate::report::sweep::Axis { path: a.path.clone(), values: a.values.clone() })
            .collect(),
        strategies: strategies.iter().map(|s| s.name().to_string()).collect(),
        metrics: metrics.clone(),
        variants: Vec::with_capacity(jobs.len()),
        crossovers: Vec::new(),
    };
    for (&(k, s), report) in jobs.iter().zip(reports) {
        if let Some(dir) = &args.runs_dir {
            let path = dir.join(format!("variant-{k:03}-{}.json", s.name()));
            std::fs::write(&path, render_run(&report, OutputFormat::Json))
                .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
        }
        let values = metrics.iter().map(|m| (m.clone(), metric(m).and_then(|x| x.of(&report)))).collect();
        out.variants.push(crate::report::sweep::Variant {
            index: k,
            params: variants[k].0.clone(),
            strategy: s.name().to_string(),
            metrics: values,
            report,
        });
    }
    out.crossovers = crossovers(&out);
    if let Some(p) = &args.html {
        std::fs::write(p, render_html(&out)).map_err(|e| Failure::Runtime(format!("{}: {e}", p.display())))?;
    }
    let text = match args.format {
        OutputFormat::Table => render_table(&out),
        OutputFormat::Json => render_json(&out),
        OutputFormat::Csv => render_csv(&out),
        OutputFormat::Html => render_html(&out),
    };
    emit_to(args.out.as_deref(), text)
}

/// Variant `k` of the grid (the first axis outermost): its values and its validated scenario.
fn variant(path: &Path, base: &Value, axes: &[Axis], k: usize) -> Result<(BTreeMap<String, Value>, Scenario), Failure> {
    let mut tree = base.clone();
    let mut params = BTreeMap::new();
    let mut rest = k;
    let mut picks = vec![0; axes.len()];
    for (i, a) in axes.iter().enumerate().rev() {
        picks[i] = rest % a.values.len();
        rest /= a.values.len();
    }
    for (a, &i) in axes.iter().zip(&picks) {
        let v = &a.values[i];
        a.apply(&mut tree, v).map_err(|e| Failure::Input(format!("--vary {}: {e}", a.path)))?;
        params.insert(a.path.clone(), v.clone());
    }
    // The same value tree `Scenario::load` builds from the file, given as JSON text.
    let json = serde_json::to_string(&tree).map_err(|e| Failure::Runtime(e.to_string()))?;
    let sc = Scenario::parse(&json, Format::Json).map_err(|e| {
        let set: Vec<String> = params.iter().map(|(p, v)| format!("{p} = {v}")).collect();
        Failure::Input(format!("{} with {}: {} problem(s):\n{e}", path.display(), set.join(", "), e.len()))
    })?;
    Ok((params, sc))
}

/// Runs every (variant, strategy) job in parallel; reports in job order.
fn run_all(
    args: &SweepArgs,
    variants: &[(BTreeMap<String, Value>, Scenario)],
    jobs: &[(usize, Strategy)],
) -> Result<Vec<Report>, Failure> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .map_err(|e| Failure::Runtime(format!("starting the worker threads: {e}")))?;
    let bar = ProgressBar::with_draw_target(Some(jobs.len() as u64), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("sweep [{bar:40}] {pos}/{len} runs, {elapsed} elapsed")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let shown = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<Report, String>> = pool.install(|| {
        jobs.par_iter()
            .map(|&(k, s)| {
                let mut opts = RunOptions::new(s);
                opts.deterministic = true;
                let r = sim::run(&variants[k].1, opts).map_err(|e| format!("variant {k} under {s}: {e}"));
                // Only sweeps that take longer than a second get a bar (on stderr).
                if started.elapsed() > Duration::from_secs(1) && !shown.swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                }
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    results.into_iter().collect::<Result<_, _>>().map_err(Failure::Runtime)
}
