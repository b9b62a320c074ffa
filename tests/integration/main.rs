//! lbsim's integration tests, in one binary (one link, one place for shared helpers).
//!
//! One module per area; `support` holds the helpers they share. Run one area with
//! `cargo test --release --test integration balancer::` (the module name is the filter).

// Tests drive live mode in real time and seed their own streams.
#![allow(clippy::disallowed_methods)]

mod support;

mod balancer;
mod balancer_options;
mod cli;
mod cli_explain;
mod cli_sweep;
mod control_api;
mod control_openapi;
mod control_sign;
mod control_state;
mod control_store;
mod hash_consistency;
mod live_agreement;
mod live_backends;
mod live_faults;
mod live_options;
mod live_probe;
mod live_proxy;
mod model;
mod report_render;
mod sim;
mod sim_options;
mod stress;
