//! The `ferroflux` binary against the real control plane: what it writes to and reads
//! from the API server, its output and its exit codes. No controller runs: where a verb
//! needs a reconciled object, the test plays the controller by patching status.

mod support;
use support::play_kubelet;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ferroflux_testenv::{ControlPlane, oracle, workspace_root};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

fn cp() -> &'static ControlPlane {
    ControlPlane::shared()
}

fn ferroflux(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .arg("--kubeconfig")
        .arg(&cp().kubeconfig_path)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run ferroflux")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ferroflux failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn kubectl_apply(yaml: &str) {
    let mut child = Command::new(oracle("kubectl"))
        .arg("--kubeconfig")
        .arg(&cp().kubeconfig_path)
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl apply: {}", text(&out.stderr));
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn git() -> ApiResource {
    resource(
        "source.toolkit.fluxcd.io",
        "v1",
        "GitRepository",
        "gitrepositories",
    )
}
fn ks() -> ApiResource {
    resource(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
    )
}
fn hr() -> ApiResource {
    resource(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
        "helmreleases",
    )
}

async fn setup(prefix: &str) -> (kube::Client, String) {
    let client = cp().client().await.unwrap();
    let ns = cp().namespace(&client, prefix).await.unwrap();
    (client, ns)
}

async fn patch_status(
    client: &kube::Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
    status: Value,
) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

async fn get(client: &kube::Client, ar: &ApiResource, ns: &str, name: &str) -> DynamicObject {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar)
        .get(name)
        .await
        .unwrap()
}

fn ready(generation: i64, message: &str) -> Value {
    json!([{
        "type": "Ready", "status": "True", "reason": "Succeeded", "message": message,
        "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"
    }])
}

fn create_git(ns: &str, name: &str) {
    let out = ferroflux(&[
        "create",
        "source",
        "git",
        name,
        "--url=https://github.com/stefanprodan/podinfo",
        "--branch=master",
        "--interval=30s",
        "--export",
        "-n",
        ns,
    ]);
    kubectl_apply(&ok(&out));
}

fn create_ks(ns: &str, name: &str, source: &str) {
    let out = ferroflux(&[
        "create",
        "kustomization",
        name,
        "--source",
        source,
        "--path=./kustomize",
        "--prune=true",
        "--interval=5m",
        "--target-namespace=default",
        "--export",
        "-n",
        ns,
    ]);
    kubectl_apply(&ok(&out));
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn help_of_every_subcommand_is_complete() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "install",
                "uninstall",
                "check",
                "version",
                "create",
                "get",
                "reconcile",
                "suspend",
                "resume",
                "delete",
                "export",
                "events",
                "logs",
                "tree",
                "build",
                "diff",
                "kustomize",
                "helm",
                "dev",
                "bootstrap",
                "--kubeconfig",
                "--context",
                "--cluster",
                "--user",
                "--server",
                "--token",
                "--insecure-skip-tls-verify",
                "--namespace",
                "--timeout",
            ],
        ),
        (
            &["create", "source", "git"],
            &[
                "--url",
                "--branch",
                "--tag",
                "--tag-semver",
                "--commit",
                "--interval",
                "--secret-ref",
                "--export",
            ],
        ),
        (
            &["create", "source", "helm"],
            &["--url", "--secret-ref", "--export"],
        ),
        (
            &["create", "source", "oci"],
            &["--url", "--tag", "--digest", "--export"],
        ),
        (
            &["create", "source", "bucket"],
            &["--bucket-name", "--endpoint", "--export"],
        ),
        (
            &["create", "kustomization"],
            &[
                "--source",
                "--path",
                "--prune",
                "--interval",
                "--target-namespace",
                "--depends-on",
                "--wait",
                "--health-check-timeout",
                "--export",
            ],
        ),
        (
            &["create", "helmrelease"],
            &[
                "--source",
                "--chart",
                "--chart-version",
                "--values",
                "--target-namespace",
                "--export",
            ],
        ),
        (
            &["get", "kustomizations"],
            &[
                "--all-namespaces",
                "--watch",
                "--no-header",
                "--show-source",
            ],
        ),
        (
            &["get", "helmreleases"],
            &["--show-source", "--status-selector"],
        ),
        (&["get", "sources", "git"], &["--all-namespaces", "--watch"]),
        (&["reconcile", "kustomization"], &["--with-source"]),
        (
            &["reconcile", "helmrelease"],
            &["--with-source", "--force", "--reset"],
        ),
        (&["suspend", "kustomization"], &["--all"]),
        (&["delete", "kustomization"], &["--silent"]),
        (&["uninstall"], &["--keep-namespace", "--silent"]),
        (&["install"], &["--export", "--timeout", "Examples:"]),
        (
            &["logs"],
            &[
                "--kind",
                "--name",
                "--level",
                "--since",
                "--since-time",
                "--tail",
                "--follow",
                "--all-namespaces",
                "--flux-namespace",
                "Examples:",
            ],
        ),
        (
            &["bootstrap", "git"],
            &[
                "--url",
                "--branch",
                "--path",
                "--interval",
                "--username",
                "--password",
                "--token-auth",
                "--with-bearer-token",
                "--allow-insecure-http",
                "--ca-file",
                "--private-key-file",
                "--ssh-key-algorithm",
                "--ssh-hostname",
                "--silent",
                "--secret-name",
                "--components",
                "--author-name",
                "--author-email",
                "--commit-message-appendix",
                "--export",
                "Examples:",
            ],
        ),
        (&["check"], &["--pre", "--poll-interval"]),
        (
            &["events"],
            &["--for", "--all-namespaces", "--watch", "--types"],
        ),
        (&["resume", "kustomization"], &["--all", "--wait"]),
        (&["tree", "kustomization"], &["--compact", "--output"]),
        (
            &["build", "kustomization"],
            &[
                "--path",
                "--ignore-paths",
                "--kustomization-file",
                "--dry-run",
            ],
        ),
        (
            &["diff", "kustomization"],
            &[
                "--path",
                "--ignore-paths",
                "--kustomization-file",
                "--ignore-not-found",
            ],
        ),
        (
            &["helm", "template"],
            &["--values", "--set", "--include-crds"],
        ),
    ];
    for (args, flags) in cases {
        let mut full = args.to_vec();
        full.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
            .args(&full)
            .output()
            .unwrap();
        let help = ok(&out);
        for flag in *flags {
            assert!(
                help.contains(flag),
                "`ferroflux {}` lacks {flag}:\n{help}",
                full.join(" ")
            );
        }
    }
}

#[test]
fn create_export_prints_flux_yaml() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args([
            "create",
            "source",
            "git",
            "podinfo",
            "--url=https://github.com/stefanprodan/podinfo",
            "--branch=master",
            "--interval=30s",
            "--export",
        ])
        .output()
        .unwrap();
    assert_eq!(
        ok(&out),
        "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: podinfo\n  namespace: flux-system\n\
         spec:\n  interval: 30s\n  ref:\n    branch: master\n  url: https://github.com/stefanprodan/podinfo\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args([
            "create",
            "kustomization",
            "podinfo",
            "--target-namespace=default",
            "--source=podinfo",
            "--path=./kustomize",
            "--prune=true",
            "--interval=5m",
            "--export",
        ])
        .output()
        .unwrap();
    assert_eq!(
        ok(&out),
        "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: podinfo\n  namespace: flux-system\n\
         spec:\n  interval: 5m0s\n  path: ./kustomize\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: podinfo\n  targetNamespace: default\n"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args([
            "create",
            "kustomization",
            "x",
            "--source=podinfo",
            "--path=kustomize",
            "--export",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("path must begin with ./"));
}

#[tokio::test]
async fn create_export_applied_back_gives_the_same_object() {
    let (client, ns) = setup("cli-create").await;
    create_git(&ns, "podinfo");
    create_ks(&ns, "podinfo", "GitRepository/podinfo");
    let values =
        std::env::temp_dir().join(format!("ferroflux-cli-values-{}.yaml", std::process::id()));
    std::fs::write(&values, "replicaCount: 2\nimage:\n  tag: 6.5.0\n").unwrap();
    let out = ferroflux(&[
        "create",
        "helmrelease",
        "podinfo",
        "--source=HelmRepository/podinfo",
        "--chart=podinfo",
        "--chart-version=>=6.0.0",
        "--values",
        values.to_str().unwrap(),
        "--target-namespace=default",
        "--export",
        "-n",
        &ns,
    ]);
    kubectl_apply(&ok(&out));
    let g = get(&client, &git(), &ns, "podinfo").await;
    assert_eq!(
        g.data["spec"]["url"],
        "https://github.com/stefanprodan/podinfo"
    );
    assert_eq!(g.data["spec"]["ref"]["branch"], "master");
    assert_eq!(g.data["spec"]["interval"], "30s");
    let k = get(&client, &ks(), &ns, "podinfo").await;
    assert_eq!(k.data["spec"]["path"], "./kustomize");
    assert_eq!(k.data["spec"]["prune"], true);
    assert_eq!(k.data["spec"]["interval"], "5m0s");
    assert_eq!(
        k.data["spec"]["sourceRef"],
        json!({"kind": "GitRepository", "name": "podinfo"})
    );
    assert_eq!(k.data["spec"]["targetNamespace"], "default");
    let h = get(&client, &hr(), &ns, "podinfo").await;
    assert_eq!(h.data["spec"]["chart"]["spec"]["chart"], "podinfo");
    assert_eq!(h.data["spec"]["chart"]["spec"]["version"], ">=6.0.0");
    assert_eq!(
        h.data["spec"]["chart"]["spec"]["sourceRef"],
        json!({"kind": "HelmRepository", "name": "podinfo"})
    );
    assert_eq!(
        h.data["spec"]["values"],
        json!({"replicaCount": 2, "image": {"tag": "6.5.0"}})
    );
    // `export` of the applied object prints what `create --export` printed (plus the defaults the API server filled in).
    let exported = ok(&ferroflux(&[
        "export", "source", "git", "podinfo", "-n", &ns,
    ]));
    assert!(
        exported.starts_with("---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\n"),
        "{exported}"
    );
    assert!(exported.contains("  url: https://github.com/stefanprodan/podinfo\n"));
    assert!(
        !exported.contains("status:")
            && !exported.contains("resourceVersion")
            && !exported.contains("uid:")
    );
    let _ = std::fs::remove_file(values);
}

#[tokio::test]
async fn create_without_export_applies_and_times_out_waiting_for_a_controller() {
    let (client, ns) = setup("cli-apply").await;
    let out = ferroflux(&[
        "create",
        "source",
        "git",
        "app",
        "--url=https://example.com/app.git",
        "--tag=v1.0.0",
        "--timeout=2s",
        "-n",
        &ns,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("✚ generating GitRepository source"), "{err}");
    assert!(err.contains("GitRepository source created"), "{err}");
    assert!(err.contains("timed out"), "{err}");
    let g = get(&client, &git(), &ns, "app").await;
    assert_eq!(g.data["spec"]["ref"]["tag"], "v1.0.0");
}

#[tokio::test]
async fn get_prints_flux_columns_and_revisions() {
    let (client, ns) = setup("cli-get").await;
    create_git(&ns, "podinfo");
    create_ks(&ns, "podinfo", "podinfo");
    let g = get(&client, &git(), &ns, "podinfo").await;
    patch_status(&client, &git(), &ns, "podinfo", json!({
        "observedGeneration": g.metadata.generation,
        "artifact": {"revision": format!("master@sha1:{SHA}"), "path": "x", "url": "http://x/x.tar.gz",
                     "digest": "sha256:abc", "lastUpdateTime": "2026-01-01T00:00:00Z"},
        "conditions": ready(g.metadata.generation.unwrap(), &format!("stored artifact for revision 'master@sha1:{SHA}'")),
    })).await;
    let out = ok(&ferroflux(&["get", "sources", "git", "-n", &ns]));
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    );
    let row: Vec<&str> = lines[1].split('\t').map(str::trim).collect();
    assert_eq!(
        row,
        [
            "podinfo",
            "master@sha1:01234567",
            "False",
            "True",
            "stored artifact for revision 'master@sha1:01234567'"
        ]
    );

    // A Kustomization without status: not ready yet.
    let out = ok(&ferroflux(&["get", "ks", "-n", &ns]));
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .map(str::trim)
        .collect();
    assert_eq!(
        row,
        ["podinfo", "", "False", "False", "waiting to be reconciled"]
    );
    let k = get(&client, &ks(), &ns, "podinfo").await;
    patch_status(&client, &ks(), &ns, "podinfo", json!({
        "observedGeneration": k.metadata.generation,
        "lastAppliedRevision": format!("master@sha1:{SHA}"),
        "conditions": ready(k.metadata.generation.unwrap(), &format!("Applied revision: master@sha1:{SHA}")),
    })).await;
    let out = ok(&ferroflux(&["get", "kustomizations", "-A"]));
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "REVISION",
            "SUSPENDED",
            "READY",
            "MESSAGE"
        ]
    );
    let row = out
        .lines()
        .find(|l| l.starts_with(&ns))
        .expect("our namespace is listed");
    let row: Vec<&str> = row.split('\t').map(str::trim).collect();
    assert_eq!(
        row,
        [
            ns.as_str(),
            "podinfo",
            "master@sha1:01234567",
            "False",
            "True",
            "Applied revision: master@sha1:01234567"
        ]
    );

    // HelmRelease: the chart version of the latest release.
    let out = ferroflux(&[
        "create",
        "hr",
        "podinfo",
        "--source=HelmRepository/podinfo",
        "--chart=podinfo",
        "--export",
        "-n",
        &ns,
    ]);
    kubectl_apply(&ok(&out));
    patch_status(&client, &hr(), &ns, "podinfo", json!({
        "lastAttemptedRevision": "6.5.3",
        "history": [{"chartName": "podinfo", "chartVersion": "6.5.4", "name": "podinfo", "namespace": ns,
                     "version": 1, "status": "deployed", "digest": "sha256:x", "configDigest": "sha256:y",
                     "firstDeployed": "2026-01-01T00:00:00Z", "lastDeployed": "2026-01-01T00:00:00Z"}],
    })).await;
    let out = ok(&ferroflux(&["get", "hr", "-n", &ns]));
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .map(str::trim)
        .collect();
    assert_eq!(row[..3], ["podinfo", "6.5.4", "False"]);

    // --show-source: a SOURCE column after NAME, the namespace filled in.
    for (args, source) in [
        (
            ["get", "ks", "--show-source"],
            format!("GitRepository/{ns}/podinfo"),
        ),
        (
            ["get", "hr", "--show-source"],
            format!("HelmRepository/{ns}/podinfo"),
        ),
    ] {
        let mut args = args.to_vec();
        args.extend_from_slice(&["-n", &ns]);
        let out = ok(&ferroflux(&args));
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header[..3], ["NAME", "SOURCE", "REVISION"], "{out}");
        let row: Vec<&str> = out
            .lines()
            .nth(1)
            .unwrap()
            .split('\t')
            .map(str::trim)
            .collect();
        assert_eq!(row[..2], ["podinfo", source.as_str()], "{out}");
    }

    // get all: kind-prefixed names, every kind present.
    let out = ok(&ferroflux(&["get", "all", "-n", &ns]));
    assert!(out.contains("gitrepository/podinfo"), "{out}");
    assert!(out.contains("kustomization/podinfo"), "{out}");
    assert!(out.contains("helmrelease/podinfo"), "{out}");

    // Missing objects: exit 1, and the message names them.
    let out = ferroflux(&["get", "ks", "nope", "-n", &ns]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Kustomization object 'nope' not found"),
        "{}",
        text(&out.stderr)
    );

    // --watch prints the table and then stops at --timeout.
    let out = ok(&ferroflux(&[
        "get",
        "ks",
        "--watch",
        "--timeout=2s",
        "-n",
        &ns,
    ]));
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("podinfo"), "{out}");
}

/// Plays the controller: once the request annotation appears, copy it into
/// status.lastHandledReconcileAt and report Ready for the current generation.
async fn play_controller(
    client: kube::Client,
    ar: ApiResource,
    ns: String,
    name: String,
    status: Value,
) -> String {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    for _ in 0..300 {
        let obj = api.get(&name).await.unwrap();
        let token = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("reconcile.fluxcd.io/requestedAt"))
            .cloned();
        let handled = obj
            .data
            .pointer("/status/lastHandledReconcileAt")
            .and_then(Value::as_str)
            .map(String::from);
        if let Some(token) = token
            && handled.as_deref() != Some(&token)
            && obj.data.pointer("/spec/suspend").and_then(Value::as_bool) != Some(true)
        {
            let generation = obj.metadata.generation.unwrap();
            let mut status = status.clone();
            status["lastHandledReconcileAt"] = json!(token);
            status["observedGeneration"] = json!(generation);
            status["conditions"] = ready(generation, "done");
            patch_status(&client, &ar, &ns, &name, status).await;
            return token;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the CLI never requested a reconcile of {ns}/{name}");
}

fn spawn_ferroflux(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .arg("--kubeconfig")
        .arg(&cp().kubeconfig_path)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn reconcile_requests_and_waits_and_refuses_suspended_objects() {
    let (client, ns) = setup("cli-reconcile").await;
    create_git(&ns, "podinfo");
    create_ks(&ns, "podinfo", "podinfo");

    let child = spawn_ferroflux(&[
        "reconcile",
        "source",
        "git",
        "podinfo",
        "--timeout=60s",
        "-n",
        &ns,
    ]);
    let token = play_controller(client.clone(), git(), ns.clone(), "podinfo".into(), json!({
        "artifact": {"revision": format!("master@sha1:{SHA}"), "path": "x", "url": "http://x/x.tar.gz",
                     "digest": "sha256:abc", "lastUpdateTime": "2026-01-01T00:00:00Z"},
    })).await;
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("► annotating GitRepository podinfo in"),
        "{err}"
    );
    assert!(
        err.contains(&format!("✔ fetched revision master@sha1:{SHA}")),
        "{err}"
    );
    // The token is RFC3339 with nanoseconds, as Go's time.RFC3339Nano.
    assert!(token.contains('T') && token.ends_with('Z'), "{token}");

    // --with-source reconciles the GitRepository, then the Kustomization.
    let child = spawn_ferroflux(&[
        "reconcile",
        "ks",
        "podinfo",
        "--with-source",
        "--timeout=60s",
        "-n",
        &ns,
    ]);
    play_controller(
        client.clone(),
        git(),
        ns.clone(),
        "podinfo".into(),
        json!({}),
    )
    .await;
    play_controller(
        client.clone(),
        ks(),
        ns.clone(),
        "podinfo".into(),
        json!({"lastAppliedRevision": "master@sha1:feed"}),
    )
    .await;
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("✔ applied revision master@sha1:feed"), "{err}");

    // Without a controller the wait times out with exit 1 and a hint.
    let out = ferroflux(&["reconcile", "ks", "podinfo", "--timeout=1s", "-n", &ns]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("kustomize-controller"),
        "{}",
        text(&out.stderr)
    );

    // Suspended: refused, exit 1, and told what to do.
    ok(&ferroflux(&["suspend", "ks", "podinfo", "-n", &ns]));
    let out = ferroflux(&["reconcile", "kustomization", "podinfo", "-n", &ns]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("is suspended") && err.contains("resume it first"),
        "{err}"
    );
    assert!(
        err.contains("ferroflux resume kustomization podinfo"),
        "{err}"
    );
}

#[tokio::test]
async fn suspend_and_resume_flip_spec_suspend() {
    let (client, ns) = setup("cli-suspend").await;
    create_git(&ns, "podinfo");
    let out = ferroflux(&["suspend", "source", "git", "podinfo", "-n", &ns]);
    ok(&out);
    assert!(text(&out.stderr).contains("✔ GitRepository source suspended"));
    assert_eq!(
        get(&client, &git(), &ns, "podinfo").await.data["spec"]["suspend"],
        true
    );
    let out = ok(&ferroflux(&["get", "sources", "git", "-n", &ns]));
    assert!(out.lines().nth(1).unwrap().contains("True"), "{out}");

    let child = spawn_ferroflux(&[
        "resume",
        "source",
        "git",
        "podinfo",
        "--timeout=60s",
        "-n",
        &ns,
    ]);
    play_controller(
        client.clone(),
        git(),
        ns.clone(),
        "podinfo".into(),
        json!({
            "artifact": {"revision": "master@sha1:abc", "path": "x", "url": "http://x/x.tar.gz",
                         "digest": "sha256:abc", "lastUpdateTime": "2026-01-01T00:00:00Z"},
        }),
    )
    .await;
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("GitRepository podinfo reconciliation completed"),
        "{err}"
    );
    assert_eq!(
        get(&client, &git(), &ns, "podinfo").await.data["spec"]["suspend"],
        false
    );

    // --wait=false, or --all, returns once resumed: no controller answers here, so a
    // wait would time out.
    for flags in [&["podinfo", "--wait=false"][..], &["--all"][..]] {
        ok(&ferroflux(&[
            "suspend", "source", "git", "podinfo", "-n", &ns,
        ]));
        let mut args = vec!["resume", "source", "git"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--timeout=1s", "-n", &ns]);
        let out = ferroflux(&args);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("✔ GitRepository source resumed"), "{err}");
        assert!(!err.contains("waiting for"), "{err}");
        assert_eq!(
            get(&client, &git(), &ns, "podinfo").await.data["spec"]["suspend"],
            false
        );
    }

    // delete: refuses without a terminal unless --silent.
    let out = ferroflux(&["delete", "source", "git", "podinfo", "-n", &ns]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("aborting"));
    ok(&ferroflux(&[
        "delete", "source", "git", "podinfo", "--silent", "-n", &ns,
    ]));
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &git());
    assert!(api.get_opt("podinfo").await.unwrap().is_none());
}

fn yaml_docs(s: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(s)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn install_export_equals_kubectl_kustomize_deploy() {
    let ours = ok(&Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args(["install", "--export"])
        .output()
        .unwrap());
    let out = Command::new(oracle("kubectl"))
        .arg("kustomize")
        .arg(workspace_root().join("deploy"))
        .output()
        .unwrap();
    let theirs = ok(&out);
    let (ours, theirs) = (yaml_docs(&ours), yaml_docs(&theirs));
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours, theirs);
}

#[tokio::test]
async fn check_pre_and_version_read_the_cluster() {
    let out = ferroflux(&["check", "--pre"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("► checking prerequisites"), "{err}");
    assert!(err.contains("✔ Kubernetes 1.36.3 >=1.33.0-0"), "{err}");
    assert!(err.contains("✔ prerequisites checks passed"), "{err}");
    // Colours only on a terminal: none when stderr is a pipe, even without NO_COLOR...
    let piped = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args(["check", "--pre", "--kubeconfig"])
        .arg(&cp().kubeconfig_path)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(
        !text(&piped.stderr).contains('\x1b'),
        "{:?}",
        text(&piped.stderr)
    );
    // ...and Flux's green ✔ on a terminal (util-linux `script` gives it a pseudo-terminal).
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} check --pre --kubeconfig {}",
            env!("CARGO_BIN_EXE_ferroflux"),
            cp().kubeconfig_path.display()
        ))
        .arg("/dev/null")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("run script (bsdutils)");
    let shown = text(&tty.stdout);
    assert!(tty.status.success(), "{shown}");
    assert!(
        shown.contains("\x1b[32m✔\x1b[0m prerequisites checks passed"),
        "{shown:?}"
    );
    let out = ok(&ferroflux(&["version"]));
    assert!(
        out.contains(&format!("ferroflux: v{}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let out = ok(&ferroflux(&["version", "--client", "-o", "json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["flux"].as_str().unwrap().starts_with("v2."));
    // A cluster nobody serves: exit 1 and a message.
    let out = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args(["check", "--pre", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("kubeconfig"),
        "{}",
        text(&out.stderr)
    );
}

fn helm_release_secret(name: &str, ns: &str, manifest: &str) -> Value {
    use base64::Engine;
    let release = json!({"name": name, "namespace": ns, "version": 1, "manifest": manifest, "info": {"status": "deployed"}});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(release.to_string().as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let inner = b64.encode(gz.finish().unwrap());
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.{name}.v1"), "namespace": ns,
                     "labels": {"owner": "helm", "name": name, "version": "1", "status": "deployed"}},
        "data": {"release": b64.encode(inner)},
    })
}

#[tokio::test]
async fn tree_prints_the_inventory_recursively() {
    let (client, ns) = setup("cli-tree").await;
    create_git(&ns, "podinfo");
    create_ks(&ns, "apps", "podinfo");
    create_ks(&ns, "podinfo", "podinfo");
    let out = ferroflux(&[
        "create",
        "hr",
        "redis",
        "--source=HelmRepository/bitnami",
        "--chart=redis",
        "--export",
        "-n",
        &ns,
    ]);
    kubectl_apply(&ok(&out));
    let secret = helm_release_secret(
        "redis",
        &ns,
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: redis\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: redis-master\n",
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &Default::default(),
            &serde_json::from_value(secret).unwrap(),
        )
        .await
        .unwrap();
    patch_status(&client, &hr(), &ns, "redis", json!({
        "storageNamespace": ns,
        "history": [{"chartName": "redis", "chartVersion": "1.0.0", "name": "redis", "namespace": ns, "version": 1,
                     "status": "deployed", "digest": "sha256:x", "configDigest": "sha256:y",
                     "firstDeployed": "2026-01-01T00:00:00Z", "lastDeployed": "2026-01-01T00:00:00Z"}],
    })).await;
    patch_status(
        &client,
        &ks(),
        &ns,
        "apps",
        json!({"inventory": {"entries": [
            {"id": format!("{ns}_podinfo_kustomize.toolkit.fluxcd.io_Kustomization"), "v": "v1"},
            {"id": format!("{ns}_redis_helm.toolkit.fluxcd.io_HelmRelease"), "v": "v2"},
        ]}}),
    )
    .await;
    patch_status(
        &client,
        &ks(),
        &ns,
        "podinfo",
        json!({"inventory": {"entries": [
            {"id": "_podinfo__Namespace", "v": "v1"},
            {"id": "podinfo_podinfo__Service", "v": "v1"},
            {"id": "podinfo_podinfo_apps_Deployment", "v": "v1"},
        ]}}),
    )
    .await;
    let out = ok(&ferroflux(&["tree", "kustomization", "apps", "-n", &ns]));
    let expected = format!(
        "Kustomization/{ns}/apps\n\
         ├── Kustomization/{ns}/podinfo\n\
         │   ├── Namespace/podinfo\n\
         │   ├── Service/podinfo/podinfo\n\
         │   └── Deployment/podinfo/podinfo\n\
         └── HelmRelease/{ns}/redis\n\
         \x20   ├── Service/{ns}/redis\n\
         \x20   └── StatefulSet/{ns}/redis-master\n\n"
    );
    assert_eq!(out, expected);
    let out = ok(&ferroflux(&["tree", "ks", "apps", "--compact", "-n", &ns]));
    assert_eq!(
        out,
        format!(
            "Kustomization/{ns}/apps\n├── Kustomization/{ns}/podinfo\n└── HelmRelease/{ns}/redis\n\n"
        )
    );
    let out = ok(&ferroflux(&["tree", "ks", "apps", "-o", "json", "-n", &ns]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["resources"][0]["resources"][2]["resource"]["GroupKind"]["Kind"],
        "Deployment"
    );
}

fn write_app(dir: &Path, replicas: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), "resources:\n- cm.yaml\n").unwrap();
    std::fs::write(
        dir.join("cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  replicas: \"{replicas}\"\n  greeting: ${{GREETING}}\n"),
    )
    .unwrap();
}

#[tokio::test]
async fn build_and_diff_a_kustomization_from_a_local_directory() {
    let (client, ns) = setup("cli-build").await;
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    write_app(&app, "1");
    // kustomize build: our engine, kustomize's output.
    let out = ok(&ferroflux(&["kustomize", "build", app.to_str().unwrap()]));
    assert!(
        out.contains("kind: ConfigMap") && out.contains("name: app"),
        "{out}"
    );

    create_git(&ns, "podinfo");
    let out = ferroflux(&[
        "create",
        "ks",
        "app",
        "--source=podinfo",
        "--path=./app",
        "--prune=true",
        "--export",
        "-n",
        &ns,
        &format!("--target-namespace={ns}"),
    ]);
    kubectl_apply(&ok(&out));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ks());
    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"postBuild": {"substitute": {"GREETING": "hello"}}}})),
    )
    .await
    .unwrap();
    let out = ok(&ferroflux(&[
        "build",
        "kustomization",
        "app",
        "--path",
        app.to_str().unwrap(),
        "-n",
        &ns,
    ]));
    assert!(out.contains("greeting: hello"), "{out}");
    assert!(out.contains(&format!("namespace: {ns}")), "{out}");

    // Nothing in the cluster yet: created, exit 1.
    let out = ferroflux(&[
        "diff",
        "kustomization",
        "app",
        "--path",
        app.to_str().unwrap(),
        "-n",
        &ns,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("► ConfigMap/{ns}/app created")),
        "{}",
        text(&out.stdout)
    );

    // Apply what the build gives, as the controller would; then the diff is empty.
    let built = yaml_docs(&ok(&ferroflux(&[
        "build",
        "ks",
        "app",
        "--path",
        app.to_str().unwrap(),
        "-n",
        &ns,
    ])));
    let objects: Vec<DynamicObject> = built
        .iter()
        .map(|o| serde_json::from_value(serde_json::to_value(o).unwrap()).unwrap())
        .collect();
    let owner = std::collections::BTreeMap::from([
        (
            "kustomize.toolkit.fluxcd.io/name".to_string(),
            "app".to_string(),
        ),
        (
            "kustomize.toolkit.fluxcd.io/namespace".to_string(),
            ns.clone(),
        ),
    ]);
    let manager =
        ferroflux_ssa::ResourceManager::new(client.clone(), "kustomize-controller", owner);
    manager
        .apply_all_staged(objects, &Default::default())
        .await
        .unwrap();
    let out = ferroflux(&[
        "diff",
        "ks",
        "app",
        "--path",
        app.to_str().unwrap(),
        "-n",
        &ns,
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // A change in the directory: drifted, with the changed line.
    write_app(&app, "3");
    let out = ferroflux(&[
        "diff",
        "ks",
        "app",
        "--path",
        app.to_str().unwrap(),
        "-n",
        &ns,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("► ConfigMap/{ns}/app drifted")),
        "{stdout}"
    );
    assert!(
        stdout.contains("-  replicas: \"1\"") && stdout.contains("+  replicas: \"3\""),
        "{stdout}"
    );

    // --kustomization-file: the file's spec, the cluster's inventory, so that what the
    // Kustomization applied before and no longer builds shows as deleted.
    patch_status(
        &client,
        &ks(),
        &ns,
        "app",
        json!({"inventory": {"entries": [
            {"id": format!("{ns}_app__ConfigMap"), "v": "v1"},
            {"id": format!("{ns}_old__ConfigMap"), "v": "v1"},
        ]}}),
    )
    .await;
    let file = tmp.path().join("ks.yaml");
    std::fs::write(&file, ok(&ferroflux(&["export", "ks", "app", "-n", &ns]))).unwrap();
    let diff_file = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "diff",
            "ks",
            name,
            "--path",
            app.to_str().unwrap(),
            "--kustomization-file",
            file.to_str().unwrap(),
            "-n",
            &ns,
        ];
        args.extend_from_slice(extra);
        ferroflux(&args)
    };
    let out = diff_file("app", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("► ConfigMap/{ns}/old deleted")),
        "{}",
        text(&out.stdout)
    );
    // A Kustomization the cluster does not have: refused unless --ignore-not-found.
    std::fs::write(
        &file,
        ok(&ferroflux(&["export", "ks", "app", "-n", &ns])).replace("name: app\n", "name: fresh\n"),
    )
    .unwrap();
    let out = diff_file("fresh", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Kustomization 'fresh' not found")
            && text(&out.stderr).contains("--ignore-not-found"),
        "{}",
        text(&out.stderr)
    );
    let out = diff_file("fresh", &["--ignore-not-found"]);
    let err = text(&out.stderr);
    assert!(!err.contains("not found"), "{err}");
    assert!(
        text(&out.stdout).contains(&format!("ConfigMap/{ns}/app")),
        "{}{err}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains("old deleted"));
}

#[tokio::test]
async fn events_lists_flux_events() {
    let (client, ns) = setup("cli-events").await;
    create_git(&ns, "podinfo");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "podinfo.1", "namespace": ns},
        "involvedObject": {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "podinfo", "namespace": ns},
        "reason": "NewArtifact", "type": "Normal", "message": "stored artifact for commit 'x'",
        "lastTimestamp": "2026-01-01T00:00:00Z", "firstTimestamp": "2026-01-01T00:00:00Z", "count": 1,
        "source": {"component": "source-controller"},
    });
    events
        .create(
            &Default::default(),
            &serde_json::from_value(event.clone()).unwrap(),
        )
        .await
        .unwrap();
    let out = ok(&ferroflux(&["events", "-n", &ns]));
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .map(str::trim)
        .collect();
    assert_eq!(header, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    assert!(
        out.contains("GitRepository/podinfo") && out.contains("NewArtifact"),
        "{out}"
    );
    let out = ok(&ferroflux(&[
        "events",
        "--for",
        "Kustomization/podinfo",
        "-n",
        &ns,
    ]));
    assert!(!out.contains("NewArtifact"), "{out}");
    // --types: Normal only, or Warning only.
    let out = ok(&ferroflux(&["events", "--types", "Normal", "-n", &ns]));
    assert!(out.contains("NewArtifact"), "{out}");
    let out = ferroflux(&["events", "--types", "Warning", "-n", &ns]);
    assert!(!ok(&out).contains("NewArtifact"));
    assert!(
        text(&out.stderr).contains("no events found for Flux objects"),
        "{}",
        text(&out.stderr)
    );
    // --watch: the current events, then the new ones, until --timeout.
    let child = spawn_ferroflux(&["events", "--watch", "--timeout=4s", "-n", &ns]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut later = event.clone();
    later["metadata"]["name"] = json!("podinfo.2");
    later["reason"] = json!("GitOperationFailed");
    later["type"] = json!("Warning");
    events
        .create(&Default::default(), &serde_json::from_value(later).unwrap())
        .await
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("LAST SEEN"), "{stdout}");
    assert!(lines[1].contains("NewArtifact"), "{stdout}");
    assert!(
        lines[2].contains("Warning") && lines[2].contains("GitOperationFailed"),
        "{stdout}"
    );
}

// Multi-threaded: the played kubelet runs while the test blocks on the CLI process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_waits_for_the_controllers_check_reports_and_uninstall_dry_run_lists() {
    // No kubelet runs here: install applies everything, waits --timeout for the
    // controllers, names the ones not ready and says where to look, exit 1.
    let out = ferroflux(&["install", "--timeout=3s"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("► installing components in flux-system namespace"),
        "{err}"
    );
    assert!(
        err.contains("Deployment/flux-system/source-controller"),
        "{err}"
    );
    assert!(err.contains("◎ verifying installation"), "{err}");
    assert!(
        err.contains("✗ source-controller: deployment not ready (Replicas: 0/1)"),
        "{err}"
    );
    assert!(
        err.contains(
            "✗ install failed: helm-controller, kustomize-controller, notification-controller, source-controller not ready after 3s"
        ),
        "{err}"
    );
    assert!(
        err.contains("kubectl -n flux-system describe deployment helm-controller")
            && err.contains("ferroflux logs"),
        "{err}"
    );
    assert!(!err.contains("install finished"), "{err}");
    let client = cp().client().await.unwrap();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "flux-system");
    for name in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
        "notification-controller",
    ] {
        assert!(
            deployments.get_opt(name).await.unwrap().is_some(),
            "{name} was not applied"
        );
    }
    // Still no kubelet: check lists the controllers and fails, exit 1.
    let out = ferroflux(&["check", "--timeout=1s"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("✔ distribution: flux-v2.9.4"), "{err}");
    assert!(err.contains("✔ bootstrapped: false"), "{err}");
    assert!(
        err.contains("✗ source-controller: deployment not ready"),
        "{err}"
    );
    assert!(
        err.contains("✔ gitrepositories.source.toolkit.fluxcd.io/v1"),
        "{err}"
    );
    assert!(err.contains("✗ check failed"), "{err}");
    let out = ok(&ferroflux(&["version"]));
    assert!(out.contains("distribution: flux-v2.9.4"), "{out}");

    // A cluster whose components a Kustomization applied was bootstrapped: install refuses
    // and says to upgrade through bootstrap, as Flux does.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crd = "gitrepositories.source.toolkit.fluxcd.io";
    let labels = |v: Value| {
        json!({"metadata": {"labels": {
        "kustomize.toolkit.fluxcd.io/name": v.clone(), "kustomize.toolkit.fluxcd.io/namespace": v}}})
    };
    crds.patch(
        crd,
        &PatchParams::default(),
        &Patch::Merge(labels(json!("flux-system"))),
    )
    .await
    .unwrap();
    let out = ferroflux(&["install", "--timeout=1s"]);
    let bootstrapped = text(&out.stderr);
    crds.patch(
        crd,
        &PatchParams::default(),
        &Patch::Merge(labels(Value::Null)),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{bootstrapped}");
    assert!(
        bootstrapped.contains("already been bootstrapped with flux-v2.9.4")
            && bootstrapped.contains("ferroflux bootstrap git"),
        "{bootstrapped}"
    );

    // With the controllers running (played here), install waits for them and finishes,
    // and check passes.
    let kubelet = play_kubelet(client.clone(), "flux-system");
    let out = ferroflux(&["install", "--timeout=60s"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    for name in [
        "helm-controller",
        "kustomize-controller",
        "notification-controller",
        "source-controller",
    ] {
        assert!(
            err.contains(&format!("✔ {name}: deployment ready")),
            "{err}"
        );
    }
    assert!(err.contains("✔ install finished"), "{err}");
    let out = ferroflux(&["check", "--timeout=30s", "--poll-interval=1s"]);
    let err = text(&out.stderr);
    kubelet.abort();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("✔ source-controller: deployment ready"),
        "{err}"
    );
    assert!(err.contains("✔ all checks passed"), "{err}");

    // Uninstall without a terminal and without --silent refuses; --dry-run deletes nothing.
    let out = ferroflux(&["uninstall"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("deletes every Flux object"),
        "{}",
        text(&out.stderr)
    );
    let out = ferroflux(&["uninstall", "--dry-run", "--silent"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io deleted (dry run)"
        ),
        "{err}"
    );
    assert!(
        deployments
            .get_opt("source-controller")
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn helm_template_renders_a_local_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let chart = tmp.path().join("hello");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: hello\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "replicas: 1\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n  namespace: {{ .Release.Namespace }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args([
            "helm",
            "template",
            "demo",
            chart.to_str().unwrap(),
            "--set",
            "replicas=3",
            "-n",
            "apps",
        ])
        .output()
        .unwrap();
    let rendered = ok(&out);
    assert!(rendered.contains("name: demo-cm"), "{rendered}");
    assert!(rendered.contains("namespace: apps"), "{rendered}");
    assert!(rendered.contains("replicas: \"3\""), "{rendered}");
    // Without -n the release namespace is helm's "default", whatever flux's namespace is.
    let out = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args(["helm", "template", "demo", chart.to_str().unwrap()])
        .env("FLUX_SYSTEM_NAMESPACE", "flux-system")
        .output()
        .unwrap();
    let rendered = ok(&out);
    assert!(rendered.contains("namespace: default"), "{rendered}");
}

fn ferroflux_in(dev_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .arg("--kubeconfig")
        .arg(&cp().kubeconfig_path)
        .args(args)
        .env("NO_COLOR", "1")
        .env("FERROFLUX_DEV_DIR", dev_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ferroflux")
}

const KS_LOG: &str = concat!(
    r#"{"timestamp":"2026-11-29T12:00:00Z","level":"INFO","message":"starting servers","metrics":"127.0.0.1:1"}"#,
    "\n",
    r#"{"timestamp":"2026-11-29T12:00:01Z","level":"INFO","message":"Reconciliation finished","kind":"Kustomization","namespace":"flux-system","name":"podinfo"}"#,
    "\n",
    "a line that is not JSON\n",
    r#"{"timestamp":"2026-11-29T12:00:02Z","level":"ERROR","message":"reconciliation failed","namespace":"apps","name":"podinfo","error":"kustomization.yaml not found"}"#,
    "\n",
    r#"{"level":"info","msg":"applied","Kustomization":{"name":"other","namespace":"flux-system"}}"#,
    "\n",
);

#[test]
fn logs_of_the_local_demo_are_filtered_and_formatted_like_flux() {
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("kustomize-controller.log"), KS_LOG).unwrap();
    std::fs::write(dev.path().join("git-server.log"), "serving\n").unwrap();
    // -n flux-system by default: the object in `apps` is left out, as Flux does.
    let out = ok(&ferroflux_in(
        dev.path(),
        &["logs", "--kind", "Kustomization", "--name", "podinfo"],
    ));
    assert_eq!(
        out,
        "2026-11-29T12:00:01Z info Kustomization/podinfo.flux-system - Reconciliation finished \n"
    );
    // -A and --level: the failure of the Kustomization in `apps`, with its error.
    let out = ok(&ferroflux_in(
        dev.path(),
        &["logs", "-A", "--level", "error"],
    ));
    assert_eq!(
        out,
        "2026-11-29T12:00:02Z error Kustomization/podinfo.apps - reconciliation failed kustomization.yaml not found\n"
    );
    let out = ok(&ferroflux_in(dev.path(), &["logs", "-A", "--tail", "1"]));
    assert_eq!(out, " info Kustomization/other.flux-system - applied \n");
    // A usage error exits 1, as flux does.
    let out = ferroflux_in(dev.path(), &["logs", "--level", "loud"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("loud"), "{}", text(&out.stderr));

    // --follow prints lines written later, until --timeout.
    let child = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
        .args([
            "logs",
            "-f",
            "-A",
            "--level=error",
            "--timeout=4s",
            "--kubeconfig",
        ])
        .arg(&cp().kubeconfig_path)
        .env("FERROFLUX_DEV_DIR", dev.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dev.path().join("kustomize-controller.log"))
        .unwrap();
    writeln!(
        file,
        r#"{{"timestamp":"2026-11-29T12:00:09Z","level":"ERROR","message":"later","namespace":"apps","name":"late"}}"#
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = ok(&out);
    assert!(
        stdout.ends_with("2026-11-29T12:00:09Z error Kustomization/late.apps - later \n"),
        "{stdout}"
    );

    // Nothing anywhere: exit 1, and what to do.
    let empty = tempfile::tempdir().unwrap();
    let out = ferroflux_in(empty.path(), &["logs", "--flux-namespace", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no Flux pods found in namespace \"nowhere\"")
            && err.contains("ferroflux install")
            && err.contains("ferroflux dev up"),
        "{err}"
    );
}

/// A controller Deployment as deploy/ has it (labels only; nothing runs it here).
fn controller_deployment(ns: &str, name: &str, flux: bool) -> Value {
    let mut labels = json!({"app.kubernetes.io/component": name});
    if flux {
        labels["app.kubernetes.io/part-of"] = json!("flux");
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "manager", "image": "ferroflux/controllers"}]}}},
    })
}

fn controller_pod(ns: &str, name: &str, app: &str, node: Option<&str>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"nodeName": node, "automountServiceAccountToken": false,
                 "containers": [{"name": "manager", "image": "ferroflux/controllers"}]},
    })
}

/// The cluster path of `logs`: the controller pods are found through their Deployments as
/// Flux does, and the pods/log read is attempted. No kubelet runs here, so the API server
/// cannot serve a pod's log: what is checked is that the right pods are asked and that the
/// failure says what is wrong and what to look at. Reading live logs is not exercised.
#[tokio::test]
async fn logs_in_a_cluster_reads_the_controller_pods_and_explains_when_they_cannot_serve_logs() {
    let (client, ns) = setup("cli-logs").await;
    let apply = |v: Value| kubectl_apply(&serde_json::to_string(&v).unwrap());
    apply(controller_deployment(&ns, "kustomize-controller", true));
    // Not a Flux component: never read.
    apply(controller_deployment(&ns, "podinfo", false));
    apply(controller_pod(&ns, "podinfo-1", "podinfo", Some("node-1")));
    // The demo's logs exist too: pods, when there are, take precedence over them.
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("kustomize-controller.log"), KS_LOG).unwrap();

    // A controller Deployment without pods: nothing to read in the cluster, so the
    // local demo's logs are shown.
    let out = ok(&ferroflux_in(
        dev.path(),
        &["logs", "-A", "--flux-namespace", &ns],
    ));
    assert!(out.contains("Reconciliation finished"), "{out}");

    // An unscheduled pod: the API server refuses, and the message says why.
    apply(controller_pod(
        &ns,
        "kustomize-controller-1",
        "kustomize-controller",
        None,
    ));
    let out = ferroflux_in(dev.path(), &["logs", "--flux-namespace", &ns]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}{}", text(&out.stdout));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(
        err.contains(&format!(
            "reading the logs of pod {ns}/kustomize-controller-1 failed"
        )),
        "{err}"
    );
    assert!(err.contains("not scheduled on a node"), "{err}");
    assert!(
        err.contains(&format!(
            "kubectl -n {ns} describe pod kustomize-controller-1"
        )),
        "{err}"
    );
    assert!(!err.contains("podinfo-1"), "{err}");
    assert!(
        err.contains("failed to collect logs from 1 of 1 Flux pods"),
        "{err}"
    );

    // A pod on a node: the API server asks that node's kubelet; none answers here.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    pods.delete("kustomize-controller-1", &Default::default())
        .await
        .unwrap();
    apply(controller_pod(
        &ns,
        "kustomize-controller-2",
        "kustomize-controller",
        Some("node-1"),
    ));
    let out = ferroflux_in(
        dev.path(),
        &["logs", "--flux-namespace", &ns, "--since=2m", "--tail=10"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "reading the logs of pod {ns}/kustomize-controller-2 failed"
        )),
        "{err}"
    );
    assert!(
        err.contains("kubelet of node node-1") && err.contains("kubectl get node node-1"),
        "{err}"
    );
}

/// --context picks the context as kubectl does, and $KUBECONFIG is read when --kubeconfig
/// is not given: a kubeconfig whose current context names a dead server works only with
/// --context naming the live one.
#[tokio::test]
async fn context_and_kubeconfig_env_select_the_cluster() {
    let (_client, ns) = setup("cli-context").await;
    create_git(&ns, "podinfo");
    let real: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cp().kubeconfig_path).unwrap()).unwrap();
    let mut config = real.clone();
    let mut dead_cluster = real["clusters"][0].clone();
    dead_cluster["name"] = "dead".into();
    dead_cluster["cluster"]["server"] = "https://127.0.0.1:9".into();
    let mut dead_context = real["contexts"][0].clone();
    dead_context["name"] = "dead".into();
    dead_context["context"]["cluster"] = "dead".into();
    config["clusters"]
        .as_sequence_mut()
        .unwrap()
        .push(dead_cluster);
    config["contexts"]
        .as_sequence_mut()
        .unwrap()
        .push(dead_context);
    config["current-context"] = "dead".into();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferroflux"))
            .args(["get", "sources", "git", "-n", &ns, "--timeout=10s"])
            .args(extra)
            .env("KUBECONFIG", &path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let out = run(&["--context", "ferroflux"]);
    assert!(ok(&out).contains("podinfo"));
    // --cluster overrides the context's cluster, as kubectl's flag does.
    let out = run(&["--cluster", "ferroflux"]);
    assert!(ok(&out).contains("podinfo"));
    // --server points the dead context at the live API server, as kubectl's flag does.
    let out = run(&["--server", &cp().server]);
    assert!(ok(&out).contains("podinfo"));
    let out = run(&["--context", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

/// `build kustomization --ignore-paths`: the .gitignore-style patterns leave files out of
/// the build (offline, with --kustomization-file; no kustomization.yaml, so every manifest
/// of the directory is a resource, as the controller generates it).
#[test]
fn build_leaves_out_ignore_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    std::fs::create_dir_all(dir.join("skip")).unwrap();
    let cm = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    std::fs::write(dir.join("a.yaml"), cm("a")).unwrap();
    std::fs::write(dir.join("c.yaml"), cm("c")).unwrap();
    std::fs::write(dir.join("skip/b.yaml"), cm("b")).unwrap();
    let ks = tmp.path().join("ks.yaml");
    std::fs::write(
        &ks,
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n  namespace: flux-system\n\
         spec:\n  interval: 10m\n  path: ./\n  prune: true\n  targetNamespace: apps\n  sourceRef:\n    kind: GitRepository\n    name: repo\n",
    )
    .unwrap();
    let build = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferroflux"))
            .args(["build", "kustomization", "app", "--path"])
            .arg(&dir)
            .arg("--kustomization-file")
            .arg(&ks)
            .args(extra)
            .output()
            .unwrap();
        let names: Vec<String> = yaml_docs(&ok(&out))
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names
    };
    let mut all = build(&[]);
    all.sort();
    assert_eq!(all, ["a", "b", "c"]);
    assert_eq!(build(&["--ignore-paths", "skip/,c.yaml"]), ["a"]);
    let mut kept = build(&["--ignore-paths=/**/b.yaml"]);
    kept.sort();
    assert_eq!(kept, ["a", "c"]);
}

/// `build kustomization --dry-run`: no cluster, the Kustomization from a file, inline
/// substitutions applied and those from ConfigMaps/Secrets skipped, as Flux does.
#[test]
fn build_dry_run_skips_substitutions_from_the_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  greeting: ${GREETING}\n",
    )
    .unwrap();
    let ks = tmp.path().join("ks.yaml");
    std::fs::write(
        &ks,
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n  namespace: flux-system\n\
         spec:\n  interval: 10m\n  path: ./\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: repo\n\
         \x20 postBuild:\n    substitute:\n      GREETING: hello\n    substituteFrom:\n    - kind: ConfigMap\n      name: vars\n",
    )
    .unwrap();
    let build = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferroflux"))
            .args(["build", "kustomization", "app", "--path"])
            .arg(&dir)
            .args(extra)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let file = ks.to_str().unwrap();
    let out = ok(&build(&["--kustomization-file", file, "--dry-run"]));
    assert!(out.contains("greeting: hello"), "{out}");
    // Without --dry-run the ConfigMap must be read, and there is no cluster.
    let out = build(&["--kustomization-file", file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pass --dry-run"),
        "{}",
        text(&out.stderr)
    );
    let out = build(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--dry-run needs --kustomization-file"),
        "{}",
        text(&out.stderr)
    );
}

/// The helm corpus's own checker (`check.py`, PyYAML) run over `ferroflux helm template`:
/// every case renders as the real `helm template` does, or fails where it fails.
#[test]
fn helm_template_passes_the_corpus_checker() {
    let corpus = workspace_root().join("../shared/corpus/helm");
    assert!(
        corpus.join("check.py").exists(),
        "the helm corpus is expected at {} (shared/ beside the checkout)",
        corpus.display()
    );
    let out = Command::new("python3")
        .arg(corpus.join("check.py"))
        .arg(corpus.join("cases"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_ferroflux"))
        .args(["helm", "template"])
        .output()
        .expect("python3");
    let report = text(&out.stdout);
    eprintln!("{report}{}", text(&out.stderr));
    let last = report.lines().last().unwrap_or_default();
    assert_eq!(last, "61 passed, 0 failed", "{report}");
    assert!(out.status.success());
}
