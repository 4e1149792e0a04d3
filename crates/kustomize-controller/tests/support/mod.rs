//! Test harness: the real control plane, a real artifact server on 127.0.0.1 publishing
//! "source" revisions, and kustomize-controller running as a real process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferroflux_api::kustomization::Kustomization;
use ferroflux_testenv::ControlPlane;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test namespace with a client.
pub struct Env {
    pub cp: &'static ControlPlane,
    pub client: kube::Client,
    pub ns: String,
}

pub async fn env(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, prefix).await.unwrap();
    Env { cp, client, ns }
}

/// An artifact server publishing revisions of a GitRepository whose status we write,
/// the way source-controller would.
pub struct Source {
    pub storage: tempfile::TempDir,
    pub addr: String,
    pub name: String,
    pub ns: String,
    client: kube::Client,
    counter: std::sync::atomic::AtomicU32,
}

impl Source {
    pub async fn new(env: &Env, name: &str) -> Source {
        let storage = tempfile::tempdir().unwrap();
        let listener = ferroflux_artifact::server::ArtifactServer::bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = ferroflux_artifact::server::ArtifactServer::new(storage.path()).unwrap();
        tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
        let git = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": env.ns},
            "spec": {"url": "https://example.invalid/repo", "interval": "1h", "ref": {"branch": "main"}}});
        git_api(&env.client, &env.ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(git).unwrap(),
            )
            .await
            .unwrap();
        Source {
            storage,
            addr,
            name: name.to_string(),
            ns: env.ns.clone(),
            client: env.client.clone(),
            counter: Default::default(),
        }
    }

    /// Archives `files` as a new revision and points the GitRepository's artifact at it.
    pub async fn publish(&self, files: &[(&str, &str)]) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tree = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = tree.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let commit = format!("{:040x}", 0xabc000 + n as u64);
        let rel = format!("gitrepository/{}/{}/{commit}.tar.gz", self.ns, self.name);
        let path = self.storage.path().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let (_, summary) = ferroflux_artifact::archive::write_archive(
            tree.path(),
            None,
            &Default::default(),
            file,
        )
        .unwrap();
        let revision = format!("main@sha1:{commit}");
        let status = json!({"status": {"observedGeneration": 1, "artifact": {
            "path": rel, "url": format!("http://{}/{rel}", self.addr), "revision": revision,
            "digest": summary.digest.to_string(), "lastUpdateTime": "2024-01-01T00:00:00Z", "size": summary.size},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": format!("stored artifact for revision '{revision}'"), "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1}]}});
        git_api(&self.client, &self.ns)
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
        revision
    }
}

pub fn git_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::erase::<ferroflux_api::source::GitRepository>(&()),
    )
}

/// kustomize-controller as a process; killed on drop.
pub struct ControllerProcess {
    child: Child,
    pub log: PathBuf,
}

impl ControllerProcess {
    pub fn start(cp: &ControlPlane, namespace: &str) -> ControllerProcess {
        Self::start_with(cp, namespace, &[])
    }

    /// Starts the controller with `extra` flags after the default ones.
    pub fn start_with(cp: &ControlPlane, namespace: &str, extra: &[&str]) -> ControllerProcess {
        let log = std::env::temp_dir().join(format!("kustomize-controller-{namespace}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kustomize-controller"))
            .env("KUBECONFIG", &cp.kubeconfig_path)
            .env("RUNTIME_NAMESPACE", namespace)
            .args([
                "--watch-all-namespaces=false",
                &format!("--metrics-addr=127.0.0.1:{}", free_port()),
                &format!("--health-addr=127.0.0.1:{}", free_port()),
                "--requeue-dependency=2s",
                "--health-check-interval=1s",
                "--log-encoding=console",
                "--log-level=debug",
            ])
            .args(extra)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start kustomize-controller");
        ControllerProcess { child, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ConfigMap manifest with one `value`.
pub fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// Sets `reconcile.fluxcd.io/requestedAt` on the Kustomization, as `flux reconcile` does,
/// and returns the token `status.lastHandledReconcileAt` will carry once handled.
pub async fn request_reconcile(env: &Env, name: &str) -> String {
    let token = format!("{:?}", std::time::SystemTime::now());
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}});
    ks_api(&env.client, &env.ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    token
}

pub fn ks_api(client: &kube::Client, ns: &str) -> Api<Kustomization> {
    Api::namespaced(client.clone(), ns)
}

pub async fn create_ks(env: &Env, yaml: &str) -> String {
    let mut ks: Kustomization = serde_yaml::from_str(yaml).unwrap();
    ks.metadata.namespace = Some(env.ns.clone());
    let name = ks.metadata.name.clone().unwrap();
    ks_api(&env.client, &env.ns)
        .create(&PostParams::default(), &ks)
        .await
        .unwrap();
    name
}

/// The Ready condition (status, reason, message) of a Kustomization.
pub fn ready(ks: &Kustomization) -> Option<(String, String, String)> {
    let st = ks.status.as_ref()?;
    let c = st
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Polls until `check` accepts the Kustomization, or panics with its last state and the
/// controller log after `timeout`.
pub async fn wait_ks(
    env: &Env,
    name: &str,
    timeout: Duration,
    proc_: &ControllerProcess,
    check: impl Fn(&Kustomization) -> bool,
) -> Kustomization {
    let api = ks_api(&env.client, &env.ns);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ks = api.get(name).await.unwrap();
        if check(&ks) {
            return ks;
        }
        if tokio::time::Instant::now() > deadline {
            let log = proc_.logs();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "timed out waiting for Kustomization {name}: status {:#?}\n--- controller log (newest first) ---\n{}",
                ks.status,
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn is_ready_at(ks: &Kustomization, revision: &str) -> bool {
    ks.status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        == Some(revision)
        && ready(ks).is_some_and(|(s, _, _)| s == "True")
        && ks.status.as_ref().and_then(|s| s.observed_generation) == ks.metadata.generation
}

pub fn repo_root(p: &Path) -> PathBuf {
    p.to_path_buf()
}
