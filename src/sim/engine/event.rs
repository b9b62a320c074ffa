//! The engine's events, and their packing into one `u64` for the queue.
//!
//! The queue moves every event several times and the engine copies it out once more. As an enum
//! (a one-byte tag, then two `u32`s) a (time, event) pair was 24 bytes, copied by loads that
//! straddled the stores that wrote it, which stalled on store forwarding; packed, it is 16
//! bytes moved in two aligned words.

use crate::health::Outcome;

/// Slots of the attempt slab that an event can name: 24 bits, beside a 32-bit generation.
pub(crate) const MAX_SLOTS: u32 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ev {
    Arrival,
    /// The backend finished serving an attempt (slot, generation).
    ServiceEnd(u32, u32),
    /// The attempt's timeout expired (slot, generation).
    Timeout(u32, u32),
    Probe(u32),
    ProbeResult(u32, Outcome),
    /// A check answered a status outside `http_code` and `retriable_codes`.
    ProbeFatal(u32),
    Change(u32),
    FailoverStart,
    FailoverDone,
    /// A balancer's time-driven rebuild is due (channel).
    Tick(u32),
}

/// Tags, in the low byte.
const ARRIVAL: u64 = 0;
const SERVICE_END: u64 = 1;
const TIMEOUT: u64 = 2;
const PROBE: u64 = 3;
const PROBE_OK: u64 = 4;
const PROBE_FAILED: u64 = 5;
const PROBE_FATAL: u64 = 6;
const CHANGE: u64 = 7;
const FAILOVER_START: u64 = 8;
const FAILOVER_DONE: u64 = 9;
const TICK: u64 = 10;

impl Ev {
    /// [`Ev::Arrival`], packed.
    pub(crate) const ARRIVAL: u64 = ARRIVAL;

    /// Whether a packed event is an arrival (as [`Ev::unpack`] reads it).
    #[inline]
    pub(crate) fn is_arrival(x: u64) -> bool {
        matches!(Ev::unpack(x), Ev::Arrival)
    }

    /// Tag in bits 0-7; a slot in bits 8-31 and its generation in 32-63, or an index in 32-63.
    /// A slot must be below [`MAX_SLOTS`] (the engine refuses to open more attempts).
    #[inline]
    pub(crate) fn pack(self) -> u64 {
        let slot = |tag: u64, slot: u32, gen: u32| {
            debug_assert!(slot < MAX_SLOTS);
            tag | u64::from(slot) << 8 | u64::from(gen) << 32
        };
        let index = |tag: u64, i: u32| tag | u64::from(i) << 32;
        match self {
            Ev::Arrival => ARRIVAL,
            Ev::ServiceEnd(s, g) => slot(SERVICE_END, s, g),
            Ev::Timeout(s, g) => slot(TIMEOUT, s, g),
            Ev::Probe(m) => index(PROBE, m),
            Ev::ProbeResult(m, Outcome::Success) => index(PROBE_OK, m),
            Ev::ProbeResult(m, Outcome::Failure) => index(PROBE_FAILED, m),
            Ev::ProbeFatal(m) => index(PROBE_FATAL, m),
            Ev::Change(i) => index(CHANGE, i),
            Ev::FailoverStart => FAILOVER_START,
            Ev::FailoverDone => FAILOVER_DONE,
            Ev::Tick(c) => index(TICK, c),
        }
    }

    #[inline]
    pub(crate) fn unpack(x: u64) -> Ev {
        let slot = ((x >> 8) & u64::from(MAX_SLOTS - 1)) as u32;
        let high = (x >> 32) as u32;
        match x & 0xFF {
            SERVICE_END => Ev::ServiceEnd(slot, high),
            TIMEOUT => Ev::Timeout(slot, high),
            PROBE => Ev::Probe(high),
            PROBE_OK => Ev::ProbeResult(high, Outcome::Success),
            PROBE_FAILED => Ev::ProbeResult(high, Outcome::Failure),
            PROBE_FATAL => Ev::ProbeFatal(high),
            CHANGE => Ev::Change(high),
            FAILOVER_START => Ev::FailoverStart,
            FAILOVER_DONE => Ev::FailoverDone,
            TICK => Ev::Tick(high),
            tag => {
                debug_assert_eq!(tag, ARRIVAL, "an event tag that `pack` never writes");
                Ev::Arrival
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_packing_at_the_edges_of_its_fields() {
        let top = MAX_SLOTS - 1;
        let events = [
            Ev::Arrival,
            Ev::ServiceEnd(0, 0),
            Ev::ServiceEnd(top, u32::MAX),
            Ev::ServiceEnd(1, u32::MAX - 1),
            Ev::Timeout(top, 0),
            Ev::Timeout(0, u32::MAX),
            Ev::Probe(u32::MAX),
            Ev::ProbeResult(7, Outcome::Success),
            Ev::ProbeResult(u32::MAX, Outcome::Failure),
            Ev::ProbeFatal(3),
            Ev::Change(u32::MAX),
            Ev::FailoverStart,
            Ev::FailoverDone,
            Ev::Tick(0),
            Ev::Tick(u32::MAX),
        ];
        for ev in events {
            assert_eq!(Ev::unpack(ev.pack()), ev, "{ev:?} packs to {:#x}", ev.pack());
        }
    }
}
