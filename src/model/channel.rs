//! ROMA Connect's create-VPC-channel API (a VPC channel in a project): its request body, field for
//! field.

use super::enums::{CheckMethod, CheckProtocol, MemberType, ServiceType, VpcChannelType, WorkloadType};
use serde::{Deserialize, Serialize};

/// A VPC channel: one balancer. The create-VPC-channel API's request body verbatim (JSON, or the
/// same fields in TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcChannel {
    pub name: String,
    pub port: i64,
    /// 1 WRR, 2 WLC, 3 source-IP hash, 4 URI hash.
    pub balance_strategy: i64,
    pub member_type: MemberType,
    /// Deprecated channel type: 2 server, 3 microservice. Exclusive with `vpc_channel_type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_channel_type: Option<VpcChannelType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dict_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_groups: Vec<MemberGroup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_health_config: Option<VpcHealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microservice_info: Option<MicroserviceInfo>,
    pub instance_ids: Vec<String>,
}

/// `MemberGroupCreate` (the add-or-update-member-groups and create-VPC-channel APIs). The
/// add-or-update-member-groups API's microservice example sends `version` and `port`; they are
/// accepted as `microservice_version` and `microservice_port`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberGroup {
    pub member_group_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_group_remark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_group_weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dict_code: Option<String>,
    #[serde(default, alias = "version", skip_serializing_if = "Option::is_none")]
    pub microservice_version: Option<String>,
    #[serde(default, alias = "port", skip_serializing_if = "Option::is_none")]
    pub microservice_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub microservice_labels: Vec<MicroserviceLabel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_vpc_channel_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicroserviceLabel {
    pub label_name: String,
    pub label_value: String,
}

/// `MemberInfo`: one backend. Identity is `host:port` (ECS: `ecs_id:port`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// 0-100; absent: 1. Weight 0 is never selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_backup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_group_name: Option<String>,
    /// 1 available, 2 unavailable (never selected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// 0 or absent: the channel's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_name: Option<String>,
}

/// `VpcHealthConfig`: the active health check of every member of the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcHealthConfig {
    pub protocol: CheckProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<CheckMethod>,
    /// 0 or absent: the member's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    pub threshold_normal: i64,
    pub threshold_abnormal: i64,
    /// Seconds between checks of one member; greater than `timeout`.
    pub time_interval: i64,
    /// `200`, `200,201`, `200-299`, `201,210-299`: values within 100-599.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_client_ssl: Option<bool>,
    /// 1 enabled, 2 disabled (members stay `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// Seconds; less than `time_interval`.
    pub timeout: i64,
}

/// `MicroServiceCreate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicroserviceInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cse_info: Option<CseInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cce_info: Option<CceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cce_service_info: Option<CceServiceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nacos_info: Option<NacosInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CseInfo {
    pub engine_id: String,
    pub service_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CceInfo {
    pub cluster_id: String,
    pub namespace: String,
    pub workload_type: WorkloadType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CceServiceInfo {
    pub cluster_id: String,
    pub namespace: String,
    pub service_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NacosInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    pub service_name: String,
    pub server_config: Vec<NacosServerConfig>,
    pub user_info: NacosUserInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NacosServerConfig {
    pub ip_address: String,
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_port: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NacosUserInfo {
    pub user_name: String,
    pub password: String,
}

/// ROMA Connect's add-or-update-member-groups API: its request body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberGroupsBody {
    #[serde(default)]
    pub member_groups: Vec<MemberGroup>,
}
