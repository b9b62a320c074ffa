//! Exhaustive interleaving check of the balancer's only shared state beyond `arc-swap` and plain
//! atomics: the per-stripe WLC index and in-flight counts, each behind its stripe's mutex.
//!
//! Every access to a stripe happens inside one critical section (`pick`, `open`, `close`,
//! `in_flight`), and the snapshot is read and replaced by single `arc-swap` operations, so a
//! concurrent execution is equivalent to some sequence of these atomic steps: a selection loads
//! the snapshot (step 1) and later locks its stripe to pick (step 2); the pick ends in another
//! critical section (step 3), possibly on another thread; `update` publishes a new snapshot
//! (one step). This test runs every sequence of three such selections on one stripe and two
//! updates that remove a member and bring it back (92,400 orders), and checks after every step
//! that the stripe's index agrees with its counts, that the counts equal the picks still open,
//! and that a pick is an eligible member of the snapshot it loaded; at the end every count is 0.
//! This is what a `loom` model would explore, without instrumenting `parking_lot`.

use super::snapshot::Snapshot;
use super::Balancer;
use crate::model::VpcChannel;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq)]
enum Step {
    Load,
    Pick,
    Close,
    Update,
}

const PICKER: [Step; 3] = [Step::Load, Step::Pick, Step::Close];
const UPDATER: [Step; 2] = [Step::Update, Step::Update];

fn channel(members: &[(&str, i64)]) -> VpcChannel {
    let members: Vec<_> =
        members.iter().map(|(host, weight)| serde_json::json!({"host": host, "weight": weight})).collect();
    let body = serde_json::json!({"name": "interleave", "port": 80, "balance_strategy": 2, "member_type": "ip",
        "instance_ids": ["eea73cde015940908ae0117d67bf7330"], "members": members});
    match serde_json::from_value(body) {
        Ok(c) => c,
        Err(e) => panic!("test channel: {e}"),
    }
}

/// Calls `f` with every interleaving of programs of the given lengths (thread ids in order).
fn each_interleaving(left: &mut [usize], order: &mut Vec<usize>, f: &mut dyn FnMut(&[usize])) {
    if left.iter().all(|&n| n == 0) {
        f(order);
        return;
    }
    for t in 0..left.len() {
        if left[t] > 0 {
            left[t] -= 1;
            order.push(t);
            each_interleaving(left, order, f);
            order.pop();
            left[t] += 1;
        }
    }
}

#[derive(Default)]
struct Picker {
    snap: Option<Arc<Snapshot>>,
    /// Slot of the open pick.
    open: Option<u32>,
}

fn run(order: &[usize], configs: &[VpcChannel; 3]) {
    let lb = match Balancer::from_channel(&configs[0]) {
        Ok(lb) => lb,
        Err(e) => panic!("{e}"),
    };
    let mut pickers: Vec<Picker> = (0..3).map(|_| Picker::default()).collect();
    let mut pc = [0usize; 4];
    let mut updates = 0;
    let mut open: Vec<u32> = Vec::new();
    for &t in order {
        let step = if t < 3 { PICKER[pc[t]] } else { UPDATER[pc[t]] };
        pc[t] += 1;
        match step {
            Step::Load => pickers[t].snap = Some(lb.snapshot.load_full()),
            Step::Pick => {
                let Some(snap) = pickers[t].snap.take() else { unreachable!("a pick follows its load") };
                let Ok(active) = snap.active.as_ref() else { panic!("{order:?}: nothing eligible") };
                let Some(idx) = lb.wlc.pick(0, &snap, active, 0, None) else { panic!("{order:?}: no pick") };
                assert!(active.groups[0].members.contains(&idx), "{order:?}: picked an ineligible member");
                let slot = snap.members[idx as usize].slot;
                if open.len() <= slot as usize {
                    open.resize(slot as usize + 1, 0);
                }
                open[slot as usize] += 1;
                pickers[t].open = Some(slot);
            }
            Step::Close => {
                let Some(slot) = pickers[t].open.take() else { unreachable!("a close follows its pick") };
                lb.wlc.close(0, slot);
                open[slot as usize] -= 1;
            }
            Step::Update => {
                updates += 1;
                if let Err(e) = lb.update(&configs[updates]) {
                    panic!("{e}");
                }
            }
        }
        let mut expected = open.clone();
        while expected.last() == Some(&0) {
            expected.pop();
        }
        assert_eq!(lb.wlc.audit(), expected, "{order:?}: counts against open picks");
    }
    assert!(lb.members().iter().all(|m| m.in_flight == 0), "{order:?}: in-flight left over");
}

#[test]
fn every_order_of_three_picks_and_two_updates_on_one_stripe_keeps_the_counts() {
    // The second update brings back the member that the first removed (same slot, new weight).
    let configs = [
        channel(&[("10.0.0.1", 1), ("10.0.0.2", 2)]),
        channel(&[("10.0.0.2", 2), ("10.0.0.3", 1)]),
        channel(&[("10.0.0.1", 3), ("10.0.0.2", 2), ("10.0.0.3", 1)]),
    ];
    let mut count = 0;
    each_interleaving(&mut [PICKER.len(), PICKER.len(), PICKER.len(), UPDATER.len()], &mut Vec::new(), &mut |o| {
        run(o, &configs);
        count += 1;
    });
    assert_eq!(count, 92_400, "11! / (3! 3! 3! 2!) orders");
}
