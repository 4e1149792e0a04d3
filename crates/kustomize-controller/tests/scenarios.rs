//! Kustomization scenarios end to end (SCENARIOS.md S2–S4): the real control plane, a real
//! artifact server, kustomize-controller as a process.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::*;

const T: Duration = Duration::from_secs(60);

fn ks_yaml(name: &str, source: &str, extra: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  interval: 1h\n  path: ./app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: {source}\n{extra}"
    )
}

#[tokio::test]
async fn sync_update_prune_drift_failures_and_deletion() {
    let env = env("ks-sync").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);

    // S2: sync.
    let rev1 = source
        .publish(&[("app/a.yaml", &cm("a", "1")), ("app/b.yaml", &cm("b", "1"))])
        .await;
    let name = create_ks(
        &env,
        &ks_yaml("app", "repo", &format!("  targetNamespace: {}\n", env.ns)),
    )
    .await;
    let ks = wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev1)).await;
    assert_eq!(ready(&ks).unwrap().2, format!("Applied revision: {rev1}"));
    let ids: Vec<String> = ks
        .status
        .as_ref()
        .unwrap()
        .inventory
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            format!("{}_a__ConfigMap", env.ns),
            format!("{}_b__ConfigMap", env.ns)
        ]
    );
    let a = cms.get("a").await.unwrap();
    assert_eq!(
        a.metadata.labels.as_ref().unwrap()["kustomize.toolkit.fluxcd.io/name"],
        "app"
    );
    assert!(
        ks.status
            .as_ref()
            .unwrap()
            .history
            .as_ref()
            .is_some_and(|h| !h.is_empty())
    );

    // A new revision is applied at once (the controller watches sources), and a file
    // removed from the source is pruned.
    let rev2 = source.publish(&[("app/a.yaml", &cm("a", "2"))]).await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev2)).await;
    assert_eq!(cms.get("a").await.unwrap().data.unwrap()["value"], "2");
    assert!(
        cms.get_opt("b").await.unwrap().is_none(),
        "b was removed from the source and must be pruned"
    );

    // Drift is reverted at the next reconcile.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"value": "edited by hand"}})),
    )
    .await
    .unwrap();
    let token = request_reconcile(&env, &name).await;
    wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some(token.as_str())
    })
    .await;
    assert_eq!(cms.get("a").await.unwrap().data.unwrap()["value"], "2");

    // Broken YAML: Ready=False BuildFailed, nothing applied is touched.
    let rev3 = source
        .publish(&[
            ("app/a.yaml", &cm("a", "3")),
            ("app/broken.yaml", "kind: [unclosed\n"),
        ])
        .await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_attempted_revision.as_deref())
            == Some(rev3.as_str())
            && ready(k).is_some_and(|r| r.0 == "False")
    })
    .await;
    let (_, reason, message) = ready(&ks).unwrap();
    assert_eq!(reason, "BuildFailed");
    assert!(message.contains("broken.yaml"), "{message}");
    assert_eq!(
        ks.status.as_ref().unwrap().last_applied_revision.as_deref(),
        Some(rev2.as_str())
    );
    assert_eq!(cms.get("a").await.unwrap().data.unwrap()["value"], "2");

    // An object the API server rejects: Ready=False naming it; nothing pruned.
    let bad_service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: \"http\"\n";
    let rev4 = source
        .publish(&[("app/a.yaml", &cm("a", "2")), ("app/svc.yaml", bad_service)])
        .await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_attempted_revision.as_deref())
            == Some(rev4.as_str())
            && ready(k).is_some_and(|r| r.0 == "False")
    })
    .await;
    let (_, reason, message) = ready(&ks).unwrap();
    assert_eq!(reason, "ReconciliationFailed");
    assert!(
        message.contains(&format!("Service/{}/web", env.ns)),
        "{message}"
    );
    assert!(cms.get_opt("a").await.unwrap().is_some());

    // A source that suddenly builds to nothing never prunes the cluster.
    let rev5 = source.publish(&[("app/README.md", "nothing here")]).await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_attempted_revision.as_deref())
            == Some(rev5.as_str())
            && ready(k).is_some_and(|r| r.0 == "False")
    })
    .await;
    assert_eq!(ready(&ks).unwrap().1, "PruneFailed");
    assert!(cms.get_opt("a").await.unwrap().is_some());

    // Deleting the Kustomization (prune: true, MirrorPrune) deletes what it applied.
    let rev6 = source.publish(&[("app/a.yaml", &cm("a", "6"))]).await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev6)).await;
    ks_api(&env.client, &env.ns)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while cms.get_opt("a").await.unwrap().is_some()
        || ks_api(&env.client, &env.ns)
            .get_opt(&name)
            .await
            .unwrap()
            .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "objects were not deleted with the Kustomization:\n{}",
            controller.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn suspend_resume_and_orphan_deletion() {
    let env = env("ks-suspend").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let rev1 = source.publish(&[("app/a.yaml", &cm("a", "1"))]).await;
    let name = create_ks(
        &env,
        &ks_yaml(
            "app",
            "repo",
            &format!("  targetNamespace: {}\n  deletionPolicy: Orphan\n", env.ns),
        ),
    )
    .await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev1)).await;

    let api = ks_api(&env.client, &env.ns);
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rev2 = source.publish(&[("app/a.yaml", &cm("a", "2"))]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        cms.get("a").await.unwrap().data.unwrap()["value"],
        "1",
        "a suspended Kustomization must not apply"
    );

    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev2)).await;
    assert_eq!(cms.get("a").await.unwrap().data.unwrap()["value"], "2");

    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while api.get_opt(&name).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        cms.get_opt("a").await.unwrap().is_some(),
        "deletionPolicy Orphan keeps the objects"
    );
}

#[tokio::test]
async fn depends_on_waits_for_the_dependency_at_the_same_revision() {
    let env = env("ks-deps").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let rev = source
        .publish(&[
            ("app/a.yaml", &cm("a", "1")),
            ("infra/ns.yaml", &cm("infra", "1")),
        ])
        .await;
    let apps = create_ks(
        &env,
        &ks_yaml(
            "apps",
            "repo",
            &format!(
                "  targetNamespace: {}\n  retryInterval: 2s\n  dependsOn:\n  - name: infra\n",
                env.ns
            ),
        ),
    )
    .await;
    let ks = wait_ks(&env, &apps, T, &controller, |k| {
        ready(k).is_some_and(|r| r.1 == "DependencyNotReady")
    })
    .await;
    assert!(
        ready(&ks)
            .unwrap()
            .2
            .contains(&format!("dependency '{}/infra' not found", env.ns)),
        "{:?}",
        ready(&ks)
    );
    let infra = ks_yaml("infra", "repo", &format!("  targetNamespace: {}\n", env.ns))
        .replace("path: ./app", "path: ./infra");
    create_ks(&env, &infra).await;
    wait_ks(&env, "infra", T, &controller, |k| is_ready_at(k, &rev)).await;
    wait_ks(&env, &apps, T, &controller, |k| is_ready_at(k, &rev)).await;
}

#[tokio::test]
async fn patches_target_namespace_and_substitution_from_configmap_and_secret() {
    let env = env("ks-subst").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "vars"}, "data": {"ENV": "production"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.client.clone(), &env.ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "secret-vars"}, "stringData": {"TOKEN": "s3cr3t"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let settings = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  env: ${ENV}\n  token: ${TOKEN}\n  region: ${REGION:=eu-west-1}\n  literal: $${NOT_A_VAR}\n";
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";
    let rev = source
        .publish(&[("app/settings.yaml", settings), ("app/svc.yaml", svc)])
        .await;
    let extra = format!(
        "  targetNamespace: {}\n  patches:\n  - patch: |\n      - op: replace\n        path: /spec/ports/0/port\n        value: 8080\n    target:\n      kind: Service\n  postBuild:\n    substitute:\n      EXTRA: x\n    substituteFrom:\n    - kind: ConfigMap\n      name: vars\n    - kind: Secret\n      name: secret-vars\n    - kind: ConfigMap\n      name: missing-but-optional\n      optional: true\n",
        env.ns
    );
    let name = create_ks(&env, &ks_yaml("app", "repo", &extra)).await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;
    let data = cms.get("settings").await.unwrap().data.unwrap();
    assert_eq!(data["env"], "production");
    assert_eq!(data["token"], "s3cr3t");
    assert_eq!(data["region"], "eu-west-1");
    assert_eq!(data["literal"], "${NOT_A_VAR}");
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
    assert_eq!(
        services
            .get("web")
            .await
            .unwrap()
            .spec
            .unwrap()
            .ports
            .unwrap()[0]
            .port,
        8080
    );
}

#[tokio::test]
async fn health_check_timeout_names_the_object_and_keeps_the_last_good_state() {
    let env = env("ks-health").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    // No kube-controller-manager runs here: a Deployment never becomes available.
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n";
    let rev = source
        .publish(&[("app/deploy.yaml", deploy), ("app/a.yaml", &cm("a", "1"))])
        .await;
    let name = create_ks(
        &env,
        &ks_yaml(
            "app",
            "repo",
            &format!(
                "  targetNamespace: {}\n  wait: true\n  timeout: 4s\n  retryInterval: 1h\n",
                env.ns
            ),
        ),
    )
    .await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        ready(k).is_some_and(|r| r.1 == "HealthCheckFailed")
    })
    .await;
    let message = ready(&ks).unwrap().2;
    assert!(
        message.contains(&format!("Deployment/{}/web status: 'InProgress'", env.ns)),
        "{message}"
    );
    assert_eq!(
        ks.status
            .as_ref()
            .unwrap()
            .last_attempted_revision
            .as_deref(),
        Some(rev.as_str())
    );
    let healthy = ks
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Healthy")
        .cloned()
        .unwrap();
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("False", "HealthCheckFailed")
    );
}

#[tokio::test]
async fn a_labelled_configmap_change_reconciles_its_readers_at_once() {
    let env = env("ks-watch").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "vars", "labels": {"reconcile.fluxcd.io/watch": "Enabled"}}, "data": {"COLOR": "blue"}})).unwrap(),
    )
    .await
    .unwrap();
    let rev = source.publish(&[("app/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: ${COLOR}\n")]).await;
    let extra = format!(
        "  targetNamespace: {}\n  postBuild:\n    substituteFrom:\n    - kind: ConfigMap\n      name: vars\n",
        env.ns
    );
    let name = create_ks(&env, &ks_yaml("app", "repo", &extra)).await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["color"],
        "blue"
    );
    // The interval is 1h: only the watch can bring the change in quickly.
    cms.patch(
        "vars",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"COLOR": "green"}})),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while cms.get("settings").await.unwrap().data.unwrap()["color"] != "green" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the labelled ConfigMap change was not applied:\n{}",
            controller.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The real `sops` and `age-keygen` from tests/tools/build-sops.sh.
fn sops_tools() -> std::path::PathBuf {
    static TOOLS: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let root = ferroflux_testenv::workspace_root();
            let out = root.join("target/tools");
            let status = std::process::Command::new("bash")
                .arg(root.join("tests/tools/build-sops.sh"))
                .arg(&out)
                .status()
                .expect("run build-sops.sh");
            assert!(
                status.success(),
                "tests/tools/build-sops.sh failed: {status}"
            );
            out
        })
        .clone()
}

#[tokio::test]
async fn a_sops_encrypted_secret_is_decrypted_with_an_age_key() {
    let tools = sops_tools();
    let work = tempfile::tempdir().unwrap();
    let key_file = work.path().join("age.agekey");
    let out = std::process::Command::new(tools.join("age-keygen"))
        .arg("-o")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::fs::read_to_string(&key_file).unwrap();
    let recipient = key
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .trim()
        .to_string();
    let plain = work.path().join("secret.yaml");
    std::fs::write(
        &plain,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n",
    )
    .unwrap();
    let out = std::process::Command::new(tools.join("sops"))
        .args([
            "--encrypt",
            "--age",
            &recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
        ])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let encrypted = String::from_utf8(out.stdout).unwrap();
    assert!(!encrypted.contains("hunter2"));

    let env = env("ks-sops").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.client.clone(), &env.ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "sops-age"}, "stringData": {"age.agekey": key}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let rev = source.publish(&[("app/secret.yaml", &encrypted)]).await;
    let extra = format!(
        "  targetNamespace: {}\n  decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n",
        env.ns
    );
    let name = create_ks(&env, &ks_yaml("app", "repo", &extra)).await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;
    let secret = secrets.get("db").await.unwrap();
    assert_eq!(secret.data.unwrap()["password"].0, b"hunter2");

    // The wrong key: Ready=False naming the Secret, the applied Secret is untouched.
    let other = std::process::Command::new(tools.join("age-keygen"))
        .output()
        .unwrap();
    let other_key = String::from_utf8(other.stdout).unwrap();
    secrets
        .patch(
            "sops-age",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"age.agekey": other_key}})),
        )
        .await
        .unwrap();
    let rev2 = source
        .publish(&[
            ("app/secret.yaml", &encrypted),
            ("app/cm.yaml", &cm("x", "1")),
        ])
        .await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_attempted_revision.as_deref())
            == Some(rev2.as_str())
            && ready(k).is_some_and(|r| r.0 == "False")
    })
    .await;
    let message = ready(&ks).unwrap().2;
    assert!(
        message.contains(&format!("Secret/{}/db: decryption failed", env.ns)),
        "{message}"
    );
    assert_eq!(
        secrets.get("db").await.unwrap().data.unwrap()["password"].0,
        b"hunter2"
    );
}

#[tokio::test]
async fn fields_added_with_kubectl_are_removed_unless_the_object_merges() {
    let env = env("ks-cleanup").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let merged = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: merged\n  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: Merge\ndata:\n  value: \"1\"\n";
    let rev = source
        .publish(&[("app/a.yaml", &cm("a", "1")), ("app/merged.yaml", merged)])
        .await;
    let name = create_ks(
        &env,
        &ks_yaml("app", "repo", &format!("  targetNamespace: {}\n", env.ns)),
    )
    .await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;

    // What `kubectl edit` and `kubectl apply` leave behind: fields owned by kubectl managers
    // and the last-applied annotation.
    for cm_name in ["a", "merged"] {
        cms.patch(
            cm_name,
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"metadata": {
                "labels": {"added": "by-hand"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "data": {"extra": "x"}})),
        )
        .await
        .unwrap();
    }
    let token = request_reconcile(&env, &name).await;
    wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some(token.as_str())
            && is_ready_at(k, &rev)
    })
    .await;

    let a = cms.get("a").await.unwrap();
    assert_eq!(
        a.data.clone().unwrap().into_keys().collect::<Vec<_>>(),
        ["value"],
        "the field added by hand is removed"
    );
    assert!(
        !a.metadata
            .labels
            .clone()
            .unwrap_or_default()
            .contains_key("added")
    );
    assert!(
        !a.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );
    let managers: Vec<String> = a
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().all(|m| !m.starts_with("kubectl")),
        "{managers:?}"
    );

    // `ssa: Merge` keeps what others added.
    let kept = cms.get("merged").await.unwrap();
    assert_eq!(kept.data.unwrap()["extra"], "x");
    assert_eq!(kept.metadata.labels.unwrap()["added"], "by-hand");
}
