//! SDRS (the create-protection-group API): protection groups over a project's channels, created, failed over and
//! deleted by asynchronous jobs (`{"job_id"}` at once; `GET /v1/{project_id}/jobs/{job_id}`
//! reports RUNNING, then SUCCESS). Members carry an availability zone (`[[backends]] az` of the
//! scenario): while a group is available, its target AZ's members take no traffic; once a
//! failover completes, its source AZ's members take none (see `Registry::effective_channel`).
//! Errors answer in SDRS's `{"badrequest" | "itemNotFound" | "error": {"code", "message"}}`.

use super::dataplane::ChannelRuntime;
use super::errors::ApiError;
use super::ids::now_utc;
use super::state::{self, put, Control, Job, PgStatus, ProtectionGroupRecord, Registry, JOB, PROTECTION_GROUP};
use super::{plain_body, seed_body, Ctx, Handled, Reply};
use crate::model::{Api, Problem, ProtectionGroupBody, VpcChannel};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// `{"failover-server-group": {}}`: the only action lbsim runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(rename = "failover-server-group")]
    failover: serde_json::Map<String, Value>,
}

fn detail(pg: &ProtectionGroupRecord) -> Value {
    let g = &pg.group;
    json!({
        "id": pg.id,
        "name": g.name,
        "description": g.description.clone().unwrap_or_default(),
        "status": pg.status.as_str(),
        "source_availability_zone": g.source_availability_zone,
        "target_availability_zone": g.target_availability_zone,
        "domain_id": g.domain_id,
        "source_vpc_id": g.source_vpc_id,
        "dr_type": g.dr_type.map_or("migration", |d| d.as_str()),
        "server_type": g.server_type.clone().unwrap_or_else(|| "ECS".into()),
        "created_at": pg.created_at,
        "updated_at": pg.updated_at,
    })
}

fn find<'r>(ctx: &Ctx, reg: &'r Registry) -> Result<&'r ProtectionGroupRecord, ApiError> {
    let id = ctx.params.get("server_group_id");
    reg.protection_groups
        .get(id)
        .filter(|p| p.project_id == ctx.params.get("project_id"))
        .ok_or_else(|| ApiError::not_found(Api::Sdrs, "protection group", id))
}

/// Registers a RUNNING job for the protection group `pg` (in its new state), storing both in
/// one transaction before the change is acknowledged, and runs `finish` on the registry after
/// the job's duration; the project's channels then take the new AZ overlay, and the group and
/// the job's outcome are stored, again in one transaction.
async fn start_job(
    ctx: &Ctx,
    reg: &mut Registry,
    job_type: &str,
    pg: ProtectionGroupRecord,
    finish: impl FnOnce(&mut Registry) + Send + 'static,
) -> Result<String, ApiError> {
    let project = ctx.params.get("project_id").to_string();
    let pg_id = pg.id.clone();
    let job = Job {
        job_id: ctx.control.ids.hex32(),
        project_id: project.clone(),
        job_type: job_type.into(),
        status: "RUNNING".into(),
        begin_time: now_utc(),
        end_time: None,
        server_group_id: pg_id.clone(),
    };
    let job_id = job.job_id.clone();
    let writes = [put(PROTECTION_GROUP, &pg_id, &pg), put(JOB, &job_id, &job)];
    let writes = writes.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| ctx.internal(&e))?;
    ctx.control.commit(writes).await.map_err(|e| ctx.internal(&e))?;
    reg.protection_groups.insert(pg_id.clone(), pg);
    reg.jobs.insert(job_id.clone(), job);
    let control = Arc::clone(&ctx.control);
    let id = job_id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(control.job_duration).await;
        let changes = {
            let mut reg = control.registry.lock().await;
            finish(&mut reg);
            replan(&control, &reg, &project)
        };
        let ok = apply_all(changes).await;
        let mut reg = control.registry.lock().await;
        let Some(j) = reg.jobs.get_mut(&id) else { return };
        j.status = if ok { "SUCCESS" } else { "FAIL" }.into();
        j.end_time = Some(now_utc());
        let job = put(JOB, &id, &*j);
        let group = match reg.protection_groups.get(&pg_id) {
            Some(pg) => put(PROTECTION_GROUP, &pg_id, pg),
            None => Ok(state::delete(PROTECTION_GROUP, &pg_id)),
        };
        let stored = match (group, job) {
            (Ok(g), Ok(j)) => control.commit(vec![g, j]).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if let Err(e) = stored {
            tracing::error!(job = %id, error = %e, "storing a job's outcome");
        }
    });
    Ok(job_id)
}

/// The changes that give every channel of `project` its configuration under the protection
/// groups now, planned while the registry is held; apply them after letting it go.
fn replan(control: &Control, reg: &Registry, project: &str) -> Vec<(Arc<ChannelRuntime>, u64, VpcChannel)> {
    let overlay = reg.overlay(project);
    reg.channels_of(project)
        .filter_map(|rec| {
            let rt = reg.runtimes.get(&rec.id)?;
            Some((Arc::clone(rt), rt.plan(), overlay.apply(&rec.channel, &control.env)))
        })
        .collect()
}

/// Applies planned changes; false if one failed.
async fn apply_all(changes: Vec<(Arc<ChannelRuntime>, u64, VpcChannel)>) -> bool {
    let mut ok = true;
    for (rt, generation, effective) in changes {
        if let Err(e) = rt.apply(generation, &effective).await {
            tracing::error!(error = %e, "protection group change");
            ok = false;
        }
    }
    ok
}

pub async fn create(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: ProtectionGroupBody = seed_body(body)?;
    let now = now_utc();
    let pg = ProtectionGroupRecord {
        id: ctx.control.ids.hex32(),
        project_id: ctx.params.get("project_id").to_string(),
        group: body.server_group,
        status: PgStatus::Creating,
        created_at: now.clone(),
        updated_at: now,
    };
    let pg_id = pg.id.clone();
    let mut reg = ctx.registry().await;
    let job_id =
        start_job(ctx, &mut reg, "createServerGroup", pg, move |reg| set_status(reg, &pg_id, PgStatus::Available))
            .await?;
    Reply::json(StatusCode::OK, json!({ "job_id": job_id }))
}

/// A copy of `pg` in a new state.
fn with_status(pg: &ProtectionGroupRecord, status: PgStatus) -> ProtectionGroupRecord {
    ProtectionGroupRecord { status, updated_at: now_utc(), ..pg.clone() }
}

fn set_status(reg: &mut Registry, id: &str, status: PgStatus) {
    if let Some(pg) = reg.protection_groups.get_mut(id) {
        pg.status = status;
        pg.updated_at = now_utc();
    }
}

pub async fn list(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let project = ctx.params.get("project_id");
    let groups: Vec<Value> = reg.protection_groups.values().filter(|p| p.project_id == project).map(detail).collect();
    Reply::json(StatusCode::OK, json!({"count": groups.len(), "server_groups": groups}))
}

pub async fn show(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    Reply::json(StatusCode::OK, json!({ "server_group": detail(find(ctx, &reg)?) }))
}

pub async fn delete(ctx: &Ctx) -> Handled {
    let mut reg = ctx.registry().await;
    let pg = with_status(find(ctx, &reg)?, PgStatus::Deleting);
    let pg_id = pg.id.clone();
    let job_id = start_job(ctx, &mut reg, "deleteServerGroup", pg, move |reg| {
        reg.protection_groups.remove(&pg_id);
    })
    .await?;
    Reply::json(StatusCode::OK, json!({ "job_id": job_id }))
}

/// `{"failover-server-group": {}}`: the target AZ takes over once the job completes.
pub async fn action(ctx: &Ctx, body: &[u8]) -> Handled {
    let ActionBody { failover } = plain_body(Api::Sdrs, body)?;
    if let Some(k) = failover.keys().next() {
        return Err(ApiError::invalid(
            Api::Sdrs,
            Problem::Unknown,
            &format!("failover-server-group.{k}"),
            format!("unknown field `{k}`"),
        ));
    }
    let mut reg = ctx.registry().await;
    let pg = find(ctx, &reg)?;
    if pg.status != PgStatus::Available {
        return Err(ApiError::conflict(
            Api::Sdrs,
            format!("The protection group is {}, not available;id:{}", pg.status.as_str(), pg.id),
        ));
    }
    let pg = with_status(pg, PgStatus::FailingOver);
    let pg_id = pg.id.clone();
    let job_id =
        start_job(ctx, &mut reg, "failoverServerGroup", pg, move |reg| set_status(reg, &pg_id, PgStatus::FailedOver))
            .await?;
    Reply::json(StatusCode::OK, json!({ "job_id": job_id }))
}

pub async fn show_job(ctx: &Ctx) -> Handled {
    let reg = ctx.registry().await;
    let id = ctx.params.get("job_id");
    let job = reg
        .jobs
        .get(id)
        .filter(|j| j.project_id == ctx.params.get("project_id"))
        .ok_or_else(|| ApiError::not_found(Api::Sdrs, "job", id))?;
    Reply::json(
        StatusCode::OK,
        json!({
            "job_id": job.job_id,
            "job_type": job.job_type,
            "status": job.status,
            "begin_time": job.begin_time,
            "end_time": job.end_time,
            "entities": {"server_group_id": job.server_group_id},
            "error_code": null,
            "fail_reason": null,
        }),
    )
}
