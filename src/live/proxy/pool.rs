//! A worker's keep-alive HTTP/1.1 connections to members: `hyper::client::conn::http1`
//! connections whose tasks run on the worker's own runtime, kept per upstream address while idle.
//!
//! A connection is taken out for one exchange and put back when its response body has ended
//! (as nginx's upstream `keepalive` does); one whose member closed it is dropped when met.

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per member address.
const MAX_IDLE_PER_HOST: usize = 512;
/// How long an idle connection is kept.
const KEEP_IDLE: Duration = Duration::from_secs(90);

pub(super) type Sender = SendRequest<Full<Bytes>>;

/// A connection taken out of the pool (or just opened) for one exchange.
pub(super) struct Conn {
    pub(super) sender: Sender,
    pub(super) addr: SocketAddr,
    /// It served an exchange before: a request it refuses unsent may go on a fresh connection.
    pub(super) reused: bool,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// One worker's idle connections. The lock is the worker's own (uncontended on a dedicated
/// worker's single thread).
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

/// Why no connection could be opened.
#[derive(Debug)]
pub(super) enum ConnectError {
    TimedOut,
    Failed(std::io::Error),
}

impl Pool {
    pub(super) fn new() -> Pool {
        Pool::default()
    }

    /// An idle connection to `addr` that is ready for a request, if there is one.
    pub(super) fn checkout(&self, addr: SocketAddr) -> Option<Conn> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(&addr)?;
        // Most recently used first (its member is least likely to have closed it). One that is
        // open but not ready yet (its task has not seen the end of its last exchange) stays.
        let mut busy = None;
        let mut found = None;
        while let Some(c) = list.pop() {
            if c.sender.is_closed() || c.since.elapsed() >= KEEP_IDLE {
                continue;
            }
            if c.sender.is_ready() {
                found = Some(Conn { sender: c.sender, addr, reused: true });
                break;
            }
            if busy.is_none() {
                busy = Some(c);
            }
        }
        list.extend(busy);
        found
    }

    /// Opens a connection to `addr` (bounded by `within`) and starts its task on the current
    /// runtime.
    pub(super) async fn connect(addr: SocketAddr, within: Duration) -> Result<Conn, ConnectError> {
        let stream = match tokio::time::timeout(within, TcpStream::connect(addr)).await {
            Err(_) => return Err(ConnectError::TimedOut),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => return Err(ConnectError::TimedOut),
            Ok(Err(e)) => return Err(ConnectError::Failed(e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Failed(std::io::Error::other(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream connection ended");
            }
        });
        Ok(Conn { sender, addr, reused: false })
    }

    /// Puts a connection whose exchange has ended back, unless its member closed it.
    pub(super) fn checkin(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        let list = idle.entry(conn.addr).or_default();
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(Idle { sender: conn.sender, since: Instant::now() });
        }
    }

    /// Drops connections idle for longer than the pool keeps them, and closed ones.
    pub(super) fn sweep(&self) {
        let mut idle = self.idle.lock();
        idle.retain(|_, list| {
            list.retain(|c| !c.sender.is_closed() && c.since.elapsed() < KEEP_IDLE);
            !list.is_empty()
        });
    }
}
