//! Helm's release storage on the real API server: a release Secret written with our codec
//! is listed by the real `helm list` and shown by `helm get manifest`, and a release the real
//! `helm install` wrote is decoded by ours.

use std::collections::BTreeMap;
use std::process::Command;

use ferroflux_helm::release;
use ferroflux_testenv::ControlPlane;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn chart_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: greeter\nversion: 1.2.3\nappVersion: \"4.5\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(
        dir.path().join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeter\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .unwrap();
    dir
}

fn helm(cp: &ControlPlane, home: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(ferroflux_testenv::oracle("helm"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig_path)
        .args(args)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn our_release_secrets_and_helms_are_the_same_format() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, "helm-codec").await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let chart_path = chart_dir();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    // Ours → helm.
    let chart = ferroflux_helm::chart::load(chart_path.path()).unwrap();
    let user = ferroflux_helm::user_values(&[], &["greeting=hi".to_string()]).unwrap();
    let options = ferroflux_helm::RenderOptions {
        release: ferroflux_helm::ReleaseOptions {
            name: "ours".into(),
            namespace: ns.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let rendered = ferroflux_helm::render_chart(
        &chart,
        &user,
        &options,
        &mut ferroflux_gotemplate::FixedHost::new(1),
    )
    .unwrap();
    let rel = release::new_install(
        "ours",
        &ns,
        &chart,
        &user,
        &rendered,
        "2026-01-02T03:04:05Z",
    );
    let labels = release::secret_labels(&rel, Some(1_767_323_045), None, &BTreeMap::new()).unwrap();
    let data = release::secret_data(&rel).unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": release::secret_name("ours", 1), "labels": labels},
        "type": release::SECRET_TYPE,
        "stringData": data,
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let list = helm(cp, home.path(), &["list", "-n", &ns, "-o", "json"]);
    let releases: serde_json::Value = serde_json::from_str(&list).unwrap();
    let ours = releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ours")
        .unwrap_or_else(|| panic!("helm list does not show our release: {list}"));
    assert_eq!(ours["status"], "deployed");
    assert_eq!(ours["chart"], "greeter-1.2.3");
    assert_eq!(ours["app_version"], "4.5");
    assert_eq!(ours["revision"], "1");
    let manifest = helm(cp, home.path(), &["get", "manifest", "ours", "-n", &ns]);
    assert_eq!(manifest.trim(), rendered.manifest().trim());
    assert!(
        manifest.contains("name: ours-greeter") && manifest.contains("greeting: \"hi\""),
        "{manifest}"
    );
    let values = helm(
        cp,
        home.path(),
        &["get", "values", "ours", "-n", &ns, "-o", "json"],
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&values).unwrap(),
        json!({"greeting": "hi"})
    );

    // helm → ours.
    helm(
        cp,
        home.path(),
        &[
            "install",
            "theirs",
            &chart_path.path().display().to_string(),
            "-n",
            &ns,
            "--set",
            "greeting=bonjour",
        ],
    );
    let stored = secrets
        .list(&ListParams::default().labels("owner=helm,name=theirs"))
        .await
        .unwrap();
    assert_eq!(stored.items.len(), 1);
    let secret = &stored.items[0];
    assert_eq!(secret.type_.as_deref(), Some(release::SECRET_TYPE));
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("sh.helm.release.v1.theirs.v1")
    );
    let encoded = String::from_utf8(secret.data.as_ref().unwrap()["release"].0.clone()).unwrap();
    let decoded = release::decode(&encoded).unwrap();
    assert_eq!(decoded.name, "theirs");
    assert_eq!(decoded.namespace, ns);
    assert_eq!(decoded.version, 1);
    assert_eq!(decoded.info.as_ref().unwrap().status, "deployed");
    assert!(
        decoded.manifest.contains("name: theirs-greeter")
            && decoded.manifest.contains("greeting: \"bonjour\""),
        "{}",
        decoded.manifest
    );
}
