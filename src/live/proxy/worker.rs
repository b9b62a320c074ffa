//! One worker: a listener, the accept loop, the connection limit and graceful shutdown, on a
//! current-thread runtime of its own (or on the caller's runtime when the proxy has no dedicated
//! workers).

use super::pool::Pool;
use super::{conn, ProxyConfig};
use crate::live::logging::RateLimit;
use crate::live::stats::ProxyStats;
use crate::Balancer;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

/// Pending connections per listener (nginx's default backlog is 511).
const BACKLOG: i32 = 1024;
/// Failed requests logged per second at most (the rest are counted in the next line).
const FAILURE_LINES_PER_S: u32 = 10;
/// How often a worker closes upstream connections idle for longer than the pool keeps them.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What every worker shares.
pub(super) struct Common {
    /// The origin of the balancer's clock (`Balancer::tick`, `record_response`).
    pub(super) origin: Instant,
    pub(super) lb: Arc<Balancer>,
    pub(super) cfg: ProxyConfig,
    pub(super) stats: Arc<ProxyStats>,
    /// Connections served, over all workers.
    served: Arc<Semaphore>,
    /// Connections over the limit that are still answered 503 before being closed.
    spare: Arc<Semaphore>,
    /// Log lines of failed requests.
    pub(super) failures: RateLimit,
}

impl Common {
    pub(super) fn new(lb: Arc<Balancer>, cfg: ProxyConfig, stats: Arc<ProxyStats>, origin: Instant) -> Arc<Common> {
        let limit = cfg.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Common {
            origin,
            lb,
            cfg,
            stats,
            served: Arc::new(Semaphore::new(limit)),
            spare: Arc::new(Semaphore::new(limit)),
            failures: RateLimit::new(FAILURE_LINES_PER_S),
        })
    }
}

/// One worker's state: the shared part and its own upstream pool. Requests clone this `Arc`,
/// whose count no other worker touches.
pub(super) struct Worker {
    pub(super) common: Arc<Common>,
    pub(super) pool: Pool,
}

/// `n` listening sockets on `addr` with `SO_REUSEPORT`, so that the kernel spreads connections
/// over the workers; with port 0 the first one picks the port and the others take the same.
pub(super) fn listeners(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out: Vec<std::net::TcpListener> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = match out.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        if n > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&at.into())?;
        socket.listen(BACKLOG)?;
        out.push(socket.into());
    }
    Ok(out)
}

/// A started worker, as the [`super::Proxy`] holds it.
pub(super) struct Handle {
    stop: Option<oneshot::Sender<Duration>>,
    done: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// Starts worker `i` on `listener`: on a thread of its own with a current-thread runtime
    /// (`dedicated`), else as a task on the caller's runtime.
    pub(super) fn start(
        i: usize,
        listener: std::net::TcpListener,
        common: Arc<Common>,
        dedicated: bool,
    ) -> std::io::Result<Handle> {
        let (stop, stopped) = oneshot::channel();
        let (finished, done) = oneshot::channel();
        let thread = if dedicated {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let t = std::thread::Builder::new().name(format!("lbsim-proxy-{i}")).spawn(move || {
                rt.block_on(run(listener, common, stopped));
                // Connections still open past the grace period end with the runtime.
                drop(rt);
                let _ = finished.send(());
            })?;
            Some(t)
        } else {
            tokio::spawn(async move {
                run(listener, common, stopped).await;
                let _ = finished.send(());
            });
            None
        };
        Ok(Handle { stop: Some(stop), done: Some(done), thread })
    }

    /// Stops accepting; in-flight requests get `grace` to finish.
    pub(super) fn stop(&mut self, grace: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(grace);
        }
    }

    /// Waits until the worker has finished.
    pub(super) async fn join(mut self) {
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
        if let Some(t) = self.thread.take() {
            // It has sent `done` as its last act.
            let _ = t.join();
        }
    }
}

async fn run(listener: std::net::TcpListener, common: Arc<Common>, mut stopped: oneshot::Receiver<Duration>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "proxy worker cannot listen");
            return;
        }
    };
    let worker = Arc::new(Worker { pool: Pool::new(), common });
    let common = &worker.common;
    let graceful = GracefulShutdown::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let grace = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(permit) = Arc::clone(&common.served).try_acquire_owned() else {
                    match Arc::clone(&common.spare).try_acquire_owned() {
                        Ok(spare) => {
                            common.stats.connection_rejected();
                            tokio::spawn(conn::reject(Arc::clone(&worker), stream, spare));
                        }
                        Err(_) => common.stats.connection_dropped(),
                    }
                    continue;
                };
                common.stats.connection_opened();
                tokio::spawn(conn::serve(Arc::clone(&worker), stream, peer, graceful.watcher(), permit));
            }
            _ = sweep.tick() => worker.pool.sweep(),
            grace = &mut stopped => break grace.unwrap_or(Duration::ZERO),
        }
    };
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("proxy worker drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_ms = grace.as_millis() as u64, "proxy grace period over"),
    }
}
