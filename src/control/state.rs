//! The in-memory registry of what the API created: channels (with their running data planes),
//! endpoint groups, protection groups and jobs. Maps are ordered (`BTreeMap`), so listings come
//! out in a stable order (by id).
//!
//! With `--state PATH` every record is also written to the durable store ([`super::store`])
//! before the change is acknowledged, one record per (kind, id), and read back at start.

use super::dataplane::{ChannelRuntime, Env};
use super::ids::{now_utc, IdGen};
use super::store::{Store, StoreError};
use crate::model::{EndpointGroup, ProtectionGroup, VpcChannel};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Record kinds in the store.
pub const CHANNEL: &str = "channel";
pub const ENDPOINT_GROUP: &str = "endpoint_group";
pub const PROTECTION_GROUP: &str = "protection_group";
pub const JOB: &str = "job";

/// Why a change could not be made durable, or the state file not read back.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("state store task: {0}")]
    Task(String),
}

/// An id with its creation and update times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub id: String,
    pub create_time: String,
    pub update_time: String,
}

impl Stamp {
    pub fn new(id: String, now: &str) -> Stamp {
        Stamp { id, create_time: now.to_string(), update_time: now.to_string() }
    }
}

/// A VPC channel as stored: the create-VPC-channel body (with one instance id) and the ids and times the API
/// gave its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecord {
    pub id: String,
    pub project_id: String,
    pub instance_id: String,
    pub create_time: String,
    pub channel: VpcChannel,
    /// By member group name.
    pub groups: BTreeMap<String, Stamp>,
    /// By member identity (`host:port`).
    pub members: BTreeMap<String, Stamp>,
    pub health_id: String,
}

/// A GA endpoint: a channel in an endpoint group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub resource_id: String,
    pub resource_type: String,
    pub weight: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointGroupRecord {
    pub id: String,
    /// The creator's project when its token was scoped; a scoped token sees only its own.
    pub project_id: Option<String>,
    pub group: EndpointGroup,
    pub created_at: String,
    pub updated_at: String,
    pub endpoints: Vec<Endpoint>,
}

/// Where a protection group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgStatus {
    Creating,
    Available,
    FailingOver,
    FailedOver,
    Deleting,
}

impl PgStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PgStatus::Creating => "creating",
            PgStatus::Available => "available",
            PgStatus::FailingOver => "failing-over",
            PgStatus::FailedOver => "failed-over",
            PgStatus::Deleting => "deleting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectionGroupRecord {
    pub id: String,
    pub project_id: String,
    pub group: ProtectionGroup,
    pub status: PgStatus,
    pub created_at: String,
    pub updated_at: String,
}

/// An SDRS asynchronous job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub project_id: String,
    pub job_type: String,
    /// RUNNING, SUCCESS or FAIL.
    pub status: String,
    pub begin_time: String,
    pub end_time: Option<String>,
    pub server_group_id: String,
}

/// Everything the API created.
#[derive(Default)]
pub struct Registry {
    pub channels: BTreeMap<String, ChannelRecord>,
    pub runtimes: BTreeMap<String, ChannelRuntime>,
    pub endpoint_groups: BTreeMap<String, EndpointGroupRecord>,
    pub protection_groups: BTreeMap<String, ProtectionGroupRecord>,
    pub jobs: BTreeMap<String, Job>,
}

/// The server's state: the registry behind one async lock (writes are rare and short, and
/// holding it across a data-plane change keeps changes to one channel in order), and what
/// never changes.
pub struct Control {
    pub registry: tokio::sync::Mutex<Registry>,
    pub ids: IdGen,
    pub env: Arc<Env>,
    /// How long an SDRS job takes.
    pub job_duration: std::time::Duration,
    /// The durable store (`--state`); `None`: memory only.
    pub store: Option<Arc<Store>>,
}

impl Control {
    /// Makes a record durable; returns once it is on disk (at once without a store).
    pub async fn save<T: Serialize>(&self, kind: &'static str, id: &str, value: &T) -> Result<(), PersistError> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        let (value, id) = (serde_json::to_value(value)?, id.to_string());
        let put = tokio::task::spawn_blocking(move || store.put(kind, &id, &value));
        Ok(put.await.map_err(|e| PersistError::Task(e.to_string()))??)
    }

    /// Removes a record durably.
    pub async fn forget(&self, kind: &'static str, id: &str) -> Result<(), PersistError> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        let id = id.to_string();
        let delete = tokio::task::spawn_blocking(move || store.delete(kind, &id));
        Ok(delete.await.map_err(|e| PersistError::Task(e.to_string()))??)
    }
}

impl Registry {
    /// The registry as a store's records left it. Jobs that a restart interrupted complete now
    /// (their changes were acknowledged): a protection group being created becomes available,
    /// one failing over has failed over, one being deleted is gone.
    pub fn restore(records: Vec<(String, String, Value)>) -> Result<Registry, PersistError> {
        let mut reg = Registry::default();
        for (kind, id, value) in records {
            match kind.as_str() {
                CHANNEL => drop(reg.channels.insert(id, serde_json::from_value(value)?)),
                ENDPOINT_GROUP => drop(reg.endpoint_groups.insert(id, serde_json::from_value(value)?)),
                PROTECTION_GROUP => drop(reg.protection_groups.insert(id, serde_json::from_value(value)?)),
                JOB => drop(reg.jobs.insert(id, serde_json::from_value(value)?)),
                _ => tracing::warn!(%kind, %id, "unknown record kind in the state file"),
            }
        }
        let now = now_utc();
        for job in reg.jobs.values_mut().filter(|j| j.status == "RUNNING") {
            job.status = "SUCCESS".into();
            job.end_time = Some(now.clone());
        }
        reg.protection_groups.retain(|_, pg| pg.status != PgStatus::Deleting);
        for pg in reg.protection_groups.values_mut() {
            pg.status = match pg.status {
                PgStatus::Creating => PgStatus::Available,
                PgStatus::FailingOver => PgStatus::FailedOver,
                s => s,
            };
        }
        Ok(reg)
    }

    /// The channel as its balancer should see it: under a protection group of its project,
    /// members of the standing-by AZ take no traffic (status 2): the target AZ until a failover
    /// completes, the source AZ after it.
    pub fn effective_channel(&self, rec: &ChannelRecord, env: &Env) -> VpcChannel {
        let mut ch = rec.channel.clone();
        let ids = crate::sim::scenario::member_ids(&ch);
        for pg in self.protection_groups.values().filter(|p| p.project_id == rec.project_id) {
            let off_az = match pg.status {
                PgStatus::FailedOver => &pg.group.source_availability_zone,
                PgStatus::Creating | PgStatus::Deleting => continue,
                _ => &pg.group.target_availability_zone,
            };
            for (m, id) in ch.members.iter_mut().zip(&ids) {
                if env.az(*id) == Some(off_az.as_str()) {
                    m.status = Some(2);
                }
            }
        }
        ch
    }

    /// Channels of a project (optionally one instance), in id order.
    pub fn channels_of<'a>(&'a self, project: &'a str) -> impl Iterator<Item = &'a ChannelRecord> + 'a {
        self.channels.values().filter(move |c| c.project_id == project)
    }
}
