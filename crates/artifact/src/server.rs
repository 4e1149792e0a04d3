//! The artifact HTTP server: serves the storage directory on `--storage-addr` (Flux mounts
//! `http.FileServer` at `/`).
//!
//! * `GET` and `HEAD` only (others: 405). `Content-Length` from the opened file,
//!   `Content-Type` from the requested name: `application/gzip` for `.tar.gz`/`.tgz`/`.gz`,
//!   `application/x-yaml` for `.yaml`/`.yml`, `application/json` for `.json`, else
//!   `application/octet-stream`.
//! * `/` answers 200 with a short text body (the readiness probe is `GET /`); any other
//!   directory is 404: there is no directory listing.
//! * Refused with 400: `.` or `..` segments, percent-encoded `/`, `\` or NUL, and malformed
//!   percent escapes (so `/%2e%2e/` and `/a/..%2f..%2f` are refused like `/../`). A path that
//!   resolves (following symlinks such as `latest.tar.gz`) outside the root is 403.
//! * Files are streamed from the file handle opened for the request; storage replaces
//!   artifacts by rename, so a download that started keeps reading the complete old version.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, Take};
use tokio::net::TcpListener;

use crate::error::{Error, Result};

const CHUNK: usize = 64 * 1024;

/// Turns Flux's `--storage-addr` form (`:9090`, `0.0.0.0:9090`, `127.0.0.1:0`) into a socket
/// address.
pub fn parse_listen_addr(addr: &str) -> Result<SocketAddr> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    full.parse().map_err(|e| Error::InvalidPath {
        path: addr.to_string(),
        reason: format!("not a listen address: {e}"),
    })
}

/// The file server. Build it with [`ArtifactServer::new`], then [`ArtifactServer::serve`].
#[derive(Clone)]
pub struct ArtifactServer {
    root: Arc<PathBuf>,
}

impl ArtifactServer {
    /// A server for the storage directory `root` (canonicalized once here).
    pub fn new(root: &Path) -> Result<ArtifactServer> {
        let root = root
            .canonicalize()
            .map_err(|e| Error::io("resolve storage path", root, e))?;
        Ok(ArtifactServer {
            root: Arc::new(root),
        })
    }

    /// Binds `addr` (see [`parse_listen_addr`]).
    pub async fn bind(addr: &str) -> Result<TcpListener> {
        let sa = parse_listen_addr(addr)?;
        TcpListener::bind(sa)
            .await
            .map_err(|e| Error::io("listen on", addr, e))
    }

    /// Accepts connections until `shutdown` completes. Connections already accepted are served
    /// to the end of their current requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let root = Arc::clone(&self.root);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let root = Arc::clone(&root);
                    async move { Ok::<_, Infallible>(handle(&root, req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "artifact connection ended with an error");
                }
            });
        }
    }
}

type RespBody = BoxBody<Bytes, io::Error>;

fn text(status: StatusCode, msg: &str) -> Response<RespBody> {
    let body = Full::new(Bytes::from(format!("{msg}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Decodes a request path into safe segments, or says why it is refused.
pub fn decode_path(raw: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut segments = Vec::new();
    for seg in raw.split('/') {
        let bytes = seg.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = bytes.get(i + 1..i + 3).ok_or("malformed percent escape")?;
                let s = std::str::from_utf8(hex).map_err(|_| "malformed percent escape")?;
                let b = u8::from_str_radix(s, 16).map_err(|_| "malformed percent escape")?;
                if b == b'/' {
                    return Err("encoded slash in path");
                }
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        if out.contains(&0) || out.contains(&b'\\') {
            return Err("forbidden character in path");
        }
        let s = String::from_utf8(out).map_err(|_| "path is not UTF-8")?;
        match s.as_str() {
            "" => continue,
            "." | ".." => return Err("dot segment in path"),
            _ => segments.push(s),
        }
    }
    Ok(segments)
}

/// The Content-Type for a file name.
pub fn content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") || lower.ends_with(".gz") {
        "application/gzip"
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        "application/x-yaml"
    } else if lower.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

async fn handle(root: &Path, req: Request<Incoming>) -> Response<RespBody> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    let raw = req.uri().path();
    let segments = match decode_path(raw) {
        Ok(s) => s,
        Err(why) => {
            tracing::debug!(path = raw, why, "refused artifact request");
            return text(StatusCode::BAD_REQUEST, why);
        }
    };
    if segments.is_empty() {
        return text(StatusCode::OK, "ok");
    }
    let mut path = root.to_path_buf();
    path.extend(&segments);
    let resolved = match tokio::fs::canonicalize(&path).await {
        Ok(p) => p,
        Err(_) => return text(StatusCode::NOT_FOUND, "not found"),
    };
    if !resolved.starts_with(root) {
        tracing::debug!(
            path = raw,
            "refused artifact request resolving outside the root"
        );
        return text(StatusCode::FORBIDDEN, "forbidden");
    }
    let file = match tokio::fs::File::open(&resolved).await {
        Ok(f) => f,
        Err(_) => return text(StatusCode::NOT_FOUND, "not found"),
    };
    let meta = match file.metadata().await {
        Ok(m) if m.is_file() => m,
        _ => return text(StatusCode::NOT_FOUND, "not found"),
    };
    let len = meta.len();
    let name = segments.last().map(String::as_str).unwrap_or_default();
    let body: RespBody = if head {
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed()
    } else {
        FileBody {
            file: file.take(len),
            remaining: len,
        }
        .boxed()
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Streams an open file in chunks.
struct FileBody {
    file: Take<tokio::fs::File>,
    remaining: u64,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let cap = (self.remaining as usize).min(CHUNK);
        let mut buf = BytesMut::with_capacity(cap);
        let this = &mut *self;
        match tokio_util::io::poll_read_buf(Pin::new(&mut this.file), cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(0)) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its size",
            )))),
            Poll::Ready(Ok(n)) => {
                this.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses() {
        assert_eq!(decode_path("/a/b.tar.gz").unwrap(), vec!["a", "b.tar.gz"]);
        assert_eq!(decode_path("/a%20b").unwrap(), vec!["a b"]);
        assert!(decode_path("/../etc/passwd").is_err());
        assert!(decode_path("/%2e%2e/etc").is_err());
        assert!(decode_path("/%2E%2E/etc").is_err());
        assert!(decode_path("/a/..%2f..%2f").is_err());
        assert!(decode_path("/a/%5c..").is_err());
        assert!(decode_path("/a/%00").is_err());
        assert!(decode_path("/a/%zz").is_err());
        assert!(decode_path("/a/%2").is_err());
        assert!(decode_path("/./a").is_err());
        assert_eq!(parse_listen_addr(":9090").unwrap().port(), 9090);
        assert_eq!(content_type("latest.tar.gz"), "application/gzip");
        assert_eq!(content_type("index.yaml"), "application/x-yaml");
        assert_eq!(content_type("x.bin"), "application/octet-stream");
    }
}
