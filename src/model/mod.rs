//! The cloud APIs' request bodies as serde types, and their validation
//! (docs/architecture.md §2).
//!
//! | API | type |
//! | --- | --- |
//! | ROMA Connect's add-or-update-member-groups API | [`MemberGroupsBody`] |
//! | ROMA Connect's create-VPC-channel API | [`VpcChannel`] |
//! | ZStack's add-backend-servers API | [`BackendServersBody`] |
//! | Global Accelerator's add-endpoint-group API | [`EndpointGroupBody`] |
//! | SDRS's create-protection-group API | [`ProtectionGroupBody`] |
//!
//! Every type rejects unknown fields. [`Validate::validate`] checks every rule the API documents
//! state and returns all problems at once, each with its code in its API's style (`APIG.2011`,
//! `SYS.1007`, ...) and the parameter's path (`members[2].weight`). [`parse_body`] does both, and
//! reports every unknown field of a body rather than only the first.

mod channel;
mod enums;
mod error;
mod http_code;
mod others;
mod parse;
mod validate;

pub use channel::*;
pub use enums::*;
pub use error::{join_path, Api, Collector, FieldError, Problem, ValidationErrors};
pub use http_code::HttpCodes;
pub use others::*;
pub use parse::{from_json, from_value, from_value_collect, parse_text, Format};

/// Checks every rule an API document states for its body.
pub trait Validate {
    /// The API family whose error codes this body uses.
    const API: Api;

    /// Every problem found, with paths relative to the body. Empty when the body is valid.
    fn validate(&self) -> ValidationErrors;
}

/// Parses a JSON body and validates it: every unknown field and every rule violation at once.
pub fn parse_body<T: Validate + serde::de::DeserializeOwned>(json: &str) -> Result<T, ValidationErrors> {
    let value = parse_text(json, Format::Json, T::API)?;
    let (body, mut errors) = from_value_collect::<T>(value, T::API);
    if let Some(b) = &body {
        errors.extend(b.validate().errors);
    }
    match body {
        Some(b) if errors.is_empty() => Ok(b),
        _ => Err(ValidationErrors { errors }),
    }
}

impl VpcChannel {
    /// The member groups in effect: when a name is defined twice, the first definition wins
    /// (the add-or-update-member-groups API's rule), and the later ones are dropped.
    pub fn effective_member_groups(&self) -> Vec<&MemberGroup> {
        first_wins(&self.member_groups)
    }

    /// Whether the active health check is configured and enabled (`status` absent or 1).
    pub fn health_check(&self) -> Option<&VpcHealthConfig> {
        self.vpc_health_config.as_ref().filter(|h| h.status.unwrap_or(1) == 1)
    }
}

impl MemberGroupsBody {
    /// The groups in effect: duplicates by name dropped, the first definition wins.
    pub fn effective(&self) -> Vec<&MemberGroup> {
        first_wins(&self.member_groups)
    }
}

fn first_wins(groups: &[MemberGroup]) -> Vec<&MemberGroup> {
    let mut out: Vec<&MemberGroup> = Vec::with_capacity(groups.len());
    for g in groups {
        if !out.iter().any(|o| o.member_group_name == g.member_group_name) {
            out.push(g);
        }
    }
    out
}
