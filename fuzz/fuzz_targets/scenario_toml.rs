//! Scenario loader, TOML: any text must give a scenario or typed errors, never a panic; a
//! scenario that loads must build its balancers and pick only its own members.
#![no_main]

#[path = "exercise.rs"]
mod exercise;
#[path = "scenario.rs"]
mod scenario;

use lbsim::model::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scenario::check(data, Format::Toml));
