//! Test helpers: git repositories made with the git CLI, a git HTTP server, source-controller
//! started in-process on the shared control plane, and polling helpers.
#![allow(dead_code)]

pub mod pki;
pub mod signing;
pub mod sink;

use std::time::Duration;

use clap::Parser;
use ferroflux_api::source::GitRepository;
use ferroflux_source_controller::{Args, CONTROLLER};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Repositories made with the git CLI: the same helpers every crate's tests use.
#[allow(unused_imports)] // not every test file runs git by hand
pub use ferroflux_testenv::git::{Repo, git};

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// source-controller running in-process, watching one namespace.
pub struct Controller {
    pub storage: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    pub storage_addr: String,
    pub metrics_addr: String,
    trigger: ferroflux_runtime::shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.trigger.trigger();
        self.task.abort();
    }
}

impl Controller {
    pub async fn start(client: kube::Client, namespace: &str, extra: &[&str]) -> Controller {
        let storage = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let storage_addr = format!("127.0.0.1:{}", free_port());
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let mut argv: Vec<String> = vec![
            "source-controller".into(),
            format!("--storage-path={}", storage.path().display()),
            format!("--storage-addr={storage_addr}"),
            format!("--storage-adv-addr={storage_addr}"),
            format!("--git-cache-path={}", cache.path().display()),
            format!("--metrics-addr={metrics_addr}"),
            "--health-addr=127.0.0.1:0".into(),
            "--watch-all-namespaces=false".into(),
            format!("--runtime-namespace={namespace}"),
            "--log-encoding=console".into(),
            "--log-level=info".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let args = Args::try_parse_from(argv).unwrap();
        args.runtime.init_logging();
        let manager =
            ferroflux_runtime::Manager::with_client(CONTROLLER, args.runtime.clone(), client);
        let trigger = manager.shutdown_trigger();
        let task = tokio::spawn(async move {
            if let Err(e) = ferroflux_source_controller::run(args, manager, false).await {
                panic!("source-controller failed: {e:#}");
            }
        });
        Controller {
            storage,
            cache,
            storage_addr,
            metrics_addr,
            trigger,
            task,
        }
    }

    pub fn metrics(&self) -> String {
        curl(&format!("http://{}/metrics", self.metrics_addr)).0
    }
}

/// GET with curl: (body as lossy text, raw bytes).
pub fn curl(url: &str) -> (String, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-sSf", url])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.stdout,
    )
}

pub fn gitrepo(
    name: &str,
    url: &str,
    reference: serde_json::Value,
    secret: Option<&str>,
) -> GitRepository {
    let mut spec =
        serde_json::json!({ "url": url, "interval": "10m", "ref": reference, "timeout": "20s" });
    if let Some(s) = secret {
        spec["secretRef"] = serde_json::json!({ "name": s });
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap()
}

pub async fn create(api: &Api<GitRepository>, obj: &GitRepository) {
    api.create(&PostParams::default(), obj).await.unwrap();
}

pub async fn basic_auth_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    user: &str,
    pass: &str,
) {
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"username": user, "password": pass},
    }))
    .unwrap();
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&s))
        .await
        .unwrap();
}

pub async fn request_reconcile(api: &Api<GitRepository>, name: &str, token: &str) {
    let p = serde_json::json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
}

/// Polls until `pred` holds (60 s), returning the object; panics with its last state.
pub async fn wait_for(
    api: &Api<GitRepository>,
    name: &str,
    what: &str,
    pred: impl Fn(&GitRepository) -> bool,
) -> GitRepository {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(o)) = api.get_opt(name).await {
            if pred(&o) {
                return o;
            }
            last = Some(o);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "timed out waiting for {name}: {what}; last status: {}",
        serde_json::to_string_pretty(&last.and_then(|o| o.status)).unwrap()
    );
}

pub fn ready(o: &GitRepository) -> Option<(String, String, String)> {
    o.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn is_ready_true(o: &GitRepository) -> bool {
    ready(o).is_some_and(|(s, _, _)| s == "True")
        && o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
}

pub fn revision(o: &GitRepository) -> String {
    o.status
        .as_ref()
        .and_then(|s| s.artifact.as_ref())
        .map(|a| a.revision.clone())
        .unwrap_or_default()
}

/// The shared control plane, a fresh namespace and the GitRepository API in it.
pub async fn setup(prefix: &str) -> (kube::Client, String, Api<GitRepository>) {
    let cp = ferroflux_testenv::ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, prefix).await.unwrap();
    let api: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    (client, ns, api)
}

/// Creates or replaces Secret `name` with `data` as its stringData.
pub async fn secret(client: &kube::Client, ns: &str, name: &str, data: serde_json::Value) {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data,
    }))
    .unwrap();
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&s))
        .await
        .unwrap();
}

/// A GitRepository with extra spec fields merged in.
pub fn gitrepo_with(
    name: &str,
    url: &str,
    reference: serde_json::Value,
    extra: serde_json::Value,
) -> GitRepository {
    let mut v = serde_json::to_value(gitrepo(name, url, reference, None)).unwrap();
    for (k, val) in extra.as_object().unwrap() {
        v["spec"][k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

/// Condition `type_` as (status, reason, message).
pub fn condition(o: &GitRepository, type_: &str) -> Option<(String, String, String)> {
    o.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn is_ready_false(o: &GitRepository) -> bool {
    ready(o).is_some_and(|(s, _, _)| s == "False")
}
