//! The `model` module against the cloud APIs: the API documents' example bodies are accepted, every validation
//! rule rejects a bad value with the right code and path, and all problems are reported at once.

use lbsim::model::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers

fn example_text(name: &str) -> String {
    let path = format!("{}/tests/data/api_examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn example(name: &str) -> Value {
    serde_json::from_str(&example_text(name)).unwrap()
}

/// The value that, in a mutation, removes the field instead of setting it.
const DEL: &str = "\u{0}delete";

/// Sets (or, with [`DEL`], removes) the value at a JSON pointer. An array index equal to the
/// array's length appends.
fn set(v: &mut Value, pointer: &str, new: Value) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let parent = v.pointer_mut(parent).unwrap_or_else(|| panic!("no parent for {pointer}"));
    let delete = new == json!(DEL);
    match parent {
        Value::Object(m) if delete => {
            m.remove(last);
        }
        Value::Object(m) => {
            m.insert(last.to_string(), new);
        }
        Value::Array(a) => {
            let i: usize = last.parse().unwrap();
            if delete {
                a.remove(i);
            } else if i == a.len() {
                a.push(new);
            } else {
                a[i] = new;
            }
        }
        _ => panic!("{pointer}: parent is not a container"),
    }
}

fn mutated<S: AsRef<str>>(base: &Value, muts: &[(S, Value)]) -> Value {
    let mut v = base.clone();
    for (p, new) in muts {
        set(&mut v, p.as_ref(), new.clone());
    }
    v
}

/// Parses and validates a body given as a value; the errors (empty when it is accepted).
fn errors_of<T: Validate + DeserializeOwned>(v: &Value) -> ValidationErrors {
    match parse_body::<T>(&v.to_string()) {
        Ok(_) => ValidationErrors::default(),
        Err(e) => e,
    }
}

/// Applies mutations to a valid base body; the errors.
fn errors<T: Validate + DeserializeOwned>(base: &Value, muts: &[(impl AsRef<str>, Value)]) -> ValidationErrors {
    errors_of::<T>(&mutated(base, muts))
}

/// One rule: mutations of the base, and the single `(code, path)` expected (`None`: accepted).
struct Case {
    muts: Vec<(String, Value)>,
    expect: Option<(&'static str, &'static str)>,
}

fn owned<S: AsRef<str>>(muts: &[(S, Value)]) -> Vec<(String, Value)> {
    muts.iter().map(|(p, v)| (p.as_ref().to_string(), v.clone())).collect()
}

fn bad<S: AsRef<str>>(muts: &[(S, Value)], code: &'static str, path: &'static str) -> Case {
    Case { muts: owned(muts), expect: Some((code, path)) }
}

fn good<S: AsRef<str>>(muts: &[(S, Value)]) -> Case {
    Case { muts: owned(muts), expect: None }
}

/// Runs every case and reports all the failing ones together.
fn check<T: Validate + DeserializeOwned>(base: &Value, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let errs = errors::<T>(base, &case.muts);
        let got: Vec<(&str, &str)> = errs.errors.iter().map(|e| (e.code, e.path.as_str())).collect();
        let want: Vec<(&str, &str)> = case.expect.into_iter().collect();
        if got != want {
            failures.push(format!("{:?}\n    want {want:?}\n    got  {got:?}\n    {errs}", case.muts));
        }
        for e in &errs.errors {
            if e.message.is_empty() || e.message.contains(&e.path) && !e.path.is_empty() {
                failures.push(format!("{:?}: message {:?} should say what is wrong without the path", case.muts, e));
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

fn long(n: usize) -> Value {
    json!("a".repeat(n))
}

fn channel() -> Value {
    example("001_vpc_channel.json")
}

/// The create-VPC-channel example made a CSE microservice channel.
fn microservice_channel() -> Value {
    mutated(
        &channel(),
        &[
            ("/vpc_channel_type", json!("microservice")),
            (
                "/microservice_info",
                json!({"service_type": "CSE", "cse_info": {"engine_id": "eng-1", "service_id": "svc-1"}}),
            ),
        ],
    )
}

/// The create-VPC-channel example with a Nacos registry (and no group weights, which Nacos forbids).
fn nacos_channel() -> Value {
    mutated(
        &channel(),
        &[
            ("/vpc_channel_type", json!("microservice")),
            ("/member_groups/0/member_group_weight", json!(DEL)),
            ("/member_groups/1/member_group_weight", json!(DEL)),
            (
                "/microservice_info",
                json!({"service_type": "NACOS", "nacos_info": {
                    "namespace": "ns-1", "cluster_name": "DEFAULT", "group_name": "DEFAULT_GROUP",
                    "service_name": "orders",
                    "server_config": [{"ip_address": "10.0.0.1", "port": 8848, "grpc_port": 9848}],
                    "user_info": {"user_name": "nacos", "password": "secret"}}}),
            ),
        ],
    )
}

fn cce_channel() -> Value {
    mutated(
        &microservice_channel(),
        &[(
            "/microservice_info",
            json!({"service_type": "CCE", "cce_info": {
                "cluster_id": "c1", "namespace": "default", "workload_type": "deployment",
                "app_name": "应用.app-1", "label_key": "app.kubernetes.io/name(x):y", "label_value": "orders_v1"},
            "cce_service_info": {"cluster_id": "c1", "namespace": "prod-1", "service_name": "orders.svc"}}),
        )],
    )
}

// ---------------------------------------------------------------------------------------------
// The API documents' own examples

#[test]
fn api_examples_parse_and_validate() {
    let groups: MemberGroupsBody = parse_body(&example_text("000_member_groups.json")).unwrap();
    assert_eq!(groups.member_groups[0].member_group_weight, Some(10));

    let micro: MemberGroupsBody = parse_body(&example_text("000_member_groups_microservice.json")).unwrap();
    assert_eq!(micro.member_groups[0].microservice_version.as_deref(), Some("v1"));
    assert_eq!(micro.member_groups[0].microservice_port, Some(80));

    let ch: VpcChannel = parse_body(&example_text("001_vpc_channel.json")).unwrap();
    assert_eq!(ch.vpc_health_config.as_ref().unwrap().protocol, CheckProtocol::Http);
    assert_eq!(ch.members.len(), 2);
    assert_eq!(ch.instance_ids.len(), 2);

    let zs: BackendServersBody = parse_body(&example_text("002_backendservers.json")).unwrap();
    assert_eq!(zs.params.servers[0]["192.168.1.1"], "20");

    let ga: EndpointGroupBody = parse_body(&example_text("003_endpoint_group.json")).unwrap();
    assert_eq!(ga.endpoint_group.traffic_dial_percentage, Some(10));

    let sdrs: ProtectionGroupBody = parse_body(&example_text("004_protection_group.json")).unwrap();
    assert_eq!(sdrs.server_group.dr_type, Some(DrType::Migration));
}

#[test]
fn derived_valid_bases_are_valid() {
    for (name, v) in [("microservice", microservice_channel()), ("nacos", nacos_channel()), ("cce", cce_channel())] {
        let errs = errors_of::<VpcChannel>(&v);
        assert!(errs.is_empty(), "{name}: {errs}");
    }
}

// ---------------------------------------------------------------------------------------------
// The create-VPC-channel API: channel fields

#[test]
fn channel_fields() {
    let ids: Vec<String> = (0..11).map(|i| format!("inst{i}")).collect();
    check::<VpcChannel>(
        &channel(),
        &[
            bad(&[("/name", json!(""))], "APIG.2001", "name"),
            bad(&[("/name", json!("ab"))], "APIG.2011", "name"),
            bad(&[("/name", long(65))], "APIG.2011", "name"),
            bad(&[("/name", json!("1abc"))], "APIG.2011", "name"),
            bad(&[("/name", json!("_abc"))], "APIG.2011", "name"),
            bad(&[("/name", json!("abc def"))], "APIG.2011", "name"),
            bad(&[("/name", json!("abc/def"))], "APIG.2011", "name"),
            good(&[("/name", json!("通道_demo-1.v2"))]),
            good(&[("/name", long(64))]),
            good(&[("/name", json!("abc"))]),
            bad(&[("/port", json!(0))], "APIG.2011", "port"),
            bad(&[("/port", json!(65536))], "APIG.2011", "port"),
            good(&[("/port", json!(65535))]),
            bad(&[("/balance_strategy", json!(0))], "APIG.2011", "balance_strategy"),
            bad(&[("/balance_strategy", json!(5))], "APIG.2011", "balance_strategy"),
            good(&[("/balance_strategy", json!(4))]),
            bad(&[("/type", json!(1))], "APIG.2011", "type"),
            bad(&[("/type", json!(4))], "APIG.2011", "type"),
            good(&[("/type", json!(2))]),
            good(&[("/type", json!(0)), ("/vpc_channel_type", json!("builtin"))]),
            bad(&[("/type", json!(2)), ("/vpc_channel_type", json!("builtin"))], "APIG.2012", "vpc_channel_type"),
            bad(&[("/dict_code", json!("ab"))], "APIG.2011", "dict_code"),
            bad(&[("/dict_code", long(65))], "APIG.2011", "dict_code"),
            bad(&[("/dict_code", json!("ab.c"))], "APIG.2011", "dict_code"),
            good(&[("/dict_code", json!("dict-code_1"))]),
            bad(&[("/instance_ids", json!([]))], "APIG.2001", "instance_ids"),
            bad(&[("/instance_ids", json!(ids))], "APIG.2011", "instance_ids"),
            good(&[("/instance_ids", json!(ids[..10]))]),
            bad(&[("/instance_ids", json!(["a", ""]))], "APIG.2001", "instance_ids[1]"),
            bad(&[("/instance_ids", json!(["a", "b", "a"]))], "APIG.2012", "instance_ids[2]"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Member groups, in a channel and in an add-or-update-member-groups body

/// Appends a third group to the create-VPC-channel example (no member refers to it).
fn group(g: Value) -> (&'static str, Value) {
    ("/member_groups/2", g)
}

#[test]
fn member_groups_in_a_channel() {
    let labels = json!([{"label_name": "zone", "label_value": "a1"}, {"label_name": "app.v-1_x", "label_value": "x"}]);
    check::<VpcChannel>(
        &channel(),
        &[
            bad(&[group(json!({"member_group_name": ""}))], "APIG.2001", "member_groups[2].member_group_name"),
            bad(&[group(json!({"member_group_name": "ab"}))], "APIG.2011", "member_groups[2].member_group_name"),
            bad(&[group(json!({"member_group_name": long(65)}))], "APIG.2011", "member_groups[2].member_group_name"),
            bad(&[group(json!({"member_group_name": "9abc"}))], "APIG.2011", "member_groups[2].member_group_name"),
            bad(&[group(json!({"member_group_name": "abc$"}))], "APIG.2011", "member_groups[2].member_group_name"),
            good(&[group(json!({"member_group_name": "组_a.b-c"}))]),
            bad(
                &[group(json!({"member_group_name": "grp3", "member_group_weight": 101}))],
                "APIG.2011",
                "member_groups[2].member_group_weight",
            ),
            bad(
                &[group(json!({"member_group_name": "grp3", "member_group_weight": -1}))],
                "APIG.2011",
                "member_groups[2].member_group_weight",
            ),
            good(&[group(json!({"member_group_name": "grp3", "member_group_weight": 0}))]),
            good(&[group(json!({"member_group_name": "grp3", "member_group_weight": 100}))]),
            bad(
                &[group(json!({"member_group_name": "grp3", "dict_code": "x"}))],
                "APIG.2011",
                "member_groups[2].dict_code",
            ),
            bad(
                &[group(json!({"member_group_name": "grp3", "dict_code": "a b c"}))],
                "APIG.2011",
                "member_groups[2].dict_code",
            ),
            // Microservice fields on a server (builtin) channel.
            bad(
                &[group(json!({"member_group_name": "grp3", "microservice_version": "v1"}))],
                "APIG.2011",
                "member_groups[2].microservice_version",
            ),
            bad(
                &[group(json!({"member_group_name": "grp3", "microservice_port": 80}))],
                "APIG.2011",
                "member_groups[2].microservice_port",
            ),
            bad(
                &[group(json!({"member_group_name": "grp3", "microservice_labels": labels}))],
                "APIG.2011",
                "member_groups[2].microservice_labels",
            ),
            bad(
                &[("/type", json!(3)), group(json!({"member_group_name": "grp3", "microservice_version": "v1"}))],
                "APIG.2011",
                "member_groups[2].microservice_version",
            ),
            // What the API itself echoes for "not set" is accepted anywhere.
            good(&[group(json!({"member_group_name": "grp3", "microservice_version": "", "microservice_port": 0}))]),
            // type=3 with microservice_info is a microservice channel.
            good(&[
                ("/type", json!(3)),
                (
                    "/microservice_info",
                    json!({"service_type": "CSE", "cse_info": {"engine_id": "e", "service_id": "s"}}),
                ),
                group(
                    json!({"member_group_name": "grp3", "microservice_version": "v1", "microservice_labels": labels}),
                ),
            ]),
            // reference_vpc_channel_id only on a reference channel.
            bad(
                &[group(json!({"member_group_name": "grp3", "reference_vpc_channel_id": "abc"}))],
                "APIG.2011",
                "member_groups[2].reference_vpc_channel_id",
            ),
            bad(
                &[
                    ("/vpc_channel_type", json!("microservice")),
                    (
                        "/microservice_info",
                        json!({"service_type": "CSE", "cse_info": {"engine_id": "e", "service_id": "s"}}),
                    ),
                    group(json!({"member_group_name": "grp3", "reference_vpc_channel_id": "abc"})),
                ],
                "APIG.2011",
                "member_groups[2].reference_vpc_channel_id",
            ),
            good(&[
                ("/vpc_channel_type", json!("reference")),
                group(json!({"member_group_name": "grp3", "reference_vpc_channel_id": "abc"})),
            ]),
        ],
    );
}

#[test]
fn member_groups_on_a_microservice_channel() {
    let lb = |name: Value, value: Value| {
        group(json!({"member_group_name": "grp3", "microservice_version": "v2",
        "microservice_port": 8080, "microservice_labels": [{"label_name": "ok", "label_value": "ok"},
        {"label_name": name, "label_value": value}]}))
    };
    check::<VpcChannel>(
        &microservice_channel(),
        &[
            good(&[lb(json!("app.v-1_x"), json!("Z9"))]),
            good(&[lb(long(63), json!("a"))]),
            bad(&[lb(json!(""), json!("a"))], "APIG.2001", "member_groups[2].microservice_labels[1].label_name"),
            bad(&[lb(long(64), json!("a"))], "APIG.2011", "member_groups[2].microservice_labels[1].label_name"),
            bad(&[lb(json!("-a"), json!("a"))], "APIG.2011", "member_groups[2].microservice_labels[1].label_name"),
            bad(&[lb(json!("a-"), json!("a"))], "APIG.2011", "member_groups[2].microservice_labels[1].label_name"),
            bad(&[lb(json!("a b"), json!("a"))], "APIG.2011", "member_groups[2].microservice_labels[1].label_name"),
            bad(&[lb(json!("a"), json!(""))], "APIG.2001", "member_groups[2].microservice_labels[1].label_value"),
            bad(&[lb(json!("a"), json!("_v"))], "APIG.2011", "member_groups[2].microservice_labels[1].label_value"),
            bad(&[lb(json!("a"), json!("v."))], "APIG.2011", "member_groups[2].microservice_labels[1].label_value"),
            bad(&[lb(json!("a"), json!("v:1"))], "APIG.2011", "member_groups[2].microservice_labels[1].label_value"),
            bad(&[lb(json!("a"), long(64))], "APIG.2011", "member_groups[2].microservice_labels[1].label_value"),
            bad(
                &[group(json!({"member_group_name": "grp3", "microservice_port": 65536}))],
                "APIG.2011",
                "member_groups[2].microservice_port",
            ),
            bad(
                &[group(json!({"member_group_name": "grp3", "microservice_port": -1}))],
                "APIG.2011",
                "member_groups[2].microservice_port",
            ),
        ],
    );
}

#[test]
fn nacos_forbids_group_weights() {
    let base = nacos_channel();
    check::<VpcChannel>(
        &base,
        &[bad(
            &[("/member_groups/1/member_group_weight", json!(5))],
            "APIG.2011",
            "member_groups[1].member_group_weight",
        )],
    );
    let errs = errors::<VpcChannel>(&base, &[("/member_groups/0/member_group_weight", json!(5))]);
    assert!(errs.errors[0].message.contains("cannot be set manually for NACOS"), "{errs}");
}

#[test]
fn member_groups_body() {
    let base = example("000_member_groups.json");
    let g = |v: Value| ("/member_groups/0", v);
    check::<MemberGroupsBody>(
        &base,
        &[
            bad(&[g(json!({"member_group_name": ""}))], "APIG.2001", "member_groups[0].member_group_name"),
            bad(&[g(json!({"member_group_name": "x!"}))], "APIG.2011", "member_groups[0].member_group_name"),
            bad(
                &[("/member_groups/0/member_group_weight", json!(101))],
                "APIG.2011",
                "member_groups[0].member_group_weight",
            ),
            bad(&[("/member_groups/0/dict_code", json!("ab"))], "APIG.2011", "member_groups[0].dict_code"),
            bad(&[("/member_groups/0/port", json!(65536))], "APIG.2011", "member_groups[0].microservice_port"),
            bad(
                &[("/member_groups/0/microservice_labels", json!([{"label_name": "ok", "label_value": "bad!"}]))],
                "APIG.2011",
                "member_groups[0].microservice_labels[0].label_value",
            ),
            // No channel here: microservice and reference fields are not restricted.
            good(&[
                ("/member_groups/0/microservice_labels", json!([{"label_name": "k", "label_value": "v"}])),
                ("/member_groups/0/reference_vpc_channel_id", json!("abc")),
            ]),
            good(&[("/member_groups", json!([]))]),
        ],
    );
}

#[test]
fn duplicate_member_group_names_keep_the_first_definition() {
    let v = mutated(&channel(), &[group(json!({"member_group_name": "test", "member_group_weight": 50}))]);
    let ch: VpcChannel = parse_body(&v.to_string()).unwrap();
    let eff = ch.effective_member_groups();
    assert_eq!(eff.len(), 2);
    assert_eq!(eff[0].member_group_name, "test");
    assert_eq!(eff[0].member_group_weight, Some(1));

    let body = json!({"member_groups": [
        {"member_group_name": "grp", "member_group_weight": 10},
        {"member_group_name": "other", "member_group_weight": 20},
        {"member_group_name": "grp", "member_group_weight": 30}]});
    let b: MemberGroupsBody = parse_body(&body.to_string()).unwrap();
    let eff = b.effective();
    assert_eq!(eff.iter().map(|g| g.member_group_weight).collect::<Vec<_>>(), [Some(10), Some(20)]);
}

// ---------------------------------------------------------------------------------------------
// Members

#[test]
fn ip_members() {
    check::<VpcChannel>(
        &channel(),
        &[
            bad(&[("/members/0/weight", json!(101))], "APIG.2011", "members[0].weight"),
            bad(&[("/members/0/weight", json!(-1))], "APIG.2011", "members[0].weight"),
            good(&[("/members/0/weight", json!(0))]),
            bad(&[("/members/0/port", json!(65536))], "APIG.2011", "members[0].port"),
            bad(&[("/members/0/port", json!(-1))], "APIG.2011", "members[0].port"),
            good(&[("/members/0/port", json!(0))]),
            bad(&[("/members/0/status", json!(3))], "APIG.2011", "members[0].status"),
            bad(&[("/members/0/status", json!(0))], "APIG.2011", "members[0].status"),
            good(&[("/members/0/status", json!(2))]),
            bad(&[("/members/0/member_group_name", json!("nope"))], "APIG.3030", "members[0].member_group_name"),
            good(&[("/members/0/member_group_name", json!(DEL))]),
            bad(&[("/members/1/host", json!(DEL))], "APIG.2001", "members[1].host"),
            bad(&[("/members/1/host", json!(""))], "APIG.2001", "members[1].host"),
            bad(&[("/members/1/host", json!("bad host"))], "APIG.2011", "members[1].host"),
            bad(&[("/members/1/host", json!("a..b"))], "APIG.2011", "members[1].host"),
            bad(&[("/members/1/host", json!("host_1.example.com"))], "APIG.2011", "members[1].host"),
            bad(&[("/members/1/host", json!(format!("{}.com", "a".repeat(250))))], "APIG.2011", "members[1].host"),
            bad(&[("/members/1/host", json!("192.168.1.256"))], "APIG.2011", "members[1].host"),
            bad(&[("/members/1/host", json!("8080"))], "APIG.2011", "members[1].host"),
            good(&[("/members/1/host", json!("backend-1.example.com"))]),
            good(&[("/members/1/host", json!("localhost"))]),
            good(&[("/members/1/host", json!("fe80::1"))]),
            // Identity is host:port, port 0 or absent meaning the channel's port (22).
            bad(&[("/members/1/host", json!("192.168.0.5"))], "APIG.2012", "members[1]"),
            bad(
                &[("/members/1/host", json!("192.168.0.5")), ("/members/1/port", json!(22))],
                "APIG.2012",
                "members[1]",
            ),
            bad(&[("/members/1/host", json!("192.168.0.5")), ("/members/0/port", json!(0))], "APIG.2012", "members[1]"),
            good(&[("/members/1/host", json!("192.168.0.5")), ("/members/1/port", json!(23))]),
            bad(
                &[("/members/0/host", json!("Api.Example.com")), ("/members/1/host", json!("api.example.com"))],
                "APIG.2012",
                "members[1]",
            ),
        ],
    );
}

#[test]
fn ecs_members() {
    let base = mutated(
        &channel(),
        &[
            ("/member_type", json!("ECS")),
            ("/members/0", json!({"ecs_id": "ecs-1_a", "ecs_name": "web.1", "member_group_name": "test"})),
            ("/members/1", json!({"ecs_id": "ecs-2", "ecs_name": "web-2", "port": 8080})),
        ],
    );
    check::<VpcChannel>(
        &base,
        &[
            good::<&str>(&[]),
            bad(&[("/members/0/ecs_id", json!(DEL))], "APIG.2001", "members[0].ecs_id"),
            bad(&[("/members/0/ecs_id", json!(""))], "APIG.2001", "members[0].ecs_id"),
            bad(&[("/members/0/ecs_id", json!("ecs.1"))], "APIG.2011", "members[0].ecs_id"),
            bad(&[("/members/0/ecs_id", long(65))], "APIG.2011", "members[0].ecs_id"),
            bad(&[("/members/0/ecs_name", json!(DEL))], "APIG.2001", "members[0].ecs_name"),
            bad(&[("/members/0/ecs_name", json!("web/1"))], "APIG.2011", "members[0].ecs_name"),
            bad(&[("/members/0/ecs_name", long(65))], "APIG.2011", "members[0].ecs_name"),
            bad(&[("/members/1/ecs_id", json!("ecs-1_a")), ("/members/1/port", json!(22))], "APIG.2012", "members[1]"),
            good(&[("/members/1/ecs_id", json!("ecs-1_a"))]),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// vpc_health_config

#[test]
fn health_config() {
    const H: &str = "/vpc_health_config";
    let p = |f: &str| -> String { format!("{H}/{f}") };
    check::<VpcChannel>(
        &channel(),
        &[
            bad(&[(p("path"), json!(DEL))], "APIG.2001", "vpc_health_config.path"),
            bad(&[(p("path"), json!(""))], "APIG.2001", "vpc_health_config.path"),
            bad(&[(p("protocol"), json!("HTTPS")), (p("path"), json!(DEL))], "APIG.2001", "vpc_health_config.path"),
            bad(&[(p("path"), json!("vpc/demo"))], "APIG.2011", "vpc_health_config.path"),
            good(&[(p("protocol"), json!("tcp")), (p("path"), json!(DEL)), (p("http_code"), json!(DEL))]),
            bad(&[(p("port"), json!(65536))], "APIG.2011", "vpc_health_config.port"),
            bad(&[(p("port"), json!(-1))], "APIG.2011", "vpc_health_config.port"),
            good(&[(p("port"), json!(0))]),
            bad(&[(p("threshold_normal"), json!(0))], "APIG.2011", "vpc_health_config.threshold_normal"),
            bad(&[(p("threshold_abnormal"), json!(0))], "APIG.2011", "vpc_health_config.threshold_abnormal"),
            bad(&[(p("time_interval"), json!(0))], "APIG.2011", "vpc_health_config.time_interval"),
            bad(&[(p("timeout"), json!(0))], "APIG.2011", "vpc_health_config.timeout"),
            bad(&[(p("timeout"), json!(10))], "APIG.2011", "vpc_health_config.timeout"),
            bad(&[(p("timeout"), json!(11))], "APIG.2011", "vpc_health_config.timeout"),
            good(&[(p("timeout"), json!(9))]),
            bad(&[(p("http_code"), json!(DEL))], "APIG.2001", "vpc_health_config.http_code"),
            bad(&[(p("http_code"), json!("600"))], "APIG.2011", "vpc_health_config.http_code"),
            bad(&[(p("http_code"), json!("200,abc"))], "APIG.2011", "vpc_health_config.http_code"),
            good(&[(p("http_code"), json!("201,202,210-299"))]),
            bad(&[(p("status"), json!(3))], "APIG.2011", "vpc_health_config.status"),
            good(&[(p("status"), json!(2))]),
        ],
    );
}

#[test]
fn health_config_messages() {
    let errs = errors::<VpcChannel>(&channel(), &[("/vpc_health_config/timeout", json!(12))]);
    let msg = &errs.at("vpc_health_config.timeout").unwrap().message;
    assert!(msg.contains("12") && msg.contains("10") && msg.contains("time_interval"), "{msg}");

    let errs = errors::<VpcChannel>(&channel(), &[("/vpc_health_config/http_code", json!("200-600"))]);
    let want = HttpCodes::parse("200-600").unwrap_err();
    assert_eq!(errs.at("vpc_health_config.http_code").unwrap().message, want);
}

// ---------------------------------------------------------------------------------------------
// microservice_info

#[test]
fn microservice_registries() {
    const M: &str = "/microservice_info";
    check::<VpcChannel>(
        &microservice_channel(),
        &[
            bad(&[(M, json!(DEL))], "APIG.2001", "microservice_info"),
            good(&[(M, json!(DEL)), ("/vpc_channel_type", json!("builtin"))]),
            bad(&[("/microservice_info/cse_info", json!(DEL))], "APIG.2001", "microservice_info.cse_info"),
            bad(
                &[("/microservice_info/cse_info/engine_id", json!(""))],
                "APIG.2001",
                "microservice_info.cse_info.engine_id",
            ),
            bad(
                &[("/microservice_info/cse_info/service_id", json!(" "))],
                "APIG.2001",
                "microservice_info.cse_info.service_id",
            ),
        ],
    );
}

#[test]
fn cce_info() {
    let p = |f: &str| -> String { format!("/microservice_info/{f}") };
    check::<VpcChannel>(
        &cce_channel(),
        &[
            bad(&[(p("cce_info/cluster_id"), json!(""))], "APIG.2001", "microservice_info.cce_info.cluster_id"),
            bad(&[(p("cce_info/namespace"), json!(""))], "APIG.2001", "microservice_info.cce_info.namespace"),
            bad(&[(p("cce_info/app_name"), json!("1app"))], "APIG.2011", "microservice_info.cce_info.app_name"),
            bad(&[(p("cce_info/app_name"), json!("app/x"))], "APIG.2011", "microservice_info.cce_info.app_name"),
            bad(&[(p("cce_info/app_name"), long(65))], "APIG.2011", "microservice_info.cce_info.app_name"),
            good(&[(p("cce_info/app_name"), long(64))]),
            bad(&[(p("cce_info/label_key"), json!("-key"))], "APIG.2011", "microservice_info.cce_info.label_key"),
            bad(&[(p("cce_info/label_key"), json!("key!"))], "APIG.2011", "microservice_info.cce_info.label_key"),
            bad(&[(p("cce_info/label_key"), long(65))], "APIG.2011", "microservice_info.cce_info.label_key"),
            good(&[(p("cce_info/label_key"), json!("9key"))]),
            bad(&[(p("cce_info/label_value"), json!("9v"))], "APIG.2011", "microservice_info.cce_info.label_value"),
            bad(&[(p("cce_info/label_value"), json!("v:1"))], "APIG.2011", "microservice_info.cce_info.label_value"),
            bad(&[(p("cce_info/label_value"), long(65))], "APIG.2011", "microservice_info.cce_info.label_value"),
            bad(
                &[(p("cce_service_info/cluster_id"), json!(""))],
                "APIG.2001",
                "microservice_info.cce_service_info.cluster_id",
            ),
            bad(
                &[(p("cce_service_info/namespace"), json!(""))],
                "APIG.2001",
                "microservice_info.cce_service_info.namespace",
            ),
            bad(
                &[(p("cce_service_info/namespace"), json!("Prod"))],
                "APIG.2011",
                "microservice_info.cce_service_info.namespace",
            ),
            bad(
                &[(p("cce_service_info/namespace"), json!("1prod"))],
                "APIG.2011",
                "microservice_info.cce_service_info.namespace",
            ),
            bad(
                &[(p("cce_service_info/namespace"), json!("prod-"))],
                "APIG.2011",
                "microservice_info.cce_service_info.namespace",
            ),
            bad(
                &[(p("cce_service_info/namespace"), json!("prod_1"))],
                "APIG.2011",
                "microservice_info.cce_service_info.namespace",
            ),
            bad(
                &[(p("cce_service_info/namespace"), long(64))],
                "APIG.2011",
                "microservice_info.cce_service_info.namespace",
            ),
            good(&[(p("cce_service_info/namespace"), long(63))]),
            bad(
                &[(p("cce_service_info/service_name"), json!(""))],
                "APIG.2001",
                "microservice_info.cce_service_info.service_name",
            ),
            bad(
                &[(p("cce_service_info/service_name"), json!(".svc"))],
                "APIG.2011",
                "microservice_info.cce_service_info.service_name",
            ),
            bad(
                &[(p("cce_service_info/service_name"), long(65))],
                "APIG.2011",
                "microservice_info.cce_service_info.service_name",
            ),
        ],
    );
}

#[test]
fn nacos_info() {
    let p = |f: &str| -> String { format!("/microservice_info/nacos_info/{f}") };
    check::<VpcChannel>(
        &nacos_channel(),
        &[
            good(&[(p("namespace"), json!("")), (p("cluster_name"), json!(DEL)), (p("group_name"), json!(DEL))]),
            bad(&[("/microservice_info/nacos_info", json!(DEL))], "APIG.2001", "microservice_info.nacos_info"),
            bad(
                &[("/microservice_info/service_type", json!("nacos")), ("/microservice_info/nacos_info", json!(DEL))],
                "APIG.2001",
                "microservice_info.nacos_info",
            ),
            bad(&[(p("namespace"), json!("ns.1"))], "APIG.2011", "microservice_info.nacos_info.namespace"),
            bad(&[(p("namespace"), long(65))], "APIG.2011", "microservice_info.nacos_info.namespace"),
            good(&[(p("namespace"), long(64))]),
            bad(&[(p("cluster_name"), json!("c:1"))], "APIG.2011", "microservice_info.nacos_info.cluster_name"),
            bad(&[(p("cluster_name"), long(65))], "APIG.2011", "microservice_info.nacos_info.cluster_name"),
            bad(&[(p("group_name"), json!("g/1"))], "APIG.2011", "microservice_info.nacos_info.group_name"),
            bad(&[(p("group_name"), long(129))], "APIG.2011", "microservice_info.nacos_info.group_name"),
            good(&[(p("group_name"), json!("g-1_a.b:c"))]),
            bad(&[(p("service_name"), json!(""))], "APIG.2001", "microservice_info.nacos_info.service_name"),
            bad(&[(p("service_name"), json!("@svc"))], "APIG.2011", "microservice_info.nacos_info.service_name"),
            bad(&[(p("service_name"), json!("a@@b"))], "APIG.2011", "microservice_info.nacos_info.service_name"),
            bad(&[(p("service_name"), long(513))], "APIG.2011", "microservice_info.nacos_info.service_name"),
            good(&[(p("service_name"), json!("grp@svc name"))]),
            bad(&[(p("server_config"), json!([]))], "APIG.2001", "microservice_info.nacos_info.server_config"),
            bad(
                &[(p("server_config/0/ip_address"), json!(""))],
                "APIG.2001",
                "microservice_info.nacos_info.server_config[0].ip_address",
            ),
            bad(
                &[(p("server_config/1"), json!({"ip_address": "10.0.0.2", "port": 0}))],
                "APIG.2011",
                "microservice_info.nacos_info.server_config[1].port",
            ),
            bad(
                &[(p("server_config/0/port"), json!(65536))],
                "APIG.2011",
                "microservice_info.nacos_info.server_config[0].port",
            ),
            bad(
                &[(p("server_config/0/grpc_port"), json!(0))],
                "APIG.2011",
                "microservice_info.nacos_info.server_config[0].grpc_port",
            ),
            bad(
                &[(p("server_config/0/grpc_port"), json!(65536))],
                "APIG.2011",
                "microservice_info.nacos_info.server_config[0].grpc_port",
            ),
            bad(
                &[(p("user_info/user_name"), json!(""))],
                "APIG.2001",
                "microservice_info.nacos_info.user_info.user_name",
            ),
            bad(
                &[(p("user_info/password"), json!(""))],
                "APIG.2001",
                "microservice_info.nacos_info.user_info.password",
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// ZStack's add-backend-servers API

#[test]
fn zstack_backend_servers() {
    const NIC: &str = "70856dd6ee693c30b28e6233850fc494";
    check::<BackendServersBody>(
        &example("002_backendservers.json"),
        &[
            bad(
                &[("/params/servers/0", json!({"192.168.1.1": "20", "192.168.1.2": "20"}))],
                "SYS.1007",
                "params.servers[0]",
            ),
            bad(&[("/params/servers/0", json!({}))], "SYS.1007", "params.servers[0]"),
            bad(&[("/params/vmNics/0", json!({NIC: "10", "a".repeat(32): "10"}))], "SYS.1007", "params.vmNics[0]"),
            bad(&[("/params/servers/0", json!({"backend.local": "20"}))], "SYS.1007", "params.servers[0]"),
            bad(&[("/params/servers/0", json!({"192.168.1.256": "20"}))], "SYS.1007", "params.servers[0]"),
            good(&[("/params/servers/1", json!({"fd00::1": "0"}))]),
            bad(
                &[("/params/vmNics/0", json!({"70856dd6-ee69-3c30-b28e-6233850fc494": "10"}))],
                "SYS.1007",
                "params.vmNics[0]",
            ),
            bad(
                &[("/params/vmNics/0", json!({"z0856dd6ee693c30b28e6233850fc494": "10"}))],
                "SYS.1007",
                "params.vmNics[0]",
            ),
            bad(&[("/params/servers/0/192.168.1.1", json!("abc"))], "SYS.1007", "params.servers[0].192.168.1.1"),
            bad(&[("/params/servers/0/192.168.1.1", json!("101"))], "SYS.1007", "params.servers[0].192.168.1.1"),
            bad(&[("/params/servers/0/192.168.1.1", json!("-1"))], "SYS.1007", "params.servers[0].192.168.1.1"),
            bad(&[("/params/servers/0/192.168.1.1", json!(""))], "SYS.1007", "params.servers[0].192.168.1.1"),
            good(&[("/params/servers/0/192.168.1.1", json!("100"))]),
            bad(
                &[(format!("/params/vmNics/0/{NIC}"), json!("1.5"))],
                "SYS.1007",
                "params.vmNics[0].70856dd6ee693c30b28e6233850fc494",
            ),
            bad(&[("/params/servers", json!([])), ("/params/vmNics", json!([]))], "SYS.1006", "params"),
            bad(&[("/params", json!({}))], "SYS.1006", "params"),
            good(&[("/params/servers", json!([]))]),
            good(&[("/params/vmNics", json!(DEL))]),
            bad(&[("/params/servers/1", json!({"192.168.1.1": "30"}))], "SYS.1007", "params.servers[1]"),
            bad(&[("/params/vmNics/1", json!({NIC.to_uppercase(): "30"}))], "SYS.1007", "params.vmNics[1]"),
        ],
    );
    let errs = errors::<BackendServersBody>(
        &example("002_backendservers.json"),
        &[("/params/servers/1", json!({"192.168.1.1": "30"}))],
    );
    assert_eq!(errs.errors[0].problem, Problem::Conflict);
}

// ---------------------------------------------------------------------------------------------
// GA's add-endpoint-group API

#[test]
fn ga_endpoint_group() {
    let p = |f: &str| -> String { format!("/endpoint_group/{f}") };
    check::<EndpointGroupBody>(
        &example("003_endpoint_group.json"),
        &[
            bad(&[(p("name"), json!(""))], "GA.1001", "endpoint_group.name"),
            bad(&[(p("name"), json!("endpoint_group"))], "GA.1002", "endpoint_group.name"),
            bad(&[(p("name"), json!("组"))], "GA.1002", "endpoint_group.name"),
            bad(&[(p("name"), long(65))], "GA.1002", "endpoint_group.name"),
            good(&[(p("name"), json!("a"))]),
            good(&[(p("name"), long(64))]),
            bad(&[(p("description"), json!("a <b> c"))], "GA.1002", "endpoint_group.description"),
            bad(&[(p("description"), json!("a > c"))], "GA.1002", "endpoint_group.description"),
            bad(&[(p("description"), long(256))], "GA.1002", "endpoint_group.description"),
            good(&[(p("description"), long(255))]),
            good(&[(p("description"), json!(""))]),
            bad(&[(p("traffic_dial_percentage"), json!(101))], "GA.1002", "endpoint_group.traffic_dial_percentage"),
            bad(&[(p("traffic_dial_percentage"), json!(-1))], "GA.1002", "endpoint_group.traffic_dial_percentage"),
            good(&[(p("traffic_dial_percentage"), json!(0))]),
            good(&[(p("traffic_dial_percentage"), json!(DEL))]),
            bad(&[(p("region_id"), json!(""))], "GA.1001", "endpoint_group.region_id"),
            bad(&[(p("listeners"), json!([]))], "GA.1001", "endpoint_group.listeners"),
            bad(&[(p("listeners/1"), json!({"id": "l2"}))], "GA.1002", "endpoint_group.listeners"),
            bad(&[(p("listeners/0/id"), json!(""))], "GA.1001", "endpoint_group.listeners[0].id"),
        ],
    );
    let errs =
        errors::<EndpointGroupBody>(&example("003_endpoint_group.json"), &[(p("listeners/1"), json!({"id": "l2"}))]);
    assert!(errs.errors[0].message.contains("An endpoint group can have only one listener"), "{errs}");
}

// ---------------------------------------------------------------------------------------------
// SDRS's create-protection-group API

#[test]
fn sdrs_protection_group() {
    let p = |f: &str| -> String { format!("/server_group/{f}") };
    check::<ProtectionGroupBody>(
        &example("004_protection_group.json"),
        &[
            bad(&[(p("name"), json!(""))], "SDRS.1001", "server_group.name"),
            bad(&[(p("name"), json!("test name"))], "SDRS.1002", "server_group.name"),
            bad(&[(p("name"), json!("名字"))], "SDRS.1002", "server_group.name"),
            bad(&[(p("name"), long(65))], "SDRS.1002", "server_group.name"),
            good(&[(p("name"), json!("a.b_c-1"))]),
            good(&[(p("name"), long(64))]),
            bad(&[(p("description"), json!("<script>"))], "SDRS.1002", "server_group.description"),
            bad(&[(p("description"), long(65))], "SDRS.1002", "server_group.description"),
            // 22 three-byte characters: 66 bytes, over the 64-byte limit.
            bad(&[(p("description"), json!("描".repeat(22)))], "SDRS.1002", "server_group.description"),
            good(&[(p("description"), json!("描".repeat(21)))]),
            bad(&[(p("source_availability_zone"), json!(""))], "SDRS.1001", "server_group.source_availability_zone"),
            bad(&[(p("target_availability_zone"), json!(""))], "SDRS.1001", "server_group.target_availability_zone"),
            bad(&[(p("domain_id"), json!(""))], "SDRS.1001", "server_group.domain_id"),
            bad(&[(p("source_vpc_id"), json!(""))], "SDRS.1001", "server_group.source_vpc_id"),
            bad(
                &[(p("target_availability_zone"), json!("AZ01"))],
                "SDRS.1002",
                "server_group.target_availability_zone",
            ),
        ],
    );
    let errs = errors::<ProtectionGroupBody>(
        &example("004_protection_group.json"),
        &[(p("target_availability_zone"), json!("AZ01"))],
    );
    assert_eq!(errs.errors[0].problem, Problem::Conflict);
}

// ---------------------------------------------------------------------------------------------
// All problems at once; unknown fields

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors::<VpcChannel>(
        &channel(),
        &[
            ("/name", json!("ab")),
            ("/port", json!(0)),
            ("/members/1/weight", json!(150)),
            ("/members/1/member_group_name", json!("missing")),
            ("/vpc_health_config/timeout", json!(20)),
            ("/member_groups/0/microservice_labels", json!([{"label_name": "k", "label_value": "v"}])),
            ("/instance_ids", json!(["a", "a"])),
        ],
    );
    let got: Vec<(&str, &str)> = errs.errors.iter().map(|e| (e.code, e.path.as_str())).collect();
    assert_eq!(
        got,
        [
            ("APIG.2011", "name"),
            ("APIG.2011", "port"),
            ("APIG.2012", "instance_ids[1]"),
            ("APIG.2011", "member_groups[0].microservice_labels"),
            ("APIG.2011", "members[1].weight"),
            ("APIG.3030", "members[1].member_group_name"),
            ("APIG.2011", "vpc_health_config.timeout"),
        ],
        "{errs}"
    );
    assert_eq!(errs.at("members[1].weight").unwrap().message, "must be within 0-100, got 150");
    assert_eq!(errs.at("port").unwrap().message, "must be within 1-65535, got 0");

    let errs = errors::<EndpointGroupBody>(
        &example("003_endpoint_group.json"),
        &[
            ("/endpoint_group/name", json!("")),
            ("/endpoint_group/traffic_dial_percentage", json!(200)),
            ("/endpoint_group/listeners", json!([])),
        ],
    );
    assert_eq!(errs.len(), 3, "{errs}");
}

#[test]
fn unknown_fields_are_each_reported_with_their_path() {
    let errs = errors::<VpcChannel>(
        &channel(),
        &[
            ("/colour", json!("red")),
            ("/member_groups/1/member_group_colour", json!(1)),
            ("/members/0/hots", json!("10.0.0.1")),
            ("/vpc_health_config/intervall", json!(5)),
        ],
    );
    let mut got: Vec<(&str, &str)> = errs.errors.iter().map(|e| (e.code, e.path.as_str())).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("APIG.2004", "colour"),
            ("APIG.2004", "member_groups[1].member_group_colour"),
            ("APIG.2004", "members[0].hots"),
            ("APIG.2004", "vpc_health_config.intervall"),
        ],
        "{errs}"
    );
    assert!(errs.errors.iter().all(|e| e.problem == Problem::Unknown));

    let errs = errors::<MemberGroupsBody>(
        &example("000_member_groups.json"),
        &[("/member_groups/0/microservice_labels", json!([{"label_name": "k", "label_value": "v", "x": 1}]))],
    );
    assert_eq!(errs.errors[0].path, "member_groups[0].microservice_labels[0].x");
    assert_eq!(errs.errors[0].code, "APIG.2004");
}
