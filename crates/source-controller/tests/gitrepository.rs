//! GitRepository on the real control plane, against git http-backend on 127.0.0.1.

mod support;

use std::time::Duration;

use ferroflux_api::source::GitRepository;
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::GitHttpServer;
use kube::api::{Api, DeleteParams};
use sha2::Digest;
use support::*;

fn artifact_bytes(o: &GitRepository) -> Vec<u8> {
    let a = o.status.as_ref().unwrap().artifact.as_ref().unwrap();
    let bytes = curl(&a.url).1;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(digest, a.digest, "served artifact digest");
    assert_eq!(a.size, Some(bytes.len() as i64));
    bytes
}

fn tar_list(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.tar.gz");
    std::fs::write(&f, bytes).unwrap();
    let out = std::process::Command::new("tar")
        .args(["-tzf", f.to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tar_file(bytes: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.tar.gz");
    std::fs::write(&f, bytes).unwrap();
    let out = std::process::Command::new("tar")
        .args(["-xzOf", f.to_str().unwrap(), name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clones_by_branch_tag_semver_commit_and_name() {
    let (client, ns, api) = setup("git-refs").await;
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "podinfo");
    let c1 = repo.commit(
        &[
            ("version.txt", "1.0.0"),
            (".sourceignore", "ignored/\n"),
            ("ignored/x", "x"),
            ("img.png", "p"),
        ],
        "first",
    );
    repo.tag("v1.0.0", false);
    let c2 = repo.commit(&[("version.txt", "1.1.0")], "second");
    repo.tag("v1.1.0", true);
    let c3 = repo.commit(&[("version.txt", "2.0.0-rc.1")], "third");
    repo.tag("v2.0.0-rc.1", false);
    repo.push_ref("refs/pull/7/head");
    let c4 = repo.commit(&[("version.txt", "main")], "fourth");
    let server = GitHttpServer::start(root.path(), Some(("git", "s3cret")))
        .await
        .expect("start the git server");
    basic_auth_secret(&client, &ns, "auth", "git", "s3cret").await;
    let url = server.url("podinfo");
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;

    let cases = [
        (
            "branch",
            serde_json::json!({"branch": "main"}),
            format!("main@sha1:{c4}"),
            "main",
        ),
        (
            "tag",
            serde_json::json!({"tag": "v1.0.0"}),
            format!("v1.0.0@sha1:{c1}"),
            "1.0.0",
        ),
        (
            "annotated",
            serde_json::json!({"tag": "v1.1.0"}),
            format!("v1.1.0@sha1:{c2}"),
            "1.1.0",
        ),
        (
            "semver",
            serde_json::json!({"semver": ">=1.0.0 <2.0.0"}),
            format!("v1.1.0@sha1:{c2}"),
            "1.1.0",
        ),
        (
            "semver-pre",
            serde_json::json!({"semver": ">=2.0.0-0"}),
            format!("v2.0.0-rc.1@sha1:{c3}"),
            "2.0.0-rc.1",
        ),
        (
            "commit",
            serde_json::json!({"commit": c2}),
            format!("sha1:{c2}"),
            "1.1.0",
        ),
        (
            "commit-branch",
            serde_json::json!({"branch": "main", "commit": c1}),
            format!("main@sha1:{c1}"),
            "1.0.0",
        ),
        (
            "name",
            serde_json::json!({"name": "refs/pull/7/head"}),
            format!("refs/pull/7/head@sha1:{c3}"),
            "2.0.0-rc.1",
        ),
        (
            "name-heads",
            serde_json::json!({"name": "refs/heads/main"}),
            format!("refs/heads/main@sha1:{c4}"),
            "main",
        ),
    ];
    for (name, r, _, _) in &cases {
        create(&api, &gitrepo(name, &url, r.clone(), Some("auth"))).await;
    }
    for (name, _, want_rev, want_version) in &cases {
        let o = wait_for(&api, name, "Ready=True", is_ready_true).await;
        assert_eq!(&revision(&o), want_rev, "{name}");
        let (_, reason, message) = ready(&o).unwrap();
        assert_eq!(reason, "Succeeded");
        assert_eq!(
            message,
            format!("stored artifact for revision '{want_rev}'")
        );
        let st = o.status.as_ref().unwrap();
        let a = st.artifact.as_ref().unwrap();
        let commit = want_rev.rsplit(':').next().unwrap();
        assert_eq!(a.path, format!("gitrepository/{ns}/{name}/{commit}.tar.gz"));
        let conds: Vec<_> = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            conds,
            [("Ready", "True"), ("ArtifactInStorage", "True")],
            "{name}"
        );
        let bytes = artifact_bytes(&o);
        assert_eq!(tar_file(&bytes, "version.txt"), *want_version, "{name}");
        let list = tar_list(&bytes);
        assert!(
            !list.contains("ignored/x"),
            ".sourceignore honoured: {list}"
        );
        // A .sourceignore replaces the default exclusions except the VCS ones (Flux semantics).
        assert!(list.contains("img.png"), "{list}");
        assert!(!list.contains(".git/"), "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_failure_keeps_artifact_and_new_commit_lands_on_request() {
    let (client, ns, api) = setup("git-auth").await;
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "app");
    let c1 = repo.commit(&[("a.yaml", "one")], "one");
    let server = GitHttpServer::start(root.path(), Some(("git", "right")))
        .await
        .expect("start the git server");
    basic_auth_secret(&client, &ns, "auth", "git", "right").await;
    let ctl = Controller::start(client.clone(), &ns, &[]).await;
    create(
        &api,
        &gitrepo(
            "app",
            &server.url("app"),
            serde_json::json!({"branch": "main"}),
            Some("auth"),
        ),
    )
    .await;
    let o = wait_for(&api, "app", "Ready=True", is_ready_true).await;
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    let first = o.status.as_ref().unwrap().artifact.clone().unwrap();

    // Unchanged remote on request: no new artifact, the skip is counted.
    request_reconcile(&api, "app", "t1").await;
    let o = wait_for(&api, "app", "lastHandledReconcileAt=t1", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("t1")
            && is_ready_true(o)
    })
    .await;
    let again = o.status.as_ref().unwrap().artifact.clone().unwrap();
    assert_eq!(
        again.last_update_time, first.last_update_time,
        "not re-archived"
    );
    assert_eq!(again.digest, first.digest);
    let metrics = ctl.metrics();
    assert!(
        metrics.contains(&format!("gotk_git_fetch_skipped_total{{kind=\"GitRepository\",name=\"app\",namespace=\"{ns}\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("gotk_reconcile_duration_seconds_count{kind=\"GitRepository\",name=\"app\"")
    );

    // Wrong password: Ready=False; like Flux, a refused clone is GitOperationFailed, and the
    // message says what to check. The artifact stays served.
    basic_auth_secret(&client, &ns, "auth", "git", "wrong").await;
    request_reconcile(&api, "app", "t2").await;
    let o = wait_for(&api, "app", "Ready=False", |o| {
        ready(o).is_some_and(|(s, _, _)| s == "False")
            && o.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some("t2")
    })
    .await;
    let (_, reason, message) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{message}");
    assert!(message.contains("spec.secretRef"), "{message}");
    let st = o.status.as_ref().unwrap();
    let ff = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "FetchFailed")
        .unwrap();
    assert_eq!(ff.status, "True");
    let rec = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .unwrap();
    assert_eq!(rec.reason, "ProgressingWithRetry");
    assert_eq!(
        st.artifact.as_ref().unwrap().digest,
        first.digest,
        "previous artifact kept"
    );
    artifact_bytes(&o);

    // Fixed secret and a new commit: new artifact at once after a request.
    basic_auth_secret(&client, &ns, "auth", "git", "right").await;
    let c2 = repo.commit(&[("a.yaml", "two")], "two");
    request_reconcile(&api, "app", "t3").await;
    // A retry after the failure may land the commit first; the request is handled anyway.
    let o = wait_for(&api, "app", "new revision", |o| {
        revision(o) == format!("main@sha1:{c2}")
            && is_ready_true(o)
            && o.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some("t3")
    })
    .await;
    assert_eq!(
        o.status
            .as_ref()
            .unwrap()
            .last_handled_reconcile_at
            .as_deref(),
        Some("t3")
    );
    assert!(
        o.status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .all(|c| c.type_ != "FetchFailed")
    );
    assert_eq!(tar_file(&artifact_bytes(&o), "a.yaml"), "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_branch_unreachable_host_and_bad_url() {
    let (client, ns, api) = setup("git-fail").await;
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "r");
    repo.commit(&[("a", "a")], "a");
    let server = GitHttpServer::start(root.path(), None)
        .await
        .expect("start the git server");
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let dead = format!("http://127.0.0.1:{}/r.git", free_port());
    create(
        &api,
        &gitrepo(
            "nobranch",
            &server.url("r"),
            serde_json::json!({"branch": "nope"}),
            None,
        ),
    )
    .await;
    create(
        &api,
        &gitrepo(
            "unreachable",
            &dead,
            serde_json::json!({"branch": "main"}),
            None,
        ),
    )
    .await;
    create(
        &api,
        &gitrepo(
            "badurl",
            "http://exa mple.com:xx/r.git",
            serde_json::json!({"branch": "main"}),
            None,
        ),
    )
    .await;
    create(
        &api,
        &gitrepo(
            "missing-secret",
            &server.url("r"),
            serde_json::json!({"branch": "main"}),
            Some("absent"),
        ),
    )
    .await;

    let is_false = |o: &GitRepository| ready(o).is_some_and(|(s, _, _)| s == "False");
    let o = wait_for(&api, "nobranch", "Ready=False", is_false).await;
    let (_, reason, message) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed");
    assert!(
        message.contains("couldn't find remote ref 'refs/heads/nope'"),
        "{message}"
    );

    let o = wait_for(&api, "unreachable", "Ready=False", is_false).await;
    let (_, reason, message) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed");
    assert!(message.contains(&dead), "{message}");

    let o = wait_for(&api, "badurl", "Stalled", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Stalled" && c.status == "True"))
    })
    .await;
    let (_, reason, _) = ready(&o).unwrap();
    assert_eq!(reason, "URLInvalid");
    assert_eq!(
        o.status.as_ref().unwrap().observed_generation,
        o.metadata.generation
    );

    let o = wait_for(&api, "missing-secret", "Ready=False", is_false).await;
    let (_, reason, message) = ready(&o).unwrap();
    assert_eq!(reason, "AuthenticationFailed");
    assert!(message.contains("absent"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_removes_artifacts_and_kubectl_wait_works() {
    let (client, ns, api) = setup("git-del").await;
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "r");
    repo.commit(&[("a", "a")], "a");
    let server = GitHttpServer::start(root.path(), None)
        .await
        .expect("start the git server");
    let ctl = Controller::start(client.clone(), &ns, &[]).await;
    create(
        &api,
        &gitrepo(
            "gone",
            &server.url("r"),
            serde_json::json!({"branch": "main"}),
            None,
        ),
    )
    .await;

    let kubectl = ferroflux_testenv::oracle("kubectl");
    let kubeconfig = ControlPlane::shared().kubeconfig_path.clone();
    let out = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "-n",
            &ns,
            "wait",
            "--for=condition=ready",
            "gitrepository/gone",
            "--timeout=60s",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));

    let o = wait_for(&api, "gone", "Ready=True", is_ready_true).await;
    assert!(
        o.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&"finalizers.fluxcd.io".to_string())
    );
    let dir = ctl.storage.path().join(format!("gitrepository/{ns}/gone"));
    assert!(dir.exists());
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while api.get_opt("gone").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "object not finalized"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!dir.exists(), "artifacts removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_recorded_and_posted_and_suspend_pauses() {
    use k8s_openapi::api::core::v1::Event;
    let (client, ns, api) = setup("git-events").await;
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "r");
    let c1 = repo.commit(&[("a", "a")], "initial import");
    let server = GitHttpServer::start(root.path(), None)
        .await
        .expect("start the git server");
    let sink = support::sink::Sink::start().await;
    let events_flag = format!("--events-addr={}", sink.url);
    let _ctl = Controller::start(client.clone(), &ns, &[&events_flag]).await;
    create(
        &api,
        &gitrepo(
            "ev",
            &server.url("r"),
            serde_json::json!({"branch": "main"}),
            None,
        ),
    )
    .await;
    wait_for(&api, "ev", "Ready=True", is_ready_true).await;

    // The POST to --events-addr, in Flux's shape.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let posted = loop {
        if let Some(e) = sink.received.lock().unwrap().first().cloned() {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "no event POSTed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(posted.0, "application/json");
    let ev = posted.1;
    assert_eq!(ev["involvedObject"]["kind"], "GitRepository");
    assert_eq!(ev["involvedObject"]["name"], "ev");
    assert_eq!(ev["involvedObject"]["namespace"], ns.as_str());
    assert_eq!(
        ev["involvedObject"]["apiVersion"],
        "source.toolkit.fluxcd.io/v1"
    );
    assert_eq!(ev["severity"], "info");
    assert_eq!(ev["reason"], "NewArtifact");
    assert_eq!(ev["message"], "stored artifact for commit 'initial import'");
    assert_eq!(ev["reportingController"], "source-controller");
    assert_eq!(
        ev["metadata"]["source.toolkit.fluxcd.io/revision"],
        format!("main@sha1:{c1}")
    );
    assert!(
        ev["metadata"]["source.toolkit.fluxcd.io/digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // The Kubernetes Event.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let list = events.list(&Default::default()).await.unwrap();
    let k = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("NewArtifact"))
        .expect("a NewArtifact event");
    assert_eq!(k.reporting_component.as_deref(), Some("source-controller"));
    assert_eq!(k.type_.as_deref(), Some("Normal"));
    assert_eq!(k.involved_object.name.as_deref(), Some("ev"));

    // Suspended: a new commit and a request change nothing.
    let p = serde_json::json!({"spec": {"suspend": true}});
    api.patch(
        "ev",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&p),
    )
    .await
    .unwrap();
    repo.commit(&[("a", "b")], "second");
    request_reconcile(&api, "ev", "s1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let o = api.get("ev").await.unwrap();
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    assert_ne!(
        o.status
            .as_ref()
            .unwrap()
            .last_handled_reconcile_at
            .as_deref(),
        Some("s1")
    );
    // Resumed: the new commit lands.
    let p = serde_json::json!({"spec": {"suspend": false}});
    api.patch(
        "ev",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&p),
    )
    .await
    .unwrap();
    wait_for(&api, "ev", "new revision after resume", |o| {
        revision(o) != format!("main@sha1:{c1}") && is_ready_true(o)
    })
    .await;
}

async fn ssh_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    identity: &str,
    known_hosts: &str,
    password: Option<&str>,
) {
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut data = serde_json::json!({"identity": identity, "known_hosts": known_hosts});
    if let Some(p) = password {
        data["password"] = serde_json::json!(p);
    }
    let s: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data,
    }))
    .unwrap();
    api.patch(
        name,
        &kube::api::PatchParams::apply("test").force(),
        &kube::api::Patch::Apply(&s),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_keys_known_hosts_and_failures() {
    use ferroflux_testenv::git_ssh::GitSshServer;
    assert!(
        GitSshServer::available(),
        "openssh-server is required: apt-get install openssh-server"
    );
    let (client, ns, api) = setup("git-ssh").await;
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "r");
    let c1 = repo.commit(&[("a", "over ssh")], "a");
    let ssh = GitSshServer::start().await;
    let url = ssh.url(&repo.bare);
    ssh_secret(&client, &ns, "key", &ssh.client_key, &ssh.known_hosts, None).await;
    ssh_secret(
        &client,
        &ns,
        "enc",
        &ssh.encrypted_key,
        &ssh.known_hosts,
        Some("s3cret"),
    )
    .await;
    ssh_secret(
        &client,
        &ns,
        "wrongkey",
        &ssh.other_key,
        &ssh.known_hosts,
        None,
    )
    .await;
    ssh_secret(
        &client,
        &ns,
        "unknownhost",
        &ssh.client_key,
        &ssh.wrong_known_hosts(),
        None,
    )
    .await;
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    for name in ["key", "enc", "wrongkey", "unknownhost"] {
        create(
            &api,
            &gitrepo(
                name,
                &url,
                serde_json::json!({"branch": "main"}),
                Some(name),
            ),
        )
        .await;
    }
    for name in ["key", "enc"] {
        let o = wait_for(&api, name, "Ready=True", is_ready_true).await;
        assert_eq!(revision(&o), format!("main@sha1:{c1}"));
        assert_eq!(tar_file(&artifact_bytes(&o), "a"), "over ssh");
    }
    let is_false = |o: &GitRepository| ready(o).is_some_and(|(s, _, _)| s == "False");
    // Refused by the server or the host key check: the clone failed (Flux's reason).
    let o = wait_for(&api, "wrongkey", "Ready=False", is_false).await;
    let (_, reason, message) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{message}");
    let o = wait_for(&api, "unknownhost", "Ready=False", is_false).await;
    let (_, reason, message) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{message}");
    assert!(
        message.contains("host key verification failed"),
        "{message}"
    );
}
