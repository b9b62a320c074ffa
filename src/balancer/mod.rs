//! The embeddable balancer: a channel's members, the four strategies, member groups, backups,
//! health-driven eligibility and in-flight guards.
//!
//! ```
//! use lbsim::{Balancer, Request, health::Outcome, model::VpcChannel};
//!
//! let body = r#"{"name": "orders", "port": 8080, "balance_strategy": 1, "member_type": "ip",
//!     "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
//!     "members": [{"host": "10.0.0.1", "weight": 5}, {"host": "10.0.0.2"}, {"host": "10.0.0.3"}]}"#;
//! let channel: VpcChannel = serde_json::from_str(body)?;
//! let lb = Balancer::from_channel(&channel)?;
//! let req = Request::new("192.0.2.7".parse()?, "/orders/7?x=1");
//! let pick = lb.select(&req)?;
//! assert_eq!((pick.member().host(), pick.member().port()), ("10.0.0.1", 8080));
//! let id = pick.member().id();
//! drop(pick); // ends the member's in-flight count
//! lb.health().record(id, Outcome::Failure); // no check configured: stays `unknown`
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Selection reads one immutable snapshot (`arc-swap`, through a per-thread cache revalidated by a
//! generation number: see `reader.rs`); configuration and health changes build a new snapshot
//! under a writer lock that the hot path never takes. WRR replays a precomputed
//! smooth schedule with per-thread cursors; the hash strategies look a key's bucket up in a
//! precomputed rendezvous table (`table.rs`, carried over on health changes); WLC keeps, per
//! thread stripe, an index of the members by weight and in-flight count (`wlc.rs`). The options
//! live in `options.rs`, health results come in through `health_handle.rs`, and `key_space.rs`
//! reads a hash table's owners.

mod bounded;
mod hash;
mod health_handle;
#[cfg(test)]
mod interleavings;
mod key_space;
mod member;
mod options;
mod outlier;
mod reader;
mod slow_start;
mod snapshot;
mod table;
mod wlc;
mod wrr;

pub use hash::{ip_key, uri_key, uri_key_part, UriHashKey};
pub use health_handle::HealthHandle;
pub use key_space::KeySpace;
pub use member::{Member, MemberId};
pub use options::{BackupMode, GroupWeights, InitialHealth, Options, Strategy};
pub use slow_start::DEFAULT_FLOOR as DEFAULT_SLOW_START_FLOOR;
pub use snapshot::Tier;
#[cfg(feature = "live")]
pub(crate) use wrr::{stripe, STRIPES};

use crate::health::{CheckConfig, HealthMachine, HealthState};
use crate::model::{Validate, ValidationErrors, VpcChannel};
use parking_lot::Mutex;
use reader::Published;
use snapshot::{Active, BuildInput, GroupSpec, Snapshot};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// One request as the balancer sees it: the client's address and the request URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    client: IpAddr,
    uri: &'a str,
}

impl<'a> Request<'a> {
    pub fn new(client: IpAddr, uri: &'a str) -> Request<'a> {
        Request { client, uri }
    }

    pub fn client(&self) -> IpAddr {
        self.client
    }

    pub fn uri(&self) -> &'a str {
        self.uri
    }
}

/// Why nothing could be selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    #[error("the channel has no members")]
    NoMembers,
    #[error("every member is disabled (status 2 or weight 0)")]
    AllDisabled,
    #[error("no member is eligible: every enabled member is unhealthy")]
    AllUnhealthy,
    #[error("every eligible member was already tried")]
    AllTried,
}

/// A selected member. While it lives, the member's in-flight count includes this request (for
/// WLC, or with `track_in_flight`); dropping it ends the request.
#[must_use = "dropping the pick at once ends the request's in-flight count"]
pub struct Pick<'a> {
    member: Member,
    open: Open,
    balancer: &'a Balancer,
}

impl Pick<'_> {
    pub fn member(&self) -> &Member {
        &self.member
    }
}

impl Drop for Pick<'_> {
    #[inline]
    fn drop(&mut self) {
        self.balancer.end(self.open, self.member.slot);
    }
}

impl<'a> Pick<'a> {
    /// Turns the pick into one that owns a handle to its balancer, so that it can outlive the
    /// borrow (a proxy keeps it in a response body until the body ends). `owner` must be the
    /// balancer the pick came from.
    pub fn into_owned(mut self, owner: &Arc<Balancer>) -> OwnedPick {
        debug_assert!(std::ptr::eq(self.balancer, Arc::as_ptr(owner)), "a pick belongs to its own balancer");
        let open = std::mem::replace(&mut self.open, Open::NONE);
        OwnedPick { member: self.member, open, balancer: Arc::clone(owner) }
    }

    /// Keeps only what ending the request needs (the simulator holds one per attempt in flight,
    /// and a 16-byte lease instead of a 64-byte pick keeps its attempts in cache).
    #[cfg(feature = "sim")]
    pub(crate) fn into_lease(mut self) -> Lease<'a> {
        let open = std::mem::replace(&mut self.open, Open::NONE);
        Lease { balancer: self.balancer, slot: self.member.slot, open: open.0 as u32 }
    }
}

/// A pick reduced to its in-flight count: dropping it ends the request, as dropping the pick
/// would have.
#[cfg(feature = "sim")]
pub(crate) struct Lease<'a> {
    balancer: &'a Balancer,
    slot: u32,
    /// `Open`'s value (stripes are few).
    open: u32,
}

#[cfg(feature = "sim")]
impl Drop for Lease<'_> {
    #[inline]
    fn drop(&mut self) {
        self.balancer.end(Open(self.open as usize), self.slot);
    }
}

/// A selection before it becomes a [`Pick`]: the member and the stripe of its open in-flight
/// count, if any.
type Chosen = (Member, Open);

/// The stripe of a pick's open in-flight count, if any: `stripe + 1`, 0 for none. One whole word
/// rather than an `Option<u16>`, whose two-byte stores would stall every copy of a new pick on
/// store forwarding.
#[derive(Clone, Copy)]
struct Open(usize);

impl Open {
    const NONE: Open = Open(0);

    #[inline]
    fn at(stripe: usize) -> Open {
        Open(stripe + 1)
    }

    #[inline]
    fn stripe(self) -> Option<usize> {
        self.0.checked_sub(1)
    }
}

/// A [`Pick`] that owns an `Arc` of its balancer: `'static`, for async proxies.
#[must_use = "dropping the pick at once ends the request's in-flight count"]
pub struct OwnedPick {
    member: Member,
    open: Open,
    balancer: Arc<Balancer>,
}

impl OwnedPick {
    pub fn member(&self) -> &Member {
        &self.member
    }
}

impl Drop for OwnedPick {
    fn drop(&mut self) {
        self.balancer.end(self.open, self.member.slot);
    }
}

impl fmt::Debug for OwnedPick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPick").field("member", &self.member.id()).finish()
    }
}

impl fmt::Debug for Pick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick").field("member", &self.member.id()).finish()
    }
}

/// A member's state as seen by reports and `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStatus {
    pub member: Member,
    pub health: HealthState,
    pub in_flight: u32,
    /// In the active tier and eligible now.
    pub eligible: bool,
    /// Expected share of picks (WRR, WLC with equal loads) or of the key space (hash strategies).
    pub expected_share: f64,
    /// The fraction of its weight slow start gives it now (1 when it is not ramping).
    pub weight_factor: f64,
}

/// The configuration part the writer keeps, from which snapshots are built.
struct Config {
    strategy: Strategy,
    members: Vec<Member>,
    groups: Vec<GroupSpec>,
    check: Option<CheckConfig>,
}

struct Writer {
    config: Config,
    machines: Vec<HealthMachine>,
    index: HashMap<MemberId, usize>,
    /// Every identity ever configured, with its slot (never reused for another identity).
    slots: HashMap<MemberId, u32>,
    generation: u64,
    // === time-driven options (slow start) ===
    /// The latest time the balancer was told (`tick`, `record_at`).
    now: Duration,
    ramps: slow_start::Ramps,
    ejections: outlier::Ejections,
    /// When the snapshot must next be rebuilt (a ramp step, the end of an ejection).
    next_tick: Option<Duration>,
}

impl Writer {
    /// Notes which members are eligible now (ramps start for those that were not) and when the
    /// next rebuild is due. Called before every snapshot build.
    fn observe(&mut self) {
        let (members, machines) = (&self.config.members, &self.machines);
        let ejections = &self.ejections;
        let eligible = members
            .iter()
            .zip(machines)
            .filter(|(m, h)| m.is_enabled() && h.state().is_eligible() && !ejections.is_ejected(m.id));
        self.ramps.observe(self.now, eligible.map(|(m, _)| m.id));
        let (ramp, ejection) = (self.ramps.next_step(self.now), self.ejections.next_end());
        self.next_tick = ramp.into_iter().chain(ejection).min();
    }

    /// The member's health as selection sees it: `Ejected` while outlier detection holds it out.
    fn health_of(&self, i: usize) -> HealthState {
        if self.ejections.is_ejected(self.config.members[i].id) {
            HealthState::Ejected
        } else {
            self.machines[i].state()
        }
    }

    /// Gives every member its identity's slot, assigning new ones to new identities.
    fn assign_slots(&mut self) {
        for m in self.config.members.iter_mut() {
            let next = self.slots.len() as u32;
            m.slot = *self.slots.entry(m.id).or_insert(next);
        }
    }
}

/// A channel's balancer. `Send + Sync`: share it (`Arc`, or a `&'static`) between threads.
pub struct Balancer {
    snapshot: Published,
    writer: Mutex<Writer>,
    wlc: wlc::Stripes,
    options: Options,
    strategy_override: Option<Strategy>,
    /// In-flight counts of bounded-load hashing (`hash_balance_factor`).
    loads: Option<bounded::Loads>,
    /// Outlier detection's rules and response counters (under their own lock, not the writer's).
    outlier: Option<(outlier::Rules, Mutex<outlier::Counters>)>,
}

/// Builds a [`Balancer`] with options (`Balancer::builder(&channel)...build()`).
pub struct Builder<'c> {
    channel: &'c VpcChannel,
    options: Options,
    strategy: Option<Strategy>,
}

impl<'c> Builder<'c> {
    /// All `[balancer]` options at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    pub fn group_weights(mut self, mode: GroupWeights) -> Self {
        self.options.group_weights = mode;
        self
    }

    pub fn uri_hash_key(mut self, key: UriHashKey) -> Self {
        self.options.uri_hash_key = key;
        self
    }

    pub fn initial_health(mut self, initial: InitialHealth) -> Self {
        self.options.initial_health = initial;
        self
    }

    pub fn track_in_flight(mut self, on: bool) -> Self {
        self.options.track_in_flight = on;
        self
    }

    pub fn backup_mode(mut self, mode: BackupMode) -> Self {
        self.options.backup_mode = mode;
        self
    }

    /// Turns panic mode on at this percentage of healthy primaries (1-100).
    pub fn panic_threshold(mut self, percent: u8) -> Self {
        self.options.panic_threshold = Some(percent);
        self
    }

    /// Turns bounded-load hashing on at `percent` (above 100) of each member's weighted share of
    /// the requests in flight.
    pub fn hash_balance_factor(mut self, percent: u32) -> Self {
        self.options.hash_balance_factor = Some(percent);
        self
    }

    /// Turns outlier detection on: eject a member after `n` consecutive failed responses (see
    /// [`HealthHandle::record_response`]); the other outlier options keep their values.
    pub fn outlier_consecutive_errors(mut self, n: u32) -> Self {
        self.options.outlier_consecutive_errors = Some(n);
        self
    }

    /// Turns slow start on: members that become eligible ramp from `floor` (0-1) x weight to
    /// their full weight over `ramp` (see [`Balancer::tick`]).
    pub fn slow_start(mut self, ramp: Duration, floor: f64) -> Self {
        self.options.slow_start_s = Some(ramp.as_secs_f64());
        self.options.slow_start_floor = Some(floor);
        self
    }

    pub fn hash_table_bits(mut self, bits: u8) -> Self {
        self.options.hash_table_bits = Some(bits);
        self
    }

    /// Runs another strategy than the channel's `balance_strategy` (what `compare` does).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Validates the channel and builds the balancer; the error lists every problem.
    pub fn build(self) -> Result<Balancer, ValidationErrors> {
        self.channel.validate().into_result()?;
        let mut options = self.options;
        options.hash_table_bits = options.hash_table_bits.map(|b| b.clamp(12, 24));
        let config = config_of(self.channel, self.strategy);
        let initial = initial_state(&options);
        let machines = config
            .members
            .iter()
            .map(|_| HealthMachine::new(config.check.as_ref().map(|c| c.thresholds), initial))
            .collect();
        let index = config.members.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
        let ramps = slow_start::Ramps::new(options.slow_start_s, options.slow_start_floor);
        let mut writer = Writer {
            config,
            machines,
            index,
            slots: HashMap::new(),
            generation: 0,
            now: Duration::ZERO,
            ramps,
            ejections: outlier::Ejections::default(),
            next_tick: None,
        };
        writer.assign_slots();
        writer.observe();
        let snapshot = Published::new(build_snapshot(&writer, &options, None));
        Ok(Balancer {
            snapshot,
            writer: Mutex::new(writer),
            wlc: wlc::Stripes::new(wrr::STRIPES),
            loads: options.hash_balance_factor.map(|f| bounded::Loads::new(f.max(101))),
            outlier: outlier::Rules::of(&options).map(|r| (r, Mutex::new(outlier::Counters::default()))),
            options,
            strategy_override: self.strategy,
        })
    }
}

fn initial_state(options: &Options) -> HealthState {
    match options.initial_health {
        InitialHealth::Healthy => HealthState::Healthy,
        InitialHealth::Unhealthy => HealthState::Unhealthy,
    }
}

fn config_of(channel: &VpcChannel, strategy: Option<Strategy>) -> Config {
    let groups: Vec<GroupSpec> = channel
        .effective_member_groups()
        .into_iter()
        .map(|g| GroupSpec {
            name: member::intern(&g.member_group_name),
            weight: g.member_group_weight.map(|w| w.clamp(0, u32::MAX as i64) as u32),
        })
        .collect();
    let members = channel
        .members
        .iter()
        .map(|m| {
            let weight = m.weight.unwrap_or(1).clamp(0, u32::MAX as i64) as u32;
            let group = m.member_group_name.as_deref().map(member::intern);
            let inherited = group.and_then(|g| groups.iter().find(|s| s.name == g)).and_then(|s| s.weight);
            Member {
                id: MemberId::of(channel, m),
                weight,
                effective_weight: inherited.unwrap_or(weight),
                group,
                backup: m.is_backup.unwrap_or(false),
                available: m.status.unwrap_or(1) != 2,
                ecs_name: m.ecs_name.as_deref().map(member::intern),
                slot: 0,
            }
        })
        .collect();
    Config {
        strategy: strategy.or_else(|| Strategy::from_code(channel.balance_strategy)).unwrap_or(Strategy::Wrr),
        members,
        groups,
        check: channel.health_check().and_then(CheckConfig::from_config),
    }
}

fn build_snapshot(w: &Writer, options: &Options, previous: Option<&Snapshot>) -> Snapshot {
    let health: Box<[HealthState]> = (0..w.machines.len()).map(|i| w.health_of(i)).collect();
    // Slow start: ramping members (and everyone else, scaled alike) with their weights now.
    let scaled = w.ramps.scaled(w.now, &w.config.members, &w.config.groups);
    let input = BuildInput {
        strategy: w.config.strategy,
        members: scaled.as_ref().map_or(&w.config.members, |s| &s.members),
        groups: scaled.as_ref().map_or(&w.config.groups, |s| &s.groups),
        health: &health,
        mode: options.group_weights,
        hash_bits: options.hash_table_bits,
        backup_mode: options.backup_mode,
        panic_threshold: options.panic_threshold.map(|p| p.clamp(1, 100)),
    };
    let prev_active = previous.and_then(|p| p.active.as_ref().ok());
    let active = snapshot::build_active(&input, prev_active);
    let bounded = match (&active, options.hash_balance_factor) {
        (Ok(a), Some(_)) if a.table.is_some() => Some(weight_shares(a, w.config.members.len()).into()),
        _ => None,
    };
    Snapshot {
        strategy: w.config.strategy,
        generation: w.generation,
        members: w.config.members.clone().into(),
        health,
        track_in_flight: options.track_in_flight
            || w.config.strategy == Strategy::Wlc
            || options.hash_balance_factor.is_some(),
        active,
        bounded,
    }
}

impl Balancer {
    /// A balancer for a channel with default options. Validates the channel first.
    pub fn from_channel(channel: &VpcChannel) -> Result<Balancer, ValidationErrors> {
        Balancer::builder(channel).build()
    }

    pub fn builder(channel: &VpcChannel) -> Builder<'_> {
        Builder { channel, options: Options::default(), strategy: None }
    }

    /// Ends a pick's in-flight count (what dropping a pick does).
    #[inline]
    fn end(&self, open: Open, slot: u32) {
        if let Some(stripe) = open.stripe() {
            self.wlc.close(stripe, slot);
            if let Some(loads) = &self.loads {
                loads.close(slot);
            }
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn strategy(&self) -> Strategy {
        self.snapshot.load().strategy
    }

    /// Selects a member for a request.
    #[inline]
    pub fn select(&self, req: &Request<'_>) -> Result<Pick<'_>, SelectError> {
        let chosen = self.snapshot.with(|snap| self.select_in(snap, req));
        chosen.map(|(member, open)| Pick { member, open, balancer: self })
    }

    #[inline(always)]
    fn select_in(&self, snap: &Snapshot, req: &Request<'_>) -> Result<Chosen, SelectError> {
        let active = snap.active.as_ref().map_err(|e| *e)?;
        let stripe = wrr::stripe();
        if let (Some(loads), Some(shares)) = (&self.loads, &snap.bounded) {
            return Ok(self.bounded_pick(snap, active, loads, shares, req, stripe));
        }
        let idx = match snap.strategy {
            Strategy::Wrr => active.wrr_pick(stripe),
            Strategy::Wlc => return self.select_wlc(snap, active, stripe),
            Strategy::SourceIp => active.hash_pick(ip_key(req.client)),
            Strategy::UriHash => active.hash_pick(uri_key(req.uri, self.options.uri_hash_key)),
        };
        Ok(self.chosen(snap, idx, stripe))
    }

    /// Out of line: WLC's index work dwarfs a call, and the other strategies' inlined path stays
    /// small.
    #[inline(never)]
    fn select_wlc(&self, snap: &Snapshot, active: &Active, stripe: usize) -> Result<Chosen, SelectError> {
        let g = active.group_for(stripe);
        let m = self.wlc.pick(stripe, snap, active, g, None).ok_or(SelectError::AllTried)?;
        let member = snap.members[m as usize];
        self.open_loads(member.slot);
        Ok((member, Open::at(stripe)))
    }

    /// Selects a member other than those in `tried` (a retry). Hash strategies walk the key's
    /// preference order; WRR and WLC pick as usual among the untried members.
    pub fn select_excluding(&self, req: &Request<'_>, tried: &[MemberId]) -> Result<Pick<'_>, SelectError> {
        if tried.is_empty() {
            return self.select(req);
        }
        let snap = self.snapshot.load();
        let active = snap.active.as_ref().map_err(|e| *e)?;
        let untried = |i: u32| !tried.contains(&snap.members[i as usize].id);
        let stripe = wrr::stripe();
        let chosen = match snap.strategy {
            Strategy::Wrr => {
                let period: usize = active.groups.iter().map(|g| g.schedule.len()).sum::<usize>() + 1;
                let idx = (0..period).map(|_| active.wrr_pick(stripe)).find(|&i| untried(i));
                idx.map(|i| self.chosen(&snap, i, stripe))
            }
            Strategy::Wlc => {
                // The cursor's group first, then the others in order.
                let first = active.group_for(stripe);
                let order = std::iter::once(first).chain((0..active.groups.len()).filter(|&g| g != first));
                let found = order.into_iter().find_map(|g| self.wlc.pick(stripe, &snap, active, g, Some(&untried)));
                found.map(|m| {
                    let member = snap.members[m as usize];
                    self.open_loads(member.slot);
                    (member, Open::at(stripe))
                })
            }
            Strategy::SourceIp => {
                active.hash_pick_filtered(ip_key(req.client), &untried).map(|i| self.chosen(&snap, i, stripe))
            }
            Strategy::UriHash => active
                .hash_pick_filtered(uri_key(req.uri, self.options.uri_hash_key), &untried)
                .map(|i| self.chosen(&snap, i, stripe)),
        };
        chosen.map(|(member, open)| Pick { member, open, balancer: self }).ok_or(SelectError::AllTried)
    }

    /// The member at `idx`, with its in-flight count opened when the balancer tracks them.
    #[inline]
    fn chosen(&self, snap: &Snapshot, idx: u32, stripe: usize) -> Chosen {
        let member = snap.members[idx as usize];
        let open = if snap.track_in_flight {
            self.wlc.open(stripe, member.slot);
            self.open_loads(member.slot);
            Open::at(stripe)
        } else {
            Open::NONE
        };
        (member, open)
    }

    /// Counts a tracked pick for bounded-load hashing, when it is on (every tracked pick, so
    /// that the drop's close always has its open).
    #[inline]
    fn open_loads(&self, slot: u32) {
        if let Some(loads) = &self.loads {
            loads.open(slot);
        }
    }

    /// A hash pick under `hash_balance_factor`: the key's first choice, or the next member in its
    /// preference order that is under its bound.
    fn bounded_pick(
        &self,
        snap: &Snapshot,
        active: &Active,
        loads: &bounded::Loads,
        shares: &[f64],
        req: &Request<'_>,
        stripe: usize,
    ) -> Chosen {
        let Some(table) = &active.table else { return self.chosen(snap, active.hash_pick(0), stripe) };
        let bucket = hash::bucket_of(self.key_of(snap.strategy, req), table.bits);
        let first = table.owners[bucket];
        let slot_of = |i: u32| snap.members[i as usize].slot;
        let idx = loads.choose(active, bucket, first, slot_of, |i| shares[i as usize]);
        self.chosen(snap, idx, stripe)
    }

    /// Bounded-load hashing's counts so far: (hash picks, picks that went past their key's first
    /// choice because it was full). `None` when `hash_balance_factor` is off.
    pub fn bounded_load_stats(&self) -> Option<(u64, u64)> {
        self.loads.as_ref().map(bounded::Loads::stats)
    }

    /// The key's preference order over the active tier's eligible members (hash strategies):
    /// its first choice, then where it goes if that one is ineligible or full. Empty for WRR
    /// and WLC, and when nothing is eligible.
    pub fn preference(&self, req: &Request<'_>) -> Vec<MemberId> {
        let snap = self.snapshot.load();
        let (Ok(active), Some(table)) =
            (snap.active.as_ref(), snap.active.as_ref().ok().and_then(|a| a.table.as_ref()))
        else {
            return Vec::new();
        };
        let key = self.key_of(snap.strategy, req);
        let bucket = hash::bucket_of(key, table.bits);
        active.preference(bucket).into_iter().map(|i| snap.members[i as usize].id).collect()
    }

    fn key_of(&self, strategy: Strategy, req: &Request<'_>) -> u64 {
        match strategy {
            Strategy::UriHash => uri_key(req.uri, self.options.uri_hash_key),
            _ => ip_key(req.client),
        }
    }

    /// Tells the balancer the time: virtual time in a simulation, time since a fixed start on a
    /// monotonic clock in a live proxy (never earlier than a time told before; such a call is
    /// ignored). Rebuilds the snapshot when a slow-start ramp reaches its next step or an
    /// ejection ends. Call it at [`Balancer::next_tick`], or simply every few tens of
    /// milliseconds. Returns the members back from ejection, with their health now.
    pub fn tick(&self, now: Duration) -> Vec<(MemberId, HealthState)> {
        let mut w = self.writer.lock();
        if now > w.now {
            w.now = now;
        }
        let now = w.now;
        let back = w.ejections.expire(now);
        if !back.is_empty() || w.next_tick.is_some_and(|t| t <= now) {
            self.publish(&mut w);
        }
        back.into_iter().filter_map(|id| w.index.get(&id).map(|&i| (id, w.health_of(i)))).collect()
    }

    /// When the balancer next needs [`Balancer::tick`] (a slow-start step); `None`: not until
    /// something else changes.
    pub fn next_tick(&self) -> Option<Duration> {
        self.writer.lock().next_tick
    }

    /// Handle for feeding check results into the members' threshold state machines.
    pub fn health(&self) -> HealthHandle<'_> {
        HealthHandle { lb: self }
    }

    /// The active health check, if one is configured and enabled.
    pub fn check(&self) -> Option<CheckConfig> {
        self.writer.lock().config.check.clone()
    }

    /// Which tier takes traffic now, or why nothing can.
    pub fn tier(&self) -> Result<Tier, SelectError> {
        self.snapshot.load().active.as_ref().map(|a| a.tier).map_err(|e| *e)
    }

    /// Every member with its health, in-flight count, eligibility and expected share.
    pub fn members(&self) -> Vec<MemberStatus> {
        let snap = self.snapshot.load();
        let shares = expected_shares(&snap);
        let w = self.writer.lock();
        (0..snap.members.len())
            .map(|i| MemberStatus {
                member: snap.members[i],
                health: snap.health[i],
                in_flight: self.wlc.in_flight(snap.members[i].slot),
                eligible: shares[i].is_some(),
                expected_share: shares[i].unwrap_or(0.0),
                weight_factor: w.ramps.factor(snap.members[i].id, w.now),
            })
            .collect()
    }

    /// The hash strategies' key space now: which member owns each bucket. `None` for WRR/WLC.
    pub fn key_space(&self) -> Option<KeySpace> {
        let snap = self.snapshot.load_full();
        snap.active.as_ref().ok()?.table.as_ref()?;
        Some(KeySpace { snap })
    }

    /// Replaces the configuration. Members whose identity (`host:port`) is unchanged keep their
    /// health and in-flight counts; their weight, status, group and backup flag take the new
    /// values. Picks made before keep ending their own member's count. The strategy stays the
    /// one the balancer was built with when it was overridden.
    pub fn update(&self, channel: &VpcChannel) -> Result<(), ValidationErrors> {
        channel.validate().into_result()?;
        let config = config_of(channel, self.strategy_override);
        let mut w = self.writer.lock();
        let thresholds = config.check.as_ref().map(|c| c.thresholds);
        let initial = initial_state(&self.options);
        let mut machines = Vec::with_capacity(config.members.len());
        for m in &config.members {
            let machine = match w.index.get(&m.id).map(|&old| &w.machines[old]) {
                Some(prev) if prev.thresholds().is_some() && thresholds.is_some() => {
                    HealthMachine::new(thresholds, prev.state())
                }
                _ => HealthMachine::new(thresholds, initial),
            };
            machines.push(machine);
        }
        w.index = config.members.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
        w.config = config;
        w.machines = machines;
        w.assign_slots();
        self.publish(&mut w);
        Ok(())
    }

    fn publish(&self, w: &mut Writer) {
        w.observe();
        w.generation += 1;
        let prev = self.snapshot.load();
        let next = build_snapshot(w, &self.options, Some(&prev));
        self.snapshot.store(next);
    }
}

/// Expected share of each member (None when not eligible): weight shares for WRR/WLC (group
/// share times in-group share in hierarchical mode), key-space shares for hash strategies.
fn expected_shares(snap: &Snapshot) -> Vec<Option<f64>> {
    let mut out = vec![None; snap.members.len()];
    let Ok(active) = &snap.active else { return out };
    if let Some(table) = &active.table {
        let mut counts = vec![0u64; snap.members.len()];
        for &o in table.owners.iter() {
            counts[o as usize] += 1;
        }
        let n = table.owners.len() as f64;
        for g in active.groups.iter() {
            for &i in g.members.iter() {
                out[i as usize] = Some(counts[i as usize] as f64 / n);
            }
        }
        return out;
    }
    let shares = weight_shares(active, snap.members.len());
    for g in active.groups.iter() {
        for &i in g.members.iter() {
            out[i as usize] = Some(shares[i as usize]);
        }
    }
    out
}

/// Each member's weight share (group share times in-group share in hierarchical mode), by
/// member index; 0 outside the active tier.
fn weight_shares(active: &Active, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n];
    let gsum: f64 = active.groups.iter().map(|g| f64::from(g.weight)).sum();
    for g in active.groups.iter() {
        let gshare = if active.groups.len() == 1 { 1.0 } else { f64::from(g.weight) / gsum };
        let msum: f64 = g.weights.iter().map(|&w| f64::from(w)).sum();
        for (&i, &w) in g.members.iter().zip(g.weights.iter()) {
            out[i as usize] = if msum > 0.0 { gshare * f64::from(w) / msum } else { 0.0 };
        }
    }
    out
}

impl Active {
    #[inline]
    pub(crate) fn group_for(&self, stripe: usize) -> usize {
        if self.groups.len() == 1 {
            0
        } else {
            self.group_schedule[self.cursors.advance(stripe, 0, self.group_schedule.len())] as usize
        }
    }

    #[inline]
    fn wrr_pick(&self, stripe: usize) -> u32 {
        let g = self.group_for(stripe);
        let plan = &self.groups[g];
        let pos = self.cursors.advance(stripe, 1 + g, plan.schedule.len());
        plan.members[plan.schedule[pos] as usize]
    }

    #[inline]
    fn hash_pick(&self, key: u64) -> u32 {
        match &self.table {
            Some(t) => t.owners[hash::bucket_of(key, t.bits)],
            None => self.groups[0].members[0],
        }
    }

    fn hash_pick_filtered(&self, key: u64, keep: &dyn Fn(u32) -> bool) -> Option<u32> {
        let t = self.table.as_ref()?;
        let first = t.owners[hash::bucket_of(key, t.bits)];
        if keep(first) {
            return Some(first);
        }
        self.preference(hash::bucket_of(key, t.bits)).into_iter().find(|&i| keep(i))
    }
}

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn balancer_is_send_and_sync() {
        assert_send_sync::<super::Balancer>();
    }
}
