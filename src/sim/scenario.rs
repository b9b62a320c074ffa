//! Scenario files (architecture.md §5): TOML or JSON by extension. The API bodies (`[channel]`,
//! `[[endpoint_groups]]`, `[[server_groups]]`, `[protection_group]`, `[[changes]]`) are the cloud
//! APIs' request bodies field for field and are checked by `model`'s validators with their own
//! error codes; lbsim's own sections use `LBSIM.xxxx` codes. Every error of a file is reported at once.

// Range checks are written `!(x > 0.0)` on purpose: a NaN must fail them.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use crate::balancer::{MemberId, Options, Strategy};
use crate::model::{
    from_value_collect, parse_text, Api, BackendServersBody, Collector, FieldError, Format, MemberGroupsBody, Problem,
    ProtectionGroupBody, Validate, ValidationErrors, VpcChannel,
};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

use super::plan::Plan;
use super::traffic::Traffic;

mod edit;
mod sections;

pub use edit::{add_backend_servers, member_ids, upsert_member_groups};
use sections::{
    changes, channels, check_backends, check_fault, check_protection_azs, check_run, protection_group, server_groups,
};

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
    /// An add-or-update-member-groups body: upsert member groups into the channel.
    MemberGroups(MemberGroupsBody),
    /// A ZStack add-backend-servers body: add weighted members.
    BackendServers(BackendServersBody),
    /// A create-VPC-channel body: replace the channel.
    Channel(Box<VpcChannel>),
}

/// SDRS protection group (`[protection_group]`).
#[derive(Debug, Clone)]
pub struct ProtectionSpec {
    pub body: ProtectionGroupBody,
    pub failover_s: f64,
}

/// The file as written: lbsim's own sections typed, the API bodies kept as values so that each is
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

/// Parses one API body found at `path`, validates it, and collects its errors under the path.
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
    // Problems in the cloud APIs' bodies (with those APIs' codes) come first, then lbsim's own.
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
