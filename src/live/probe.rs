//! Real health probes on loopback: TCP connect, HTTP and HTTPS, feeding the balancer's pure
//! threshold state machine (architecture.md §4, §9).
//!
//! - [`probe_once`] runs one check against an address and says why it failed.
//! - [`spawn_probes`] runs one independent task per member, every `time_interval`, the first
//!   check of each member delayed by a seeded jitter ([`first_probe_delay`]), and records each
//!   result in the balancer the moment it completes; the [`ProbeHandle`] keeps the transitions.
//!
//! ```no_run
//! # async fn demo(lb: std::sync::Arc<lbsim::Balancer>, addr: std::net::SocketAddr) {
//! use lbsim::live::probe::{spawn_probes, ProbeOptions};
//! let check = lb.check().expect("the channel has a check");
//! let targets = lb.members().iter().map(|m| (m.member.id(), addr)).collect();
//! let probes = spawn_probes(lb.clone(), check, targets, ProbeOptions { seed: 7, ..Default::default() });
//! // ... serve traffic ...
//! for e in probes.events() {
//!     println!("{:?} {} {}", e.at, e.member, e.state);
//! }
//! probes.shutdown().await;
//! # }
//! ```
//!
//! HTTP is spoken through hyper's low-level client (`hyper::client::conn::http1`) rather than a
//! hand-written reader: it is already a dependency of live mode, and it parses what real
//! backends send (interim `1xx` responses, odd header folding, a `HEAD` response's framing)
//! without us maintaining a parser. The low-level API (no pool) matches a probe's shape: one
//! fresh connection, one request, `Connection: close`, and the probe ends as soon as the
//! response head is parsed; the body is never read.

mod prober;
mod tls;

pub use prober::{first_probe_delay, spawn_probes, HealthEvent, ProbeHandle, ProbeOptions, ProbeRecord, RECENT_PROBES};
pub use tls::{Pem, TlsOptions, TlsProbe, TlsSetupError};

use crate::health::{CheckConfig, Outcome};
use crate::model::CheckProtocol;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub outcome: Outcome,
    /// The response status of an HTTP(S) check that got one.
    pub status: Option<u16>,
    /// Why the check failed; `None` on success.
    pub failure: Option<ProbeFailure>,
    /// From the start of the connect to the result.
    pub elapsed: Duration,
}

/// Why a check failed (architecture.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeFailure {
    /// The connection was refused (nothing listens on the port).
    Refused,
    /// Connect, handshake, request and response head took longer than `timeout`.
    Timeout,
    /// The TLS handshake failed, or the server ended the session with a TLS alert.
    Tls(String),
    /// The response status is not in `http_code`.
    Status(u16),
    /// The peer broke HTTP (closed before the response head, or sent garbage).
    Http(String),
    /// Another I/O error (reset, unreachable, ...).
    Io(String),
    /// The request could not be built (a `path` that is not a valid request target).
    Config(String),
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeFailure::Refused => f.write_str("connection refused"),
            ProbeFailure::Timeout => f.write_str("timed out"),
            ProbeFailure::Tls(e) => write!(f, "tls: {e}"),
            ProbeFailure::Status(s) => write!(f, "status {s} not in http_code"),
            ProbeFailure::Http(e) => write!(f, "http: {e}"),
            ProbeFailure::Io(e) => write!(f, "io: {e}"),
            ProbeFailure::Config(e) => write!(f, "bad check config: {e}"),
        }
    }
}

/// Where to probe a member served at `addr`: the check's `port`, or the member's when it is 0.
pub fn check_target(check: &CheckConfig, addr: SocketAddr) -> SocketAddr {
    match check.port {
        0 => addr,
        p => SocketAddr::new(addr.ip(), p),
    }
}

/// One check of `target`, bounded as a whole by `check.timeout_s`. HTTPS without `tls` accepts
/// any server certificate ([`TlsProbe::insecure`]). No SNI is sent (the target is an address);
/// see [`probe_host`] for members named by a DNS name.
pub async fn probe_once(check: &CheckConfig, target: SocketAddr, tls: Option<&TlsProbe>) -> ProbeResult {
    probe_host(check, target, None, tls).await
}

/// [`probe_once`] for a member whose configured host is `host`: a DNS name is sent as SNI (and
/// verified, when verification is on) and in the `Host` header; an IP host changes nothing.
pub async fn probe_host(
    check: &CheckConfig,
    target: SocketAddr,
    host: Option<&str>,
    tls: Option<&TlsProbe>,
) -> ProbeResult {
    let start = Instant::now();
    let limit = Duration::from_secs(u64::from(check.timeout_s));
    let result = match tokio::time::timeout(limit, run(check, target, host, tls)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeFailure::Timeout),
    };
    let elapsed = start.elapsed();
    match result {
        Ok(status) => match status {
            Some(s) if !check.status_ok(s) => {
                ProbeResult { outcome: Outcome::Failure, status, failure: Some(ProbeFailure::Status(s)), elapsed }
            }
            _ => ProbeResult { outcome: Outcome::Success, status, failure: None, elapsed },
        },
        Err(f) => ProbeResult { outcome: Outcome::Failure, status: None, failure: Some(f), elapsed },
    }
}

/// Connects and, for HTTP(S), returns the response status.
async fn run(
    check: &CheckConfig,
    target: SocketAddr,
    host: Option<&str>,
    tls: Option<&TlsProbe>,
) -> Result<Option<u16>, ProbeFailure> {
    let tcp = TcpStream::connect(target).await.map_err(|e| classify(&e))?;
    // Probes are tiny: send the request at once rather than wait for Nagle.
    let _ = tcp.set_nodelay(true);
    match check.protocol {
        CheckProtocol::Tcp => Ok(None),
        CheckProtocol::Http => http_status(tcp, check, target, host).await.map(Some),
        CheckProtocol::Https => {
            let probe = match tls {
                Some(t) => t,
                None => default_tls()?,
            };
            let connector = tokio_rustls::TlsConnector::from(probe.config(check.client_ssl));
            let name = tls::server_name(host, target.ip());
            let stream = connector.connect(name, tcp).await.map_err(|e| match classify(&e) {
                // A handshake cut short by the peer is a TLS failure, not an HTTP one.
                ProbeFailure::Io(m) => ProbeFailure::Tls(m),
                other => other,
            })?;
            http_status(stream, check, target, host).await.map(Some)
        }
    }
}

fn default_tls() -> Result<&'static TlsProbe, ProbeFailure> {
    static DEFAULT: OnceLock<Result<TlsProbe, TlsSetupError>> = OnceLock::new();
    DEFAULT.get_or_init(TlsProbe::insecure).as_ref().map_err(|e| ProbeFailure::Tls(e.to_string()))
}

/// Sends one request and waits for the response head only.
async fn http_status<S>(io: S, check: &CheckConfig, target: SocketAddr, host: Option<&str>) -> Result<u16, ProbeFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host_header = match host {
        Some(h) if h.parse::<std::net::IpAddr>().is_err() => format!("{h}:{}", target.port()),
        _ => target.to_string(),
    };
    let path = if check.path.starts_with('/') { check.path.clone() } else { format!("/{}", check.path) };
    let request = hyper::Request::builder()
        .method(check.method.as_str())
        .uri(path)
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::USER_AGENT, "lbsim-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeFailure::Config(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| classify(&e))?;
    // Drive the connection here instead of spawning it: when the probe ends (result, error or
    // timeout) everything is dropped and the socket closed, with no task left behind.
    let send = sender.send_request(request);
    tokio::pin!(conn, send);
    tokio::select! {
        biased;
        res = &mut send => res.map(|r| r.status().as_u16()).map_err(|e| classify(&e)),
        end = &mut conn => {
            // With `Connection: close` the connection ends right after delivering the response
            // head; the request's future then holds the response (or hyper's "closed" error).
            match (send.await, end) {
                (Ok(r), _) => Ok(r.status().as_u16()),
                (Err(e), Ok(())) => Err(classify(&e)),
                (Err(_), Err(e)) => Err(classify(&e)),
            }
        }
    }
}

/// Names a failure by walking the error's sources: a rustls error anywhere is a TLS failure
/// (TLS 1.3 reports a rejected client certificate only when the response is read), a refused
/// connect is `Refused`, hyper's own errors are HTTP failures.
fn classify(err: &(dyn StdError + 'static)) -> ProbeFailure {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut io_kind = None;
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return ProbeFailure::Tls(t.to_string());
        }
        if let Some(i) = e.downcast_ref::<io::Error>() {
            io_kind.get_or_insert(i.kind());
            // io::Error hides its payload from `source()`; look inside it explicitly.
            if let Some(t) = i.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return ProbeFailure::Tls(t.to_string());
            }
        }
        cur = e.source();
    }
    match io_kind {
        Some(io::ErrorKind::ConnectionRefused) => ProbeFailure::Refused,
        Some(io::ErrorKind::TimedOut) => ProbeFailure::Timeout,
        Some(_) => ProbeFailure::Io(chain(err)),
        None => ProbeFailure::Http(chain(err)),
    }
}

fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}
