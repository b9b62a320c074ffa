//! AK/SK signature verification (`control::sign`) against requests signed by Huawei Cloud's own
//! Python SDK signer.
#![cfg(feature = "live")]

use http::{HeaderMap, HeaderName, HeaderValue};
use lbsim::control::sign::{authorization, verify, SignError};

struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

// Produced by `target/sdk-venv/bin/python scripts/sign_vectors.py` with huaweicloudsdkcore 3.1.219
// (the venv that scripts/sdk_test.sh makes); pasted unchanged.
const AK: &str = "HPUAEXAMPLEAK0000001";
const SK: &str = "s3cr3tSKexample0000000000000000000000000";
const DATE: &str = "20261123T174500Z";
const VECTORS: &[Vector] = &[
    Vector {
        name: "create_vpc_channel",
        method: "POST",
        path: "/v2/05a3fb4ec280d5d52f76c0173cc91a4e/apic/vpc-channels",
        query: "",
        headers: &[
            ("User-Agent", "huaweicloud-usdk-python/3.0"),
            ("X-Project-Id", "05a3fb4ec280d5d52f76c0173cc91a4e"),
            ("X-Sdk-Date", "20261123T174500Z"),
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:18080"),
            ("Authorization", "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=a794463f37af2be99d4390fe86b85f4cf2e70631c99486a3c97d9c4db276c7a1"),
        ],
        body: "{\"name\": \"orders\", \"port\": 8080, \"balance_strategy\": 1, \"member_type\": \"ip\", \"instance_ids\": [\"eea73cde015940908ae0117d67bf7330\"], \"members\": [{\"host\": \"10.0.0.1\", \"weight\": 5}]}",
    },
    Vector {
        name: "show_job_status",
        method: "GET",
        path: "/v1/05a3fb4ec280d5d52f76c0173cc91a4e/jobs/0a1b2c3d4e5f",
        query: "",
        headers: &[
            ("User-Agent", "huaweicloud-usdk-python/3.0"),
            ("X-Project-Id", "05a3fb4ec280d5d52f76c0173cc91a4e"),
            ("X-Sdk-Date", "20261123T174500Z"),
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:18080"),
            ("Authorization", "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=fb680868dc025fb3ed99251310003496fc822584aeb1b3e089c89b571613964e"),
        ],
        body: "",
    },
    Vector {
        name: "list_with_query",
        method: "GET",
        path: "/v2/05a3fb4ec280d5d52f76c0173cc91a4e/apic/instances/eea7/vpc-channels",
        query: "empty=&limit=10&name=a%20b%2Fc~d%2Be%26f%3Dg&offset=0&tag=a&tag=z",
        headers: &[
            ("User-Agent", "huaweicloud-usdk-python/3.0"),
            ("X-Project-Id", "05a3fb4ec280d5d52f76c0173cc91a4e"),
            ("X-Sdk-Date", "20261123T174500Z"),
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:18080"),
            ("Authorization", "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=af4204d9a7cc273cb86656fea093c55366a31f5a8c949a9f3d863d06499e2d7a"),
        ],
        body: "",
    },
    Vector {
        name: "quoted_path",
        method: "DELETE",
        path: "/v2/05a3fb4ec280d5d52f76c0173cc91a4e/apic/instances/inst%20one/vpc-channels/ch%2F%C3%A9/",
        query: "",
        headers: &[
            ("User-Agent", "huaweicloud-usdk-python/3.0"),
            ("X-Project-Id", "05a3fb4ec280d5d52f76c0173cc91a4e"),
            ("X-Sdk-Date", "20261123T174500Z"),
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:18080"),
            ("Authorization", "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=a0688fc3c5e281fdf142ee57ec3f192fbc3fc16ab9b321750d0463efbb543b32"),
        ],
        body: "",
    },
    Vector {
        name: "extra_headers",
        method: "PUT",
        path: "/v1/endpoint-groups/eg-1",
        query: "force=true",
        headers: &[
            ("User-Agent", "huaweicloud-usdk-python/3.0"),
            ("X-Project-Id", "05a3fb4ec280d5d52f76c0173cc91a4e"),
            ("X-Sdk-Date", "20261123T174500Z"),
            ("Content-Type", "application/json;charset=UTF-8"),
            ("X-Custom", "héllo wörld"),
            ("X_Not_Signed", "x"),
            ("Host", "127.0.0.1:18080"),
            ("Authorization", "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders=content-type;host;user-agent;x-custom;x-project-id;x-sdk-date, Signature=066b2d891f57869e974a002263130832bde34da85c7fcd6f3e5804a60eff2159"),
        ],
        body: "{\"endpoint_group\": {\"name\": \"équipe\"}}",
    },
    Vector {
        name: "client_create_project_vpc_channel",
        method: "POST",
        path: "/v2/05a3fb4ec280d5d52f76c0173cc91a4e/apic/vpc-channels",
        query: "",
        headers: &[
            ("Content-Type", "application/json;charset=utf-8"),
            ("User-Agent", "huaweicloud-usdk-python/3.0; app/lbsim-sign-vectors"),
            ("X-Sdk-Date", "20261123T174500Z"),
            ("X-Project-Id", "05a3fb4ec280d5d52f76c0173cc91a4e"),
            ("Host", "127.0.0.1:18080"),
            ("Authorization", "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=16287e41ea574fbf9ef25fc1bc8caf66468de6cd2e7d10a7a4f643c2782b45f9"),
        ],
        body: "{\"name\": \"VPC_demo\", \"port\": 22, \"balance_strategy\": 1, \"member_type\": \"ip\", \"members\": [{\"host\": \"192.168.0.5\", \"weight\": 1}], \"instance_ids\": [\"eea73cde015940908ae0117d67bf7330\"]}",
    },
    Vector {
        name: "client_show_job_status",
        method: "GET",
        path: "/v1/05a3fb4ec280d5d52f76c0173cc91a4e/jobs/0000000062db92d70162db9d200f000a",
        query: "",
        headers: &[
            ("Content-Type", "application/json"),
            ("User-Agent", "huaweicloud-usdk-python/3.0; app/lbsim-sign-vectors"),
            ("X-Sdk-Date", "20261123T174500Z"),
            ("X-Project-Id", "05a3fb4ec280d5d52f76c0173cc91a4e"),
            ("Host", "127.0.0.1:18080"),
            ("Authorization", "SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=a2cb0f6a403955fa4735fe1a5f8347c5e9164388c189d01d5942c48d9a56a330"),
        ],
        body: "",
    },
];

/// 2026-11-23T17:45:00Z, the vectors' X-Sdk-Date.
const SIGNED_AT: i64 = 1_795_455_900;
const SKEW: i64 = 900;

fn headers(v: &Vector) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in v.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("vector header name");
        map.append(name, HeaderValue::from_bytes(value.as_bytes()).expect("vector header value"));
    }
    map
}

fn check(v: &Vector, map: &HeaderMap, body: &str, ak: &str, sk: &str, now: i64) -> Result<(), SignError> {
    verify(v.method, v.path, v.query, map, body.as_bytes(), ak, sk, now, SKEW)
}

fn vector(name: &str) -> &'static Vector {
    VECTORS.iter().find(|v| v.name == name).expect("vector exists")
}

#[test]
fn sdk_signed_requests_verify() {
    for v in VECTORS {
        assert_eq!(check(v, &headers(v), v.body, AK, SK, SIGNED_AT), Ok(()), "{}", v.name);
    }
}

#[test]
fn signing_reproduces_the_sdk_authorization() {
    for v in VECTORS {
        let mut map = headers(v);
        let sent = map.remove(http::header::AUTHORIZATION).expect("vector is signed");
        let ours = authorization(v.method, v.path, v.query, &map, v.body.as_bytes(), AK, SK).expect("signs");
        assert_eq!(ours.as_bytes(), sent.as_bytes(), "{}", v.name);
    }
}

#[test]
fn date_vector_matches_signed_at() {
    // SIGNED_AT is DATE as Unix time: one second off either way is still inside a skew of 0.
    let v = vector("show_job_status");
    let map = headers(v);
    assert_eq!(verify(v.method, v.path, v.query, &map, b"", AK, SK, SIGNED_AT, 0), Ok(()));
    assert_eq!(
        verify(v.method, v.path, v.query, &map, b"", AK, SK, SIGNED_AT + 1, 0),
        Err(SignError::ClockSkew { skew_s: 1 })
    );
    assert_eq!(DATE, "20261123T174500Z");
}

#[test]
fn tampered_requests_are_refused() {
    let v = vector("create_vpc_channel");
    let map = headers(v);
    let tampered_body = v.body.replace("8080", "8081");
    assert_eq!(check(v, &map, &tampered_body, AK, SK, SIGNED_AT), Err(SignError::BadSignature));
    assert_eq!(check(v, &map, "", AK, SK, SIGNED_AT), Err(SignError::BadSignature));
    let other_path = Vector { path: "/v2/05a3fb4ec280d5d52f76c0173cc91a4f/apic/vpc-channels", ..*v };
    assert_eq!(check(&other_path, &map, v.body, AK, SK, SIGNED_AT), Err(SignError::BadSignature));
    let other_method = Vector { method: "PUT", ..*v };
    assert_eq!(check(&other_method, &map, v.body, AK, SK, SIGNED_AT), Err(SignError::BadSignature));
    let mut other_project = map.clone();
    other_project.insert("x-project-id", HeaderValue::from_static("05a3fb4ec280d5d52f76c0173cc91a4f"));
    assert_eq!(check(v, &other_project, v.body, AK, SK, SIGNED_AT), Err(SignError::BadSignature));

    let q = vector("list_with_query");
    let qmap = headers(q);
    for query in ["empty=&limit=11&name=a%20b%2Fc~d%2Be%26f%3Dg&offset=0&tag=a&tag=z", "limit=10", ""] {
        let changed = Vector { query, ..*q };
        assert_eq!(check(&changed, &qmap, "", AK, SK, SIGNED_AT), Err(SignError::BadSignature), "{query}");
    }
    // Reordered pairs and equivalent escapes are the same canonical query.
    let reordered = Vector { query: "tag=z&offset=0&name=a%20b%2fc%7Ed%2Be%26f%3Dg&limit=10&tag=a&empty", ..*q };
    assert_eq!(check(&reordered, &qmap, "", AK, SK, SIGNED_AT), Ok(()));
}

#[test]
fn unsigned_headers_may_change_but_signed_ones_may_not() {
    let v = vector("extra_headers");
    let mut map = headers(v);
    map.insert("x_not_signed", HeaderValue::from_static("changed"));
    map.insert("accept", HeaderValue::from_static("*/*"));
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT), Ok(()));
    map.insert("x-custom", HeaderValue::from_static("hello world"));
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT), Err(SignError::BadSignature));
    map.remove("x-custom");
    assert!(
        matches!(check(v, &map, v.body, AK, SK, SIGNED_AT), Err(SignError::Malformed(m)) if m.contains("x-custom"))
    );
}

#[test]
fn wrong_keys_are_refused() {
    let v = vector("create_vpc_channel");
    let map = headers(v);
    assert_eq!(
        check(v, &map, v.body, AK, "s3cr3tSKexample0000000000000000000000001", SIGNED_AT),
        Err(SignError::BadSignature)
    );
    assert_eq!(check(v, &map, v.body, AK, "", SIGNED_AT), Err(SignError::BadSignature));
    assert_eq!(check(v, &map, v.body, "HPUAEXAMPLEAK0000002", SK, SIGNED_AT), Err(SignError::UnknownAccessKey));
    assert_eq!(check(v, &map, v.body, "HPUAEXAMPLEAK000000", SK, SIGNED_AT), Err(SignError::UnknownAccessKey));
}

#[test]
fn clock_skew_is_bounded_both_ways() {
    let v = vector("create_vpc_channel");
    let map = headers(v);
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT + SKEW), Ok(()));
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT - SKEW), Ok(()));
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT + SKEW + 1), Err(SignError::ClockSkew { skew_s: SKEW + 1 }));
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT - 3600), Err(SignError::ClockSkew { skew_s: -3600 }));
    assert_eq!(check(v, &map, v.body, AK, SK, i64::MIN), Err(SignError::ClockSkew { skew_s: i64::MIN }));
}

#[test]
fn missing_and_malformed_headers() {
    let v = vector("create_vpc_channel");
    let signed = headers(v);
    let auth = signed[http::header::AUTHORIZATION].to_str().expect("ascii").to_owned();
    let with_auth = |value: &str| {
        let mut map = signed.clone();
        map.insert(http::header::AUTHORIZATION, HeaderValue::from_str(value).expect("header value"));
        check(v, &map, v.body, AK, SK, SIGNED_AT)
    };
    let malformed = |r: Result<(), SignError>| matches!(r, Err(SignError::Malformed(_)));

    let mut none = signed.clone();
    none.remove(http::header::AUTHORIZATION);
    assert_eq!(check(v, &none, v.body, AK, SK, SIGNED_AT), Err(SignError::Missing));
    assert_eq!(with_auth("OAuth 0a1b2c"), Err(SignError::Missing));
    assert!(malformed(with_auth(&auth.replace("SDK-HMAC-SHA256", "SDK-HMAC-SM3"))));
    assert!(malformed(with_auth("SDK-HMAC-SHA256")));
    assert!(malformed(with_auth(&auth.replace(", Signature=", ", Sig="))));
    assert!(malformed(with_auth(&auth.replace("Signature=a7", "Signature=zz"))));
    assert!(malformed(with_auth(&auth.replace("Signature=a794", "Signature=a79"))));
    assert!(malformed(with_auth(&auth.replace("SignedHeaders=content-type;", "SignedHeaders=Content-Type;"))));
    assert!(malformed(with_auth(&format!("{auth}, Access={AK}"))));
    // X-Sdk-Date must be signed, present, well-formed and single.
    assert!(malformed(with_auth(&auth.replace(";x-sdk-date", ""))));
    let mut no_date = signed.clone();
    no_date.remove("x-sdk-date");
    assert!(malformed(check(v, &no_date, v.body, AK, SK, SIGNED_AT)));
    for bad in ["2026-11-23T17:45:00Z", "20261123T174500", "20261323T174500Z", "20261123T174500Z "] {
        let mut map = signed.clone();
        map.insert("x-sdk-date", HeaderValue::from_str(bad).expect("header value"));
        assert!(malformed(check(v, &map, v.body, AK, SK, SIGNED_AT)), "{bad}");
    }
    let mut two_dates = signed.clone();
    two_dates.append("x-sdk-date", HeaderValue::from_static("20261123T174500Z"));
    assert!(malformed(check(v, &two_dates, v.body, AK, SK, SIGNED_AT)));
}

#[test]
fn payload_hash_header_must_cover_the_body() {
    let v = vector("create_vpc_channel");
    let mut map = headers(v);
    map.insert("x-sdk-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT), Err(SignError::UnsignedPayload));
    map.insert(
        "x-sdk-content-sha256",
        HeaderValue::from_static("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    );
    assert_eq!(check(v, &map, v.body, AK, SK, SIGNED_AT), Err(SignError::BadSignature));
}
