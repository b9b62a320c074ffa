//! Health driven from outside: an embedder with its own checker (a service mesh's, a cloud's
//! health API) feeds results into the balancer's threshold state machine, and selection follows.
//!
//!     cargo run --release --example external_health
//!
//! Needs no feature and no async runtime: `lbsim = { default-features = false }` is enough.
//! The channel is the body of ROMA Connect's create-VPC-channel API; its `vpc_health_config`
//! gives the thresholds (3 failures to mark a member unhealthy, 2 successes to bring it back).

use lbsim::health::{HealthState, Outcome};
use lbsim::model::VpcChannel;
use lbsim::{Balancer, Request};
use std::collections::BTreeMap;
use std::error::Error;

const CHANNEL: &str = r#"{
    "name": "orders", "port": 8080, "balance_strategy": 1, "member_type": "ip",
    "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
    "members": [{"host": "10.0.0.1", "weight": 2}, {"host": "10.0.0.2"}, {"host": "10.0.0.3"}],
    "vpc_health_config": {"protocol": "HTTP", "path": "/health", "http_code": "200",
                          "threshold_normal": 2, "threshold_abnormal": 3, "time_interval": 5, "timeout": 2}
}"#;

/// Members picked for `n` requests, by host.
fn spread(lb: &Balancer, n: usize) -> Result<BTreeMap<String, usize>, Box<dyn Error>> {
    let req = Request::new("192.0.2.7".parse()?, "/orders/7");
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let pick = lb.select(&req)?;
        *seen.entry(pick.member().host().to_string()).or_default() += 1;
    }
    Ok(seen)
}

fn main() -> Result<(), Box<dyn Error>> {
    let channel: VpcChannel = serde_json::from_str(CHANNEL)?;
    let lb = Balancer::from_channel(&channel)?;
    let sick = lb.members()[0].member.id();

    // Smooth WRR over weights 2, 1, 1: every period of 4 picks sends 2, 1, 1.
    let before = spread(&lb, 400)?;
    println!("all healthy:        {before:?}");
    assert_eq!(before.values().copied().collect::<Vec<_>>(), [200, 100, 100]);

    // `record` returns the new state when a result changes it. Two failures are not enough
    // (threshold_abnormal = 3); the third marks the member unhealthy.
    assert_eq!(lb.health().record(sick, Outcome::Failure), None);
    assert_eq!(lb.health().record(sick, Outcome::Failure), None);
    assert_eq!(lb.health().record(sick, Outcome::Failure), Some(HealthState::Unhealthy));
    let during = spread(&lb, 400)?;
    println!("{sick} unhealthy: {during:?}");
    assert_eq!(during.get("10.0.0.1"), None);
    assert_eq!(during.values().sum::<usize>(), 400);

    // Two successes (threshold_normal = 2) bring it back, with its full weight.
    assert_eq!(lb.health().record(sick, Outcome::Success), None);
    assert_eq!(lb.health().record(sick, Outcome::Success), Some(HealthState::Healthy));
    let after = spread(&lb, 400)?;
    println!("recovered:          {after:?}");
    assert_eq!(after, before);
    Ok(())
}
