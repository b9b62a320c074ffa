//! The terminal table: aligned plain-text columns, no box drawing, no colors.
//!
//! The sections are built as [`Grid`]s of already formatted cells, which the HTML renderer
//! reuses, so both formats show the same figures.

use super::render::{dash, distinct, ms, opt_pct, opt_secs, pct, ratio, run_label, secs};
use super::{MemberReport, Report};

/// One titled table of formatted cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grid {
    pub title: &'static str,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    fn new(title: &'static str, header: Vec<String>) -> Grid {
        Grid { title, header, rows: Vec::new() }
    }

    /// A row whose first cell is `name` and whose other cells are `cell(run)` per run.
    fn per_run(&mut self, name: &str, runs: &[Report], cell: impl Fn(&Report) -> String) {
        let mut row = vec![name.to_string()];
        row.extend(runs.iter().map(cell));
        self.rows.push(row);
    }

    /// Per column, whether it is right-aligned: every column but the first that holds only
    /// numbers (or `-`).
    pub(crate) fn numeric_columns(&self) -> Vec<bool> {
        let numeric =
            |i: usize| self.rows.iter().filter_map(|r| r.get(i)).all(|c| c == "-" || c.parse::<f64>().is_ok());
        (0..self.header.len()).map(|i| i > 0 && numeric(i)).collect()
    }
}

/// `scenario: X  seed: 42  duration: 300 s  mode: sim`.
pub(crate) fn header_line(runs: &[Report]) -> String {
    let join = |v: Vec<String>| if v.is_empty() { dash() } else { v.join(", ") };
    let scenarios = join(distinct(runs.iter().map(|r| r.scenario.clone())));
    let seeds = join(distinct(runs.iter().map(|r| r.seed.to_string())));
    let durations = join(distinct(runs.iter().map(|r| format!("{} s", secs(r.duration_s)))));
    let modes = join(distinct(runs.iter().map(|r| r.mode.clone())));
    format!("scenario: {scenarios}  seed: {seeds}  duration: {durations}  mode: {modes}")
}

/// Every section, in the order both the table and the HTML show them.
pub(crate) fn sections(runs: &[Report]) -> Vec<Grid> {
    let mut out = vec![summary(runs), members(runs), faults(runs)];
    out.extend(endpoint_groups(runs));
    out.extend(protection_groups(runs));
    out
}

/// One column per run: requests, failures by reason, latency, fairness, hash, sim.
pub(crate) fn summary(runs: &[Report]) -> Grid {
    let mut header = vec![String::new()];
    header.extend(runs.iter().map(run_label));
    let mut g = Grid::new("summary", header);
    g.per_run("requests total", runs, |r| r.requests.total.to_string());
    g.per_run("requests ok", runs, |r| r.requests.ok.to_string());
    g.per_run("requests failed", runs, |r| r.requests.failed.to_string());
    g.per_run("requests retried", runs, |r| r.requests.retried.to_string());
    let reasons = distinct(runs.iter().flat_map(|r| r.requests.failed_by_reason.keys().cloned()));
    for reason in &reasons {
        g.per_run(&format!("failed: {reason}"), runs, |r| {
            r.requests.failed_by_reason.get(reason).copied().unwrap_or(0).to_string()
        });
    }
    g.per_run("latency p50 ms", runs, |r| ms(r.latency_ms.p50));
    g.per_run("latency p90 ms", runs, |r| ms(r.latency_ms.p90));
    g.per_run("latency p99 ms", runs, |r| ms(r.latency_ms.p99));
    g.per_run("latency p99.9 ms", runs, |r| ms(r.latency_ms.p999));
    g.per_run("latency max ms", runs, |r| ms(r.latency_ms.max));
    g.per_run("latency mean ms", runs, |r| ms(r.latency_ms.mean));
    g.per_run("fairness jain", runs, |r| ratio(r.fairness.jain));
    g.per_run("fairness max/expected", runs, |r| ratio(r.fairness.max_over_expected));
    g.per_run("hash keys", runs, |r| r.hash.as_ref().map_or_else(dash, |h| h.keys.to_string()));
    g.per_run("hash remapped %", runs, |r| opt_pct(r.hash.as_ref().and_then(|h| h.remapped_on_fault)));
    g.per_run("hash returned %", runs, |r| opt_pct(r.hash.as_ref().and_then(|h| h.returned_on_recovery)));
    if runs.iter().any(|r| r.sim.is_some()) {
        g.per_run("sim events", runs, |r| r.sim.as_ref().map_or_else(dash, |s| s.events.to_string()));
    }
    if runs.iter().any(|r| r.sim.as_ref().is_some_and(|s| s.requests_per_s.is_some())) {
        g.per_run("sim requests/s", runs, |r| {
            r.sim.as_ref().and_then(|s| s.requests_per_s).map_or_else(dash, |v| format!("{v:.0}"))
        });
    }
    g
}

/// Every member seen in any run, in first-seen order, with the run where it was first seen.
pub(crate) fn member_union(runs: &[Report]) -> Vec<&MemberReport> {
    let mut out: Vec<&MemberReport> = Vec::new();
    for m in runs.iter().flat_map(|r| &r.members) {
        if !out.iter().any(|o| o.member == m.member) {
            out.push(m);
        }
    }
    out
}

/// One row per member; per run, `share%` and `expected%` side by side.
pub(crate) fn members(runs: &[Report]) -> Grid {
    let mut header: Vec<String> = ["member", "group", "weight", "backup", "az"].map(String::from).to_vec();
    for r in runs {
        let label = run_label(r);
        header.push(format!("{label} share%"));
        header.push(format!("{label} expected%"));
    }
    let mut g = Grid::new("members", header);
    for m in member_union(runs) {
        let mut row = vec![
            m.member.clone(),
            m.group.clone().unwrap_or_else(dash),
            m.weight.to_string(),
            if m.backup { "yes" } else { "no" }.to_string(),
            m.az.clone().unwrap_or_else(dash),
        ];
        for r in runs {
            match r.members.iter().find(|x| x.member == m.member) {
                Some(x) => row.extend([pct(x.share), pct(x.expected_share)]),
                None => row.extend([dash(), dash()]),
            }
        }
        g.rows.push(row);
    }
    g
}

/// One row per fault (runs of one scenario share their faults, matched by position); per run,
/// when it was detected and recovered and how many requests failed.
pub(crate) fn faults(runs: &[Report]) -> Grid {
    let mut header: Vec<String> = ["kind", "member or az", "at s", "until s"].map(String::from).to_vec();
    for r in runs {
        let label = run_label(r);
        header.push(format!("{label} detected s"));
        header.push(format!("{label} recovered s"));
        header.push(format!("{label} failed"));
    }
    let mut g = Grid::new("faults", header);
    let count = runs.iter().map(|r| r.faults.len()).max().unwrap_or(0);
    for i in 0..count {
        let Some(f) = runs.iter().find_map(|r| r.faults.get(i)) else { continue };
        let target = match (&f.member, &f.az) {
            (Some(m), _) => m.clone(),
            (None, Some(az)) => format!("az {az}"),
            (None, None) => dash(),
        };
        let mut row = vec![f.kind.clone(), target, secs(f.at_s), opt_secs(f.until_s)];
        for r in runs {
            match r.faults.get(i) {
                Some(x) => {
                    row.extend([opt_secs(x.detected_at_s), opt_secs(x.recovered_at_s), x.failed_requests.to_string()])
                }
                None => row.extend([dash(), dash(), dash()]),
            }
        }
        g.rows.push(row);
    }
    g
}

/// GA endpoint groups, only when some run has them.
pub(crate) fn endpoint_groups(runs: &[Report]) -> Option<Grid> {
    let names = distinct(runs.iter().flat_map(|r| r.endpoint_groups.iter().map(|e| e.name.clone())));
    if names.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["endpoint group", "region", "dial%"].map(String::from).to_vec();
    for r in runs {
        let label = run_label(r);
        header.extend([format!("{label} status"), format!("{label} requests"), format!("{label} share%")]);
    }
    let mut g = Grid::new("endpoint groups", header);
    for name in &names {
        let Some(e) = runs.iter().find_map(|r| r.endpoint_groups.iter().find(|e| &e.name == name)) else { continue };
        let mut row = vec![e.name.clone(), e.region_id.clone(), e.traffic_dial_percentage.to_string()];
        for r in runs {
            match r.endpoint_groups.iter().find(|x| &x.name == name) {
                Some(x) => row.extend([x.status.clone(), x.requests.to_string(), pct(x.share)]),
                None => row.extend([dash(), dash(), dash()]),
            }
        }
        g.rows.push(row);
    }
    Some(g)
}

/// The SDRS protection group, only when some run has one: one column per run.
pub(crate) fn protection_groups(runs: &[Report]) -> Option<Grid> {
    if runs.iter().all(|r| r.protection_group.is_none()) {
        return None;
    }
    let mut header = vec![String::new()];
    header.extend(runs.iter().map(run_label));
    let mut g = Grid::new("protection group", header);
    let pg = |r: &Report, f: &dyn Fn(&super::ProtectionGroupReport) -> String| {
        r.protection_group.as_ref().map_or_else(dash, f)
    };
    g.per_run("name", runs, |r| pg(r, &|p| p.name.clone()));
    g.per_run("job id", runs, |r| pg(r, &|p| p.job_id.clone().unwrap_or_else(dash)));
    g.per_run("status", runs, |r| pg(r, &|p| p.status.clone()));
    g.per_run("started at s", runs, |r| pg(r, &|p| opt_secs(p.started_at_s)));
    g.per_run("finished at s", runs, |r| pg(r, &|p| opt_secs(p.finished_at_s)));
    g.per_run("failed requests", runs, |r| pg(r, &|p| p.failed_requests.to_string()));
    Some(g)
}

/// The whole terminal report.
pub(crate) fn render(runs: &[Report]) -> String {
    let mut out = header_line(runs);
    out.push('\n');
    for grid in sections(runs) {
        out.push('\n');
        out.push_str(grid.title);
        out.push('\n');
        if grid.rows.is_empty() {
            out.push_str("  (none)\n");
            continue;
        }
        write_grid(&mut out, &grid);
    }
    out
}

/// Columns separated by two spaces, each as wide as its widest cell; numbers right-aligned.
fn write_grid(out: &mut String, grid: &Grid) {
    let cols = grid.header.len();
    let width = |i: usize| {
        std::iter::once(&grid.header)
            .chain(&grid.rows)
            .filter_map(|r| r.get(i))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let numeric = grid.numeric_columns();
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    for row in std::iter::once(&grid.header).chain(std::iter::once(&rule)).chain(&grid.rows) {
        let mut line = String::from(" ");
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            line.push(' ');
            if numeric[i] {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}
