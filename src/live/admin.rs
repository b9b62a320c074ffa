//! The admin server (`--admin 127.0.0.1:PORT`): `GET /metrics` in the Prometheus text format and
//! `GET /healthz`, on loopback, apart from the proxy's own listeners and limits.

use super::metrics::{self, Reloads, Sources};
use super::stats::ProxyStats;
use crate::Balancer;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the admin server reports on.
pub struct AdminState {
    pub channel: String,
    pub lb: Arc<Balancer>,
    pub stats: Arc<ProxyStats>,
    pub reloads: Arc<Reloads>,
    /// Set when the proxy starts draining: `/healthz` answers 503 from then on.
    pub draining: AtomicBool,
}

/// A running admin server; it stops when dropped.
pub struct Admin {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Admin {
    /// Binds `listen` (loopback only) and serves on the current runtime.
    pub async fn start(listen: SocketAddr, state: Arc<AdminState>) -> std::io::Result<Admin> {
        if !listen.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{listen} is not a loopback address"),
            ));
        }
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, state));
        tracing::info!(%addr, "admin server listening (/metrics, /healthz)");
        Ok(Admin { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req| std::future::ready(Ok::<_, Infallible>(answer(&state, &req))));
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
            let _ = tokio::time::timeout(Duration::from_secs(60), b.serve_connection(TokioIo::new(stream), svc)).await;
        });
    }
}

fn answer<B>(state: &AdminState, req: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
    let text = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
        r
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "GET /metrics or /healthz\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let src = Sources { channel: &state.channel, lb: &state.lb, stats: &state.stats, reloads: &state.reloads };
            text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics::render(&src))
        }
        "/healthz" => {
            if state.draining.load(Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "draining\n".into())
            } else {
                match state.lb.tier() {
                    Ok(_) => text(StatusCode::OK, PLAIN, "ok\n".into()),
                    Err(e) => {
                        text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, format!("no member can take traffic: {e}\n"))
                    }
                }
            }
        }
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found: GET /metrics or /healthz\n".into()),
    }
}
