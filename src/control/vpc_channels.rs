//! ROMA Connect VPC channels (the create-VPC-channel and add-or-update-member-groups APIs):
//! create per instance, show, list, replace, delete; member groups (upsert by name, the first
//! duplicate wins); members (upsert by identity `host:port`, delete by id). Every change is
//! validated and stored before it is acknowledged, and reaches the channel's data plane right
//! after (see `dataplane`).

use super::dataplane::{ChannelRuntime, DataPlaneError};
use super::errors::ApiError;
use super::ids::now_utc;
use super::state::{self, put, ChannelRecord, Control, Registry, Stamp, CHANNEL, ENDPOINT_GROUP};
use super::store::Write;
use super::{plain_body, seed_body, Ctx, Handled, Reply};
use crate::balancer::MemberId;
use crate::model::{Api, MemberGroupsBody, MemberInfo, Validate, VpcChannel};
use crate::sim::scenario::{member_ids, upsert_member_groups};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

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

/// 409: the name is taken by another channel of the project.
fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(Api::Roma, format!("The VPC channel name already exists in the project;name:{name}"))
}

/// Creates one channel per instance id of `body` in `project` (the create-VPC-channel API's answer lists
/// them).
/// The name is checked and the records are reserved under one hold of the registry; the data
/// planes start after it is let go (starting thousands of members' backends holds up no one),
/// and the records are stored in one transaction before the answer. `quotas`: whether the
/// project's quotas apply (not to the operator's own `--scenario` channels).
pub async fn create_channels(
    control: &Control,
    project: &str,
    body: &VpcChannel,
    quotas: bool,
) -> Result<Vec<Value>, ApiError> {
    let now = now_utc();
    let mut recs = Vec::new();
    {
        let mut reg = control.registry.lock().await;
        if reg.channels_of(project).any(|c| c.channel.name == body.name) {
            return Err(name_taken(&body.name));
        }
        if quotas {
            let copies = body.instance_ids.len();
            control.quotas.check_channels(Api::Roma, &reg, project, copies)?;
            control.quotas.check_members(Api::Roma, &reg, project, 0, (body.members.len(), copies))?;
        }
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
                positions: None,
            };
            restamp(&mut rec, control, &now, &[]);
            reg.channels.insert(rec.id.clone(), rec.clone());
            recs.push((rec, reg.overlay(project)));
        }
    }
    let mut started = Vec::new();
    let mut failure = None;
    for (rec, overlay) in &recs {
        match ChannelRuntime::start(&overlay.apply(&rec.channel, &control.env), control.env.clone()).await {
            Ok(rt) => started.push(Arc::new(rt)),
            Err(e) => {
                failure = Some(data_plane_error(None, e));
                break;
            }
        }
    }
    let writes: Result<Vec<Write>, _> = recs.iter().map(|(rec, _)| put(CHANNEL, &rec.id, rec)).collect();
    let stored = match (&failure, writes) {
        (None, Ok(writes)) => control.commit(writes).await.map_err(|e| {
            tracing::error!(error = %e, "storing new channels");
            ApiError::internal(Api::Roma)
        }),
        (None, Err(e)) => {
            tracing::error!(error = %e, "storing new channels");
            Err(ApiError::internal(Api::Roma))
        }
        (Some(e), _) => Err(e.clone()),
    };
    let mut reg = control.registry.lock().await;
    if let Err(e) = stored {
        for (rec, _) in &recs {
            reg.channels.remove(&rec.id);
        }
        for rt in started {
            tokio::spawn(async move { rt.shutdown().await });
        }
        return Err(e);
    }
    let mut out = Vec::new();
    for ((rec, _), rt) in recs.iter().zip(started) {
        // A channel deleted while its data plane started is not brought back.
        if reg.channels.contains_key(&rec.id) {
            out.push(info(rec, Some(rt.as_ref())));
            reg.runtimes.insert(rec.id.clone(), rt);
        } else {
            tokio::spawn(async move { rt.shutdown().await });
        }
    }
    Ok(out)
}

pub async fn create(ctx: &Ctx, body: &[u8]) -> Handled {
    let channel: VpcChannel = seed_body(body)?;
    let created = create_channels(&ctx.control, ctx.params.get("project_id"), &channel, true).await?;
    Reply::json(StatusCode::CREATED, json!({ "project_vpc_channels": created }))
}

/// Gives new groups and members ids, keeps the others', drops the stamps of the removed ones;
/// `touched` names are updated now. O(n log n) in the channel's size.
fn restamp(rec: &mut ChannelRecord, control: &Control, now: &str, touched: &[String]) {
    let touched: HashSet<&str> = touched.iter().map(String::as_str).collect();
    let names: HashSet<String> = rec.channel.member_groups.iter().map(|g| g.member_group_name.clone()).collect();
    let members: HashSet<String> = member_ids(&rec.channel).iter().map(MemberId::to_string).collect();
    for (keys, stamps) in [(names, &mut rec.groups), (members, &mut rec.members)] {
        stamps.retain(|k, _| keys.contains(k));
        for k in keys {
            let update = touched.contains(k.as_str());
            let s = stamps.entry(k).or_insert_with(|| Stamp::new(control.ids.hex32(), now));
            if update {
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

/// The running data plane of a channel (409 while it is still starting).
fn runtime(ctx: &Ctx, reg: &Registry, id: &str) -> Result<Arc<ChannelRuntime>, ApiError> {
    reg.runtimes
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::conflict(ctx.api, format!("The VPC channel is still being created; retry;id:{id}")))
}

/// Hands a stored change to the channel's data plane, which applies it after the registry is
/// let go (in the order of `generation`; see `dataplane`).
fn apply_later(rt: Arc<ChannelRuntime>, generation: u64, effective: VpcChannel) {
    tokio::spawn(async move {
        if let Err(e) = rt.apply(generation, &effective).await {
            tracing::error!(error = %e, "applying a channel change");
        }
    });
}

/// Applies `change` to the channel of the path: validated, stored, then handed to the data plane,
/// all under one hold of the registry (so that checks such as a unique name and the change they
/// allow cannot interleave with another request). `change` edits a copy of the record (reading
/// the registry for checks, its stamps if it needs ids) and returns the group names and member
/// identities to mark updated. Returns the new record.
pub async fn modify(
    ctx: &Ctx,
    change: impl FnOnce(&Registry, &mut ChannelRecord) -> Result<Vec<String>, ApiError>,
) -> Result<ChannelRecord, ApiError> {
    let mut reg = ctx.registry().await;
    let current = find(ctx, &reg)?;
    let before = current.channel.members.len();
    let mut rec = current.clone();
    let touched = change(&reg, &mut rec)?;
    rec.channel.validate().into_result().map_err(|e| ApiError::validation(ctx.api, e))?;
    let quotas = &ctx.control.quotas;
    quotas.check_members(ctx.api, &reg, &rec.project_id, before, (rec.channel.members.len(), 1))?;
    let rt = runtime(ctx, &reg, &rec.id)?;
    restamp(&mut rec, &ctx.control, &now_utc(), &touched);
    rec.positions = None;
    ctx.save(CHANNEL, &rec.id, &rec).await?;
    let effective = reg.effective_channel(&rec, &ctx.control.env);
    apply_later(rt.clone(), rt.plan(), effective);
    reg.channels.insert(rec.id.clone(), rec.clone());
    Ok(rec)
}

pub async fn show(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let rec = find(ctx, &reg)?;
    Reply::json(StatusCode::OK, info(rec, reg.runtimes.get(&rec.id).map(|r| &**r)))
}

pub async fn list(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let instance = ctx.params.get("instance_id");
    let items: Vec<Value> = reg
        .channels_of(ctx.params.get("project_id"))
        .filter(|c| c.instance_id == instance)
        .map(|c| info(c, reg.runtimes.get(&c.id).map(|r| &**r)))
        .collect();
    Reply::json(StatusCode::OK, json!({"size": items.len(), "total": items.len(), "vpc_channels": items}))
}

/// PUT: the whole channel replaced by the body (its instance stays). The name is checked
/// against the project's other channels in the same hold of the registry as the change.
pub async fn update(ctx: &Ctx, body: &[u8]) -> Handled {
    let mut new: VpcChannel = seed_body(body)?;
    let rec = modify(ctx, |reg, rec| {
        if reg.channels_of(&rec.project_id).any(|c| c.id != rec.id && c.channel.name == new.name) {
            return Err(name_taken(&new.name));
        }
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
    Reply::json(StatusCode::OK, info(&rec, reg.runtimes.get(&rec.id).map(|r| &**r)))
}

/// DELETE: the channel, and its endpoints in every GA endpoint group, in one store transaction.
pub async fn delete(ctx: &Ctx) -> Handled {
    let mut reg = ctx.registry().await;
    let id = find(ctx, &reg)?.id.clone();
    let mut writes = vec![state::delete(CHANNEL, &id)];
    let mut groups = Vec::new();
    for g in reg.endpoint_groups.values().filter(|g| g.endpoints.iter().any(|e| e.resource_id == id)) {
        let mut g = g.clone();
        g.endpoints.retain(|e| e.resource_id != id);
        writes.push(put(ENDPOINT_GROUP, &g.id, &g).map_err(|e| ctx.internal(&e))?);
        groups.push(g);
    }
    ctx.control.commit(writes).await.map_err(|e| ctx.internal(&e))?;
    reg.channels.remove(&id);
    for g in groups {
        reg.endpoint_groups.insert(g.id.clone(), g);
    }
    if let Some(rt) = reg.runtimes.remove(&id) {
        tokio::spawn(async move { rt.shutdown().await });
    }
    Reply::no_content()
}

pub async fn upsert_groups(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: MemberGroupsBody = seed_body(body)?;
    let names: Vec<String> = body.effective().iter().map(|g| g.member_group_name.clone()).collect();
    let touched = names.clone();
    let rec = modify(ctx, |_, rec| {
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
    modify(ctx, |_, rec| {
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

/// Adds or updates members by identity (`host:port`). Only the body's members are validated
/// (against the channel's type and groups) and located (by an index of the channel's members),
/// so that one member costs the same in a channel of ten members or of fifty thousand; the data
/// plane follows after the registry is let go.
pub async fn upsert_members(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: MembersBody = plain_body(Api::Roma, body)?;
    let mut reg = ctx.registry().await;
    let id = find(ctx, &reg)?.id.clone();
    let rt = runtime(ctx, &reg, &id)?;
    let Some(rec) = reg.channels.get_mut(&id) else { return Err(ctx.internal(&"channel vanished")) };
    // Validate the body's members on their own, in the channel's context, so that paths name
    // the body's indices (the channel's own members are valid already).
    let kept = std::mem::take(&mut rec.channel.members);
    let probe = VpcChannel { members: body.members.clone(), ..rec.channel.clone() };
    rec.channel.members = kept;
    probe.validate().into_result().map_err(|e| ApiError::validation(Api::Roma, e))?;
    let ids: Vec<MemberId> = body.members.iter().map(|m| MemberId::of(&probe, m)).collect();
    let before = rec.channel.members.len();
    let mut seen = HashSet::new();
    let unique: Vec<MemberId> = ids.iter().copied().filter(|m| seen.insert(*m)).collect();
    let added = unique.iter().filter(|m| rec.position(**m).is_none()).count();
    let project = rec.project_id.clone();
    ctx.control.quotas.check_members(Api::Roma, &reg, &project, before, (before + added, 1))?;
    let Some(rec) = reg.channels.get_mut(&id) else { return Err(ctx.internal(&"channel vanished")) };
    let now = now_utc();
    for (m, mid) in body.members.iter().zip(&ids) {
        match rec.position(*mid) {
            Some(i) => rec.channel.members[i] = m.clone(),
            None => {
                rec.channel.members.push(m.clone());
                let last = rec.channel.members.len() - 1;
                if let Some(index) = rec.positions.as_mut() {
                    index.insert(*mid, last);
                }
            }
        }
        let stamp = rec.members.entry(mid.to_string()).or_insert_with(|| Stamp::new(ctx.control.ids.hex32(), &now));
        stamp.update_time = now.clone();
    }
    let positions: Vec<usize> = unique.iter().filter_map(|m| rec.position(*m)).collect();
    let rec = &reg.channels[&id];
    ctx.save(CHANNEL, &rec.id, rec).await?;
    let effective = reg.effective_channel(rec, &ctx.control.env);
    apply_later(rt.clone(), rt.plan(), effective);
    let out: Vec<Value> = positions.iter().map(|&i| member_info(rec, &rec.channel.members[i], Some(&rt))).collect();
    Reply::json(StatusCode::CREATED, json!({"size": out.len(), "total": out.len(), "members": out}))
}

pub async fn list_members(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let rec = find(ctx, &reg)?;
    let rt = reg.runtimes.get(&rec.id).map(|r| &**r);
    let members: Vec<Value> = rec.channel.members.iter().map(|m| member_info(rec, m, rt)).collect();
    Reply::json(StatusCode::OK, json!({"size": members.len(), "total": members.len(), "members": members}))
}

pub async fn delete_member(ctx: &Ctx) -> Handled {
    let mid = ctx.params.get("member_id").to_string();
    modify(ctx, |_, rec| {
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
