//! `lbsim explain`: why a request goes where it goes at a simulated moment (architecture.md §6).
//!
//! The simulator runs the scenario deterministically up to `--at` ([`sim::run_until`]); then, for
//! each channel, every member is listed with what keeps it out of the eligible set (disabled,
//! weight 0, standing by or drained by a protection group, unhealthy since when, a backup held
//! back), and the strategy's decision for the request: for the hash strategies the key's member
//! and its consistent preference order; for WRR and WLC, which depend on the schedule position and
//! on the requests in flight rather than on the request, the member the next pick gives in that
//! state.

use super::{load, Failure};
use crate::balancer::{MemberStatus, SelectError, Strategy, Tier};
use crate::health::HealthState;
use crate::sim::{self, Paused, RunOptions, Scenario};
use crate::{Balancer, Request};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Args)]
pub(super) struct ExplainArgs {
    /// Scenario file (.toml or .json).
    scenario: PathBuf,
    /// The request's client (source) address.
    #[arg(long)]
    client: IpAddr,
    /// The request's URI, as sent.
    #[arg(long)]
    uri: String,
    /// Simulated second to look at (default 0: the configuration before any traffic).
    #[arg(long, default_value_t = 0.0)]
    at: f64,
    /// Strategy (default: the channel's balance_strategy).
    #[arg(long)]
    strategy: Option<Strategy>,
    /// Seed of the random streams (default: the scenario's `seed`), as for `run`.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = TextFormat::Table)]
    format: TextFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum TextFormat {
    Table,
    Json,
}

/// The whole answer (`--format json`).
#[derive(Debug, Serialize)]
pub(super) struct Explanation {
    scenario: String,
    strategy: &'static str,
    at_s: f64,
    client: String,
    uri: String,
    channels: Vec<ChannelExplanation>,
}

#[derive(Debug, Serialize)]
struct ChannelExplanation {
    channel: String,
    endpoint_group: Option<String>,
    traffic_dial_percentage: Option<i64>,
    /// `primary`, `backup` or `panic`; `null` when nothing is eligible.
    tier: Option<&'static str>,
    members: Vec<MemberExplanation>,
    decision: Decision,
    /// Hash strategies: the key's preference order over the eligible members; `[]` otherwise.
    preference: Vec<String>,
}

#[derive(Debug, Serialize)]
struct MemberExplanation {
    member: String,
    group: Option<String>,
    weight: u32,
    effective_weight: u32,
    backup: bool,
    health: &'static str,
    /// When the member entered its current health state.
    health_since_s: f64,
    in_flight: u32,
    eligible: bool,
    expected_share: f64,
    /// Why the member is not eligible; `[]` when it is.
    excluded_by: Vec<Reason>,
    /// What else holds at this moment (faults in force, panic mode).
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Reason {
    /// `disabled`, `weight_0`, `standby`, `drained`, `unhealthy`, `backup_held_back`,
    /// `backup_not_first`, `not_in_tier`.
    code: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Decision {
    /// The member the request goes to (WRR, WLC: the next pick in this state); `null` when none.
    member: Option<String>,
    /// `hash`, `schedule` (WRR), `least_loaded` (WLC) or `none`.
    basis: &'static str,
    detail: String,
}

pub(super) fn explain(args: ExplainArgs) -> Result<(), Failure> {
    let sc = load(&args.scenario)?;
    if !(args.at >= 0.0 && args.at <= sc.duration_s) {
        return Err(Failure::Input(format!(
            "--at must be within 0-{} (the scenario's duration_s), got {}",
            sc.duration_s, args.at
        )));
    }
    let strategy = args
        .strategy
        .or_else(|| sc.channels.first().and_then(|c| Strategy::from_code(c.channel.balance_strategy)))
        .unwrap_or(Strategy::Wrr);
    let mut opts = RunOptions::new(strategy);
    opts.seed = args.seed;
    opts.deterministic = true;
    let req = Request::new(args.client, &args.uri);
    let channels = sim::run_until(&sc, opts, args.at, |p| {
        p.balancers.iter().enumerate().map(|(c, lb)| explain_channel(&sc, p, c, lb, &req)).collect()
    })
    .map_err(|e| Failure::Runtime(format!("{}: {e}", args.scenario.display())))?;
    let ex = Explanation {
        scenario: sc.name.clone(),
        strategy: strategy.name(),
        at_s: args.at,
        client: args.client.to_string(),
        uri: args.uri.clone(),
        channels,
    };
    let text = match args.format {
        TextFormat::Json => {
            serde_json::to_string_pretty(&ex).map(|s| s + "\n").map_err(|e| Failure::Runtime(e.to_string()))?
        }
        TextFormat::Table => table(&ex),
    };
    super::emit_to(None, text)
}

fn explain_channel(sc: &Scenario, p: &Paused<'_>, c: usize, lb: &Balancer, req: &Request<'_>) -> ChannelExplanation {
    let spec = &sc.channels[c];
    let tier = lb.tier();
    let statuses = lb.members();
    let members = statuses.iter().map(|st| explain_member(sc, p, st, tier, &statuses)).collect();
    let strategy = lb.strategy();
    let preference: Vec<String> = lb.preference(req).iter().map(|m| m.to_string()).collect();
    let decision = decide(lb, req, strategy, &statuses, &preference);
    ChannelExplanation {
        channel: spec.channel.name.clone(),
        endpoint_group: spec.endpoint_group.as_ref().map(|g| g.name.clone()),
        traffic_dial_percentage: spec.endpoint_group.as_ref().map(|g| g.traffic_dial_percentage.unwrap_or(100)),
        tier: tier.ok().map(tier_name),
        members,
        decision,
        preference,
    }
}

fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::Primary => "primary",
        Tier::Backup => "backup",
        Tier::Panic => "panic",
    }
}

fn explain_member(
    sc: &Scenario,
    p: &Paused<'_>,
    st: &MemberStatus,
    tier: Result<Tier, SelectError>,
    all: &[MemberStatus],
) -> MemberExplanation {
    let m = &st.member;
    let id = m.id();
    let timeline = p.health_of(id);
    let since = timeline.iter().rev().find(|(_, s)| *s == st.health).map_or(0.0, |&(t, _)| t);
    let az = sc.plan().az_of(id);
    let mut excluded_by = Vec::new();
    let mut reason = |code: &'static str, detail: String| excluded_by.push(Reason { code, detail });
    if !st.eligible {
        if !m.is_available() {
            match standby(sc, p, az) {
                Some((code, detail)) => reason(code, detail),
                None => reason("disabled", "status 2 (unavailable): never selected".into()),
            }
        } else if m.effective_weight() == 0 {
            let detail = if m.weight() > 0 {
                format!("its member group `{}` has member_group_weight 0, which it inherits", m.group().unwrap_or(""))
            } else {
                "weight 0: never selected".into()
            };
            reason("weight_0", detail);
        } else if st.health == HealthState::Ejected {
            reason("ejected", format!("ejected by outlier detection since {} s", secs(since)));
        } else if st.health == HealthState::Unhealthy && tier != Ok(Tier::Panic) {
            reason(
                "unhealthy",
                format!("unhealthy since {} s (the check that crossed threshold_abnormal)", secs(since)),
            );
        } else if m.is_backup() && tier == Ok(Tier::Primary) {
            let n = all.iter().filter(|s| s.eligible && !s.member.is_backup()).count();
            reason(
                "backup_held_back",
                format!("a backup takes traffic only when no primary is eligible; {n} primary member(s) are"),
            );
        } else if m.is_backup() && tier == Ok(Tier::Backup) {
            let first = all.iter().find(|s| s.eligible).map(|s| s.member.id().to_string()).unwrap_or_default();
            reason("backup_not_first", format!("backup_mode = \"first\": {first} takes the backups' traffic"));
        } else {
            reason("not_in_tier", "not in the tier that takes traffic (its group has no weight)".into());
        }
    }
    let mut notes = Vec::new();
    for (i, f) in sc.faults.iter().enumerate() {
        let in_force = f.at_s <= p.at_s && f.until_s.is_none_or(|u| p.at_s < u);
        if in_force && sc.plan().hits(i, id) {
            let until = f.until_s.map(|u| format!(" until {} s", secs(u))).unwrap_or_default();
            let detected = matches!(st.health, HealthState::Unhealthy | HealthState::Ejected);
            let seen = if detected { "" } else { ", not detected by the checks yet" };
            notes.push(format!("fault `{}` since {} s{until}{seen}", f.kind.as_str(), secs(f.at_s)));
        }
    }
    if st.eligible && st.weight_factor < 1.0 {
        notes.push(format!("slow start: at {:.0}% of its weight", st.weight_factor * 100.0));
    }
    if st.eligible && tier == Ok(Tier::Panic) && st.health == HealthState::Unhealthy {
        notes.push("panic mode: selected although unhealthy".into());
    }
    MemberExplanation {
        member: id.to_string(),
        group: m.group().map(str::to_string),
        weight: m.weight(),
        effective_weight: m.effective_weight(),
        backup: m.is_backup(),
        health: st.health.as_str(),
        health_since_s: secs(since),
        in_flight: st.in_flight,
        eligible: st.eligible,
        expected_share: crate::report::round6(st.expected_share),
        excluded_by,
        notes,
    }
}

/// A member disabled by the protection group rather than by its own status.
fn standby(sc: &Scenario, p: &Paused<'_>, az: Option<&str>) -> Option<(&'static str, String)> {
    let g = &sc.protection_group.as_ref()?.body.server_group;
    let az = az?;
    match p.failover.1 {
        None if az == g.target_availability_zone => Some((
            "standby",
            format!("in the protection group's target AZ `{az}`: no traffic until a failover completes"),
        )),
        Some(done) if az == g.source_availability_zone => Some((
            "drained",
            format!(
                "in the protection group's source AZ `{az}`: drained since the failover completed at {} s",
                secs(done)
            ),
        )),
        _ => None,
    }
}

fn decide(lb: &Balancer, req: &Request<'_>, strategy: Strategy, all: &[MemberStatus], pref: &[String]) -> Decision {
    let pick = match lb.select(req) {
        Ok(p) => p.member().id().to_string(),
        Err(e) => return Decision { member: None, basis: "none", detail: format!("no member can be selected: {e}") },
    };
    let (basis, detail) = match strategy {
        Strategy::SourceIp | Strategy::UriHash => {
            let key = if strategy == Strategy::SourceIp {
                format!("the client address {}", req.client())
            } else {
                {
                    let mode = serde_json::to_value(lb.options().uri_hash_key).ok();
                    let mode = mode.as_ref().and_then(|v| v.as_str()).unwrap_or("path");
                    format!("the URI `{}` (uri_hash_key = \"{mode}\")", req.uri())
                }
            };
            let rest = pref.iter().skip(1).take(3).cloned().collect::<Vec<_>>().join(", then ");
            let fallback = if rest.is_empty() { String::new() } else { format!("; if it fails or leaves: {rest}") };
            ("hash", format!("consistent weighted hash of {key}: its first eligible choice is {pick}{fallback}"))
        }
        Strategy::Wrr => {
            // The picks after this one, from the same schedule position (the state is thrown away).
            let next: Vec<String> =
                (0..7).filter_map(|_| lb.select(req).ok().map(|p| short(&p.member().id().to_string()))).collect();
            let detail = format!(
                "smooth WRR does not look at the request: the pick depends on the position in the schedule. \
                 At this position the next pick is {pick}; the picks after it: {}",
                next.join(" ")
            );
            ("schedule", detail)
        }
        Strategy::Wlc => {
            let loads: Vec<String> = all
                .iter()
                .filter(|s| s.eligible)
                .map(|s| format!("{} {}/{}", s.member.id(), s.in_flight, s.member.effective_weight()))
                .collect();
            let detail = format!(
                "least in-flight per weight, ties by smooth WRR: the pick depends on the requests in flight, not on \
                 the request. In flight/weight now: {}; the next pick is {pick}",
                loads.join(", ")
            );
            ("least_loaded", detail)
        }
    };
    Decision { member: Some(pick), basis, detail }
}

/// The host part of `host:port`, for compact sequences.
fn short(id: &str) -> String {
    id.rsplit_once(':').map_or(id, |(h, _)| h).to_string()
}

/// Seconds, rounded to the microsecond.
fn secs(s: f64) -> f64 {
    crate::report::round6(s)
}

fn table(ex: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {}, strategy {}, at {} s: client {}, uri {}",
        ex.scenario, ex.strategy, ex.at_s, ex.client, ex.uri
    );
    for ch in &ex.channels {
        let eg = match (&ch.endpoint_group, ch.traffic_dial_percentage) {
            (Some(g), Some(d)) => format!(" (endpoint group {g}, dial {d}%)"),
            _ => String::new(),
        };
        let _ = writeln!(out, "\nchannel {}{eg}: tier {}", ch.channel, ch.tier.unwrap_or("none"));
        let mut rows = vec![["member", "weight", "health", "since_s", "in_flight", "share", "eligible / why not"]
            .map(String::from)
            .to_vec()];
        for m in &ch.members {
            let mut why: Vec<String> = if m.eligible {
                vec!["eligible".into()]
            } else {
                m.excluded_by.iter().map(|r| format!("{}: {}", r.code, r.detail)).collect()
            };
            why.extend(m.notes.iter().cloned());
            let weight = if m.weight == m.effective_weight {
                m.weight.to_string()
            } else {
                format!("{} (own {})", m.effective_weight, m.weight)
            };
            let backup = if m.backup { " (backup)" } else { "" };
            rows.push(vec![
                format!("{}{backup}", m.member),
                weight,
                m.health.to_string(),
                m.health_since_s.to_string(),
                m.in_flight.to_string(),
                format!("{:.1}%", m.expected_share * 100.0),
                why.join("; "),
            ]);
        }
        write_rows(&mut out, &rows);
        let _ = writeln!(out, "decision: {} ({})", ch.decision.member.as_deref().unwrap_or("none"), ch.decision.basis);
        let _ = writeln!(out, "  {}", ch.decision.detail);
        if !ch.preference.is_empty() {
            let _ = writeln!(out, "preference order: {}", ch.preference.join(" > "));
        }
    }
    out
}

/// Columns padded to their widest cell (the last one left ragged).
fn write_rows(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}
