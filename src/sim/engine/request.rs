//! The engine's per-request and per-attempt state, kept in slabs and reused, and why an attempt
//! fails.

use crate::balancer::{Lease, MemberId};
use crate::sim::time::Micros;

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Refused,
    Timeout,
    QueueFull,
    Reset,
    Error5xx,
    NoMember,
}

impl Failure {
    #[inline]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout => "timeout",
            Failure::QueueFull => "queue_full",
            Failure::Reset => "reset",
            Failure::Error5xx => "error_5xx",
            Failure::NoMember => "no_member",
        }
    }

    /// The member did not take the request (or said it was full): another member may.
    #[inline]
    pub(super) fn retriable(self) -> bool {
        matches!(self, Failure::Refused | Failure::Timeout | Failure::QueueFull | Failure::Reset)
    }
}

/// A request from its arrival to its last attempt's end.
pub(super) struct Req {
    pub(super) arrival: Micros,
    pub(super) client: u32,
    pub(super) uri: u32,
    pub(super) channel: u16,
    pub(super) attempts: u32,
    /// Members already tried (retries go elsewhere).
    pub(super) tried: Vec<MemberId>,
    pub(super) last_failure: Failure,
}

/// One attempt of a request on one member's backend.
pub(super) struct Attempt<'a> {
    /// Bumped each time the slot is reused: events of an earlier attempt in it are stale.
    pub(super) gen: u32,
    pub(super) req: u32,
    pub(super) member: u32,
    pub(super) start: Micros,
    /// The client gave up (timeout); the backend may still be busy with it.
    pub(super) abandoned: bool,
    /// Holding a backend slot (as opposed to waiting in its queue).
    pub(super) serving: bool,
    /// Ends the attempt's in-flight count when dropped.
    pub(super) lease: Option<Lease<'a>>,
}
