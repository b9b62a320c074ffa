//! Live mode (feature `live`): the same scenario on real sockets, loopback only. Real TCP, HTTP
//! and HTTPS health probes feed the balancer's threshold state machine; a hyper reverse proxy
//! picks per request; loopback backends play the scenario's members with their modelled service
//! times and fault windows; an open-loop load generator drives the scenario's traffic.
//!
//! Addresses in scenario files (192.168.x.x and so on) are simulated members: live mode never
//! connects to them. It starts a loopback backend per member (or maps members onto running
//! loopback servers with `--backends`) and sends every byte to 127.0.0.1 or ::1.

pub mod backends;
pub mod loadgen;
pub mod probe;
pub mod proxy;
pub mod run;
pub mod stats;
