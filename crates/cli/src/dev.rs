//! `ferroflux dev up|down|status`: a local control plane (etcd + kube-apiserver built from
//! Go modules) with ferroflux's CRDs, kept in a state directory until `dev down`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use ferroflux_testenv::{ControlPlane, StartOptions, workspace_root};
use serde::{Deserialize, Serialize};

#[derive(Subcommand)]
pub enum DevCommand {
    /// Start the local control plane and install the CRDs (builds it on first use).
    Up,
    /// Stop everything `dev up` started and remove its data.
    Down,
    /// Show whether the local control plane is running.
    Status,
}

/// What `dev up` leaves behind for `dev down` and `dev status`.
#[derive(Serialize, Deserialize)]
struct DevState {
    server: String,
    kubeconfig: PathBuf,
    version: String,
    pids: Vec<u32>,
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

/// The kubeconfig of the local control plane when `dev up` left one running.
pub fn running_kubeconfig() -> Option<PathBuf> {
    read_state()
        .filter(|s| s.pids.iter().all(|p| alive(*p)))
        .map(|s| s.kubeconfig)
}

/// Where `dev up` keeps its state and logs.
pub fn dev_dir() -> PathBuf {
    state_dir()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

pub async fn run(command: DevCommand) -> anyhow::Result<()> {
    match command {
        DevCommand::Up => up().await,
        DevCommand::Down => down(),
        DevCommand::Status => status(),
    }
}

async fn up() -> anyhow::Result<()> {
    if let Some(state) = read_state().filter(|s| s.pids.iter().all(|p| alive(*p))) {
        println!(
            "► the local control plane is already running ({}, {})",
            state.server, state.version
        );
        print_next_steps(&state);
        return Ok(());
    }
    let dir = state_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
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
    let state = DevState {
        server: plane.server.clone(),
        kubeconfig: plane.kubeconfig_path.clone(),
        version: plane.version.clone(),
        pids: plane.supervisor_pids.clone(),
    };
    std::fs::write(state_file(), serde_json::to_string_pretty(&state)?)?;
    println!(
        "✔ kube-apiserver {} ready at {} in {:.1?}",
        plane.version, plane.server, plane.start_time
    );
    let crds = ferroflux_api::crds::all();
    println!("✔ {} CRDs installed:", crds.len());
    for entry in &crds {
        println!(
            "  {} ({})",
            entry.crd.metadata.name.as_deref().unwrap_or_default(),
            entry.component
        );
    }
    println!(
        "✗ controllers: not yet available (source, kustomize, helm and notification controllers are being written)"
    );
    print_next_steps(&state);
    Ok(())
}

fn print_next_steps(state: &DevState) {
    println!("\nnext:");
    println!("  export KUBECONFIG={}", state.kubeconfig.display());
    println!("  kubectl get crds -l app.kubernetes.io/part-of=flux");
    println!("  ferroflux dev down        # stop it and remove its data");
}

fn down() -> anyhow::Result<()> {
    let Some(state) = read_state() else {
        println!(
            "► nothing to stop: no local control plane was started from {}",
            state_dir().display()
        );
        return Ok(());
    };
    for pid in &state.pids {
        if alive(*pid) {
            let status = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()?;
            if !status.success() {
                bail!("could not stop process {pid}");
            }
        }
    }
    // The supervisors stop their servers and remove etcd's data; wait for them.
    for _ in 0..100 {
        if state.pids.iter().all(|p| !alive(*p)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::remove_dir_all(state_dir()).ok();
    println!("✔ local control plane stopped");
    Ok(())
}

fn status() -> anyhow::Result<()> {
    match read_state() {
        Some(state) if state.pids.iter().all(|p| alive(*p)) => {
            println!(
                "✔ running: kube-apiserver {} at {}",
                state.version, state.server
            );
            println!("  KUBECONFIG={}", state.kubeconfig.display());
            Ok(())
        }
        Some(_) => bail!(
            "the local control plane is not running (stale state in {}); run `ferroflux dev up`",
            state_dir().display()
        ),
        None => bail!("the local control plane is not running; run `ferroflux dev up`"),
    }
}
