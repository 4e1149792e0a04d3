//! source-controller as a real process: KUBECONFIG, leader election on a Lease, probes,
//! metrics, SIGTERM.

mod support;

use std::process::Stdio;
use std::time::Duration;

use ferroflux_api::source::GitRepository;
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::GitHttpServer;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::*;

struct Proc {
    child: tokio::process::Child,
    metrics: String,
    health: String,
    _storage: tempfile::TempDir,
}

fn spawn(ns: &str) -> Proc {
    let storage = tempfile::tempdir().unwrap();
    let storage_addr = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let health = format!("127.0.0.1:{}", free_port());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_source-controller"))
        .env("KUBECONFIG", &ControlPlane::shared().kubeconfig_path)
        .env("RUNTIME_NAMESPACE", ns)
        .args([
            &format!("--storage-path={}", storage.path().display()),
            &format!("--storage-addr={storage_addr}"),
            &format!("--storage-adv-addr={storage_addr}"),
            &format!("--metrics-addr={metrics}"),
            &format!("--health-addr={health}"),
            "--watch-all-namespaces=false",
            "--enable-leader-election",
            "--leader-election-lease-duration=6s",
            "--leader-election-renew-deadline=5s",
            "--leader-election-retry-period=1s",
            "--log-encoding=json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn source-controller");
    Proc {
        child,
        metrics,
        health,
        _storage: storage,
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("source-controller-leader-election")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_election_probes_and_sigterm() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, "git-proc").await.unwrap();
    let api: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "r");
    let c1 = repo.commit(&[("a", "a")], "a");
    let server = GitHttpServer::start(root.path(), None)
        .await
        .expect("start the git server");

    let mut first = spawn(&ns);
    create(
        &api,
        &gitrepo(
            "p",
            &server.url("r"),
            serde_json::json!({"branch": "main"}),
            None,
        ),
    )
    .await;
    let o = wait_for(&api, "p", "Ready=True", is_ready_true).await;
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    let leader = holder(&leases).await.expect("lease held");
    assert!(
        leader.ends_with(&format!("_{}", first.child.id().unwrap())),
        "{leader}"
    );
    assert_eq!(curl(&format!("http://{}/healthz", first.health)).0, "ok");
    assert_eq!(curl(&format!("http://{}/readyz", first.health)).0, "ok");
    let m = curl(&format!("http://{}/metrics", first.metrics)).0;
    assert!(
        m.contains("gotk_reconcile_condition{kind=\"GitRepository\",name=\"p\""),
        "{m}"
    );

    // A second candidate waits while the first leads.
    let second = spawn(&ns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(holder(&leases).await.as_deref(), Some(leader.as_str()));

    // SIGTERM: the first exits cleanly and releases the Lease; the second takes over.
    let pid = first.child.id().unwrap().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let status = tokio::time::timeout(Duration::from_secs(20), first.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let want = format!("_{}", second.child.id().unwrap());
    loop {
        if holder(&leases).await.is_some_and(|h| h.ends_with(&want)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "second candidate never led"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The new leader reconciles: a new commit lands after a request.
    let c2 = repo.commit(&[("a", "b")], "b");
    request_reconcile(&api, "p", "after-failover").await;
    wait_for(&api, "p", "new revision from the new leader", |o| {
        revision(o) == format!("main@sha1:{c2}") && is_ready_true(o)
    })
    .await;
}
