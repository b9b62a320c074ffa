//! lbsim: the data plane behind the ROMA Connect / APIG VPC channel, ZStack server group, GA
//! endpoint group and SDRS protection group APIs, and a deterministic simulator that drives
//! synthetic traffic through it.
//!
//! The balancer takes the body of ROMA Connect's create-VPC-channel API verbatim:
//!
//! ```
//! use lbsim::{Balancer, Request, model::VpcChannel};
//!
//! let channel: VpcChannel = serde_json::from_str(r#"{"name": "orders", "port": 8080,
//!     "balance_strategy": 1, "member_type": "ip", "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
//!     "members": [{"host": "10.0.0.1", "weight": 5}, {"host": "10.0.0.2"}, {"host": "10.0.0.3"}]}"#)?;
//! let lb = Balancer::from_channel(&channel)?;
//! let req = Request::new("192.0.2.7".parse()?, "/orders/7");
//! let picks: Vec<String> = (0..7).map(|_| lb.select(&req).map(|p| p.member().host().to_string())).collect::<Result<_, _>>()?;
//! assert_eq!(picks, ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.1", "10.0.0.1"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules: [`model`] (the cloud APIs' bodies and validation), [`balancer`] (the embeddable core),
//! [`health`] (the threshold state machine); with feature `sim`, `sim` (the simulator) and
//! `report` (reports and renderers); with feature `cli`, the command line. How the layers fit and
//! what each promises: `docs/architecture.md`.
// One audited `unsafe` block, in `balancer/reader.rs` (the per-thread snapshot cache).
#![deny(unsafe_code)]

pub mod balancer;
#[cfg(feature = "cli")]
#[allow(
    clippy::disallowed_methods,
    reason = "real time: this layer reads the clock (clippy.toml bans it in the balancer and the simulator)"
)]
pub mod cli;
#[cfg(feature = "live")]
#[allow(
    clippy::disallowed_methods,
    reason = "real time: this layer reads the clock (clippy.toml bans it in the balancer and the simulator)"
)]
pub mod control;
pub mod health;
#[cfg(feature = "live")]
#[allow(
    clippy::disallowed_methods,
    reason = "real time: this layer reads the clock (clippy.toml bans it in the balancer and the simulator)"
)]
pub mod live;
pub mod model;
#[cfg(feature = "sim")]
pub mod report;
#[cfg(feature = "sim")]
pub mod sim;

pub use balancer::{Balancer, MemberId, OwnedPick, Pick, Request, SelectError, Strategy};

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
