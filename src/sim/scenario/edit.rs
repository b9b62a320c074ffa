//! Edits of a channel by the cloud APIs' bodies: ZStack's backend servers and the
//! add-or-update-member-groups API, as `[[server_groups]]` and `[[changes]]` apply them.

use crate::balancer::MemberId;
use crate::model::{BackendServersBody, MemberGroupsBody, VpcChannel};

/// Member identities of a channel, in member order ([`MemberId::of`]).
pub fn member_ids(ch: &VpcChannel) -> Vec<MemberId> {
    ch.members.iter().map(|m| MemberId::of(ch, m)).collect()
}

/// Adds a ZStack backendservers body's servers and NICs to a channel as members (weights given
/// as strings). A member that already exists takes the new weight.
pub fn add_backend_servers(ch: &mut VpcChannel, body: &BackendServersBody) {
    let entries = body.params.servers.iter().chain(body.params.vm_nics.iter());
    for entry in entries {
        for (host, weight) in entry {
            let weight = weight.trim().parse::<i64>().unwrap_or(1);
            match ch.members.iter_mut().find(|m| m.host.as_deref() == Some(host.as_str()) && m.port.unwrap_or(0) == 0) {
                Some(m) => m.weight = Some(weight),
                None => ch.members.push(crate::model::MemberInfo {
                    host: Some(host.clone()),
                    weight: Some(weight),
                    ..Default::default()
                }),
            }
        }
    }
}

/// Upserts member groups into a channel by name (the first definition in the body wins).
pub fn upsert_member_groups(ch: &mut VpcChannel, body: &MemberGroupsBody) {
    for g in body.effective() {
        match ch.member_groups.iter_mut().find(|e| e.member_group_name == g.member_group_name) {
            Some(existing) => *existing = g.clone(),
            None => ch.member_groups.push(g.clone()),
        }
    }
}
