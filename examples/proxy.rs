//! A reverse proxy embedding the balancer: hyper on tokio, one `OwnedPick` per request held until
//! the member's answer has been read, so that WLC's in-flight counts see real requests.
//!
//!     cargo run --release --example proxy
//!
//! The balancer itself needs no feature and no runtime (`lbsim = { default-features = false }`);
//! tokio, hyper and hyper-util are this example's own dependencies. It runs by itself and ends:
//! it starts three loopback backends for the channel's members (their addresses in the channel
//! are simulated ones, never contacted), puts the proxy in front on a free loopback port, sends
//! 600 requests through it and checks that smooth WRR split them 3:2:1 by weight.
//!
//! Everything runs on one thread (a current-thread runtime), so the picks follow nginx's smooth
//! WRR sequence exactly; on several threads each thread keeps its own cursor and the split is
//! exact per thread.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request as HttpRequest, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lbsim::model::VpcChannel;
use lbsim::{Balancer, MemberId, Request};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type Upstreams = Arc<BTreeMap<MemberId, SocketAddr>>;

const CHANNEL: &str = r#"{
    "name": "orders", "port": 8080, "balance_strategy": 1, "member_type": "ip",
    "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
    "members": [{"host": "10.0.0.1", "weight": 3}, {"host": "10.0.0.2", "weight": 2}, {"host": "10.0.0.3"}]
}"#;
const REQUESTS: usize = 600;
const LIMIT: Duration = Duration::from_secs(5);

/// Serves `handle` on every connection accepted by `listener`, each in its own task.
fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(SocketAddr, HttpRequest<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let handle = handle.clone();
            let svc = service_fn(move |req| {
                let fut = handle(peer, req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
        }
    });
}

/// A loopback backend that answers every request with its member's name.
async fn backend(name: String) -> Result<SocketAddr, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    serve(listener, move |_, _| {
        let body = Full::new(Bytes::from(name.clone()));
        async move { Response::new(body) }
    });
    Ok(addr)
}

fn status(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text.to_string())));
    *resp.status_mut() = code;
    resp
}

/// One proxied request: pick a member, forward to its backend, hold the pick until the answer
/// has been read.
async fn forward(
    lb: Arc<Balancer>,
    upstreams: Upstreams,
    client: HttpClient,
    peer: SocketAddr,
    req: HttpRequest<Incoming>,
) -> Response<Full<Bytes>> {
    let uri = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let pick = match lb.select(&Request::new(peer.ip(), &uri)) {
        Ok(pick) => pick.into_owned(&lb),
        Err(e) => return status(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(addr) = upstreams.get(&pick.member().id()) else {
        return status(StatusCode::BAD_GATEWAY, "no backend for the member");
    };
    let Ok(target) = format!("http://{addr}{uri}").parse::<hyper::Uri>() else {
        return status(StatusCode::BAD_REQUEST, "bad request target");
    };
    let mut upstream = HttpRequest::new(Full::new(Bytes::new()));
    *upstream.uri_mut() = target;
    let answer = async { client.request(upstream).await.ok()?.into_body().collect().await.ok() };
    let resp = match tokio::time::timeout(LIMIT, answer).await {
        Ok(Some(body)) => Response::new(Full::new(body.to_bytes())),
        _ => status(StatusCode::BAD_GATEWAY, "the member did not answer"),
    };
    drop(pick); // the member's request ends here
    resp
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let channel: VpcChannel = serde_json::from_str(CHANNEL)?;
    let lb = Arc::new(Balancer::from_channel(&channel)?);
    let mut upstreams = BTreeMap::new();
    for status in lb.members() {
        let id = status.member.id();
        upstreams.insert(id, backend(id.to_string()).await?);
    }
    let upstreams: Upstreams = Arc::new(upstreams);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy = listener.local_addr()?;
    let (lb2, client2) = (lb.clone(), client.clone());
    serve(listener, move |peer, req| forward(lb2.clone(), upstreams.clone(), client2.clone(), peer, req));
    println!("proxy on http://{proxy}");

    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..REQUESTS {
        let mut req = HttpRequest::new(Full::new(Bytes::new()));
        *req.uri_mut() = format!("http://{proxy}/orders/{i}").parse()?;
        let resp = tokio::time::timeout(LIMIT, client.request(req)).await??;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = tokio::time::timeout(LIMIT, resp.into_body().collect()).await??.to_bytes();
        *answered.entry(String::from_utf8_lossy(&body).into_owned()).or_default() += 1;
    }
    println!("answers by member: {answered:?}");
    let counts: Vec<usize> = answered.values().copied().collect();
    assert_eq!(counts, [300, 200, 100], "smooth WRR over weights 3, 2, 1");
    Ok(())
}
