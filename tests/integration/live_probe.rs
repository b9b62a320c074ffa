#![cfg(feature = "live")]
//! Real probes on loopback: TCP, HTTP status ranges, timeouts, HTTPS (no verification, roots,
//! mutual TLS), and the prober end to end against a balancer.

use bytes::Bytes;
use http_body_util::Empty;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lbsim::balancer::MemberId;
use lbsim::health::{CheckConfig, CheckPolicy, HealthState, Outcome, Thresholds};
use lbsim::live::probe::{
    first_probe_delay, probe_once, spawn_probes, Pem, ProbeFailure, ProbeOptions, TlsOptions, TlsProbe,
};
use lbsim::model::{CheckMethod, CheckProtocol, HttpCodes, VpcChannel};
use lbsim::{Balancer, Request};
use parking_lot::Mutex;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tokio_rustls::TlsAcceptor;

/// Every test body runs under this bound, so a hang fails instead of stalling the suite.
async fn bounded<F: Future<Output = ()>>(secs: u64, body: F) {
    timeout(Duration::from_secs(secs), body).await.expect("test exceeded its time bound");
}

fn check(protocol: CheckProtocol, codes: &str, method: CheckMethod, path: &str) -> CheckConfig {
    CheckConfig {
        protocol,
        path: path.to_string(),
        method,
        port: 0,
        thresholds: Thresholds { normal: 2, abnormal: 2 },
        interval_s: 2,
        timeout_s: 1,
        codes: HttpCodes::parse(codes).unwrap(),
        client_ssl: false,
    }
}

fn tcp_check() -> CheckConfig {
    check(CheckProtocol::Tcp, "200", CheckMethod::Get, "/")
}

// === servers ===

/// What an HTTP test server saw: method, path and query, Host, User-Agent.
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// An HTTP/1.1 server answering `status` (changeable), over TLS when an acceptor is given.
async fn http_server(status: Arc<AtomicU16>, tls: Option<TlsAcceptor>) -> (SocketAddr, Seen, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (status, log, tls) = (status.clone(), log.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let header = |n| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                    log.lock().push((req.method().to_string(), path, header("host"), header("user-agent")));
                    let code = status.load(Ordering::Relaxed);
                    async move { hyper::Response::builder().status(code).body(Empty::<Bytes>::new()) }
                });
                match tls {
                    None => {
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                    }
                    Some(acc) => {
                        if let Ok(s) = acc.accept(tcp).await {
                            let _ = http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                }
            });
        }
    });
    (addr, seen, task)
}

/// Accepts connections on `listener` and drops them (enough for a TCP check).
fn tcp_server(listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let _ = listener.accept().await;
        }
    })
}

/// Accepts connections and never answers (holds them open).
async fn hung_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

// === TCP ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listening_port_succeeds_and_closed_port_is_refused_at_once() {
    bounded(5, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let _server = tcp_server(listener);
        let r = probe_once(&tcp_check(), open, None).await;
        assert_eq!((r.outcome, r.failure, r.status), (Outcome::Success, None, None));

        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let r = probe_once(&tcp_check(), closed, None).await;
        assert_eq!(r.outcome, Outcome::Failure);
        assert_eq!(r.failure, Some(ProbeFailure::Refused));
        assert!(r.elapsed < Duration::from_millis(300), "refused takes {:?}", r.elapsed);
    })
    .await;
}

// === HTTP ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_ranges_method_and_path() {
    bounded(10, async {
        let status = Arc::new(AtomicU16::new(204));
        let (addr, seen, _server) = http_server(status.clone(), None).await;
        let range = check(CheckProtocol::Http, "200-299", CheckMethod::Post, "/health/check?deep=1");

        let r = probe_once(&range, addr, None).await;
        assert_eq!((r.outcome, r.status, r.failure), (Outcome::Success, Some(204), None));
        let first = seen.lock()[0].clone();
        assert_eq!(first, ("POST".into(), "/health/check?deep=1".into(), addr.to_string(), "lbsim-probe".into()));

        status.store(404, Ordering::Relaxed);
        let r = probe_once(&range, addr, None).await;
        assert_eq!((r.outcome, r.status), (Outcome::Failure, Some(404)));
        assert_eq!(r.failure, Some(ProbeFailure::Status(404)));

        let listed = check(CheckProtocol::Http, "200,404", CheckMethod::Head, "ready");
        let r = probe_once(&listed, addr, None).await;
        assert_eq!((r.outcome, r.status), (Outcome::Success, Some(404)));
        let last = seen.lock().last().cloned().unwrap();
        assert_eq!((last.0.as_str(), last.1.as_str()), ("HEAD", "/ready"), "a path without / gets one");
        assert_eq!(seen.lock().len(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_after_timeout() {
    bounded(5, async {
        let (addr, _server) = hung_server().await;
        let c = check(CheckProtocol::Http, "200", CheckMethod::Get, "/");
        let r = probe_once(&c, addr, None).await;
        assert_eq!((r.outcome, r.failure), (Outcome::Failure, Some(ProbeFailure::Timeout)));
        assert!(
            r.elapsed >= Duration::from_secs(1) && r.elapsed <= Duration::from_millis(1500),
            "elapsed {:?}",
            r.elapsed
        );
    })
    .await;
}

// === HTTPS ===

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed server certificate for 127.0.0.1 and localhost: (cert PEM, acceptor parts).
fn self_signed() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    (ck.cert.pem(), ck.cert.der().clone(), key)
}

fn acceptor(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<CertificateDer<'static>>,
) -> TlsAcceptor {
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    TlsAcceptor::from(Arc::new(builder.with_single_cert(vec![cert], key).unwrap()))
}

fn https_check(client_ssl: bool) -> CheckConfig {
    CheckConfig { client_ssl, ..check(CheckProtocol::Https, "200", CheckMethod::Get, "/tls") }
}

fn is_tls(f: &Option<ProbeFailure>) -> bool {
    matches!(f, Some(ProbeFailure::Tls(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_self_signed_with_and_without_verification() {
    bounded(10, async {
        let (pem, cert, key) = self_signed();
        let (addr, seen, _server) = http_server(Arc::new(AtomicU16::new(200)), Some(acceptor(cert, key, None))).await;
        let c = https_check(false);

        let r = probe_once(&c, addr, None).await;
        assert_eq!((r.outcome, r.status), (Outcome::Success, Some(200)), "{:?}", r.failure);
        let insecure = TlsProbe::insecure().unwrap();
        assert!(!insecure.verifies());
        assert_eq!(probe_once(&c, addr, Some(&insecure)).await.outcome, Outcome::Success);

        let trusting =
            TlsProbe::new(&TlsOptions { verify_roots: Some(Pem::Inline(pem.into_bytes())), ..Default::default() })
                .unwrap();
        assert!(trusting.verifies());
        let r = probe_once(&c, addr, Some(&trusting)).await;
        assert_eq!(r.outcome, Outcome::Success, "{:?}", r.failure);

        let (other_pem, _, _) = self_signed();
        let stranger = TlsProbe::new(&TlsOptions {
            verify_roots: Some(Pem::Inline(other_pem.into_bytes())),
            ..Default::default()
        })
        .unwrap();
        let r = probe_once(&c, addr, Some(&stranger)).await;
        assert_eq!(r.outcome, Outcome::Failure);
        assert!(is_tls(&r.failure), "{:?}", r.failure);
        assert_eq!(seen.lock().len(), 3, "the failed handshake sent no request");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_enable_client_ssl() {
    bounded(10, async {
        // A test CA, a client certificate it signs, and a server that requires one.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["probe-client".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();

        let (_, cert, key) = self_signed();
        let acc = acceptor(cert, key, Some(ca.der().clone()));
        let (addr, seen, _server) = http_server(Arc::new(AtomicU16::new(200)), Some(acc)).await;

        // The identity is also read from files, as the CLI would pass it.
        let dir = std::env::temp_dir().join(format!("lbsim-probe-mtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("client.pem"), dir.join("client.key"));
        std::fs::write(&cert_path, client.pem()).unwrap();
        std::fs::write(&key_path, client_key.serialize_pem()).unwrap();
        let tls = TlsProbe::new(&TlsOptions {
            verify_roots: None,
            client_cert: Some(Pem::File(cert_path)),
            client_key: Some(Pem::File(key_path)),
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(tls.has_client_identity());

        let r = probe_once(&https_check(false), addr, Some(&tls)).await;
        assert_eq!(r.outcome, Outcome::Failure);
        assert!(is_tls(&r.failure), "{:?}", r.failure);

        let r = probe_once(&https_check(true), addr, Some(&tls)).await;
        assert_eq!((r.outcome, r.status), (Outcome::Success, Some(200)), "{:?}", r.failure);
        assert_eq!(seen.lock().len(), 1);

        let half = TlsOptions { client_cert: Some(Pem::Inline(client.pem().into_bytes())), ..Default::default() };
        assert!(TlsProbe::new(&half).is_err(), "a certificate without a key is a setup error");
    })
    .await;
}

// === the prober ===

fn balancer(ports: [u16; 2], protocol: &str) -> Arc<Balancer> {
    // time_interval must exceed timeout (validation); tests shorten the interval with
    // `interval_override` instead.
    let body = serde_json::json!({
        "name": "probe_test", "port": 8080, "balance_strategy": 1, "member_type": "ip",
        "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
        "members": [{"host": "127.0.0.1", "port": ports[0]}, {"host": "127.0.0.1", "port": ports[1]}],
        "vpc_health_config": {"protocol": protocol, "path": "/health", "threshold_abnormal": 2, "threshold_normal": 2,
            "time_interval": 2, "timeout": 1, "http_code": "200"},
    });
    let channel: VpcChannel = serde_json::from_value(body).unwrap();
    Arc::new(Balancer::from_channel(&channel).unwrap())
}

fn targets(ports: [u16; 2]) -> Vec<(MemberId, SocketAddr)> {
    ports.iter().map(|&p| (MemberId::new("127.0.0.1", p), SocketAddr::from(([127, 0, 0, 1], p)))).collect()
}

/// Waits until `member` is in `state`, polling; returns how long it took.
async fn wait_for(lb: &Balancer, member: MemberId, state: HealthState, limit: Duration) -> Duration {
    let start = Instant::now();
    while lb.health().state(member) != Some(state) {
        assert!(start.elapsed() <= limit, "{member} not {state} within {limit:?}");
        sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_turns_unhealthy_then_recovers_and_the_other_never_moves() {
    bounded(15, async {
        let (l1, l2) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let ports = [l1.local_addr().unwrap().port(), l2.local_addr().unwrap().port()];
        let (s1, _s2) = (tcp_server(l1), tcp_server(l2));
        let lb = balancer(ports, "TCP");
        let [m1, m2] = [MemberId::new("127.0.0.1", ports[0]), MemberId::new("127.0.0.1", ports[1])];
        let interval = Duration::from_millis(500);
        let check = lb.check().unwrap();
        let timeout_d = Duration::from_secs(u64::from(check.timeout_s));
        let opts = ProbeOptions { seed: 42, interval_override: Some(interval), ..Default::default() };
        let probes = spawn_probes(lb.clone(), check, targets(ports), opts);

        sleep(interval * 2).await;
        assert_eq!(lb.health().state(m1), Some(HealthState::Healthy));
        assert!(probes.events().is_empty());
        assert!(!probes.probes(m1).is_empty(), "member 1 was probed");

        // Stop member 1: the listener is dropped with its task.
        s1.abort();
        let _ = s1.await;
        let stopped_at = probes.elapsed();
        // threshold_abnormal intervals + timeout + one interval of slack.
        let bound = interval * 2 + timeout_d + interval;
        let took = wait_for(&lb, m1, HealthState::Unhealthy, bound).await;
        println!("unhealthy {took:?} after stopping (bound {bound:?})");
        for i in 0..200u32 {
            let client = std::net::IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
            let pick = lb.select(&Request::new(client, "/")).unwrap();
            assert_eq!(pick.member().id(), m2, "an unhealthy member is never selected");
        }

        // Restart on the same port.
        let _s1 = tcp_server(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], ports[0]))).await.unwrap());
        let took = wait_for(&lb, m1, HealthState::Healthy, interval * 2 + interval).await;
        println!("healthy {took:?} after restarting");

        let events = probes.events();
        let mine: Vec<_> = events.iter().filter(|e| e.member == m1).map(|e| e.state).collect();
        assert_eq!(mine, [HealthState::Unhealthy, HealthState::Healthy]);
        let down = &events[0];
        assert!(down.at >= stopped_at && down.at <= stopped_at + bound, "{down:?} stopped at {stopped_at:?}");
        assert_eq!(down.reason.as_deref(), Some("connection refused"));
        assert!(events.iter().all(|e| e.member != m2), "member 2 never changes: {events:?}");
        assert!(probes.probes(m2).iter().all(|p| p.result.outcome == Outcome::Success));
        probes.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_does_not_delay_its_neighbour() {
    bounded(15, async {
        let (ok_addr, _, _ok) = http_server(Arc::new(AtomicU16::new(200)), None).await;
        let (hung_addr, _hung) = hung_server().await;
        let ports = [hung_addr.port(), ok_addr.port()];
        let lb = balancer(ports, "HTTP");
        let [hung, ok] = [MemberId::new("127.0.0.1", ports[0]), MemberId::new("127.0.0.1", ports[1])];
        let interval = Duration::from_secs(1);
        let opts = ProbeOptions { seed: 7, interval_override: Some(interval), ..Default::default() };
        let probes = spawn_probes(lb.clone(), lb.check().unwrap(), targets(ports), opts);

        // Two timeouts in a row: the first probe starts within an interval and ends a timeout
        // later, the second an interval after that.
        wait_for(&lb, hung, HealthState::Unhealthy, Duration::from_millis(3500)).await;
        sleep(Duration::from_millis(3600).saturating_sub(probes.elapsed())).await;

        let delay = probes.first_delays().iter().find(|(m, _)| *m == ok).map(|&(_, d)| d).unwrap();
        let records = probes.probes(ok);
        assert!(records.len() >= 3, "the healthy member is probed every interval: {records:?}");
        assert!(records.iter().all(|r| r.result.outcome == Outcome::Success));
        let slack = Duration::from_millis(250);
        assert!(
            records[0].at >= delay && records[0].at <= delay + slack,
            "first probe {:?}, delay {delay:?}",
            records[0].at
        );
        for pair in records.windows(2) {
            let gap = pair[1].at.saturating_sub(pair[0].at);
            assert!(gap + slack >= interval && gap <= interval + slack, "gap {gap:?}");
        }
        assert_eq!(lb.health().state(ok), Some(HealthState::Healthy));
        let events = probes.events();
        assert!(events.iter().all(|e| e.member == hung), "{events:?}");
        assert_eq!(events[0].reason.as_deref(), Some("timed out"));
        assert!(probes.probes(hung).iter().all(|p| p.result.failure == Some(ProbeFailure::Timeout)));
        probes.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_stops_probing() {
    bounded(5, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tcp_server(listener);
        let lb = balancer([port, 40001], "TCP");
        let m = MemberId::new("127.0.0.1", port);
        let opts = ProbeOptions { seed: 1, interval_override: Some(Duration::from_millis(50)), ..Default::default() };
        let probes =
            spawn_probes(lb.clone(), lb.check().unwrap(), vec![(m, SocketAddr::from(([127, 0, 0, 1], port)))], opts);
        sleep(Duration::from_millis(300)).await;
        let seen = probes.probes(m).len();
        assert!(seen >= 4, "{seen}");
        drop(probes);
        // With the member down, running probes would turn it unhealthy within two intervals.
        server.abort();
        let _ = server.await;
        sleep(Duration::from_millis(300)).await;
        assert_eq!(lb.health().state(m), Some(HealthState::Healthy));
    })
    .await;
}

/// Issue 5's check intervals in the live prober: a refused member is checked every
/// `unhealthy_interval` once unhealthy (here 1 s of a 10 s `time_interval`: a tenth of the
/// overridden 300 ms), and `interval_jitter_percent` = 50 spreads a healthy member's gaps over
/// [0.5, 1.5] x the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_interval_and_jitter_shape_the_live_probe_schedule() {
    bounded(15, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = listener.local_addr().unwrap().port();
        let _server = tcp_server(listener);
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let lb = balancer([closed, up], "TCP");
        let [down, ok] = [MemberId::new("127.0.0.1", closed), MemberId::new("127.0.0.1", up)];
        let mut check = lb.check().unwrap();
        check.interval_s = 10;
        let slack = Duration::from_millis(40);

        // unhealthy_interval = 1 s: 300 ms gaps while the member counts its failures, 30 ms after.
        let interval = Duration::from_millis(300);
        let policy = CheckPolicy::new(Some(1), None, None);
        let opts = ProbeOptions { seed: 3, interval_override: Some(interval), policy, ..Default::default() };
        let probes =
            spawn_probes(lb.clone(), check.clone(), vec![(down, SocketAddr::from(([127, 0, 0, 1], closed)))], opts);
        wait_for(&lb, down, HealthState::Unhealthy, interval * 3 + slack).await;
        sleep(Duration::from_millis(700)).await;
        let records = probes.probes(down);
        probes.shutdown().await;
        let gaps: Vec<Duration> = records.windows(2).map(|p| p[1].at.saturating_sub(p[0].at)).collect();
        // The second check turned it unhealthy. As in the simulator, the wait after a check is
        // chosen as it starts: the two checks that started healthy are followed by 300 ms.
        assert!(gaps[..2].iter().all(|&g| g + slack >= interval && g <= interval + slack), "{gaps:?}");
        let after = &gaps[2..];
        assert!(after.len() >= 8, "checked every 30 ms once unhealthy: {gaps:?}");
        assert!(after.iter().all(|&g| g <= Duration::from_millis(30) + slack), "{gaps:?}");

        // interval_jitter_percent = 50 on a healthy member: gaps within [50, 150] ms, and spread.
        let interval = Duration::from_millis(100);
        let policy = CheckPolicy::new(None, Some(50), None);
        let opts = ProbeOptions { seed: 3, interval_override: Some(interval), policy, ..Default::default() };
        let probes = spawn_probes(lb.clone(), check, vec![(ok, SocketAddr::from(([127, 0, 0, 1], up)))], opts);
        sleep(Duration::from_millis(2200)).await;
        let records = probes.probes(ok);
        probes.shutdown().await;
        let gaps: Vec<Duration> = records.windows(2).map(|p| p[1].at.saturating_sub(p[0].at)).collect();
        assert!(gaps.len() >= 12, "{gaps:?}");
        assert!(gaps.iter().all(|&g| g + slack >= interval / 2 && g <= interval * 3 / 2 + slack), "{gaps:?}");
        let (min, max) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
        assert!(*max - *min >= Duration::from_millis(40), "jitter spreads the gaps: {gaps:?}");
    })
    .await;
}

/// `retriable_codes` in the live prober: with `"500-599"` retriable, a 503 is an ordinary failure
/// (threshold_abnormal = 2 checks), while a 404 (outside both it and `http_code`) marks the
/// member unhealthy at its first check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_outside_retriable_codes_marks_the_member_unhealthy_at_once() {
    bounded(10, async {
        let (soft, _, _s) = http_server(Arc::new(AtomicU16::new(503)), None).await;
        let (hard, _, _h) = http_server(Arc::new(AtomicU16::new(404)), None).await;
        let ports = [soft.port(), hard.port()];
        let lb = balancer(ports, "HTTP");
        let [m_soft, m_hard] = [MemberId::new("127.0.0.1", ports[0]), MemberId::new("127.0.0.1", ports[1])];
        let policy = CheckPolicy::new(None, None, Some("500-599"));
        let interval = Duration::from_millis(200);
        let opts = ProbeOptions { seed: 9, interval_override: Some(interval), policy, ..Default::default() };
        let probes = spawn_probes(lb.clone(), lb.check().unwrap(), targets(ports), opts);
        wait_for(&lb, m_soft, HealthState::Unhealthy, interval * 3).await;
        wait_for(&lb, m_hard, HealthState::Unhealthy, interval * 3).await;
        let events = probes.events();
        // The probe that made each member unhealthy was its first (404) or its second (503).
        let probes_before = |m: MemberId| {
            let at = events.iter().find(|e| e.member == m).map(|e| e.at).unwrap();
            probes.probes(m).iter().filter(|p| p.at <= at).count()
        };
        assert_eq!((probes_before(m_hard), probes_before(m_soft)), (1, 2), "{events:?}");
        probes.shutdown().await;
    })
    .await;
}

// === seeded jitter ===

#[test]
fn first_probe_delays_are_seeded_and_within_the_interval() {
    let interval = Duration::from_secs(10);
    let members: Vec<MemberId> = (0..200).map(|i| MemberId::new("192.168.0.1", 8000 + i)).collect();
    let a: Vec<Duration> = members.iter().map(|&m| first_probe_delay(1, m, interval)).collect();
    let b: Vec<Duration> = members.iter().map(|&m| first_probe_delay(1, m, interval)).collect();
    let c: Vec<Duration> = members.iter().map(|&m| first_probe_delay(2, m, interval)).collect();
    assert_eq!(a, b, "same seed, same schedule");
    assert_ne!(a, c, "another seed, another schedule");
    assert!(a.iter().chain(&c).all(|d| *d < interval));
    // Spread over the interval, not bunched: every tenth of it gets some members.
    for tenth in 0..10u32 {
        let (lo, hi) = (interval * tenth / 10, interval * (tenth + 1) / 10);
        assert!(a.iter().any(|d| *d >= lo && *d < hi), "nothing in [{lo:?}, {hi:?})");
    }
    assert_eq!(first_probe_delay(9, members[0], Duration::ZERO), Duration::ZERO);
    let tiny = Duration::from_nanos(1);
    assert!(members.iter().all(|&m| first_probe_delay(3, m, tiny) == Duration::ZERO));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_probers_with_one_seed_schedule_alike() {
    bounded(5, async {
        let ports = [1u16, 2];
        let lb = balancer([40001, 40002], "TCP");
        let opts =
            |seed| ProbeOptions { seed, interval_override: Some(Duration::from_secs(3600)), ..Default::default() };
        let t = targets(ports);
        let a = spawn_probes(lb.clone(), lb.check().unwrap(), t.clone(), opts(5));
        let b = spawn_probes(lb.clone(), lb.check().unwrap(), t.clone(), opts(5));
        let c = spawn_probes(lb.clone(), lb.check().unwrap(), t, opts(6));
        assert_eq!(a.first_delays(), b.first_delays());
        assert_ne!(a.first_delays(), c.first_delays());
        let expected: Vec<_> =
            targets(ports).iter().map(|&(m, _)| (m, first_probe_delay(5, m, Duration::from_secs(3600)))).collect();
        assert_eq!(a.first_delays(), expected.as_slice());
        for p in [a, b, c] {
            p.shutdown().await;
        }
    })
    .await;
}
