//! ROMA Connect's create-VPC-channel and add-or-update-member-groups APIs: VPC channels, their
//! member groups, members and health check.

use super::{
    at, at_least, idx, ip, microservice, no_duplicates, opt_one_of, opt_range, opt_text, range, required, text, Chars,
    Letters, Text,
};
use crate::model::{
    Api, CheckProtocol, Collector, HttpCodes, MemberGroup, MemberGroupsBody, MemberInfo, MemberType, Problem,
    ServiceType, Validate, ValidationErrors, VpcChannel, VpcChannelType, VpcHealthConfig,
};

/// Channel and member-group names: 3-64, a letter first, then letters, digits, `-`, `_`, `.`.
const NAME: Text =
    Text::of(3, 64, Chars::set(Letters::Unicode, true, "-_.")).first(Chars::set(Letters::Unicode, false, ""));
/// `dict_code`: 3-64 of letters, digits, `-`, `_`.
const DICT_CODE: Text = Text::of(3, 64, Chars::set(Letters::Ascii, true, "-_"));
/// Microservice label names and values: 1-63, letters or digits at both ends.
const LABEL: Text = Text::of(1, 63, Chars::set(Letters::Ascii, true, "-_."))
    .first(Chars::set(Letters::Ascii, true, ""))
    .last(Chars::set(Letters::Ascii, true, ""));
const ECS_ID: Text = Text::of(1, 64, Chars::set(Letters::Ascii, true, "-_"));
const ECS_NAME: Text = Text::of(1, 64, Chars::set(Letters::Ascii, true, "-_."));

/// What the channel allows its member groups to carry.
#[derive(Debug, Clone, Copy, Default)]
struct GroupContext {
    /// Whether the group fields of a particular channel type are checked at all (false in an
    /// add-or-update-member-groups body, which has no channel).
    in_channel: bool,
    microservice: bool,
    reference: bool,
    nacos: bool,
}

impl Validate for VpcChannel {
    const API: Api = Api::Roma;
    fn validate(&self) -> ValidationErrors {
        let mut c = Collector::new(Self::API);
        text(&mut c, "name", &self.name, &NAME);
        range(&mut c, "port", self.port, 1, 65535);
        range(&mut c, "balance_strategy", self.balance_strategy, 1, 4);
        let kind = self.kind.filter(|&k| k != 0);
        opt_one_of(&mut c, "type", kind, &[2, 3]);
        if let (Some(k), Some(t)) = (kind, self.vpc_channel_type) {
            let msg =
                format!("`{t}` cannot be set together with a non-zero type (got type={k}); leave type empty or 0");
            c.push(Problem::Conflict, "vpc_channel_type", msg);
        }
        opt_text(&mut c, "dict_code", self.dict_code.as_deref(), &DICT_CODE);
        instance_ids(&mut c, &self.instance_ids);

        let ctx = GroupContext {
            in_channel: true,
            microservice: self.vpc_channel_type == Some(VpcChannelType::Microservice)
                || (self.vpc_channel_type.is_none() && kind == Some(3) && self.microservice_info.is_some()),
            reference: self.vpc_channel_type == Some(VpcChannelType::Reference),
            nacos: self.microservice_info.as_ref().and_then(|m| m.service_type) == Some(ServiceType::Nacos),
        };
        member_groups(&mut c, &self.member_groups, ctx);
        members(&mut c, self);
        if let Some(h) = &self.vpc_health_config {
            health_config(&mut c, "vpc_health_config", h);
        }
        match &self.microservice_info {
            Some(m) => microservice::info(&mut c, "microservice_info", m),
            None if self.vpc_channel_type == Some(VpcChannelType::Microservice) => c.missing("microservice_info"),
            None => {}
        }
        c.finish()
    }
}

impl Validate for MemberGroupsBody {
    const API: Api = Api::Roma;
    fn validate(&self) -> ValidationErrors {
        let mut c = Collector::new(Self::API);
        member_groups(&mut c, &self.member_groups, GroupContext::default());
        c.finish()
    }
}

fn instance_ids(c: &mut Collector, ids: &[String]) {
    match ids.len() {
        0 => c.missing("instance_ids"),
        1..=10 => {}
        n => c.invalid("instance_ids", format!("must list 1-10 instance IDs, got {n}")),
    }
    let mut present = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let path = idx("instance_ids", i);
        if required(c, &path, id) {
            present.push((path, id.as_str()));
        }
    }
    no_duplicates(c, present, "instance ID");
}

/// Every group's own rules. Duplicate names are not errors: the first definition wins.
fn member_groups(c: &mut Collector, groups: &[MemberGroup], ctx: GroupContext) {
    for (i, g) in groups.iter().enumerate() {
        let base = idx("member_groups", i);
        text(c, &at(&base, "member_group_name"), &g.member_group_name, &NAME);
        match g.member_group_weight {
            Some(_) if ctx.nacos => c.invalid(
                at(&base, "member_group_weight"),
                "cannot be set manually for NACOS (microservice_info.service_type=NACOS)",
            ),
            w => {
                opt_range(c, &at(&base, "member_group_weight"), w, 0, 100);
            }
        }
        opt_text(c, &at(&base, "dict_code"), g.dict_code.as_deref(), &DICT_CODE);
        microservice_fields(c, &base, g, ctx);
        let set = g.reference_vpc_channel_id.as_deref().is_some_and(|s| !s.is_empty());
        if ctx.in_channel && !ctx.reference && set {
            c.invalid(
                at(&base, "reference_vpc_channel_id"),
                "is supported only on a reference channel (vpc_channel_type=reference)",
            );
        }
    }
}

/// `microservice_version`, `microservice_port` and `microservice_labels`: only on a microservice
/// channel. An empty version and port 0 are what the API itself echoes for "not set".
fn microservice_fields(c: &mut Collector, base: &str, g: &MemberGroup, ctx: GroupContext) {
    let allowed = !ctx.in_channel || ctx.microservice;
    const ONLY: &str =
        "is supported only on a microservice channel (vpc_channel_type=microservice, or type=3 with microservice_info)";
    if g.microservice_version.as_deref().is_some_and(|v| !v.is_empty()) && !allowed {
        c.invalid(at(base, "microservice_version"), ONLY);
    }
    let port_path = at(base, "microservice_port");
    match g.microservice_port {
        Some(p) if p != 0 && !allowed => c.invalid(port_path, ONLY),
        p => {
            opt_range(c, &port_path, p, 0, 65535);
        }
    }
    let labels_path = at(base, "microservice_labels");
    if !g.microservice_labels.is_empty() && !allowed {
        c.invalid(labels_path, ONLY);
        return;
    }
    for (j, l) in g.microservice_labels.iter().enumerate() {
        let lb = idx(&labels_path, j);
        text(c, &at(&lb, "label_name"), &l.label_name, &LABEL);
        text(c, &at(&lb, "label_value"), &l.label_value, &LABEL);
    }
}

fn members(c: &mut Collector, ch: &VpcChannel) {
    let mut identities = Vec::new();
    for (i, m) in ch.members.iter().enumerate() {
        let base = idx("members", i);
        let id = member_identity(c, &base, m, ch.member_type);
        opt_range(c, &at(&base, "weight"), m.weight, 0, 100);
        let port_ok = opt_range(c, &at(&base, "port"), m.port, 0, 65535);
        opt_one_of(c, &at(&base, "status"), m.status, &[1, 2]);
        if let Some(name) = m.member_group_name.as_deref().filter(|n| !n.is_empty()) {
            if !ch.member_groups.iter().any(|g| g.member_group_name == name) {
                c.push(
                    Problem::NotFound,
                    at(&base, "member_group_name"),
                    format!("member group `{name}` is not defined in member_groups"),
                );
            }
        }
        if let (Some(id), true) = (id, port_ok) {
            let port = m.port.filter(|&p| p != 0).unwrap_or(ch.port);
            identities.push((base, format!("{id}:{port}")));
        }
    }
    no_duplicates(c, identities, "member");
}

/// Checks `host` (ip) or `ecs_id`/`ecs_name` (ecs); returns the member's identity without its
/// port when it is valid.
fn member_identity(c: &mut Collector, base: &str, m: &MemberInfo, member_type: MemberType) -> Option<String> {
    match member_type {
        MemberType::Ip => {
            let path = at(base, "host");
            let host = m.host.as_deref().unwrap_or("");
            if !required(c, &path, host) {
                return None;
            }
            if let Some(addr) = ip(host) {
                return Some(match addr {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                });
            }
            if is_hostname(host) {
                return Some(host.to_ascii_lowercase());
            }
            c.invalid(
                path,
                format!(
                    "must be an IPv4/IPv6 address or a DNS hostname (labels of letters, digits and `-`, \
                     at most 253 characters), got `{host}`"
                ),
            );
            None
        }
        MemberType::Ecs => {
            let id = m.ecs_id.as_deref().unwrap_or("");
            let id_ok = text(c, &at(base, "ecs_id"), id, &ECS_ID);
            text(c, &at(base, "ecs_name"), m.ecs_name.as_deref().unwrap_or(""), &ECS_NAME);
            id_ok.then(|| id.to_string())
        }
    }
}

/// A DNS hostname: at most 253 characters, dot-separated non-empty labels of letters, digits, `-`.
/// The last label is not all digits, so that a malformed IPv4 address (`10.0.0.256`) is not
/// taken for a hostname.
fn is_hostname(s: &str) -> bool {
    let label_ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    s.len() <= 253
        && s.split('.').all(label_ok)
        && !s.rsplit('.').next().is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
}

fn health_config(c: &mut Collector, base: &str, h: &VpcHealthConfig) {
    let http = matches!(h.protocol, CheckProtocol::Http | CheckProtocol::Https);
    let path_path = at(base, "path");
    match h.path.as_deref().filter(|p| !p.is_empty()) {
        None if http => c.missing(path_path),
        Some(p) if !p.starts_with('/') => c.invalid(path_path, format!("must start with `/`, got `{p}`")),
        _ => {}
    }
    opt_range(c, &at(base, "port"), h.port, 0, 65535);
    at_least(c, &at(base, "threshold_normal"), h.threshold_normal, 1);
    at_least(c, &at(base, "threshold_abnormal"), h.threshold_abnormal, 1);
    let interval_ok = at_least(c, &at(base, "time_interval"), h.time_interval, 1);
    let timeout_ok = at_least(c, &at(base, "timeout"), h.timeout, 1);
    if interval_ok && timeout_ok && h.timeout >= h.time_interval {
        c.invalid(
            at(base, "timeout"),
            format!("must be less than time_interval, got timeout {} and time_interval {}", h.timeout, h.time_interval),
        );
    }
    let code_path = at(base, "http_code");
    match h.http_code.as_deref().filter(|s| !s.is_empty()) {
        None if http => c.missing(code_path),
        Some(codes) => {
            if let Err(msg) = HttpCodes::parse(codes) {
                c.invalid(code_path, msg);
            }
        }
        None => {}
    }
    opt_one_of(c, &at(base, "status"), h.status, &[1, 2]);
}
