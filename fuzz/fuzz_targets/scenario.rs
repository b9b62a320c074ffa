//! The check shared by the TOML and JSON scenario targets.

use crate::exercise::exercise;
use lbsim::model::{Format, VpcChannel};
use lbsim::sim::scenario::ChangeKind;
use lbsim::sim::Scenario;

pub fn check(data: &[u8], format: Format) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Scenario::parse(text, format) {
        Ok(s) => {
            let replaced: Vec<&VpcChannel> = s
                .changes
                .iter()
                .filter_map(|c| match &c.what {
                    ChangeKind::Channel(ch) => Some(&**ch),
                    _ => None,
                })
                .collect();
            for spec in &s.channels {
                exercise(&spec.channel, &s.balancer, &replaced, data);
            }
        }
        Err(e) => {
            assert!(!e.errors.is_empty(), "an Err with no error in it");
            let _ = e.to_string();
        }
    }
}
