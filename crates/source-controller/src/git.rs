//! Git operations with gix, all blocking (run them in `spawn_blocking`):
//!
//! * one bare repository per GitRepository object in the cache directory, kept between
//!   reconciles, so a new commit only costs its new objects (the previous tip is sent as a
//!   `have` during negotiation);
//! * the remote refs are listed first (one handshake; for `semver` a second one after the tag
//!   was chosen); when the resolved commit equals the caller's last commit, no pack is fetched;
//! * shallow (depth 1) fetches for branch, tag, semver and name refs; full history for commits;
//! * the commit's tree is read from there to build the artifact (`crate::archive`), never
//!   checked out.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::protocol::handshake::Ref;
use gix::remote::Direction;

use crate::semver_tags::{Constraint, latest_matching};

/// What to check out (Flux's precedence: commit, name, semver, tag, branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// A branch (`refs/heads/<b>`).
    Branch(String),
    /// A tag (`refs/tags/<t>`).
    Tag(String),
    /// The highest tag satisfying a semver constraint.
    Semver(String),
    /// A full reference name (`refs/heads/main`, `refs/pull/1/head`).
    Name(String),
    /// A commit, optionally on a branch.
    Commit {
        /// Full or abbreviated hex.
        commit: String,
        /// Branch to fetch it from; every branch when absent.
        branch: Option<String>,
    },
}

impl GitRef {
    /// From the API reference (already defaulted to branch `master`).
    pub fn from_spec(r: &ferroflux_api::source::GitRepositoryRef) -> GitRef {
        if let Some(c) = r.commit.as_deref().filter(|c| !c.is_empty()) {
            return GitRef::Commit {
                commit: c.to_lowercase(),
                branch: r.branch.clone().filter(|b| !b.is_empty()),
            };
        }
        if let Some(n) = r.name.as_deref().filter(|n| !n.is_empty()) {
            return GitRef::Name(n.to_string());
        }
        if let Some(s) = r.semver.as_deref().filter(|s| !s.is_empty()) {
            return GitRef::Semver(s.to_string());
        }
        if let Some(t) = r.tag.as_deref().filter(|t| !t.is_empty()) {
            return GitRef::Tag(t.to_string());
        }
        GitRef::Branch(
            r.branch
                .clone()
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "master".to_string()),
        )
    }

    /// Whether a depth-1 fetch is enough.
    pub fn shallow(&self) -> bool {
        !matches!(self, GitRef::Commit { .. })
    }
}

/// Credentials and TLS settings from `spec.secretRef`.
#[derive(Default, Clone)]
pub struct Auth {
    /// HTTP basic auth.
    pub basic: Option<(String, String)>,
    /// `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Extra CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM, concatenated).
    pub client_identity_pem: Option<Vec<u8>>,
    /// SSH private key, its passphrase and the trusted host keys.
    pub ssh: Option<SshAuth>,
    /// The proxy of `spec.proxySecretRef`.
    pub proxy: Option<crate::proxy::ProxyConfig>,
}

/// SSH credentials (`identity`, `password`, `known_hosts` of the Secret).
#[derive(Clone, Default)]
pub struct SshAuth {
    /// Private key (OpenSSH or PEM format).
    pub identity: Vec<u8>,
    /// Passphrase of an encrypted key.
    pub password: Option<String>,
    /// known_hosts lines; the host key must match one of them.
    pub known_hosts: Vec<u8>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("basic", &self.basic.as_ref().map(|(u, _)| u))
            .field("bearer_token", &self.bearer_token.is_some())
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.client_identity_pem.is_some())
            .field("ssh", &self.ssh.is_some())
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// A resolved commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Flux's revision string.
    pub revision: String,
    /// The commit's hex id.
    pub commit: String,
    /// The annotated tag object the reference pointed at (tag and semver references), as
    /// advertised by the remote; `None` for lightweight tags and other references.
    pub tag_object: Option<String>,
}

/// How the fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The remote still points at the caller's last commit: nothing was fetched.
    Unchanged(Resolved),
    /// The commit is in the cache repository (fetched now or already present).
    Ready(Resolved),
}

/// Classified git failures.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The server refused our credentials or wants some.
    #[error("{0}")]
    Auth(String),
    /// The secret cannot be used as given (e.g. an ssh key without `known_hosts`); found
    /// before talking to the remote.
    #[error("{0}")]
    AuthConfig(String),
    /// The reference does not exist on the remote.
    #[error("{0}")]
    RefNotFound(String),
    /// The URL cannot be used.
    #[error("{0}")]
    InvalidUrl(String),
    /// Timed out.
    #[error("{0}")]
    Timeout(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Flux's revision for a resolved ref.
pub fn revision_for(r: &GitRef, resolved_name: Option<&str>, commit_hex: &str) -> String {
    match r {
        GitRef::Branch(b) => format!("{b}@sha1:{commit_hex}"),
        GitRef::Tag(t) => format!("{t}@sha1:{commit_hex}"),
        GitRef::Semver(_) => format!("{}@sha1:{commit_hex}", resolved_name.unwrap_or_default()),
        GitRef::Name(n) => format!("{n}@sha1:{commit_hex}"),
        GitRef::Commit {
            branch: Some(b), ..
        } => format!("{b}@sha1:{commit_hex}"),
        GitRef::Commit { branch: None, .. } => format!("sha1:{commit_hex}"),
    }
}

/// The commit hex of a Flux revision (`main@sha1:<hex>`, `sha1:<hex>`, legacy `main/<hex>`).
pub fn commit_of_revision(rev: &str) -> Option<&str> {
    if let Some((_, hex)) = rev.rsplit_once("sha1:") {
        return Some(hex);
    }
    rev.rsplit('/').next().filter(|h| h.len() == 40)
}

/// The error and its sources joined with ": " (repeated texts dropped), and its Debug form.
fn err_text(e: &(dyn std::error::Error + 'static)) -> (String, String) {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    (parts.join(": "), format!("{e:?}"))
}

/// Whether `code` appears in `hay` as a number of its own, not inside another number or as a
/// port (`127.0.0.1:40159` is no 401).
fn has_status_code(hay: &str, code: &str) -> bool {
    hay.match_indices(code).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == ':')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

fn classify(context: &str, display: String, debug: String) -> GitError {
    let hay = format!("{display} {debug}").to_lowercase();
    if hay.contains("host key verification failed") {
        return GitError::Auth(format!(
            "{context}: host key verification failed: the server's key is not in the secret's known_hosts: {display}"
        ));
    }
    if hay.contains("no credentials were returned") {
        // gix's words when the server answered 401 and we had nothing (more) to offer.
        return GitError::Auth(format!(
            "{context}: authentication required or credentials rejected by the remote (check spec.secretRef): the server answered 401 Unauthorized"
        ));
    }
    if hay.contains("authentication")
        || hay.contains("permission denied")
        || hay.contains("no credentials were returned")
        || hay.contains("permissiondenied")
        || has_status_code(&hay, "401")
        || hay.contains("403 forbidden")
    {
        return GitError::Auth(format!(
            "{context}: authentication required or credentials rejected by the remote (check spec.secretRef): {display}"
        ));
    }
    if hay.contains("interrupt") || hay.contains("timed out") || hay.contains("timeout") {
        return GitError::Timeout(format!("{context}: operation timed out: {display}"));
    }
    GitError::Other(format!("{context}: {display}"))
}

pub(crate) fn open_cache(dir: &Path) -> Result<gix::Repository, GitError> {
    let open =
        |d: &Path| gix::open_opts(d, gix::open::Options::isolated()).map_err(|e| e.to_string());
    if dir.join("HEAD").exists() {
        match open(dir) {
            Ok(r) => return Ok(r),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "discarding broken git cache");
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        GitError::Other(format!("failed to create cache dir {}: {e}", dir.display()))
    })?;
    gix::ThreadSafeRepository::init_opts(
        dir,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        gix::open::Options::isolated(),
    )
    .map(|r| r.to_thread_local())
    .map_err(|e| GitError::Other(format!("failed to init cache repository: {e}")))
}

fn http_options(
    auth: &Auth,
    timeout: Duration,
) -> Result<gix::protocol::transport::client::blocking_io::http::Options, GitError> {
    use gix::protocol::transport::client::blocking_io::http;
    let mut opts = http::Options {
        user_agent: Some("ferroflux-source-controller".into()),
        connect_timeout: Some(timeout.min(Duration::from_secs(30))),
        ..Default::default()
    };
    if let Some(t) = &auth.bearer_token {
        opts.extra_headers
            .push(format!("Authorization: Bearer {t}"));
    }
    let ca = match &auth.ca_pem {
        Some(pem) => Some(
            reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| GitError::Other(format!("invalid ca.crt: {e}")))?,
        ),
        None => None,
    };
    let identity = match &auth.client_identity_pem {
        Some(pem) => Some(
            reqwest::Identity::from_pem(pem)
                .map_err(|e| GitError::Other(format!("invalid tls.crt/tls.key: {e}")))?,
        ),
        None => None,
    };
    let proxy = match &auth.proxy {
        Some(p) => Some(p.reqwest_proxy().map_err(GitError::AuthConfig)?),
        None => None,
    };
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |mut b: reqwest::blocking::ClientBuilder| {
            b = b.timeout(timeout);
            if let Some(p) = &proxy {
                b = b.proxy(p.clone());
            }
            if let Some(ca) = &ca {
                b = b.tls_certs_merge(ca.iter().cloned());
            }
            if let Some(id) = &identity {
                b = b.identity(id.clone());
            }
            Ok(b)
        })),
        configure_request: None,
    };
    opts.backend = Some(Arc::new(std::sync::Mutex::new(backend)));
    Ok(opts)
}

const SSH_STDERR: &str = "stderr";

/// Whether the URL uses the ssh transport.
pub fn is_ssh_url(url: &str) -> bool {
    url.starts_with("ssh://") || (!url.contains("://") && url.contains('@') && url.contains(':'))
}

/// Writes the key and known_hosts to a private temporary directory and points the repository's
/// `core.sshCommand` at the system `ssh` with strict host key checking against them only.
/// The returned directory must outlive the fetch.
fn configure_ssh(
    repo: &mut gix::Repository,
    auth: &Auth,
    timeout: Duration,
    route: Option<&str>,
) -> Result<tempfile::TempDir, GitError> {
    use std::os::unix::fs::PermissionsExt;
    let ssh = auth.ssh.as_ref().ok_or_else(|| {
        GitError::AuthConfig(
            "ssh:// URLs need spec.secretRef with 'identity' and 'known_hosts'".to_string(),
        )
    })?;
    if ssh.known_hosts.is_empty() {
        return Err(GitError::AuthConfig(
            "the secret has no 'known_hosts': refusing to trust an unknown host key".to_string(),
        ));
    }
    let io = |what: &str, e: std::io::Error| GitError::Other(format!("failed to {what}: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("ssh-")
        .tempdir()
        .map_err(|e| io("create ssh temp dir", e))?;
    let key = dir.path().join("identity");
    let kh = dir.path().join("known_hosts");
    let mut identity = ssh.identity.clone();
    if !identity.ends_with(b"\n") {
        identity.push(b'\n');
    }
    std::fs::write(&key, &identity).map_err(|e| io("write ssh key", e))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("chmod ssh key", e))?;
    std::fs::write(&kh, &ssh.known_hosts).map_err(|e| io("write known_hosts", e))?;
    if let Some(pass) = ssh.password.as_deref().filter(|p| !p.is_empty()) {
        // Decrypt the private copy so ssh never prompts.
        let out = std::process::Command::new("ssh-keygen")
            .arg("-p")
            .arg("-P")
            .arg(pass)
            .args(["-N", "", "-f"])
            .arg(&key)
            .output()
            .map_err(|e| io("run ssh-keygen", e))?;
        if !out.status.success() {
            return Err(GitError::Auth(format!(
                "failed to decrypt the ssh identity with the given password: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let cmd = format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout={} {} 2>>{}",
        key.display(),
        kh.display(),
        timeout.as_secs().max(1),
        route.unwrap_or_default(),
        dir.path().join(SSH_STDERR).display(),
    );
    let mut cfg = repo.config_snapshot_mut();
    cfg.set_value(&gix::config::tree::Core::SSH_COMMAND, cmd.as_str())
        .map_err(|e| GitError::Other(format!("failed to configure ssh: {e}")))?;
    cfg.commit()
        .map_err(|e| GitError::Other(format!("failed to configure ssh: {e}")))?;
    Ok(dir)
}

/// Inputs of one fetch.
pub struct FetchRequest<'a> {
    /// Remote URL.
    pub url: &'a str,
    /// What to check out.
    pub reference: &'a GitRef,
    /// Credentials.
    pub auth: &'a Auth,
    /// The object's cache repository.
    pub cache_dir: &'a Path,
    /// Budget for the network operations.
    pub timeout: Duration,
    /// The revision of the current artifact; when the remote still resolves to it, nothing
    /// is fetched.
    pub last_revision: Option<&'a str>,
    /// Set to abort.
    pub interrupt: Arc<AtomicBool>,
}

fn ref_object(r: &Ref) -> Option<(String, gix::ObjectId)> {
    ref_objects(r).map(|(n, o, _)| (n, o))
}

/// The name, the peeled object and, for annotated tags, the tag object of a remote ref.
fn ref_objects(r: &Ref) -> Option<(String, gix::ObjectId, Option<gix::ObjectId>)> {
    match r {
        Ref::Direct {
            full_ref_name,
            object,
        } => Some((full_ref_name.to_string(), *object, None)),
        Ref::Peeled {
            full_ref_name,
            object,
            tag,
        } => Some((full_ref_name.to_string(), *object, Some(*tag))),
        Ref::Symbolic {
            full_ref_name,
            object,
            ..
        } => Some((full_ref_name.to_string(), *object, None)),
        Ref::Unborn { .. } => None,
    }
}

/// Lists the remote refs matching `refspecs` (ls-remote).
fn list_remote(
    repo: &gix::Repository,
    req: &FetchRequest<'_>,
    refspecs: &[String],
) -> Result<Vec<(String, gix::ObjectId)>, GitError> {
    let prepare = connect_and_prepare(repo, req, refspecs)?;
    Ok(prepare
        .ref_map()
        .remote_refs
        .iter()
        .filter_map(ref_object)
        .collect())
}

type Prepared<'r> = gix::remote::fetch::Prepare<
    'static,
    'r,
    Box<dyn gix::protocol::transport::client::blocking_io::Transport + Send>,
>;

fn connect_and_prepare<'r>(
    repo: &'r gix::Repository,
    req: &FetchRequest<'_>,
    refspecs: &[String],
) -> Result<Prepared<'r>, GitError> {
    let ctx = format!("unable to fetch from '{}'", req.url);
    let remote = repo
        .remote_at(req.url)
        .map_err(|e| GitError::InvalidUrl(format!("invalid URL '{}': {e}", req.url)))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(refspecs.iter().map(String::as_str), Direction::Fetch)
        .map_err(|e| GitError::Other(format!("invalid refspec {refspecs:?}: {e}")))?;
    let is_http = req.url.starts_with("http://") || req.url.starts_with("https://");
    let conn = remote.connect(Direction::Fetch).map_err(|e| {
        let (d, g) = err_text(&e);
        classify(&ctx, d, g)
    })?;
    let basic = req.auth.basic.clone();
    let mut conn = conn.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => match &basic {
            Some((u, p)) => Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: u.clone(),
                    password: p.clone(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            })),
            None => Ok(None),
        },
        _ => Ok(None),
    });
    if is_http {
        conn = conn.with_transport_options(Box::new(http_options(req.auth, req.timeout)?));
    }
    conn.prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| {
            let (d, g) = err_text(&e);
            let low = g.to_lowercase();
            if low.contains("none of the refspec") || low.contains("matched any") {
                GitError::RefNotFound(format!("{ctx}: {d}"))
            } else {
                classify(&ctx, d, g)
            }
        })
}

fn has_commit(repo: &gix::Repository, hex: &str) -> Option<gix::ObjectId> {
    let id = gix::ObjectId::from_hex(hex.as_bytes()).ok()?;
    repo.find_object(id)
        .ok()
        .and_then(|o| o.try_into_commit().ok())
        .map(|c| c.id)
}

/// Lists the remote, decides, and fetches when needed.
pub fn fetch(req: &FetchRequest<'_>) -> Result<FetchOutcome, GitError> {
    let mut repo = open_cache(req.cache_dir)?;
    if !is_ssh_url(req.url) {
        return match &req.auth.proxy {
            Some(p) => fetch_with(req, repo).map_err(|e| p.explain(e)),
            None => fetch_with(req, repo),
        };
    }
    let relay = match &req.auth.proxy {
        None => None,
        Some(p) => {
            let fail =
                |m: String| GitError::Other(format!("unable to fetch from '{}': {m}", req.url));
            Some(
                p.ssh_relay(req.url, req.timeout)
                    .map_err(fail)?
                    .ok_or_else(|| fail(p.ssh_unsupported()))?,
            )
        }
    };
    let route = relay.as_ref().map(|(_, options)| options.as_str());
    let ssh_dir = configure_ssh(&mut repo, req.auth, req.timeout, route)?;
    fetch_with(req, repo).map_err(|e| {
        // ssh reports why it failed on stderr only; fold that into the error.
        let stderr = std::fs::read_to_string(ssh_dir.path().join(SSH_STDERR)).unwrap_or_default();
        let mut stderr = stderr.trim().to_string();
        // ssh only sees the relay close; the relay knows what the proxy said.
        if let Some(why) = relay.as_ref().and_then(|(r, _)| r.last_error()) {
            stderr = format!("{stderr} ({why})").trim().to_string();
        }
        let stderr = stderr.as_str();
        if stderr.is_empty() {
            return e;
        }
        let ctx = format!("unable to fetch from '{}'", req.url);
        match classify(&ctx, stderr.to_string(), String::new()) {
            GitError::Other(_) => match e {
                GitError::Other(m) => GitError::Other(format!("{m}: ssh: {stderr}")),
                other => other,
            },
            classified => classified,
        }
    })
}

fn fetch_with(req: &FetchRequest<'_>, repo: gix::Repository) -> Result<FetchOutcome, GitError> {
    let not_found = |what: String| GitError::RefNotFound(what);

    // Decide the refspec; for semver, list tags first.
    let (refspec, want_ref, resolved_name): (String, Option<String>, Option<String>) =
        match req.reference {
            GitRef::Branch(b) => (
                format!("+refs/heads/{b}:refs/heads/{b}"),
                Some(format!("refs/heads/{b}")),
                None,
            ),
            GitRef::Tag(t) => (
                format!("+refs/tags/{t}:refs/tags/{t}"),
                Some(format!("refs/tags/{t}")),
                None,
            ),
            GitRef::Name(n) => (format!("+{n}:{n}"), Some(n.clone()), None),
            GitRef::Semver(c) => {
                let constraint = Constraint::parse(c)
                    .map_err(|e| GitError::Other(format!("semver parse error: {e}")))?;
                let tags = list_remote(&repo, req, &["+refs/tags/*:refs/tags/*".to_string()])?;
                let names: Vec<String> = tags
                    .iter()
                    .filter_map(|(n, _)| n.strip_prefix("refs/tags/").map(str::to_string))
                    .collect();
                let best = latest_matching(&constraint, names.iter().map(String::as_str))
                    .ok_or_else(|| not_found(format!("no match found for semver: {c}")))?
                    .to_string();
                (
                    format!("+refs/tags/{best}:refs/tags/{best}"),
                    Some(format!("refs/tags/{best}")),
                    Some(best),
                )
            }
            GitRef::Commit { commit, branch } => {
                if commit.len() == 40
                    && let Some(id) = has_commit(&repo, commit)
                {
                    let hex = id.to_string();
                    return Ok(FetchOutcome::Ready(Resolved {
                        revision: revision_for(req.reference, None, &hex),
                        commit: hex,
                        tag_object: None,
                    }));
                }
                match branch {
                    Some(b) => (format!("+refs/heads/{b}:refs/heads/{b}"), None, None),
                    None => ("+refs/heads/*:refs/heads/*".to_string(), None, None),
                }
            }
        };

    let prepare = connect_and_prepare(&repo, req, std::slice::from_ref(&refspec))?;
    let mut tag_object = None;
    let remote_tip = match &want_ref {
        Some(name) => {
            let found = prepare
                .ref_map()
                .remote_refs
                .iter()
                .filter_map(ref_objects)
                .find(|(n, _, _)| n == name);
            match found {
                Some((_, id, tag)) => {
                    tag_object = tag.filter(|_| name.starts_with("refs/tags/"));
                    Some(id)
                }
                None => {
                    let what = match req.reference {
                        GitRef::Branch(b) => format!("couldn't find remote ref 'refs/heads/{b}'"),
                        GitRef::Tag(t) => format!("couldn't find remote ref 'refs/tags/{t}'"),
                        _ => format!("couldn't find remote ref '{name}'"),
                    };
                    return Err(not_found(format!(
                        "unable to fetch from '{}': {what}",
                        req.url
                    )));
                }
            }
        }
        None => None,
    };

    if let Some(tip) = remote_tip {
        let hex = tip.to_string();
        let resolved = Resolved {
            revision: revision_for(req.reference, resolved_name.as_deref(), &hex),
            commit: hex.clone(),
            tag_object: tag_object.map(|t| t.to_string()),
        };
        if req.last_revision == Some(resolved.revision.as_str()) {
            return Ok(FetchOutcome::Unchanged(resolved));
        }
        // The tag object is needed too when the tag's signature is verified.
        let tag_present = tag_object.is_none_or(|t| repo.find_object(t).is_ok());
        if has_commit(&repo, &hex).is_some() && tag_present {
            return Ok(FetchOutcome::Ready(resolved));
        }
    }

    let shallow = if req.reference.shallow() {
        gix::remote::fetch::Shallow::DepthAtRemote(std::num::NonZeroU32::MIN)
    } else if repo.is_shallow().unwrap_or(false) {
        gix::remote::fetch::Shallow::undo()
    } else {
        gix::remote::fetch::Shallow::NoChange
    };
    let ctx = format!("unable to fetch from '{}'", req.url);
    prepare
        .with_shallow(shallow)
        .receive(gix::progress::Discard, &req.interrupt)
        .map_err(|e| {
            let (d, g) = err_text(&e);
            if req.interrupt.load(Ordering::Relaxed) {
                GitError::Timeout(format!("{ctx}: timeout of {:?} exceeded", req.timeout))
            } else {
                classify(&ctx, d, g)
            }
        })?;
    // Re-open to see the new pack.
    let repo = open_cache(req.cache_dir)?;

    let commit = match (remote_tip, req.reference) {
        (Some(tip), _) => tip,
        (None, GitRef::Commit { commit, .. }) => {
            resolve_commit(&repo, commit).ok_or_else(|| {
                not_found(format!(
                    "failed to resolve commit object for '{commit}': object not found"
                ))
            })?
        }
        (None, _) => return Err(GitError::Other("no remote tip".into())),
    };
    // Annotated tags point at tag objects: peel.
    let commit = repo
        .find_object(commit)
        .map_err(|e| GitError::Other(format!("object {commit} missing after fetch: {e}")))?
        .peel_to_commit()
        .map_err(|e| GitError::Other(format!("{commit} is not a commit: {e}")))?
        .id;
    let hex = commit.to_string();
    Ok(FetchOutcome::Ready(Resolved {
        revision: revision_for(req.reference, resolved_name.as_deref(), &hex),
        commit: hex,
        tag_object: tag_object.map(|t| t.to_string()),
    }))
}

fn resolve_commit(repo: &gix::Repository, prefix: &str) -> Option<gix::ObjectId> {
    if prefix.len() == 40 {
        return has_commit(repo, prefix);
    }
    let p = gix::hash::Prefix::from_hex(prefix).ok()?;
    repo.objects
        .lookup_prefix(p, None)
        .ok()
        .flatten()
        .and_then(Result::ok)
        .and_then(|id| has_commit(repo, &id.to_string()))
}

/// The root tree of commit `commit_hex` in `repo`.
pub(crate) fn tree_of<'r>(
    repo: &'r gix::Repository,
    commit_hex: &str,
) -> Result<gix::Tree<'r>, GitError> {
    let id = gix::ObjectId::from_hex(commit_hex.as_bytes())
        .map_err(|e| GitError::Other(format!("invalid commit id {commit_hex}: {e}")))?;
    repo.find_object(id)
        .map_err(|e| GitError::Other(format!("failed to read commit {commit_hex}: {e}")))?
        .peel_to_tree()
        .map_err(|e| GitError::Other(format!("failed to read tree of {commit_hex}: {e}")))
}

/// The first line of the commit message (for events).
pub fn commit_subject(cache_dir: &Path, commit_hex: &str) -> Option<String> {
    let repo = open_cache(cache_dir).ok()?;
    let id = gix::ObjectId::from_hex(commit_hex.as_bytes()).ok()?;
    let c = repo.find_object(id).ok()?.try_into_commit().ok()?;
    let msg = c.message_raw().ok()?.to_str_lossy().into_owned();
    Some(msg.lines().next().unwrap_or_default().to_string())
}

/// A git object's signature (empty when unsigned) and the bytes it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedObject {
    /// The armored signature as git stores it.
    pub signature: String,
    /// The object without its signature: what the signer signed.
    pub payload: Vec<u8>,
}

/// Splits a raw commit into its `gpgsig` header (with the continuation lines unfolded) and
/// the commit without that header, which is what `git commit -S` signs.
pub fn split_commit_signature(raw: &[u8]) -> SignedObject {
    let header_end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 1)
        .unwrap_or(raw.len());
    let mut payload = Vec::with_capacity(raw.len());
    let mut signature = String::new();
    let mut in_sig = false;
    let mut rest = &raw[..header_end];
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        if in_sig && line.first() == Some(&b' ') {
            signature.push('\n');
            signature.push_str(String::from_utf8_lossy(&line[1..]).trim_end_matches('\n'));
            continue;
        }
        in_sig = false;
        if let Some(v) = line.strip_prefix(b"gpgsig ") {
            in_sig = true;
            signature.push_str(String::from_utf8_lossy(v).trim_end_matches('\n'));
            continue;
        }
        payload.extend_from_slice(line);
    }
    payload.extend_from_slice(&raw[header_end..]);
    SignedObject { signature, payload }
}

/// Armor lines that start a signature appended to a tag message.
const SIGNATURE_STARTS: [&[u8]; 4] = [
    b"-----BEGIN PGP SIGNATURE-----",
    b"-----BEGIN PGP MESSAGE-----",
    b"-----BEGIN SSH SIGNATURE-----",
    b"-----BEGIN SIGNED MESSAGE-----",
];

/// Splits a raw annotated tag into the signature appended to its message and the bytes
/// before it, which is what `git tag -s` signs.
pub fn split_tag_signature(raw: &[u8]) -> SignedObject {
    let body = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(raw.len(), |i| i + 2);
    let mut start = None;
    let mut pos = body;
    while pos < raw.len() {
        let line = &raw[pos..];
        if SIGNATURE_STARTS.iter().any(|s| line.starts_with(s)) {
            start = Some(pos);
            break;
        }
        pos += line
            .iter()
            .position(|b| *b == b'\n')
            .map_or(line.len(), |i| i + 1);
    }
    match start {
        Some(s) => SignedObject {
            signature: String::from_utf8_lossy(&raw[s..]).into_owned(),
            payload: raw[..s].to_vec(),
        },
        None => SignedObject {
            signature: String::new(),
            payload: raw.to_vec(),
        },
    }
}

fn raw_object(cache_dir: &Path, hex: &str, kind: gix::object::Kind) -> Result<Vec<u8>, GitError> {
    let repo = open_cache(cache_dir)?;
    let id = gix::ObjectId::from_hex(hex.as_bytes())
        .map_err(|e| GitError::Other(format!("invalid object id {hex}: {e}")))?;
    let obj = repo
        .find_object(id)
        .map_err(|e| GitError::Other(format!("failed to read object {hex}: {e}")))?;
    if obj.kind != kind {
        return Err(GitError::Other(format!(
            "object {hex} is a {}, not a {kind}",
            obj.kind
        )));
    }
    Ok(obj.data.clone())
}

/// The signature and signed bytes of commit `commit_hex` in the cache repository.
pub fn commit_signature(cache_dir: &Path, commit_hex: &str) -> Result<SignedObject, GitError> {
    raw_object(cache_dir, commit_hex, gix::object::Kind::Commit).map(|r| split_commit_signature(&r))
}

/// The signature and signed bytes of the annotated tag object `tag_hex`.
pub fn tag_signature(cache_dir: &Path, tag_hex: &str) -> Result<SignedObject, GitError> {
    raw_object(cache_dir, tag_hex, gix::object::Kind::Tag).map(|r| split_tag_signature(&r))
}

/// A tree entry's name when it is safe as a path component (not `..`, `.git`, ...).
pub(crate) fn safe_name(name: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(name).ok()?;
    if s.is_empty()
        || s == "."
        || s == ".."
        || s.contains('/')
        || s.contains('\0')
        || s.eq_ignore_ascii_case(".git")
    {
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroflux_api::source::GitRepositoryRef;

    #[test]
    fn precedence_and_revisions() {
        let r = GitRepositoryRef {
            branch: Some("main".into()),
            tag: Some("v1".into()),
            ..Default::default()
        };
        assert_eq!(GitRef::from_spec(&r), GitRef::Tag("v1".into()));
        let r = GitRepositoryRef {
            branch: Some("main".into()),
            commit: Some("ABC".into()),
            ..Default::default()
        };
        let g = GitRef::from_spec(&r);
        assert_eq!(
            g,
            GitRef::Commit {
                commit: "abc".into(),
                branch: Some("main".into())
            }
        );
        let h = "a".repeat(40);
        assert_eq!(revision_for(&g, None, &h), format!("main@sha1:{h}"));
        let c = GitRef::Commit {
            commit: h.clone(),
            branch: None,
        };
        assert_eq!(revision_for(&c, None, &h), format!("sha1:{h}"));
        let n = GitRef::Name("refs/heads/main".into());
        assert_eq!(
            revision_for(&n, None, &h),
            format!("refs/heads/main@sha1:{h}")
        );
        let s = GitRef::Semver(">=1".into());
        assert_eq!(
            revision_for(&s, Some("v1.2.0"), &h),
            format!("v1.2.0@sha1:{h}")
        );
        assert_eq!(
            commit_of_revision(&format!("main@sha1:{h}")),
            Some(h.as_str())
        );
        assert_eq!(commit_of_revision(&format!("sha1:{h}")), Some(h.as_str()));
        assert_eq!(commit_of_revision(&format!("main/{h}")), Some(h.as_str()));
    }

    #[test]
    fn status_codes_are_not_ports() {
        assert!(has_status_code(
            "received http status 401 unauthorized",
            "401"
        ));
        assert!(has_status_code("401", "401"));
        assert!(!has_status_code("https://127.0.0.1:40159/app.git", "401"));
        assert!(!has_status_code("http://h:401/r", "401"));
        assert!(!has_status_code("pack 14012 bytes", "401"));
    }

    #[test]
    fn unsafe_names() {
        assert!(safe_name(b"..").is_none());
        assert!(safe_name(b".GIT").is_none());
        assert!(safe_name(b"a/b").is_none());
        assert_eq!(safe_name(b"ok.yaml"), Some("ok.yaml"));
    }

    #[test]
    fn commit_and_tag_signatures_split() {
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQ==\n -----END PGP SIGNATURE-----\n\nmsg\n";
        let s = split_commit_signature(raw);
        assert_eq!(
            s.signature,
            "-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----"
        );
        assert_eq!(
            s.payload,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\nmsg\n"
        );
        let unsigned = b"tree 4b\nauthor A <a@x> 1 +0000\n\nmsg\n";
        let s = split_commit_signature(unsigned);
        assert_eq!(s.signature, "");
        assert_eq!(s.payload, unsigned);

        let tag = b"object 4b\ntype commit\ntag v1\ntagger A <a@x> 1 +0000\n\nv1\n-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n";
        let s = split_tag_signature(tag);
        assert_eq!(
            s.payload,
            b"object 4b\ntype commit\ntag v1\ntagger A <a@x> 1 +0000\n\nv1\n"
        );
        assert!(s.signature.starts_with("-----BEGIN PGP SIGNATURE-----\n"));
        let s = split_tag_signature(b"object 4b\ntype commit\ntag v1\n\nplain\n");
        assert_eq!(s.signature, "");
    }
}
