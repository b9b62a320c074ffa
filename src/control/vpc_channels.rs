//! ROMA Connect VPC channels (the create-VPC-channel and add-or-update-member-groups APIs):
//! create per instance, show, list, replace, delete; member groups (upsert by name, the first
//! duplicate wins); members (upsert by identity `host:port`, delete by id). Every change goes
//! through the channel's data plane before it is acknowledged.

use super::dataplane::{ChannelRuntime, DataPlaneError};
use super::errors::ApiError;
use super::ids::now_utc;
use super::state::{ChannelRecord, Control, Registry, Stamp, CHANNEL, ENDPOINT_GROUP};
use super::{plain_body, seed_body, Ctx, Handled, Reply};
use crate::balancer::MemberId;
use crate::model::{Api, MemberGroupsBody, MemberInfo, Validate, VpcChannel};
use crate::sim::scenario::{member_ids, upsert_member_groups};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `{"members": [...]}`: ROMA's "add or update backend instances" body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    members: Vec<MemberInfo>,
}

fn data_plane_error(ctx: Option<&Ctx>, e: DataPlaneError) -> ApiError {
    match e {
        DataPlaneError::Invalid(v) => ApiError::validation(Api::Roma, v),
        DataPlaneError::Io { .. } => match ctx {
            Some(c) => c.internal(&e),
            None => {
                tracing::error!(error = %e, "data plane");
                ApiError::internal(Api::Roma)
            }
        },
    }
}

/// Creates one channel per instance id of `body` in `project` (the create-VPC-channel API's answer lists them).
pub async fn create_channels(control: &Control, project: &str, body: &VpcChannel) -> Result<Vec<Value>, ApiError> {
    let mut reg = control.registry.lock().await;
    if reg.channels_of(project).any(|c| c.channel.name == body.name) {
        return Err(ApiError::conflict(
            Api::Roma,
            format!("The VPC channel name already exists in the project;name:{}", body.name),
        ));
    }
    let now = now_utc();
    let mut out = Vec::new();
    for instance in &body.instance_ids {
        let mut channel = body.clone();
        channel.instance_ids = vec![instance.clone()];
        channel.member_groups = channel.effective_member_groups().into_iter().cloned().collect();
        let mut rec = ChannelRecord {
            id: control.ids.hex32(),
            project_id: project.to_string(),
            instance_id: instance.clone(),
            create_time: now.clone(),
            channel,
            groups: BTreeMap::new(),
            members: BTreeMap::new(),
            health_id: control.ids.hex32(),
        };
        restamp(&mut rec, control, &now, &[]);
        let effective = reg.effective_channel(&rec, &control.env);
        let rt = ChannelRuntime::start(&effective, control.env.clone()).await.map_err(|e| data_plane_error(None, e))?;
        if let Err(e) = control.save(CHANNEL, &rec.id, &rec).await {
            tracing::error!(error = %e, "storing a new channel");
            tokio::spawn(rt.shutdown());
            return Err(ApiError::internal(Api::Roma));
        }
        out.push(info(&rec, Some(&rt)));
        reg.runtimes.insert(rec.id.clone(), rt);
        reg.channels.insert(rec.id.clone(), rec);
    }
    Ok(out)
}

pub async fn create(ctx: &Ctx, body: &[u8]) -> Handled {
    let channel: VpcChannel = seed_body(body)?;
    let created = create_channels(&ctx.control, ctx.params.get("project_id"), &channel).await?;
    Reply::json(StatusCode::CREATED, json!({ "project_vpc_channels": created }))
}

/// Gives new groups and members ids, keeps the others', drops the stamps of the removed ones;
/// `touched` names are updated now.
fn restamp(rec: &mut ChannelRecord, control: &Control, now: &str, touched: &[String]) {
    let names: Vec<String> = rec.channel.member_groups.iter().map(|g| g.member_group_name.clone()).collect();
    let members: Vec<String> = member_ids(&rec.channel).iter().map(MemberId::to_string).collect();
    for (keys, stamps) in [(names, &mut rec.groups), (members, &mut rec.members)] {
        stamps.retain(|k, _| keys.contains(k));
        for k in keys {
            let s = stamps.entry(k.clone()).or_insert_with(|| Stamp::new(control.ids.hex32(), now));
            if touched.contains(&k) {
                s.update_time = now.to_string();
            }
        }
    }
}

/// The channel of the path (ZStack's server group is a channel), after checking project,
/// instance and scope.
fn find<'r>(ctx: &Ctx, reg: &'r Registry) -> Result<&'r ChannelRecord, ApiError> {
    let id = match ctx.params.get("vpc_channel_id") {
        "" => ctx.params.get("serverGroupUuid"),
        id => id,
    };
    let rec = reg.channels.get(id).ok_or_else(|| ApiError::not_found(ctx.api, "VPC channel", id))?;
    let project = ctx.params.get("project_id");
    let instance = ctx.params.get("instance_id");
    if (!project.is_empty() && rec.project_id != project) || (!instance.is_empty() && rec.instance_id != instance) {
        return Err(ApiError::not_found(ctx.api, "VPC channel", id));
    }
    ctx.allow(&rec.project_id)?;
    Ok(rec)
}

/// Applies `change` to the channel of the path: validated, run by the data plane, then stored.
/// `change` edits the record's channel (reading its stamps if it needs ids) and returns the group
/// names and member identities to mark updated. Returns the new record.
pub async fn modify(
    ctx: &Ctx,
    change: impl FnOnce(&mut ChannelRecord) -> Result<Vec<String>, ApiError>,
) -> Result<ChannelRecord, ApiError> {
    let mut reg = ctx.registry().await;
    let mut rec = find(ctx, &reg)?.clone();
    let touched = change(&mut rec)?;
    rec.channel.validate().into_result().map_err(|e| ApiError::validation(ctx.api, e))?;
    restamp(&mut rec, &ctx.control, &now_utc(), &touched);
    let effective = reg.effective_channel(&rec, &ctx.control.env);
    let rt = reg.runtimes.get_mut(&rec.id).ok_or_else(|| ctx.internal(&"channel without a data plane"))?;
    rt.apply(&effective).await.map_err(|e| data_plane_error(Some(ctx), e))?;
    ctx.save(CHANNEL, &rec.id, &rec).await?;
    reg.channels.insert(rec.id.clone(), rec.clone());
    Ok(rec)
}

pub async fn show(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let rec = find(ctx, &reg)?;
    Reply::json(StatusCode::OK, info(rec, reg.runtimes.get(&rec.id)))
}

pub async fn list(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let instance = ctx.params.get("instance_id");
    let items: Vec<Value> = reg
        .channels_of(ctx.params.get("project_id"))
        .filter(|c| c.instance_id == instance)
        .map(|c| info(c, reg.runtimes.get(&c.id)))
        .collect();
    Reply::json(StatusCode::OK, json!({"size": items.len(), "total": items.len(), "vpc_channels": items}))
}

/// PUT: the whole channel replaced by the body (its instance stays).
pub async fn update(ctx: &Ctx, body: &[u8]) -> Handled {
    let mut new: VpcChannel = seed_body(body)?;
    {
        let reg = ctx.registry().await;
        let rec = find(ctx, &reg)?;
        if reg.channels_of(&rec.project_id).any(|c| c.id != rec.id && c.channel.name == new.name) {
            return Err(ApiError::conflict(
                Api::Roma,
                format!("The VPC channel name already exists in the project;name:{}", new.name),
            ));
        }
    }
    let rec = modify(ctx, |rec| {
        let ch = &mut rec.channel;
        new.instance_ids = ch.instance_ids.clone();
        new.member_groups = new.effective_member_groups().into_iter().cloned().collect();
        let touched = new
            .member_groups
            .iter()
            .map(|g| g.member_group_name.clone())
            .chain(member_ids(&new).iter().map(MemberId::to_string))
            .collect();
        *ch = new;
        Ok(touched)
    })
    .await?;
    let reg = ctx.registry().await;
    Reply::json(StatusCode::OK, info(&rec, reg.runtimes.get(&rec.id)))
}

pub async fn delete(ctx: &Ctx) -> Handled {
    let mut reg = ctx.registry().await;
    let id = find(ctx, &reg)?.id.clone();
    ctx.forget(CHANNEL, &id).await?;
    reg.channels.remove(&id);
    for g in reg.endpoint_groups.values_mut().filter(|g| g.endpoints.iter().any(|e| e.resource_id == id)) {
        g.endpoints.retain(|e| e.resource_id != id);
        ctx.save(ENDPOINT_GROUP, &g.id, &*g).await?;
    }
    if let Some(rt) = reg.runtimes.remove(&id) {
        tokio::spawn(rt.shutdown());
    }
    Reply::no_content()
}

pub async fn upsert_groups(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: MemberGroupsBody = seed_body(body)?;
    let names: Vec<String> = body.effective().iter().map(|g| g.member_group_name.clone()).collect();
    let touched = names.clone();
    let rec = modify(ctx, |rec| {
        upsert_member_groups(&mut rec.channel, &body);
        Ok(touched)
    })
    .await?;
    let groups: Vec<Value> = rec
        .channel
        .member_groups
        .iter()
        .filter(|g| names.contains(&g.member_group_name))
        .map(|g| group_info(&rec, g))
        .collect();
    Reply::json(StatusCode::CREATED, json!({"size": groups.len(), "total": groups.len(), "member_groups": groups}))
}

pub async fn list_groups(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let rec = find(ctx, &reg)?;
    let groups: Vec<Value> = rec.channel.member_groups.iter().map(|g| group_info(rec, g)).collect();
    Reply::json(StatusCode::OK, json!({"size": groups.len(), "total": groups.len(), "member_groups": groups}))
}

pub async fn delete_group(ctx: &Ctx) -> Handled {
    let gid = ctx.params.get("member_group_id").to_string();
    modify(ctx, |rec| {
        let name = rec
            .groups
            .iter()
            .find(|(_, s)| s.id == gid)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| ApiError::not_found(Api::Roma, "member group", &gid))?;
        let ch = &mut rec.channel;
        if ch.members.iter().any(|m| m.member_group_name.as_deref() == Some(name.as_str())) {
            return Err(ApiError::conflict(Api::Roma, format!("The member group still has members;id:{gid}")));
        }
        ch.member_groups.retain(|g| g.member_group_name != name);
        Ok(Vec::new())
    })
    .await?;
    Reply::no_content()
}

pub async fn upsert_members(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: MembersBody = plain_body(Api::Roma, body)?;
    let mut ids = Vec::new();
    let rec = modify(ctx, |rec| {
        let ch = &mut rec.channel;
        // Validate the body's members on their own first, so that paths name the body's indices.
        let probe = VpcChannel { members: body.members.clone(), ..ch.clone() };
        probe.validate().into_result().map_err(|e| ApiError::validation(Api::Roma, e))?;
        for m in &body.members {
            let id = MemberId::of(ch, m);
            match ch.members.iter_mut().find(|x| MemberId::of(&probe, x) == id) {
                Some(existing) => *existing = m.clone(),
                None => ch.members.push(m.clone()),
            }
            ids.push(id.to_string());
        }
        Ok(ids.clone())
    })
    .await?;
    let reg = ctx.registry().await;
    let rt = reg.runtimes.get(&rec.id);
    let members: Vec<Value> = rec
        .channel
        .members
        .iter()
        .filter(|m| ids.contains(&MemberId::of(&rec.channel, m).to_string()))
        .map(|m| member_info(&rec, m, rt))
        .collect();
    Reply::json(StatusCode::CREATED, json!({"size": members.len(), "total": members.len(), "members": members}))
}

pub async fn list_members(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let rec = find(ctx, &reg)?;
    let rt = reg.runtimes.get(&rec.id);
    let members: Vec<Value> = rec.channel.members.iter().map(|m| member_info(rec, m, rt)).collect();
    Reply::json(StatusCode::OK, json!({"size": members.len(), "total": members.len(), "members": members}))
}

pub async fn delete_member(ctx: &Ctx) -> Handled {
    let mid = ctx.params.get("member_id").to_string();
    modify(ctx, |rec| {
        let ids = member_ids(&rec.channel);
        let i = ids
            .iter()
            .position(|id| rec.members.get(&id.to_string()).is_some_and(|s| s.id == mid))
            .ok_or_else(|| ApiError::not_found(Api::Roma, "member", &mid))?;
        rec.channel.members.remove(i);
        Ok(Vec::new())
    })
    .await?;
    Reply::no_content()
}

/// `ProjectVpcChannelInfo` / `VpcChannelInfo`.
pub fn info(rec: &ChannelRecord, rt: Option<&ChannelRuntime>) -> Value {
    let ch = &rec.channel;
    let kind = ch.kind.unwrap_or(if ch.microservice_info.is_some() { 3 } else { 2 });
    let health = ch.vpc_health_config.as_ref().map(|h| {
        let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("vpc_channel_id".into(), json!(rec.id));
            o.insert("id".into(), json!(rec.health_id));
            o.insert("create_time".into(), json!(rec.create_time));
            o.entry("status").or_insert(json!(1));
        }
        v
    });
    json!({
        "id": rec.id,
        "name": ch.name,
        "port": ch.port,
        "balance_strategy": ch.balance_strategy,
        "member_type": ch.member_type,
        "type": kind,
        "vpc_channel_type": ch.vpc_channel_type,
        "dict_code": ch.dict_code.clone().unwrap_or_default(),
        "create_time": rec.create_time,
        "status": 1,
        "member_groups": ch.member_groups.iter().map(|g| group_info(rec, g)).collect::<Vec<_>>(),
        "members": ch.members.iter().map(|m| member_info(rec, m, rt)).collect::<Vec<_>>(),
        "vpc_health_config": health,
        "microservice_info": ch.microservice_info,
        "instance_id": rec.instance_id,
        "instance_name": rec.instance_id,
    })
}

/// `MemberGroupInfo` (with the add-or-update-member-groups API's `version` and `port` as well).
fn group_info(rec: &ChannelRecord, g: &crate::model::MemberGroup) -> Value {
    let stamp = rec.groups.get(&g.member_group_name);
    json!({
        "member_group_id": stamp.map(|s| s.id.as_str()),
        "member_group_name": g.member_group_name,
        "member_group_remark": g.member_group_remark.clone().unwrap_or_default(),
        "member_group_weight": g.member_group_weight,
        "dict_code": g.dict_code.clone().unwrap_or_default(),
        "microservice_version": g.microservice_version.clone().unwrap_or_default(),
        "microservice_port": g.microservice_port.unwrap_or(0),
        "microservice_labels": g.microservice_labels,
        "version": g.microservice_version.clone().unwrap_or_default(),
        "port": g.microservice_port.unwrap_or(0),
        "create_time": stamp.map(|s| s.create_time.as_str()),
        "update_time": stamp.map(|s| s.update_time.as_str()),
    })
}

/// `VpcMemberInfo`, with the member's health.
fn member_info(rec: &ChannelRecord, m: &MemberInfo, rt: Option<&ChannelRuntime>) -> Value {
    let id = MemberId::of(&rec.channel, m);
    let stamp = rec.members.get(&id.to_string());
    let group_id = m.member_group_name.as_ref().and_then(|n| rec.groups.get(n)).map(|s| s.id.as_str());
    json!({
        "id": stamp.map(|s| s.id.as_str()),
        "host": m.host,
        "ecs_id": m.ecs_id,
        "ecs_name": m.ecs_name,
        "weight": m.weight.unwrap_or(1),
        "is_backup": m.is_backup.unwrap_or(false),
        "member_group_name": m.member_group_name.clone().unwrap_or_default(),
        "member_group_id": group_id,
        "status": m.status.unwrap_or(1),
        "port": id.port(),
        "vpc_channel_id": rec.id,
        "create_time": stamp.map(|s| s.create_time.as_str()),
        "health_status": rt.map_or("unknown", |r| r.health(id).as_str()),
    })
}
