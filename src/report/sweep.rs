//! Sweep reports (`lbsim sweep`): the chosen metrics of each variant of a scenario under each
//! strategy, where WLC overtakes WRR, and the table, JSON, CSV and HTML forms.
//!
//! A variant's `report` is the very report `lbsim run --deterministic` prints for the scenario
//! with that variant's values; the sweep adds nothing to it.

use super::render::{distinct, secs};
use super::svg::{color, esc, nice_max, tick_label, x_axis, y_axis, Anchor, Frame, Scale, Svg};
use super::Report;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A metric a sweep can report: its name, how it reads a report, and whether lower is better.
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub lower_is_better: bool,
    get: fn(&Report) -> Option<f64>,
}

impl Metric {
    pub fn of(&self, r: &Report) -> Option<f64> {
        (self.get)(r)
    }
}

/// Every metric `--metrics` accepts.
pub const METRICS: &[Metric] = &[
    Metric { name: "p50", unit: "ms", lower_is_better: true, get: |r| r.latency_ms.p50 },
    Metric { name: "p90", unit: "ms", lower_is_better: true, get: |r| r.latency_ms.p90 },
    Metric { name: "p99", unit: "ms", lower_is_better: true, get: |r| r.latency_ms.p99 },
    Metric { name: "p999", unit: "ms", lower_is_better: true, get: |r| r.latency_ms.p999 },
    Metric { name: "max", unit: "ms", lower_is_better: true, get: |r| r.latency_ms.max },
    Metric { name: "mean", unit: "ms", lower_is_better: true, get: |r| r.latency_ms.mean },
    Metric { name: "total", unit: "requests", lower_is_better: false, get: |r| Some(r.requests.total as f64) },
    Metric { name: "ok", unit: "requests", lower_is_better: false, get: |r| Some(r.requests.ok as f64) },
    Metric { name: "failed", unit: "requests", lower_is_better: true, get: |r| Some(r.requests.failed as f64) },
    Metric { name: "retried", unit: "requests", lower_is_better: true, get: |r| Some(r.requests.retried as f64) },
    Metric {
        name: "failed_fraction",
        unit: "",
        lower_is_better: true,
        get: |r| (r.requests.total > 0).then(|| r.requests.failed as f64 / r.requests.total as f64),
    },
    Metric { name: "jain", unit: "", lower_is_better: false, get: |r| r.fairness.jain },
    Metric { name: "max_over_expected", unit: "", lower_is_better: true, get: |r| r.fairness.max_over_expected },
];

/// The metric called `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name.eq_ignore_ascii_case(name.trim()))
}

/// A whole sweep (`--format json`).
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub scenario: String,
    pub seed: u64,
    pub axes: Vec<Axis>,
    pub strategies: Vec<String>,
    pub metrics: Vec<String>,
    /// Grid order: the first axis outermost, the last one varying fastest; each variant once
    /// per strategy, in `strategies` order.
    pub variants: Vec<Variant>,
    /// Where WLC overtakes WRR along the first axis (both strategies swept); `[]` otherwise.
    pub crossovers: Vec<Crossover>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Axis {
    /// The dotted path of the scenario field (`traffic.rate_rps`, `backends[0].speed`).
    pub path: String,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    /// Index in the grid (the same for each strategy).
    pub index: usize,
    /// The value of each axis, by path.
    pub params: BTreeMap<String, Value>,
    pub strategy: String,
    /// The chosen metrics, by name (`null` where the run has no such figure).
    pub metrics: BTreeMap<String, Option<f64>>,
    pub report: Report,
}

/// WLC against WRR along the first axis, for one metric and one setting of the other axes.
#[derive(Debug, Clone, Serialize)]
pub struct Crossover {
    pub metric: String,
    /// The other axes' values on this line.
    pub fixed: BTreeMap<String, Value>,
    /// The first axis value from which on WLC is better than WRR at every point (by more than
    /// 1%); `null` when it is not better at the last point.
    pub wlc_better_from: Option<Value>,
    /// WRR's and WLC's values there.
    pub wrr: Option<f64>,
    pub wlc: Option<f64>,
    /// Along the line: (axis value, WRR, WLC).
    pub points: Vec<(Value, Option<f64>, Option<f64>)>,
    pub summary: String,
}

/// WLC is better than WRR at a point: lower (or higher, for metrics where that is better) by
/// more than 1% of the larger value; two zeros are a tie.
fn wlc_better(m: &Metric, wrr: Option<f64>, wlc: Option<f64>) -> bool {
    match (wrr, wlc) {
        (Some(a), Some(b)) => {
            let margin = 0.01 * a.abs().max(b.abs());
            if m.lower_is_better {
                b < a - margin
            } else {
                b > a + margin
            }
        }
        // WRR has no figure (nothing completed) where WLC has one: WLC is better.
        (None, Some(_)) => true,
        _ => false,
    }
}

/// The crossovers of a sweep whose variants are already in place.
pub fn crossovers(s: &SweepReport) -> Vec<Crossover> {
    let has = |n: &str| s.strategies.iter().any(|x| x == n);
    let Some(first) = s.axes.first() else { return Vec::new() };
    if !(has("wrr") && has("wlc")) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in &s.metrics {
        let Some(m) = metric(name) else { continue };
        for (fixed, line) in lines(s) {
            let at = |strategy: &str, i: usize| {
                line.iter().find(|v| v.index == i && v.strategy == strategy).and_then(|v| v.metrics[name])
            };
            let idx = distinct(line.iter().map(|v| v.index));
            let points: Vec<(Value, Option<f64>, Option<f64>)> =
                idx.iter().map(|&i| (param(&line, i, &first.path), at("wrr", i), at("wlc", i))).collect();
            let better: Vec<bool> = points.iter().map(|p| wlc_better(m, p.1, p.2)).collect();
            let from = better.iter().rposition(|b| !b).map_or(0, |k| k + 1);
            let (wlc_better_from, wrr, wlc, summary) = if from < points.len() {
                let (v, a, b) = &points[from];
                let by = match (a, b) {
                    (Some(a), Some(b)) if *b != 0.0 && m.lower_is_better => format!(", {:.2}x lower", a / b),
                    _ => String::new(),
                };
                let head =
                    if from == 0 { "at every point".to_string() } else { format!("from {} = {v} on", first.path) };
                let s = format!(
                    "{name}: WLC better than WRR {head} (there WRR {}, WLC {}{by})",
                    opt(*a, m.unit),
                    opt(*b, m.unit)
                );
                (Some(v.clone()), *a, *b, s)
            } else {
                (None, None, None, format!("{name}: WLC not better than WRR at the last point of {}", first.path))
            };
            let summary = if fixed.is_empty() { summary } else { format!("{summary} [{}]", fixed_label(&fixed)) };
            out.push(Crossover { metric: name.clone(), fixed, wlc_better_from, wrr, wlc, points, summary });
        }
    }
    out
}

/// The variants grouped by the values of every axis but the first, in grid order.
fn lines(s: &SweepReport) -> Vec<(BTreeMap<String, Value>, Vec<&Variant>)> {
    let mut out: Vec<(BTreeMap<String, Value>, Vec<&Variant>)> = Vec::new();
    for v in &s.variants {
        let fixed: BTreeMap<String, Value> =
            s.axes.iter().skip(1).map(|a| (a.path.clone(), v.params[&a.path].clone())).collect();
        match out.iter_mut().find(|(f, _)| *f == fixed) {
            Some((_, l)) => l.push(v),
            None => out.push((fixed, vec![v])),
        }
    }
    out
}

fn param(line: &[&Variant], i: usize, path: &str) -> Value {
    line.iter().find(|v| v.index == i).map(|v| v.params[path].clone()).unwrap_or(Value::Null)
}

fn fixed_label(fixed: &BTreeMap<String, Value>) -> String {
    fixed.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
}

/// A metric value: integers without decimals, others with up to three.
fn fmt(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        format!("{}", v.round() as i64)
    } else {
        secs(v)
    }
}

fn opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if unit == "ms" => format!("{} ms", fmt(v)),
        Some(v) => fmt(v),
        None => "-".into(),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt),
        other => other.to_string(),
    }
}

// === renderers ===

/// JSON: the [`SweepReport`] object.
pub fn render_json(s: &SweepReport) -> String {
    let mut text =
        serde_json::to_string_pretty(s).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string());
    text.push('\n');
    text
}

/// One row per variant: the axes' values, then each metric under each strategy.
fn grid(s: &SweepReport) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = s.axes.iter().map(|a| a.path.clone()).collect();
    for m in &s.metrics {
        for st in &s.strategies {
            header.push(format!("{m} {st}"));
        }
    }
    let mut rows = Vec::new();
    for i in distinct(s.variants.iter().map(|v| v.index)) {
        let vs: Vec<&Variant> = s.variants.iter().filter(|v| v.index == i).collect();
        let mut row: Vec<String> = s.axes.iter().map(|a| cell(&vs[0].params[&a.path])).collect();
        for m in &s.metrics {
            for st in &s.strategies {
                let v = vs.iter().find(|v| &v.strategy == st).and_then(|v| v.metrics[m]);
                row.push(v.map_or_else(|| "-".into(), fmt));
            }
        }
        rows.push(row);
    }
    (header, rows)
}

fn title(s: &SweepReport) -> String {
    let n = distinct(s.variants.iter().map(|v| v.index)).len();
    format!("sweep of {}: {n} variant(s) x {} strategies, seed {}", s.scenario, s.strategies.len(), s.seed)
}

/// The terminal table: the grid, then the crossovers.
pub fn render_table(s: &SweepReport) -> String {
    let (header, rows) = grid(s);
    let mut out = title(s);
    out.push_str("\n\n");
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows.iter()).collect();
    let widths: Vec<usize> =
        (0..header.len()).map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in &all {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, &w)| format!("{c:>w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if !s.crossovers.is_empty() {
        out.push('\n');
        for c in &s.crossovers {
            let _ = writeln!(out, "{}", c.summary);
        }
    }
    out
}

/// CSV: one row per (variant, strategy): the axes, the strategy, the metrics.
pub fn render_csv(s: &SweepReport) -> String {
    let mut header: Vec<String> = s.axes.iter().map(|a| csv_field(&a.path)).collect();
    header.push("strategy".into());
    header.extend(s.metrics.iter().map(|m| csv_field(m)));
    let mut out = header.join(",");
    out.push('\n');
    for v in &s.variants {
        let mut row: Vec<String> = s.axes.iter().map(|a| v.params[&a.path].to_string()).collect();
        row.push(v.strategy.clone());
        row.extend(s.metrics.iter().map(|m| v.metrics[m].map(|x| x.to_string()).unwrap_or_default()));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One self-contained HTML page: the table, the crossovers, and per metric a chart of the metric
/// against the first axis, one line per strategy (and setting of the other axes).
pub fn render_html(s: &SweepReport) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(out, "<title>lbsim sweep: {}</title>", esc(&s.scenario));
    out.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1240px}\
         table{border-collapse:collapse;font-size:13px}th,td{padding:3px 10px;border-bottom:1px solid #eee;\
         text-align:right}th{background:#f5f5f5}svg{max-width:100%;height:auto;display:block}</style>\n</head>\n<body>\n",
    );
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title(s)));
    let (header, rows) = grid(s);
    out.push_str("<table>\n<tr>");
    for h in &header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for r in &rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if !s.crossovers.is_empty() {
        out.push_str("<h2>where WLC overtakes WRR</h2>\n<ul>\n");
        for c in &s.crossovers {
            let _ = writeln!(out, "<li>{}</li>", esc(&c.summary));
        }
        out.push_str("</ul>\n");
    }
    for m in &s.metrics {
        let _ = writeln!(out, "<h2>{}</h2>", esc(m));
        out.push_str(&chart(s, m));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Metric `m` against the first axis: one polyline (with point markers) per series.
fn chart(s: &SweepReport, m: &str) -> String {
    const W: f64 = 900.0;
    const H: f64 = 360.0;
    let frame = Frame { left: 80.0, top: 20.0, right: W - 20.0, bottom: H - 60.0 };
    let mut svg = Svg::new(W);
    let Some(axis) = s.axes.first() else { return svg.finish(H, m) };
    let x_of = |v: &Variant| v.params[&axis.path].as_f64().unwrap_or(0.0);
    let xs: Vec<f64> = s.variants.iter().map(x_of).collect();
    let (x0, x1) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let ymax = s.variants.iter().filter_map(|v| v.metrics[m]).fold(0.0, f64::max);
    let xs_scale = Scale::linear(x0, if x1 > x0 { x1 } else { x0 + 1.0 }, frame.left, frame.right);
    let ys = Scale::linear(0.0, nice_max(ymax), frame.bottom, frame.top);
    x_axis(&mut svg, frame, &xs_scale, &xs_scale.ticks(8), &axis.path, &tick_label);
    let unit = metric(m).map_or("", |x| x.unit);
    let ylabel = if unit.is_empty() { m.to_string() } else { format!("{m} ({unit})") };
    y_axis(&mut svg, frame, &ys, &ys.ticks(5), &ylabel, &tick_label);
    let mut legend = Vec::new();
    let mut k = 0;
    for (fixed, line) in lines(s) {
        for st in &s.strategies {
            let pts: Vec<(f64, f64)> = line
                .iter()
                .filter(|v| &v.strategy == st)
                .filter_map(|v| v.metrics[m].map(|y| (xs_scale.map(x_of(v)), ys.map(y))))
                .collect();
            let label = if fixed.is_empty() { st.clone() } else { format!("{st} [{}]", fixed_label(&fixed)) };
            svg.polyline(&pts, color(k), 2.0, &label);
            for &(x, y) in &pts {
                svg.rect([x - 3.0, y - 3.0, 6.0, 6.0], color(k), "");
            }
            legend.push((color(k).to_string(), label));
            k += 1;
        }
    }
    if legend.is_empty() {
        svg.text(
            (frame.left + frame.right) / 2.0,
            (frame.top + frame.bottom) / 2.0,
            "no data",
            Anchor::Middle,
            14.0,
            "",
        );
    }
    let last = svg.legend(frame.left, H - 14.0, frame.right, &legend);
    svg.finish(last.max(H - 14.0) + 10.0, &format!("{m} against {}", axis.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wlc_better_needs_a_margin_and_respects_direction() {
        let p99 = metric("p99").expect("p99");
        assert!(wlc_better(p99, Some(100.0), Some(50.0)));
        assert!(!wlc_better(p99, Some(100.0), Some(99.5)));
        assert!(!wlc_better(p99, Some(0.0), Some(0.0)));
        assert!(wlc_better(p99, None, Some(3.0)));
        let jain = metric("JAIN").expect("case-insensitive");
        assert!(wlc_better(jain, Some(0.8), Some(0.95)));
        assert!(!wlc_better(jain, Some(0.95), Some(0.8)));
        assert!(metric("p98").is_none());
    }
}
