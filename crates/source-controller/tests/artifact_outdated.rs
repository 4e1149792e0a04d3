//! GitRepository `ArtifactOutdated` while a new artifact is built, as Flux shows it: reason
//! `IncludeChange` when only an included artifact changed, `NewRevision` for a new commit,
//! with Reconciling and Ready=Unknown saying "building artifact: ...". The condition is
//! transient (gone once the artifact is stored), so the test watches every status the API
//! server records, on the real control plane.

mod support;

use std::sync::{Arc, Mutex};

use ferroflux_api::source::GitRepository;
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::GitHttpServer;
use futures::StreamExt;
use kube::api::{Api, WatchEvent, WatchParams};
use support::*;

/// Records every version of object `name` from now on.
async fn record(api: &Api<GitRepository>, name: &str) -> Arc<Mutex<Vec<GitRepository>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rv = api
        .get(name)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(120);
    let mut stream = api.watch(&params, &rv).await.unwrap().boxed();
    let sink = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            if let WatchEvent::Modified(o) = ev {
                sink.lock().unwrap().push(o);
            }
        }
    });
    seen
}

fn included_revision(o: &GitRepository) -> Option<String> {
    o.status
        .as_ref()?
        .included_artifacts
        .as_ref()?
        .first()
        .map(|a| a.revision.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn include_change_and_new_revision_are_shown_while_building() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, "git-outdated").await.unwrap();
    let api: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let root = tempfile::tempdir().unwrap();
    let lib = Repo::init(root.path(), "lib");
    lib.commit(&[("lib.yaml", "lib v1")], "lib");
    let app = Repo::init(root.path(), "app");
    let a1 = app.commit(&[("app.yaml", "app")], "app");
    let server = GitHttpServer::start(root.path(), None).await.unwrap();
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let main = serde_json::json!({"branch": "main"});
    create(
        &api,
        &gitrepo("lib", &server.url("lib"), main.clone(), None),
    )
    .await;
    let mut app_obj = serde_json::to_value(gitrepo("app", &server.url("app"), main, None)).unwrap();
    app_obj["spec"]["include"] = serde_json::json!([{"repository": {"name": "lib"}}]);
    create(&api, &serde_json::from_value(app_obj).unwrap()).await;
    let o = wait_for(&api, "app", "Ready=True", is_ready_true).await;
    assert_eq!(revision(&o), format!("main@sha1:{a1}"));
    assert!(condition(&o, "ArtifactOutdated").is_none());

    // Only the included repository changes.
    let seen = record(&api, "app").await;
    let l2 = lib.commit(&[("lib.yaml", "lib v2")], "lib two");
    request_reconcile(&api, "lib", "l2").await;
    let o = wait_for(&api, "app", "the new include", |o| {
        is_ready_true(o) && included_revision(o) == Some(format!("main@sha1:{l2}"))
    })
    .await;
    assert!(
        condition(&o, "ArtifactOutdated").is_none(),
        "dropped once stored"
    );
    let message = "included artifacts differ from last observed includes";
    let building = format!("building artifact: {message}");
    let versions = seen.lock().unwrap().clone();
    assert!(
        versions.iter().any(|v| {
            condition(v, "ArtifactOutdated")
                == Some(("True".into(), "IncludeChange".into(), message.into()))
                && condition(v, "Reconciling")
                    == Some(("True".into(), "Progressing".into(), building.clone()))
                && condition(v, "Ready")
                    == Some(("Unknown".into(), "Progressing".into(), building.clone()))
        }),
        "no status showed IncludeChange while building; saw: {:#?}",
        versions
            .iter()
            .map(|v| v.status.as_ref().and_then(|s| s.conditions.clone()))
            .collect::<Vec<_>>()
    );
    assert!(
        versions
            .iter()
            .all(|v| condition(v, "ArtifactOutdated").is_none_or(|c| c.1 == "IncludeChange")),
        "only the include changed"
    );

    // A new commit of the includer itself.
    let seen = record(&api, "app").await;
    let a2 = app.commit(&[("app.yaml", "app v2")], "app two");
    request_reconcile(&api, "app", "a2").await;
    let new_rev = format!("main@sha1:{a2}");
    let o = wait_for(&api, "app", "the new commit", |o| {
        is_ready_true(o) && revision(o) == new_rev
    })
    .await;
    assert!(condition(&o, "ArtifactOutdated").is_none());
    let message = format!("new upstream revision '{new_rev}'");
    let versions = seen.lock().unwrap().clone();
    assert!(
        versions.iter().any(|v| {
            condition(v, "ArtifactOutdated")
                == Some(("True".into(), "NewRevision".into(), message.clone()))
                && condition(v, "Ready").is_some_and(|c| {
                    c.0 == "Unknown" && c.2 == format!("building artifact: {message}")
                })
        }),
        "no status showed NewRevision while building"
    );
    assert!(
        versions
            .iter()
            .all(|v| condition(v, "ArtifactOutdated").is_none_or(|c| c.1 != "IncludeChange")),
        "the includes did not change"
    );
}
