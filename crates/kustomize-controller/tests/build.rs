//! The Kustomization build pipeline on real directories.

use std::collections::BTreeMap;
use std::path::Path;

use ferroflux_api::kustomization::KustomizationSpec;
use ferroflux_kustomize_controller::build::build;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

fn spec(yaml: &str) -> KustomizationSpec {
    serde_yaml::from_str(yaml).unwrap()
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: ${REPLICAS:=1}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n";

#[test]
fn generates_a_kustomization_and_applies_the_spec_overlays() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("apps/web/deploy.yaml", DEPLOY),
            (
                "apps/web/svc.yml",
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n",
            ),
            ("apps/web/README.md", "not yaml"),
            (
                "apps/web/nested/kustomization.yaml",
                "resources: [cm.yaml]\n",
            ),
            (
                "apps/web/nested/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  env: ${ENV}\n",
            ),
        ],
    );
    let s = spec(
        r#"
interval: 5m
prune: true
path: ./apps/web
sourceRef: {kind: GitRepository, name: repo}
targetNamespace: prod
namePrefix: p-
images: [{name: nginx, newTag: "1.25"}]
patches:
- patch: |
    - op: replace
      path: /spec/ports/0/port
      value: 8080
  target: {kind: Service}
commonMetadata:
  labels: {team: web}
postBuild:
  substitute: {ENV: production, REPLICAS: "3"}
"#,
    );
    let objects = build(dir.path(), &s, &BTreeMap::new()).unwrap();
    let names: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        ["ConfigMap/p-settings", "Service/p-web", "Deployment/p-web"]
    );
    for o in &objects {
        assert_eq!(o["metadata"]["namespace"].as_str(), Some("prod"));
        assert_eq!(o["metadata"]["labels"]["team"].as_str(), Some("web"));
    }
    assert_eq!(objects[0]["data"]["env"].as_str(), Some("production"));
    assert_eq!(objects[1]["spec"]["ports"][0]["port"].as_i64(), Some(8080));
    assert_eq!(objects[2]["spec"]["replicas"].as_i64(), Some(3));
    assert_eq!(
        objects[2]["spec"]["template"]["spec"]["containers"][0]["image"].as_str(),
        Some("nginx:1.25")
    );
}

#[test]
fn the_users_kustomization_is_kept_and_extended() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "kustomization.yaml",
                "resources: [deploy.yaml]\nnamePrefix: user-\ncommonLabels: {from: user}\n",
            ),
            ("deploy.yaml", DEPLOY),
        ],
    );
    let objects = build(dir.path(), &spec("interval: 1m\nprune: false\nsourceRef: {kind: GitRepository, name: r}\nnameSuffix: -x\n"), &BTreeMap::new()).unwrap();
    assert_eq!(objects[0]["metadata"]["name"].as_str(), Some("user-web-x"));
    assert_eq!(
        objects[0]["metadata"]["labels"]["from"].as_str(),
        Some("user")
    );
    // No postBuild: `${REPLICAS:=1}` is left as written.
    assert_eq!(
        objects[0]["spec"]["replicas"].as_str(),
        Some("${REPLICAS:=1}")
    );
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("bad/kustomization.yaml", "resources: [missing.yaml]\n"),
            ("broken/a.yaml", "key: [unclosed\n"),
        ],
    );
    let base = "interval: 1m\nprune: true\nsourceRef: {kind: GitRepository, name: r}\n";
    let err = build(
        dir.path(),
        &spec(&format!("{base}path: ./nope\n")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "ArtifactFailed");
    assert!(
        err.to_string().contains("kustomization path not found"),
        "{err}"
    );
    let err = build(
        dir.path(),
        &spec(&format!("{base}path: ./bad\n")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "BuildFailed");
    assert!(err.to_string().contains("missing.yaml"), "{err}");
    let err = build(
        dir.path(),
        &spec(&format!("{base}path: ./broken\n")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to decode Kubernetes YAML from ./a.yaml"),
        "{err}"
    );
}

#[test]
fn sops_secrets_need_decryption() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  password: ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]\nsops:\n  version: 3.9.0\n",
        )],
    );
    let err = build(
        dir.path(),
        &spec("interval: 1m\nprune: true\nsourceRef: {kind: GitRepository, name: r}\n"),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Secret/creds is encrypted with SOPS but spec.decryption is not set"),
        "{err}"
    );
}
