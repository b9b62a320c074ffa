//! Each seed body's parse-and-validate (`model::parse_body`), dispatched on the first byte:
//! 0 member groups (000), 1 VPC channel (001), 2 ZStack backend servers (002), 3 GA endpoint
//! group (003), 4 SDRS protection group (004). Any text gives the body or typed errors; a valid
//! channel must build a balancer.
#![no_main]

#[path = "exercise.rs"]
mod exercise;

use lbsim::balancer::Options;
use lbsim::model::{
    parse_body, BackendServersBody, EndpointGroupBody, MemberGroupsBody, ProtectionGroupBody, ValidationErrors,
    VpcChannel,
};
use libfuzzer_sys::fuzz_target;

fn errors_ok<T>(r: Result<T, ValidationErrors>) -> Option<T> {
    match r {
        Ok(t) => Some(t),
        Err(e) => {
            assert!(!e.errors.is_empty(), "an Err with no error in it");
            let _ = e.to_string();
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    match kind % 5 {
        0 => drop(errors_ok(parse_body::<MemberGroupsBody>(text))),
        1 => {
            if let Some(ch) = errors_ok(parse_body::<VpcChannel>(text)) {
                exercise::exercise(&ch, &Options::default(), &[], rest);
            }
        }
        2 => drop(errors_ok(parse_body::<BackendServersBody>(text))),
        3 => drop(errors_ok(parse_body::<EndpointGroupBody>(text))),
        _ => drop(errors_ok(parse_body::<ProtectionGroupBody>(text))),
    }
});
