//! `ferroflux dev up|down|status`: ferroflux running locally. A real control plane (etcd and
//! kube-apiserver built from Go modules), the CRDs, the controllers as local processes, a
//! real git server holding a small sample application, and a GitRepository and a
//! Kustomization that deploy it — everything kept in a state directory until `dev down`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use ferroflux_testenv::{ControlPlane, StartOptions, spawn_supervised, workspace_root};
use serde::{Deserialize, Serialize};

#[derive(Subcommand)]
pub enum DevCommand {
    /// Start the local control plane, the controllers, a git server with a sample app, and
    /// the GitRepository and Kustomization that deploy it (builds what it needs on first use).
    /// When $KUBECONFIG (or ~/.kube/config) names a reachable cluster, that cluster is used
    /// instead of a local control plane.
    Up,
    /// Stop everything `dev up` started and remove its data (a configured cluster is left running).
    Down,
    /// Show what `dev up` left running.
    Status,
    /// Serve the demo's git repositories over HTTP (run by `dev up`).
    #[command(hide = true)]
    ServeGit {
        /// Directory of bare repositories.
        #[arg(long)]
        root: PathBuf,
        /// Listen address.
        #[arg(long)]
        addr: String,
    },
}

/// A process `dev up` started.
#[derive(Serialize, Deserialize, Clone)]
struct Component {
    name: String,
    pid: u32,
    log: PathBuf,
}

/// What `dev up` leaves behind for `dev down`, `dev status` and `logs`.
#[derive(Serialize, Deserialize)]
struct DevState {
    server: String,
    kubeconfig: PathBuf,
    version: String,
    /// Supervisors of etcd and kube-apiserver.
    pids: Vec<u32>,
    #[serde(default)]
    components: Vec<Component>,
    /// The cluster was configured, not started: `dev down` leaves it running.
    #[serde(default)]
    external: bool,
}

/// A cluster the user's kubeconfig names and that answers.
struct Configured {
    kubeconfig: PathBuf,
    server: String,
    version: String,
    client: kube::Client,
}

/// The cluster of $KUBECONFIG or ~/.kube/config when it answers within a few seconds.
async fn configured_cluster() -> Option<Configured> {
    let kubeconfig = std::env::var_os("KUBECONFIG")
        .filter(|k| !k.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let default = PathBuf::from(std::env::var_os("HOME")?).join(".kube/config");
            default.exists().then_some(default)
        })?;
    let probe = async {
        // KUBECONFIG may list several files, as kubectl allows.
        let merged = if kubeconfig.to_string_lossy().contains(':') {
            kube::config::Kubeconfig::from_env().ok()??
        } else {
            kube::config::Kubeconfig::read_from(&kubeconfig).ok()?
        };
        let config = kube::Config::from_custom_kubeconfig(merged, &Default::default())
            .await
            .ok()?;
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).ok()?;
        let version = client.apiserver_version().await.ok()?.git_version;
        Some((server, version, client))
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Some((server, version, client))) => Some(Configured {
            kubeconfig,
            server,
            version,
            client,
        }),
        _ => {
            println!(
                "► the kubeconfig {} names no reachable cluster: starting a local control plane instead",
                kubeconfig.display()
            );
            None
        }
    }
}

fn state_dir() -> PathBuf {
    std::env::var_os("FERROFLUX_DEV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/dev"))
}

fn state_file() -> PathBuf {
    state_dir().join("state.json")
}

fn read_state() -> Option<DevState> {
    let text = std::fs::read_to_string(state_file()).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(state: &DevState) -> anyhow::Result<()> {
    std::fs::write(state_file(), serde_json::to_string_pretty(state)?)?;
    Ok(())
}

/// The kubeconfig of the local control plane when `dev up` left one running.
pub fn running_kubeconfig() -> Option<PathBuf> {
    read_state().filter(running).map(|s| s.kubeconfig)
}

/// Where `dev up` keeps its state and logs.
pub fn dev_dir() -> PathBuf {
    state_dir()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether what `dev up` started still runs: the control plane's supervisors, or for a
/// configured cluster, the controllers.
fn running(state: &DevState) -> bool {
    state.pids.iter().all(|p| alive(*p))
        && (!state.external || state.components.iter().any(|c| alive(c.pid)))
}

pub async fn run(command: DevCommand) -> anyhow::Result<()> {
    match command {
        DevCommand::Up => up().await,
        DevCommand::Down => down(),
        DevCommand::Status => status(),
        DevCommand::ServeGit { root, addr } => serve_git(&root, &addr).await,
    }
}

async fn serve_git(root: &Path, addr: &str) -> anyhow::Result<()> {
    let server = ferroflux_testenv::git::GitHttpServer::start_on(root, None, addr)
        .await
        .with_context(|| format!("serving git on {addr}"))?;
    println!("serving {} at {}", root.display(), server.base_url);
    std::future::pending::<()>().await;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The controllers `dev up` runs, and the ones not written yet.
const CONTROLLERS: [(&str, &str); 2] = [
    ("source-controller", "ferroflux-source-controller"),
    ("kustomize-controller", "ferroflux-kustomize-controller"),
];
const NOT_YET: [&str; 2] = ["helm-controller", "notification-controller"];

/// Prebuilt controllers (the end-to-end test's, or a release build) from
/// `$FERROFLUX_DEV_CONTROLLERS`, so that no cargo runs; `None` when it is unset.
fn prebuilt_controllers() -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = std::env::var_os("FERROFLUX_DEV_CONTROLLERS").map(PathBuf::from) else {
        return Ok(None);
    };
    for (name, _) in CONTROLLERS {
        let bin = dir.join(name);
        if !bin.is_file() {
            bail!(
                "no {name} binary at {}: point FERROFLUX_DEV_CONTROLLERS at a directory holding \
                 source-controller and kustomize-controller, or unset it to build them",
                bin.display()
            );
        }
    }
    Ok(Some(dir))
}

/// Builds the controller binaries with cargo and returns their directory.
fn build_controllers() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).arg("build").arg("--quiet");
    for (_, package) in CONTROLLERS {
        cmd.arg("-p").arg(package);
    }
    let status = cmd
        .status()
        .context("running cargo to build the controllers (is Rust installed?)")?;
    if !status.success() {
        bail!(
            "building the controllers failed; run `cargo build -p ferroflux-source-controller -p ferroflux-kustomize-controller` to see why"
        );
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug"))
}

fn start(dir: &Path, name: &str, program: &Path, args: &[String]) -> anyhow::Result<Component> {
    let log = dir.join(format!("{name}.log"));
    // pid 1 as the owner: these keep running after `dev up` returns, until `dev down`.
    let child = spawn_supervised(1, None, &log, program, args)
        .with_context(|| format!("starting {name}"))?;
    Ok(Component {
        name: name.to_string(),
        pid: child.id(),
        log,
    })
}

async fn up() -> anyhow::Result<()> {
    if let Some(state) = read_state().filter(running) {
        println!(
            "► ferroflux is already running locally ({}, {})",
            state.server, state.version
        );
        print_next_steps(&state);
        return Ok(());
    }
    // Checked before anything starts, so that a wrong directory leaves nothing running.
    let prebuilt = prebuilt_controllers()?;
    let dir = state_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (mut state, client) = match configured_cluster().await {
        Some(cluster) => {
            println!(
                "► the kubeconfig {} points at a reachable cluster ({}, Kubernetes {}): using it instead of a local control plane",
                cluster.kubeconfig.display(),
                cluster.server,
                cluster.version
            );
            ferroflux_testenv::install_crds(&cluster.client, &workspace_root().join("crds"))
                .await
                .context("installing the CRDs in the configured cluster")?;
            println!("✔ {} CRDs installed", ferroflux_api::crds::all().len());
            let state = DevState {
                server: cluster.server,
                kubeconfig: cluster.kubeconfig,
                version: cluster.version,
                pids: Vec::new(),
                components: Vec::new(),
                external: true,
            };
            (state, cluster.client)
        }
        None => {
            println!(
                "► starting the local control plane (etcd + kube-apiserver; the first run builds them from Go modules, which takes several minutes)"
            );
            let plane = ControlPlane::start(StartOptions {
                owner_pid: None,
                state_dir: Some(dir.clone()),
                install_crds: true,
            })
            .await
            .context("starting the local control plane")?;
            println!(
                "✔ kube-apiserver {} ready at {} in {:.1?}",
                plane.version, plane.server, plane.start_time
            );
            println!("✔ {} CRDs installed", ferroflux_api::crds::all().len());
            let state = DevState {
                server: plane.server.clone(),
                kubeconfig: plane.kubeconfig_path.clone(),
                version: plane.version.clone(),
                pids: plane.supervisor_pids.clone(),
                components: Vec::new(),
                external: false,
            };
            (state, plane.client().await?)
        }
    };
    write_state(&state)?;

    let bins = match prebuilt {
        Some(dir) => {
            println!("► using the controllers in {}", dir.display());
            dir
        }
        None => {
            println!("► building the controllers (first run: a few minutes)");
            build_controllers()?
        }
    };
    let storage_port = free_port()?;
    let git_port = free_port()?;
    let git_root = dir.join("git");
    std::fs::create_dir_all(&git_root)?;
    let kubeconfig = state.kubeconfig.clone();
    let env = |bin: &Path, extra: Vec<String>| {
        let mut args = vec![
            format!("KUBECONFIG={}", kubeconfig.display()),
            "RUNTIME_NAMESPACE=flux-system".to_string(),
            // JSON logs (the default), as in a cluster: `ferroflux logs` filters and formats them.
            bin.display().to_string(),
        ];
        args.extend(extra);
        args
    };
    let exe = std::env::current_exe()?;
    state.components.push(start(
        &dir,
        "git-server",
        &exe,
        &[
            "dev".into(),
            "serve-git".into(),
            "--root".into(),
            git_root.display().to_string(),
            "--addr".into(),
            format!("127.0.0.1:{git_port}"),
        ],
    )?);
    let source_args = env(
        &bins.join("source-controller"),
        vec![
            format!("--storage-path={}", dir.join("storage").display()),
            format!("--storage-addr=127.0.0.1:{storage_port}"),
            format!("--storage-adv-addr=127.0.0.1:{storage_port}"),
            format!("--metrics-addr=127.0.0.1:{}", free_port()?),
            format!("--health-addr=127.0.0.1:{}", free_port()?),
        ],
    );
    state.components.push(start(
        &dir,
        "source-controller",
        Path::new("/usr/bin/env"),
        &source_args,
    )?);
    let kustomize_args = env(
        &bins.join("kustomize-controller"),
        vec![
            format!("--metrics-addr=127.0.0.1:{}", free_port()?),
            format!("--health-addr=127.0.0.1:{}", free_port()?),
            "--requeue-dependency=5s".to_string(),
        ],
    );
    state.components.push(start(
        &dir,
        "kustomize-controller",
        Path::new("/usr/bin/env"),
        &kustomize_args,
    )?);
    write_state(&state)?;
    for (name, _) in CONTROLLERS {
        println!(
            "✔ {name} running (log: {})",
            dir.join(format!("{name}.log")).display()
        );
    }
    for name in NOT_YET {
        println!("✗ {name}: not yet available");
    }

    // The sample application, committed to a real git repository served over HTTP.
    let repo = ferroflux_testenv::git::Repo::init(&git_root, "demo");
    let commit = repo.commit(
        &[
            (
                "apps/demo/namespace.yaml",
                include_str!("../demo/namespace.yaml"),
            ),
            (
                "apps/demo/configmap.yaml",
                include_str!("../demo/configmap.yaml"),
            ),
            (
                "apps/demo/deployment.yaml",
                include_str!("../demo/deployment.yaml"),
            ),
            (
                "apps/demo/service.yaml",
                include_str!("../demo/service.yaml"),
            ),
            ("apps/demo/hpa.yaml", include_str!("../demo/hpa.yaml")),
        ],
        "demo application",
    );
    let url = format!("http://127.0.0.1:{git_port}/demo.git");
    println!("✔ git repository {url} at commit {}", &commit[..8]);

    apply_demo_objects(&client, &url).await?;
    println!(
        "► waiting for GitRepository/flux-system/demo and Kustomization/flux-system/demo to become Ready"
    );
    wait_ready(&client, &dir, &state, &commit).await?;
    print_next_steps(&state);
    Ok(())
}

async fn apply_demo_objects(client: &kube::Client, url: &str) -> anyhow::Result<()> {
    use kube::api::DynamicObject;
    let docs = [
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
        serde_json::json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "demo", "namespace": "flux-system"},
            "spec": {"interval": "1m", "url": url, "ref": {"branch": "main"}}}),
        serde_json::json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "demo", "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": "./apps/demo", "prune": true, "targetNamespace": "demo",
                     "sourceRef": {"kind": "GitRepository", "name": "demo"}}}),
    ];
    let manager =
        ferroflux_ssa::ResourceManager::new(client.clone(), "ferroflux", Default::default());
    let objects: Vec<DynamicObject> = docs
        .iter()
        .map(|d| serde_json::from_value(d.clone()))
        .collect::<Result<_, _>>()?;
    manager
        .apply_all_staged(objects, &Default::default())
        .await
        .context("creating the demo GitRepository and Kustomization")?;
    Ok(())
}

fn ready_of(conditions: Option<&Vec<ferroflux_api::meta::Condition>>) -> Option<(String, String)> {
    conditions?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.message.clone()))
}

/// Waits until the GitRepository and the Kustomization are Ready at `commit`: a cluster
/// that held the demo before reports Ready for an older revision first.
async fn wait_ready(
    client: &kube::Client,
    dir: &Path,
    state: &DevState,
    commit: &str,
) -> anyhow::Result<()> {
    use ferroflux_api::kustomization::Kustomization;
    use ferroflux_api::source::GitRepository;
    let repos: kube::Api<GitRepository> = kube::Api::namespaced(client.clone(), "flux-system");
    let kss: kube::Api<Kustomization> = kube::Api::namespaced(client.clone(), "flux-system");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let (mut source_done, mut ks_done) = (false, false);
    loop {
        if !source_done
            && let Some(g) = repos.get_opt("demo").await?
            && let Some((status, message)) =
                ready_of(g.status.as_ref().and_then(|s| s.conditions.as_ref()))
            && status == "True"
            && g.status
                .as_ref()
                .and_then(|s| s.artifact.as_ref())
                .is_some_and(|a| a.revision.ends_with(commit))
        {
            println!("✔ GitRepository/flux-system/demo: {message}");
            source_done = true;
        }
        if !ks_done && let Some(k) = kss.get_opt("demo").await? {
            let st = k.status.clone().unwrap_or_default();
            if let Some((status, message)) = ready_of(st.conditions.as_ref())
                && status == "True"
                && st.observed_generation == k.metadata.generation
                && st
                    .last_applied_revision
                    .as_deref()
                    .is_some_and(|r| r.ends_with(commit))
            {
                println!("✔ Kustomization/flux-system/demo: {message}");
                for entry in st.inventory.map(|i| i.entries).unwrap_or_default() {
                    if let Some((ns, name, _, kind)) = entry.parse() {
                        let id = if ns.is_empty() {
                            format!("{kind}/{name}")
                        } else {
                            format!("{kind}/{ns}/{name}")
                        };
                        println!("  {id} applied");
                    }
                }
                ks_done = true;
            }
        }
        if source_done && ks_done {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let logs = state
                .components
                .iter()
                .map(|c| format!("  {}", c.log.display()))
                .collect::<Vec<_>>()
                .join("\n");
            bail!(
                "the demo did not become Ready within 3 minutes; see the logs:\n{logs}\n(state in {})",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_next_steps(state: &DevState) {
    println!("\nnext:");
    println!("  export KUBECONFIG={}", state.kubeconfig.display());
    println!("  cargo run -q -p ferroflux-cli -- get all -A     # sources and Kustomizations");
    println!("  kubectl get all,cm,hpa -n demo                  # what the demo deployed");
    println!("  cargo run -q -p ferroflux-cli -- dev down       # stop it and remove its data");
}

fn down() -> anyhow::Result<()> {
    let Some(state) = read_state() else {
        println!(
            "► nothing to stop: `dev up` left nothing in {}",
            state_dir().display()
        );
        return Ok(());
    };
    // Controllers first, then the API server and etcd.
    let pids: Vec<u32> = state
        .components
        .iter()
        .map(|c| c.pid)
        .chain(state.pids.iter().copied())
        .collect();
    for pid in &pids {
        if alive(*pid) {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    // The supervisors stop their processes and remove etcd's data; wait for them.
    for _ in 0..150 {
        if pids.iter().all(|p| !alive(*p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(pid) = pids.iter().find(|p| alive(**p)) {
        bail!(
            "process {pid} did not stop; kill it by hand (kill -9 {pid}) and run `ferroflux dev down` again"
        );
    }
    std::fs::remove_dir_all(state_dir()).ok();
    if state.external {
        println!(
            "✔ stopped: controllers and git server; the cluster at {} keeps running, with the demo's \
             GitRepository and Kustomization (flux-system/demo) and what they applied",
            state.server
        );
    } else {
        println!("✔ stopped: controllers, git server, kube-apiserver and etcd");
    }
    Ok(())
}

fn status() -> anyhow::Result<()> {
    match read_state() {
        Some(state) if running(&state) => {
            println!("✔ kube-apiserver {} at {}", state.version, state.server);
            for c in &state.components {
                let mark = if alive(c.pid) { "✔" } else { "✗" };
                println!("{mark} {} (log: {})", c.name, c.log.display());
            }
            println!("  KUBECONFIG={}", state.kubeconfig.display());
            Ok(())
        }
        Some(_) => bail!(
            "ferroflux is not running locally (stale state in {}); run `ferroflux dev up`",
            state_dir().display()
        ),
        None => bail!("ferroflux is not running locally; run `ferroflux dev up`"),
    }
}
