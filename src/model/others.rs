//! The request bodies of ZStack's add-backend-servers API, Global Accelerator's
//! add-endpoint-group API and SDRS's create-protection-group API.

use super::enums::DrType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// ZStack's add-backend-servers API (to a server group): its request body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendServersBody {
    pub params: BackendServersParams,
    #[serde(default)]
    pub system_tags: Vec<String>,
    #[serde(default)]
    pub user_tags: Vec<String>,
}

/// `params`: each entry is a one-key object `{"<ip or nic uuid>": "<weight as a string>"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendServersParams {
    #[serde(default, rename = "vmNics")]
    pub vm_nics: Vec<BTreeMap<String, String>>,
    #[serde(default)]
    pub servers: Vec<BTreeMap<String, String>>,
}

/// Global Accelerator's add-endpoint-group API: its request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointGroupBody {
    pub endpoint_group: EndpointGroup,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 0-100; absent: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_dial_percentage: Option<i64>,
    pub region_id: String,
    pub listeners: Vec<ListenerId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerId {
    pub id: String,
}

/// SDRS's create-protection-group API: its request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionGroupBody {
    pub server_group: ProtectionGroup,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source_availability_zone: String,
    pub target_availability_zone: String,
    pub domain_id: String,
    pub source_vpc_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_type: Option<DrType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_type: Option<String>,
}
