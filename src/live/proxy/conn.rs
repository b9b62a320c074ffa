//! One client connection: which protocol it speaks, its timeouts, and serving it.
//!
//! The protocol is read from the first bytes without consuming them (HTTP/2's connection
//! preface, else HTTP/1.1), within the header timeout: a connection that sends nothing is closed
//! then. From there a watchdog closes the connection when it waits too long for a request: a
//! complete head within `header_read_timeout` of connecting or of the next request's first
//! byte, and the next request's first byte within `idle_timeout` of the last response. hyper's
//! own header timer is off: it runs from when hyper starts waiting for a head, so it would close
//! an idle keep-alive connection after the header timeout instead of the idle timeout.

use super::forward;
use super::worker::Worker;
use crate::live::stats::Reason;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
}

/// What the watchdog knows of a connection: requests in flight, when it last became idle and
/// the first byte read since. Times are milliseconds since the connection was accepted.
pub(super) struct Activity {
    origin: Instant,
    in_flight: AtomicU32,
    /// Requests started on the connection (the first request gets the header timeout from the
    /// accept, later ones the idle timeout from the last response).
    started: AtomicU32,
    idle_since: AtomicU64,
    /// 1 + the time of the first byte read while idle; 0: none yet.
    first_byte: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicU32::new(0),
            started: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// A request's head has arrived.
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.started.fetch_add(1, Relaxed);
        self.first_byte.store(0, Relaxed);
    }

    /// A request's response has ended (or was dropped).
    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.idle_since.store(self.now_ms(), Relaxed);
        }
    }

    fn bytes_read(&self) {
        if self.first_byte.load(Relaxed) == 0 && self.in_flight.load(Relaxed) == 0 {
            self.first_byte.store(self.now_ms() + 1, Relaxed);
        }
    }

    /// When the connection must have made progress by (ms since accept), or `None` while a
    /// request is in flight (its own timeouts bound it).
    fn deadline(&self, header: Duration, idle: Duration) -> Option<u64> {
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        let ms = |d: Duration| d.as_millis() as u64;
        Some(match self.first_byte.load(Relaxed) {
            0 if self.started.load(Relaxed) == 0 => ms(header),
            0 => self.idle_since.load(Relaxed) + ms(idle),
            first => first - 1 + ms(header),
        })
    }
}

/// One request on a client connection, from its head until its response ends or is dropped.
pub(super) struct Active(Arc<Activity>);

impl Active {
    pub(super) fn start(activity: Arc<Activity>) -> Active {
        activity.request_started();
        Active(activity)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A client socket that tells its [`Activity`] when bytes arrive (HTTP/1.1: the first byte of
/// a request starts its header timeout).
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
    track_reads: bool,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if self.track_reads && matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Which protocol the client speaks, from its first bytes (left unread), or `None` when it
/// sends nothing within `within` or closes.
async fn sniff(stream: &TcpStream, within: Duration) -> Option<Proto> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(Proto::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Proto::Http2);
        }
        // A part of the preface: the rest is on its way (peek would return at once again).
        tokio::time::sleep(Duration::from_millis(5)).await;
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

/// Serves a client connection within the limit until it ends, times out, or the worker drains.
pub(super) async fn serve(
    worker: Arc<Worker>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) {
    let stats = Arc::clone(&worker.common.stats);
    let cfg = &worker.common.cfg;
    let (header, idle) = (cfg.header_read_timeout, cfg.idle_timeout);
    match sniff(&stream, header).await {
        None => stats.connection_timed_out(),
        Some(proto) => {
            let activity = Arc::new(Activity::new());
            let io = TokioIo::new(Watched {
                io: stream,
                activity: Arc::clone(&activity),
                track_reads: proto == Proto::Http1,
            });
            let svc_activity = Arc::clone(&activity);
            let w = Arc::clone(&worker);
            let svc = hyper::service::service_fn(move |req| {
                forward::handle(Arc::clone(&w), Arc::clone(&svc_activity), peer, req)
            });
            let result = match proto {
                Proto::Http1 => {
                    let conn = http1(&worker, true).serve_connection(io, svc);
                    watchdog(watcher.watch(conn), &activity, header, idle).await
                }
                Proto::Http2 => {
                    let conn = http2(&worker).serve_connection(io, svc);
                    watchdog(watcher.watch(conn), &activity, header, idle).await
                }
            };
            match result {
                Ended::TimedOut => stats.connection_timed_out(),
                Ended::Closed(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "client connection ended");
                    // hyper answered 431 itself: count the request all the same.
                    if e.is_parse_too_large() {
                        stats.request_failed(Reason::HeadersTooLarge);
                    }
                }
                Ended::Closed(Ok(())) => {}
            }
        }
    }
    stats.connection_closed();
    drop(permit);
}

/// A connection over the limit: 503 on every request, closed after the first answer (HTTP/1.1)
/// or after the header timeout.
pub(super) async fn reject(worker: Arc<Worker>, stream: TcpStream, spare: OwnedSemaphorePermit) {
    let bound = worker.common.cfg.header_read_timeout;
    let _ = tokio::time::timeout(bound, async {
        let Some(proto) = sniff(&stream, bound).await else { return };
        let stats = Arc::clone(&worker.common.stats);
        let svc = hyper::service::service_fn(move |_req| {
            stats.request_failed(Reason::ConnectionLimit);
            std::future::ready(Ok::<_, std::convert::Infallible>(forward::over_limit()))
        });
        let io = TokioIo::new(stream);
        let _ = match proto {
            Proto::Http1 => http1(&worker, false).serve_connection(io, svc).await,
            Proto::Http2 => http2(&worker).serve_connection(io, svc).await,
        };
    })
    .await;
    drop(spare);
}

fn http1(worker: &Worker, keep_alive: bool) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(keep_alive)
        .max_buf_size(worker.common.cfg.max_header_bytes.max(8192));
    b
}

fn http2(worker: &Worker) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new()).max_header_list_size(worker.common.cfg.max_header_bytes as u32);
    b
}

enum Ended {
    Closed(hyper::Result<()>),
    TimedOut,
}

/// Drives `conn` until it ends, or until it has waited for a request past its deadline.
async fn watchdog<C>(conn: C, activity: &Activity, header: Duration, idle: Duration) -> Ended
where
    C: Future<Output = hyper::Result<()>>,
{
    tokio::pin!(conn);
    let start = tokio::time::Instant::now() - activity.origin.elapsed();
    // While a request is in flight there is no deadline: look again this much later. So a
    // connection is closed at most this long after its deadline.
    let recheck = header.min(idle);
    let sleep = tokio::time::sleep(recheck);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            r = &mut conn => return Ended::Closed(r),
            () = &mut sleep => {
                let now = activity.now_ms();
                match activity.deadline(header, idle) {
                    Some(at) if at <= now => return Ended::TimedOut,
                    Some(at) => sleep.as_mut().reset(start + Duration::from_millis(at)),
                    None => sleep.as_mut().reset(tokio::time::Instant::now() + recheck),
                }
            }
        }
    }
}
