//! The simulator's promises (architecture.md §4-§7), observed through its reports.

use lbsim::model::Format;
use lbsim::report::Report;
use lbsim::sim::{run, RunOptions, Scenario};
use lbsim::Strategy;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, Format::Toml).unwrap_or_else(|e| panic!("scenario invalid:\n{e}"))
}

fn sim(sc: &Scenario, s: Strategy) -> Report {
    let mut o = RunOptions::new(s);
    o.deterministic = true;
    let r = run(sc, o).expect("run");
    assert_eq!(r.requests.total, r.requests.ok + r.requests.failed, "every request is accounted for");
    r
}

fn member<'a>(r: &'a Report, m: &str) -> &'a lbsim::report::MemberReport {
    r.members.iter().find(|x| x.member == m).unwrap_or_else(|| panic!("no member {m}"))
}

const HEAD: &str = r#"
name = "t"
seed = 7
duration_s = 60
[traffic]
rate_rps = 1000
arrival = "constant"
clients = 50000
client_zipf = 0
uris = 50000
uri_zipf = 0
service_time_ms = { dist = "fixed", value = 1 }
"#;

fn channel(strategy: u8, members: &str, extra: &str) -> String {
    format!(
        r#"{HEAD}
[channel]
name = "ch_test"
port = 80
balance_strategy = {strategy}
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{members}]
{extra}
"#
    )
}

const THREE: &str =
    r#"{ host = "10.0.0.1", weight = 3 }, { host = "10.0.0.2", weight = 2 }, { host = "10.0.0.3", weight = 1 }"#;

#[test]
fn same_seed_gives_byte_identical_json() {
    let sc = Scenario::load(std::path::Path::new("scenarios/quickstart.toml")).unwrap();
    for s in [Strategy::Wlc, Strategy::SourceIp] {
        let a = serde_json::to_string(&sim(&sc, s)).unwrap();
        let b = serde_json::to_string(&sim(&sc, s)).unwrap();
        assert_eq!(a, b);
        assert!(!a.contains("wall_ms"));
    }
}

#[test]
fn wrr_shares_are_exact_within_one_request_per_cycle() {
    let r = sim(&scenario(&channel(1, THREE, "")), Strategy::Wrr);
    let n = r.requests.total as f64;
    for (m, w) in [("10.0.0.1:80", 3.0), ("10.0.0.2:80", 2.0), ("10.0.0.3:80", 1.0)] {
        let got = member(&r, m).requests as f64;
        assert!((got - n * w / 6.0).abs() <= 1.0, "{m}: {got} of {n}");
        assert!((member(&r, m).expected_share - w / 6.0).abs() < 1e-9);
    }
}

#[test]
fn wlc_shares_follow_weights_with_uniform_service_times() {
    // 50 ms per request at 1000 rps: about 50 in flight, which WLC spreads by weight, so that
    // request shares (equal service times) follow weights.
    let text = channel(2, THREE, "").replace(r#"{ dist = "fixed", value = 1 }"#, r#"{ dist = "fixed", value = 50 }"#);
    let r = sim(&scenario(&text), Strategy::Wlc);
    let n = r.requests.total as f64;
    for (m, w) in [("10.0.0.1:80", 3.0), ("10.0.0.2:80", 2.0), ("10.0.0.3:80", 1.0)] {
        let share = member(&r, m).requests as f64 / n;
        assert!((share - w / 6.0).abs() < 0.01, "{m}: {share}");
    }
}

#[test]
fn hash_request_shares_follow_key_space_shares() {
    for s in [Strategy::SourceIp, Strategy::UriHash] {
        let r = sim(&scenario(&channel(3, THREE, "")), s);
        let hash = r.hash.as_ref().expect("hash block");
        assert!(hash.keys > 30_000, "{} distinct keys", hash.keys);
        for m in &r.members {
            assert!(
                (m.share - m.expected_share).abs() < 0.01,
                "{s}: {} share {} vs key space {}",
                m.member,
                m.share,
                m.expected_share
            );
        }
        // The key-space share follows the weight share (HRW, architecture.md §3).
        assert!((member(&r, "10.0.0.1:80").expected_share - 0.5).abs() < 0.01);
    }
}

fn fault_scenario(strategy: u8, retries: u32) -> String {
    let extra = r#"
vpc_health_config = { protocol = "HTTP", path = "/h", threshold_normal = 2, threshold_abnormal = 3, time_interval = 5, timeout = 2, http_code = "200" }
[[faults]]
member = "10.0.0.2:80"
kind = "down"
at_s = 20
until_s = 40
"#;
    channel(strategy, THREE, extra).replace("service_time_ms", &format!("retries = {retries}\nservice_time_ms"))
}

#[test]
fn a_down_fault_is_detected_within_the_threshold_window_and_recovers() {
    for s in Strategy::ALL {
        let r = sim(&scenario(&fault_scenario(1, 0)), s);
        let f = &r.faults[0];
        let d = f.detected_at_s.expect("detected");
        // threshold_abnormal = 3, time_interval = 5, timeout = 2.
        assert!((20.0 + 2.0 * 5.0..=20.0 + 3.0 * 5.0 + 2.0).contains(&d), "{s}: detected at {d}");
        let rec = f.recovered_at_s.expect("recovered");
        assert!((40.0 + 5.0..=40.0 + 2.0 * 5.0 + 0.01).contains(&rec), "{s}: recovered at {rec}");
        // Without retries, the requests sent to it between failure and detection fail, counted.
        assert!(f.failed_requests > 0);
        assert_eq!(r.requests.failed, f.failed_requests, "{s}");
        // Refused from the fault's start; the one in service when it went down is reset.
        let by = &r.requests.failed_by_reason;
        assert_eq!(by.get("refused").copied().unwrap_or(0) + by.get("reset").copied().unwrap_or(0), f.failed_requests);
        assert!(by.get("reset").copied().unwrap_or(0) <= 1, "{by:?}");
        let h = &member(&r, "10.0.0.2:80").health;
        assert_eq!(h.iter().map(|p| p.state.as_str()).collect::<Vec<_>>(), ["healthy", "unhealthy", "healthy"]);
    }
}

#[test]
fn retries_rescue_the_requests_a_failed_member_refuses() {
    for s in Strategy::ALL {
        let r = sim(&scenario(&fault_scenario(1, 1)), s);
        assert_eq!(r.requests.failed, 0, "{s}");
        assert_eq!(r.requests.retried, r.faults[0].failed_requests, "{s}");
    }
}

#[test]
fn hash_strategies_report_remapped_and_returned_key_space() {
    let r = sim(&scenario(&fault_scenario(3, 0)), Strategy::SourceIp);
    let h = r.hash.unwrap();
    // The failed member owns a third of the key space (weight 2 of 6).
    assert!((h.remapped_on_fault.unwrap() - 1.0 / 3.0).abs() < 0.01, "{h:?}");
    assert_eq!(h.remapped_on_fault, h.returned_on_recovery);
    assert!(sim(&scenario(&fault_scenario(1, 0)), Strategy::Wrr).hash.is_none());
}

#[test]
fn backups_serve_only_while_no_primary_is_eligible() {
    let members = r#"{ host = "10.0.0.1" }, { host = "10.0.0.2", is_backup = true }"#;
    let extra = r#"
vpc_health_config = { protocol = "TCP", threshold_normal = 1, threshold_abnormal = 1, time_interval = 2, timeout = 1 }
[[faults]]
member = "10.0.0.1:80"
kind = "down"
at_s = 20
until_s = 30
"#;
    for s in Strategy::ALL {
        let r = sim(&scenario(&channel(1, members, extra)), s);
        let d = r.faults[0].detected_at_s.unwrap();
        let back = r.faults[0].recovered_at_s.unwrap();
        for w in &r.timeline {
            let backup = w.per_member["10.0.0.2:80"];
            if w.t_s + 1.0 <= d || w.t_s >= back {
                assert_eq!(backup, 0, "{s}: backup served at {} (detected {d}, back {back})", w.t_s);
            }
            if w.t_s >= d && w.t_s + 1.0 <= back {
                assert_eq!(w.per_member["10.0.0.1:80"], 0, "{s}: primary served while down at {}", w.t_s);
                assert!(backup > 900, "{s}: backup idle at {}", w.t_s);
            }
        }
    }
}

#[test]
fn endpoint_group_dials_split_traffic_within_one_point() {
    let text = format!(
        r#"{HEAD}
[[endpoint_groups]]
endpoint_group = {{ name = "eg-a", region_id = "ap-southeast-1", traffic_dial_percentage = 30, listeners = [ {{ id = "l1" }} ] }}
channel = {{ name = "ch_a", port = 80, balance_strategy = 1, member_type = "ip", instance_ids = ["i1"], members = [ {{ host = "10.0.1.1" }} ] }}
[[endpoint_groups]]
endpoint_group = {{ name = "eg-b", region_id = "eu-west-101", traffic_dial_percentage = 70, listeners = [ {{ id = "l1" }} ] }}
channel = {{ name = "ch_b", port = 80, balance_strategy = 1, member_type = "ip", instance_ids = ["i1"], members = [ {{ host = "10.0.2.1" }}, {{ host = "10.0.2.2" }} ] }}
"#
    )
    .replace("duration_s = 60", "duration_s = 100");
    let r = sim(&scenario(&text), Strategy::Wrr);
    assert_eq!(r.requests.total, 100_000);
    let eg = &r.endpoint_groups;
    assert_eq!(eg.len(), 2);
    assert!((eg[0].share - 0.30).abs() < 0.01 && (eg[1].share - 0.70).abs() < 0.01, "{eg:?}");
    assert!((member(&r, "10.0.1.1:80").expected_share - 0.30).abs() < 1e-9);
}

#[test]
fn protection_group_failover_moves_all_traffic_to_the_target_az() {
    let members = r#"{ host = "10.0.0.1" }, { host = "10.0.0.2" }, { host = "10.0.0.3" }, { host = "10.0.0.4" }"#;
    let extra = r#"
[[backends]]
member = "10.0.0.1:80"
az = "AZ01"
[[backends]]
member = "10.0.0.2:80"
az = "AZ01"
[[backends]]
member = "10.0.0.3:80"
az = "AZ02"
[[backends]]
member = "10.0.0.4:80"
az = "AZ02"
[[faults]]
az = "AZ01"
kind = "az_down"
at_s = 20
[protection_group]
server_group = { name = "pg1", source_availability_zone = "AZ01", target_availability_zone = "AZ02", domain_id = "fb4bb8e3-a574-4437-a156-78c916aeea4d", source_vpc_id = "046852ef-c49d-409b-8389-546aaaa5701f", dr_type = "migration" }
failover_s = 10
"#;
    let r = sim(&scenario(&channel(1, members, extra)), Strategy::Wrr);
    let pg = r.protection_group.as_ref().unwrap();
    assert_eq!((pg.started_at_s, pg.finished_at_s, pg.status.as_str()), (Some(20.0), Some(30.0), "failed_over"));
    assert_eq!(pg.job_id.as_ref().map(String::len), Some(32));
    // Every request of the 10 s job fails (no retries, no check), plus the one in service when
    // the AZ went down (reset).
    assert!((10_000..=10_001).contains(&pg.failed_requests), "{}", pg.failed_requests);
    for w in &r.timeline {
        let (a, b) = (
            w.per_member["10.0.0.1:80"] + w.per_member["10.0.0.2:80"],
            w.per_member["10.0.0.3:80"] + w.per_member["10.0.0.4:80"],
        );
        if w.t_s < 30.0 {
            assert_eq!(b, 0, "target AZ stands by at {}", w.t_s);
        } else {
            assert_eq!(a, 0, "source AZ takes nothing after failover at {}", w.t_s);
            assert_eq!(b, 1000);
        }
    }
    assert_eq!(r.faults[0].member, None);
    assert_eq!(r.faults[0].az.as_deref(), Some("AZ01"));
}

#[test]
fn member_group_upsert_change_shifts_traffic_at_its_time() {
    let members =
        r#"{ host = "10.0.0.1", member_group_name = "blue" }, { host = "10.0.0.2", member_group_name = "green" }"#;
    let extra = r#"
member_groups = [ { member_group_name = "blue", member_group_weight = 1 }, { member_group_name = "green", member_group_weight = 3 } ]
[[changes]]
at_s = 30
member_groups = [ { member_group_name = "green", member_group_weight = 1 }, { member_group_name = "green", member_group_weight = 9 } ]
"#;
    let r = sim(&scenario(&channel(1, members, extra)), Strategy::Wrr);
    for w in &r.timeline {
        let (b, g) = (w.per_member["10.0.0.1:80"], w.per_member["10.0.0.2:80"]);
        if w.t_s < 30.0 {
            assert_eq!((b, g), (250, 750), "at {}", w.t_s);
        } else {
            assert_eq!((b, g), (500, 500), "first definition wins, at {}", w.t_s);
        }
    }
}

#[test]
fn backup_mode_and_panic_threshold_reach_the_simulator() {
    let members = r#"{ host = "10.0.0.1" }, { host = "10.0.0.2" }, { host = "10.0.0.3", is_backup = true }, { host = "10.0.0.4", is_backup = true }"#;
    let extra = r#"
vpc_health_config = { protocol = "TCP", threshold_normal = 1, threshold_abnormal = 1, time_interval = 2, timeout = 1 }
[[faults]]
member = "10.0.0.1:80"
kind = "down"
at_s = 10
[[faults]]
member = "10.0.0.2:80"
kind = "down"
at_s = 10
"#;
    let text = channel(1, members, extra);
    let all = sim(&scenario(&text), Strategy::Wrr);
    let first =
        sim(&scenario(&text.replace("[traffic]", "[balancer]\nbackup_mode = \"first\"\n[traffic]")), Strategy::Wrr);
    assert!(member(&all, "10.0.0.3:80").requests > 20_000 && member(&all, "10.0.0.4:80").requests > 20_000);
    assert!(member(&first, "10.0.0.3:80").requests > 40_000);
    assert_eq!(member(&first, "10.0.0.4:80").requests, 0, "only the first eligible backup serves");

    // Panic: without backups, both primaries down and threshold 60%: traffic keeps going to
    // both (and fails, refused) instead of failing with no_member.
    let primaries = r#"{ host = "10.0.0.1" }, { host = "10.0.0.2" }"#;
    let text = channel(1, primaries, extra).replace("[traffic]", "[balancer]\npanic_threshold = 60\n[traffic]");
    let r = sim(&scenario(&text), Strategy::Wrr);
    assert_eq!(r.requests.failed_by_reason.get("no_member"), None);
    assert!(r.requests.failed_by_reason.get("refused").copied().unwrap_or(0) > 45_000);
    let off = sim(&scenario(&channel(1, primaries, extra)), Strategy::Wrr);
    assert!(off.requests.failed_by_reason.get("no_member").copied().unwrap_or(0) > 45_000);
}
