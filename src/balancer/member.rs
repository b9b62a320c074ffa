//! Members: identity (`MemberId`) and configuration (`Member`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// A member's identity: `host:port` (ECS members: `ecs_id:port`). Small and `Copy`, so that
/// embedders can keep it in maps and hand it back to [`crate::balancer::HealthHandle::record`].
///
/// Hosts are interned: `MemberId` holds a thin pointer to an interned `&'static str` (16 bytes
/// in all, so that a pick stays small). The interner is process-wide and append-only, so its
/// memory is bounded by the number of distinct hosts the process ever sees (a few bytes each);
/// that is what buys a `Copy` id that still displays as `host:port`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId {
    // Field order makes the derived `Ord` sort by host, then port; comparisons and hashes see
    // the string, not the pointer.
    host: Name,
    port: u16,
}

impl MemberId {
    /// The id of `host:port`.
    pub fn new(host: &str, port: u16) -> MemberId {
        MemberId { host: intern(host), port }
    }

    /// Parses `host:port` (IPv6 hosts as `[::1]:80`, or unbracketed `::1:80` split at the last
    /// colon).
    pub fn parse(s: &str) -> Option<MemberId> {
        let (host, port) = s.rsplit_once(':')?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        Some(MemberId::new(host, port.parse().ok()?))
    }

    pub fn host(&self) -> &'static str {
        self.host.get()
    }

    /// The identity of a channel's member: `host:port`, or `ecs_id:port` for an ECS member;
    /// the member's `port` when above 0, else the channel's.
    pub fn of(channel: &crate::model::VpcChannel, m: &crate::model::MemberInfo) -> MemberId {
        let port = match m.port {
            Some(p) if p > 0 => p,
            _ => channel.port,
        };
        MemberId::new(m.host.as_deref().or(m.ecs_id.as_deref()).unwrap_or(""), port.clamp(0, 65535) as u16)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for MemberId {
    /// `host:port`; an IPv6 host is bracketed (`[fd00::1]:80`) so the port stays unambiguous.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host.get();
        if host.contains(':') {
            write!(f, "[{host}]:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for s in ["10.0.0.1:80", "[fd00::1]:8080", "ecs-1234:443", "backend.example:1"] {
            assert_eq!(MemberId::parse(s).map(|m| m.to_string()).as_deref(), Some(s));
        }
        assert_eq!(MemberId::parse("fd00::1:80"), MemberId::parse("[fd00::1]:80"));
        assert_eq!(MemberId::parse(":80"), None);
        assert_eq!(MemberId::parse("host:x"), None);
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An interned string behind a thin pointer (8 bytes; `Option<Name>` too).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Name(&'static &'static str);

impl Name {
    #[inline]
    pub(crate) fn get(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

/// Interns a string for the life of the process (see [`MemberId`]).
pub(crate) fn intern(s: &str) -> Name {
    static TABLE: OnceLock<Mutex<HashMap<&'static str, Name>>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked while inserting; the map is intact.
    let mut map = table.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&found) = map.get(s) {
        return found;
    }
    let text: &'static str = Box::leak(s.to_owned().into_boxed_str());
    let name = Name(Box::leak(Box::new(text)));
    map.insert(text, name);
    name
}

/// One member as configured, after the channel's defaults are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub(crate) id: MemberId,
    /// The member's own weight (`weight`, absent: 1).
    pub(crate) weight: u32,
    /// The weight the strategy uses: in `inherit` mode the group's weight where it has one.
    pub(crate) effective_weight: u32,
    pub(crate) group: Option<Name>,
    pub(crate) backup: bool,
    /// `status` 1 (available) or 2 (unavailable).
    pub(crate) available: bool,
    pub(crate) ecs_name: Option<Name>,
    /// Stable per identity for the life of the balancer: indexes per-member state that
    /// outlives snapshots (in-flight counts, WLC current weights).
    pub(crate) slot: u32,
}

impl Member {
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// The address to connect to: the host, or the ECS id of an `ecs` member.
    pub fn host(&self) -> &'static str {
        self.id.host.get()
    }

    pub fn port(&self) -> u16 {
        self.id.port
    }

    /// The configured weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The weight selection uses (differs from [`Member::weight`] when a member group's weight
    /// is inherited).
    pub fn effective_weight(&self) -> u32 {
        self.effective_weight
    }

    pub fn group(&self) -> Option<&'static str> {
        self.group.map(Name::get)
    }

    pub fn is_backup(&self) -> bool {
        self.backup
    }

    /// `status` 1; a member with status 2 is never selected.
    pub fn is_available(&self) -> bool {
        self.available
    }

    pub fn ecs_name(&self) -> Option<&'static str> {
        self.ecs_name.map(Name::get)
    }

    /// Status 1 and a weight above zero: the member can be selected when healthy.
    pub fn is_enabled(&self) -> bool {
        self.available && self.effective_weight > 0
    }
}
