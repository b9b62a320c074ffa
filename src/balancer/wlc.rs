//! Weighted least connections, exactly as nginx's `least_conn` picks: the eligible member with
//! the smallest `in_flight / weight` (cross-multiplied, no floats); when several tie, smooth WRR
//! among the tied members with WLC's own current weights, and only the tied members' current
//! weights change on a pick.
//!
//! nginx scans every member on every pick. Here the members of a group sit in one min-heap per
//! distinct weight, ordered by (in-flight count, current weight descending, member order): each
//! heap's first member is its weight's candidate, and the smallest ratio is found by comparing
//! the D candidates, O(D) for D distinct weights. The smooth-WRR tie-break adds each tied
//! member's weight to its current weight; the tied members of one weight share their count and
//! weight, so that addition never reorders them, and a per-(weight, count) counter `k` applies it
//! lazily (`current = a + k * weight`). A pick or the end of a pick changes one member's count
//! and so its key: one sift, O(D + log n). Each key is packed into one `u128` so that a sift
//! step is one integer comparison with nothing to look up.
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
        let pos = index.open_best(keep)?;
        let slot = index.slots[pos as usize];
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
                st.groups[g as usize].shift(pos, -1, 0);
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
    /// Position -> weight class.
    class: Vec<u16>,
    /// Position -> index in its class's heap.
    heap_at: Vec<u32>,
    classes: Vec<Class>,
}

/// The members of one weight, in one min-heap of packed keys: fewest open picks first, then the
/// largest current weight, then member order. The first key is the class's candidate.
struct Class {
    weight: u32,
    heap: Vec<Key>,
    /// By open picks: the lazy current-weight step and the number of members there.
    levels: Vec<Level>,
}

#[derive(Clone, Copy, Default)]
struct Level {
    /// Tie-break rounds this level took part in: current = a + k * weight.
    k: i64,
    members: u32,
}

/// `count` (32 bits) | the current-weight base `a`, descending (64) | position (32), so that one
/// integer comparison orders two members. (Members of one class and count share `k`, so `a`
/// orders them as their current weights do.)
type Key = u128;

const SIGN: u64 = 1 << 63;

#[inline]
fn key(count: u32, a: i64, pos: u32) -> Key {
    (Key::from(count) << 96) | (Key::from(!((a as u64) ^ SIGN)) << 32) | Key::from(pos)
}

#[inline]
fn count_of(k: Key) -> u32 {
    (k >> 96) as u32
}

#[inline]
fn a_of(k: Key) -> i64 {
    (!((k >> 32) as u64) ^ SIGN) as i64
}

#[inline]
fn pos_of(k: Key) -> u32 {
    k as u32
}

impl Class {
    /// The level of `count`, created on first use (open picks are unbounded).
    #[inline]
    fn level(&mut self, count: u32) -> &mut Level {
        let c = count as usize;
        if self.levels.len() <= c {
            self.levels.resize(c + 1, Level::default());
        }
        &mut self.levels[c]
    }

    /// The member at heap index `i` moves to `count + by` open picks, keeping its current weight
    /// plus `dw`; the heap is repaired before returning.
    #[inline]
    fn shift(&mut self, heap_at: &mut [u32], i: usize, by: i32, dw: i64) {
        let old = self.heap[i];
        let (count, pos) = (count_of(old), pos_of(old));
        let w = i64::from(self.weight);
        let cur = a_of(old) + self.level(count).k * w + dw;
        let to = count.saturating_add_signed(by);
        self.level(count).members -= 1;
        let level = self.level(to);
        level.members += 1;
        let new = key(to, cur - level.k * w, pos);
        self.heap[i] = new;
        if new < old {
            sift_up(&mut self.heap, heap_at, i);
        } else {
            sift_down(&mut self.heap, heap_at, i);
        }
    }
}

/// Puts a key at heap index `i` and records where its member now sits.
#[inline]
fn put(heap: &mut [Key], heap_at: &mut [u32], i: usize, k: Key) {
    heap[i] = k;
    heap_at[pos_of(k) as usize] = i as u32;
}

fn sift_up(heap: &mut [Key], heap_at: &mut [u32], mut i: usize) {
    let k = heap[i];
    while i > 0 {
        let parent = (i - 1) / 2;
        let pk = heap[parent];
        if pk < k {
            break;
        }
        put(heap, heap_at, i, pk);
        i = parent;
    }
    put(heap, heap_at, i, k);
}

fn sift_down(heap: &mut [Key], heap_at: &mut [u32], mut i: usize) {
    let k = heap[i];
    let len = heap.len();
    loop {
        let l = 2 * i + 1;
        if l >= len {
            break;
        }
        // The smaller child, chosen without a branch (the outcome is data-dependent).
        let c = if l + 1 < len { l + usize::from(heap[l + 1] < heap[l]) } else { l };
        let ck = heap[c];
        if k < ck {
            break;
        }
        put(heap, heap_at, i, ck);
        i = c;
    }
    put(heap, heap_at, i, k);
}

impl Index {
    fn new(entries: &[(u32, u32, u32, u32, i64)]) -> Index {
        let mut ix = Index {
            members: entries.iter().map(|e| e.0).collect(),
            slots: entries.iter().map(|e| e.1).collect(),
            class: Vec::with_capacity(entries.len()),
            heap_at: vec![0; entries.len()],
            classes: Vec::new(),
        };
        for (pos, &(_, _, weight, count, current)) in entries.iter().enumerate() {
            let c = match ix.classes.iter().position(|c| c.weight == weight) {
                Some(c) => c,
                None => {
                    ix.classes.push(Class { weight, heap: Vec::new(), levels: Vec::new() });
                    ix.classes.len() - 1
                }
            };
            ix.class.push(c as u16);
            let class = &mut ix.classes[c];
            class.level(count).members += 1;
            class.heap.push(key(count, current, pos as u32));
            let i = class.heap.len() - 1;
            sift_up(&mut class.heap, &mut ix.heap_at, i);
        }
        ix
    }

    fn key(&self, pos: u32) -> Key {
        self.classes[self.class[pos as usize] as usize].heap[self.heap_at[pos as usize] as usize]
    }

    fn count(&self, pos: u32) -> u32 {
        count_of(self.key(pos))
    }

    fn current(&self, pos: u32) -> i64 {
        let (k, class) = (self.key(pos), &self.classes[self.class[pos as usize] as usize]);
        a_of(k) + class.levels[count_of(k) as usize].k * i64::from(class.weight)
    }

    /// Chooses as nginx does and opens the choice; returns its position. With `keep` (retries)
    /// the choice is among the members it allows, by a scan: only retries take that path.
    fn open_best(&mut self, keep: Option<&dyn Fn(u32) -> bool>) -> Option<u32> {
        if let Some(keep) = keep {
            return self.open_scan(keep);
        }
        // The smallest ratio over the classes' candidates, and how many members reach it.
        let mut best: Option<(u64, u64)> = None;
        for c in &self.classes {
            if let Some(&top) = c.heap.first() {
                let (l, w) = (u64::from(count_of(top)), u64::from(c.weight));
                if best.is_none_or(|(bl, bw)| l * bw < bl * w) {
                    best = Some((l, w));
                }
            }
        }
        let (bl, bw) = best?;
        let tied = |c: &Class| c.heap.first().is_some_and(|&t| u64::from(count_of(t)) * bw == bl * u64::from(c.weight));
        // Smooth WRR among the tied: every tied member's current weight grows by its weight
        // (k += 1 on each tied level), the largest wins (first in member order on ties), and the
        // winner's drops by the tied total. One pass finds the winner as if k had grown; k grows
        // only when more than one member is tied (nginx leaves a lone winner's weight alone).
        let (mut n_tied, mut total) = (0u32, 0i64);
        let mut winner: Option<(i64, u32, usize)> = None;
        for (ci, c) in self.classes.iter().enumerate() {
            if !tied(c) {
                continue;
            }
            let top = c.heap[0];
            let w = i64::from(c.weight);
            let level = c.levels[count_of(top) as usize];
            n_tied += level.members;
            total += w * i64::from(level.members);
            let cw = a_of(top) + (level.k + 1) * w;
            let pos = pos_of(top);
            if winner.is_none_or(|(bc, bp, _)| cw > bc || (cw == bc && pos < bp)) {
                winner = Some((cw, pos, ci));
            }
        }
        let (_, pos, ci) = winner?;
        if n_tied == 1 {
            self.classes[ci].shift(&mut self.heap_at, 0, 1, 0);
            return Some(pos);
        }
        for c in self.classes.iter_mut() {
            if tied(c) {
                let count = count_of(c.heap[0]);
                c.level(count).k += 1;
            }
        }
        self.classes[ci].shift(&mut self.heap_at, 0, 1, -total);
        Some(pos)
    }

    /// nginx's two passes over the members that `keep` allows (retries only).
    fn open_scan(&mut self, keep: &dyn Fn(u32) -> bool) -> Option<u32> {
        let allowed: Vec<u32> = (0..self.members.len() as u32).filter(|&p| keep(self.members[p as usize])).collect();
        let ratio =
            |p: u32| (u64::from(self.count(p)), u64::from(self.classes[self.class[p as usize] as usize].weight));
        let &first = allowed.iter().min_by(|&&x, &&y| {
            let ((lx, wx), (ly, wy)) = (ratio(x), ratio(y));
            (lx * wy).cmp(&(ly * wx)).then(x.cmp(&y))
        })?;
        let (bl, bw) = ratio(first);
        let tied: Vec<u32> = allowed.into_iter().filter(|&p| ratio(p).0 * bw == bl * ratio(p).1).collect();
        if tied.len() == 1 {
            self.shift(first, 1, 0);
            return Some(first);
        }
        // Only the allowed tied members' current weights grow, so each is re-keyed on its own
        // (each change repaired before the next: the heap stays whole throughout).
        let mut total = 0i64;
        let mut winner: Option<(i64, u32)> = None;
        for &p in &tied {
            let w = i64::from(self.classes[self.class[p as usize] as usize].weight);
            self.shift(p, 0, w);
            total += w;
            let cw = self.current(p);
            if winner.is_none_or(|(bc, bp)| cw > bc || (cw == bc && p < bp)) {
                winner = Some((cw, p));
            }
        }
        let (_, pos) = winner?;
        self.shift(pos, 1, -total);
        Some(pos)
    }

    /// Moves a member to `count + by` open picks, its current weight changed by `dw`.
    fn shift(&mut self, pos: u32, by: i32, dw: i64) {
        let i = self.heap_at[pos as usize] as usize;
        self.classes[self.class[pos as usize] as usize].shift(&mut self.heap_at, i, by, dw);
    }
}

#[cfg(test)]
impl Index {
    /// Every heap is in order, every member sits where `heap_at` says, and every level counts
    /// its members (tests only).
    fn assert_heaps(&self) {
        for (ci, class) in self.classes.iter().enumerate() {
            let mut members = vec![0u32; class.levels.len()];
            for (i, &k) in class.heap.iter().enumerate() {
                assert!(i == 0 || class.heap[(i - 1) / 2] < k, "class {ci}: heap order at {i}");
                assert_eq!(self.heap_at[pos_of(k) as usize] as usize, i, "class {ci}: heap place of {}", pos_of(k));
                members[count_of(k) as usize] += 1;
            }
            let levels: Vec<u32> = class.levels.iter().map(|l| l.members).collect();
            assert_eq!(levels, members, "class {ci}: members per level");
        }
    }
}

#[cfg(test)]
impl Stripes {
    /// Open picks by slot over all stripes, after checking that each stripe's index agrees with
    /// its counts: every indexed member's count is its slot's count, and every heap is whole
    /// (tests only).
    pub(crate) fn audit(&self) -> Vec<u32> {
        let mut total: Vec<u32> = Vec::new();
        for stripe in self.stripes.iter() {
            let st = stripe.lock();
            for ix in &st.groups {
                ix.assert_heaps();
                for pos in 0..ix.members.len() as u32 {
                    let slot = ix.slots[pos as usize] as usize;
                    assert_eq!(ix.count(pos), st.counts.get(slot).copied().unwrap_or(0), "index count of slot {slot}");
                }
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
        // Small groups, and larger ones whose heaps are several levels deep.
        against_nginx(0x1234_5678, 60, |case| if case % 2 == 0 { 12 } else { 48 }, 5, 1000);
    }

    #[test]
    fn matches_nginx_with_hundreds_of_distinct_weights() {
        against_nginx(0x9abc_def0, 6, |_| 300, 1000, 3000);
    }

    /// Random weights 1..=`max_w`, random opens, closes and retries: the index picks what
    /// nginx's loop picks at every step, and its heaps stay whole.
    fn against_nginx(mut seed: u64, cases: usize, max_n: impl Fn(usize) -> u64, max_w: u64, steps: usize) {
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..cases {
            let n = 1 + (rnd() % max_n(case)) as usize;
            let w: Vec<u32> = (0..n).map(|_| 1 + (rnd() % max_w) as u32).collect();
            let entries: Vec<_> = (0..n).map(|i| (i as u32, i as u32, w[i], 0, 0)).collect();
            let mut ix = Index::new(&entries);
            let mut ng = Nginx { w: w.iter().map(|&x| i64::from(x)).collect(), conns: vec![0; n], cw: vec![0; n] };
            let mut open: Vec<u32> = Vec::new();
            for step in 0..steps {
                if !open.is_empty() && rnd() % 3 == 0 {
                    let i = (rnd() % open.len() as u64) as usize;
                    let p = open.swap_remove(i);
                    ix.shift(p, -1, 0);
                    ix.assert_heaps();
                    ng.conns[p as usize] -= 1;
                } else {
                    // Now and then a retry that leaves one member out.
                    let skip = (n > 1 && rnd() % 4 == 0).then(|| (rnd() % n as u64) as usize);
                    let keep = |m: u32| Some(m as usize) != skip;
                    let p = ix.open_best(skip.map(|_| &keep as &dyn Fn(u32) -> bool)).unwrap();
                    let q = ng.pick(skip);
                    assert_eq!(p as usize, q, "case {case} step {step} weights {w:?}");
                    ix.assert_heaps();
                    ng.conns[q] += 1;
                    open.push(p);
                }
            }
        }
    }
}
