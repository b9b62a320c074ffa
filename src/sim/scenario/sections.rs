//! The scenario file's sections, each checked and turned into its typed form. Problems in the
//! cloud APIs' bodies go to `errors` (with those APIs' own codes), lbsim's own to `own`
//! (`LBSIM.*`); each function reports its problems in the order it finds them.

// Range checks are written `!(x > 0.0)` on purpose: a NaN must fail them.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::{
    add_backend_servers, seed_body, BackendSpec, Change, ChangeKind, ChannelSpec, FaultKind, FaultSpec, ProtectionSpec,
    RawChange, RawEndpointGroup, RawProtection, RawScenario, RawServerGroup,
};
use crate::balancer::{MemberId, Strategy};
use crate::model::{
    BackendServersBody, Collector, EndpointGroupBody, FieldError, MemberGroupsBody, Problem, ProtectionGroupBody,
    VpcChannel,
};
use serde_json::Value;

/// The run's own settings: duration, timeline, strategies, `[balancer]` and `[traffic]`.
pub(super) fn check_run(raw: &RawScenario, own: &mut Collector) -> Vec<Strategy> {
    if !(raw.duration_s > 0.0 && raw.duration_s <= 86_400.0 * 365.0) {
        own.invalid("duration_s", format!("must be above 0 (seconds), got {}", raw.duration_s));
    }
    if !(raw.timeline_step_s > 0.0) {
        own.invalid("timeline_step_s", format!("must be above 0 (seconds), got {}", raw.timeline_step_s));
    } else if raw.duration_s / raw.timeline_step_s > 100_000.0 {
        own.invalid("timeline_step_s", "gives more than 100000 timeline windows; use a larger step");
    }
    let strategies = strategies(raw.strategies.as_deref(), own);
    if let Some(p) = raw.balancer.panic_threshold {
        if !(1..=100).contains(&p) {
            own.invalid("balancer.panic_threshold", format!("must be within 1-100 (percent), got {p}"));
        }
    }
    if let Some(bits) = raw.balancer.hash_table_bits {
        if !(12..=24).contains(&bits) {
            own.invalid("balancer.hash_table_bits", format!("must be within 12-24, got {bits}"));
        }
    }
    crate::sim::options_check::check(&raw.balancer, own);
    raw.traffic.check(own, "traffic");
    strategies
}

/// `strategies` (default: all four), each once.
pub(super) fn strategies(list: Option<&[Value]>, own: &mut Collector) -> Vec<Strategy> {
    let Some(list) = list else { return Strategy::ALL.to_vec() };
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match text.parse::<Strategy>() {
            Ok(s) if !out.contains(&s) => out.push(s),
            Ok(_) => own.push(Problem::Conflict, format!("strategies[{i}]"), "listed twice"),
            Err(e) => own.invalid(format!("strategies[{i}]"), e),
        }
    }
    if out.is_empty() && list.is_empty() {
        own.missing("strategies");
    }
    out
}

/// One `[channel]`, or one channel per `[[endpoint_groups]]`.
pub(super) fn channels(
    channel: Option<Value>,
    endpoint_groups: Vec<RawEndpointGroup>,
    own: &mut Collector,
    errors: &mut Vec<FieldError>,
) -> Vec<ChannelSpec> {
    let mut channels = Vec::new();
    match (&channel, endpoint_groups.is_empty()) {
        (Some(_), false) => own.push(
            Problem::Conflict,
            "endpoint_groups",
            "a scenario has either a [channel] or [[endpoint_groups]] (each with its channel), not both",
        ),
        (None, true) => own.missing("channel"),
        _ => {}
    }
    if let Some(v) = channel {
        if let Some(channel) = seed_body::<VpcChannel>(v, "channel", errors) {
            channels.push(ChannelSpec { channel, endpoint_group: None });
        }
    }
    for (i, eg) in endpoint_groups.into_iter().enumerate() {
        let path = format!("endpoint_groups[{i}]");
        let group =
            seed_body::<EndpointGroupBody>(serde_json::json!({ "endpoint_group": eg.endpoint_group }), &path, errors);
        let channel = seed_body::<VpcChannel>(eg.channel, &format!("{path}.channel"), errors);
        if let (Some(g), Some(c)) = (group, channel) {
            channels.push(ChannelSpec { channel: c, endpoint_group: Some(g.endpoint_group) });
        }
    }
    channels
}

/// ZStack server groups add members to the `[channel]`.
pub(super) fn server_groups(
    groups: Vec<RawServerGroup>,
    channels: &mut [ChannelSpec],
    own: &mut Collector,
    errors: &mut Vec<FieldError>,
) {
    for (i, sg) in groups.into_iter().enumerate() {
        let path = format!("server_groups[{i}]");
        if sg.uuid.trim().is_empty() {
            own.missing(format!("{path}.uuid"));
        }
        if let Some(body) =
            seed_body::<BackendServersBody>(sg.backendservers, &format!("{path}.backendservers"), errors)
        {
            match channels.first_mut() {
                Some(spec) if spec.endpoint_group.is_none() => add_backend_servers(&mut spec.channel, &body),
                _ => own.push(Problem::Conflict, path, "server groups add members to the [channel], which is missing"),
            }
        }
    }
}

/// `[[changes]]`: each gives exactly one body.
pub(super) fn changes(raw: Vec<RawChange>, own: &mut Collector, errors: &mut Vec<FieldError>) -> Vec<Change> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let path = format!("changes[{i}]");
            if !(c.at_s >= 0.0) {
                own.invalid(format!("{path}.at_s"), format!("must be 0 or more, got {}", c.at_s));
            }
            let given = [c.member_groups.is_some(), c.backendservers.is_some(), c.channel.is_some()];
            if given.iter().filter(|&&g| g).count() != 1 {
                own.push(Problem::Conflict, path.clone(), "give exactly one of member_groups, backendservers, channel");
                return None;
            }
            let what = if let Some(v) = c.member_groups {
                let body = seed_body::<MemberGroupsBody>(serde_json::json!({ "member_groups": v }), &path, errors)?;
                ChangeKind::MemberGroups(body)
            } else if let Some(v) = c.backendservers {
                ChangeKind::BackendServers(seed_body(v, &format!("{path}.backendservers"), errors)?)
            } else {
                ChangeKind::Channel(Box::new(seed_body(c.channel?, &format!("{path}.channel"), errors)?))
            };
            Some(Change { at_s: c.at_s, what })
        })
        .collect()
}

pub(super) fn protection_group(
    raw: Option<RawProtection>,
    own: &mut Collector,
    errors: &mut Vec<FieldError>,
) -> Option<ProtectionSpec> {
    let p = raw?;
    if !(p.failover_s >= 0.0) {
        own.invalid("protection_group.failover_s", format!("must be 0 or more, got {}", p.failover_s));
    }
    let body = seed_body::<ProtectionGroupBody>(
        serde_json::json!({ "server_group": p.server_group }),
        "protection_group",
        errors,
    )?;
    Some(ProtectionSpec { body, failover_s: p.failover_s })
}

/// `[[backends]]`: each names a member once, with a positive speed and at least one slot.
pub(super) fn check_backends(backends: &[BackendSpec], members: &[MemberId], own: &mut Collector) {
    for (i, b) in backends.iter().enumerate() {
        let path = format!("backends[{i}]");
        check_member_ref(own, &format!("{path}.member"), &b.member, members);
        if !(b.speed > 0.0 && b.speed.is_finite()) {
            own.invalid(format!("{path}.speed"), format!("must be above 0, got {}", b.speed));
        }
        if b.max_in_flight == 0 {
            own.invalid(format!("{path}.max_in_flight"), "must be at least 1");
        }
        if backends[..i].iter().any(|o| o.member == b.member) {
            own.push(Problem::Conflict, format!("{path}.member"), format!("`{}` is described twice", b.member));
        }
    }
}

/// The protection group's source and target AZs must each hold a member.
pub(super) fn check_protection_azs(p: &ProtectionSpec, azs: &[&str], own: &mut Collector) {
    for (field, az) in [
        ("source_availability_zone", &p.body.server_group.source_availability_zone),
        ("target_availability_zone", &p.body.server_group.target_availability_zone),
    ] {
        if !azs.contains(&az.as_str()) {
            own.push(
                Problem::NotFound,
                format!("protection_group.server_group.{field}"),
                format!("no member is placed in `{az}` (set `az` in [[backends]])"),
            );
        }
    }
}

pub(super) fn check_member_ref(c: &mut Collector, path: &str, member: &str, members: &[MemberId]) {
    match MemberId::parse(member) {
        Some(id) if members.contains(&id) => {}
        Some(_) => c.push(Problem::NotFound, path, format!("`{member}` is not a member of the scenario's channels")),
        None => c.invalid(path, format!("`{member}` is not `host:port`")),
    }
}

pub(super) fn check_fault(
    c: &mut Collector,
    path: &str,
    f: &FaultSpec,
    members: &[MemberId],
    azs: &[&str],
    duration: f64,
) {
    match (f.kind, &f.member, &f.az) {
        (FaultKind::AzDown, _, None) => c.missing(format!("{path}.az")),
        (FaultKind::AzDown, Some(_), _) => {
            c.push(Problem::Conflict, format!("{path}.member"), "an az_down fault names an `az`, not a member")
        }
        (FaultKind::AzDown, None, Some(az)) if !azs.contains(&az.as_str()) => c.push(
            Problem::NotFound,
            format!("{path}.az"),
            format!("no member is placed in `{az}` (set `az` in [[backends]])"),
        ),
        (FaultKind::AzDown, None, Some(_)) => {}
        (_, None, _) => c.missing(format!("{path}.member")),
        (_, Some(_), Some(_)) => c.push(Problem::Conflict, format!("{path}.az"), "only az_down faults name an `az`"),
        (_, Some(m), None) => check_member_ref(c, &format!("{path}.member"), m, members),
    }
    if !(f.at_s >= 0.0 && f.at_s <= duration) {
        c.invalid(format!("{path}.at_s"), format!("must be within 0-{duration} (the run), got {}", f.at_s));
    }
    if let Some(u) = f.until_s {
        if !(u > f.at_s) {
            c.invalid(format!("{path}.until_s"), format!("must be after at_s ({}), got {u}", f.at_s));
        }
    }
    let need = |c: &mut Collector, field: &str, v: Option<f64>, ok: &dyn Fn(f64) -> bool, what: &str| match v {
        None => c.missing(format!("{path}.{field}")),
        Some(x) if !ok(x) => c.invalid(format!("{path}.{field}"), format!("{what}, got {x}")),
        _ => {}
    };
    match f.kind {
        FaultKind::Slow => need(c, "factor", f.factor, &|x| x > 0.0 && x.is_finite(), "must be above 0"),
        FaultKind::Errors => need(c, "rate", f.rate, &|x| (0.0..=1.0).contains(&x), "must be within 0-1"),
        FaultKind::Flap => need(c, "period_s", f.period_s, &|x| x > 0.0 && x.is_finite(), "must be above 0"),
        _ => {}
    }
    let extra = [
        ("factor", f.factor.is_some() && f.kind != FaultKind::Slow),
        ("rate", f.rate.is_some() && f.kind != FaultKind::Errors),
        ("period_s", f.period_s.is_some() && f.kind != FaultKind::Flap),
    ];
    for (field, bad) in extra {
        if bad {
            c.invalid(format!("{path}.{field}"), format!("does not apply to a `{}` fault", f.kind.as_str()));
        }
    }
}
