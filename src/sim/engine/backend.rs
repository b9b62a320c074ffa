//! A simulated member's backend: slots served at once, a wait queue, its speed and the fault
//! windows that change what it does.

use crate::balancer::MemberId;
use crate::sim::faults::{Condition, MemberFaults};
use crate::sim::scenario::BackendSpec;
use crate::sim::time::{secs, Micros};
use std::collections::VecDeque;

/// What every attempt reads and writes comes first and fits one cache line (`repr(C)` keeps the
/// order, the alignment keeps it in one line), so that an attempt touches one line of it.
#[repr(C, align(64))]
pub(crate) struct Backend {
    pub(super) busy: u32,
    /// The most attempts it has held at once, serving and queued (kept here, beside what it
    /// counts, rather than in the metrics).
    peak: u32,
    /// `spec`'s `max_in_flight`, `max_queue` and `speed`, beside the counters.
    pub(super) max_in_flight: u32,
    pub(super) max_queue: u32,
    pub(super) speed: f64,
    /// Attempts waiting for a slot: (attempt slot, generation).
    pub(super) queue: VecDeque<(u32, u32)>,
    /// Some fault touches it.
    faulty: bool,
    pub(crate) id: MemberId,
    pub(crate) channel: usize,
    pub(crate) faults: MemberFaults,
}

impl Backend {
    pub(super) fn new(id: MemberId, channel: usize, spec: &BackendSpec, faults: MemberFaults) -> Backend {
        Backend {
            busy: 0,
            peak: 0,
            max_in_flight: spec.max_in_flight,
            max_queue: spec.max_queue,
            speed: spec.speed,
            queue: VecDeque::new(),
            faulty: !faults.is_empty(),
            id,
            channel,
            faults,
        }
    }

    pub(crate) fn peak_in_flight(&self) -> u64 {
        u64::from(self.peak)
    }

    /// What its faults make it do at `t` (most members have none: no conversion of `t` then).
    #[inline]
    pub(super) fn condition(&self, t: Micros) -> Condition {
        if !self.faulty {
            Condition::NORMAL
        } else {
            self.faults.at(secs(t))
        }
    }

    /// Every slot busy and the queue full: a new attempt gets 503 at once.
    pub(super) fn saturated(&self) -> bool {
        self.busy >= self.max_in_flight && self.queue.len() as u32 >= self.max_queue
    }

    #[inline]
    pub(super) fn note_in_flight(&mut self) {
        self.peak = self.peak.max(self.busy + self.queue.len() as u32);
    }
}
