#![cfg(feature = "live")]
//! The OpenAPI document (openapi/lbsim.json) against the implementation: every route the router
//! serves is in the document with its method and vice versa; the cloud APIs' example requests
//! and the server's real answers validate against the document's schemas (a small validator for
//! the subset the document uses: `$ref`, `type`, `properties`, `required`, `additionalProperties`,
//! `items`, `enum`, `minimum`/`maximum`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lbsim::control::auth::{Auth, Token};
use lbsim::control::{ServeConfig, Server, OPENAPI, ROUTES};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn doc() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi/lbsim.json is JSON")
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = doc();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_ascii_lowercase(), r.path.to_string())).collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served, not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented, not served"
    );
    // Every path parameter of a template is declared.
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names: BTreeSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(names, declared, "{method} {path}");
        }
    }
}

/// Every `exclusiveMinimum`/`exclusiveMaximum` in `v`'s subtree that is not in OpenAPI 3.0's form
/// (a boolean beside `minimum`/`maximum`; a number is 3.1's form, which 3.0 tools reject).
fn non_30_exclusive_bounds(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (key, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
                if o.get(key).is_some_and(|x| !x.is_boolean() || !o.contains_key(bound)) {
                    out.push(format!("{path}.{key}"));
                }
            }
            for (k, x) in o {
                non_30_exclusive_bounds(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| non_30_exclusive_bounds(x, &format!("{path}[{i}]"), out))
        }
        _ => {}
    }
}

/// Found by schemathesis (scripts/schemathesis.sh): a 3.1-style `"exclusiveMinimum": 0` in a
/// document that says `openapi: 3.0.3` made the fault-injection operation untestable.
#[test]
fn the_document_uses_openapi_30_forms_only() {
    let mut out = Vec::new();
    non_30_exclusive_bounds(&doc(), "", &mut out);
    assert!(out.is_empty(), "{out:?}");
}

/// Problems of `v` against `schema` (empty when valid).
fn validate(doc: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return validate(doc, &doc["components"]["schemas"][name], v, path, out);
    }
    if v.is_null() && schema["nullable"] == true {
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !ok {
        return out.push(format!("{path}: {v} is not {}", schema["type"]));
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(v) {
            out.push(format!("{path}: {v} not in {values:?}"));
        }
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if x < min {
            out.push(format!("{path}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), v.as_f64()) {
        if x > max {
            out.push(format!("{path}: {x} > {max}"));
        }
    }
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(doc, &schema["items"], item, &format!("{path}[{i}]"), out);
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                out.push(format!("{path}.{r}: required"));
            }
        }
        for (k, x) in obj {
            match (&schema["properties"][k], &schema["additionalProperties"]) {
                (Value::Null, Value::Bool(false)) => out.push(format!("{path}.{k}: not in the schema")),
                (Value::Null, Value::Object(_)) => {
                    validate(doc, &schema["additionalProperties"], x, &format!("{path}.{k}"), out)
                }
                (Value::Null, _) => {}
                (p, _) => validate(doc, p, x, &format!("{path}.{k}"), out),
            }
        }
    }
}

fn check(doc: &Value, schema: &Value, v: &Value, what: &str) {
    let mut out = Vec::new();
    validate(doc, schema, v, "", &mut out);
    assert!(out.is_empty(), "{what}: {out:#?}");
}

fn request_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
}

fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"]
}

#[test]
fn the_apis_example_requests_validate() {
    let doc = doc();
    let examples: [(&str, &str, Value); 5] = [
        (
            "post",
            "/v2/{project_id}/apic/vpc-channels",
            json!({"balance_strategy": 1, "member_type": "ip", "name": "VPC_demo", "port": 22,
            "vpc_health_config": {"http_code": "200", "path": "/vpc/demo", "port": 22, "protocol": "http", "threshold_abnormal": 5,
            "threshold_normal": 2, "time_interval": 10, "timeout": 5, "enable_client_ssl": false},
            "member_groups": [{"member_group_name": "test", "member_group_weight": 1, "member_group_remark": "remark"}],
            "members": [{"host": "192.168.0.5", "weight": 1, "member_group_name": "test"}],
            "instance_ids": ["eea73cde015940908ae0117d67bf7330", "ddd73cde017890908ae0117d67bf7330"]}),
        ),
        (
            "post",
            "/v2/{project_id}/apic/instances/{instance_id}/vpc-channels/{vpc_channel_id}/member-groups",
            json!({"member_groups": [{"member_group_name": "vpc_member_group", "member_group_weight": 10, "version": "v1", "port": 80}]}),
        ),
        (
            "post",
            "/zstack/v1/load-balancers/servergroups/{serverGroupUuid}/backendservers",
            json!({"params": {"vmNics": [{"70856dd6ee693c30b28e6233850fc494": "10"}], "servers": [{"192.168.1.1": "20"}]}, "systemTags": [], "userTags": []}),
        ),
        (
            "post",
            "/v1/endpoint-groups",
            json!({"endpoint_group": {"name": "endpoint-group-name", "description": "endpoint-group description",
            "traffic_dial_percentage": 10, "region_id": "ap-southeast-1", "listeners": [{"id": "1b11747a-b139-492f-9692-2df0b1c87193"}]}}),
        ),
        (
            "post",
            "/v1/{project_id}/server-groups",
            json!({"server_group": {"name": "testname", "description": "description",
            "source_availability_zone": "AZ01", "target_availability_zone": "AZ02", "domain_id": "fb4bb8e3-a574-4437-a156-78c916aeea4d",
            "source_vpc_id": "046852ef-c49d-409b-8389-546aaaa5701f", "dr_type": "migration", "server_type": "ECS"}}),
        ),
    ];
    for (method, path, body) in &examples {
        check(&doc, request_schema(&doc, method, path), body, path);
    }
    // The validator is not vacuous: a typo and a bad weight are caught.
    let mut out = Vec::new();
    let bad = json!({"member_groups": [{"member_group_nam": "x", "member_group_weight": 101}]});
    validate(&doc, request_schema(&doc, "post", examples[1].1), &bad, "", &mut out);
    assert_eq!(out.len(), 3, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_validate() {
    let doc = doc();
    let cfg =
        ServeConfig::new("127.0.0.1:0".parse().unwrap(), Auth { tokens: vec![Token::parse("t").unwrap()], aksk: None });
    let server = Server::start(cfg).await.expect("server");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let call = async |method: &str, path: &str, body: Value| -> (u16, Value) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", server.addr()))
            .header("x-auth-token", "t")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = client.request(req).await.expect("answer");
        let status = resp.status().as_u16();
        (status, serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap_or(Value::Null))
    };
    let create = json!({"name": "doc_ch", "port": 80, "balance_strategy": 2, "member_type": "ip", "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
        "member_groups": [{"member_group_name": "grp1", "member_group_weight": 5}],
        "members": [{"host": "10.0.0.1", "member_group_name": "grp1"}]});
    let (s, v) = call("POST", "/v2/p/apic/vpc-channels", create.clone()).await;
    assert_eq!(s, 201, "{v}");
    check(&doc, response_schema(&doc, "post", "/v2/{project_id}/apic/vpc-channels", s), &v, "create channel");
    let id = v["project_vpc_channels"][0]["id"].as_str().unwrap().to_string();
    let (s, v) = call("POST", "/v2/p/apic/vpc-channels", create).await;
    assert_eq!(s, 409);
    check(&doc, response_schema(&doc, "post", "/v2/{project_id}/apic/vpc-channels", s), &v, "409");
    let (s, v) = call("GET", &format!("/lbsim/channels/{id}"), Value::Null).await;
    check(&doc, response_schema(&doc, "get", "/lbsim/channels/{vpc_channel_id}", s), &v, "lbsim channel");
    let (s, v) = call("POST", "/v1/p/server-groups", json!({"server_group": {}})).await;
    assert_eq!(s, 400);
    check(&doc, response_schema(&doc, "post", "/v1/{project_id}/server-groups", s), &v, "SDRS 400");
    server.shutdown().await;
}
