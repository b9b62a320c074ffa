//! Each cloud API body's parse-and-validate (`model::parse_body`), dispatched on the first byte:
//! 0 add-or-update member groups, 1 create VPC channel, 2 ZStack add backend servers, 3 GA add
//! endpoint group, 4 SDRS create protection group. Any text gives the body or typed errors; a valid
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
