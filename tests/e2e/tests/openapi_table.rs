//! The strategic-merge table of the kustomize engine (crates/kustomize/data/patch-strategies.json)
//! is what its generator makes of the OpenAPI document the test control plane serves.

use std::process::Command;

use ferroflux_testenv::{ControlPlane, workspace_root};

#[tokio::test]
async fn patch_strategies_match_the_control_planes_openapi() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let request = http::Request::get("/openapi/v2").body(Vec::new()).unwrap();
    let swagger = client.request_text(request).await.expect("GET /openapi/v2");
    let dir = tempfile::tempdir().unwrap();
    let swagger_path = dir.path().join("swagger.json");
    std::fs::write(&swagger_path, swagger).unwrap();
    let data = workspace_root().join("crates/kustomize/data");
    let out = Command::new("python3")
        .arg(data.join("gen-patch-strategies.py"))
        .arg(&swagger_path)
        .output()
        .expect("run the generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("patch-strategies.json")).unwrap())
            .unwrap();
    // The live document also lists this cluster's CRDs; the committed table is built-in
    // Kubernetes only, so compare the built-in definitions.
    let builtin =
        |v: &serde_json::Value, section: &str| -> serde_json::Map<String, serde_json::Value> {
            v[section]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| !k.contains("toolkit.fluxcd.io") && !k.contains("fluxcd"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
    for section in ["defs", "gvk", "namespaced"] {
        let (live, ours) = (builtin(&generated, section), builtin(&committed, section));
        // The table also covers alpha/beta API versions the API server leaves disabled by
        // default; every definition it does serve must be in the table, identical.
        let disabled_by_default = |k: &str| k.contains("alpha") || k.contains("beta");
        let missing: Vec<&String> = ours
            .keys()
            .filter(|k| !live.contains_key(*k) && !disabled_by_default(k))
            .collect();
        let differing: Vec<&String> = ours
            .keys()
            .filter(|k| live.get(*k).is_some_and(|v| v != &ours[*k]))
            .collect();
        assert!(
            missing.is_empty() && differing.is_empty(),
            "{section}: not served by the control plane: {missing:?}; different: {differing:?}"
        );
        assert!(
            live.keys().all(|k| ours.contains_key(k)),
            "{section}: the control plane serves entries the table lacks: {:?}",
            live.keys()
                .filter(|k| !ours.contains_key(*k))
                .collect::<Vec<_>>()
        );
    }
}
