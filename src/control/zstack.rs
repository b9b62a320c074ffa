//! ZStack (the add-backend-servers API): add weighted backend servers (`servers`: IPs, `vmNics`: NIC uuids) to a
//! server group. A server group here is a VPC channel: `serverGroupUuid` is the channel's id.
//! Errors answer in ZStack's `{"error": {"code", "description", "details"}}` shape.

use super::state::ChannelRecord;
use super::vpc_channels::modify;
use super::{seed_body, Ctx, Handled, Reply};
use crate::balancer::MemberId;
use crate::model::BackendServersBody;
use crate::sim::scenario::add_backend_servers as add_to_channel;
use hyper::StatusCode;
use serde_json::{json, Value};

pub async fn add_backend_servers(ctx: &Ctx, body: &[u8]) -> Handled {
    let body: BackendServersBody = seed_body(body)?;
    let rec = modify(ctx, |rec| {
        add_to_channel(&mut rec.channel, &body);
        let keys = body.params.servers.iter().chain(&body.params.vm_nics).flat_map(|e| e.keys());
        Ok(keys.map(|k| MemberId::new(k, u16::try_from(rec.channel.port).unwrap_or(0)).to_string()).collect())
    })
    .await?;
    Reply::json(StatusCode::OK, json!({ "inventory": inventory(&rec) }))
}

/// `LoadBalancerServerGroupInventory`: IP members under `serverIps`, NIC members under
/// `vmNicRefs`.
fn inventory(rec: &ChannelRecord) -> Value {
    let mut ips = Vec::new();
    let mut nics = Vec::new();
    for m in &rec.channel.members {
        let Some(host) = m.host.as_deref() else { continue };
        let stamp = rec.members.get(&MemberId::of(&rec.channel, m).to_string());
        let (created, updated) = stamp.map_or(("", ""), |s| (s.create_time.as_str(), s.update_time.as_str()));
        let weight = m.weight.unwrap_or(1);
        if host.parse::<std::net::IpAddr>().is_ok() {
            ips.push(json!({"serverGroupUuid": rec.id, "ipAddress": host, "weight": weight, "status": "Active", "createDate": created, "lastOpDate": updated}));
        } else {
            nics.push(json!({"serverGroupUuid": rec.id, "vmNicUuid": host, "weight": weight, "status": "Active", "createDate": created, "lastOpDate": updated}));
        }
    }
    json!({"uuid": rec.id, "name": rec.channel.name, "serverIps": ips, "vmNicRefs": nics, "createDate": rec.create_time})
}
