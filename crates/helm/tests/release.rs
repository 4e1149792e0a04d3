//! The release codec over a rendered chart: what the helm-controller will store.

use ferroflux_helm::chart::{File, load_files};
use ferroflux_helm::release::{self, Release};

#[test]
fn install_release_round_trip() {
    let files = vec![
        File { name: "Chart.yaml".into(), data: b"apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\n".to_vec().into() },
        File { name: "values.yaml".into(), data: b"replicas: 2\n".to_vec().into() },
        File {
            name: "templates/cm.yaml".into(),
            data: b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  r: {{ .Values.replicas | quote }}\n".to_vec().into(),
        },
        File {
            name: "templates/hook.yaml".into(),
            data: b"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pre\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-weight: \"-5\"\n".to_vec().into(),
        },
        File { name: "templates/NOTES.txt".into(), data: b"Installed {{ .Release.Name }}".to_vec().into() },
    ];
    let chart = load_files(files).unwrap();
    let opts = ferroflux_helm::RenderOptions {
        release: ferroflux_helm::ReleaseOptions {
            name: "web".into(),
            namespace: "apps".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let user = ferroflux_helm::user_values(&[], &["replicas=3".into()]).unwrap();
    let r = ferroflux_helm::render_chart(
        &chart,
        &user,
        &opts,
        &mut ferroflux_helm::FixedHost::default(),
    )
    .unwrap();
    assert_eq!(r.notes, "Installed web");
    assert_eq!(r.manifests.len(), 1);
    assert_eq!(r.hooks.len(), 1);
    assert_eq!(r.hooks[0].weight, -5);
    assert_eq!(r.hooks[0].events, vec!["pre-install"]);
    let rel = release::new_install("web", "apps", &chart, &user, &r, "2026-01-01T00:00:00Z");
    assert_eq!(
        rel.manifest,
        "---\n# Source: demo/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  r: \"3\"\n"
    );
    let data = release::secret_data(&rel).unwrap();
    let back: Release = release::decode(&data["release"]).unwrap();
    assert_eq!(back, rel);
    let chart_json = back.chart.unwrap();
    assert_eq!(chart_json["metadata"]["name"], "demo");
    assert_eq!(chart_json["metadata"]["version"], "1.2.3");
    assert_eq!(back.config.unwrap()["replicas"], 3);
    assert_eq!(
        release::secret_name(&rel.name, rel.version),
        "sh.helm.release.v1.web.v1"
    );
    let labels =
        release::secret_labels(&rel, Some(1_767_225_600), None, &Default::default()).unwrap();
    assert_eq!(labels["name"], "web");
    assert_eq!(labels["status"], "deployed");
}
