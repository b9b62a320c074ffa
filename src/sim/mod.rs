//! The deterministic discrete-event simulator (architecture.md §4-§7).
//!
//! Virtual time only: the clock jumps from event to event (a radix heap ordered by time, then
//! by insertion order; the next arrival waits beside it and runs after the queued events of its
//! moment, so that simultaneous events always run in the same order). Each source of
//! randomness has its own seeded stream (arrivals, clients, URIs, service times, faults, probe
//! jitter, endpoint-group choice), so that changing one model does not reshuffle the others.
//! The same scenario and seed give byte-identical reports; only `sim.wall_ms` and
//! `sim.requests_per_s` measure the machine, and `deterministic` leaves them out.

pub(crate) mod assemble;
mod engine;
pub mod faults;
pub(crate) mod keys;
pub(crate) mod metrics;
mod options_check;
pub mod plan;
mod queue;
pub mod scenario;
mod time;
pub mod traffic;

pub use engine::{run, run_until, Paused, RunOptions, SimError};
pub use plan::{MemberPlan, Plan};
pub use scenario::{LoadError, Scenario};
