//! Building, starting and connecting to etcd + kube-apiserver.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::config::{AuthInfo, Kubeconfig};

use crate::watchdog::spawn_supervised;

/// Why the control plane could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `tests/cluster/build.sh` failed.
    #[error("building the control plane with {script} failed ({status}); see its output above")]
    Build { script: String, status: String },
    /// A process could not be spawned or a file written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The API server did not become ready.
    #[error(
        "kube-apiserver was not ready after {waited:?}: {last_error}\n--- etcd log (tail) ---\n{etcd_log}\n--- kube-apiserver log (tail) ---\n{apiserver_log}"
    )]
    NotReady {
        waited: Duration,
        last_error: String,
        etcd_log: String,
        apiserver_log: String,
    },
    /// Talking to the API server failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The CRDs in `crds/` could not be installed.
    #[error("installing CRDs: {0}")]
    Crds(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// How to start a control plane.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// The servers stop when this process exits; `None` leaves them running (the demo).
    pub owner_pid: Option<u32>,
    /// Where certificates, keys, logs and the kubeconfig go; a fresh temp dir when `None`.
    pub state_dir: Option<PathBuf>,
    /// Install `crds/` once the API server is ready.
    pub install_crds: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            owner_pid: Some(std::process::id()),
            state_dir: None,
            install_crds: true,
        }
    }
}

/// A running etcd + kube-apiserver.
#[derive(Debug)]
pub struct ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// Bearer token of a `system:masters` user.
    pub token: String,
    /// A kubeconfig for kubectl, the flux CLI and controllers run as processes.
    pub kubeconfig_path: PathBuf,
    /// Certificates, keys, logs.
    pub state_dir: PathBuf,
    /// `gitVersion` the API server reports.
    pub version: String,
    /// Time from the first process start to a ready API server (and CRDs installed).
    pub start_time: Duration,
    /// Process ids of the supervisors (etcd, kube-apiserver).
    pub supervisor_pids: Vec<u32>,
}

/// The repository root (where `Cargo.toml`, `crds/` and `tests/cluster` are).
pub fn workspace_root() -> PathBuf {
    if let Ok(root) = std::env::var("FERROFLUX_ROOT") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Where the Go-built binaries live: `$FERROFLUX_CLUSTER_BIN` or `target/cluster`.
fn bin_dir() -> PathBuf {
    std::env::var_os("FERROFLUX_CLUSTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/cluster"))
}

impl ControlPlane {
    /// The control plane shared by every test of this process, started on first use.
    /// Panics with the reason (and the servers' logs) when it cannot start: a test that
    /// needs a cluster cannot run without one, and must not pass silently.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| {
            // Start on a thread of our own: callers are often inside a tokio runtime,
            // and the start-up needs one of its own to talk to the API server.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the control plane start-up");
                runtime.block_on(ControlPlane::start(StartOptions::default()))
            })
            .join()
            .expect("control plane start-up thread panicked")
            .unwrap_or_else(|err| panic!("the test control plane could not start: {err}"))
        })
    }

    /// Builds the binaries if needed, then starts etcd and kube-apiserver.
    pub async fn start(options: StartOptions) -> Result<ControlPlane, ClusterError> {
        build_binaries()?;
        let bins = bin_dir();
        let state_dir = match options.state_dir.clone() {
            Some(dir) => dir,
            None => fresh_dir(&std::env::temp_dir(), "ferroflux-cp")?,
        };
        std::fs::create_dir_all(&state_dir)
            .map_err(io(format!("creating {}", state_dir.display())))?;
        // etcd's data on tmpfs when there is one: fsync-free and fast.
        let shm = Path::new("/dev/shm");
        let data_dir = fresh_dir(
            if shm.is_dir() { shm } else { &state_dir },
            "ferroflux-etcd",
        )?;
        let began = Instant::now();

        let token = format!(
            "ferroflux-{}-{}",
            std::process::id(),
            began.elapsed().as_nanos() ^ nanos_now()
        );
        std::fs::write(
            state_dir.join("tokens.csv"),
            format!("{token},admin,admin-uid,system:masters\n"),
        )
        .map_err(io("writing the token file"))?;
        generate_service_account_key(&state_dir)?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let api_port = free_port()?;
        let owner = options.owner_pid.unwrap_or(1);

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = vec![
            "--name=ferroflux".to_string(),
            format!("--data-dir={}", data_dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=ferroflux={peer_url}"),
            "--unsafe-no-fsync=true".to_string(),
            // A single member elects itself faster with short timers.
            "--heartbeat-interval=10".to_string(),
            "--election-timeout=100".to_string(),
            "--log-level=warn".to_string(),
        ];
        let etcd_log = state_dir.join("etcd.log");
        let etcd = spawn_supervised(
            owner,
            Some(&data_dir),
            &etcd_log,
            &bins.join("etcd"),
            &etcd_args,
        )
        .map_err(io("starting etcd"))?;

        let cert_dir = state_dir.join("certs");
        let api_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--cert-dir={}", cert_dir.display()),
            format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1".to_string(),
            // Without these the API server picks a non-loopback address and keeps trying to
            // publish loopback Endpoints for itself, which the Endpoints API refuses.
            "--advertise-address=127.0.0.1".to_string(),
            "--endpoint-reconciler-type=none".to_string(),
            "--service-cluster-ip-range=10.0.0.0/16".to_string(),
            "--authorization-mode=RBAC".to_string(),
            "--allow-privileged=true".to_string(),
            "--disable-admission-plugins=ServiceAccount".to_string(),
            format!(
                "--token-auth-file={}",
                state_dir.join("tokens.csv").display()
            ),
            "--service-account-issuer=https://127.0.0.1".to_string(),
            format!(
                "--service-account-key-file={}",
                state_dir.join("sa.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                state_dir.join("sa.key").display()
            ),
            "--v=0".to_string(),
        ];
        let api_log = state_dir.join("kube-apiserver.log");
        let apiserver = spawn_supervised(
            owner,
            None,
            &api_log,
            &bins.join("kube-apiserver"),
            &api_args,
        )
        .map_err(io("starting kube-apiserver"))?;

        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig_path = state_dir.join("kubeconfig");
        std::fs::write(&kubeconfig_path, kubeconfig_yaml(&server, &token))
            .map_err(io("writing the kubeconfig"))?;

        let mut plane = ControlPlane {
            server,
            token,
            kubeconfig_path,
            state_dir,
            version: String::new(),
            start_time: Duration::ZERO,
            supervisor_pids: vec![etcd.id(), apiserver.id()],
        };
        plane.version = plane.wait_ready(&etcd_log, &api_log).await?;
        if options.install_crds {
            let client = plane.client().await?;
            crate::crds::install_crds(&client, &workspace_root().join("crds")).await?;
        }
        plane.start_time = began.elapsed();
        Ok(plane)
    }

    async fn wait_ready(&self, etcd_log: &Path, api_log: &Path) -> Result<String, ClusterError> {
        let deadline = Duration::from_secs(180);
        let began = Instant::now();
        let client = self.client().await?;
        let mut last_error = String::from("not started");
        while began.elapsed() < deadline {
            let request = http_get("/readyz");
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => {
                    let version = client.apiserver_version().await?;
                    return Ok(version.git_version);
                }
                Ok(body) => last_error = body,
                Err(err) => last_error = err.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(ClusterError::NotReady {
            waited: deadline,
            last_error,
            etcd_log: tail(etcd_log),
            apiserver_log: tail(api_log),
        })
    }

    /// kube client configuration for the admin user.
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.server.parse().expect("server URL is valid"));
        config.accept_invalid_certs = true;
        config.auth_info = AuthInfo {
            token: Some(self.token.clone().into()),
            ..Default::default()
        };
        config.default_namespace = "default".into();
        config
    }

    /// A new client. Create one per test: a client is tied to the runtime it was made on.
    pub async fn client(&self) -> Result<kube::Client, ClusterError> {
        Ok(kube::Client::try_from(self.config())?)
    }

    /// Creates a namespace with a unique name starting with `prefix` and returns its name.
    pub async fn namespace(
        &self,
        client: &kube::Client,
        prefix: &str,
    ) -> Result<String, ClusterError> {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let name = format!("{}-{}-{n}", prefix.trim_matches('-'), std::process::id());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace literal");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(name)
    }

    /// The kubeconfig as a kube-rs value.
    pub fn kubeconfig(&self) -> Kubeconfig {
        Kubeconfig::from_yaml(&kubeconfig_yaml(&self.server, &self.token))
            .expect("generated kubeconfig parses")
    }

    /// Stops the servers now (they also stop on their own when the owner process exits).
    pub fn stop(&self) {
        for pid in &self.supervisor_pids {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path)
        .body(Vec::new())
        .expect("static request")
}

fn kubeconfig_yaml(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferroflux\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: ferroflux\n  context:\n    cluster: ferroflux\n    user: admin\n    namespace: default\ncurrent-context: ferroflux\n"
    )
}

/// Runs `tests/cluster/build.sh`, which does nothing when the binaries are current.
fn build_binaries() -> Result<(), ClusterError> {
    let script = workspace_root().join("tests/cluster/build.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(bin_dir())
        .status()
        .map_err(io(format!("running {}", script.display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(ClusterError::Build {
            script: script.display().to_string(),
            status: status.to_string(),
        })
    }
}

fn generate_service_account_key(dir: &Path) -> Result<(), ClusterError> {
    let key = dir.join("sa.key");
    let public = dir.join("sa.pub");
    for args in [
        vec![
            "genrsa".to_string(),
            "-out".into(),
            key.display().to_string(),
            "2048".into(),
        ],
        vec![
            "rsa".into(),
            "-in".into(),
            key.display().to_string(),
            "-pubout".into(),
            "-out".into(),
            public.display().to_string(),
        ],
    ] {
        let output = Command::new("openssl")
            .args(&args)
            .output()
            .map_err(io("running openssl"))?;
        if !output.status.success() {
            return Err(ClusterError::Io {
                what: format!("openssl {}", args.join(" ")),
                source: std::io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()),
            });
        }
    }
    Ok(())
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

fn fresh_dir(parent: &Path, prefix: &str) -> Result<PathBuf, ClusterError> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = parent.join(format!(
        "{prefix}-{}-{}-{n}",
        std::process::id(),
        nanos_now() % 1_000_000
    ));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

fn nanos_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
