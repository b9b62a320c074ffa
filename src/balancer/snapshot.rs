//! The immutable snapshot that one selection reads: members, health, the active tier and the
//! strategy's precomputed structures. A writer builds a new one and swaps it in whole.

use super::hash::{bucket_seed, mix, seed_of, Draw, Race};
use super::member::{Member, Name};
use super::table::{self, HashTable};
use super::wrr::{smooth_schedule, Cursors};
use super::{BackupMode, GroupWeights, SelectError, Strategy};
use crate::health::HealthState;

/// Which members the strategy runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Some non-backup member is eligible.
    Primary,
    /// No primary is eligible; the eligible backups take the traffic.
    Backup,
    /// Panic mode (`panic_threshold`): too few primaries are healthy and no backup is eligible,
    /// so every enabled primary takes traffic, healthy or not.
    Panic,
}

pub(crate) struct Snapshot {
    pub(crate) strategy: Strategy,
    /// Bumped by every rebuild; per-stripe WLC indexes follow it.
    pub(crate) generation: u64,
    pub(crate) members: Box<[Member]>,
    pub(crate) health: Box<[HealthState]>,
    pub(crate) track_in_flight: bool,
    pub(crate) active: Result<Active, SelectError>,
    /// Bounded-load hashing (`hash_balance_factor`): each member's weight share, by index.
    pub(crate) bounded: Option<Box<[f64]>>,
}

/// The eligible members of the active tier, grouped, with each strategy's structures.
pub(crate) struct Active {
    pub(crate) tier: Tier,
    pub(crate) groups: Box<[GroupPlan]>,
    /// Smooth WRR over group weights; `[0]` when there is one group.
    pub(crate) group_schedule: Box<[u32]>,
    pub(crate) cursors: Cursors,
    pub(crate) table: Option<HashTable>,
    /// Lengths of the group schedule and each group's schedule, to carry cursors over.
    pub(crate) schedule_lens: Vec<usize>,
}

/// One group of eligible members (flat mode: all of them).
pub(crate) struct GroupPlan {
    pub(crate) seed: u64,
    pub(crate) weight: u32,
    /// Member indices, in configuration order.
    pub(crate) members: Box<[u32]>,
    /// Weight of each member within the group.
    pub(crate) weights: Box<[u32]>,
    /// One period of smooth WRR, as positions in `members` (WRR only).
    pub(crate) schedule: Box<[u32]>,
    pub(crate) race: Race,
}

/// The member group table in effect: name and `member_group_weight`.
pub(crate) struct GroupSpec {
    pub(crate) name: Name,
    pub(crate) weight: Option<u32>,
}

pub(crate) struct BuildInput<'a> {
    pub(crate) strategy: Strategy,
    pub(crate) members: &'a [Member],
    pub(crate) groups: &'a [GroupSpec],
    pub(crate) health: &'a [HealthState],
    pub(crate) mode: GroupWeights,
    pub(crate) hash_bits: Option<u8>,
    pub(crate) backup_mode: BackupMode,
    /// Percent of enabled primaries that must be healthy before panic mode (none: off).
    pub(crate) panic_threshold: Option<u8>,
}

/// Second-level bucket seeds differ from the first level's, so that a key's group and its member
/// within the group are drawn independently.
pub(crate) const MEMBER_LEVEL: u64 = 0x5851_F42D_4C95_7F2D;

pub(crate) fn build_active(input: &BuildInput<'_>, previous: Option<&Active>) -> Result<Active, SelectError> {
    let members = input.members;
    if members.is_empty() {
        return Err(SelectError::NoMembers);
    }
    let enabled = |i: usize| members[i].is_enabled() && group_enabled(input, &members[i]);
    let eligible = |i: usize| enabled(i) && input.health[i].is_eligible();
    let primaries: Vec<u32> =
        (0..members.len()).filter(|&i| !members[i].backup && eligible(i)).map(|i| i as u32).collect();
    let backups =
        || (0..members.len()).filter(|&i| members[i].backup && eligible(i)).map(|i| i as u32).collect::<Vec<u32>>();
    // Panic mode: healthy primaries under `panic_threshold` percent of the enabled ones and no
    // eligible backup (backups come first, as the create-VPC-channel API says): spread over every enabled primary.
    let enabled_primaries: Vec<u32> =
        (0..members.len()).filter(|&i| !members[i].backup && enabled(i)).map(|i| i as u32).collect();
    if let Some(threshold) = input.panic_threshold {
        let healthy = primaries.len() as u64 * 100;
        if !enabled_primaries.is_empty()
            && healthy < u64::from(threshold) * enabled_primaries.len() as u64
            && backups().is_empty()
        {
            return finish(input, previous, Tier::Panic, enabled_primaries);
        }
    }
    let (tier, chosen) = if !primaries.is_empty() {
        (Tier::Primary, primaries)
    } else {
        let mut backups = backups();
        if backups.is_empty() {
            let any_enabled = (0..members.len()).any(enabled);
            return Err(if any_enabled { SelectError::AllUnhealthy } else { SelectError::AllDisabled });
        }
        if input.backup_mode == BackupMode::First {
            backups.truncate(1);
        }
        (Tier::Backup, backups)
    };
    finish(input, previous, tier, chosen)
}

/// Plans the chosen members of the active tier: groups, schedules, cursors, hash table.
fn finish(
    input: &BuildInput<'_>,
    previous: Option<&Active>,
    tier: Tier,
    chosen: Vec<u32>,
) -> Result<Active, SelectError> {
    let members = input.members;
    let groups = plan_groups(input, &chosen);
    let group_schedule: Box<[u32]> = if groups.len() == 1 {
        Box::new([0])
    } else {
        smooth_schedule(&groups.iter().map(|g| g.weight).collect::<Vec<_>>()).into()
    };
    let mut schedule_lens = vec![group_schedule.len()];
    schedule_lens.extend(groups.iter().map(|g| g.schedule.len()));
    let cursors = Cursors::new(1 + groups.len());
    if let Some(prev) = previous {
        cursors.carry_from(&prev.cursors, &prev.schedule_lens, &schedule_lens);
    }
    let table = match input.strategy {
        // Sized by the configured members, not the eligible ones, so that health changes keep
        // the table's size and key spaces compare bucket for bucket.
        Strategy::SourceIp | Strategy::UriHash => {
            let bits = input.hash_bits.unwrap_or_else(|| super::hash::default_bits(members.len()));
            let prev = previous.and_then(|p| Some((&*p.groups, p.table.as_ref()?)));
            Some(table::build(&groups, bits, prev))
        }
        _ => None,
    };
    Ok(Active { tier, groups: groups.into(), group_schedule, cursors, table, schedule_lens })
}

fn group_enabled(input: &BuildInput<'_>, m: &Member) -> bool {
    match (input.mode, m.group) {
        (GroupWeights::Hierarchical, Some(g)) => group_weight_spec(input.groups, g) != Some(0),
        _ => true,
    }
}

fn group_weight_spec(groups: &[GroupSpec], name: Name) -> Option<u32> {
    groups.iter().find(|g| g.name == name).and_then(|g| g.weight)
}

fn plan_groups(input: &BuildInput<'_>, chosen: &[u32]) -> Vec<GroupPlan> {
    let members = input.members;
    let wrr = input.strategy == Strategy::Wrr;
    let make = |seed: u64, weight: u32, idx: Vec<u32>, weights: Vec<u32>| {
        let schedule = if wrr { smooth_schedule(&weights).into() } else { Box::default() };
        let race = Race::new(idx.iter().zip(&weights).map(|(&i, &w)| (i, seed_of_member(&members[i as usize]), w)));
        GroupPlan { seed, weight, members: idx.into(), weights: weights.into(), schedule, race }
    };
    if input.mode == GroupWeights::Inherit {
        let weights = chosen.iter().map(|&i| members[i as usize].effective_weight).collect();
        return vec![make(0, 1, chosen.to_vec(), weights)];
    }
    // Hierarchical: named groups in the order they are defined (then in order of appearance for
    // names the channel does not define), then each ungrouped member as a group of its own.
    let mut names: Vec<Name> = input.groups.iter().map(|g| g.name).collect();
    for &i in chosen {
        if let Some(g) = members[i as usize].group {
            if !names.contains(&g) {
                names.push(g);
            }
        }
    }
    let mut out = Vec::new();
    for name in names {
        let idx: Vec<u32> = chosen.iter().copied().filter(|&i| members[i as usize].group == Some(name)).collect();
        if idx.is_empty() {
            continue;
        }
        let weights: Vec<u32> = idx.iter().map(|&i| members[i as usize].weight).collect();
        let gw = group_weight_spec(input.groups, name).unwrap_or_else(|| weights.iter().sum());
        out.push(make(seed_of(name.get()), gw, idx, weights));
    }
    for &i in chosen {
        let m = &members[i as usize];
        if m.group.is_none() {
            out.push(make(seed_of_member(m) ^ 0xA5A5, m.weight, vec![i], vec![m.weight]));
        }
    }
    out
}

pub(crate) fn seed_of_member(m: &Member) -> u64 {
    seed_of(&m.id.to_string())
}

impl Active {
    /// The group of a bucket's preference order, best first, and within each group the members.
    /// `skip` members are left out. Used for retries, fallbacks and `explain`, not per pick.
    pub(crate) fn preference(&self, bucket: usize) -> Vec<u32> {
        let bs = bucket_seed(bucket);
        let ms = mix(bs ^ MEMBER_LEVEL);
        let single = self.groups.len() == 1;
        let mut groups: Vec<Draw> = (0..self.groups.len() as u32).map(|g| self.group_draw(bs, g, single)).collect();
        groups.sort_by(Draw::cmp);
        let mut out = Vec::new();
        for gd in groups {
            let p = &self.groups[gd.idx as usize];
            let mut order: Vec<Draw> = p
                .members
                .iter()
                .zip(p.weights.iter())
                .filter(|(_, &w)| w > 0)
                .map(|(&i, &w)| Draw::new(ms, p.race_seed(i), w, i))
                .collect();
            order.sort_by(Draw::cmp);
            out.extend(order.into_iter().map(|d| d.idx));
        }
        out
    }

    /// Group `g`'s draw in bucket seed `bs` (`single`: the only group, no race).
    pub(crate) fn group_draw(&self, bs: u64, g: u32, single: bool) -> Draw {
        let p = &self.groups[g as usize];
        if single {
            Draw::only(g)
        } else {
            Draw::new(bs, p.seed, p.weight, g)
        }
    }
}

impl GroupPlan {
    pub(crate) fn race_seed(&self, member: u32) -> u64 {
        self.race.candidate_seed(member).unwrap_or(0)
    }
}
