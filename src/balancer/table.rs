//! The hash strategies' bucket table: each bucket's owner is the winner of its two-level race
//! (the group, then a member of that group; see `hash.rs`).
//!
//! Built whole, a table costs one draw per bucket and candidate: tens of milliseconds at the
//! default sizes, paid on every change of the eligible set. A health change moves a member or
//! two in or out of the race, and a slow-start step raises one member's weight, so a new table is
//! carried over from the previous one when it can be: a bucket whose owner stays keeps it unless
//! a candidate that joined (or whose weight grew) draws less, and a bucket whose owner left (or
//! whose weight shrank) runs its race again. Draws are totally ordered and a larger weight never
//! draws more, so the carried table is the whole build's, bucket for bucket (tested below).
//! Anything else (an index naming another member, groups reordered, many joiners, every weight
//! rescaled as when a ramp starts or ends) builds the table whole.

use super::hash::{bucket_seed, mix, Draw, Race};
use super::snapshot::{GroupPlan, MEMBER_LEVEL};
use std::collections::HashMap;

pub(crate) struct HashTable {
    pub(crate) bits: u8,
    /// Member index per bucket.
    pub(crate) owners: Box<[u32]>,
}

/// The table of `groups` with `2^bits` buckets, carried over from `previous` (the groups and
/// table of the snapshot before) when only a few candidates joined or left.
pub(crate) fn build(groups: &[GroupPlan], bits: u8, previous: Option<(&[GroupPlan], &HashTable)>) -> HashTable {
    previous
        .filter(|(_, table)| table.bits == bits)
        .and_then(|(old, table)| Change::between(old, groups).map(|change| change.carry(groups, table)))
        .unwrap_or_else(|| whole(groups, bits))
}

fn whole(groups: &[GroupPlan], bits: u8) -> HashTable {
    let group_race = group_race(groups);
    let owners = (0..1usize << bits)
        .map(|b| {
            let bs = bucket_seed(b);
            let g = if groups.len() == 1 { 0 } else { group_race.winner(bs).unwrap_or(0) };
            member_race(&groups[g as usize], bs)
        })
        .collect();
    HashTable { bits, owners }
}

fn group_race(groups: &[GroupPlan]) -> Race {
    Race::new(groups.iter().enumerate().map(|(g, p)| (g as u32, p.seed, p.weight)))
}

/// The owner of a bucket (seed `bs`) within group `p`.
fn member_race(p: &GroupPlan, bs: u64) -> u32 {
    p.race.winner(mix(bs ^ MEMBER_LEVEL)).unwrap_or(p.members[0])
}

/// What changed between two snapshots' groups, in the new snapshot's indices.
struct Change {
    /// By old group index: its new index, if it stayed (same seed, weight not smaller).
    group_stays: Vec<Option<u32>>,
    /// New groups that were not there before, and groups that stay with a larger weight.
    groups_joined: Vec<u32>,
    /// By old member index: its old group (`NONE` outside the race).
    old_group: Vec<u32>,
    /// By old member index: it stays in the race, in the same group, its weight not smaller.
    member_stays: Vec<bool>,
    /// By new group: members that joined it or stay with a larger weight, as
    /// `(index, seed, weight)`.
    members_joined: Vec<Vec<(u32, u64, u32)>>,
    /// By new member index: `(seed, weight now)` of those that stayed.
    stayer: Vec<(u64, u32)>,
}

const NONE: u32 = u32::MAX;

impl Change {
    /// `None` when the table must be built whole: an index now names another member, groups
    /// that stay changed their order, a zero weight is in play, or so many joined that carrying
    /// would cost about as much as building.
    fn between(old: &[GroupPlan], new: &[GroupPlan]) -> Option<Change> {
        let zero = |gs: &[GroupPlan]| gs.iter().any(|p| p.weight == 0 || p.weights.contains(&0));
        if zero(old) || zero(new) || old.is_empty() || new.is_empty() {
            return None;
        }
        // Groups by seed (a seed twice would make "the same group" ambiguous).
        let mut by_seed = HashMap::with_capacity(new.len());
        if new.iter().enumerate().any(|(g, p)| by_seed.insert(p.seed, g as u32).is_some()) {
            return None;
        }
        // A group that stays with a larger weight draws less in every bucket: it keeps its
        // buckets and competes for the others as a joiner does. One with a smaller weight can
        // only lose buckets: its buckets run their race again, as if it had left.
        let mut group_stays = vec![None; old.len()];
        let mut group_joined = vec![true; new.len()];
        let mut staying = vec![false; new.len()];
        let mut groups_improved = Vec::new();
        let mut last = None;
        for (og, p) in old.iter().enumerate() {
            let Some(&ng) = by_seed.get(&p.seed) else { continue };
            // Groups that stay keep their order (their indices break ties).
            if last.is_some_and(|l| l >= ng) {
                return None;
            }
            last = Some(ng);
            group_joined[ng as usize] = false;
            let w = new[ng as usize].weight;
            if w >= p.weight {
                group_stays[og] = Some(ng);
                staying[ng as usize] = true;
            }
            if w > p.weight {
                groups_improved.push(ng);
            }
        }
        let mut groups_joined: Vec<u32> = (0..new.len() as u32).filter(|&g| group_joined[g as usize]).collect();
        groups_joined.extend(groups_improved);

        let n_old = old.iter().flat_map(|p| p.members.iter()).map(|&i| i as usize + 1).max().unwrap_or(0);
        let n_new = new.iter().flat_map(|p| p.members.iter()).map(|&i| i as usize + 1).max().unwrap_or(0);
        let mut old_seed = vec![(NONE, 0u64, 0u32); n_old];
        for (og, p) in old.iter().enumerate() {
            for (i, seed, w) in p.race.candidates() {
                old_seed[i as usize] = (og as u32, seed, w);
            }
        }
        let mut member_stays = vec![false; n_old];
        let mut stayer = vec![(0u64, 0u32); n_new];
        let mut members_joined = vec![Vec::new(); new.len()];
        for (ng, p) in new.iter().enumerate() {
            for (i, seed, w) in p.race.candidates() {
                let (og, s, ow) = old_seed.get(i as usize).copied().unwrap_or((NONE, 0, 0));
                if og != NONE && s != seed {
                    return None;
                }
                // Members as groups: a larger weight stays and joins, a smaller one leaves.
                let same_group = og != NONE && group_stays[og as usize] == Some(ng as u32);
                if same_group && w >= ow {
                    member_stays[i as usize] = true;
                    stayer[i as usize] = (seed, w);
                }
                if !same_group || w > ow {
                    members_joined[ng].push((i, seed, w));
                }
            }
        }
        // Each joiner costs a draw in every bucket it may take; a whole build costs one per
        // candidate. (Members of a group that does not stay run only in their group's races
        // again, as in a whole build.)
        let joined_members: usize = members_joined.iter().zip(&staying).filter(|(_, &s)| s).map(|(v, _)| v.len()).sum();
        let candidates = new.len() + new.iter().map(|p| p.members.len()).sum::<usize>();
        if 4 * (groups_joined.len() + joined_members) > candidates {
            return None;
        }
        let old_group = old_seed.iter().map(|s| s.0).collect();
        Some(Change { group_stays, groups_joined, old_group, member_stays, members_joined, stayer })
    }

    fn carry(&self, new: &[GroupPlan], old: &HashTable) -> HashTable {
        let single = new.len() == 1;
        let group_race = group_race(new);
        let owners = old
            .owners
            .iter()
            .enumerate()
            .map(|(b, &o)| {
                let bs = bucket_seed(b);
                let stayed = self.old_group.get(o as usize).and_then(|&og| self.group_stays.get(og as usize)?.as_ref());
                let g = match stayed {
                    _ if single => 0,
                    Some(&g) if self.groups_joined.is_empty() => g,
                    Some(&g) => {
                        let draw = |ng: u32| Draw::new(bs, new[ng as usize].seed, new[ng as usize].weight, ng);
                        least(draw(g), self.groups_joined.iter().map(|&j| draw(j))).idx
                    }
                    None => group_race.winner(bs).unwrap_or(0),
                };
                let p = &new[g as usize];
                if stayed != Some(&g) || !self.member_stays.get(o as usize).copied().unwrap_or(false) {
                    return member_race(p, bs);
                }
                let joined = &self.members_joined[g as usize];
                if joined.is_empty() {
                    return o;
                }
                let ms = mix(bs ^ MEMBER_LEVEL);
                let (seed, w) = self.stayer[o as usize];
                least(Draw::new(ms, seed, w, o), joined.iter().map(|&(i, s, w)| Draw::new(ms, s, w, i))).idx
            })
            .collect();
        HashTable { bits: old.bits, owners }
    }
}

fn least(first: Draw, rest: impl Iterator<Item = Draw>) -> Draw {
    rest.fold(first, |best, d| if d.before(&best) { d } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::{Balancer, GroupWeights, MemberId};
    use crate::health::Outcome;
    use crate::model::VpcChannel;
    use serde_json::{json, Value};
    use std::time::Duration;

    const BITS: u8 = 12;

    /// `n` members `10.0.x.y`, weights 1-5, then two backups. With `groups`, members `i % 3 == 0`
    /// are in `grp0` and `i % 3 == 1` in `grp1` (with those group weights, or none: a group weighs
    /// its members' sum), the rest ungrouped. One check result flips a member's health.
    fn channel(n: usize, groups: Option<[Option<u32>; 2]>) -> VpcChannel {
        let members: Vec<Value> = (0..n + 2)
            .map(|i| {
                let mut m = json!({"host": format!("10.0.{}.{}", i / 250, i % 250), "weight": 1 + (i * 7) % 5});
                if i >= n {
                    m["is_backup"] = json!(true);
                }
                if groups.is_some() && i % 3 != 2 {
                    m["member_group_name"] = json!(format!("grp{}", i % 3));
                }
                m
            })
            .collect();
        let mut body = json!({"name": "carry", "port": 80, "balance_strategy": 3, "member_type": "ip",
            "instance_ids": ["eea73cde015940908ae0117d67bf7330"], "members": members,
            "vpc_health_config": {"protocol": "TCP", "threshold_normal": 1, "threshold_abnormal": 1,
                "time_interval": 10, "timeout": 5}});
        if let Some(weights) = groups {
            let gs: Vec<Value> = (0..2)
                .map(|g| {
                    let mut v = json!({"member_group_name": format!("grp{g}")});
                    if let Some(w) = weights[g] {
                        v["member_group_weight"] = json!(w);
                    }
                    v
                })
                .collect();
            body["member_groups"] = json!(gs);
        }
        match serde_json::from_value(body) {
            Ok(c) => c,
            Err(e) => panic!("test channel: {e}"),
        }
    }

    /// Random flips of members' health (`n` primaries, two backups): after each, the balancer's
    /// table is the whole build's. Returns how many flips carried the table over.
    fn flips(lb: &Balancer, n: usize, steps: usize, mut seed: u64) -> usize {
        let mut down = vec![false; n + 2];
        let mut carried = 0;
        for step in 0..steps {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % (n as u64 + 2)) as usize;
            let before = lb.snapshot.load_full();
            let id = MemberId::new(&format!("10.0.{}.{}", i / 250, i % 250), 80);
            let outcome = if down[i] { Outcome::Success } else { Outcome::Failure };
            assert!(lb.health().record(id, outcome).is_some(), "step {step}: member {i} flips");
            down[i] = !down[i];
            let after = lb.snapshot.load_full();
            let Ok(active) = &after.active else { continue };
            let Some(table) = &active.table else { panic!("step {step}: no table") };
            assert!(table.owners == whole(&active.groups, BITS).owners, "step {step}: carried table differs");
            if let Ok(old) = &before.active {
                carried += usize::from(Change::between(&old.groups, &active.groups).is_some());
            }
        }
        carried
    }

    fn balancer(ch: &VpcChannel, mode: GroupWeights) -> Balancer {
        match Balancer::builder(ch).group_weights(mode).hash_table_bits(BITS).build() {
            Ok(lb) => lb,
            Err(e) => panic!("test balancer: {e}"),
        }
    }

    #[test]
    fn one_group_carries_every_flip() {
        let lb = balancer(&channel(40, None), GroupWeights::Inherit);
        // Flips that switch to the backups (all 40 down) are rare at random; the rest carry.
        assert!(flips(&lb, 40, 300, 0x5eed) >= 290);
    }

    #[test]
    fn weighted_groups_and_ungrouped_members_carry() {
        let lb = balancer(&channel(30, Some([Some(3), Some(1)])), GroupWeights::Hierarchical);
        assert!(flips(&lb, 30, 300, 0xfeed) >= 250);
    }

    #[test]
    fn groups_weighing_their_members_carry_through_their_weight_changes() {
        // A group without a weight weighs its eligible members' sum: a member's flip changes its
        // group's weight, which shrinks (its buckets race again) or grows (it competes for the
        // others' buckets).
        let lb = balancer(&channel(30, Some([None, None])), GroupWeights::Hierarchical);
        assert!(flips(&lb, 30, 300, 0xbeef) >= 250);
    }

    #[test]
    fn slow_start_steps_carry_and_match_whole_builds() {
        let ch = channel(40, None);
        let lb = match Balancer::builder(&ch).hash_table_bits(BITS).slow_start(Duration::from_secs(20), 0.1).build() {
            Ok(lb) => lb,
            Err(e) => panic!("test balancer: {e}"),
        };
        let id = MemberId::new("10.0.0.7", 80);
        lb.tick(Duration::from_secs(1));
        lb.health().record_at(id, Outcome::Failure, Duration::from_secs(2));
        lb.health().record_at(id, Outcome::Success, Duration::from_secs(3));
        let (mut carried, mut rebuilds) = (0, 0);
        for s in 4..=24 {
            let before = lb.snapshot.load_full();
            lb.tick(Duration::from_secs(s));
            let after = lb.snapshot.load_full();
            if after.generation == before.generation {
                continue;
            }
            rebuilds += 1;
            let (Ok(old), Ok(new)) = (&before.active, &after.active) else { panic!("second {s}: no active tier") };
            let Some(table) = &new.table else { panic!("second {s}: no table") };
            assert!(table.owners == whole(&new.groups, BITS).owners, "second {s}: carried table differs");
            carried += usize::from(Change::between(&old.groups, &new.groups).is_some());
        }
        // One rebuild per step of the 20-step ramp, each carried (the last one drops the x100
        // scale: every weight shrinks, so every bucket runs its race again).
        assert_eq!((rebuilds, carried), (20, 20));
    }

    #[test]
    fn tier_switches_and_updates_match_whole_builds() {
        let ch = channel(6, None);
        let lb = balancer(&ch, GroupWeights::Inherit);
        let down = |i: usize, outcome| {
            let id = MemberId::new(&format!("10.0.0.{i}"), 80);
            assert!(lb.health().record(id, outcome).is_some());
        };
        let check = |what: &str| {
            let snap = lb.snapshot.load_full();
            let active = snap.active.as_ref().ok();
            let Some((active, table)) = active.and_then(|a| Some((a, a.table.as_ref()?))) else { panic!("{what}") };
            assert!(table.owners == whole(&active.groups, BITS).owners, "{what}");
        };
        for i in 0..6 {
            down(i, Outcome::Failure);
            check(&format!("member {i} down"));
        }
        for i in 0..6 {
            down(i, Outcome::Success);
            check(&format!("member {i} up"));
        }
        // The same members in another order: indices now name other members.
        let mut reordered = ch.clone();
        reordered.members.reverse();
        if let Err(e) = lb.update(&reordered) {
            panic!("update: {e}");
        }
        check("members reordered");
    }
}
