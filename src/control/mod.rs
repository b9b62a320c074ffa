//! `lbsim serve`: the cloud APIs' REST endpoints over the live data plane (architecture.md §9).
//!
//! A hyper 1 server with a small router over path segments: the API is a fixed table of
//! [`ROUTES`] (method, path template, API family), which is also what the OpenAPI document is
//! tested against, so that a web framework would add dependencies without removing code.
//!
//! Per request: a request id (echoed in `X-Request-Id`, in error bodies and in the log), the
//! route (404/405 otherwise), the caller's token (401; 403 when a `T@PROJECT` token touches
//! another project), the body up to `max_body_bytes` (413), then the handler. Each handler runs
//! in its own task: a panic becomes a 500 that says "System error" and nothing else.
//!
//! Every channel runs its own proxy on a loopback port (see [`dataplane`]); `/lbsim/channels`
//! tells which.

pub mod auth;
pub mod dataplane;
pub mod errors;
mod ga;
pub mod ids;
mod lbsim;
mod sdrs;
mod server;
pub mod sign;
pub mod state;
pub mod store;
mod vpc_channels;
mod zstack;

pub use self::server::{Handler, ServeConfig, ServeError, Server};

use self::auth::Scope;
use self::errors::ApiError;
use self::state::{Control, Registry};
use crate::model::{self, Api, Validate};
use bytes::Bytes;
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// The OpenAPI 3 document of this API, kept in the repository.
pub const OPENAPI: &str = include_str!("../../openapi/lbsim.json");

/// What an endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateChannels,
    ListChannels,
    ShowChannel,
    UpdateChannel,
    DeleteChannel,
    UpsertGroups,
    ListGroups,
    DeleteGroup,
    UpsertMembers,
    ListMembers,
    DeleteMember,
    ZstackAddServers,
    CreateEndpointGroup,
    ListEndpointGroups,
    ShowEndpointGroup,
    DeleteEndpointGroup,
    AddEndpoint,
    ListEndpoints,
    DeleteEndpoint,
    CreateProtectionGroup,
    ListProtectionGroups,
    ShowProtectionGroup,
    DeleteProtectionGroup,
    ProtectionGroupAction,
    ShowJob,
    LbsimChannels,
    LbsimChannel,
    InjectFault,
    ClearFaults,
    OpenApi,
}

/// One endpoint: method, path template (`{name}` matches one segment), API family, operation.
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub api: Api,
    op: Op,
}

const fn r(method: &'static str, path: &'static str, api: Api, op: Op) -> Route {
    Route { method, path, api, op }
}

const CH: &str = "/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}";

/// Every endpoint the server answers.
pub const ROUTES: &[Route] = &[
    r("POST", "/v2/{project_id}/apic/vpc-channels", Api::Roma, Op::CreateChannels),
    r("GET", "/v2/{project_id}/apic/instances/{instance_id}/vpc-channels", Api::Roma, Op::ListChannels),
    r("GET", CH, Api::Roma, Op::ShowChannel),
    r("PUT", CH, Api::Roma, Op::UpdateChannel),
    r("DELETE", CH, Api::Roma, Op::DeleteChannel),
    r(
        "POST",
        concat!("/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}", "/member-groups"),
        Api::Roma,
        Op::UpsertGroups,
    ),
    r(
        "GET",
        concat!("/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}", "/member-groups"),
        Api::Roma,
        Op::ListGroups,
    ),
    r(
        "DELETE",
        concat!(
            "/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}",
            "/member-groups/{member_group_id}"
        ),
        Api::Roma,
        Op::DeleteGroup,
    ),
    r(
        "POST",
        concat!("/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}", "/members"),
        Api::Roma,
        Op::UpsertMembers,
    ),
    r(
        "GET",
        concat!("/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}", "/members"),
        Api::Roma,
        Op::ListMembers,
    ),
    r(
        "DELETE",
        concat!("/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}", "/members/{member_id}"),
        Api::Roma,
        Op::DeleteMember,
    ),
    r(
        "POST",
        "/zstack/v1/load-balancers/servergroups/{serverGroupUuid}/backendservers",
        Api::Zstack,
        Op::ZstackAddServers,
    ),
    r("POST", "/v1/endpoint-groups", Api::Ga, Op::CreateEndpointGroup),
    r("GET", "/v1/endpoint-groups", Api::Ga, Op::ListEndpointGroups),
    r("GET", "/v1/endpoint-groups/{endpoint_group_id}", Api::Ga, Op::ShowEndpointGroup),
    r("DELETE", "/v1/endpoint-groups/{endpoint_group_id}", Api::Ga, Op::DeleteEndpointGroup),
    r("POST", "/v1/endpoint-groups/{endpoint_group_id}/endpoints", Api::Ga, Op::AddEndpoint),
    r("GET", "/v1/endpoint-groups/{endpoint_group_id}/endpoints", Api::Ga, Op::ListEndpoints),
    r("DELETE", "/v1/endpoint-groups/{endpoint_group_id}/endpoints/{endpoint_id}", Api::Ga, Op::DeleteEndpoint),
    r("POST", "/v1/{project_id}/server-groups", Api::Sdrs, Op::CreateProtectionGroup),
    r("GET", "/v1/{project_id}/server-groups", Api::Sdrs, Op::ListProtectionGroups),
    r("GET", "/v1/{project_id}/server-groups/{server_group_id}", Api::Sdrs, Op::ShowProtectionGroup),
    r("DELETE", "/v1/{project_id}/server-groups/{server_group_id}", Api::Sdrs, Op::DeleteProtectionGroup),
    r("POST", "/v1/{project_id}/server-groups/{server_group_id}/action", Api::Sdrs, Op::ProtectionGroupAction),
    r("GET", "/v1/{project_id}/jobs/{job_id}", Api::Sdrs, Op::ShowJob),
    r("GET", "/lbsim/channels", Api::Scenario, Op::LbsimChannels),
    r("GET", "/lbsim/channels/{vpc_channel_id}", Api::Scenario, Op::LbsimChannel),
    r("POST", "/lbsim/channels/{vpc_channel_id}/members/{member}/faults", Api::Scenario, Op::InjectFault),
    r("DELETE", "/lbsim/channels/{vpc_channel_id}/members/{member}/faults", Api::Scenario, Op::ClearFaults),
    r("GET", "/openapi.json", Api::Scenario, Op::OpenApi),
];

/// Path parameters of a matched route, percent-decoded.
#[derive(Debug, Default)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }
}

fn match_template(template: &'static str, path: &str) -> Option<Params> {
    let mut t = template.split('/').filter(|s| !s.is_empty());
    let mut p = path.split('/').filter(|s| !s.is_empty());
    let mut params = Params::default();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => match ts.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                Some(name) => params.0.push((name, percent_decode(ps))),
                None if ts == ps => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The family whose error shape answers a path that matched no route.
fn api_of_path(path: &str) -> Api {
    if path.starts_with("/zstack/") {
        Api::Zstack
    } else if path.starts_with("/v1/endpoint-groups") {
        Api::Ga
    } else if path.starts_with("/v1/") {
        Api::Sdrs
    } else if path.starts_with("/lbsim") {
        Api::Scenario
    } else {
        Api::Roma
    }
}

/// What a handler sees.
pub struct Ctx {
    pub control: Arc<Control>,
    pub request_id: String,
    pub scope: Scope,
    pub params: Params,
    pub api: Api,
}

impl Ctx {
    /// 403 unless the caller may touch `project`'s resources.
    pub fn allow(&self, project: &str) -> Result<(), ApiError> {
        if self.scope.allows(project) {
            Ok(())
        } else {
            Err(ApiError::forbidden(self.api))
        }
    }

    /// Logs the cause with the request id; the client gets a bare 500.
    pub fn internal(&self, cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(request_id = %self.request_id, error = %cause, "internal error");
        ApiError::internal(self.api)
    }

    pub async fn registry(&self) -> tokio::sync::MutexGuard<'_, Registry> {
        self.control.registry.lock().await
    }

    /// Makes a record durable before the change is acknowledged (500 if it cannot be).
    pub async fn save<T: serde::Serialize>(&self, kind: &'static str, id: &str, value: &T) -> Result<(), ApiError> {
        self.control.save(kind, id, value).await.map_err(|e| self.internal(&e))
    }

    pub async fn forget(&self, kind: &'static str, id: &str) -> Result<(), ApiError> {
        self.control.forget(kind, id).await.map_err(|e| self.internal(&e))
    }
}

/// A success answer.
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Handled {
        Ok(Reply { status, body: Some(body) })
    }

    pub fn no_content() -> Handled {
        Ok(Reply { status: StatusCode::NO_CONTENT, body: None })
    }
}

pub type Handled = Result<Reply, ApiError>;

/// Parses and validates a cloud API's request body (one of `model`'s types): every problem at once.
pub fn seed_body<T: Validate + DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid(T::API, model::Problem::Malformed, "", "the body is not UTF-8"))?;
    model::parse_body::<T>(text).map_err(|e| ApiError::validation(T::API, e))
}

/// Parses a body that `model` does not define (lbsim's own, or the APIs' smaller calls such as
/// GA's add-endpoint and SDRS's failover action).
pub fn plain_body<T: DeserializeOwned>(api: Api, body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid(api, model::Problem::Malformed, "", "the body is not UTF-8"))?;
    let value = model::parse_text(text, model::Format::Json, api).map_err(|e| ApiError::validation(api, e))?;
    model::from_value(value, api).map_err(|e| ApiError::validation(api, e))
}

async fn dispatch(op: Op, ctx: Ctx, body: Bytes) -> Handled {
    let b = &body[..];
    match op {
        Op::CreateChannels => vpc_channels::create(&ctx, b).await,
        Op::ListChannels => vpc_channels::list(&ctx).await,
        Op::ShowChannel => vpc_channels::show(&ctx).await,
        Op::UpdateChannel => vpc_channels::update(&ctx, b).await,
        Op::DeleteChannel => vpc_channels::delete(&ctx).await,
        Op::UpsertGroups => vpc_channels::upsert_groups(&ctx, b).await,
        Op::ListGroups => vpc_channels::list_groups(&ctx).await,
        Op::DeleteGroup => vpc_channels::delete_group(&ctx).await,
        Op::UpsertMembers => vpc_channels::upsert_members(&ctx, b).await,
        Op::ListMembers => vpc_channels::list_members(&ctx).await,
        Op::DeleteMember => vpc_channels::delete_member(&ctx).await,
        Op::ZstackAddServers => zstack::add_backend_servers(&ctx, b).await,
        Op::CreateEndpointGroup => ga::create(&ctx, b).await,
        Op::ListEndpointGroups => ga::list(&ctx).await,
        Op::ShowEndpointGroup => ga::show(&ctx).await,
        Op::DeleteEndpointGroup => ga::delete(&ctx).await,
        Op::AddEndpoint => ga::add_endpoint(&ctx, b).await,
        Op::ListEndpoints => ga::list_endpoints(&ctx).await,
        Op::DeleteEndpoint => ga::delete_endpoint(&ctx).await,
        Op::CreateProtectionGroup => sdrs::create(&ctx, b).await,
        Op::ListProtectionGroups => sdrs::list(&ctx).await,
        Op::ShowProtectionGroup => sdrs::show(&ctx).await,
        Op::DeleteProtectionGroup => sdrs::delete(&ctx).await,
        Op::ProtectionGroupAction => sdrs::action(&ctx, b).await,
        Op::ShowJob => sdrs::show_job(&ctx).await,
        Op::LbsimChannels => lbsim::channels(&ctx).await,
        Op::LbsimChannel => lbsim::channel(&ctx).await,
        Op::InjectFault => lbsim::inject(&ctx, b).await,
        Op::ClearFaults => lbsim::clear(&ctx).await,
        Op::OpenApi => match serde_json::from_str(OPENAPI) {
            Ok(v) => Reply::json(StatusCode::OK, v),
            Err(e) => Err(ctx.internal(&e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_segments() {
        let p = match_template("/v1/{project_id}/jobs/{job_id}", "/v1/p1/jobs/j%3A1").unwrap();
        assert_eq!((p.get("project_id"), p.get("job_id")), ("p1", "j:1"));
        assert!(match_template("/v1/{project_id}/jobs/{job_id}", "/v1/p1/jobs").is_none());
        assert!(match_template("/v1/{project_id}/jobs/{job_id}", "/v1/p1/jobs/j/x").is_none());
        assert!(match_template("/v1/endpoint-groups", "/v1/endpoint-groupsx").is_none());
    }

    #[test]
    fn every_route_is_distinct() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(a.method != b.method || a.path != b.path, "{} {} twice", a.method, a.path);
            }
        }
    }
}
