//! Shared by the scenario and API-body targets: a channel that validated must build a balancer,
//! and every pick from it must be one of the channel's members.

use lbsim::balancer::Options;
use lbsim::model::VpcChannel;
use lbsim::{Balancer, MemberId, Request};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Builds the balancer (a validated channel must build), picks with a few clients and URIs, and
/// replays `updates` through `update`. Panics on any broken invariant, which the fuzzer reports.
pub fn exercise(channel: &VpcChannel, options: &Options, updates: &[&VpcChannel], data: &[u8]) {
    let lb = match Balancer::builder(channel).options(options.clone()).build() {
        Ok(lb) => lb,
        Err(e) => panic!("a channel that validated failed to build: {e}"),
    };
    pick_some(&lb, channel, data);
    for next in updates {
        if let Err(e) = lb.update(next) {
            panic!("an update that validated was refused: {e}");
        }
        pick_some(&lb, next, data);
    }
    for m in lb.members() {
        assert_eq!(m.in_flight, 0, "in-flight count of {} left open", m.member.id());
    }
}

fn pick_some(lb: &Balancer, channel: &VpcChannel, data: &[u8]) {
    let ids: Vec<MemberId> = channel.members.iter().map(|m| MemberId::of(channel, m)).collect();
    let uri = String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned();
    let clients = [
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, data.first().copied().unwrap_or(1))),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(data.last().copied().unwrap_or(7)))),
    ];
    let mut held = Vec::new();
    for (i, client) in clients.iter().cycle().take(8).enumerate() {
        let req = Request::new(*client, if i % 2 == 0 { &uri } else { "/" });
        if let Ok(pick) = lb.select(&req) {
            let id = pick.member().id();
            assert!(ids.contains(&id), "picked {id}, not a member of the channel");
            if let Ok(retry) = lb.select_excluding(&req, &[id]) {
                assert_ne!(retry.member().id(), id, "a retry picked the member it excluded");
            }
            held.push(pick);
        }
        let _ = lb.preference(&req);
    }
    drop(held);
    for m in lb.members() {
        assert_eq!(m.in_flight, 0, "in-flight count of {} left open after the picks ended", m.member.id());
    }
}
