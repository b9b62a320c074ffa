//! The balancer's options: the strategy and the `[balancer]` table of architecture.md §5, each
//! off (or the create-VPC-channel API's meaning) by default.

use super::UriHashKey;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `balance_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// 1: smooth weighted round robin.
    Wrr,
    /// 2: weighted least connections.
    Wlc,
    /// 3: consistent weighted hash of the client's source IP.
    SourceIp,
    /// 4: consistent weighted hash of the request URI.
    UriHash,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [Strategy::Wrr, Strategy::Wlc, Strategy::SourceIp, Strategy::UriHash];

    /// From the create-VPC-channel API's `balance_strategy` number.
    pub fn from_code(code: i64) -> Option<Strategy> {
        match code {
            1 => Some(Strategy::Wrr),
            2 => Some(Strategy::Wlc),
            3 => Some(Strategy::SourceIp),
            4 => Some(Strategy::UriHash),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Strategy::Wrr => 1,
            Strategy::Wlc => 2,
            Strategy::SourceIp => 3,
            Strategy::UriHash => 4,
        }
    }

    /// Short name used by the CLI and reports: `wrr`, `wlc`, `sh`, `uri`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Wrr => "wrr",
            Strategy::Wlc => "wlc",
            Strategy::SourceIp => "sh",
            Strategy::UriHash => "uri",
        }
    }

    pub fn is_hash(self) -> bool {
        matches!(self, Strategy::SourceIp | Strategy::UriHash)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "wrr" | "1" => Ok(Strategy::Wrr),
            "wlc" | "2" => Ok(Strategy::Wlc),
            "sh" | "3" => Ok(Strategy::SourceIp),
            "uri" | "4" => Ok(Strategy::UriHash),
            _ => Err(format!("`{s}` is not a strategy: wrr, wlc, sh or uri (or 1-4)")),
        }
    }
}

/// How member-group weights apply (`[balancer] group_weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupWeights {
    /// A member in a group that has a `member_group_weight` takes that weight in place of its
    /// own; others keep their own (as the create-VPC-channel and add-or-update-member-groups APIs
    /// word it).
    #[default]
    Inherit,
    /// Pick a group by group weight among groups with an eligible member, then a member inside
    /// it by the strategy with member weights. A group without a weight weighs the sum of its
    /// members' weights; an ungrouped member is a group of its own.
    Hierarchical,
}

/// Which backups take traffic when no primary is eligible (`[balancer] backup_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupMode {
    /// Balance across all eligible backups (the create-VPC-channel API's meaning: backups work
    /// when every non-backup member is faulty).
    #[default]
    All,
    /// The first eligible backup, in member order, takes everything (HAProxy's default).
    First,
}

/// A member's health before its first check (`[balancer] initial_health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialHealth {
    #[default]
    Healthy,
    Unhealthy,
}

/// Options of the balancer that the create-VPC-channel body cannot carry (the scenario's `[balancer]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    pub group_weights: GroupWeights,
    pub uri_hash_key: UriHashKey,
    pub initial_health: InitialHealth,
    /// Count in-flight picks for every strategy (always on for WLC).
    pub track_in_flight: bool,
    /// Size of the hash strategies' bucket table, as a power of two (12-24); default by member
    /// count (16-20).
    pub hash_table_bits: Option<u8>,
    pub backup_mode: BackupMode,
    /// Panic mode, in percent (1-100; off by default): when fewer than this share of the enabled
    /// primaries is healthy and no backup is eligible, every enabled primary takes traffic rather
    /// than the few healthy ones taking it all (Envoy's panic threshold).
    pub panic_threshold: Option<u8>,
    /// Slow start, in seconds (off by default): a member that becomes eligible (new, recovered,
    /// re-enabled) ramps its weight linearly from `slow_start_floor` x weight to its full weight
    /// over this time, in 20 steps. Needs the time: see [`Balancer::tick`].
    pub slow_start_s: Option<f64>,
    /// The weight factor a slow-start ramp begins at (0-1; absent: 0.1).
    pub slow_start_floor: Option<f64>,
    /// Bounded-load hashing, in percent (above 100; off by default): under SH and URI hash no
    /// member takes more than this share of its weighted part of the requests in flight; a key
    /// whose first choice is full goes to the next member in its preference order.
    pub hash_balance_factor: Option<u32>,
    /// Outlier detection (passive health; off unless this or `outlier_failure_rate` is set):
    /// eject a member after this many consecutive failed responses (5xx, refused, reset, timed
    /// out), reported through [`HealthHandle::record_response`].
    pub outlier_consecutive_errors: Option<u32>,
    /// Eject a member when at least this percentage (1-100) of its responses failed within one
    /// `outlier_interval_s` window, once it has `outlier_min_requests` responses there.
    pub outlier_failure_rate: Option<u8>,
    /// Responses a window needs before `outlier_failure_rate` applies (absent: 20).
    pub outlier_min_requests: Option<u32>,
    /// Length of the failure-rate window, in seconds (absent: 10).
    pub outlier_interval_s: Option<f64>,
    /// The n-th ejection of a member lasts n times this, in seconds (absent: 30).
    pub outlier_base_ejection_s: Option<f64>,
    /// At most this percentage of the members is ejected at once; one always can be (absent: 10).
    pub max_ejection_percent: Option<u8>,
    /// Seconds between checks of an unhealthy member (absent: `time_interval`).
    pub unhealthy_interval: Option<u32>,
    /// Each check interval is drawn within plus or minus this percentage (0-100; absent: 0).
    pub interval_jitter_percent: Option<u8>,
    /// Check statuses that are ordinary failures (`http_code` syntax); with this set, a status
    /// outside both it and `http_code` marks the member unhealthy at once.
    pub retriable_codes: Option<String>,
}

impl Options {
    /// The check interval and status options in force.
    pub fn check_policy(&self) -> crate::health::CheckPolicy {
        crate::health::CheckPolicy::new(
            self.unhealthy_interval,
            self.interval_jitter_percent,
            self.retriable_codes.as_deref(),
        )
    }
}
