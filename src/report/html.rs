//! The HTML report: one self-contained HTML5 file (inline CSS and inline SVG, no scripts, fonts
//! or fetches) with the tables of the terminal report and four charts: share against expected
//! share, requests per member over time with faults shaded, latency CDF per run, and health
//! timeline. Charts are drawn with the small writer in [`super::svg`] (see there for why not
//! plotters). Every inserted text is escaped; the output depends only on the runs.

use super::render::{distinct, pct, run_label, secs};
use super::svg::{color, esc, nice_max, text_width, tick_label, x_axis, y_axis, Anchor, Frame, Scale, Svg};
use super::table::{header_line, member_union, sections, Grid};
use super::Report;
use std::fmt::Write;

/// Width of every chart, in pixels.
const WIDTH: f64 = 1200.0;

/// Fault windows: translucent, so that overlapping faults show darker; the legend swatch is the
/// color of one window over white.
const FAULT_FILL: &str = "#d62728";
const FAULT_SWATCH: &str = "#f7d4d4";

const CSS: &str =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1240px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}\
p.meta{color:#555;margin:0 0 12px;white-space:pre-wrap}\
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}\
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}\
th{background:#f5f5f5;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
svg{max-width:100%;height:auto;display:block;margin:6px 0 14px}\
.none{color:#777;font-style:italic}div.wide{overflow-x:auto}";

pub(crate) fn render(runs: &[Report]) -> String {
    let scenarios = distinct(runs.iter().map(|r| r.scenario.as_str())).join(", ");
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>lbsim report: {}</title>", esc(&scenarios));
    let _ = writeln!(out, "<style>{CSS}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<h1>lbsim report: {}</h1>", esc(&scenarios));
    let _ = writeln!(out, "<p class=\"meta\">{}</p>", esc(&header_line(runs)));
    for grid in sections(runs) {
        write_grid(&mut out, &grid);
    }
    out.push_str("<h2>share against expected share</h2>\n");
    out.push_str(&share_chart(runs));
    out.push_str("<h2>requests per member over time</h2>\n");
    out.push_str(&timeline_chart(runs));
    out.push_str("<h2>latency CDF</h2>\n");
    out.push_str(&cdf_chart(runs));
    out.push_str("<h2>health timeline</h2>\n");
    out.push_str(&health_chart(runs));
    out.push_str("</body>\n</html>\n");
    out
}

fn write_grid(out: &mut String, grid: &Grid) {
    let _ = writeln!(out, "<h2>{}</h2>", esc(grid.title));
    if grid.rows.is_empty() {
        out.push_str("<p class=\"none\">none</p>\n");
        return;
    }
    let numeric = grid.numeric_columns();
    let class = |i: usize| if numeric.get(i) == Some(&true) { " class=\"num\"" } else { "" };
    out.push_str("<div class=\"wide\"><table>\n<thead><tr>");
    for (i, h) in grid.header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &grid.rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(i), esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
}

/// A chart with nothing to draw still gets its frame and a note, so the page keeps its shape.
fn empty_note(svg: &mut Svg, frame: Frame, note: &str) {
    let (x, y) = ((frame.left + frame.right) / 2.0, (frame.top + frame.bottom) / 2.0);
    svg.text(x, y, note, Anchor::Middle, 14.0, " fill=\"#777\"");
}

fn run_legend(runs: &[Report]) -> Vec<(String, String)> {
    runs.iter().enumerate().map(|(i, r)| (color(i).to_string(), run_label(r))).collect()
}

/// (1) Grouped bars: per member one bar per run (run colors), expected share as a dark marker.
fn share_chart(runs: &[Report]) -> String {
    let members = member_union(runs);
    let slots = members.len().max(1) as f64;
    let right = WIDTH - 20.0;
    let label_w = members.iter().map(|m| text_width(&m.member, 11.0)).fold(0.0, f64::max);
    let rotate = label_w > (right - 70.0) / slots - 6.0;
    // A label slanted by 35° reaches cos 35° ≈ 0.82 of its length left of its group's middle:
    // widen the left margin so that the first one fits.
    let left =
        if rotate { f64::max(70.0, (label_w * 0.82 - (right - 70.0) / slots / 2.0 + 14.0).min(300.0)) } else { 70.0 };
    let group_w = (right - left) / slots;
    let label_h = if rotate { label_w * 0.58 + 16.0 } else { 16.0 };
    let mut svg = Svg::new(WIDTH);
    let mut legend = run_legend(runs);
    legend.push(("#111".to_string(), "expected share (marker)".to_string()));
    let top = svg.legend(left, 18.0, right, &legend) + 22.0;
    let bottom = top + 260.0;
    let height = bottom + label_h + 44.0;
    let frame = Frame { left, top, right, bottom };
    let max = runs
        .iter()
        .flat_map(|r| &r.members)
        .flat_map(|m| [m.share, m.expected_share])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y = Scale::linear(0.0, nice_max(max * 100.0), bottom, top);
    y_axis(&mut svg, frame, &y, &y.ticks(5), "share of requests (%)", &tick_label);
    svg.line([left, bottom, right, bottom], "#333", 1.0, None);
    if members.is_empty() {
        empty_note(&mut svg, frame, "no members");
        return svg.finish(height, "share against expected share per member");
    }
    let bar_w = (group_w * 0.8 / runs.len().max(1) as f64).min(48.0);
    for (i, m) in members.iter().enumerate() {
        let x0 = left + group_w * i as f64 + (group_w - bar_w * runs.len() as f64) / 2.0;
        for (j, r) in runs.iter().enumerate() {
            let Some(rm) = r.members.iter().find(|x| x.member == m.member) else { continue };
            let x = x0 + bar_w * j as f64;
            let yv = y.map(rm.share * 100.0);
            let tip = format!(
                "{} ({}): share {}%, expected {}%",
                m.member,
                run_label(r),
                pct(rm.share),
                pct(rm.expected_share)
            );
            svg.rect_titled([x + 1.0, yv, bar_w - 2.0, bottom - yv], color(j), "", &tip);
            let ye = y.map(rm.expected_share * 100.0);
            svg.line([x - 1.0, ye, x + bar_w + 1.0, ye], "#111", 3.0, None);
        }
        let cx = left + group_w * (i as f64 + 0.5);
        if rotate {
            svg.text_rotated(cx + 4.0, bottom + 14.0, &m.member, Anchor::End, 11.0, -35.0);
        } else {
            svg.text(cx, bottom + 16.0, &m.member, Anchor::Middle, 11.0, "");
        }
    }
    svg.text((left + right) / 2.0, bottom + label_h + 30.0, "member", Anchor::Middle, 12.0, "");
    svg.finish(height, "share against expected share per member")
}

/// The end of the time axis: the longest run, or the end of a later last timeline window.
fn time_end(runs: &[Report]) -> f64 {
    let run_end = |r: &Report| {
        let starts = starts(r);
        r.duration_s.max(starts.last().map_or(0.0, |t| t + window(&starts)))
    };
    runs.iter().map(run_end).fold(0.0, f64::max)
}

/// The start times of a run's timeline windows.
fn starts(r: &Report) -> Vec<f64> {
    r.timeline.iter().map(|e| e.t_s).collect()
}

/// The width of a timeline window: the smallest gap between starts (1 s when unknown).
fn window(starts: &[f64]) -> f64 {
    let w = starts.windows(2).map(|p| p[1] - p[0]).filter(|d| *d > 0.0).fold(f64::INFINITY, f64::min);
    if w.is_finite() {
        w
    } else {
        1.0
    }
}

/// (2) One small line chart per run (stacked in one SVG), one line per member, faults shaded.
fn timeline_chart(runs: &[Report]) -> String {
    let members = member_union(runs);
    let (left, right) = (70.0, WIDTH - 20.0);
    let (panel_h, plot_h) = (230.0, 150.0);
    let mut svg = Svg::new(WIDTH);
    let mut legend: Vec<(String, String)> =
        members.iter().enumerate().map(|(i, m)| (color(i).to_string(), m.member.clone())).collect();
    legend.push((FAULT_SWATCH.to_string(), "fault window (darker where faults overlap)".to_string()));
    let head = svg.legend(left, 18.0, right, &legend) + 22.0;
    let height = head + panel_h * runs.len().max(1) as f64;
    let end = time_end(runs);
    let max = runs.iter().flat_map(|r| &r.timeline).flat_map(|e| e.per_member.values()).copied().max().unwrap_or(0);
    let x_ticks_scale = Scale::linear(0.0, end, left, right);
    let ticks = x_ticks_scale.ticks(10);
    if runs.is_empty() {
        let frame = Frame { left, top: head + 20.0, right, bottom: head + 20.0 + plot_h };
        empty_note(&mut svg, frame, "no runs");
    }
    for (k, r) in runs.iter().enumerate() {
        let top = head + panel_h * k as f64 + 28.0;
        let frame = Frame { left, top, right, bottom: top + plot_h };
        let x = Scale::linear(0.0, end, left, right);
        let y = Scale::linear(0.0, nice_max(max as f64), frame.bottom, frame.top);
        svg.text(left, top - 10.0, &run_label(r), Anchor::Start, 13.0, " font-weight=\"bold\"");
        for (f_i, f) in r.faults.iter().enumerate() {
            let (x0, x1) = (x.map(f.at_s), x.map(f.until_s.unwrap_or(end)));
            let target = f.member.clone().or_else(|| f.az.as_ref().map(|a| format!("az {a}"))).unwrap_or_default();
            let until = f.until_s.map_or_else(|| "end".to_string(), secs);
            let label = format!("{} {}", f.kind, target);
            let tip = format!("fault {} {} from {} s to {} s", f.kind, target, secs(f.at_s), until);
            svg.rect_titled([x0, frame.top, x1 - x0, plot_h], FAULT_FILL, " fill-opacity=\"0.2\"", &tip);
            svg.text(
                x0 + 4.0,
                frame.top + 12.0 + 12.0 * (f_i % 3) as f64,
                &label,
                Anchor::Start,
                10.0,
                " fill=\"#a33\"",
            );
        }
        y_axis(&mut svg, frame, &y, &y.ticks(4), "requests", &tick_label);
        x_axis(&mut svg, frame, &x, &ticks, "time (s), per window", &tick_label);
        if r.timeline.is_empty() {
            empty_note(&mut svg, frame, "no timeline");
            continue;
        }
        let half = window(&starts(r)) / 2.0;
        for (i, m) in members.iter().enumerate() {
            let points: Vec<(f64, f64)> = r
                .timeline
                .iter()
                .map(|e| (x.map(e.t_s + half), y.map(e.per_member.get(&m.member).copied().unwrap_or(0) as f64)))
                .collect();
            svg.polyline(&points, color(i), 1.8, &format!("{} ({})", m.member, run_label(r)));
        }
    }
    svg.finish(height, "requests per member over time, per run, with fault windows shaded")
}

/// (3) Latency CDF, one line per run; log x axis when the range spans more than 100×.
fn cdf_chart(runs: &[Report]) -> String {
    let (left, right) = (70.0, WIDTH - 20.0);
    let mut svg = Svg::new(WIDTH);
    let top = svg.legend(left, 18.0, right, &run_legend(runs)) + 22.0;
    let bottom = top + 300.0;
    let frame = Frame { left, top, right, bottom };
    let values = || runs.iter().flat_map(|r| &r.latency_cdf).map(|p| p.0).filter(|v| v.is_finite());
    let lo = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0, f64::max);
    let log = lo.is_finite() && hi / lo > 100.0;
    let x = if log { Scale::log(lo, hi, left, right) } else { Scale::linear(0.0, nice_max(hi), left, right) };
    let y = Scale::linear(0.0, 1.0, bottom, top);
    let label = if log { "latency (ms, log scale)" } else { "latency (ms)" };
    x_axis(&mut svg, frame, &x, &x.ticks(10), label, &tick_label);
    y_axis(&mut svg, frame, &y, &y.ticks(5), "requests at or below (%)", &|v| tick_label(v * 100.0));
    if hi <= 0.0 {
        empty_note(&mut svg, frame, "no latency data");
    }
    for (j, r) in runs.iter().enumerate() {
        let points: Vec<(f64, f64)> = r
            .latency_cdf
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!log || p.0 > 0.0))
            .map(|&(ms, f)| (x.map(ms), y.map(f)))
            .collect();
        svg.polyline(&points, color(j), 2.0, &format!("latency CDF ({})", run_label(r)));
    }
    svg.finish(bottom + 50.0, "latency CDF per run")
}

fn state_color(state: &str) -> &'static str {
    match state {
        "healthy" => "#2ca02c",
        "unhealthy" => "#d62728",
        "unknown" => "#bbbbbb",
        _ => "#ff7f0e",
    }
}

/// (4) Per member and run a band colored by health state over `[0, duration_s]`.
fn health_chart(runs: &[Report]) -> String {
    let members = member_union(runs);
    let name_w = members.iter().map(|m| text_width(&m.member, 12.0)).fold(80.0, f64::max).min(360.0);
    let run_w = runs.iter().map(|r| text_width(&run_label(r), 11.0)).fold(30.0, f64::max);
    let left = 10.0 + name_w + 10.0 + run_w + 10.0;
    let right = WIDTH - 20.0;
    let mut svg = Svg::new(WIDTH);
    let others = distinct(
        runs.iter()
            .flat_map(|r| &r.members)
            .flat_map(|m| &m.health)
            .map(|h| h.state.as_str())
            .filter(|s| !["healthy", "unhealthy", "unknown"].contains(s)),
    );
    let mut legend: Vec<(String, String)> =
        ["healthy", "unhealthy", "unknown"].iter().map(|s| (state_color(s).to_string(), s.to_string())).collect();
    legend.extend(others.iter().map(|s| (state_color(s).to_string(), s.to_string())));
    // Room above the bands for two rows of fault labels.
    let top = svg.legend(10.0, 18.0, right, &legend) + 38.0;
    let (band_h, member_gap) = (16.0, 10.0);
    let rows = members.len() as f64 * (band_h * runs.len() as f64 + member_gap);
    let bottom = top + rows.max(40.0);
    let frame = Frame { left, top, right, bottom };
    let end = runs.iter().map(|r| r.duration_s).fold(0.0, f64::max);
    let x = Scale::linear(0.0, end, left, right);
    x_axis(&mut svg, frame, &x, &x.ticks(10), "time (s)", &tick_label);
    if members.is_empty() {
        empty_note(&mut svg, frame, "no members");
    }
    let mut yy = top + member_gap / 2.0;
    for m in &members {
        svg.text(10.0, yy + band_h * runs.len() as f64 / 2.0 + 4.0, &m.member, Anchor::Start, 12.0, "");
        for r in runs {
            svg.text(left - 10.0, yy + band_h - 4.0, &run_label(r), Anchor::End, 11.0, " fill=\"#555\"");
            let health = r.members.iter().find(|x| x.member == m.member).map(|x| x.health.as_slice()).unwrap_or(&[]);
            for (a, b, state) in bands(health, r.duration_s) {
                let tip = format!("{} ({}): {} from {} s to {} s", m.member, run_label(r), state, secs(a), secs(b));
                svg.rect_titled([x.map(a), yy + 1.0, x.map(b) - x.map(a), band_h - 2.0], state_color(state), "", &tip);
            }
            yy += band_h;
        }
        yy += member_gap;
    }
    // Fault starts and ends as dashed lines, to read detection and recovery delays against.
    for (i, f) in runs.first().map(|r| r.faults.as_slice()).unwrap_or(&[]).iter().enumerate() {
        for (t, what) in [(Some(f.at_s), "start"), (f.until_s, "end")] {
            let Some(t) = t else { continue };
            let px = x.map(t);
            let label_y = top - 8.0 - 12.0 * (i % 2) as f64;
            svg.line([px, label_y + 4.0, px, bottom], "#333", 1.0, Some("4 3"));
            svg.text(px, label_y, &format!("{} {what}", f.kind), Anchor::Middle, 10.0, "");
        }
    }
    svg.finish(bottom + 50.0, "health timeline per member and run")
}

/// `(from, to, state)` spans over `[0, end]`: `unknown` before the first point (or throughout
/// when there is none), each state until the next transition.
fn bands(health: &[super::HealthPoint], end: f64) -> Vec<(f64, f64, &str)> {
    let mut out = Vec::new();
    let first = health.first().map_or(end, |h| h.at_s.clamp(0.0, end));
    if first > 0.0 {
        out.push((0.0, first, "unknown"));
    }
    for (i, h) in health.iter().enumerate() {
        let a = h.at_s.clamp(0.0, end);
        let b = health.get(i + 1).map_or(end, |n| n.at_s.clamp(0.0, end));
        if b > a {
            out.push((a, b, h.state.as_str()));
        }
    }
    out
}
