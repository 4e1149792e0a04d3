//! The tiny HTTP servers of a controller: `/metrics` on `--metrics-addr` and `/healthz`,
//! `/readyz` on `--health-addr`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::error::Error;
use crate::metrics::Metrics;

/// Parses Go's listen-address form (`:8080`, `127.0.0.1:0`).
pub fn parse_listen_addr(addr: &str) -> Result<SocketAddr, Error> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    full.parse()
        .map_err(|e| Error::Config(format!("listen address {addr:?}: {e}")))
}

/// Binds a listen address.
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    let sa = parse_listen_addr(addr)?;
    TcpListener::bind(sa).await.map_err(|e| Error::Io {
        action: format!("listen on {addr}"),
        source: e,
    })
}

/// What the probe and metrics endpoints answer.
#[derive(Clone)]
pub struct Endpoints {
    /// The registry behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `/readyz` answers 200 once this is true.
    pub ready: Arc<AtomicBool>,
}

fn respond(ep: &Endpoints, path: &str) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            ep.metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok".to_string()),
        "/readyz" => {
            if ep.ready.load(Ordering::Relaxed) {
                (StatusCode::OK, "text/plain", "ok".to_string())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready".to_string(),
                )
            }
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found".to_string()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, ep: Endpoints, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = respond(&ep, req.uri().path());
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
