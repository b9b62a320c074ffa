//! What one project may create, so that one project-scoped caller cannot starve the others:
//! channels, members per channel, and members over all of a project's channels. Every simulated
//! member is a loopback listener and every channel a proxy listener, so the quotas also bound the
//! descriptors and memory one project can take.
//!
//! ROMA Connect documents 200 load balance channels per instance (`APIG.3109` over it) and 10
//! ECSs per channel (`APIG.3110`); it documents no limit for IP members. lbsim counts channels per
//! project and uses one member limit for both member types (a simulated ECS costs what an IP
//! member costs, and 10 would refuse channels that work today); `docs/control_api.md` says why.
//! Channels loaded from `serve --scenario` (the operator's own file) are counted, not refused.

use super::errors::ApiError;
use super::state::Registry;
use crate::model::Api;

/// Per-project limits (`--quota-channels`, `--quota-members`, `--quota-project-members`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Channels per project.
    pub channels: usize,
    /// Members per channel.
    pub members: usize,
    /// Members over all the channels of a project.
    pub project_members: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { channels: 200, members: 200, project_members: 1000 }
    }
}

impl Quotas {
    /// No limit (the fuzz target, embedders that police callers themselves).
    pub fn unlimited() -> Quotas {
        Quotas { channels: usize::MAX, members: usize::MAX, project_members: usize::MAX }
    }

    /// Room for `adding` more channels in `project`.
    pub fn check_channels(&self, api: Api, reg: &Registry, project: &str, adding: usize) -> Result<(), ApiError> {
        let have = reg.channels_of(project).count();
        if have.saturating_add(adding) > self.channels {
            return Err(ApiError::quota(
                api,
                Quota::Channels,
                format!(
                    "The number of VPC channels exceeds the maximum allowed limit;project:{project},limit:{},existing:{have},adding:{adding}",
                    self.channels
                ),
            ));
        }
        Ok(())
    }

    /// Room for `copies` channels of `now` members each (replacing one of `before` members; 0
    /// for a new channel) in `project`. A change that does not add members always passes.
    pub fn check_members(
        &self,
        api: Api,
        reg: &Registry,
        project: &str,
        before: usize,
        (now, copies): (usize, usize),
    ) -> Result<(), ApiError> {
        if now > self.members && now > before {
            return Err(ApiError::quota(
                api,
                Quota::Members,
                format!(
                    "The number of members of a VPC channel exceeds the maximum allowed limit;limit:{},members:{now}",
                    self.members
                ),
            ));
        }
        let total: usize = reg.channels_of(project).map(|c| c.channel.members.len()).sum();
        let after = total.saturating_sub(before).saturating_add(now.saturating_mul(copies));
        if after > self.project_members && now > before {
            return Err(ApiError::quota(
                api,
                Quota::Members,
                format!(
                    "The number of members of the project's VPC channels exceeds the maximum allowed limit;project:{project},limit:{},members:{after}",
                    self.project_members
                ),
            ));
        }
        Ok(())
    }
}

/// Which quota a request would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Channels,
    Members,
}
