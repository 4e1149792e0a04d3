//! The apply engine against the real kube-apiserver.

use std::collections::BTreeMap;
use std::time::Duration;

use ferroflux_ssa::{
    Action, ApplyOptions, ObjectRef, PruneOptions, ResourceManager, WaitOptions, inventory_of,
    stale_objects,
};
use ferroflux_testenv::ControlPlane;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

async fn setup(prefix: &str) -> (kube::Client, String, ResourceManager) {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, prefix).await.unwrap();
    let owner = BTreeMap::from([
        (
            "kustomize.toolkit.fluxcd.io/name".to_string(),
            "app".to_string(),
        ),
        (
            "kustomize.toolkit.fluxcd.io/namespace".to_string(),
            ns.clone(),
        ),
    ]);
    let manager = ResourceManager::new(client.clone(), "kustomize-controller", owner);
    (client, ns, manager)
}

fn obj(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

fn configmap(ns: &str, name: &str, value: &str) -> DynamicObject {
    obj(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"key": value}}),
    )
}

fn actions(changes: &ferroflux_ssa::ChangeSet) -> Vec<(String, Action)> {
    changes
        .entries
        .iter()
        .map(|e| (e.object.to_string(), e.action))
        .collect()
}

#[tokio::test]
async fn create_then_unchanged_then_configured_and_drift_reverted() {
    let (client, ns, manager) = setup("ssa-apply").await;
    let opts = ApplyOptions::default();
    let first = manager
        .apply_all_staged(
            vec![configmap(&ns, "a", "1"), configmap(&ns, "b", "1")],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&first),
        vec![
            (format!("ConfigMap/{ns}/a"), Action::Created),
            (format!("ConfigMap/{ns}/b"), Action::Created)
        ]
    );

    let again = manager
        .apply_all_staged(
            vec![configmap(&ns, "a", "1"), configmap(&ns, "b", "1")],
            &opts,
        )
        .await
        .unwrap();
    assert!(
        again.entries.iter().all(|e| e.action == Action::Unchanged),
        "{again:?}"
    );

    // Someone edits `a` by hand: the next apply reverts it and says so.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"key": "edited"}})),
    )
    .await
    .unwrap();
    let reverted = manager
        .apply_all_staged(
            vec![configmap(&ns, "a", "1"), configmap(&ns, "b", "2")],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&reverted),
        vec![
            (format!("ConfigMap/{ns}/a"), Action::Configured),
            (format!("ConfigMap/{ns}/b"), Action::Configured)
        ]
    );
    let a = cms.get("a").await.unwrap();
    assert_eq!(a.data.unwrap()["key"], "1");
    let labels = a.metadata.labels.unwrap();
    assert_eq!(labels["kustomize.toolkit.fluxcd.io/name"], "app");
    let managers: Vec<String> = a
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"kustomize-controller".to_string()),
        "{managers:?}"
    );
}

#[tokio::test]
async fn crds_are_applied_first_and_their_custom_resources_after() {
    let (_, ns, manager) = setup("ssa-stages").await;
    let group = format!("{ns}.example.com");
    let crd = obj(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }));
    let widget = obj(
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 3}}),
    );
    let namespace = obj(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{ns}-extra")}}),
    );
    let cm = configmap(&format!("{ns}-extra"), "in-new-namespace", "x");
    // The custom resource and the object in the new namespace come first in the input.
    let changes = manager
        .apply_all_staged(vec![widget, cm, crd, namespace], &ApplyOptions::default())
        .await
        .unwrap();
    let kinds: Vec<String> = changes
        .entries
        .iter()
        .map(|e| e.object.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "Namespace",
            "Widget",
            "ConfigMap"
        ]
    );
    assert!(changes.entries.iter().all(|e| e.action == Action::Created));
}

#[tokio::test]
async fn an_invalid_object_is_refused_with_its_id_and_the_server_message() {
    let (_, ns, manager) = setup("ssa-invalid").await;
    let bad = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": ns}, "spec": {"ports": [{"port": "http"}]}}),
    );
    let err = manager
        .apply_all_staged(vec![bad], &ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("Service/{ns}/svc")), "{err}");
    assert!(err.contains("dry-run failed"), "{err}");

    let no_ns = obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}));
    let err = manager
        .apply_all_staged(vec![no_ns], &ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ConfigMap/x namespace not specified"), "{err}");

    let unknown = obj(
        json!({"apiVersion": "nope.example.com/v1", "kind": "Thing", "metadata": {"name": "x", "namespace": ns}}),
    );
    let err = manager
        .apply_all_staged(vec![unknown], &ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no matches for kind \"Thing\""), "{err}");
}

#[tokio::test]
async fn immutable_field_changes_recreate_only_when_forced() {
    let (_, ns, manager) = setup("ssa-force").await;
    let svc = |ip: &str| {
        obj(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": ns},
        "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}),
        )
    };
    manager
        .apply_all_staged(vec![svc("10.0.0.50")], &ApplyOptions::default())
        .await
        .unwrap();
    let err = manager
        .apply_all_staged(vec![svc("10.0.0.51")], &ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("may not change once set"), "{err}");
    let forced = ApplyOptions {
        force: true,
        ..Default::default()
    };
    let changes = manager
        .apply_all_staged(vec![svc("10.0.0.51")], &forced)
        .await
        .unwrap();
    assert_eq!(changes.entries[0].action, Action::Created);
}

#[tokio::test]
async fn policies_skip_objects() {
    let (client, ns, manager) = setup("ssa-policy").await;
    let mut ignored = configmap(&ns, "ignored", "1");
    ignored.metadata.annotations = Some(BTreeMap::from([(
        "kustomize.toolkit.fluxcd.io/ssa".into(),
        "Ignore".into(),
    )]));
    let mut once = configmap(&ns, "once", "1");
    once.metadata.annotations = Some(BTreeMap::from([(
        "kustomize.toolkit.fluxcd.io/ssa".into(),
        "IfNotPresent".into(),
    )]));
    let changes = manager
        .apply_all_staged(vec![ignored, once.clone()], &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        changes.entries.iter().map(|e| e.action).collect::<Vec<_>>(),
        [Action::Skipped, Action::Created]
    );
    let mut once_v2 = once;
    once_v2.data = json!({"data": {"key": "2"}});
    let changes = manager
        .apply_all_staged(vec![once_v2], &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(changes.entries[0].action, Action::Skipped);
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    assert!(cms.get_opt("ignored").await.unwrap().is_none());
    assert_eq!(cms.get("once").await.unwrap().data.unwrap()["key"], "1");
}

#[tokio::test]
async fn prune_deletes_only_owned_stale_objects() {
    let (client, ns, manager) = setup("ssa-prune").await;
    let mut keep = configmap(&ns, "keep-me", "1");
    keep.metadata.annotations = Some(BTreeMap::from([(
        "kustomize.toolkit.fluxcd.io/prune".into(),
        "disabled".into(),
    )]));
    let applied = manager
        .apply_all_staged(
            vec![configmap(&ns, "a", "1"), configmap(&ns, "b", "1"), keep],
            &ApplyOptions::default(),
        )
        .await
        .unwrap();
    let old = inventory_of(&applied.applied());
    // Someone else's object that happens to be in the old inventory.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "other"}}}),
        ),
    )
    .await
    .unwrap();
    let new = inventory_of(&[]);
    let stale: Vec<ObjectRef> = stale_objects(&old, &new);
    assert_eq!(stale.len(), 3);
    let (changes, failed) = manager.delete_all(&stale, &PruneOptions::default()).await;
    assert!(failed.is_empty(), "{failed:?}");
    let by_name: BTreeMap<String, Action> = changes
        .entries
        .iter()
        .map(|e| (e.object.name.clone(), e.action))
        .collect();
    assert_eq!(by_name["a"], Action::Deleted);
    assert_eq!(by_name["b"], Action::Skipped);
    assert_eq!(by_name["keep-me"], Action::Skipped);
    assert!(cms.get_opt("b").await.unwrap().is_some());
    assert!(cms.get_opt("keep-me").await.unwrap().is_some());
    // `a` is gone once the API server finished the deletion.
    manager
        .wait_for_termination(&stale[..1], Duration::from_secs(10))
        .await
        .unwrap();
}

#[tokio::test]
async fn wait_reports_current_failed_and_timeouts_with_flux_messages() {
    let (client, ns, manager) = setup("ssa-wait").await;
    let fast = WaitOptions {
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(3),
        fail_fast: true,
    };
    let changes = manager
        .apply_all_staged(vec![configmap(&ns, "ready", "1")], &ApplyOptions::default())
        .await
        .unwrap();
    manager.wait(&changes.applied(), &fast).await.unwrap();

    // No controllers run here, so a Deployment never becomes available: a timeout.
    let deploy = obj(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
    );
    let changes = manager
        .apply_all_staged(vec![deploy], &ApplyOptions::default())
        .await
        .unwrap();
    let err = manager
        .wait(&changes.applied(), &fast)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("timeout waiting for: [Deployment/{ns}/web status: 'InProgress']")
    );

    // A Job marked Failed fails fast.
    let job = obj(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": ns},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox"}]}}}}),
    );
    let changes = manager
        .apply_all_staged(vec![job], &ApplyOptions::default())
        .await
        .unwrap();
    let jobs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kube::discovery::ApiResource::erase::<k8s_openapi::api::batch::v1::Job>(&()),
    );
    jobs.patch_status("migrate", &PatchParams::default(), &Patch::Merge(json!({"status": {
        "startTime": "2024-01-01T00:00:00Z", "failed": 1,
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "x", "lastTransitionTime": "2024-01-01T00:00:00Z"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}))).await.unwrap();
    let slow = WaitOptions {
        timeout: Duration::from_secs(60),
        ..fast
    };
    let started = std::time::Instant::now();
    let err = manager
        .wait(&changes.applied(), &slow)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("failed early due to stalled resources: [Job/{ns}/migrate status: 'Failed']")
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "fail-fast should not wait for the timeout"
    );
}
