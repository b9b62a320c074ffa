//! The control API's request handling (`control::Handler`, what `lbsim serve` runs per request),
//! driven without a socket by a short script of requests, so that a create can be followed by
//! calls on what it made.
//!
//! Input: UTF-8 text, requests separated by a line `---`; each request is `METHOD PATH` on its
//! first line and the body after it. A path may say `$id` (the last `id` an answer carried: a
//! channel, an endpoint group, a protection group) or `$job` (the last `job_id`). A first line
//! that starts with `!` is sent without a token. At most 8 requests per input.
//!
//! Checks, per answer: no 500 (there is no store to fail, so a 500 is a bug: a panic caught by
//! the handler's task); a status the API documents; a JSON body unless 204; an `X-Request-Id`;
//! 401 for an unauthenticated call other than /openapi.json; a 405 names the allowed methods.
#![no_main]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use lbsim::control::auth::{Auth, Token};
use lbsim::control::dataplane::Env;
use lbsim::control::Handler;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

const DOCUMENTED: [u16; 11] = [200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 413];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
}

/// The first value of `key` anywhere in `v` (depth first, in document order).
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v {
        Value::Object(o) => o.get(key).and_then(Value::as_str).or_else(|| o.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

async fn run(text: &str) {
    let tokens = vec![Token::parse("t").expect("token")];
    let env = Env { retire_grace: Duration::ZERO, ..Env::default() };
    let handler = Handler::new(Auth { tokens, aksk: None }, env);
    let (mut id, mut job) = (String::from("none"), String::from("none"));
    for call in text.split("\n---\n").take(8) {
        let (head, body) = call.split_once('\n').unwrap_or((call, ""));
        let (anonymous, head) = match head.strip_prefix('!') {
            Some(h) => (true, h),
            None => (false, head),
        };
        let Some((method, path)) = head.split_once(' ') else { continue };
        let path = path.replace("$id", &id).replace("$job", &job);
        let mut req = http::Request::builder().method(method).uri(path.as_str());
        if !anonymous {
            req = req.header("x-auth-token", "t");
        }
        // Methods and paths http cannot carry are refused before the API sees them.
        let Ok(req) = req.body(Full::new(Bytes::copy_from_slice(body.as_bytes()))) else { continue };
        // The path the API sees: http's parser drops a query and a `#` fragment.
        let route = req.uri().path().to_owned();
        let resp = handler.handle(req).await;
        let status = resp.status().as_u16();
        assert_ne!(status, 500, "{method} {path}: 500");
        assert!(DOCUMENTED.contains(&status), "{method} {path}: undocumented status {status}");
        assert!(resp.headers().contains_key("x-request-id"), "{method} {path}: no request id");
        if status == 405 {
            assert!(resp.headers().contains_key("allow"), "{method} {path}: 405 without Allow");
        }
        // The router merges empty segments (as nginx's merge_slashes does): `//openapi.json` is
        // the document, which needs no token (so is `/openapi.json#x`: no fragment reaches it).
        let public = route.split('/').filter(|s| !s.is_empty()).eq(["openapi.json"]);
        if anonymous && status != 405 && status != 404 && !public {
            assert_eq!(status, 401, "{method} {path}: answered without a token");
        }
        let bytes = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(never) => match never {},
        };
        if status == 204 {
            continue;
        }
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => panic!("{method} {path}: {status} with a body that is not JSON ({e})"),
        };
        if (200..300).contains(&status) {
            if let Some(x) = find(&v, "id") {
                id = x.to_string();
            }
            if let Some(x) = find(&v, "job_id") {
                job = x.to_string();
            }
        }
    }
    handler.shutdown().await;
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    runtime().block_on(run(text));
});
