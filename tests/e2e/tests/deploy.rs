//! `deploy/` installs into a real cluster: it builds with kubectl's kustomize and with
//! ours to the same objects, and the API server accepts every object (server-side dry-run).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use ferroflux_testenv::{ControlPlane, workspace_root};
use kube::api::DynamicObject;
use serde::Deserialize;

fn deploy_dir() -> PathBuf {
    workspace_root().join("deploy")
}

fn kubectl_kustomize() -> Vec<serde_yaml::Value> {
    let out = Command::new(ferroflux_testenv::oracle("kubectl"))
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_slice(&out.stdout)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn our_kustomize_builds_deploy_like_kubectl() {
    let theirs = kubectl_kustomize();
    let ours = ferroflux_kustomize::build(
        &ferroflux_kustomize::DiskFs,
        &deploy_dir(),
        &Default::default(),
    )
    .expect("ferroflux kustomize build deploy/");
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b);
    }
    let kinds: BTreeMap<String, usize> = theirs.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
        m
    });
    assert_eq!(kinds["Deployment"], 4);
    assert_eq!(kinds["CustomResourceDefinition"], 11);
    assert_eq!(kinds["Service"], 3);
    // What `flux check` looks for.
    for o in theirs
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "CustomResourceDefinition")
    {
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/part-of"].as_str(),
            Some("flux"),
            "{:?}",
            o["metadata"]["name"]
        );
    }
}

#[tokio::test]
async fn every_deploy_object_passes_a_server_side_dry_run() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let objects: Vec<DynamicObject> = kubectl_kustomize()
        .into_iter()
        .map(|v| serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap())
        .collect();
    let manager =
        ferroflux_ssa::ResourceManager::new(client.clone(), "ferroflux-e2e", BTreeMap::new());
    // The namespace must exist for namespaced dry-runs; everything else is only dry-run.
    let (namespace, rest): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| o.types.as_ref().is_some_and(|t| t.kind == "Namespace"));
    manager
        .apply_all_staged(namespace, &Default::default())
        .await
        .expect("create flux-system");
    for obj in rest {
        let id = ferroflux_ssa::ObjectRef::of(&obj).unwrap();
        manager
            .dry_run(&obj)
            .await
            .unwrap_or_else(|e| panic!("{id} refused by the API server: {e}"));
    }
}
