//! The renderer dispatcher: one entry point, [`render`], over the four output formats of
//! `--format` (architecture.md §6), and the number formatting the text formats share.
//!
//! ```
//! # use lbsim::report::{render, OutputFormat, Report};
//! # fn show(runs: &[Report]) -> Result<(), lbsim::report::UnknownFormat> {
//! let format: OutputFormat = "html".parse()?;
//! let page: String = render(runs, format); // one run: that run; several: a comparison
//! # let _ = page; Ok(()) }
//! ```

use super::{Comparison, Report};
use std::fmt;
use std::str::FromStr;

/// The `--format` of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputFormat {
    /// Aligned plain-text columns for a terminal.
    #[default]
    Table,
    /// The architecture.md §7 object (`{"runs": [...]}` for several runs).
    Json,
    /// One row per run and member.
    Csv,
    /// One self-contained HTML file with inline SVG charts.
    Html,
}

impl OutputFormat {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [OutputFormat; 4] = [OutputFormat::Table, OutputFormat::Json, OutputFormat::Csv, OutputFormat::Html];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
            OutputFormat::Csv => "csv",
            OutputFormat::Html => "html",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown `--format` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown output format `{}`: expected one of table, json, csv, html", self.0)
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    /// `table`, `json`, `csv` or `html`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Renders the report of one `run` in `format`: as that run (JSON: the `Report` object).
pub fn render_run(run: &Report, format: OutputFormat) -> String {
    render(std::slice::from_ref(run), format)
}

/// Renders what `compare` produces (one scenario under each strategy, simulated and live) side
/// by side. JSON is always `{"runs": [...]}`, even with one run, so scripts see one shape.
pub fn render_comparison(runs: &[Report], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json_text(serde_json::to_string_pretty(&Comparison { runs: runs.to_vec() })),
        _ => render(runs, format),
    }
}

/// Renders `runs` in `format`. One run renders as that run; several render side by side. The
/// output is deterministic: the same runs give the same bytes.
pub fn render(runs: &[Report], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(runs),
        OutputFormat::Table => super::table::render(runs),
        OutputFormat::Csv => super::csv::render(runs),
        OutputFormat::Html => super::html::render(runs),
    }
}

/// architecture.md §7: one run is the `Report` object, several are `{"runs": [...]}`.
fn json(runs: &[Report]) -> String {
    json_text(match runs {
        [one] => serde_json::to_string_pretty(one),
        _ => serde_json::to_string_pretty(&Comparison { runs: runs.to_vec() }),
    })
}

fn json_text(text: serde_json::Result<String>) -> String {
    // The report types hold only strings, numbers and string-keyed maps, which always
    // serialize; an error here would be a bug in the types, so say so in the output.
    let mut text = text.unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string());
    text.push('\n');
    text
}

// === formatting shared by the table, CSV and HTML renderers ===

/// How a run is named in column headers and legends: its strategy, with ` (live)` for live runs.
pub(crate) fn run_label(run: &Report) -> String {
    if run.mode == "live" {
        format!("{} (live)", run.strategy)
    } else {
        run.strategy.clone()
    }
}

/// A fraction (0-1) as a percentage with one decimal, without the `%` sign.
pub(crate) fn pct(fraction: f64) -> String {
    format!("{:.1}", fraction * 100.0)
}

/// An optional fraction as a percentage, `-` for null.
pub(crate) fn opt_pct(fraction: Option<f64>) -> String {
    fraction.map_or_else(dash, pct)
}

/// Milliseconds with two decimals, `-` for null.
pub(crate) fn ms(value: Option<f64>) -> String {
    value.map_or_else(dash, |v| format!("{v:.2}"))
}

/// Seconds with up to three decimals (`60`, `61.5`, `0.125`).
pub(crate) fn secs(value: f64) -> String {
    let s = format!("{value:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Optional seconds, `-` for null.
pub(crate) fn opt_secs(value: Option<f64>) -> String {
    value.map_or_else(dash, secs)
}

/// A ratio with three decimals, `-` for null.
pub(crate) fn ratio(value: Option<f64>) -> String {
    value.map_or_else(dash, |v| format!("{v:.3}"))
}

pub(crate) fn dash() -> String {
    "-".to_string()
}

/// Distinct values in first-seen order (no hashing, so the order is the input's).
pub(crate) fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_parse_in_any_case_and_round_trip() {
        for f in OutputFormat::ALL {
            assert_eq!(f.to_string().parse::<OutputFormat>(), Ok(f));
            assert_eq!(f.to_string().to_uppercase().parse::<OutputFormat>(), Ok(f));
        }
        let err = "yaml".parse::<OutputFormat>().unwrap_err().to_string();
        assert!(err.contains("yaml") && err.contains("table, json, csv, html"), "{err}");
    }

    #[test]
    fn numbers_format_as_documented() {
        assert_eq!(pct(0.3333), "33.3");
        assert_eq!(ms(Some(1.005)), "1.00");
        assert_eq!(ms(None), "-");
        assert_eq!(secs(60.0), "60");
        assert_eq!(secs(61.5), "61.5");
        assert_eq!(secs(0.1254), "0.125");
        assert_eq!(secs(-0.0001), "0");
        assert_eq!(opt_secs(None), "-");
    }
}
