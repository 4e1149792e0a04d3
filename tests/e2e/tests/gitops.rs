//! GitOps end to end (SCENARIOS.md S2): a real git server over HTTP with basic auth,
//! source-controller and kustomize-controller as processes, the real kube-apiserver, and
//! the real `flux` CLI reading and driving what they do.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ferroflux_api::kustomization::Kustomization;
use ferroflux_api::source::GitRepository;
use ferroflux_e2e::{ControllerProcess as Proc, free_port};
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::{GitHttpServer, Repo};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

/// The real flux CLI, built from its Go module by tests/tools/build-flux.sh, or the reason
/// it could not be built.
fn flux_cli() -> Result<PathBuf, String> {
    static FLUX: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FLUX.get_or_init(|| {
        let root = ferroflux_testenv::workspace_root();
        let out = root.join("target/tools");
        let status = Command::new("bash")
            .arg(root.join("tests/tools/build-flux.sh"))
            .arg(&out)
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(out.join("flux"))
        } else {
            Err(format!("tests/tools/build-flux.sh failed: {status}"))
        }
    })
    .clone()
}

/// Runs the flux CLI without blocking the runtime: the git server in this test is a task on
/// it and must keep answering while flux waits for a reconcile.
async fn flux(cp: &ControlPlane, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(flux_cli().expect("flux CLI"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig_path)
        .args(args)
        .output()
        .await
        .expect("run flux");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn wait<K, F>(api: &Api<K>, name: &str, what: &str, procs: &[&Proc], check: F) -> K
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let obj = api.get(name).await.unwrap();
        if check(&obj) {
            return obj;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = procs.iter().map(|p| p.tail()).collect();
            panic!(
                "timed out waiting for {what}: {obj:#?}\n--- logs ---\n{}",
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ready_message(
    conditions: Option<&Vec<ferroflux_api::meta::Condition>>,
) -> Option<(String, String)> {
    conditions?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_pushed_over_https_basic_auth_is_applied_and_the_flux_cli_works() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, "gitops").await.unwrap();

    // A real git server with basic auth and a repository holding an app.
    let git_root = tempfile::tempdir().unwrap();
    let repo = Repo::init(git_root.path(), "fleet");
    let cm = |name: &str, v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  version: \"{v}\"\n"
        )
    };
    let first = repo.commit(
        &[
            ("kubernetes/app.yaml", &cm("app", "1")),
            ("kubernetes/extra.yaml", &cm("extra", "1")),
        ],
        "first",
    );
    let server = GitHttpServer::start(git_root.path(), Some(("flux", "s3cret")))
        .await
        .unwrap();

    let storage = tempfile::tempdir().unwrap();
    let storage_port = free_port();
    let source = Proc::start(
        env!("CARGO_BIN_EXE_e2e-source-controller"),
        &cp.kubeconfig_path,
        &ns,
        &[
            format!("--storage-path={}", storage.path().display()),
            format!("--storage-addr=127.0.0.1:{storage_port}"),
            format!("--storage-adv-addr=127.0.0.1:{storage_port}"),
        ],
    );
    let kustomize = Proc::start(
        env!("CARGO_BIN_EXE_e2e-kustomize-controller"),
        &cp.kubeconfig_path,
        &ns,
        &["--requeue-dependency=2s".to_string()],
    );
    let procs = [&source, &kustomize];

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "git-auth"}, "stringData": {"username": "flux", "password": "s3cret"}})).unwrap()).await.unwrap();
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    repos.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "fleet"},
        "spec": {"url": server.url("fleet"), "interval": "1m", "ref": {"branch": "main"}, "secretRef": {"name": "git-auth"}}})).unwrap()).await.unwrap();
    let kss: Api<Kustomization> = Api::namespaced(client.clone(), &ns);
    kss.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "app"},
        "spec": {"interval": "5m", "path": "./kubernetes", "prune": true, "targetNamespace": ns,
                 "sourceRef": {"kind": "GitRepository", "name": "fleet"}}})).unwrap()).await.unwrap();

    let rev1 = format!("main@sha1:{first}");
    wait(
        &repos,
        "fleet",
        "the GitRepository to store the first commit",
        &procs,
        |g| {
            g.status
                .as_ref()
                .and_then(|s| s.artifact.as_ref())
                .is_some_and(|a| a.revision == rev1)
        },
    )
    .await;
    let ks = wait(
        &kss,
        "app",
        "the Kustomization to apply the first commit",
        &procs,
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.last_applied_revision.as_deref())
                == Some(rev1.as_str())
        },
    )
    .await;
    assert_eq!(
        ready_message(ks.status.as_ref().unwrap().conditions.as_ref()),
        Some(("True".to_string(), format!("Applied revision: {rev1}")))
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert_eq!(cms.get("app").await.unwrap().data.unwrap()["version"], "1");

    // A new commit, picked up at once after a reconcile request on the source; the file
    // deleted in it is pruned.
    let second = repo.commit(
        &[
            ("kubernetes/app.yaml", &cm("app", "2")),
            ("kubernetes/extra.yaml", ""),
        ],
        "second",
    );
    let rev2 = format!("main@sha1:{second}");
    repos.patch("fleet", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "first-request"}}}))).await.unwrap();
    wait(
        &kss,
        "app",
        "the Kustomization to apply the second commit",
        &procs,
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.last_applied_revision.as_deref())
                == Some(rev2.as_str())
        },
    )
    .await;
    assert_eq!(cms.get("app").await.unwrap().data.unwrap()["version"], "2");
    assert!(
        cms.get_opt("extra").await.unwrap().is_none(),
        "extra.yaml was deleted from git and must be pruned"
    );

    // The real flux CLI against ferroflux.
    // No skipping: without the real CLI this test would not show the compatibility it claims.
    if let Err(reason) = flux_cli() {
        panic!("the real flux CLI is needed for the compatibility checks: {reason}");
    }
    // flux prints revisions with the commit shortened to 8 characters.
    let short = |rev: &str| rev[.."main@sha1:".len() + 8].to_string();
    let (ok, out) = flux(cp, &["get", "kustomizations", "-n", &ns]).await;
    assert!(ok, "flux get ks: {out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("app"))
        .unwrap_or_else(|| panic!("no row for app:\n{out}"));
    let columns: Vec<&str> = row.split('\t').map(str::trim).collect();
    assert_eq!(
        columns[..4],
        ["app", short(&rev2).as_str(), "False", "True"],
        "flux get ks:\n{out}"
    );
    assert!(
        row.contains(&format!("Applied revision: {}", short(&rev2))),
        "flux get ks:\n{out}"
    );
    let (ok, out) = flux(cp, &["get", "sources", "git", "-n", &ns]).await;
    assert!(
        ok && out.contains(&short(&rev2)),
        "flux get sources git:\n{out}"
    );

    let third = repo.commit(&[("kubernetes/app.yaml", &cm("app", "3"))], "third");
    let (ok, out) = flux(
        cp,
        &[
            "reconcile",
            "kustomization",
            "app",
            "--with-source",
            "-n",
            &ns,
            "--timeout=60s",
        ],
    )
    .await;
    if !ok {
        let g = repos.get("fleet").await.unwrap();
        panic!(
            "flux reconcile ks --with-source:\n{out}\nGitRepository: {:#?}\n{}\n{}",
            g.status,
            source.tail(),
            kustomize.tail()
        );
    }
    assert!(
        out.contains(&third[..8]),
        "flux reconcile should report the new revision:\n{out}"
    );
    assert_eq!(cms.get("app").await.unwrap().data.unwrap()["version"], "3");

    let (ok, out) = flux(cp, &["suspend", "kustomization", "app", "-n", &ns]).await;
    assert!(ok, "flux suspend: {out}");
    assert_eq!(kss.get("app").await.unwrap().spec.suspend, Some(true));
    let (ok, out) = flux(
        cp,
        &["resume", "kustomization", "app", "-n", &ns, "--timeout=60s"],
    )
    .await;
    assert!(ok, "flux resume: {out}\n{}", kustomize.tail());
    assert_ne!(kss.get("app").await.unwrap().spec.suspend, Some(true));

    let (ok, out) = flux(cp, &["tree", "kustomization", "app", "-n", &ns]).await;
    assert!(
        ok && out.contains(&format!("ConfigMap/{ns}/app")),
        "flux tree ks:\n{out}"
    );

    // A wrong password: the source goes Ready=False with an actionable message and the
    // last artifact keeps being served and applied.
    *server.credentials.lock().unwrap() = Some(("flux".into(), "rotated".into()));
    repo.commit(&[("kubernetes/app.yaml", &cm("app", "4"))], "fourth");
    repos.patch("fleet", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "after-rotation"}}}))).await.unwrap();
    let g = wait(
        &repos,
        "fleet",
        "the GitRepository to report the authentication failure",
        &procs,
        |g| {
            ready_message(g.status.as_ref().and_then(|s| s.conditions.as_ref()))
                .is_some_and(|r| r.0 == "False")
        },
    )
    .await;
    let (_, message) = ready_message(g.status.as_ref().unwrap().conditions.as_ref()).unwrap();
    assert!(
        message.to_lowercase().contains("auth") || message.contains("401"),
        "{message}"
    );
    assert!(
        g.status.as_ref().unwrap().artifact.is_some(),
        "the previous artifact stays"
    );
    assert_eq!(
        cms.get("app").await.unwrap().data.unwrap()["version"],
        "3",
        "nothing changes in the cluster"
    );
}
