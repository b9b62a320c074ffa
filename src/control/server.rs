//! The HTTP side of `lbsim serve`: the listener, and the [`Handler`] that answers one request
//! (route, body limit, auth, project scope, then the operation). The fuzz target
//! `control_api` drives the same handler without a socket.

use super::auth::{Auth, Presented, Scope, Signed};
use super::conn::{self, Activity, Admission, Gate, Limits};
use super::dataplane::{self, Env};
use super::errors::ApiError;
use super::quota::Quotas;
use super::state::{self, Control, Registry};
use super::{api_of_path, dispatch, ids, match_template, store, vpc_channels, Ctx, Handled, Op, Reply, ROUTES};
use crate::model;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use hyper::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How `serve` runs.
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub auth: Auth,
    pub env: Env,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// Timeouts and the connection limit.
    pub limits: Limits,
    /// What one project may create.
    pub quotas: Quotas,
    /// How long an SDRS job takes to complete.
    pub job_duration: Duration,
    /// The durable store's file (`--state`): every acknowledged change is in it, and the server
    /// starts from it.
    pub state: Option<std::path::PathBuf>,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr, auth: Auth) -> ServeConfig {
        ServeConfig {
            listen,
            auth,
            env: Env::default(),
            max_body_bytes: 1 << 20,
            limits: Limits::default(),
            quotas: Quotas::default(),
            job_duration: Duration::from_secs(1),
            state: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state file cannot be read as a state: exit 2, with how to start afresh.
    #[error(transparent)]
    Damaged(store::StoreError),
    #[error("listening on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    State(#[from] state::PersistError),
    #[error("restoring channel {id}: {source}")]
    Channel { id: String, source: dataplane::DataPlaneError },
}

/// Answers API requests, one at a time or many at once (cheap to clone).
#[derive(Clone)]
pub struct Handler {
    inner: Arc<Shared>,
}

struct Shared {
    control: Arc<Control>,
    auth: Auth,
    max_body_bytes: usize,
    body_timeout: Duration,
}

impl Handler {
    /// A handler over an empty registry, with no state file: what the fuzz target drives.
    pub fn new(auth: Auth, env: Env) -> Handler {
        let quotas = Quotas::unlimited();
        Handler::over(
            Registry::default(),
            None,
            Arc::new(env),
            auth,
            1 << 20,
            (Limits::default(), quotas),
            Duration::ZERO,
        )
    }

    fn over(
        registry: Registry,
        store: Option<Arc<store::Store>>,
        env: Arc<Env>,
        auth: Auth,
        max_body_bytes: usize,
        (limits, quotas): (Limits, Quotas),
        job_duration: Duration,
    ) -> Handler {
        let control = Arc::new(Control {
            registry: tokio::sync::Mutex::new(registry),
            ids: ids::IdGen::new(),
            env,
            job_duration,
            store,
            quotas,
        });
        Handler { inner: Arc::new(Shared { control, auth, max_body_bytes, body_timeout: limits.body_timeout }) }
    }

    /// The answer to one request, never an error: failures are the cloud APIs' error bodies.
    pub async fn handle<B>(&self, req: hyper::Request<B>) -> hyper::Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let shared = &self.inner;
        let request_id = shared.control.ids.uuid();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (result, body_read) = answer(shared, &request_id, req).await;
        let (status, body) = match result {
            Ok(Reply { status, body }) => (status, body),
            Err(e) => (e.status, Some(e.body(&request_id))),
        };
        tracing::info!(request_id = %request_id, %method, %path, status = status.as_u16(), "api");
        let mut resp = response(status, body, &request_id);
        // A body left unread (refused before it was read, or cut off) ends the connection, as
        // does an answer about the connection itself.
        if !body_read || matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE) {
            resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            // RFC 9110 §15.5.6: a 405 lists the methods the resource has.
            if let Ok(v) = HeaderValue::from_str(&allowed_methods(&path)) {
                resp.headers_mut().insert(ALLOW, v);
            }
        }
        resp
    }

    /// The answer on a connection over the limit: 503 in the path's family shape, then close.
    pub fn busy<B>(&self, req: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
        let request_id = self.inner.control.ids.uuid();
        let e = ApiError::busy(api_of_path(req.uri().path()));
        let mut resp = response(e.status, Some(e.body(&request_id)), &request_id);
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }

    /// Stops every channel's data plane.
    pub async fn shutdown(&self) {
        let runtimes = std::mem::take(&mut self.inner.control.registry.lock().await.runtimes);
        for (_, rt) in runtimes {
            rt.shutdown().await;
        }
    }
}

/// A JSON answer (none for 204) with its request id.
fn response(status: StatusCode, body: Option<serde_json::Value>, request_id: &str) -> hyper::Response<Full<Bytes>> {
    let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let mut resp = hyper::Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The methods of the routes whose template matches `path`, as an `Allow` value.
fn allowed_methods(path: &str) -> String {
    let methods: Vec<&str> =
        ROUTES.iter().filter(|r| match_template(r.path, path).is_some()).map(|r| r.method).collect();
    methods.join(", ")
}

/// A running control API.
pub struct Server {
    addr: SocketAddr,
    /// The state file was empty and a new state was started in it.
    fresh_state: bool,
    handler: Handler,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Reads the state file (if any) and starts its channels, binds `listen` (loopback only)
    /// and serves until [`Server::shutdown`].
    pub async fn start(cfg: ServeConfig) -> Result<Server, ServeError> {
        let listen_error = |source| ServeError::Listen { addr: cfg.listen, source };
        if !cfg.listen.ip().is_loopback() {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a loopback address");
            return Err(listen_error(e));
        }
        let mut fresh = false;
        let (store, mut registry) = match &cfg.state {
            Some(path) => {
                let (store, opened) = store::Store::open_checked(path).map_err(|e| match e {
                    e @ store::StoreError::Damaged { .. } => ServeError::Damaged(e),
                    e => ServeError::State(e.into()),
                })?;
                fresh = opened == store::Opened::Fresh;
                let records = store.load_all().map_err(state::PersistError::from)?;
                (Some(Arc::new(store)), Registry::restore(records)?)
            }
            None => (None, Registry::default()),
        };
        let env = Arc::new(cfg.env);
        let ids: Vec<String> = registry.channels.keys().cloned().collect();
        for id in ids {
            let Some(rec) = registry.channels.get(&id) else { continue };
            let effective = registry.effective_channel(rec, &env);
            let rt = dataplane::ChannelRuntime::start(&effective, Arc::clone(&env))
                .await
                .map_err(|source| ServeError::Channel { id: id.clone(), source })?;
            registry.runtimes.insert(id, Arc::new(rt));
        }
        let listener = TcpListener::bind(cfg.listen).await.map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        let handler = Handler::over(
            registry,
            store,
            env,
            cfg.auth,
            cfg.max_body_bytes,
            (cfg.limits, cfg.quotas),
            cfg.job_duration,
        );
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, handler.clone(), cfg.limits, stopped));
        tracing::info!(%addr, "control API listening");
        Ok(Server { addr, handler, stop: Some(stop), task, fresh_state: fresh })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether `--state` named an empty file (as `mktemp` makes), in which a new state started.
    pub fn started_on_empty_state(&self) -> bool {
        self.fresh_state
    }

    /// How many channels exist (restored from the state file, or created since).
    pub async fn channel_count(&self) -> usize {
        self.handler.inner.control.registry.lock().await.channels.len()
    }

    /// Write transactions the state file has committed since the server started (`None`
    /// without `--state`).
    pub fn state_commits(&self) -> Option<u64> {
        self.handler.inner.control.store.as_ref().map(|s| s.commits())
    }

    /// Creates channels from a scenario's channel bodies in `project` (as the create call would).
    pub async fn load_channels(&self, project: &str, channels: &[model::VpcChannel]) -> Result<(), ApiError> {
        for ch in channels {
            vpc_channels::create_channels(&self.handler.inner.control, project, ch, false).await?;
        }
        Ok(())
    }

    /// Stops accepting, finishes open API requests, then stops every channel's data plane.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.handler.shutdown().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler, limits: Limits, mut stopped: oneshot::Receiver<()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let gate = Gate::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (admission, slot) = gate.admit(limits.max_connections);
                if admission == Admission::Refuse {
                    continue;
                }
                let activity = Arc::new(Activity::new());
                let (handler, watched) = (handler.clone(), Arc::clone(&activity));
                let svc = hyper::service::service_fn(move |req| {
                    let (handler, activity) = (handler.clone(), Arc::clone(&activity));
                    async move {
                        let _busy = activity.begin();
                        let resp = match admission {
                            Admission::Serve => handler.handle(req).await,
                            _ => handler.busy(&req),
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
                tokio::spawn(async move {
                    conn::watch(conn, &watched, limits.header_timeout).await;
                    drop(slot);
                });
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// The answer to one request, and whether its body was read to the end.
async fn answer<B>(shared: &Shared, request_id: &str, req: hyper::Request<B>) -> (Handled, bool)
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_string();
    let mut matched = None;
    let mut path_known = false;
    for route in ROUTES {
        if let Some(params) = match_template(route.path, &path) {
            path_known = true;
            if req.method().as_str() == route.method {
                matched = Some((route, params));
                break;
            }
        }
    }
    let Some((route, params)) = matched else {
        let api = api_of_path(&path);
        let e = if path_known {
            ApiError::method_not_allowed(api, req.method().as_str(), &path)
        } else {
            ApiError::no_route(api, req.method().as_str(), &path)
        };
        return (Err(e), req.body().is_end_stream());
    };
    // Who is calling, from the headers alone: nothing is read from a caller without a
    // credential. A signature covers the body, so it is checked in full once the body is in.
    let presented = match route.op {
        Op::OpenApi => Some(Presented::Token(Scope::All)),
        _ => shared.auth.presented(req.headers()),
    };
    let Some(presented) = presented else {
        return (Err(ApiError::unauthorized(route.api)), req.body().is_end_stream());
    };
    if let Some(e) = unsupported_media_type(route.api, req.headers()) {
        return (Err(e), req.body().is_end_stream());
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, shared.max_body_bytes).collect();
    let body = match tokio::time::timeout(shared.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Err(_) => return (Err(ApiError::timeout(route.api, shared.body_timeout)), false),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return (Err(ApiError::too_large(route.api, shared.max_body_bytes)), false)
        }
        Ok(Err(_)) => {
            let e = ApiError::invalid(route.api, model::Problem::Malformed, "", "the body could not be read");
            return (Err(e), false);
        }
    };
    let scope = match presented {
        Presented::Token(scope) => scope,
        Presented::Signature => {
            let query = parts.uri.query().unwrap_or("");
            let signed = Signed { method: parts.method.as_str(), path: parts.uri.path(), query, body: &body };
            match shared.auth.check_signature(&parts.headers, signed) {
                Some(scope) => scope,
                None => return (Err(ApiError::unauthorized(route.api)), true),
            }
        }
    };
    let project = params.get("project_id");
    if !project.is_empty() && !scope.allows(project) {
        return (Err(ApiError::forbidden(route.api)), true);
    }
    let Some(domain) = super::auth::domain(&parts.headers, &scope) else {
        return (Err(ApiError::forbidden(route.api)), true);
    };
    let control = Arc::clone(&shared.control);
    let ctx = Ctx { control, request_id: request_id.to_string(), scope, domain, params, api: route.api };
    (isolated(route.api, request_id, dispatch(route.op, ctx, body)).await, true)
}

/// 415 for a body declared as anything but JSON (`application/json`, or a `+json` type,
/// parameters such as `charset` allowed). A request without `Content-Type` is read as JSON, as
/// the cloud's SDKs always send one and curl users often do not.
fn unsupported_media_type(api: model::Api, headers: &hyper::HeaderMap) -> Option<ApiError> {
    let value = headers.get(CONTENT_TYPE)?;
    let essence = value.to_str().ok().and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase());
    match essence {
        Some(t) if t == "application/json" || (t.starts_with("application/") && t.ends_with("+json")) => None,
        _ => Some(ApiError::unsupported_media_type(api, &String::from_utf8_lossy(value.as_bytes()))),
    }
}

/// Runs a handler in its own task, so that a panic in it becomes a bare 500 (the cause in the
/// log, with the request id, never in the answer) and not a dropped connection.
async fn isolated(
    api: model::Api,
    request_id: &str,
    handler: impl Future<Output = Handled> + Send + 'static,
) -> Handled {
    match tokio::spawn(handler).await {
        Ok(handled) => handled,
        Err(e) => {
            tracing::error!(request_id = %request_id, error = %e, "handler failed");
            Err(ApiError::internal(api))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::auth::Token;
    use http_body_util::Empty;

    fn handler() -> Handler {
        let tokens = vec![Token::parse("t").expect("token")];
        Handler::new(Auth { tokens, aksk: None }, Env::default())
    }

    fn request(method: &str, path: &str) -> hyper::Request<Empty<Bytes>> {
        hyper::Request::builder().method(method).uri(path).header("x-auth-token", "t").body(Empty::new()).unwrap()
    }

    #[tokio::test]
    async fn a_405_lists_the_methods_of_the_resource() {
        let h = handler();
        let resp = h.handle(request("PATCH", "/v1/endpoint-groups")).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers().get(ALLOW).and_then(|v| v.to_str().ok()), Some("POST, GET"));
        let resp = h.handle(request("TRACE", "/v1/p1/jobs/j1")).await;
        assert_eq!(resp.headers().get(ALLOW).and_then(|v| v.to_str().ok()), Some("GET"));
        // A path no route has is a 404, with no Allow.
        let resp = h.handle(request("TRACE", "/v1/nothing/here/at/all")).await;
        assert_eq!((resp.status(), resp.headers().get(ALLOW)), (StatusCode::NOT_FOUND, None));
    }

    fn with_body(method: &str, path: &str, body: serde_json::Value) -> hyper::Request<Full<Bytes>> {
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("x-auth-token", "t")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    /// The name check and the rename it allows are one step: requests queued behind the
    /// registry (a rename, a create of the same name, another rename) cannot both pass the check
    /// before either applies. With the check and the change in two steps, the create ran between
    /// the first rename's check and its change, and two channels had the name.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rename_and_a_create_of_one_name_cannot_both_succeed() {
        let h = handler();
        let channel = |name: &str| {
            serde_json::json!({"name": name, "port": 8080, "balance_strategy": 1, "member_type": "ip",
                "instance_ids": ["i1"], "members": [{"host": "10.1.0.1"}]})
        };
        let mut paths = Vec::new();
        for name in ["first_one", "second_one"] {
            let resp = h.handle(with_body("POST", "/v2/p1/apic/vpc-channels", channel(name))).await;
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            let id = v["project_vpc_channels"][0]["id"].as_str().expect("id").to_string();
            paths.push(format!("/v2/p1/apic/instances/i1/vpc-channels/{id}"));
        }
        let held = h.inner.control.registry.lock().await;
        let mut answers = Vec::new();
        for (method, path) in
            [("PUT", paths[0].as_str()), ("POST", "/v2/p1/apic/vpc-channels"), ("PUT", paths[1].as_str())]
        {
            let (h, req) = (h.clone(), with_body(method, path, channel("same_name")));
            answers.push(tokio::spawn(async move { h.handle(req).await.status() }));
            // Let it reach the registry's queue before the next one (the queue is first come,
            // first served).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(held);
        let mut statuses = Vec::new();
        for a in answers {
            statuses.push(tokio::time::timeout(Duration::from_secs(10), a).await.expect("in time").expect("task"));
        }
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT, StatusCode::CONFLICT]);
        let reg = h.inner.control.registry.lock().await;
        assert_eq!(reg.channels.values().filter(|c| c.channel.name == "same_name").count(), 1);
        drop(reg);
        h.shutdown().await;
    }

    /// A channel whose data plane is busy applying a change (here: held) neither delays the
    /// answer to a change of its own nor anything of another project; the change reaches the
    /// data plane once it is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_data_plane_holds_up_no_one() {
        let h = handler();
        let limit = Duration::from_secs(5);
        let channel = |name: &str| {
            serde_json::json!({"name": name, "port": 8080, "balance_strategy": 1, "member_type": "ip",
                "instance_ids": ["i1"], "members": [{"host": "10.1.0.1"}]})
        };
        let resp = h.handle(with_body("POST", "/v2/p1/apic/vpc-channels", channel("busy_one"))).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let rt = h.inner.control.registry.lock().await.runtimes.values().next().cloned().expect("runtime");
        let held = rt.hold_apply().await;
        let members = serde_json::json!({"members": [{"host": "10.1.0.2"}]});
        let path = "/v2/p1/apic/instances/i1/vpc-channels/ID/members"
            .replace("ID", h.inner.control.registry.lock().await.channels.keys().next().expect("channel"));
        let resp = tokio::time::timeout(limit, h.handle(with_body("POST", &path, members))).await;
        assert_eq!(resp.expect("answered while the data plane is busy").status(), StatusCode::CREATED);
        let other =
            tokio::time::timeout(limit, h.handle(with_body("POST", "/v2/p2/apic/vpc-channels", channel("other"))));
        assert_eq!(other.await.expect("another project is not held up").status(), StatusCode::CREATED);
        let list = tokio::time::timeout(limit, h.handle(request("GET", "/v2/p1/apic/instances/i1/vpc-channels")));
        assert_eq!(list.await.expect("reads are not held up").status(), StatusCode::OK);
        assert!(!rt.is_settled());
        drop(held);
        tokio::time::timeout(limit, rt.settled()).await.expect("the change applies once the data plane is free");
        assert!(rt.has_backend(crate::MemberId::parse("10.1.0.2:8080").expect("id")));
        h.shutdown().await;
    }

    #[tokio::test]
    async fn a_handler_that_panics_answers_a_bare_500() {
        let secret = "/var/lib/lbsim/state.redb: disk quota exceeded";
        // The ZStack shape has no request id in its body (the X-Request-Id header carries it).
        for (api, code, id) in [(model::Api::Roma, "APIG.9999", "req-1"), (model::Api::Zstack, "SYS.1000", "")] {
            let fut = async move {
                if secret.is_empty() {
                    return Reply::no_content();
                }
                panic!("{secret}")
            };
            let e = match isolated(api, "req-1", fut).await {
                Err(e) => e,
                Ok(_) => panic!("a panic answered a success"),
            };
            assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
            let body = e.body("req-1").to_string();
            assert!(body.contains(code) && body.contains(id) && body.contains("System error"), "{body}");
            assert!(!body.contains("quota") && !body.contains("redb") && !body.contains("panicked"), "{body}");
        }
    }
}
