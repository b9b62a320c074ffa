//! A scenario resolved once into what runs it: every member with the backend that plays it and
//! the faults that hit it, and every channel with its place among GA's endpoint groups. The
//! simulator, live mode (its loopback backends and its report) and `lbsim explain` all read
//! members, backends and faults here, so that they cannot disagree about which fault hits which
//! member or how a member's backend behaves.
//!
//! A member named in `[[backends]]` takes that entry; any other member (including one that a
//! `[[changes]]` entry adds later) gets [`BackendSpec::default_for`]. A `down`, `slow`, `errors`
//! or `flap` fault hits the member it names; an `az_down` fault hits every member placed in its
//! `az`.

use super::faults::MemberFaults;
use super::scenario::{member_ids, BackendSpec, ChannelSpec, FaultKind, FaultSpec};
use crate::balancer::MemberId;

/// The resolved scenario (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    members: Vec<MemberPlan>,
    channels: Vec<ChannelPlan>,
    /// `[[backends]]` as written, for members that join later.
    backends: Vec<BackendSpec>,
    /// `[[faults]]` as written.
    faults: Vec<FaultSpec>,
}

/// One member: its identity, the channel that first lists it, its backend and its faults.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPlan {
    pub id: MemberId,
    /// Index of the channel (GA: endpoint group) that lists it, in scenario order.
    pub channel: usize,
    /// Its backend: speed, slots, queue, availability zone.
    pub spec: BackendSpec,
    /// Indices into the scenario's faults of those that hit it, in file order.
    pub faults: Vec<usize>,
}

/// One channel's place in the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPlan {
    /// GA: the endpoint group's `region_id`; `None` for the single `[channel]`.
    pub region: Option<String>,
    /// GA: the endpoint group's `traffic_dial_percentage` (0-100, default 100); 100 for the
    /// single `[channel]`.
    pub dial: u32,
}

impl Plan {
    /// Resolves the members of `channels` (each member once, in channel order then member
    /// order) against `backends` and `faults`.
    pub(crate) fn new(channels: &[ChannelSpec], backends: &[BackendSpec], faults: &[FaultSpec]) -> Plan {
        let mut plan = Plan {
            members: Vec::new(),
            channels: channels
                .iter()
                .map(|c| ChannelPlan {
                    region: c.endpoint_group.as_ref().map(|g| g.region_id.clone()),
                    dial: c.endpoint_group.as_ref().and_then(|g| g.traffic_dial_percentage).unwrap_or(100).clamp(0, 100)
                        as u32,
                })
                .collect(),
            backends: backends.to_vec(),
            faults: faults.to_vec(),
        };
        for (c, ch) in channels.iter().enumerate() {
            for id in member_ids(&ch.channel) {
                if plan.get(id).is_none() {
                    let m = plan.resolve(id, c);
                    plan.members.push(m);
                }
            }
        }
        plan
    }

    /// Every member of the scenario's channels as the run starts, each once.
    pub fn members(&self) -> &[MemberPlan] {
        &self.members
    }

    /// The channels, in scenario order.
    pub fn channels(&self) -> &[ChannelPlan] {
        &self.channels
    }

    /// A member of the scenario's channels.
    pub fn get(&self, id: MemberId) -> Option<&MemberPlan> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The plan of member `id` of channel `channel`: the scenario's, or, for a member that joins
    /// later, its backend and faults resolved by the same rules.
    pub fn resolve(&self, id: MemberId, channel: usize) -> MemberPlan {
        if let Some(m) = self.get(id) {
            return m.clone();
        }
        let spec = self
            .backends
            .iter()
            .find(|b| MemberId::parse(&b.member) == Some(id))
            .cloned()
            .unwrap_or_else(|| BackendSpec::default_for(id));
        let faults = (0..self.faults.len()).filter(|&i| hits(&self.faults[i], id, &spec)).collect();
        MemberPlan { id, channel, spec, faults }
    }

    /// The availability zone of a member (`[[backends]]`' `az`).
    pub fn az_of(&self, id: MemberId) -> Option<&str> {
        match self.get(id) {
            Some(m) => m.spec.az.as_deref(),
            None => self.backends.iter().find(|b| MemberId::parse(&b.member) == Some(id)).and_then(|b| b.az.as_deref()),
        }
    }

    /// Whether fault `fault` hits member `id`.
    pub fn hits(&self, fault: usize, id: MemberId) -> bool {
        self.get(id).map_or_else(|| self.resolve(id, 0).faults.contains(&fault), |m| m.faults.contains(&fault))
    }

    /// The members (of [`Plan::members`]) that fault `fault` hits.
    pub fn hit_by(&self, fault: usize) -> impl Iterator<Item = &MemberPlan> + '_ {
        self.members.iter().filter(move |m| m.faults.contains(&fault))
    }

    /// A member's fault windows; a fault without `until_s` lasts until `end` (seconds).
    pub fn fault_windows(&self, m: &MemberPlan, end: f64) -> MemberFaults {
        let mut out = MemberFaults::default();
        for &i in &m.faults {
            out.add(i, &self.faults[i], end);
        }
        out
    }

    /// The scenario's faults, as written.
    pub fn faults(&self) -> &[FaultSpec] {
        &self.faults
    }
}

/// Whether fault `f` hits the member `id` whose backend is `spec`.
fn hits(f: &FaultSpec, id: MemberId, spec: &BackendSpec) -> bool {
    match f.kind {
        FaultKind::AzDown => spec.az.is_some() && f.az == spec.az,
        _ => f.member.as_deref().and_then(MemberId::parse) == Some(id),
    }
}

#[cfg(test)]
mod tests {
    use crate::balancer::MemberId;
    use crate::model::Format;
    use crate::sim::Scenario;

    #[test]
    fn members_take_their_backend_and_the_faults_that_hit_them() {
        let sc = Scenario::parse(
            r#"
            [channel]
            name = "plan_test"
            port = 80
            balance_strategy = 1
            member_type = "ip"
            instance_ids = ["eea73cde015940908ae0117d67bf7330"]
            members = [{ host = "10.0.0.1", weight = 1 }, { host = "10.0.0.2", weight = 1 }, { host = "10.0.0.3", weight = 1 }]
            [[backends]]
            member = "10.0.0.2:80"
            speed = 2.0
            az = "az1"
            [[backends]]
            member = "10.0.0.3:80"
            az = "az1"
            [[faults]]
            member = "10.0.0.1:80"
            kind = "down"
            at_s = 1
            [[faults]]
            az = "az1"
            kind = "az_down"
            at_s = 2
            until_s = 3
            "#,
            Format::Toml,
        )
        .expect("valid scenario");
        let plan = sc.plan();
        let ids: Vec<String> = plan.members().iter().map(|m| m.id.to_string()).collect();
        assert_eq!(ids, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let faults: Vec<&[usize]> = plan.members().iter().map(|m| m.faults.as_slice()).collect();
        assert_eq!(faults, [&[0][..], &[1], &[1]]);
        assert_eq!(plan.members()[1].spec.speed, 2.0);
        assert_eq!(plan.members()[0].spec.speed, 1.0);
        assert_eq!(plan.az_of(MemberId::new("10.0.0.3", 80)), Some("az1"));
        let hit: Vec<String> = plan.hit_by(1).map(|m| m.id.to_string()).collect();
        assert_eq!(hit, ["10.0.0.2:80", "10.0.0.3:80"]);
        // A member that joins later: defaults, no fault.
        let later = plan.resolve(MemberId::new("10.0.0.9", 80), 0);
        assert!(later.faults.is_empty() && later.spec.az.is_none());
        assert!(!plan.hits(0, later.id) && plan.hits(0, MemberId::new("10.0.0.1", 80)));
        // Open windows last until the given end.
        let w = plan.fault_windows(&plan.members()[0], 10.0);
        assert!(!w.at(0.5).down && w.at(9.9).down && !w.at(10.0).down);
    }
}
