//! The real control plane for tests and for `ferroflux dev up`: etcd and kube-apiserver
//! built from Go modules by `tests/cluster/build.sh`, started on free loopback ports with a
//! static admin token, with ferroflux's CRDs installed.
//!
//! In tests, [`ControlPlane::shared`] starts one control plane per test process (the first
//! caller pays the start-up, later ones reuse it) and every test takes its own namespace
//! with [`ControlPlane::namespace`]. Each server runs under a watchdog that stops it and
//! removes its data when the test process exits, however it exits (panic, abort, kill).

mod cluster;
mod crds;
pub mod git;
pub mod git_ssh;
pub mod proxy;
mod watchdog;
pub use watchdog::spawn_supervised;

pub use cluster::{ClusterError, ControlPlane, StartOptions, workspace_root};
pub use crds::install_crds;

/// Path of a reference tool (`kubectl` or `helm`) from `tests/oracles/install.sh`,
/// installing them on first use. Panics with the installer's failure: a test that
/// compares against the real tool cannot run without it.
pub fn oracle(tool: &str) -> std::path::PathBuf {
    static INSTALLED: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    let dir = INSTALLED.get_or_init(|| {
        let root = workspace_root();
        let dir = std::env::var_os("FERROFLUX_ORACLE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("target/oracle"));
        let status = std::process::Command::new("bash")
            .arg(root.join("tests/oracles/install.sh"))
            .arg(&dir)
            .status()
            .map_err(|e| format!("running tests/oracles/install.sh: {e}"))?;
        if status.success() {
            Ok(dir)
        } else {
            Err(format!("tests/oracles/install.sh failed: {status}"))
        }
    });
    match dir {
        Ok(dir) => dir.join(tool),
        Err(err) => panic!("{err}"),
    }
}
