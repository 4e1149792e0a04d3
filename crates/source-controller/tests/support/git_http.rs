//! A git server over HTTP for tests: a small hyper server on 127.0.0.1 that runs Debian's
//! `git http-backend` CGI for each request, with optional HTTP basic auth.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// A running server; stops when dropped (its task is aborted).
pub struct GitHttpServer {
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    /// Directory holding the bare repositories.
    pub root: PathBuf,
    /// Expected `user:password`, changeable at run time.
    pub credentials: Arc<Mutex<Option<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl GitHttpServer {
    /// Serves the bare repositories under `root`.
    pub async fn start(root: &Path, credentials: Option<(&str, &str)>) -> GitHttpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind git server");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let creds = Arc::new(Mutex::new(
            credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        ));
        let root_buf = root.to_path_buf();
        let creds2 = Arc::clone(&creds);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let root = root_buf.clone();
                let creds = Arc::clone(&creds2);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let root = root.clone();
                        let creds = creds.lock().unwrap().clone();
                        async move { Ok::<_, Infallible>(handle(&root, creds, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        GitHttpServer {
            base_url: format!("http://{addr}"),
            root: root.to_path_buf(),
            credentials: creds,
            task,
        }
    }

    /// URL of a repository.
    pub fn url(&self, repo: &str) -> String {
        format!("{}/{repo}", self.base_url)
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

async fn handle(
    root: &Path,
    creds: Option<(String, String)>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let mut remote_user = String::new();
    if let Some((u, p)) = creds {
        let want = format!("Basic {}", b64(format!("{u}:{p}").as_bytes()));
        let got = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if got != want {
            let mut r = text(StatusCode::UNAUTHORIZED, "authentication required");
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"git\""),
            );
            return r;
        }
        remote_user = u;
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header("content-type");
    let git_protocol = header("git-protocol");
    let content_encoding = header("content-encoding");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut cmd = tokio::process::Command::new(BACKEND);
    cmd.env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_TYPE", &content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", &remote_user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "uploadpack.allowAnySHA1InWant")
        .env("GIT_CONFIG_VALUE_0", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !git_protocol.is_empty() {
        cmd.env("HTTP_GIT_PROTOCOL", &git_protocol);
    }
    if !content_encoding.is_empty() {
        cmd.env("HTTP_CONTENT_ENCODING", &content_encoding);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let out = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    // CGI response: headers, blank line, body.
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((i, sep)) = split else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &String::from_utf8_lossy(&out.stderr),
        );
    };
    let head = String::from_utf8_lossy(&raw[..i]).to_string();
    let body = raw[i + sep..].to_vec();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *resp.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(val)) = (
            hyper::header::HeaderName::from_bytes(k.trim().as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(name, val);
        }
    }
    resp
}
