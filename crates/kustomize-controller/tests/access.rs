//! Who applies, where, and how deletion waits: `serviceAccountName` impersonation under RBAC,
//! `kubeConfig` secrets pointing at a second (real) cluster, and `deletionPolicy:
//! WaitForTermination`. The real control plane, a real artifact server, kustomize-controller
//! as a process.

mod support;

use std::time::Duration;

use ferroflux_testenv::{ControlPlane, StartOptions};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::*;

const T: Duration = Duration::from_secs(60);

fn ks_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  interval: 1h\n  retryInterval: 1h\n  path: ./app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: repo\n{extra}"
    )
}

async fn create<K>(client: &kube::Client, ns: &str, value: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(value).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn service_account_impersonation_applies_only_what_rbac_allows() {
    let env = env("ks-impersonate").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    create::<ServiceAccount>(
        &env.client,
        &env.ns,
        json!({"metadata": {"name": "deployer"}}),
    )
    .await;
    let rev = source.publish(&[("app/a.yaml", &cm("a", "1"))]).await;
    let name = create_ks(
        &env,
        &ks_yaml(
            "app",
            &format!(
                "  targetNamespace: {}\n  serviceAccountName: deployer\n",
                env.ns
            ),
        ),
    )
    .await;

    // The service account may do nothing yet: the apply is refused by the API server, and the
    // message says who was refused what.
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        ready(k).is_some_and(|r| r.0 == "False" && r.2.contains("forbidden"))
    })
    .await;
    let message = ready(&ks).unwrap().2;
    assert!(
        message.contains(&format!("system:serviceaccount:{}:deployer", env.ns)),
        "the refusal names the impersonated account: {message}"
    );
    assert!(
        cms.get_opt("a").await.unwrap().is_none(),
        "nothing is applied past RBAC"
    );

    // Grant ConfigMaps in this namespace only: the same Kustomization now applies.
    create::<Role>(
        &env.client,
        &env.ns,
        json!({"metadata": {"name": "configmaps"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]}),
    )
    .await;
    create::<RoleBinding>(
        &env.client,
        &env.ns,
        json!({"metadata": {"name": "deployer-configmaps"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmaps"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": env.ns}]}),
    )
    .await;
    request_reconcile(&env, &name).await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;
    let applied = cms.get("a").await.unwrap();
    assert_eq!(applied.data.unwrap()["value"], "1");
    assert_eq!(
        applied
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .filter(|m| m.operation.as_deref() == Some("Apply"))
            .map(|m| m.manager.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["kustomize-controller"],
        "applied with the controller's field manager, as the service account"
    );

    // An object outside the grant (a Secret) fails the whole revision and names the object;
    // what was applied before stays.
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: v\n";
    let rev2 = source
        .publish(&[("app/a.yaml", &cm("a", "2")), ("app/s.yaml", secret)])
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
        message.contains(&format!("Secret/{}/s query failed", env.ns))
            && message.contains("forbidden"),
        "the refused object is named: {message}"
    );
    assert!(cms.get_opt("a").await.unwrap().is_some());
}

#[tokio::test]
async fn a_kubeconfig_secret_applies_to_the_remote_cluster_only() {
    let env = env("ks-remote").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let remote = ControlPlane::start(StartOptions {
        install_crds: false,
        ..StartOptions::default()
    })
    .await
    .expect("a second control plane");
    let remote_client = remote.client().await.unwrap();

    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: remote-apps\n";
    let rev = source
        .publish(&[
            ("app/ns.yaml", namespace),
            ("app/a.yaml", &cm("a", "remote")),
        ])
        .await;
    let name = create_ks(
        &env,
        &ks_yaml(
            "app",
            "  targetNamespace: remote-apps\n  kubeConfig:\n    secretRef:\n      name: remote-kubeconfig\n",
        ),
    )
    .await;

    // The Secret is not there yet: a clear failure, then success once it exists.
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        ready(k).is_some_and(|r| r.0 == "False")
    })
    .await;
    let message = ready(&ks).unwrap().2;
    assert!(
        message.contains(&format!("'{}/remote-kubeconfig'", env.ns)),
        "{message}"
    );
    let kubeconfig = std::fs::read_to_string(&remote.kubeconfig_path).unwrap();
    create::<Secret>(
        &env.client,
        &env.ns,
        json!({"metadata": {"name": "remote-kubeconfig"}, "stringData": {"value": kubeconfig}}),
    )
    .await;
    request_reconcile(&env, &name).await;
    let ks = wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;

    let remote_cms: Api<ConfigMap> = Api::namespaced(remote_client.clone(), "remote-apps");
    assert_eq!(
        remote_cms.get("a").await.unwrap().data.unwrap()["value"],
        "remote"
    );
    let local_ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    assert!(
        local_ns.get_opt("remote-apps").await.unwrap().is_none(),
        "nothing lands in the controller's own cluster"
    );
    let ids: Vec<String> = ks
        .status
        .unwrap()
        .inventory
        .unwrap()
        .entries
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert!(
        ids.contains(&"remote-apps_a__ConfigMap".to_string()),
        "{ids:?}"
    );

    // Pruning happens in the remote cluster too.
    let rev2 = source.publish(&[("app/ns.yaml", namespace)]).await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev2)).await;
    let deadline = tokio::time::Instant::now() + T;
    while remote_cms.get_opt("a").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ConfigMap a was not pruned in the remote cluster"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn wait_for_termination_holds_the_kustomization_until_its_objects_are_gone() {
    let env = env("ks-wait-term").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    // A finalizer nobody serves: the ConfigMap stays terminating until the test lifts it.
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata:\n  value: \"1\"\n";
    let rev = source.publish(&[("app/held.yaml", held)]).await;
    let name = create_ks(
        &env,
        &ks_yaml(
            "app",
            &format!(
                "  targetNamespace: {}\n  timeout: 2m\n  deletionPolicy: WaitForTermination\n",
                env.ns
            ),
        ),
    )
    .await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;

    let api = ks_api(&env.client, &env.ns);
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    // The ConfigMap is asked to go, and the Kustomization waits for it.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let cm = cms.get("held").await.unwrap();
        if cm.metadata.deletion_timestamp.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "held was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = api.get_opt(&name).await.unwrap();
    assert!(
        waiting.is_some_and(|k| k.metadata.deletion_timestamp.is_some()),
        "the Kustomization must wait while its objects terminate"
    );

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while api.get_opt(&name).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Kustomization was not finalized after its objects were gone:\n{}",
            controller.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(cms.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn cross_namespace_sources_are_refused_only_with_no_cross_namespace_refs() {
    let env = env("ks-xns").await;
    let other = support::env("ks-xns-src").await;
    let source = Source::new(&other, "repo").await;
    let rev = source.publish(&[("app/a.yaml", &cm("a", "1"))]).await;
    let ks = |name: &str| {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  interval: 1h\n  retryInterval: 1h\n  path: ./app\n  prune: true\n  targetNamespace: {}\n  sourceRef:\n    kind: GitRepository\n    name: repo\n    namespace: {}\n",
            env.ns, other.ns
        )
    };

    // Allowed by default, as in Flux.
    let open = ControllerProcess::start(env.cp, &env.ns);
    let name = create_ks(&env, &ks("allowed")).await;
    wait_ks(&env, &name, T, &open, |k| is_ready_at(k, &rev)).await;
    drop(open);

    // With --no-cross-namespace-refs the same reference is refused, and says why.
    let locked =
        ControllerProcess::start_with(env.cp, &env.ns, &["--no-cross-namespace-refs=true"]);
    let name = create_ks(&env, &ks("refused")).await;
    let refused = wait_ks(&env, &name, T, &locked, |k| {
        ready(k).is_some_and(|r| r.0 == "False")
    })
    .await;
    let (_, reason, message) = ready(&refused).unwrap();
    assert_eq!(reason, "AccessDenied");
    assert_eq!(
        message,
        format!(
            "can't access 'GitRepository/{}/repo', cross-namespace references have been blocked",
            other.ns
        )
    );
    assert!(
        refused
            .status
            .as_ref()
            .and_then(|s| s.last_applied_revision.as_ref())
            .is_none(),
        "nothing is applied through a refused reference"
    );
}
