//! Global Accelerator (the add-endpoint-group API): endpoint groups, and the add-endpoint call that puts a VPC
//! channel into one (`{"endpoint": {"resource_id", "resource_type": "VPC_CHANNEL", "weight"}}`).
//! Answers carry GA's `request_id`.

use super::errors::ApiError;
use super::ids::now_utc;
use super::state::{Endpoint, EndpointGroupRecord, Registry, ENDPOINT_GROUP};
use super::{plain_body, seed_body, Ctx, Handled, Reply};
use crate::model::{Api, EndpointGroupBody, Problem};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    endpoint: EndpointSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointSpec {
    resource_id: String,
    resource_type: String,
    #[serde(default)]
    weight: Option<i64>,
}

fn detail(g: &EndpointGroupRecord) -> Value {
    json!({
        "id": g.id,
        "name": g.group.name,
        "description": g.group.description.clone().unwrap_or_default(),
        "status": "ACTIVE",
        "traffic_dial_percentage": g.group.traffic_dial_percentage.unwrap_or(100),
        "region_id": g.group.region_id,
        "listeners": g.group.listeners,
        "created_at": g.created_at,
        "updated_at": g.updated_at,
        "domain_id": g.project_id.clone().unwrap_or_default(),
        "frozen_info": {"status": 0, "effect": 1, "scene": []},
    })
}

fn endpoint_detail(reg: &Registry, g: &EndpointGroupRecord, e: &Endpoint) -> Value {
    // A channel is healthy for GA while it has a member its balancer can pick.
    let healthy = reg.runtimes.get(&e.resource_id).is_some_and(|rt| rt.balancer().tier().is_ok());
    json!({
        "id": e.id,
        "endpoint_group_id": g.id,
        "resource_id": e.resource_id,
        "resource_type": e.resource_type,
        "weight": e.weight,
        "status": "ACTIVE",
        "health_state": if healthy { "HEALTHY" } else { "UNHEALTHY" },
        "created_at": e.created_at,
        "updated_at": e.created_at,
        "domain_id": g.project_id.clone().unwrap_or_default(),
        "frozen_info": {"status": 0, "effect": 1, "scene": []},
    })
}

fn find<'r>(ctx: &Ctx, reg: &'r Registry) -> Result<&'r EndpointGroupRecord, ApiError> {
    let id = ctx.params.get("endpoint_group_id");
    let g = reg.endpoint_groups.get(id).ok_or_else(|| ApiError::not_found(Api::Ga, "endpoint group", id))?;
    if let Some(p) = &g.project_id {
        ctx.allow(p)?;
    }
    Ok(g)
}

pub async fn create(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: EndpointGroupBody = seed_body(body)?;
    let now = now_utc();
    let rec = EndpointGroupRecord {
        id: ctx.control.ids.uuid(),
        project_id: ctx.scope.project().map(str::to_string),
        group: body.endpoint_group,
        created_at: now.clone(),
        updated_at: now,
        endpoints: Vec::new(),
    };
    let out = detail(&rec);
    let mut reg = ctx.registry().await;
    ctx.save(ENDPOINT_GROUP, &rec.id, &rec).await?;
    reg.endpoint_groups.insert(rec.id.clone(), rec);
    Reply::json(StatusCode::CREATED, json!({"endpoint_group": out, "request_id": ctx.request_id}))
}

pub async fn list(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let groups: Vec<Value> = reg
        .endpoint_groups
        .values()
        .filter(|g| g.project_id.as_deref().is_none_or(|p| ctx.scope.allows(p)))
        .map(detail)
        .collect();
    let count = groups.len();
    Reply::json(
        StatusCode::OK,
        json!({"endpoint_groups": groups, "page_info": {"next_marker": null, "current_count": count}, "request_id": ctx.request_id}),
    )
}

pub async fn show(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let g = find(ctx, &reg)?;
    Reply::json(StatusCode::OK, json!({"endpoint_group": detail(g), "request_id": ctx.request_id}))
}

pub async fn delete(ctx: &Ctx) -> Handled {
    let mut reg = ctx.registry().await;
    let id = find(ctx, &reg)?.id.clone();
    ctx.forget(ENDPOINT_GROUP, &id).await?;
    reg.endpoint_groups.remove(&id);
    Reply::no_content()
}

pub async fn add_endpoint(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: EndpointBody = plain_body(Api::Ga, body)?;
    let spec = body.endpoint;
    let weight = spec.weight.unwrap_or(100);
    let mut errors = Vec::new();
    if !spec.resource_type.eq_ignore_ascii_case("VPC_CHANNEL") {
        errors.push(crate::model::FieldError::new(
            Api::Ga,
            Problem::Invalid,
            "endpoint.resource_type",
            format!("`{}` is not VPC_CHANNEL", spec.resource_type),
        ));
    }
    if !(0..=100).contains(&weight) {
        errors.push(crate::model::FieldError::new(
            Api::Ga,
            Problem::Invalid,
            "endpoint.weight",
            format!("{weight} is not within 0-100"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(Api::Ga, crate::model::ValidationErrors { errors }));
    }
    let mut reg = ctx.registry().await;
    let gid = find(ctx, &reg)?.id.clone();
    let channel = reg
        .channels
        .get(&spec.resource_id)
        .ok_or_else(|| ApiError::not_found(Api::Ga, "VPC channel", &spec.resource_id))?;
    ctx.allow(&channel.project_id)?;
    if reg.endpoint_groups.get(&gid).is_some_and(|g| g.endpoints.iter().any(|e| e.resource_id == spec.resource_id)) {
        return Err(ApiError::conflict(
            Api::Ga,
            format!("The VPC channel is already an endpoint of the group;id:{}", spec.resource_id),
        ));
    }
    let e = Endpoint {
        id: ctx.control.ids.uuid(),
        resource_id: spec.resource_id,
        resource_type: "VPC_CHANNEL".into(),
        weight,
        created_at: now_utc(),
    };
    let Some(g) = reg.endpoint_groups.get_mut(&gid) else { return Err(ctx.internal(&"endpoint group vanished")) };
    g.endpoints.push(e.clone());
    let g = g.clone();
    ctx.save(ENDPOINT_GROUP, &g.id, &g).await?;
    Reply::json(StatusCode::CREATED, json!({"endpoint": endpoint_detail(&reg, &g, &e), "request_id": ctx.request_id}))
}

pub async fn list_endpoints(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let g = find(ctx, &reg)?;
    let items: Vec<Value> = g.endpoints.iter().map(|e| endpoint_detail(&reg, g, e)).collect();
    let count = items.len();
    Reply::json(
        StatusCode::OK,
        json!({"endpoints": items, "page_info": {"next_marker": null, "current_count": count}, "request_id": ctx.request_id}),
    )
}

pub async fn delete_endpoint(ctx: &Ctx) -> Handled {
    let mut reg = ctx.registry().await;
    let gid = find(ctx, &reg)?.id.clone();
    let eid = ctx.params.get("endpoint_id");
    let Some(g) = reg.endpoint_groups.get_mut(&gid) else { return Err(ctx.internal(&"endpoint group vanished")) };
    let before = g.endpoints.len();
    g.endpoints.retain(|e| e.id != eid);
    if g.endpoints.len() == before {
        return Err(ApiError::not_found(Api::Ga, "endpoint", eid));
    }
    let g = g.clone();
    ctx.save(ENDPOINT_GROUP, &g.id, &g).await?;
    Reply::no_content()
}
