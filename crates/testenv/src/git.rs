//! A real git server over HTTP: a small hyper server on 127.0.0.1 running Debian's
//! `git http-backend` CGI for each request, with optional basic auth or bearer token, and
//! optionally over TLS (with or without client certificates). Used by the end-to-end tests
//! and by `ferroflux dev up` to serve the demo repository.

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

/// Expected bearer token (`Authorization: Bearer <token>`); `None` accepts none.
pub type BearerToken = Arc<Mutex<Option<String>>>;

/// TLS settings of a [`GitHttpServer`] (PEM).
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Server certificate chain.
    pub cert_pem: Vec<u8>,
    /// Server private key.
    pub key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca_pem: Option<Vec<u8>>,
}

/// How a [`GitHttpServer`] authenticates and serves. With both basic credentials and a
/// bearer token set, either one is accepted.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `user`, `password` for basic auth.
    pub credentials: Option<(String, String)>,
    /// Bearer token.
    pub bearer_token: Option<String>,
    /// Serve HTTPS instead of HTTP.
    pub tls: Option<TlsOptions>,
}

fn tls_acceptor(tls: &TlsOptions) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, e: String| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("server certificate", e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem)
        .map_err(|e| invalid("server key", e.to_string()))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", e.to_string()))?;
    let builder = match &tls.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca) {
                let c = c.map_err(|e| invalid("client CA", e.to_string()))?;
                roots
                    .add(c)
                    .map_err(|e| invalid("client CA", e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid("client verifier", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("server certificate and key", e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A git HTTP server running on a tokio task; it stops when dropped.
pub struct GitHttpServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The directory holding bare repositories (`<name>.git`).
    pub root: PathBuf,
    /// Current credentials (tests change them to simulate a rotated password).
    pub credentials: Credentials,
    /// Current bearer token.
    pub bearer_token: BearerToken,
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
        let options = ServerOptions {
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            ..Default::default()
        };
        Self::start_with(root, options, addr).await
    }

    /// Serves on `addr` with the given authentication and TLS settings.
    pub async fn start_with(
        root: &Path,
        options: ServerOptions,
        addr: &str,
    ) -> std::io::Result<GitHttpServer> {
        let acceptor = options.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let credentials: Credentials = Arc::new(Mutex::new(options.credentials));
        let bearer_token: BearerToken = Arc::new(Mutex::new(options.bearer_token));
        let root = root.to_path_buf();
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let auth = ServerAuth {
            credentials: Arc::clone(&credentials),
            bearer_token: Arc::clone(&bearer_token),
        };
        let task = tokio::spawn(serve_with(listener, root.clone(), auth, acceptor));
        Ok(GitHttpServer {
            base_url: format!("{scheme}://{local}"),
            root,
            credentials,
            bearer_token,
            task,
        })
    }

    /// The clone URL of repository `name` (`<base>/<name>.git`).
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.base_url)
    }
}

/// What a request must carry; either one set matches.
#[derive(Clone, Default)]
pub struct ServerAuth {
    /// Basic auth credentials.
    pub credentials: Credentials,
    /// Bearer token.
    pub bearer_token: BearerToken,
}

/// Accepts plain HTTP connections until the task is dropped.
pub async fn serve(listener: TcpListener, root: PathBuf, credentials: Credentials) {
    let auth = ServerAuth {
        credentials,
        bearer_token: BearerToken::default(),
    };
    serve_with(listener, root, auth, None).await;
}

async fn serve_connection<S>(stream: S, root: PathBuf, auth: ServerAuth)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let root = root.clone();
        let auth = auth.clone();
        async move { Ok::<_, Infallible>(handle(req, &root, &auth).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Accepts connections (TLS ones when `acceptor` is set) until the task is dropped.
pub async fn serve_with(
    listener: TcpListener,
    root: PathBuf,
    auth: ServerAuth,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let root = root.clone();
        let auth = auth.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                // A failed handshake (e.g. no client certificate) just drops the connection.
                Some(a) => {
                    if let Ok(tls) = a.accept(stream).await {
                        serve_connection(tls, root, auth).await;
                    }
                }
                None => serve_connection(stream, root, auth).await,
            }
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
    auth: &ServerAuth,
) -> Result<Option<String>, ()> {
    let expected = auth
        .credentials
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let token = auth
        .bearer_token
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if expected.is_none() && token.is_none() {
        return Ok(None);
    }
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if let (Some(token), Some(given)) = (&token, header.strip_prefix("Bearer "))
        && given == token
    {
        return Ok(Some("bearer".to_string()));
    }
    if let Some((user, password)) = expected {
        let given = header
            .strip_prefix("Basic ")
            .map(base64_decode)
            .unwrap_or_default();
        if given == format!("{user}:{password}").into_bytes() {
            return Ok(Some(user));
        }
    }
    Err(())
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    root: &Path,
    auth: &ServerAuth,
) -> Response<Full<Bytes>> {
    let user = match authorized(&req, auth) {
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
    git_with_env(dir, &[], args)
}

/// [`git`] with extra environment variables (e.g. `GNUPGHOME` for signing).
pub fn git_with_env(dir: &Path, env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("GIT_AUTHOR_NAME", "ferroflux")
        .env("GIT_AUTHOR_EMAIL", "ferroflux@example.invalid")
        .env("GIT_COMMITTER_NAME", "ferroflux")
        .env("GIT_COMMITTER_EMAIL", "ferroflux@example.invalid")
        // The machine's and the user's git configuration (signing, hooks, default branch)
        // must not change what a test commits.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
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
    /// force-pushes the current branch (`main` unless a test switched). Returns the commit hash.
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
        let branch = git(&self.work, &["rev-parse", "--abbrev-ref", "HEAD"]);
        git(&self.work, &["push", "-q", "-f", "origin", &branch]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Tags the current commit (annotated or lightweight) and pushes the tag.
    pub fn tag(&self, name: &str, annotated: bool) {
        if annotated {
            git(&self.work, &["tag", "-a", name, "-m", name]);
        } else {
            git(&self.work, &["tag", name]);
        }
        git(&self.work, &["push", "-q", "origin", name]);
    }

    /// Pushes the current commit to any ref, e.g. `refs/pull/7/head`.
    pub fn push_ref(&self, refname: &str) {
        git(
            &self.work,
            &["push", "-q", "origin", &format!("HEAD:{refname}")],
        );
    }
}
