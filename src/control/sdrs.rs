//! SDRS (the create-protection-group API): protection groups over a project's channels, created, failed over and
//! deleted by asynchronous jobs (`{"job_id"}` at once; `GET /v1/{project_id}/jobs/{job_id}`
//! reports RUNNING, then SUCCESS). Members carry an availability zone (`[[backends]] az` of the
//! scenario): while a group is available, its target AZ's members take no traffic; once a
//! failover completes, its source AZ's members take none (see `Registry::effective_channel`).
//! Errors answer in SDRS's `{"badrequest" | "itemNotFound" | "error": {"code", "message"}}`.

use super::errors::ApiError;
use super::ids::now_utc;
use super::state::{Control, Job, PgStatus, ProtectionGroupRecord, Registry, JOB, PROTECTION_GROUP};
use super::{plain_body, seed_body, Ctx, Handled, Reply};
use crate::model::{Api, Problem, ProtectionGroupBody};
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

/// Registers a RUNNING job (stored with the group's new state before it is acknowledged) and
/// runs `finish` on the registry after the job's duration; the project's channels then take the
/// new AZ overlay, and the outcome is stored.
async fn start_job(
    ctx: &Ctx,
    reg: &mut Registry,
    job_type: &str,
    pg_id: &str,
    finish: impl FnOnce(&mut Registry) + Send + 'static,
) -> Result<String, ApiError> {
    let project = ctx.params.get("project_id").to_string();
    let job = Job {
        job_id: ctx.control.ids.hex32(),
        project_id: project.clone(),
        job_type: job_type.into(),
        status: "RUNNING".into(),
        begin_time: now_utc(),
        end_time: None,
        server_group_id: pg_id.into(),
    };
    let job_id = job.job_id.clone();
    if let Some(pg) = reg.protection_groups.get(pg_id) {
        ctx.save(PROTECTION_GROUP, pg_id, pg).await?;
    }
    ctx.save(JOB, &job_id, &job).await?;
    reg.jobs.insert(job_id.clone(), job);
    let control = Arc::clone(&ctx.control);
    let (id, pg_id) = (job_id.clone(), pg_id.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(control.job_duration).await;
        let mut reg = control.registry.lock().await;
        finish(&mut reg);
        let ok = reapply(&control, &mut reg, &project).await;
        let stored = match reg.protection_groups.get(&pg_id) {
            Some(pg) => control.save(PROTECTION_GROUP, &pg_id, pg).await,
            None => control.forget(PROTECTION_GROUP, &pg_id).await,
        };
        if let Some(j) = reg.jobs.get_mut(&id) {
            j.status = if ok { "SUCCESS" } else { "FAIL" }.into();
            j.end_time = Some(now_utc());
            let j = j.clone();
            if let Err(e) = stored.and(control.save(JOB, &id, &j).await) {
                tracing::error!(job = %id, error = %e, "storing a job's outcome");
            }
        }
    });
    Ok(job_id)
}

/// Gives every channel of `project` its configuration under the protection groups now.
async fn reapply(control: &Control, reg: &mut Registry, project: &str) -> bool {
    let ids: Vec<String> = reg.channels_of(project).map(|c| c.id.clone()).collect();
    let mut ok = true;
    for id in ids {
        let Some(rec) = reg.channels.get(&id) else { continue };
        let effective = reg.effective_channel(rec, &control.env);
        if let Some(rt) = reg.runtimes.get_mut(&id) {
            if let Err(e) = rt.apply(&effective).await {
                tracing::error!(channel = %id, error = %e, "protection group change");
                ok = false;
            }
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
    let id = pg.id.clone();
    let mut reg = ctx.registry().await;
    reg.protection_groups.insert(id.clone(), pg);
    let pg_id = id.clone();
    let job_id =
        start_job(ctx, &mut reg, "createServerGroup", &id, move |reg| set_status(reg, &pg_id, PgStatus::Available))
            .await?;
    Reply::json(StatusCode::OK, json!({ "job_id": job_id }))
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
    let id = find(ctx, &reg)?.id.clone();
    set_status(&mut reg, &id, PgStatus::Deleting);
    let pg_id = id.clone();
    let job_id = start_job(ctx, &mut reg, "deleteServerGroup", &id, move |reg| {
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
    let id = pg.id.clone();
    set_status(&mut reg, &id, PgStatus::FailingOver);
    let pg_id = id.clone();
    let job_id =
        start_job(ctx, &mut reg, "failoverServerGroup", &id, move |reg| set_status(reg, &pg_id, PgStatus::FailedOver))
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
