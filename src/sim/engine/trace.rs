//! `--trace`: one JSON line per attempt (time, client, URI, member, outcome, latency, attempt
//! number), written as the attempt ends.

use super::uri::URI_PREFIX;
use super::{Engine, SimError};
use crate::sim::time::{secs, Micros};
use std::io::Write;

impl Engine<'_, '_> {
    /// Writes an attempt's line when the run is traced (a branch, on every attempt's path).
    #[inline]
    pub(super) fn trace_attempt(
        &mut self,
        t: Micros,
        req: u32,
        m: Option<u32>,
        outcome: &str,
        lat: Option<Micros>,
    ) -> Result<(), SimError> {
        if self.trace.is_none() {
            return Ok(());
        }
        self.write_trace(t, req, m, outcome, lat)
    }

    fn write_trace(
        &mut self,
        t: Micros,
        req: u32,
        m: Option<u32>,
        outcome: &str,
        lat: Option<Micros>,
    ) -> Result<(), SimError> {
        let r = &self.reqs[req as usize];
        let line = serde_json::json!({
            "t_s": secs(t),
            "client": self.client_ip(r.client).to_string(),
            "uri": format!("{URI_PREFIX}{}", r.uri),
            "member": m.map(|m| self.backends[m as usize].id.to_string()),
            "outcome": outcome,
            "latency_ms": lat.map(|l| l as f64 / 1e3),
            "attempt": r.attempts,
        });
        if let Some(w) = self.trace.as_mut() {
            writeln!(w, "{line}")?;
        }
        Ok(())
    }
}
