//! `/lbsim/...`: what the cloud cannot do but a test needs. Each channel's local proxy address
//! (its `port` is served on an ephemeral loopback port), where each member's traffic goes, and
//! fault injection into the loopback backends that play simulated members.

use super::dataplane::ChannelRuntime;
use super::errors::ApiError;
use super::state::{ChannelRecord, Registry};
use super::{plain_body, Ctx, Handled, Reply};
use crate::balancer::MemberId;
use crate::model::{Api, FieldError, Problem, ValidationErrors};
use crate::sim::scenario::{FaultKind, FaultSpec};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

/// `{"kind": "down" | "slow" | "errors", "factor": 3.0, "rate": 0.5}`: lasts until cleared.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    kind: FaultKind,
    #[serde(default)]
    factor: Option<f64>,
    #[serde(default)]
    rate: Option<f64>,
}

impl FaultBody {
    fn validate(&self) -> ValidationErrors {
        let mut errors = Vec::new();
        let mut bad =
            |path: &str, msg: String| errors.push(FieldError::new(Api::Scenario, Problem::Invalid, path, msg));
        match self.kind {
            FaultKind::Slow if !self.factor.is_some_and(|f| f.is_finite() && f > 0.0) => {
                bad("factor", "a `slow` fault needs a factor > 0".into())
            }
            FaultKind::Errors if !self.rate.is_some_and(|r| (0.0..=1.0).contains(&r)) => {
                bad("rate", "an `errors` fault needs a rate within 0-1".into())
            }
            FaultKind::Flap | FaultKind::AzDown => {
                bad("kind", format!("`{}` cannot be injected; use down, slow or errors", self.kind.as_str()))
            }
            _ => {}
        }
        ValidationErrors { errors }
    }
}

fn view(reg: &Registry, rec: &ChannelRecord) -> Value {
    let rt = reg.runtimes.get(&rec.id).map(|r| &**r);
    let members: Vec<Value> = rec
        .channel
        .members
        .iter()
        .map(|m| {
            let id = MemberId::of(&rec.channel, m);
            json!({
                "id": rec.members.get(&id.to_string()).map(|s| s.id.as_str()),
                "member": id.to_string(),
                "upstream": rt.and_then(|r| r.upstream(id)).map(|a| a.to_string()),
                "simulated": rt.is_some_and(|r| r.has_backend(id)),
                "health_status": rt.map_or("unknown", |r| r.health(id).as_str()),
            })
        })
        .collect();
    let addr = rt.map(|r| r.listen_addr());
    json!({
        "id": rec.id,
        "project_id": rec.project_id,
        "instance_id": rec.instance_id,
        "name": rec.channel.name,
        "port": rec.channel.port,
        "listen": addr.map(|a| a.to_string()),
        "local_port": addr.map(|a| a.port()),
        "settled": rt.is_some_and(|r| r.is_settled()),
        "members": members,
    })
}

fn find<'r>(ctx: &Ctx, reg: &'r Registry) -> Result<&'r ChannelRecord, ApiError> {
    let id = ctx.params.get("vpc_channel_id");
    let rec = reg.channels.get(id).ok_or_else(|| ApiError::not_found(Api::Scenario, "VPC channel", id))?;
    ctx.allow(&rec.project_id)?;
    Ok(rec)
}

/// The path's member: by the id the API gave it, or by its identity `host:port`.
fn member(ctx: &Ctx, rec: &ChannelRecord) -> Result<MemberId, ApiError> {
    let key = ctx.params.get("member");
    rec.members
        .iter()
        .find(|(identity, s)| s.id == key || identity.as_str() == key)
        .and_then(|(identity, _)| MemberId::parse(identity))
        .ok_or_else(|| ApiError::not_found(Api::Scenario, "member", key))
}

pub async fn channels(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let list: Vec<Value> =
        reg.channels.values().filter(|c| ctx.scope.allows(&c.project_id)).map(|c| view(&reg, c)).collect();
    Reply::json(StatusCode::OK, json!({ "channels": list }))
}

pub async fn channel(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    Reply::json(StatusCode::OK, view(&reg, find(ctx, &reg)?))
}

/// The path's channel runtime and member, once every change made so far has reached the data
/// plane (a member added a moment ago has its backend).
async fn settled_member(ctx: &Ctx) -> Result<(std::sync::Arc<ChannelRuntime>, MemberId), ApiError> {
    let (rt, id) = {
        let reg = ctx.registry().await;
        let rec = find(ctx, &reg)?;
        let id = member(ctx, rec)?;
        let rt = reg.runtimes.get(&rec.id).cloned().ok_or_else(|| {
            ApiError::conflict(Api::Scenario, format!("The VPC channel is still being created; retry;id:{}", rec.id))
        })?;
        (rt, id)
    };
    rt.settled().await;
    Ok((rt, id))
}

fn not_simulated(id: MemberId) -> ApiError {
    ApiError::conflict(
        Api::Scenario,
        format!("The member is served by its own address, not by a loopback backend;member:{id}"),
    )
}

pub async fn inject(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: FaultBody = plain_body(Api::Scenario, body)?;
    body.validate().into_result().map_err(|e| ApiError::validation(Api::Scenario, e))?;
    let (rt, id) = settled_member(ctx).await?;
    let fault = FaultSpec {
        member: Some(id.to_string()),
        az: None,
        kind: body.kind,
        at_s: 0.0,
        until_s: None,
        factor: body.factor,
        rate: body.rate,
        period_s: None,
    };
    if !rt.inject(id, &fault) {
        return Err(not_simulated(id));
    }
    Reply::json(StatusCode::CREATED, json!({"member": id.to_string(), "fault": body.kind.as_str()}))
}

pub async fn clear(ctx: &Ctx) -> Handled {
    let (rt, id) = settled_member(ctx).await?;
    if !rt.clear_faults(id) {
        return Err(not_simulated(id));
    }
    Reply::no_content()
}
