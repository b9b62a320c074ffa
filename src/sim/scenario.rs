//! Scenario files (DESIGN §5): TOML or JSON by extension. The seed bodies (`[channel]`,
//! `[[endpoint_groups]]`, `[[server_groups]]`, `[protection_group]`, `[[changes]]`) are the seeds'
//! request bodies field for field and are checked by the seed validators with their own error
//! codes; lbsim's own sections use `LBSIM.xxxx` codes. Every error of a file is reported at once.

// Range checks are written `!(x > 0.0)` on purpose: a NaN must fail them.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use crate::balancer::{MemberId, Options, Strategy};
use crate::model::{
    from_value_collect, parse_text, Api, BackendServersBody, Collector, EndpointGroupBody, FieldError, Format,
    MemberGroupsBody, Problem, ProtectionGroupBody, Validate, ValidationErrors, VpcChannel,
};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

use super::plan::Plan;
use super::traffic::Traffic;

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub duration_s: f64,
    pub timeline_step_s: f64,
    pub strategies: Vec<Strategy>,
    pub balancer: Options,
    pub traffic: Traffic,
    /// One channel per endpoint group (GA), or the single `[channel]` (with ZStack members added).
    pub channels: Vec<ChannelSpec>,
    pub backends: Vec<BackendSpec>,
    pub faults: Vec<FaultSpec>,
    pub changes: Vec<Change>,
    pub protection_group: Option<ProtectionSpec>,
    /// Members, backends and faults resolved once ([`Scenario::plan`]).
    plan: Plan,
}

/// A channel and, for GA, the endpoint group it serves.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub channel: VpcChannel,
    pub endpoint_group: Option<crate::model::EndpointGroup>,
}

/// How one simulated member behaves (`[[backends]]`); defaults for the members not listed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    pub member: String,
    #[serde(default = "one")]
    pub speed: f64,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    #[serde(default)]
    pub az: Option<String>,
}

fn one() -> f64 {
    1.0
}
fn default_max_in_flight() -> u32 {
    256
}
fn default_max_queue() -> u32 {
    1024
}

impl BackendSpec {
    pub fn default_for(member: MemberId) -> BackendSpec {
        BackendSpec {
            member: member.to_string(),
            speed: 1.0,
            max_in_flight: default_max_in_flight(),
            max_queue: default_max_queue(),
            az: None,
        }
    }
}

/// A fault over a time window (`[[faults]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(default)]
    pub member: Option<String>,
    #[serde(default)]
    pub az: Option<String>,
    pub kind: FaultKind,
    pub at_s: f64,
    #[serde(default)]
    pub until_s: Option<f64>,
    /// `slow`: service-time multiplier.
    #[serde(default)]
    pub factor: Option<f64>,
    /// `errors`: fraction of answers that are 500.
    #[serde(default)]
    pub rate: Option<f64>,
    /// `flap`: seconds down, then as many up, in turns.
    #[serde(default)]
    pub period_s: Option<f64>,
}

impl FaultSpec {
    /// A check notices this fault if it turns an affected member unhealthy from `at_s` until
    /// this time: the fault's end plus one check timeout, since a check started inside the window
    /// may complete that much later (no end: never).
    pub fn detection_end(&self, check_timeout_s: f64) -> f64 {
        self.until_s.map_or(f64::INFINITY, |u| u + check_timeout_s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Down,
    Slow,
    Errors,
    Flap,
    AzDown,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Down => "down",
            FaultKind::Slow => "slow",
            FaultKind::Errors => "errors",
            FaultKind::Flap => "flap",
            FaultKind::AzDown => "az_down",
        }
    }
}

/// A configuration change applied at a simulated time (`[[changes]]`).
#[derive(Debug, Clone)]
pub struct Change {
    pub at_s: f64,
    pub what: ChangeKind,
}

#[derive(Debug, Clone)]
pub enum ChangeKind {
    /// Seed 000: upsert member groups into the channel.
    MemberGroups(MemberGroupsBody),
    /// Seed 002: add weighted members (ZStack).
    BackendServers(BackendServersBody),
    /// Seed 001: replace the channel.
    Channel(Box<VpcChannel>),
}

/// SDRS protection group (`[protection_group]`).
#[derive(Debug, Clone)]
pub struct ProtectionSpec {
    pub body: ProtectionGroupBody,
    pub failover_s: f64,
}

/// The file as written: lbsim's own sections typed, seed bodies kept as values so that each is
/// checked by its own validator with its own codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default = "default_duration")]
    duration_s: f64,
    #[serde(default = "one")]
    timeline_step_s: f64,
    #[serde(default)]
    strategies: Option<Vec<Value>>,
    #[serde(default)]
    balancer: Options,
    #[serde(default)]
    traffic: Traffic,
    #[serde(default)]
    channel: Option<Value>,
    #[serde(default)]
    backends: Vec<BackendSpec>,
    #[serde(default)]
    faults: Vec<FaultSpec>,
    #[serde(default)]
    changes: Vec<RawChange>,
    #[serde(default)]
    endpoint_groups: Vec<RawEndpointGroup>,
    #[serde(default)]
    server_groups: Vec<RawServerGroup>,
    #[serde(default)]
    protection_group: Option<RawProtection>,
}

fn default_name() -> String {
    "scenario".into()
}
fn default_seed() -> u64 {
    1
}
fn default_duration() -> f64 {
    60.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    at_s: f64,
    #[serde(default)]
    member_groups: Option<Value>,
    #[serde(default)]
    backendservers: Option<Value>,
    #[serde(default)]
    channel: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpointGroup {
    endpoint_group: Value,
    channel: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerGroup {
    uuid: String,
    backendservers: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtection {
    server_group: Value,
    #[serde(default = "default_failover")]
    failover_s: f64,
}

fn default_failover() -> f64 {
    30.0
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {errors} problem(s):\n{list}", errors = .errors.len(), list = .errors)]
    Invalid { path: String, errors: ValidationErrors },
}

impl LoadError {
    /// The validation errors, if the file was read.
    pub fn errors(&self) -> Option<&ValidationErrors> {
        match self {
            LoadError::Invalid { errors, .. } => Some(errors),
            LoadError::Io { .. } => None,
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
        Scenario::parse(&text, Format::from_path(path))
            .map_err(|errors| LoadError::Invalid { path: path.display().to_string(), errors })
    }

    /// The scenario resolved into what runs it: each member with its backend and the faults that
    /// hit it, each channel with its endpoint group's region and dial.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Parses and validates scenario text.
    pub fn parse(text: &str, format: Format) -> Result<Scenario, ValidationErrors> {
        let value = parse_text(text, format, Api::Scenario)?;
        let (raw, unknown) = from_value_collect::<RawScenario>(value, Api::Scenario);
        match raw {
            Some(raw) => build(raw, unknown),
            None => Err(ValidationErrors { errors: unknown }),
        }
    }
}

/// Parses one seed body found at `path`, validates it, and collects its errors under the path.
fn seed_body<T: Validate + serde::de::DeserializeOwned>(
    v: Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let (body, unknown) = from_value_collect::<T>(v, T::API);
    let clean = unknown.is_empty();
    errors.extend(unknown.into_iter().map(|e| e.under(path)));
    let body = body?;
    let e = body.validate();
    let ok = e.is_empty() && clean;
    errors.extend(e.under(path).errors);
    ok.then_some(body)
}

fn build(raw: RawScenario, unknown: Vec<FieldError>) -> Result<Scenario, ValidationErrors> {
    // Seed bodies' errors (with their own codes) come first, then lbsim's own.
    let mut errors: Vec<FieldError> = unknown;
    let mut own = Collector::new(Api::Scenario);
    let strategies = check_run(&raw, &mut own);
    let mut channels = channels(raw.channel, raw.endpoint_groups, &mut own, &mut errors);
    server_groups(raw.server_groups, &mut channels, &mut own, &mut errors);
    let changes = changes(raw.changes, &mut own, &mut errors);
    let protection_group = protection_group(raw.protection_group, &mut own, &mut errors);
    let members: Vec<MemberId> = channels.iter().flat_map(|c| member_ids(&c.channel)).collect();
    check_backends(&raw.backends, &members, &mut own);
    let azs: Vec<&str> = raw.backends.iter().filter_map(|b| b.az.as_deref()).collect();
    for (i, f) in raw.faults.iter().enumerate() {
        check_fault(&mut own, &format!("faults[{i}]"), f, &members, &azs, raw.duration_s);
    }
    if let Some(p) = &protection_group {
        check_protection_azs(p, &azs, &mut own);
    }
    // Member identities must be unique across endpoint groups.
    for (i, m) in members.iter().enumerate() {
        if members[..i].contains(m) && channels.len() > 1 {
            own.push(Problem::Conflict, "endpoint_groups", format!("member `{m}` is in more than one endpoint group"));
        }
    }

    errors.extend(own.finish().errors);
    if !errors.is_empty() {
        return Err(ValidationErrors { errors });
    }
    let plan = Plan::new(&channels, &raw.backends, &raw.faults);
    Ok(Scenario {
        plan,
        name: raw.name,
        seed: raw.seed,
        duration_s: raw.duration_s,
        timeline_step_s: raw.timeline_step_s,
        strategies,
        balancer: raw.balancer,
        traffic: raw.traffic,
        channels,
        backends: raw.backends,
        faults: raw.faults,
        changes,
        protection_group,
    })
}

/// The run's own settings: duration, timeline, strategies, `[balancer]` and `[traffic]`.
fn check_run(raw: &RawScenario, own: &mut Collector) -> Vec<Strategy> {
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
    super::options_check::check(&raw.balancer, own);
    raw.traffic.check(own, "traffic");
    strategies
}

/// `strategies` (default: all four), each once.
fn strategies(list: Option<&[Value]>, own: &mut Collector) -> Vec<Strategy> {
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
fn channels(
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
fn server_groups(
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
fn changes(raw: Vec<RawChange>, own: &mut Collector, errors: &mut Vec<FieldError>) -> Vec<Change> {
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

fn protection_group(
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
fn check_backends(backends: &[BackendSpec], members: &[MemberId], own: &mut Collector) {
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
fn check_protection_azs(p: &ProtectionSpec, azs: &[&str], own: &mut Collector) {
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

fn check_member_ref(c: &mut Collector, path: &str, member: &str, members: &[MemberId]) {
    match MemberId::parse(member) {
        Some(id) if members.contains(&id) => {}
        Some(_) => c.push(Problem::NotFound, path, format!("`{member}` is not a member of the scenario's channels")),
        None => c.invalid(path, format!("`{member}` is not `host:port`")),
    }
}

fn check_fault(c: &mut Collector, path: &str, f: &FaultSpec, members: &[MemberId], azs: &[&str], duration: f64) {
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

/// Member identities of a channel, in member order ([`MemberId::of`]).
pub fn member_ids(ch: &VpcChannel) -> Vec<MemberId> {
    ch.members.iter().map(|m| MemberId::of(ch, m)).collect()
}

/// Adds a ZStack backendservers body's servers and NICs to a channel as members (weights given
/// as strings). A member that already exists takes the new weight.
pub fn add_backend_servers(ch: &mut VpcChannel, body: &BackendServersBody) {
    let entries = body.params.servers.iter().chain(body.params.vm_nics.iter());
    for entry in entries {
        for (host, weight) in entry {
            let weight = weight.trim().parse::<i64>().unwrap_or(1);
            match ch.members.iter_mut().find(|m| m.host.as_deref() == Some(host.as_str()) && m.port.unwrap_or(0) == 0) {
                Some(m) => m.weight = Some(weight),
                None => ch.members.push(crate::model::MemberInfo {
                    host: Some(host.clone()),
                    weight: Some(weight),
                    ..Default::default()
                }),
            }
        }
    }
}

/// Upserts member groups into a channel by name (the first definition in the body wins).
pub fn upsert_member_groups(ch: &mut VpcChannel, body: &MemberGroupsBody) {
    for g in body.effective() {
        match ch.member_groups.iter_mut().find(|e| e.member_group_name == g.member_group_name) {
            Some(existing) => *existing = g.clone(),
            None => ch.member_groups.push(g.clone()),
        }
    }
}
