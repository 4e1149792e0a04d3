//! CEL end to end: `spec.healthCheckExprs` judging a custom resource, `dependsOn[].readyExpr`,
//! invalid expressions, and health checks cancelled by a new reconcile request or revision
//! (`CancelHealthCheckOnNewRevision`). The real control plane, a real artifact server,
//! kustomize-controller as a process.

mod support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::json;
use support::*;

const T: Duration = Duration::from_secs(60);
const GROUP: &str = "cel.ferroflux.test";

/// Installs the Widget CRD (namespaced, with a status subresource) once per control plane.
async fn install_widget_crd(env: &Env) {
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{GROUP}")},
        "spec": {"group": GROUP, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    }))
    .unwrap();
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create CRD: {e}"),
    }
    // Wait until the API serves it.
    let gvk = GroupVersionKind::gvk(GROUP, "v1", "Widget");
    for _ in 0..100 {
        if let Ok(established) = crds.get(&format!("widgets.{GROUP}")).await
            && established
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            && kube::discovery::pinned_kind(&env.client, &gvk)
                .await
                .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the Widget CRD was not established");
}

fn widgets(env: &Env) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Widget"), "widgets");
    Api::namespaced_with(env.client.clone(), &env.ns, &resource)
}

async fn set_widget_phase(env: &Env, name: &str, phase: &str) {
    widgets(env)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase}})),
        )
        .await
        .unwrap();
}

fn widget_yaml(name: &str) -> String {
    format!("apiVersion: {GROUP}/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  size: 1\n")
}

/// Health check expressions for Widgets: phase Running is Current, Crashed is Failed.
/// kstatus alone would call a Widget Current at once (it has no conditions).
const WIDGET_EXPRS: &str = "  healthCheckExprs:\n  - apiVersion: cel.ferroflux.test/v1\n    kind: Widget\n    current: \"has(status.phase) && status.phase == 'Running'\"\n    failed: \"has(status.phase) && status.phase == 'Crashed'\"\n";

fn ks_yaml(name: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  interval: 1h\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: repo\n{extra}"
    )
}

fn condition(
    ks: &ferroflux_api::kustomization::Kustomization,
    type_: &str,
) -> Option<(String, String, String)> {
    let c = ks
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits for a Kubernetes event whose note is `note`.
async fn wait_event(env: &Env, note: &str) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let notes = event_notes(env).await;
        if notes.iter().any(|n| n == note) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("no event {note:?}; events: {notes:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn event_notes(env: &Env) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn health_check_exprs_judge_a_custom_resource() {
    let env = env("ks-cel-health").await;
    install_widget_crd(&env).await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let rev = source
        .publish(&[("app/widget.yaml", &widget_yaml("w1"))])
        .await;
    let extra = format!(
        "  targetNamespace: {}\n  wait: true\n  timeout: 2m\n{WIDGET_EXPRS}",
        env.ns
    );
    let name = create_ks(&env, &ks_yaml("widgets", "./app", &extra)).await;

    // Applied, and the health check waits on the Widget: no phase yet.
    wait_ks(&env, &name, T, &controller, |k| {
        condition(k, "Healthy").is_some_and(|(s, r, m)| {
            s == "Unknown"
                && r == "Progressing"
                && m.starts_with(&format!("Running health checks for revision {rev}"))
        })
    })
    .await;
    assert!(widgets(&env).get_opt("w1").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ks = ks_api(&env.client, &env.ns).get(&name).await.unwrap();
    assert_ne!(
        ready(&ks).map(|r| r.0),
        Some("True".to_string()),
        "the Widget is not Running yet"
    );

    // The `current` shape: Ready.
    set_widget_phase(&env, "w1", "Running").await;
    let ks = wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;
    assert_eq!(ready(&ks).unwrap().2, format!("Applied revision: {rev}"));
    let (healthy, reason, message) = condition(&ks, "Healthy").unwrap();
    assert_eq!((healthy.as_str(), reason.as_str()), ("True", "Succeeded"));
    assert!(message.starts_with("Health check passed in "), "{message}");

    // The `failed` shape: HealthCheckFailed naming the object, without waiting for the
    // timeout (fail-fast).
    set_widget_phase(&env, "w1", "Crashed").await;
    let token = request_reconcile(&env, &name).await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some(token.as_str())
            && ready(k).is_some_and(|r| r.0 == "False")
    })
    .await;
    let expected = format!(
        "failed early due to stalled resources: [Widget/{}/w1 status: 'Failed']",
        env.ns
    );
    assert_eq!(
        ready(&ks).unwrap(),
        ("False".into(), "HealthCheckFailed".into(), expected.clone())
    );
    assert_eq!(
        condition(&ks, "Healthy").unwrap(),
        ("False".into(), "HealthCheckFailed".into(), expected)
    );
    assert!(condition(&ks, "Stalled").is_none());
}

#[tokio::test]
async fn ready_expr_replaces_the_built_in_dependency_check() {
    let env = env("ks-cel-dep").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    let rev = source
        .publish(&[(
            "app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: \"1\"\n",
        )])
        .await;
    // The dependency is suspended and never reconciled: the built-in check would never
    // pass, so only the expression decides.
    create_ks(
        &env,
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: dep\n  annotations:\n    app/version: v1\nspec:\n  suspend: true\n  interval: 1h\n  path: ./app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: repo\n",
    )
    .await;
    let main = format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: main\n  annotations:\n    app/version: v2\nspec:\n  interval: 1h\n  path: ./app\n  prune: true\n  targetNamespace: {}\n  sourceRef:\n    kind: GitRepository\n    name: repo\n  dependsOn:\n  - name: dep\n    readyExpr: \"self.metadata.annotations['app/version'] == dep.metadata.annotations['app/version']\"\n",
        env.ns
    );
    let name = create_ks(&env, &main).await;

    // False: DependencyNotReady, retried, not stalled.
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        ready(k).is_some_and(|r| r.1 == "DependencyNotReady")
    })
    .await;
    assert_eq!(
        ready(&ks).unwrap(),
        (
            "False".into(),
            "DependencyNotReady".into(),
            format!(
                "dependency '{}/dep' is not ready according to readyExpr eval",
                env.ns
            )
        )
    );
    assert!(condition(&ks, "Stalled").is_none());

    // True: the dependent is applied although the dependency is not Ready.
    ks_api(&env.client, &env.ns)
        .patch(
            "dep",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"app/version": "v2"}}})),
        )
        .await
        .unwrap();
    let ks = wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev)).await;
    assert_eq!(ready(&ks).unwrap().2, format!("Applied revision: {rev}"));
    let dep = ks_api(&env.client, &env.ns).get("dep").await.unwrap();
    assert!(ready(&dep).is_none(), "the dependency was never reconciled");
}

#[tokio::test]
async fn invalid_expressions_stall_with_a_clear_message() {
    let env = env("ks-cel-invalid").await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start(env.cp, &env.ns);
    source
        .publish(&[(
            "app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
        )])
        .await;

    // A health check expression that does not parse.
    let bad_health = ks_yaml(
        "bad-health",
        "./app",
        &format!(
            "  targetNamespace: {}\n  wait: true\n  healthCheckExprs:\n  - apiVersion: v1\n    kind: ConfigMap\n    current: \"true\"\n    inProgress: \"foo.\"\n",
            env.ns
        ),
    );
    let name = create_ks(&env, &bad_health).await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        condition(k, "Stalled").is_some_and(|c| c.0 == "True")
    })
    .await;
    let expected = "Reconciliation failed terminally due to configuration error: failed to create custom status evaluator for healthchecks[0]: failed to parse the expression InProgress: failed to parse the CEL expression 'foo.': ERROR: <input>:1:5: Syntax error: no viable alternative at input '.'";
    for type_ in ["Ready", "Stalled"] {
        let (status, reason, message) = condition(&ks, type_).unwrap();
        assert_eq!(status, if type_ == "Ready" { "False" } else { "True" });
        assert_eq!(reason, "InvalidCELExpression");
        assert!(message.starts_with(expected), "{type_}: {message}");
    }
    assert_eq!(
        ks.status.as_ref().unwrap().observed_generation,
        ks.metadata.generation
    );
    assert!(
        ks_api(&env.client, &env.ns)
            .get(&name)
            .await
            .unwrap()
            .status
            .unwrap()
            .inventory
            .is_none(),
        "nothing is applied"
    );

    // A readyExpr naming an undeclared variable.
    create_ks(&env, &ks_yaml("dep", "./app", "  suspend: true\n")).await;
    let bad_dep = ks_yaml(
        "bad-dep",
        "./app",
        "  dependsOn:\n  - name: dep\n    readyExpr: \"self.generation == deps.generation\"\n",
    );
    let name = create_ks(&env, &bad_dep).await;
    let ks = wait_ks(&env, &name, T, &controller, |k| {
        condition(k, "Stalled").is_some_and(|c| c.0 == "True")
    })
    .await;
    let (_, reason, message) = ready(&ks).unwrap();
    assert_eq!(reason, "InvalidCELExpression");
    assert_eq!(
        message,
        "Reconciliation failed terminally due to configuration error: failed to evaluate dependency dep: failed to parse the CEL expression 'self.generation == deps.generation': ERROR: <input>:1:20: undeclared reference to 'deps' (in container '')"
    );
    assert_eq!(condition(&ks, "Stalled").unwrap().1, "InvalidCELExpression");
}

#[tokio::test]
async fn new_request_or_revision_cancels_health_checks() {
    let env = env("ks-cel-cancel").await;
    install_widget_crd(&env).await;
    let source = Source::new(&env, "repo").await;
    let controller = ControllerProcess::start_with(
        env.cp,
        &env.ns,
        &["--feature-gates=CancelHealthCheckOnNewRevision=true"],
    );
    let rev1 = source
        .publish(&[("app/widget.yaml", &widget_yaml("w1"))])
        .await;
    let extra = format!(
        "  targetNamespace: {}\n  wait: true\n  timeout: 5m\n{WIDGET_EXPRS}",
        env.ns
    );
    let name = create_ks(&env, &ks_yaml("widgets", "./app", &extra)).await;
    wait_ks(&env, &name, T, &controller, |k| {
        condition(k, "Healthy").is_some_and(|(s, _, m)| {
            s == "Unknown" && m.starts_with(&format!("Running health checks for revision {rev1}"))
        })
    })
    .await;

    // A reconcile request cancels the wait at once (the timeout is 5 minutes). Ready reads
    // HealthCheckCanceled only until the immediate retry starts (as in Flux): a watch
    // records every Ready the controller writes.
    let seen = record_ready_conditions(&env, &name);
    request_reconcile(&env, &name).await;
    let by_request = format!("Kustomization/{}/{name}", env.ns);
    wait_event(
        &env,
        &format!("Health checks canceled due to new reconciliation triggered by {by_request}"),
    )
    .await;

    // A new revision cancels the (restarted) wait too, and is then applied.
    let rev2 = source
        .publish(&[("app/widget.yaml", &widget_yaml("w2"))])
        .await;
    let by_source = format!("GitRepository/{}/repo", env.ns);
    wait_event(
        &env,
        &format!("Health checks canceled due to new reconciliation triggered by {by_source}"),
    )
    .await;
    wait_ks(&env, &name, T, &controller, |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_attempted_revision.as_deref())
            == Some(rev2.as_str())
    })
    .await;
    set_widget_phase(&env, "w2", "Running").await;
    wait_ks(&env, &name, T, &controller, |k| is_ready_at(k, &rev2)).await;
    let seen = seen.lock().unwrap().clone();
    for trigger in [by_request, by_source] {
        let wanted = (
            "False".to_string(),
            "HealthCheckCanceled".to_string(),
            format!("New reconciliation triggered by {trigger}"),
        );
        assert!(seen.contains(&wanted), "{wanted:?} not in {seen:#?}");
    }
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// Records every distinct Ready condition of a Kustomization from a watch.
fn record_ready_conditions(env: &Env, name: &str) -> Seen {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen: Seen = Default::default();
    let out = seen.clone();
    let stream = watcher(
        ks_api(&env.client, &env.ns),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(ks)) = stream.next().await {
            if let Some(r) = ready(&ks) {
                let mut seen = out.lock().unwrap();
                if !seen.contains(&r) {
                    seen.push(r);
                }
            }
        }
    });
    seen
}
