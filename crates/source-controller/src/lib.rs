//! source-controller: the GitRepository reconciler and the artifact server, wired onto the
//! shared runtime. `main.rs` only parses [`Args`] and calls [`run`]; tests call [`run`] with
//! their own client.

pub mod archive;
pub mod git;
pub mod gitrepository;
pub mod include;
pub mod proxy;
pub mod semver_tags;
pub mod socks;
pub mod submodules;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferroflux_api::source::GitRepository;
use ferroflux_artifact::server::ArtifactServer;
use ferroflux_artifact::storage::{Retention, Storage};
use ferroflux_runtime::{Manager, RuntimeArgs};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::gitrepository::GitRepositoryReconciler;

/// The controller's name (field manager, event reporter).
pub const CONTROLLER: &str = ferroflux_api::constants::SOURCE_CONTROLLER;

/// source-controller's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "source-controller",
    about = "Flux source-controller, rebuilt in Rust"
)]
pub struct Args {
    /// Shared controller flags.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Local directory for artifacts.
    #[arg(long, env = "STORAGE_PATH", default_value = "/data")]
    pub storage_path: PathBuf,
    /// Listen address of the artifact server.
    #[arg(long, env = "STORAGE_ADDRESS", default_value = ":9090")]
    pub storage_addr: String,
    /// Advertised address of the artifact server (host[:port] or URL); derived from
    /// --storage-addr when empty.
    #[arg(long, env = "STORAGE_ADV_ADDR", default_value = "")]
    pub storage_adv_addr: String,
    /// Artifacts older than this are garbage collected.
    #[arg(long, default_value = "1m", value_parser = ferroflux_runtime::flags::parse_duration)]
    pub artifact_retention_ttl: Duration,
    /// Number of artifacts kept per object.
    #[arg(long, default_value_t = 2)]
    pub artifact_retention_records: usize,
    /// Directory of the per-object git caches (default: <tmp>/source-controller-git-cache).
    #[arg(long, env = "GIT_CACHE_PATH")]
    pub git_cache_path: Option<PathBuf>,
    /// Interval at which to requeue an object waiting for another one (an included
    /// GitRepository without an artifact).
    #[arg(long, default_value = "30s", value_parser = ferroflux_runtime::flags::parse_duration)]
    pub requeue_dependency: Duration,
}

/// Names of the GitRepositories among `objs` (all in one namespace) that include `name`,
/// leaving out those that `name` itself includes, directly or not: in a cycle of includes
/// each new artifact would make the next one forever. Those follow at their interval.
pub fn includers_of(objs: &[&GitRepository], name: &str) -> Vec<String> {
    let includes = |n: &str| -> Vec<String> {
        objs.iter()
            .find(|o| o.name_any() == n)
            .map(|o| {
                o.spec
                    .include
                    .iter()
                    .flatten()
                    .map(|i| i.repository.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Everything `name` includes, transitively.
    let mut below = std::collections::BTreeSet::new();
    let mut todo = includes(name);
    while let Some(n) = todo.pop() {
        if below.insert(n.clone()) {
            todo.extend(includes(&n));
        }
    }
    objs.iter()
        .filter(|o| {
            o.spec
                .include
                .iter()
                .flatten()
                .any(|i| i.repository.name == name)
        })
        .map(|o| o.name_any())
        .filter(|n| n != name && !below.contains(n))
        .collect()
}

/// GitRepositories in `store` that include `namespace/name` (see [`includers_of`]).
pub fn includers(
    store: &Store<GitRepository>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<GitRepository>> {
    let state = store.state();
    let same_ns: Vec<&GitRepository> = state
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .map(|o| o.as_ref())
        .collect();
    includers_of(&same_ns, name)
        .into_iter()
        .map(|n| ObjectRef::new(&n).within(namespace))
        .collect()
}

fn artifact_hash(o: &GitRepository) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    o.status
        .as_ref()
        .and_then(|s| s.artifact.as_ref())
        .map(|a| (&a.revision, &a.digest))
        .hash(&mut h);
    Some(h.finish())
}

/// Adds the include trigger: a GitRepository with a new artifact reconciles the
/// GitRepositories that include it (Flux watches the included artifact revision).
fn with_include_watch(
    controller: Controller<GitRepository>,
    client: kube::Client,
    namespace: Option<&str>,
) -> Controller<GitRepository> {
    let store = controller.store();
    let api: Api<GitRepository> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(artifact_hash, Default::default())
        .filter_map(|r| async move { r.ok() })
        .map(Ok::<_, watcher::Error>);
    controller.watches_stream(stream, move |o: GitRepository| {
        includers(&store, &o.namespace().unwrap_or_default(), &o.name_any())
    })
}

/// The advertised address Flux derives from `--storage-addr` when `--storage-adv-addr` is
/// empty: an empty or unspecified host becomes the host name.
pub fn advertised_addr(storage_addr: &str, adv: &str) -> String {
    if !adv.is_empty() {
        return adv.to_string();
    }
    let (host, port) = storage_addr.rsplit_once(':').unwrap_or((storage_addr, ""));
    let host = if host.is_empty() || host == "0.0.0.0" || host == "[::]" {
        ferroflux_runtime::events::hostname()
    } else {
        host.to_string()
    };
    if port.is_empty() {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// Runs source-controller on `manager` until shutdown.
pub async fn run(args: Args, manager: Manager, signals: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.storage_path)?;
    let storage = Storage::new(
        &args.storage_path,
        advertised_addr(&args.storage_addr, &args.storage_adv_addr),
        Retention {
            records: args.artifact_retention_records,
            ttl: args.artifact_retention_ttl,
        },
    )?;
    let cache_root = args
        .git_cache_path
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("source-controller-git-cache"));
    std::fs::create_dir_all(&cache_root)?;
    let ctx = manager.context()?;
    let reconciler = Arc::new(GitRepositoryReconciler {
        storage,
        cache_root,
        requeue_dependency: args.requeue_dependency,
    });
    let client = ctx.client.clone();
    let rt_args = args.runtime.clone();
    let server = ArtifactServer::new(&args.storage_path)?;
    let storage_addr = args.storage_addr.clone();
    manager
        .run(signals, move |shutdown| async move {
            // Only the leader serves artifacts (Flux starts the file server after election).
            match ArtifactServer::bind(&storage_addr).await {
                Ok(l) => {
                    tracing::info!(addr = %storage_addr, "starting artifact server");
                    tokio::spawn(server.serve(l, shutdown.clone().wait()));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start artifact server");
                    return;
                }
            }
            let ns = rt_args.watch_namespace().map(str::to_string);
            ferroflux_runtime::controller::run_with::<GitRepository, _, _>(
                ctx,
                reconciler,
                &rt_args,
                2,
                shutdown,
                move |c| with_include_watch(c, client, ns.as_deref()),
            )
            .await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str, includes: &[&str]) -> GitRepository {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"url": "http://x/r.git", "interval": "1m",
                     "include": includes.iter().map(|i| serde_json::json!({"repository": {"name": i}})).collect::<Vec<_>>()},
        }))
        .unwrap()
    }

    #[test]
    fn includers_skip_cycles() {
        let objs = [
            repo("app", &["lib", "tools"]),
            repo("lib", &[]),
            repo("tools", &["lib"]),
            repo("a", &["b"]),
            repo("b", &["c"]),
            repo("c", &["a"]),
            repo("self", &["self"]),
        ];
        let refs: Vec<&GitRepository> = objs.iter().collect();
        assert_eq!(includers_of(&refs, "lib"), ["app", "tools"]);
        assert_eq!(includers_of(&refs, "tools"), ["app"]);
        assert!(includers_of(&refs, "app").is_empty());
        // a -> b -> c -> a: no trigger closes the loop.
        assert!(includers_of(&refs, "a").is_empty());
        assert!(includers_of(&refs, "self").is_empty());
    }

    #[test]
    fn adv_addr() {
        assert_eq!(advertised_addr("127.0.0.1:9090", ""), "127.0.0.1:9090");
        assert_eq!(advertised_addr(":9090", "x.svc."), "x.svc.");
        assert!(advertised_addr(":9090", "").ends_with(":9090"));
        assert!(!advertised_addr(":9090", "").starts_with(':'));
    }
}
