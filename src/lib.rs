//! lbsim: the data plane behind the ROMA Connect / APIG VPC channel, ZStack server group,
//! GA endpoint group and SDRS protection group APIs.
#![forbid(unsafe_code)]

pub mod balancer;
#[cfg(feature = "cli")]
pub mod cli;
pub mod health;
pub mod model;
#[cfg(feature = "sim")]
pub mod report;

pub use balancer::{Balancer, MemberId, Pick, Request, SelectError, Strategy};
#[cfg(feature = "sim")]
pub mod sim;
