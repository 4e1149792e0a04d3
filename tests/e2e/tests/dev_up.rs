//! The README's first command as a new user runs it: `ferroflux dev up` with no cluster
//! configured starts the local control plane, installs the CRDs, runs the controllers, commits
//! the sample application to a local git server and waits until it is applied and Ready;
//! `dev down` stops all of it. The one step replaced is the CLI's own `cargo build` of the
//! controllers (a nested cargo would wait on this test run's build lock): it is handed the
//! controllers this package builds through `FERROFLUX_DEV_CONTROLLERS`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferroflux_api::kustomization::Kustomization;
use ferroflux_api::source::GitRepository;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Api;

struct Dev {
    root: tempfile::TempDir,
}

impl Dev {
    fn state_dir(&self) -> PathBuf {
        self.root.path().join("dev")
    }

    /// Runs the CLI as a user without a kubeconfig would: no KUBECONFIG, an empty HOME.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_e2e-ferroflux"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.root.path().join("home"))
            .env("FERROFLUX_DEV_DIR", self.state_dir())
            .env("FERROFLUX_DEV_CONTROLLERS", self.root.path().join("bin"))
            .output()
            .expect("run the ferroflux CLI")
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_dir().join("state.json"))
            .expect("dev up writes its state");
        serde_json::from_str(&text).expect("state.json is JSON")
    }
}

/// Whatever happens, nothing `dev up` started outlives the test.
impl Drop for Dev {
    fn drop(&mut self) {
        if self.state_dir().join("state.json").exists() {
            let _ = self.run(&["dev", "down"]);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn pids(state: &serde_json::Value) -> Vec<u64> {
    let mut pids: Vec<u64> = state["pids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_u64())
        .collect();
    pids.extend(
        state["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["pid"].as_u64()),
    );
    pids
}

fn ready(conditions: Option<&Vec<ferroflux_api::meta::Condition>>) -> Option<String> {
    conditions?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_up_applies_the_sample_application_and_dev_down_stops_everything() {
    let dev = Dev {
        root: tempfile::tempdir().unwrap(),
    };
    let bin = dev.root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(dev.root.path().join("home")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_e2e-source-controller"),
        bin.join("source-controller"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_e2e-kustomize-controller"),
        bin.join("kustomize-controller"),
    )
    .unwrap();

    let up = dev.run(&["dev", "up"]);
    let up_text = text(&up);
    assert!(up.status.success(), "dev up failed:\n{up_text}");
    for line in [
        "starting the local control plane",
        "CRDs installed",
        "source-controller running",
        "kustomize-controller running",
        "helm-controller: not yet available",
        "GitRepository/flux-system/demo",
        "Kustomization/flux-system/demo",
    ] {
        assert!(
            up_text.contains(line),
            "dev up should print {line:?}:\n{up_text}"
        );
    }

    // The cluster it started has the sample application, applied from git by the controllers.
    let state = dev.state();
    let kubeconfig = PathBuf::from(
        state["kubeconfig"]
            .as_str()
            .expect("state names the kubeconfig"),
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let repo = Api::<GitRepository>::namespaced(client.clone(), "flux-system")
        .get("demo")
        .await
        .unwrap();
    let ks = Api::<Kustomization>::namespaced(client.clone(), "flux-system")
        .get("demo")
        .await
        .unwrap();
    let repo_status = repo.status.unwrap_or_default();
    let ks_status = ks.status.unwrap_or_default();
    assert_eq!(
        ready(repo_status.conditions.as_ref()).as_deref(),
        Some("True")
    );
    assert_eq!(
        ready(ks_status.conditions.as_ref()).as_deref(),
        Some("True")
    );
    let revision = repo_status.artifact.expect("an artifact").revision;
    assert!(revision.starts_with("main@sha1:"), "{revision}");
    assert_eq!(
        ks_status.last_applied_revision.as_deref(),
        Some(revision.as_str())
    );
    Api::<Deployment>::namespaced(client.clone(), "demo")
        .get("greeter")
        .await
        .expect("the Deployment is applied");
    Api::<Service>::namespaced(client.clone(), "demo")
        .get("greeter")
        .await
        .expect("the Service is applied");
    Api::<ConfigMap>::namespaced(client.clone(), "demo")
        .get("greeter")
        .await
        .expect("the ConfigMap is applied");
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), "demo")
        .get("greeter")
        .await
        .expect("the HorizontalPodAutoscaler is applied");

    // A second `dev up` finds it running and changes nothing.
    let again = dev.run(&["dev", "up"]);
    assert!(
        again.status.success() && text(&again).contains("already running"),
        "a second dev up:\n{}",
        text(&again)
    );

    let started = pids(&state);
    assert!(started.len() >= 4, "control plane and controllers: {state}");
    assert!(started.iter().all(|p| alive(*p)), "all running: {state}");
    let down = dev.run(&["dev", "down"]);
    assert!(down.status.success(), "dev down failed:\n{}", text(&down));
    assert!(
        text(&down).contains("stopped: controllers, git server, kube-apiserver and etcd"),
        "{}",
        text(&down)
    );
    assert!(started.iter().all(|p| !alive(*p)), "nothing left running");
    assert!(!dev.state_dir().exists(), "dev down removes its data");
    assert!(
        client.apiserver_version().await.is_err(),
        "the API server is stopped"
    );
}
