//! Logs on stderr for `lbsim proxy` and `lbsim serve`: text or JSON lines (tracing-subscriber),
//! and a rate limit for lines that traffic can cause in bulk (failed requests).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event; colours only on a terminal without `NO_COLOR`.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format `{s}` (text, json)")),
        }
    }
}

/// Whether text logs may use ANSI colours: stderr is a terminal and `NO_COLOR` is unset or empty
/// (no-color.org).
pub fn ansi_allowed() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the process's subscriber (once; later calls keep the first). `level` is a level or a
/// tracing filter; an invalid one falls back to `info`.
pub fn init(level: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi_allowed()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).with_current_span(false).try_init(),
    };
}

/// Lets through at most `per_second` lines a second and counts the rest, so that a flood of
/// failures neither floods the log nor costs more than an atomic add each.
pub struct RateLimit {
    per_second: u32,
    origin: Instant,
    /// The second the count is for.
    second: AtomicU64,
    used: AtomicU32,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            per_second,
            origin: Instant::now(),
            second: AtomicU64::new(0),
            used: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last one let through)` when this line may be logged.
    pub fn allow(&self) -> Option<u64> {
        let now = self.origin.elapsed().as_secs();
        let second = self.second.load(Relaxed);
        if now != second && self.second.compare_exchange(second, now, Relaxed, Relaxed).is_ok() {
            self.used.store(0, Relaxed);
        }
        if self.used.fetch_add(1, Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_through_its_share_and_counts_the_rest() {
        let r = RateLimit::new(3);
        let allowed: Vec<_> = (0..10).map(|_| r.allow()).collect();
        // Within one second (the test takes microseconds): three lines, then none.
        if r.origin.elapsed().as_secs() == 0 {
            assert_eq!(allowed[..4], [Some(0), Some(0), Some(0), None]);
            assert_eq!(r.suppressed.load(Relaxed), 7);
        }
    }

    #[test]
    fn log_formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
