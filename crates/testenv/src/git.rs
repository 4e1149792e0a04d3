//! A real git server over HTTP: a small hyper server on 127.0.0.1 running Debian's
//! `git http-backend` CGI for each request, with optional basic auth. Used by the
//! end-to-end tests and by `ferroflux dev up` to serve the demo repository.

use std::convert::Infallible;
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

/// Where Debian installs git's CGI.
pub const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// Expected `user:password` for basic auth; `None` serves anonymously.
pub type Credentials = Arc<Mutex<Option<(String, String)>>>;

/// A git HTTP server running on a tokio task; it stops when dropped.
pub struct GitHttpServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The directory holding bare repositories (`<name>.git`).
    pub root: PathBuf,
    /// Current credentials (tests change them to simulate a rotated password).
    pub credentials: Credentials,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GitHttpServer {
    /// Serves the bare repositories under `root` on a free loopback port.
    pub async fn start(
        root: &Path,
        credentials: Option<(&str, &str)>,
    ) -> std::io::Result<GitHttpServer> {
        Self::start_on(root, credentials, "127.0.0.1:0").await
    }

    /// Serves on `addr`.
    pub async fn start_on(
        root: &Path,
        credentials: Option<(&str, &str)>,
        addr: &str,
    ) -> std::io::Result<GitHttpServer> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let credentials: Credentials = Arc::new(Mutex::new(
            credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        ));
        let root = root.to_path_buf();
        let task = tokio::spawn(serve(listener, root.clone(), Arc::clone(&credentials)));
        Ok(GitHttpServer {
            base_url: format!("http://{local}"),
            root,
            credentials,
            task,
        })
    }

    /// The clone URL of repository `name` (`<base>/<name>.git`).
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.base_url)
    }
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, root: PathBuf, credentials: Credentials) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let root = root.clone();
        let credentials = Arc::clone(&credentials);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let root = root.clone();
                let credentials = Arc::clone(&credentials);
                async move { Ok::<_, Infallible>(handle(req, &root, &credentials).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
}

fn authorized(
    req: &Request<hyper::body::Incoming>,
    credentials: &Credentials,
) -> Result<Option<String>, ()> {
    let expected = credentials
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some((user, password)) = expected else {
        return Ok(None);
    };
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let given = header
        .strip_prefix("Basic ")
        .map(base64_decode)
        .unwrap_or_default();
    if given == format!("{user}:{password}").into_bytes() {
        Ok(Some(user))
    } else {
        Err(())
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    root: &Path,
    credentials: &Credentials,
) -> Response<Full<Bytes>> {
    let user = match authorized(&req, credentials) {
        Ok(user) => user,
        Err(()) => {
            let mut response = text(StatusCode::UNAUTHORIZED, "authentication required\n");
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"git\""),
            );
            return response;
        }
    };
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
    let (content_type, encoding, protocol) = (
        header("content-type"),
        header("content-encoding"),
        header("git-protocol"),
    );
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut command = tokio::process::Command::new(HTTP_BACKEND);
    command
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_TYPE", &content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", &encoding)
        .env("GIT_PROTOCOL", &protocol)
        .env("REMOTE_USER", user.unwrap_or_default())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{HTTP_BACKEND}: {e}"),
            );
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let output = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    cgi_response(&output.stdout)
}

/// Turns CGI output (headers, blank line, body) into an HTTP response.
fn cgi_response(out: &[u8]) -> Response<Full<Bytes>> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return text(StatusCode::BAD_GATEWAY, "malformed CGI output");
    };
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(&out[end + sep..])));
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *response.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.trim().as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}

fn base64_decode(input: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = input.bytes().filter_map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | d << (18 - 6 * i));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

/// A working tree that pushes to a bare repository served by a [`GitHttpServer`]
/// (or any directory of bare repositories).
pub struct Repo {
    /// The bare repository.
    pub bare: PathBuf,
    /// The working tree.
    pub work: PathBuf,
}

/// Runs git in `dir`, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "ferroflux")
        .env("GIT_AUTHOR_EMAIL", "ferroflux@example.invalid")
        .env("GIT_COMMITTER_NAME", "ferroflux")
        .env("GIT_COMMITTER_EMAIL", "ferroflux@example.invalid")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Repo {
    /// Creates `<root>/<name>.git` (bare, default branch `main`) and a working tree beside it.
    pub fn init(root: &Path, name: &str) -> Repo {
        let bare = root.join(format!("{name}.git"));
        let work = root.join(format!("{name}.work"));
        std::fs::create_dir_all(&bare).expect("create bare repo dir");
        std::fs::create_dir_all(&work).expect("create work tree");
        git(&bare, &["init", "--bare", "-q", "-b", "main"]);
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        Repo { bare, work }
    }

    /// Writes `files` (path → content; an empty content deletes the file), commits and
    /// pushes to `main`. Returns the commit hash.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let p = self.work.join(path);
            if content.is_empty() {
                let _ = std::fs::remove_file(&p);
                continue;
            }
            std::fs::create_dir_all(p.parent().expect("file has a parent")).expect("mkdir");
            std::fs::write(&p, content).expect("write file");
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}
