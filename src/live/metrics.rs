//! The proxy's figures in the Prometheus text exposition format (version 0.0.4), as the admin
//! server's `/metrics` serves them.
//!
//! Written by hand rather than through a metrics registry: every figure already lives in the
//! proxy's own atomics ([`ProxyStats`]) and the balancer, and a scrape only reads them. The
//! format's rules kept here: one `# HELP` and `# TYPE` per family, label values escaped
//! (backslash, double quote, newline), histogram buckets cumulative with `le` ascending and a
//! final `+Inf` equal to `_count`.

use super::stats::{Outcome, PickTier, ProxyStats};
use crate::health::HealthState;
use crate::Balancer;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS_S: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const HEALTH_STATES: [HealthState; 4] =
    [HealthState::Healthy, HealthState::Unhealthy, HealthState::Unknown, HealthState::Ejected];

/// Configuration reloads (SIGHUP), by result.
#[derive(Debug, Default)]
pub struct Reloads {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// What `/metrics` shows for one channel.
pub struct Sources<'a> {
    pub channel: &'a str,
    pub lb: &'a Balancer,
    pub stats: &'a ProxyStats,
    pub reloads: &'a Reloads,
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every family.
pub fn render(src: &Sources<'_>) -> String {
    let mut out = String::with_capacity(8192);
    let ch = escape(src.channel);
    members(&mut out, &ch, src);
    channel(&mut out, &ch, src);
    connections(&mut out, src.stats);
    family(&mut out, "lbsim_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    let _ = writeln!(out, "lbsim_reloads_total{{result=\"ok\"}} {}", src.reloads.ok.load(Relaxed));
    let _ = writeln!(out, "lbsim_reloads_total{{result=\"failed\"}} {}", src.reloads.failed.load(Relaxed));
    out
}

fn members(out: &mut String, ch: &str, src: &Sources<'_>) {
    let figures = src.stats.members();
    let status: std::collections::HashMap<_, _> = src.lb.members().into_iter().map(|s| (s.member.id(), s)).collect();
    let labels: Vec<String> =
        figures.iter().map(|f| format!("channel=\"{ch}\",member=\"{}\"", escape(&f.member.to_string()))).collect();

    family(out, "lbsim_member_requests_total", "counter", "Attempts at a member, by outcome.");
    for (f, l) in figures.iter().zip(&labels) {
        for o in Outcome::ALL {
            let _ = writeln!(
                out,
                "lbsim_member_requests_total{{{l},outcome=\"{}\"}} {}",
                o.as_str(),
                f.outcomes[o as usize]
            );
        }
    }
    family(out, "lbsim_member_in_flight", "gauge", "Attempts at a member open now (until their response body ends).");
    for (f, l) in figures.iter().zip(&labels) {
        let _ = writeln!(out, "lbsim_member_in_flight{{{l}}} {}", f.in_flight);
    }
    family(out, "lbsim_member_ejections_total", "counter", "Ejections of a member by outlier detection.");
    for (f, l) in figures.iter().zip(&labels) {
        let _ = writeln!(out, "lbsim_member_ejections_total{{{l}}} {}", f.ejections);
    }
    family(
        out,
        "lbsim_member_health",
        "gauge",
        "A member's health: 1 for its current state, 0 for the others (members of the running configuration).",
    );
    for (f, l) in figures.iter().zip(&labels) {
        let Some(s) = status.get(&f.member) else { continue };
        for state in HEALTH_STATES {
            let _ = writeln!(
                out,
                "lbsim_member_health{{{l},state=\"{}\"}} {}",
                state.as_str(),
                u8::from(s.health == state)
            );
        }
    }
    family(out, "lbsim_member_weight", "gauge", "A member's configured weight (members of the running configuration).");
    for (f, l) in figures.iter().zip(&labels) {
        if let Some(s) = status.get(&f.member) {
            let _ = writeln!(out, "lbsim_member_weight{{{l}}} {}", s.member.weight());
        }
    }
    family(
        out,
        "lbsim_member_latency_seconds",
        "histogram",
        "Time from a request's arrival to the member's response head, for attempts answered below 500.",
    );
    for (f, l) in figures.iter().zip(&labels) {
        let count = f.latency.as_ref().map_or(0, |h| h.len());
        for b in BUCKETS_S {
            let n = f.latency.as_ref().map_or(0, |h| h.count_between(0, (b * 1e6) as u64));
            let _ = writeln!(out, "lbsim_member_latency_seconds_bucket{{{l},le=\"{b}\"}} {n}");
        }
        let _ = writeln!(out, "lbsim_member_latency_seconds_bucket{{{l},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "lbsim_member_latency_seconds_sum{{{l}}} {}", f.latency_sum_us as f64 / 1e6);
        let _ = writeln!(out, "lbsim_member_latency_seconds_count{{{l}}} {count}");
    }
}

fn channel(out: &mut String, ch: &str, src: &Sources<'_>) {
    let r = src.stats.requests();
    family(
        out,
        "lbsim_channel_picks_total",
        "counter",
        "Members picked for the channel's requests, by the tier picked from.",
    );
    for t in PickTier::ALL {
        let _ = writeln!(
            out,
            "lbsim_channel_picks_total{{channel=\"{ch}\",tier=\"{}\"}} {}",
            t.as_str(),
            r.picks[t as usize]
        );
    }
    family(out, "lbsim_channel_requests_total", "counter", "Requests the proxy answered, by result.");
    let _ = writeln!(out, "lbsim_channel_requests_total{{channel=\"{ch}\",result=\"ok\"}} {}", r.ok);
    let _ = writeln!(out, "lbsim_channel_requests_total{{channel=\"{ch}\",result=\"failed\"}} {}", r.failed);
    family(out, "lbsim_channel_retries_total", "counter", "Requests that needed more than one attempt.");
    let _ = writeln!(out, "lbsim_channel_retries_total{{channel=\"{ch}\"}} {}", r.retried);
    family(out, "lbsim_channel_failed_requests_total", "counter", "Failed requests, by reason.");
    for reason in super::stats::Reason::ALL {
        let n = r.by_reason.get(reason.as_str()).copied().unwrap_or(0);
        let _ =
            writeln!(out, "lbsim_channel_failed_requests_total{{channel=\"{ch}\",reason=\"{}\"}} {n}", reason.as_str());
    }
    family(out, "lbsim_channel_eligible", "gauge", "1 when the channel has a tier that can take traffic, else 0.");
    let _ = writeln!(out, "lbsim_channel_eligible{{channel=\"{ch}\"}} {}", u8::from(src.lb.tier().is_ok()));
}

fn connections(out: &mut String, stats: &ProxyStats) {
    let c = stats.connections();
    family(out, "lbsim_connections_open", "gauge", "Client connections open now (within the connection limit).");
    let _ = writeln!(out, "lbsim_connections_open {}", c.open);
    for (name, help, v) in [
        ("lbsim_connections_accepted_total", "Client connections accepted within the limit.", c.accepted),
        ("lbsim_connections_rejected_total", "Client connections over the limit, answered 503.", c.rejected),
        ("lbsim_connections_dropped_total", "Client connections over the limit, closed at once.", c.dropped),
        (
            "lbsim_connections_timed_out_total",
            "Client connections closed for sending no request head in time or idling too long.",
            c.timed_out,
        ),
    ] {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
