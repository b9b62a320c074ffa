//! The HTTP side of `lbsim serve`: the listener, and the [`Handler`] that answers one request
//! (route, body limit, auth, project scope, then the operation). The fuzz target
//! `control_api` drives the same handler without a socket.

use super::auth::{Auth, Scope, Signed};
use super::dataplane::{self, Env};
use super::errors::ApiError;
use super::state::{self, Control, Registry};
use super::{api_of_path, dispatch, ids, match_template, store, vpc_channels, Ctx, Handled, Op, Reply, ROUTES};
use crate::model;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
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
            job_duration: Duration::from_secs(1),
            state: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
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
}

impl Handler {
    /// A handler over an empty registry, with no state file: what the fuzz target drives.
    pub fn new(auth: Auth, env: Env) -> Handler {
        Handler::over(Registry::default(), None, Arc::new(env), auth, 1 << 20, Duration::ZERO)
    }

    fn over(
        registry: Registry,
        store: Option<Arc<store::Store>>,
        env: Arc<Env>,
        auth: Auth,
        max_body_bytes: usize,
        job_duration: Duration,
    ) -> Handler {
        let control = Arc::new(Control {
            registry: tokio::sync::Mutex::new(registry),
            ids: ids::IdGen::new(),
            env,
            job_duration,
            store,
        });
        Handler { inner: Arc::new(Shared { control, auth, max_body_bytes }) }
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
        let result = answer(shared, &request_id, req).await;
        let (status, body) = match result {
            Ok(Reply { status, body }) => (status, body),
            Err(e) => (e.status, Some(e.body(&request_id))),
        };
        tracing::info!(request_id = %request_id, %method, %path, status = status.as_u16(), "api");
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let mut resp = hyper::Response::new(Full::new(bytes));
        *resp.status_mut() = status;
        if status != StatusCode::NO_CONTENT {
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            // RFC 9110 §15.5.6: a 405 lists the methods the resource has.
            if let Ok(v) = HeaderValue::from_str(&allowed_methods(&path)) {
                resp.headers_mut().insert(ALLOW, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
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

/// The methods of the routes whose template matches `path`, as an `Allow` value.
fn allowed_methods(path: &str) -> String {
    let methods: Vec<&str> =
        ROUTES.iter().filter(|r| match_template(r.path, path).is_some()).map(|r| r.method).collect();
    methods.join(", ")
}

/// A running control API.
pub struct Server {
    addr: SocketAddr,
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
        let (store, mut registry) = match &cfg.state {
            Some(path) => {
                let store = store::Store::open(path).map_err(state::PersistError::from)?;
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
            registry.runtimes.insert(id, rt);
        }
        let listener = TcpListener::bind(cfg.listen).await.map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        let handler = Handler::over(registry, store, env, cfg.auth, cfg.max_body_bytes, cfg.job_duration);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, handler.clone(), stopped));
        tracing::info!(%addr, "control API listening");
        Ok(Server { addr, handler, stop: Some(stop), task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many channels exist (restored from the state file, or created since).
    pub async fn channel_count(&self) -> usize {
        self.handler.inner.control.registry.lock().await.channels.len()
    }

    /// Creates channels from a scenario's channel bodies in `project` (as the create call would).
    pub async fn load_channels(&self, project: &str, channels: &[model::VpcChannel]) -> Result<(), ApiError> {
        for ch in channels {
            vpc_channels::create_channels(&self.handler.inner.control, project, ch).await?;
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

async fn accept_loop(listener: TcpListener, handler: Handler, mut stopped: oneshot::Receiver<()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let handler = handler.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler.handle(req).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

async fn answer<B>(shared: &Shared, request_id: &str, req: hyper::Request<B>) -> Handled
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
        return Err(if path_known {
            ApiError::method_not_allowed(api, req.method().as_str(), &path)
        } else {
            ApiError::no_route(api, req.method().as_str(), &path)
        });
    };
    // The body first: an AK/SK signature covers it.
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, shared.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(ApiError::too_large(route.api, shared.max_body_bytes))
        }
        Err(_) => {
            return Err(ApiError::invalid(route.api, model::Problem::Malformed, "", "the body could not be read"))
        }
    };
    let scope = if route.op == Op::OpenApi {
        Scope::All
    } else {
        let query = parts.uri.query().unwrap_or("");
        let signed = Signed { method: parts.method.as_str(), path: parts.uri.path(), query, body: &body };
        shared.auth.check(&parts.headers, signed).ok_or_else(|| ApiError::unauthorized(route.api))?
    };
    let project = params.get("project_id");
    if !project.is_empty() && !scope.allows(project) {
        return Err(ApiError::forbidden(route.api));
    }
    let ctx =
        Ctx { control: Arc::clone(&shared.control), request_id: request_id.to_string(), scope, params, api: route.api };
    isolated(route.api, request_id, dispatch(route.op, ctx, body)).await
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
