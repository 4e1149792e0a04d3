//! The CRDs on the real kube-apiserver: accepted, serving every sample, validating like
//! Flux's, printing Flux's columns.

use std::process::Command;

use ferroflux_testenv::ControlPlane;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;

mod samples;

async fn setup(prefix: &str) -> (kube::Client, String) {
    let cp = ControlPlane::shared();
    let client = cp.client().await.expect("client");
    let ns = cp.namespace(&client, prefix).await.expect("namespace");
    (client, ns)
}

fn api_for(client: &kube::Client, ns: &str, doc: &serde_json::Value) -> Api<DynamicObject> {
    let (group, version) = doc["apiVersion"].as_str().unwrap().split_once('/').unwrap();
    let kind = doc["kind"].as_str().unwrap();
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let plural = match kind {
        "GitRepository" => "gitrepositories".to_string(),
        "OCIRepository" => "ocirepositories".to_string(),
        "HelmRepository" => "helmrepositories".to_string(),
        other => format!("{}s", other.to_ascii_lowercase()),
    };
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    )
}

#[tokio::test]
async fn every_crd_is_accepted_and_established_with_flux_labels() {
    let (client, _) = setup("crds").await;
    let cp = ControlPlane::shared();
    println!(
        "control plane {} ready (CRDs installed) in {:?}",
        cp.version, cp.start_time
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let ours = ferroflux_api::crds::all();
    assert_eq!(ours.len(), 11);
    for entry in ours {
        let name = entry.crd.metadata.name.clone().unwrap();
        let live = crds
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} is not installed: {e}"));
        let status = live.status.expect("status");
        assert!(
            status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name} is not Established"
        );
        let labels = live.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get("app.kubernetes.io/part-of").map(String::as_str),
            Some("flux"),
            "{name}"
        );
        assert!(
            labels.contains_key("app.kubernetes.io/version"),
            "{name} lacks the version label"
        );
        assert_eq!(
            status
                .stored_versions
                .unwrap_or_default()
                .last()
                .map(String::as_str),
            Some(entry.crd.spec.versions[0].name.as_str())
        );
    }
    // `flux check` finds CRDs by label.
    let listed = crds
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/part-of=flux"))
        .await
        .unwrap();
    assert!(listed.items.len() >= 11);
}

#[tokio::test]
async fn every_current_sample_is_created_and_read_back_field_for_field() {
    let (client, ns) = setup("samples").await;
    let mut created = 0;
    for (name, doc) in samples::samples() {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let current = matches!(
            api_version.as_str(),
            "source.toolkit.fluxcd.io/v1"
                | "kustomize.toolkit.fluxcd.io/v1"
                | "helm.toolkit.fluxcd.io/v2"
                | "notification.toolkit.fluxcd.io/v1beta3"
                | "notification.toolkit.fluxcd.io/v1"
        );
        let mut json: serde_json::Value = serde_json::to_value(&doc).unwrap();
        if !current || json["spec"].get("interval").is_none() && json["kind"] != "ExternalArtifact"
        {
            continue; // older API versions (no conversion yet) and kustomize patches over a base
        }
        json["metadata"]["namespace"] = ns.clone().into();
        json["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        // Drop the field Flux removed from Kustomization v1; checked separately below.
        if let Some(spec) = json["spec"].as_object_mut() {
            spec.remove("patchesStrategicMerge");
        }
        let obj: DynamicObject = serde_json::from_value(json.clone()).unwrap();
        let api = api_for(&client, &ns, &json);
        let obj_name = obj.metadata.name.clone().unwrap();
        let back = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{name}: create failed: {e}"));
        let back = serde_json::to_value(&back).unwrap();
        let mut lost = Vec::new();
        diff(&json["spec"], &back["spec"], ".spec", &mut lost);
        assert!(
            lost.is_empty(),
            "{name}: fields changed or lost on the server: {lost:?}"
        );
        api.delete(&obj_name, &Default::default()).await.unwrap();
        created += 1;
    }
    assert!(
        created >= 20,
        "expected at least 20 complete samples, created {created}"
    );
}

fn diff(
    expected: &serde_json::Value,
    actual: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    match (expected, actual) {
        (serde_json::Value::Object(e), serde_json::Value::Object(a)) => {
            for (k, v) in e {
                match a.get(k) {
                    Some(av) => diff(v, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} missing")),
                }
            }
        }
        (e, a) if e != a => out.push(format!("{path}: {e} != {a}")),
        _ => {}
    }
}

#[tokio::test]
async fn a_removed_field_is_reported_not_silently_kept() {
    let (client, ns) = setup("removed").await;
    let doc = serde_json::json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "legacy", "namespace": ns},
        "spec": {"interval": "5m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "app"},
                 "patchesStrategicMerge": [{"kind": "Deployment"}]}
    });
    let api = api_for(&client, &ns, &doc);
    let strict = PatchParams::apply("test").validation_strict();
    let err = api
        .patch("legacy", &strict, &Patch::Apply(&doc))
        .await
        .expect_err("strict apply must refuse the field");
    assert!(
        err.to_string().contains("patchesStrategicMerge"),
        "error should name the field: {err}"
    );
}

/// (description, object, text the API server's message must contain)
fn invalid_objects(ns: &str) -> Vec<(&'static str, serde_json::Value, &'static str)> {
    use serde_json::json;
    let git = |spec: serde_json::Value| json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "bad", "namespace": ns}, "spec": spec});
    let ks = |spec: serde_json::Value| json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "bad", "namespace": ns}, "spec": spec});
    let hr = |spec: serde_json::Value| json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "bad", "namespace": ns}, "spec": spec});
    let chart = json!({"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}});
    let src = json!({"kind": "GitRepository", "name": "app"});
    vec![
        (
            "interval pattern",
            git(json!({"url": "https://example.com/r", "interval": "1x"})),
            "spec.interval",
        ),
        (
            "missing url",
            git(json!({"interval": "1m"})),
            "spec.url: Required value",
        ),
        (
            "url scheme",
            git(json!({"url": "ftp://example.com/r", "interval": "1m"})),
            "spec.url",
        ),
        (
            "timeout with hours",
            git(json!({"url": "https://example.com/r", "interval": "1m", "timeout": "1h"})),
            "spec.timeout",
        ),
        (
            "git provider enum",
            git(json!({"url": "https://example.com/r", "interval": "1m", "provider": "gitlab"})),
            "spec.provider",
        ),
        (
            "serviceAccountName needs azure/aws",
            git(
                json!({"url": "https://example.com/r", "interval": "1m", "serviceAccountName": "sa"}),
            ),
            "serviceAccountName can only be set when provider is 'azure' or 'aws'",
        ),
        (
            "verify mode enum",
            git(
                json!({"url": "https://example.com/r", "interval": "1m", "verify": {"mode": "Commit", "secretRef": {"name": "k"}}}),
            ),
            "spec.verify.mode",
        ),
        (
            "oci url scheme",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": {"name": "bad", "namespace": ns}, "spec": {"url": "https://ghcr.io/x", "interval": "1m"}}),
            "spec.url",
        ),
        (
            "helmrepository url scheme",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": {"name": "bad", "namespace": ns}, "spec": {"url": "ftp://charts"}}),
            "spec.url",
        ),
        (
            "helmchart verify needs HelmRepository",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart", "metadata": {"name": "bad", "namespace": ns}, "spec": {"chart": "./c", "interval": "1m", "sourceRef": {"kind": "GitRepository", "name": "g"}, "verify": {"provider": "cosign"}}}),
            "spec.verify is only supported when spec.sourceRef.kind is 'HelmRepository'",
        ),
        (
            "bucket sts provider",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket", "metadata": {"name": "bad", "namespace": ns}, "spec": {"bucketName": "b", "endpoint": "e", "interval": "1m", "provider": "gcp", "sts": {"provider": "aws", "endpoint": "https://sts"}}}),
            "STS configuration is only supported for the 'aws' and 'generic' Bucket providers",
        ),
        (
            "bucket secretRef and serviceAccountName",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket", "metadata": {"name": "bad", "namespace": ns}, "spec": {"bucketName": "b", "endpoint": "e", "interval": "1m", "provider": "aws", "secretRef": {"name": "s"}, "serviceAccountName": "sa"}}),
            "cannot set both .spec.secretRef and .spec.serviceAccountName",
        ),
        (
            "ks missing prune",
            ks(json!({"interval": "5m", "sourceRef": src})),
            "spec.prune: Required value",
        ),
        (
            "ks sourceRef kind enum",
            ks(
                json!({"interval": "5m", "prune": true, "sourceRef": {"kind": "HelmRepository", "name": "x"}}),
            ),
            "spec.sourceRef.kind",
        ),
        (
            "ks namePrefix minLength",
            ks(json!({"interval": "5m", "prune": true, "sourceRef": src, "namePrefix": ""})),
            "spec.namePrefix",
        ),
        (
            "ks kubeConfig needs one ref",
            ks(json!({"interval": "5m", "prune": true, "sourceRef": src, "kubeConfig": {}})),
            "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be specified",
        ),
        (
            "ks kubeConfig not both refs",
            ks(
                json!({"interval": "5m", "prune": true, "sourceRef": src, "kubeConfig": {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}}),
            ),
            "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be specified",
        ),
        (
            "ks deletionPolicy enum",
            ks(
                json!({"interval": "5m", "prune": true, "sourceRef": src, "deletionPolicy": "Never"}),
            ),
            "spec.deletionPolicy",
        ),
        (
            "ks substituteFrom kind enum",
            ks(
                json!({"interval": "5m", "prune": true, "sourceRef": src, "postBuild": {"substituteFrom": [{"kind": "Pod", "name": "x"}]}}),
            ),
            "spec.postBuild.substituteFrom[0].kind",
        ),
        (
            "hr chart and chartRef",
            hr(
                json!({"interval": "5m", "chart": chart, "chartRef": {"kind": "OCIRepository", "name": "p"}}),
            ),
            "either chart or chartRef must be set",
        ),
        (
            "hr neither chart nor chartRef",
            hr(json!({"interval": "5m"})),
            "either chart or chartRef must be set",
        ),
        (
            "hr install retryInterval with RemediateOnFailure",
            hr(
                json!({"interval": "5m", "chart": chart, "install": {"strategy": {"name": "RemediateOnFailure", "retryInterval": "1m"}}}),
            ),
            ".retryInterval cannot be set when .name is 'RemediateOnFailure'",
        ),
        (
            "hr upgrade retryInterval needs RetryOnFailure",
            hr(
                json!({"interval": "5m", "chart": chart, "upgrade": {"strategy": {"name": "RemediateOnFailure", "retryInterval": "1m"}}}),
            ),
            ".retryInterval can only be set when .name is 'RetryOnFailure'",
        ),
        (
            "hr kubeConfig needs one ref",
            hr(json!({"interval": "5m", "chart": chart, "kubeConfig": {}})),
            "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be specified",
        ),
        (
            "hr releaseName maxLength",
            hr(json!({"interval": "5m", "chart": chart, "releaseName": "x".repeat(54)})),
            "spec.releaseName",
        ),
        (
            "hr valuesFrom targetPath pattern",
            hr(
                json!({"interval": "5m", "chart": chart, "valuesFrom": [{"kind": "ConfigMap", "name": "v", "targetPath": "a b"}]}),
            ),
            "spec.valuesFrom[0].targetPath",
        ),
        (
            "hr chartRef kind enum",
            hr(json!({"interval": "5m", "chartRef": {"kind": "GitRepository", "name": "p"}})),
            "spec.chartRef.kind",
        ),
        (
            "provider type enum",
            json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider", "metadata": {"name": "bad", "namespace": ns}, "spec": {"type": "email"}}),
            "spec.type",
        ),
        (
            "provider commitStatusExpr needs a git provider",
            json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider", "metadata": {"name": "bad", "namespace": ns}, "spec": {"type": "slack", "commitStatusExpr": "'x'"}}),
            "spec.commitStatusExpr is only supported for the 'github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops' provider types",
        ),
        (
            "alert eventSources kind enum",
            json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert", "metadata": {"name": "bad", "namespace": ns}, "spec": {"providerRef": {"name": "p"}, "eventSources": [{"kind": "Pod", "name": "*"}]}}),
            "spec.eventSources[0].kind",
        ),
        (
            "alert missing providerRef",
            json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert", "metadata": {"name": "bad", "namespace": ns}, "spec": {"eventSources": []}}),
            "spec.providerRef: Required value",
        ),
        (
            "receiver generic-oidc needs oidcProviders",
            json!({"apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver", "metadata": {"name": "bad", "namespace": ns}, "spec": {"type": "generic-oidc", "resources": []}}),
            "generic-oidc receivers must define at least one oidcProvider",
        ),
        (
            "receiver secretRef required",
            json!({"apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver", "metadata": {"name": "bad", "namespace": ns}, "spec": {"type": "github", "resources": []}}),
            "secretRef is required when type is not generic-oidc",
        ),
        (
            "receiver oidcProviders only for generic-oidc",
            json!({"apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver", "metadata": {"name": "bad", "namespace": ns}, "spec": {"type": "github", "secretRef": {"name": "t"}, "resources": [], "oidcProviders": [{"issuerURL": "https://i", "validations": [{"expression": "true", "message": "m"}]}]}}),
            "oidcProviders can only be set when type is generic-oidc",
        ),
    ]
}

#[tokio::test]
async fn the_api_server_rejects_invalid_objects_with_flux_messages() {
    let (client, ns) = setup("invalid").await;
    let mut wrong = Vec::new();
    let cases = invalid_objects(&ns);
    assert!(cases.len() >= 30);
    for (what, doc, expected) in cases {
        let api = api_for(&client, &ns, &doc);
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {
                wrong.push(format!("{what}: accepted"));
                let _ = api.delete("bad", &Default::default()).await;
            }
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expected) => {}
            Err(err) => wrong.push(format!(
                "{what}: expected 422 containing {expected:?}, got {err}"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "validation differs from Flux:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn kubectl_prints_flux_columns_and_the_fluxcd_category_lists_every_kind() {
    let (client, ns) = setup("kubectl").await;
    let cp = ControlPlane::shared();
    for doc in [
        serde_json::json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "podinfo", "namespace": ns}, "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "1m", "ref": {"branch": "master"}}}),
        serde_json::json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "podinfo", "namespace": ns}, "spec": {"interval": "5m", "prune": true, "path": "./kustomize", "sourceRef": {"kind": "GitRepository", "name": "podinfo"}}}),
        serde_json::json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "podinfo", "namespace": ns}, "spec": {"interval": "5m", "chartRef": {"kind": "OCIRepository", "name": "podinfo"}}}),
    ] {
        let api = api_for(&client, &ns, &doc);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(doc).unwrap(),
        )
        .await
        .unwrap();
    }
    let kubectl = |args: &[&str]| {
        let out = Command::new(ferroflux_testenv::oracle("kubectl"))
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig_path)
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let git = kubectl(&["get", "gitrepositories", "-n", &ns]);
    let header: Vec<&str> = git.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "URL", "AGE", "READY", "STATUS"], "{git}");
    assert!(git.contains("https://github.com/stefanprodan/podinfo"));
    let ks = kubectl(&["get", "ks", "-n", &ns]);
    assert_eq!(
        ks.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["NAME", "AGE", "READY", "STATUS"],
        "{ks}"
    );
    let all = kubectl(&["get", "fluxcd", "-n", &ns]);
    for kind in [
        "gitrepository.source.toolkit.fluxcd.io/podinfo",
        "kustomization.kustomize.toolkit.fluxcd.io/podinfo",
        "helmrelease.helm.toolkit.fluxcd.io/podinfo",
    ] {
        assert!(
            all.contains(kind),
            "`kubectl get fluxcd` lacks {kind}:\n{all}"
        );
    }
    // Four Flux API groups are discovered, and the short names resolve.
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert_eq!(
        discovery
            .groups()
            .filter(|g| g.name().ends_with("toolkit.fluxcd.io"))
            .count(),
        4
    );
    assert!(kubectl(&["get", "hr", "-n", &ns]).contains("podinfo"));
    assert!(kubectl(&["get", "gitrepo", "-n", &ns]).contains("podinfo"));
}
