#![cfg(feature = "live")]
//! What the control API promises about its records when requests race or callers differ: a
//! channel name is unique in its project even under concurrent renames and creates; every
//! resource has an owner that is checked on every operation. Loopback, bounded.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lbsim::control::auth::{Auth, Token};
use lbsim::control::{ServeConfig, Server};
use serde_json::{json, Value};
use std::time::Duration;

const INSTANCE: &str = "eea73cde015940908ae0117d67bf7330";

struct Api {
    server: Server,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn start() -> Api {
        Api::start_on(None).await
    }

    async fn start_on(state: Option<std::path::PathBuf>) -> Api {
        let tokens = ["admin", "one@p1", "two@p2"].iter().map(|t| Token::parse(t).unwrap()).collect();
        let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), Auth { tokens, aksk: None });
        cfg.state = state;
        cfg.job_duration = Duration::from_millis(200);
        let server = Server::start(cfg).await.expect("server");
        Api { server, client: Client::builder(TokioExecutor::new()).build_http() }
    }

    async fn call(&self, token: &str, method: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let text = if body.is_null() { String::new() } else { body.to_string() };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.server.addr()))
            .header("x-auth-token", token)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(text))).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("in time")
            .expect("answer");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn channel(name: &str) -> Value {
    json!({"name": name, "port": 8080, "balance_strategy": 1, "member_type": "ip",
        "instance_ids": [INSTANCE], "members": [{"host": "10.0.0.1"}]})
}

/// Four renames of four channels to one name and a create of that name, at once: exactly one
/// succeeds, the others get 409, and the project ends with the name once. Ten trials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_unique_under_concurrent_renames_and_creates() {
    let api = Api::start().await;
    for trial in 0..10 {
        let mut ids = Vec::new();
        for i in 0..4 {
            let (s, v) =
                api.call("admin", "POST", "/v2/p1/apic/vpc-channels", channel(&format!("c{trial}_{i}")), &[]).await;
            assert_eq!(s, 201, "{v}");
            ids.push(v["project_vpc_channels"][0]["id"].as_str().unwrap().to_string());
        }
        let name = format!("same_{trial}");
        let api_ref = &api;
        let put = |i: usize| {
            let path = format!("/v2/p1/apic/instances/{INSTANCE}/vpc-channels/{}", ids[i]);
            let body = channel(&name);
            async move { api_ref.call("admin", "PUT", &path, body, &[]).await }
        };
        let post = api.call("admin", "POST", "/v2/p1/apic/vpc-channels", channel(&name), &[]);
        let (a, b, c, d, e) = tokio::join!(put(0), put(1), put(2), put(3), post);
        let statuses: Vec<u16> = [a, b, c, d, e].iter().map(|r| r.0).collect();
        assert_eq!(statuses.iter().filter(|s| matches!(s, 200 | 201)).count(), 1, "trial {trial}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 4, "trial {trial}: {statuses:?}");
        let (_, list) =
            api.call("admin", "GET", &format!("/v2/p1/apic/instances/{INSTANCE}/vpc-channels"), Value::Null, &[]).await;
        let named = list["vpc_channels"].as_array().unwrap().iter().filter(|c| c["name"] == name.as_str()).count();
        assert_eq!(named, 1, "trial {trial}");
    }
    api.server.shutdown().await;
}

const GROUP: &str = r#"{"endpoint_group": {"name": "eg", "region_id": "ap-southeast-1", "listeners": [{"id": "1b11747a-b139-492f-9692-2df0b1c87193"}]}}"#;

/// GA endpoint groups belong to the domain they were created in: an all-projects caller's to
/// `X-Domain-Id` (or the default domain), a `T@PROJECT` token's to its project. Another domain's
/// group is neither listed nor readable nor deletable, nor are its endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_groups_belong_to_their_domain() {
    let api = Api::start().await;
    let group: Value = serde_json::from_str(GROUP).unwrap();
    let (s, v) = api.call("admin", "POST", "/v2/p1/apic/vpc-channels", channel("ga_owned"), &[]).await;
    assert_eq!(s, 201, "{v}");
    let ch = v["project_vpc_channels"][0]["id"].as_str().unwrap().to_string();
    // The admin's group, in the default domain, with p1's channel as its endpoint.
    let (s, v) = api.call("admin", "POST", "/v1/endpoint-groups", group.clone(), &[]).await;
    assert_eq!(s, 201, "{v}");
    let admin_group = v["endpoint_group"]["id"].as_str().unwrap().to_string();
    let domain = v["endpoint_group"]["domain_id"].as_str().unwrap().to_string();
    assert_eq!(domain.len(), 32, "a domain id shaped like the cloud's: {domain}");
    let ep = json!({"endpoint": {"resource_id": ch, "resource_type": "VPC_CHANNEL"}});
    let (s, v) = api.call("admin", "POST", &format!("/v1/endpoint-groups/{admin_group}/endpoints"), ep, &[]).await;
    assert_eq!(s, 201, "{v}");
    let endpoint = v["endpoint"]["id"].as_str().unwrap().to_string();
    // A token scoped to p1 sees nothing of it, and can touch nothing of it.
    let (s, v) = api.call("one", "GET", "/v1/endpoint-groups", Value::Null, &[]).await;
    assert_eq!((s, v["endpoint_groups"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
    for (method, path) in [
        ("GET", format!("/v1/endpoint-groups/{admin_group}")),
        ("GET", format!("/v1/endpoint-groups/{admin_group}/endpoints")),
        ("DELETE", format!("/v1/endpoint-groups/{admin_group}/endpoints/{endpoint}")),
        ("DELETE", format!("/v1/endpoint-groups/{admin_group}")),
    ] {
        let (s, v) = api.call("one", method, &path, Value::Null, &[]).await;
        assert_eq!((s, v["error_code"].as_str()), (404, Some("GA.1004")), "{method} {path}: {v}");
    }
    // Naming another domain is refused to a scoped token.
    let (s, _) = api.call("one", "GET", "/v1/endpoint-groups", Value::Null, &[("x-domain-id", &domain)]).await;
    assert_eq!(s, 403);
    // The scoped token's own group is in its project's domain; p2's token does not see it, the
    // admin sees it when it names that domain.
    let (s, v) = api.call("one", "POST", "/v1/endpoint-groups", group, &[]).await;
    assert_eq!((s, v["endpoint_group"]["domain_id"].as_str()), (201, Some("p1")), "{v}");
    let own = v["endpoint_group"]["id"].as_str().unwrap().to_string();
    let (s, _) = api.call("two", "GET", &format!("/v1/endpoint-groups/{own}"), Value::Null, &[]).await;
    assert_eq!(s, 404);
    let (_, v) = api.call("admin", "GET", "/v1/endpoint-groups", Value::Null, &[("x-domain-id", "p1")]).await;
    let ids: Vec<&str> = v["endpoint_groups"].as_array().unwrap().iter().filter_map(|g| g["id"].as_str()).collect();
    assert_eq!(ids, [own.as_str()]);
    // The admin's group and its endpoint are intact.
    let (s, v) =
        api.call("admin", "GET", &format!("/v1/endpoint-groups/{admin_group}/endpoints"), Value::Null, &[]).await;
    assert_eq!((s, v["endpoints"].as_array().map(Vec::len)), (200, Some(1)), "{v}");
    api.server.shutdown().await;
}

/// Each API operation is one store transaction, so that a kill at any moment leaves either all
/// of it or none: a channel delete with the GA endpoints that pointed at it, a multi-instance
/// create, an SDRS group with its job (and the job's outcome with the group's new state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_operation_is_one_store_transaction() {
    let path = crate::support::temp_dir("integrity").join("state.redb");
    let api = Api::start_on(Some(path.clone())).await;
    let commits = || api.server.state_commits().expect("a state file");
    let mut two = channel("two_instances");
    two["instance_ids"] = json!([INSTANCE, "ddd73cde017890908ae0117d67bf7330"]);
    let before = commits();
    let (s, v) = api.call("admin", "POST", "/v2/p1/apic/vpc-channels", two, &[]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(commits() - before, 1, "a create for two instances");
    let ch = v["project_vpc_channels"][0]["id"].as_str().unwrap().to_string();
    let group: Value = serde_json::from_str(GROUP).unwrap();
    let (_, v) = api.call("admin", "POST", "/v1/endpoint-groups", group, &[]).await;
    let eg = v["endpoint_group"]["id"].as_str().unwrap().to_string();
    let ep = json!({"endpoint": {"resource_id": ch, "resource_type": "VPC_CHANNEL"}});
    assert_eq!(api.call("admin", "POST", &format!("/v1/endpoint-groups/{eg}/endpoints"), ep, &[]).await.0, 201);
    let before = commits();
    let path_ch = format!("/v2/p1/apic/instances/{INSTANCE}/vpc-channels/{ch}");
    assert_eq!(api.call("admin", "DELETE", &path_ch, Value::Null, &[]).await.0, 204);
    assert_eq!(commits() - before, 1, "a channel delete with its endpoints");
    let pg = json!({"server_group": {"name": "pg", "source_availability_zone": "AZ01", "target_availability_zone": "AZ02",
        "domain_id": "fb4bb8e3-a574-4437-a156-78c916aeea4d", "source_vpc_id": "046852ef-c49d-409b-8389-546aaaa5701f"}});
    let before = commits();
    let (s, v) = api.call("admin", "POST", "/v1/p1/server-groups", pg, &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(commits() - before, 1, "a protection group with its job");
    let job = v["job_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while api.call("admin", "GET", &format!("/v1/p1/jobs/{job}"), Value::Null, &[]).await.1["status"] != "SUCCESS" {
        assert!(tokio::time::Instant::now() < deadline, "job never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(commits() - before, 2, "the job's outcome with the group's new state");
    api.server.shutdown().await;
    // What was stored is what the API said.
    let api = Api::start_on(Some(path.clone())).await;
    let (_, v) = api.call("admin", "GET", &format!("/v1/endpoint-groups/{eg}/endpoints"), Value::Null, &[]).await;
    assert_eq!(v["endpoints"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(api.call("admin", "GET", &path_ch, Value::Null, &[]).await.0, 404);
    api.server.shutdown().await;
    let _ = std::fs::remove_file(&path);
}

/// The API reads JSON only, and a body that says one thing twice is refused at that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_json_and_say_each_key_once() {
    let api = Api::start().await;
    let path = "/v2/p1/apic/vpc-channels";
    let body = channel("typed_body");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    // The helper sets application/json; a second Content-Type value makes hyper keep the
    // first, so send the form type on a raw request instead.
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{}{path}", api.server.addr()))
        .header("x-auth-token", "admin")
        .header(form[0].0, form[0].1)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = api.client.request(req).await.expect("answer");
    let status = resp.status().as_u16();
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!((status, v["error_code"].as_str()), (415, Some("APIG.2002")), "{v}");
    // A JSON type with parameters is fine.
    let (s, v) = api.call("admin", "POST", path, body, &[]).await;
    assert_eq!(s, 201, "{v}");
    // A key twice: 400 at its path, in the family's shape (ZStack's here).
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{}/v2/p1/apic/vpc-channels", api.server.addr()))
        .header("x-auth-token", "admin")
        .header("content-type", "application/json;charset=UTF-8")
        .body(Full::new(Bytes::from(r#"{"name": "first_name", "name": "second_name", "port": 80, "balance_strategy": 1, "member_type": "ip", "instance_ids": ["i1"]}"#)))
        .unwrap();
    let resp = api.client.request(req).await.expect("answer");
    let status = resp.status().as_u16();
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!((status, v["errors"][0]["parameter"].as_str()), (400, Some("name")), "{v}");
    assert_eq!(v["error_code"], "APIG.2002");
    api.server.shutdown().await;
}
