//! Live mode (feature `live`): the same scenario on real sockets, loopback only. Real TCP, HTTP
//! and HTTPS health probes feed the balancer's threshold state machine; a hyper reverse proxy
//! picks per request; loopback backends play the scenario's members with their modelled service
//! times and fault windows; an open-loop load generator drives the scenario's traffic.
//!
//! Addresses in scenario files (192.168.x.x and so on) are simulated members: live mode never
//! connects to them. It starts a loopback backend per member (or maps members onto running
//! loopback servers with `--backends`) and sends every byte to 127.0.0.1 or ::1.

pub mod admin;
pub mod backends;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod operate;
pub mod probe;
pub mod proxy;
pub mod run;
pub mod stats;

/// Whether an I/O error of `kind` is anywhere in `err`'s source chain (hyper's client errors wrap
/// the connector's `io::Error`): the proxy's and the load generator's failure reasons.
pub(crate) fn caused_by(err: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cause = Some(err);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == kind) {
            return true;
        }
        cause = c.source();
    }
    false
}
