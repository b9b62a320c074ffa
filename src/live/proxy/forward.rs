//! One request through the proxy: checks, the pick, the attempts and their retries, and the
//! headers that go upstream and back (see the module doc of [`super`]).

use super::body::{ResponseBody, Upstream};
use super::conn::{Active, Activity};
use super::pool::{Conn, ConnectError, Pool};
use super::worker::Worker;
use crate::balancer::MemberId;
use crate::health::{HealthState, Outcome};
use crate::live::stats::{PickTier, Reason, Tally};
use crate::Request;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use hyper::{Method, StatusCode, Uri, Version};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction; nor are the
/// headers a `Connection` header names.
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    hyper::header::TRANSFER_ENCODING,
    hyper::header::TE,
    hyper::header::TRAILER,
    hyper::header::UPGRADE,
    hyper::header::PROXY_AUTHORIZATION,
];

type Response = hyper::Response<ResponseBody>;

fn plain(status: StatusCode, msg: impl Into<Bytes>, active: Active) -> Response {
    let mut r = hyper::Response::new(ResponseBody::plain(msg.into(), active));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The answer on a connection over the limit.
pub(super) fn over_limit() -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"too many connections\n")));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    r.headers_mut().insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn client_ip(worker: &Worker, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let from_header = worker
        .common
        .cfg
        .client_ip_header
        .as_ref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next().and_then(|first| first.trim().parse::<IpAddr>().ok()));
    from_header.unwrap_or(peer.ip())
}

/// Passive health: an attempt's outcome into outlier detection (nothing when it is off).
fn passive(worker: &Worker, id: MemberId, ok: bool) {
    let outcome = if ok { Outcome::Success } else { Outcome::Failure };
    let common = &worker.common;
    if common.lb.health().record_response(id, outcome, common.origin.elapsed()) == Some(HealthState::Ejected) {
        common.stats.ejected(id);
        tracing::warn!(member = %id, "member ejected by outlier detection");
    }
}

/// A failed request's log line, within the rate limit.
fn log_failure(worker: &Worker, reason: Reason, status: StatusCode, method: &Method, path: &str, tried: &[MemberId]) {
    if let Some(suppressed) = worker.common.failures.allow() {
        let members: Vec<String> = tried.iter().map(MemberId::to_string).collect();
        tracing::warn!(
            reason = reason.as_str(),
            status = status.as_u16(),
            %method,
            path,
            members = members.join(","),
            suppressed,
            "request failed"
        );
    }
}

fn path<'a>(req: &Request<'a>) -> &'a str {
    req.uri()
}

/// Why a request is refused before any member sees it, if it is.
fn refusal(parts: &hyper::http::request::Parts) -> Option<(StatusCode, &'static str)> {
    if parts.method == Method::CONNECT {
        return Some((StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported: this proxy does not open tunnels\n"));
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400.
    if parts.version == Version::HTTP_11 && !parts.headers.contains_key(HOST) {
        return Some((StatusCode::BAD_REQUEST, "HTTP/1.1 request without a Host header\n"));
    }
    None
}

pub(super) async fn handle(
    worker: Arc<Worker>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<Response, Infallible> {
    let active = Active::start(activity);
    let started = Instant::now();
    let common = &worker.common;
    let cfg = &common.cfg;
    let mut tally = Tally::new(Arc::clone(&common.stats));
    let client = client_ip(&worker, peer, req.headers());
    let (parts, body) = req.into_parts();
    if let Some((status, why)) = refusal(&parts) {
        tally.failed(Reason::BadRequest);
        let mut r = plain(status, why, active);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            r.headers_mut().insert(
                hyper::header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE"),
            );
        }
        return Ok(r);
    }
    let read = tokio::time::timeout(cfg.body_read_timeout, Limited::new(body, cfg.max_body_bytes).collect());
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Err(_) => {
            tally.failed(Reason::ClientTimeout);
            return Ok(plain(StatusCode::REQUEST_TIMEOUT, "request body not received in time\n", active));
        }
        Ok(Err(e)) => {
            let too_large = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
            let (status, reason) = if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, Reason::BodyTooLarge)
            } else {
                (StatusCode::BAD_REQUEST, Reason::ClientAbort)
            };
            tally.failed(reason);
            return Ok(plain(status, format!("{}\n", status.canonical_reason().unwrap_or("error")), active));
        }
    };
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    let template = Template::new(parts, peer);
    let lreq = Request::new(client, template.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut tried: Vec<MemberId> = Vec::new();
    let mut last = Reason::NoMember;
    for attempt in 0..=cfg.retries {
        let picked = if tried.is_empty() { common.lb.select(&lreq) } else { common.lb.select_excluding(&lreq, &tried) };
        let pick = match picked {
            Ok(p) => p.into_owned(&common.lb),
            Err(e) => {
                if tried.is_empty() {
                    tally.failed(Reason::NoMember);
                    log_failure(
                        &worker,
                        Reason::NoMember,
                        StatusCode::SERVICE_UNAVAILABLE,
                        &template.method,
                        path(&lreq),
                        &tried,
                    );
                    return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, format!("no member: {e}\n"), active));
                }
                break;
            }
        };
        common.stats.picked(common.lb.tier().map_or(PickTier::Primary, PickTier::from));
        let id = pick.member().id();
        let retry_ok = |r: Reason| attempt < cfg.retries && (r.retriable() || (r == Reason::Reset && idempotent));
        tally.attempt_started(id);
        let Some(addr) = cfg.upstreams.get(id) else {
            // A member with no loopback server: as if it refused the connection.
            last = Reason::Refused;
            tally.attempt_failed(id, last);
            tried.push(id);
            if retry_ok(last) {
                continue;
            }
            break;
        };
        let upstream = template.request(&body);
        let outcome =
            tokio::time::timeout(cfg.request_timeout, exchange(&worker.pool, addr, upstream, cfg.request_timeout))
                .await;
        let reason = match outcome {
            Err(_) => Reason::Timeout,
            Ok(Err(r)) => r,
            Ok(Ok((resp, _))) if resp.status() == StatusCode::SERVICE_UNAVAILABLE && attempt < cfg.retries => {
                Reason::QueueFull
            }
            Ok(Ok((resp, conn))) => {
                let status = resp.status();
                passive(&worker, id, !status.is_server_error());
                tally.attempt_answered(id, status.as_u16(), started.elapsed());
                if !tried.is_empty() {
                    common.stats.retried();
                }
                tally.answered(status.as_u16(), started.elapsed());
                tracing::trace!(member = %id, status = status.as_u16(), attempt, "proxied");
                let (mut head, inner) = resp.into_parts();
                strip_hop_by_hop(&mut head.headers);
                let body = Upstream { inner, pick: Some(pick), conn: Some(conn), worker: Arc::clone(&worker) };
                return Ok(hyper::Response::from_parts(head, ResponseBody::upstream(body, active)));
            }
        };
        tally.attempt_failed(id, reason);
        passive(&worker, id, false);
        tracing::debug!(member = %id, ?reason, attempt, "attempt failed");
        last = reason;
        tried.push(id);
        if !retry_ok(reason) {
            break;
        }
    }
    tally.failed(last);
    if tried.len() > 1 {
        common.stats.retried();
    }
    let status = match last {
        Reason::Timeout => StatusCode::GATEWAY_TIMEOUT,
        Reason::QueueFull | Reason::NoMember => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    log_failure(&worker, last, status, &template.method, path(&lreq), &tried);
    Ok(plain(status, format!("upstream failed: {}\n", last.as_str()), active))
}

/// One exchange with a member: on a pooled connection when one is idle, else a new one. A
/// pooled connection that its member closed before the request went out is replaced by a new
/// one (the member never saw the request).
async fn exchange(
    pool: &Pool,
    addr: SocketAddr,
    mut req: hyper::Request<Full<Bytes>>,
    connect_within: std::time::Duration,
) -> Result<(hyper::Response<Incoming>, Conn), Reason> {
    loop {
        let mut conn = match pool.checkout(addr) {
            Some(c) => c,
            None => match Pool::connect(addr, connect_within).await {
                Ok(c) => c,
                // As nginx answers a proxy_connect_timeout: 504, not a refusal.
                Err(ConnectError::TimedOut) => return Err(Reason::Timeout),
                Err(ConnectError::Failed(e)) => {
                    tracing::debug!(%addr, error = %e, "upstream connect failed");
                    return Err(Reason::Refused);
                }
            },
        };
        match conn.sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, conn)),
            Err(mut e) => match e.take_message() {
                Some(unsent) if conn.reused => req = unsent,
                _ => return Err(Reason::Reset),
            },
        }
    }
}

/// The parts of the upstream request that every attempt shares.
struct Template {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Template {
    fn new(parts: hyper::http::request::Parts, peer: SocketAddr) -> Template {
        let hyper::http::request::Parts { method, uri, mut headers, .. } = parts;
        strip_hop_by_hop(&mut headers);
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
        if !headers.contains_key(HOST) {
            // HTTP/2 (and absolute-form HTTP/1.1) carry the host in the URI.
            if let Some(host) = uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
                headers.insert(HOST, host);
            }
        }
        // Origin form to the member: the path and query only.
        let uri = match uri.authority() {
            None => uri,
            Some(_) => uri.path_and_query().map_or(Uri::from_static("/"), |pq| Uri::from(pq.clone())),
        };
        Template { method, uri, headers }
    }

    fn request(&self, body: &Bytes) -> hyper::Request<Full<Bytes>> {
        let mut req = hyper::Request::new(Full::new(body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Removes the hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_named_in_connection_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("x-secret, Keep-Alive"));
        h.append(CONNECTION, HeaderValue::from_static("x-other"));
        for (k, v) in
            [("x-secret", "1"), ("x-other", "2"), ("keep-alive", "timeout=5"), ("x-kept", "3"), ("te", "trailers")]
        {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }
}
