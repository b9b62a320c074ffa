//! Weighted least connections, exactly as nginx's `least_conn` picks: the eligible member with
//! the smallest `in_flight / weight` (cross-multiplied, no floats); when several tie, smooth WRR
//! among the tied members with WLC's own current weights, and only the tied members' current
//! weights change on a pick.
//!
//! nginx scans every member on every pick. Here the members of a group sit in buckets by
//! (weight, in-flight count): the smallest ratio is found by comparing the lowest non-empty
//! bucket of each distinct weight, O(D) for D distinct weights. The smooth-WRR tie-break adds
//! each tied member's weight to its current weight; within one bucket all members share a weight,
//! so that addition never reorders them, and a per-bucket counter `k` applies it lazily
//! (`current = a + k * weight`). Each bucket keeps its members in a max-heap of `a`, so a pick or
//! the end of a pick costs O(D + log n).
//!
//! The index is per stripe of threads, like Envoy's per-worker load balancers: one thread alone
//! gets nginx's exact sequence; several threads each balance their own in-flight requests, and
//! none takes a lock another thread's picks take (a pick ended on another thread locks the
//! stripe that made it). `Balancer::members` reports the sum over stripes.

use super::snapshot::{Active, Snapshot};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

const NONE: u32 = u32::MAX;

/// Every stripe's WLC state, owned by the balancer (it outlives snapshots).
pub(crate) struct Stripes {
    stripes: Box<[CachePadded<Mutex<Stripe>>]>,
}

/// One stripe: its open picks and current weights per member slot, and the index built for the
/// snapshot generation it last saw.
#[derive(Default)]
pub(crate) struct Stripe {
    generation: u64,
    /// Per group of that snapshot's active tier.
    groups: Vec<Index>,
    /// Open picks of this stripe, by member slot.
    counts: Vec<u32>,
    /// Current weights (materialized), by member slot.
    current: Vec<i64>,
    /// Slot -> (group, position) in `groups`.
    place: Vec<(u32, u32)>,
}

impl Stripes {
    pub(crate) fn new(n: usize) -> Stripes {
        Stripes { stripes: (0..n).map(|_| CachePadded::new(Mutex::new(Stripe::default()))).collect() }
    }

    /// Picks a member of group `g` for the calling stripe and opens it. Returns the member index.
    /// `keep`, when given, limits the choice to the members it allows (retries).
    pub(crate) fn pick(
        &self,
        stripe: usize,
        snap: &Snapshot,
        active: &Active,
        g: usize,
        keep: Option<&dyn Fn(u32) -> bool>,
    ) -> Option<u32> {
        let mut st = self.stripes[stripe].lock();
        if st.generation != snap.generation || st.groups.is_empty() {
            st.rebuild(snap, active);
        }
        let st = &mut *st;
        let index = &mut st.groups[g];
        let pos = index.pick(keep)?;
        let slot = index.slots[pos as usize];
        index.shift(pos, 1);
        bump(&mut st.counts, slot, 1);
        Some(index.members[pos as usize])
    }

    /// Opens a pick of `slot` without choosing (other strategies with in-flight tracking).
    pub(crate) fn open(&self, stripe: usize, slot: u32) {
        bump(&mut self.stripes[stripe].lock().counts, slot, 1);
    }

    /// Ends a pick made by `stripe`.
    pub(crate) fn close(&self, stripe: usize, slot: u32) {
        let mut st = self.stripes[stripe].lock();
        let st = &mut *st;
        bump(&mut st.counts, slot, -1);
        if let Some(&(g, pos)) = st.place.get(slot as usize) {
            if g != NONE {
                st.groups[g as usize].shift(pos, -1);
            }
        }
    }

    /// Open picks of a slot, over all stripes.
    pub(crate) fn in_flight(&self, slot: u32) -> u32 {
        self.stripes.iter().map(|s| s.lock().counts.get(slot as usize).copied().unwrap_or(0)).sum()
    }
}

fn bump(counts: &mut Vec<u32>, slot: u32, by: i32) {
    let i = slot as usize;
    if counts.len() <= i {
        counts.resize(i + 1, 0);
    }
    counts[i] = counts[i].saturating_add_signed(by);
}

impl Stripe {
    /// Rebuilds the index for a new snapshot, keeping counts and current weights by slot.
    fn rebuild(&mut self, snap: &Snapshot, active: &Active) {
        for index in &self.groups {
            for (pos, &slot) in index.slots.iter().enumerate() {
                let s = slot as usize;
                if self.current.len() <= s {
                    self.current.resize(s + 1, 0);
                }
                self.current[s] = index.current(pos as u32);
            }
        }
        let max_slot = snap.members.iter().map(|m| m.slot as usize + 1).max().unwrap_or(0);
        self.place.clear();
        self.place.resize(max_slot.max(self.counts.len()), (NONE, NONE));
        self.groups = active
            .groups
            .iter()
            .enumerate()
            .map(|(g, plan)| {
                let entries: Vec<(u32, u32, u32, u32, i64)> = plan
                    .members
                    .iter()
                    .zip(plan.weights.iter())
                    .filter(|(_, &w)| w > 0)
                    .map(|(&m, &w)| {
                        let slot = snap.members[m as usize].slot;
                        let count = self.counts.get(slot as usize).copied().unwrap_or(0);
                        let current = self.current.get(slot as usize).copied().unwrap_or(0);
                        (m, slot, w, count, current)
                    })
                    .collect();
                for (pos, e) in entries.iter().enumerate() {
                    self.place[e.1 as usize] = (g as u32, pos as u32);
                }
                Index::new(&entries)
            })
            .collect();
        self.generation = snap.generation;
    }
}

/// The exact WLC index of one group's eligible members (positions in member order).
struct Index {
    members: Vec<u32>,
    slots: Vec<u32>,
    weights: Vec<u32>,
    /// Position -> weight class.
    class: Vec<u16>,
    /// Position -> open picks.
    count: Vec<u32>,
    /// Position -> lazy current-weight base: current = a + bucket.k * weight.
    a: Vec<i64>,
    /// Position -> index in its bucket's heap.
    heap_at: Vec<u32>,
    classes: Vec<Class>,
}

struct Class {
    weight: u32,
    /// Lowest in-flight count with a non-empty bucket.
    low: u32,
    /// Buckets by in-flight count.
    buckets: Vec<Bucket>,
}

#[derive(Default)]
struct Bucket {
    k: i64,
    heap: Vec<u32>,
}

impl Index {
    fn new(entries: &[(u32, u32, u32, u32, i64)]) -> Index {
        let mut ix = Index {
            members: entries.iter().map(|e| e.0).collect(),
            slots: entries.iter().map(|e| e.1).collect(),
            weights: entries.iter().map(|e| e.2).collect(),
            class: Vec::with_capacity(entries.len()),
            count: entries.iter().map(|e| e.3).collect(),
            a: entries.iter().map(|e| e.4).collect(),
            heap_at: vec![0; entries.len()],
            classes: Vec::new(),
        };
        for e in entries {
            let c = match ix.classes.iter().position(|c| c.weight == e.2) {
                Some(c) => c,
                None => {
                    ix.classes.push(Class { weight: e.2, low: u32::MAX, buckets: Vec::new() });
                    ix.classes.len() - 1
                }
            };
            ix.class.push(c as u16);
        }
        for pos in 0..entries.len() as u32 {
            ix.insert(pos);
        }
        ix
    }

    fn current(&self, pos: u32) -> i64 {
        let p = pos as usize;
        let class = &self.classes[self.class[p] as usize];
        self.a[p] + class.buckets[self.count[p] as usize].k * i64::from(self.weights[p])
    }

    /// nginx's choice, without opening it: the caller must `shift(pos, 1)` next, which takes the
    /// winner out of its bucket. With `keep` (retries) the choice is among the members it allows,
    /// by a scan: only retries take that path.
    fn pick(&mut self, keep: Option<&dyn Fn(u32) -> bool>) -> Option<u32> {
        if self.members.is_empty() {
            return None;
        }
        if let Some(keep) = keep {
            return self.pick_scan(keep);
        }
        // The smallest ratio low/weight over classes, and the classes that reach it.
        let mut best: Option<(u64, u64)> = None;
        for c in &self.classes {
            if c.low == u32::MAX {
                continue;
            }
            let (l, w) = (u64::from(c.low), u64::from(c.weight));
            if best.is_none_or(|(bl, bw)| l * bw < bl * w) {
                best = Some((l, w));
            }
        }
        let (bl, bw) = best?;
        let tied = |c: &Class| c.low != u32::MAX && u64::from(c.low) * bw == bl * u64::from(c.weight);
        let n_tied: usize = self.classes.iter().filter(|c| tied(c)).map(|c| c.buckets[c.low as usize].heap.len()).sum();
        if n_tied == 1 {
            let c = self.classes.iter().find(|c| tied(c))?;
            return c.buckets[c.low as usize].heap.first().copied();
        }
        // Smooth WRR among the tied: every tied member's current weight grows by its weight
        // (k += 1 per tied bucket), the largest wins (first in member order on ties), and the
        // winner's drops by the tied total.
        let mut total = 0i64;
        let mut winner: Option<(i64, u32)> = None;
        for c in self.classes.iter_mut() {
            if !(c.low != u32::MAX && u64::from(c.low) * bw == bl * u64::from(c.weight)) {
                continue;
            }
            let w = i64::from(c.weight);
            let b = &mut c.buckets[c.low as usize];
            b.k += 1;
            total += w * b.heap.len() as i64;
            let top = b.heap[0];
            let cw = self.a[top as usize] + b.k * w;
            if winner.is_none_or(|(bc, bp)| cw > bc || (cw == bc && top < bp)) {
                winner = Some((cw, top));
            }
        }
        let (_, pos) = winner?;
        // The winner leaves this bucket at once (`shift`), so its heap entry needs no sift.
        self.a[pos as usize] -= total;
        Some(pos)
    }

    /// nginx's two passes over the members that `keep` allows (retries only).
    fn pick_scan(&mut self, keep: &dyn Fn(u32) -> bool) -> Option<u32> {
        let allowed: Vec<u32> = (0..self.members.len() as u32).filter(|&p| keep(self.members[p as usize])).collect();
        let ratio = |p: u32| (u64::from(self.count[p as usize]), u64::from(self.weights[p as usize]));
        let &first = allowed.iter().min_by(|&&x, &&y| {
            let ((lx, wx), (ly, wy)) = (ratio(x), ratio(y));
            (lx * wy).cmp(&(ly * wx)).then(x.cmp(&y))
        })?;
        let (bl, bw) = ratio(first);
        let tied: Vec<u32> = allowed.into_iter().filter(|&p| ratio(p).0 * bw == bl * ratio(p).1).collect();
        if tied.len() == 1 {
            return Some(first);
        }
        // Their keys change: out of their heaps first, back in after (sifting each in place
        // in turn can leave the heap broken when several keys of one heap change at once).
        for &p in &tied {
            self.remove(p);
        }
        let mut total = 0i64;
        let mut winner: Option<(i64, u32)> = None;
        for &p in &tied {
            let w = i64::from(self.weights[p as usize]);
            self.a[p as usize] += w; // bucket k unchanged: add to this member only
            total += w;
            let cw = self.current(p);
            if winner.is_none_or(|(bc, bp)| cw > bc || (cw == bc && p < bp)) {
                winner = Some((cw, p));
            }
        }
        let (_, pos) = winner?;
        self.a[pos as usize] -= total;
        for &p in &tied {
            self.insert(p);
        }
        Some(pos)
    }

    /// Moves a member to the bucket of `count + by`, keeping its current weight.
    fn shift(&mut self, pos: u32, by: i32) {
        let p = pos as usize;
        let cur = self.current(pos);
        self.remove(pos);
        self.count[p] = self.count[p].saturating_add_signed(by);
        let class = &mut self.classes[self.class[p] as usize];
        let c = self.count[p] as usize;
        if class.buckets.len() <= c {
            class.buckets.resize_with(c + 1, Bucket::default);
        }
        self.a[p] = cur - class.buckets[c].k * i64::from(self.weights[p]);
        self.insert(pos);
    }

    fn insert(&mut self, pos: u32) {
        let p = pos as usize;
        let class = &mut self.classes[self.class[p] as usize];
        let c = self.count[p] as usize;
        if class.buckets.len() <= c {
            class.buckets.resize_with(c + 1, Bucket::default);
        }
        let heap = &mut class.buckets[c].heap;
        heap.push(pos);
        self.heap_at[p] = (heap.len() - 1) as u32;
        class.low = class.low.min(c as u32);
        self.sift_up(pos);
    }

    fn remove(&mut self, pos: u32) {
        let p = pos as usize;
        let ci = self.class[p] as usize;
        let c = self.count[p] as usize;
        let i = self.heap_at[p] as usize;
        let heap = &mut self.classes[ci].buckets[c].heap;
        let last = heap.len() - 1;
        heap.swap(i, last);
        heap.pop();
        if i < heap.len() {
            let moved = heap[i];
            self.heap_at[moved as usize] = i as u32;
            if i > 0 && Self::before(&self.a, moved, self.classes[ci].buckets[c].heap[(i - 1) / 2]) {
                self.sift_up(moved);
            } else {
                self.sift_down(moved);
            }
        }
        let class = &mut self.classes[ci];
        if class.buckets[c].heap.is_empty() && class.low == c as u32 {
            class.low = (c + 1..class.buckets.len())
                .find(|&x| !class.buckets[x].heap.is_empty())
                .map_or(u32::MAX, |x| x as u32);
        }
    }

    /// Heap order within a bucket: larger `a` first, then lower position (member order).
    #[inline]
    fn before(a: &[i64], x: u32, y: u32) -> bool {
        let (ax, ay) = (a[x as usize], a[y as usize]);
        // Bitwise, not short-circuit: the outcome is data-dependent, so branches mispredict.
        (ax > ay) | ((ax == ay) & (x < y))
    }

    fn sift_up(&mut self, pos: u32) {
        let p = pos as usize;
        let Index { classes, class, count, a, heap_at, .. } = self;
        let heap = &mut classes[class[p] as usize].buckets[count[p] as usize].heap;
        let mut i = heap_at[p] as usize;
        while i > 0 {
            let parent = (i - 1) / 2;
            let pp = heap[parent];
            if !Self::before(a, pos, pp) {
                break;
            }
            heap[i] = pp;
            heap_at[pp as usize] = i as u32;
            i = parent;
        }
        heap[i] = pos;
        heap_at[p] = i as u32;
    }

    fn sift_down(&mut self, pos: u32) {
        let p = pos as usize;
        let Index { classes, class, count, a, heap_at, .. } = self;
        let heap = &mut classes[class[p] as usize].buckets[count[p] as usize].heap;
        let len = heap.len();
        let mut i = heap_at[p] as usize;
        loop {
            let l = 2 * i + 1;
            if l >= len {
                break;
            }
            // The larger child, chosen without a branch.
            let c = if l + 1 < len { l + usize::from(Self::before(a, heap[l + 1], heap[l])) } else { l };
            let cp = heap[c];
            if !Self::before(a, cp, pos) {
                break;
            }
            heap[i] = cp;
            heap_at[cp as usize] = i as u32;
            i = c;
        }
        heap[i] = pos;
        heap_at[p] = i as u32;
    }
}

#[cfg(test)]
impl Index {
    /// Every bucket is a heap: no member before its parent (tests only).
    fn assert_heaps(&self) {
        for (ci, class) in self.classes.iter().enumerate() {
            for (count, b) in class.buckets.iter().enumerate() {
                for i in 1..b.heap.len() {
                    let parent = b.heap[(i - 1) / 2];
                    assert!(!Self::before(&self.a, b.heap[i], parent), "class {ci} count {count}: heap order at {i}");
                }
            }
        }
    }
}

#[cfg(test)]
impl Stripes {
    /// Open picks by slot over all stripes, after checking that each stripe's index agrees with
    /// its counts: every indexed member's count is its slot's count, it sits in its bucket's heap
    /// where `heap_at` says, and every heap is in order (tests only).
    pub(crate) fn audit(&self) -> Vec<u32> {
        let mut total: Vec<u32> = Vec::new();
        for stripe in self.stripes.iter() {
            let st = stripe.lock();
            for ix in &st.groups {
                for pos in 0..ix.members.len() {
                    let slot = ix.slots[pos] as usize;
                    assert_eq!(ix.count[pos], st.counts.get(slot).copied().unwrap_or(0), "index count of slot {slot}");
                    let heap = &ix.classes[ix.class[pos] as usize].buckets[ix.count[pos] as usize].heap;
                    assert_eq!(heap.get(ix.heap_at[pos] as usize), Some(&(pos as u32)), "heap place of slot {slot}");
                }
                ix.assert_heaps();
            }
            for (slot, &c) in st.counts.iter().enumerate() {
                if total.len() <= slot {
                    total.resize(slot + 1, 0);
                }
                total[slot] += c;
            }
        }
        while total.last() == Some(&0) {
            total.pop();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nginx's least_conn, literally: two passes over every member.
    struct Nginx {
        w: Vec<i64>,
        conns: Vec<u64>,
        cw: Vec<i64>,
    }

    impl Nginx {
        /// `skip`: a member left out (a retry's already-tried member).
        fn pick(&mut self, skip: Option<usize>) -> usize {
            let n = self.w.len();
            let ok = |i: usize| Some(i) != skip;
            let mut best = (0..n).find(|&i| ok(i)).unwrap();
            let mut many = false;
            for i in best + 1..n {
                if !ok(i) {
                    continue;
                }
                let (l, r) = (self.conns[i] * self.w[best] as u64, self.conns[best] * self.w[i] as u64);
                if l < r {
                    best = i;
                    many = false;
                } else if l == r {
                    many = true;
                }
            }
            if many {
                let mut total = 0;
                let mut winner = best;
                let mut wcw = i64::MIN;
                for i in best..n {
                    if !ok(i) || self.conns[i] * self.w[best] as u64 != self.conns[best] * self.w[i] as u64 {
                        continue;
                    }
                    self.cw[i] += self.w[i];
                    total += self.w[i];
                    if self.cw[i] > wcw {
                        wcw = self.cw[i];
                        winner = i;
                    }
                }
                self.cw[winner] -= total;
                best = winner;
            }
            best
        }
    }

    #[test]
    fn matches_nginx_step_for_step_under_random_opens_closes_and_retries() {
        let mut seed = 0x1234_5678_u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..60 {
            // Small groups, and larger ones whose buckets are several heap levels deep.
            let n = 1 + (rnd() % if case % 2 == 0 { 12 } else { 48 }) as usize;
            let w: Vec<u32> = (0..n).map(|_| 1 + (rnd() % 5) as u32).collect();
            let entries: Vec<_> = (0..n).map(|i| (i as u32, i as u32, w[i], 0, 0)).collect();
            let mut ix = Index::new(&entries);
            let mut ng = Nginx { w: w.iter().map(|&x| i64::from(x)).collect(), conns: vec![0; n], cw: vec![0; n] };
            let mut open: Vec<u32> = Vec::new();
            for step in 0..1000 {
                if !open.is_empty() && rnd() % 3 == 0 {
                    let i = (rnd() % open.len() as u64) as usize;
                    let p = open.swap_remove(i);
                    ix.shift(p, -1);
                    ix.assert_heaps();
                    ng.conns[p as usize] -= 1;
                } else {
                    // Now and then a retry that leaves one member out.
                    let skip = (n > 1 && rnd() % 4 == 0).then(|| (rnd() % n as u64) as usize);
                    let keep = |m: u32| Some(m as usize) != skip;
                    let p = ix.pick(skip.map(|_| &keep as &dyn Fn(u32) -> bool)).unwrap();
                    let q = ng.pick(skip);
                    assert_eq!(p as usize, q, "case {case} step {step} weights {w:?}");
                    ix.shift(p, 1);
                    ix.assert_heaps();
                    ng.conns[q] += 1;
                    open.push(p);
                }
            }
        }
    }
}
