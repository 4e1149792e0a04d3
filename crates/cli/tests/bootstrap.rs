//! `ferroflux bootstrap git` end to end: the real control plane, real git servers (git
//! http-backend with basic auth, Debian's sshd), and the real source-controller and
//! kustomize-controller running in this test process and watching the test's namespace, so
//! that the bootstrapped repository reconciles itself. No kubelet runs, so the test marks the
//! controllers' Deployments available as a kubelet would.

mod support;
use support::play_kubelet;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::{GitHttpServer, Repo, git};
use ferroflux_testenv::git_ssh::GitSshServer;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};

fn cp() -> &'static ControlPlane {
    ControlPlane::shared()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// source-controller and kustomize-controller in-process, watching one namespace.
struct Controllers {
    triggers: Vec<ferroflux_runtime::shutdown::ShutdownTrigger>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for t in &self.triggers {
            t.trigger();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Parser)]
struct KustomizeArgs {
    #[command(flatten)]
    runtime: ferroflux_runtime::RuntimeArgs,
}

impl Controllers {
    fn start(client: &kube::Client, ns: &str) -> Controllers {
        let storage = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let common = [
            "--watch-all-namespaces=false".to_string(),
            format!("--runtime-namespace={ns}"),
            "--metrics-addr=127.0.0.1:0".into(),
            "--health-addr=127.0.0.1:0".into(),
        ];
        let mut argv = vec![
            "source-controller".to_string(),
            format!("--storage-path={}", storage.path().display()),
            format!("--storage-addr={addr}"),
            format!("--storage-adv-addr={addr}"),
            format!("--git-cache-path={}", cache.path().display()),
        ];
        argv.extend(common.iter().cloned());
        let args = ferroflux_source_controller::Args::try_parse_from(argv).unwrap();
        let manager = ferroflux_runtime::Manager::with_client(
            ferroflux_source_controller::CONTROLLER,
            args.runtime.clone(),
            client.clone(),
        );
        let mut triggers = vec![manager.shutdown_trigger()];
        let source = tokio::spawn(async move {
            if let Err(e) = ferroflux_source_controller::run(args, manager, false).await {
                panic!("source-controller failed: {e:#}");
            }
        });

        let kargs = KustomizeArgs::try_parse_from(
            std::iter::once("kustomize-controller".to_string()).chain(common.iter().cloned()),
        )
        .unwrap();
        let manager = ferroflux_runtime::Manager::with_client(
            ferroflux_api::constants::KUSTOMIZE_CONTROLLER,
            kargs.runtime.clone(),
            client.clone(),
        );
        triggers.push(manager.shutdown_trigger());
        let ctx = manager.context().unwrap();
        use ferroflux_kustomize_controller::reconcile::{KustomizationReconciler, Options};
        let reconciler = Arc::new(KustomizationReconciler {
            options: Options {
                requeue_dependency: Duration::from_secs(2),
                ..Options::default()
            },
            cache: ferroflux_kustomize_controller::cache::ArtifactCache::new(
                ferroflux_artifact::fetch::Fetcher::new(Default::default()),
                tmp.path().to_path_buf(),
            ),
            base_config: cp().config(),
        });
        let runtime = kargs.runtime.clone();
        let watch_client = client.clone();
        let kustomize = tokio::spawn(async move {
            let result = manager
                .run(false, move |shutdown| async move {
                    ferroflux_runtime::controller::run_with::<
                        ferroflux_api::kustomization::Kustomization,
                        _,
                        _,
                    >(ctx, reconciler, &runtime, 4, shutdown, |c| {
                        use ferroflux_kustomize_controller::watches;
                        watches::with_config_watches(
                            watches::with_source_watches(c, watch_client.clone()),
                            watch_client,
                        )
                    })
                    .await;
                })
                .await;
            if let Err(e) = result {
                panic!("kustomize-controller failed: {e:#}");
            }
        });
        Controllers {
            triggers,
            tasks: vec![source, kustomize],
            _dirs: vec![storage, cache, tmp],
        }
    }
}

fn command(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferroflux"));
    c.arg("--kubeconfig")
        .arg(&cp().kubeconfig_path)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("GIT_PASSWORD");
    c
}

async fn ferroflux(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        command(&args)
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("run ferroflux")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn assert_ok(out: &Output) -> String {
    let err = text(&out.stderr);
    assert!(
        out.status.success(),
        "bootstrap failed ({:?})\nstdout:\n{}\nstderr:\n{err}",
        out.status,
        text(&out.stdout)
    );
    err
}

/// A fresh clone of the bare repository: (work tree, head commit).
fn clone_bare(bare: &Path) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    git(
        dir.path(),
        &["clone", "-q", &bare.display().to_string(), "c"],
    );
    let work = dir.path().join("c");
    let head = git(&work, &["rev-parse", "HEAD"]);
    (dir, head)
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join("c").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
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

async fn get(client: &kube::Client, ar: &ApiResource, ns: &str, name: &str) -> DynamicObject {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar)
        .get(name)
        .await
        .unwrap()
}

fn ready(obj: &DynamicObject) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Checks what bootstrap left in the cluster and returns the Secret's data.
async fn assert_reconciled(client: &kube::Client, ns: &str, head: &str) -> Secret {
    let revision = format!("main@sha1:{head}");
    let repo = get(
        client,
        &resource(
            "source.toolkit.fluxcd.io",
            "v1",
            "GitRepository",
            "gitrepositories",
        ),
        ns,
        ns,
    )
    .await;
    assert!(ready(&repo), "{:#}", repo.data["status"]);
    assert_eq!(repo.data["status"]["artifact"]["revision"], revision);
    let ks = get(
        client,
        &resource(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
            "kustomizations",
        ),
        ns,
        ns,
    )
    .await;
    assert!(ready(&ks), "{:#}", ks.data["status"]);
    assert_eq!(ks.data["status"]["lastAppliedRevision"], revision);
    let inventory: Vec<&str> = ks.data["status"]["inventory"]["entries"]
        .as_array()
        .expect("an inventory")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    // The repository reconciles itself: its own sync objects and the components.
    for id in [
        format!("_{ns}__Namespace"),
        format!("{ns}_{ns}_source.toolkit.fluxcd.io_GitRepository"),
        format!("{ns}_{ns}_kustomize.toolkit.fluxcd.io_Kustomization"),
        format!("{ns}_source-controller_apps_Deployment"),
        format!("{ns}_kustomize-controller_apps_Deployment"),
        format!("_cluster-reconciler-{ns}_rbac.authorization.k8s.io_ClusterRoleBinding"),
        "_gitrepositories.source.toolkit.fluxcd.io_apiextensions.k8s.io_CustomResourceDefinition"
            .to_string(),
    ] {
        assert!(
            inventory.contains(&id.as_str()),
            "{id} not in {inventory:?}"
        );
    }
    Api::<Secret>::namespaced(client.clone(), ns)
        .get("flux-system")
        .await
        .unwrap()
}

fn secret_value(s: &Secret, key: &str) -> String {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_git_over_http_reconciles_itself_and_is_idempotent() {
    let client = cp().client().await.unwrap();
    let ns = cp().namespace(&client, "boot-http").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "fleet");
    repo.commit(&[("README.md", "fleet\n")], "initial");
    let server = GitHttpServer::start(root.path(), Some(("flux", "s3cret")))
        .await
        .unwrap();
    let url = server.url("fleet");
    let _controllers = Controllers::start(&client, &ns);
    let kubelet = play_kubelet(client.clone(), &ns);
    let args = || {
        strings(&[
            "bootstrap",
            "git",
            "--url",
            &url,
            "--allow-insecure-http",
            "--token-auth",
            "--username=flux",
            "--path=clusters/test",
            "--author-email=flux@example.com",
            "-n",
            &ns,
            "--timeout=3m",
        ])
    };
    let env = vec![("GIT_PASSWORD".to_string(), "s3cret".to_string())];

    let err = assert_ok(&ferroflux(args(), env.clone()).await);
    let (dir, head) = clone_bare(&repo.bare);
    for line in [
        format!("► cloning branch \"main\" from Git repository \"{url}\""),
        "✔ cloned repository".to_string(),
        "► generating component manifests".into(),
        "✔ committed component manifests to \"main\"".into(),
        format!("► pushing component manifests to \"{url}\""),
        format!("► installing components in \"{ns}\" namespace"),
        "✔ reconciled components".into(),
        format!("► applying source secret \"{ns}/flux-system\""),
        "✔ reconciled source secret".into(),
        format!("✔ committed sync manifests to \"main\" (\"{head}\")"),
        "► applying sync manifests".into(),
        format!("◎ waiting for GitRepository \"{ns}/{ns}\" to be reconciled"),
        "✔ GitRepository reconciled successfully".into(),
        format!("◎ waiting for Kustomization \"{ns}/{ns}\" to be reconciled"),
        "✔ Kustomization reconciled successfully".into(),
        "✔ all components are healthy".into(),
    ] {
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }

    // What was pushed: Flux's files, in Flux's layout, in two commits.
    let base = format!("clusters/test/{ns}");
    assert_eq!(
        read(dir.path(), &format!("{base}/gotk-sync.yaml")),
        format!(
            "# This manifest was generated by flux. DO NOT EDIT.
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: {ns}
  namespace: {ns}
spec:
  interval: 1m0s
  ref:
    branch: main
  secretRef:
    name: flux-system
  url: {url}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {ns}
  namespace: {ns}
spec:
  interval: 10m0s
  path: ./clusters/test
  prune: true
  sourceRef:
    kind: GitRepository
    name: {ns}
"
        )
    );
    assert_eq!(
        read(dir.path(), &format!("{base}/kustomization.yaml")),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n"
    );
    let components = read(dir.path(), &format!("{base}/gotk-components.yaml"));
    assert!(
        components.starts_with("---\n# This manifest was generated by flux. DO NOT EDIT.\n# Flux Version: v2.9.4\n# Components: source-controller,kustomize-controller,helm-controller,notification-controller\n"),
        "{}",
        &components[..300]
    );
    assert!(components.contains(&format!("  namespace: {ns}\n")));
    assert!(!components.contains("flux-system"));
    let work = dir.path().join("c");
    assert_eq!(
        git(&work, &["log", "--format=%s|%an|%ae"]),
        "Add Flux sync manifests|Flux|flux@example.com\nAdd Flux v2.9.4 component manifests|Flux|flux@example.com\ninitial|ferroflux|ferroflux@example.invalid"
    );

    // The cluster syncs from the commit bootstrap pushed.
    let secret = assert_reconciled(&client, &ns, &head).await;
    assert_eq!(secret_value(&secret, "username"), "flux");
    assert_eq!(secret_value(&secret, "password"), "s3cret");

    // Running it again changes nothing in Git.
    let err = assert_ok(&ferroflux(args(), env).await);
    assert!(
        err.contains("✔ component manifests are up to date"),
        "{err}"
    );
    assert!(err.contains("✔ sync manifests are up to date"), "{err}");
    assert!(!err.contains("installing components"), "{err}");
    let (_dir, head2) = clone_bare(&repo.bare);
    assert_eq!(head2, head, "a second bootstrap must not commit");

    // A different --path would silently move the sync: refused.
    let mut moved = args();
    moved[7] = "--path=clusters/other".into();
    let out = ferroflux(
        moved,
        vec![("GIT_PASSWORD".to_string(), "s3cret".to_string())],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("would overwrite path (\"./clusters/test\")"),
        "{}",
        text(&out.stderr)
    );
    kubelet.abort();
}

#[tokio::test]
async fn bootstrap_git_refuses_bad_input_before_touching_anything() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--url=http://127.0.0.1:1/r.git"],
            "scheme http is insecure, pass --allow-insecure-http=true to allow it",
        ),
        (
            &["--url=ftp://example.com/r.git"],
            "scheme \"ftp\" is not supported",
        ),
        (
            &[
                "--url=https://example.com/r.git",
                "--components=source-controller",
            ],
            "component kustomize-controller is required",
        ),
        (
            &[
                "--url=https://example.com/r.git",
                "--components=source-controller,kustomize-controller,image-reflector-controller",
            ],
            "component image-reflector-controller is not available in ferroflux",
        ),
        (
            &["--url=https://example.com/r.git", "--path=../escape"],
            "must stay inside the repository",
        ),
    ];
    for (extra, want) in cases {
        let mut args = strings(&["bootstrap", "git"]);
        args.extend(strings(extra));
        let out = ferroflux(args, vec![]).await;
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert!(
            text(&out.stderr).contains(want),
            "{extra:?}: want {want:?} in {}",
            text(&out.stderr)
        );
    }
    // --export prints what would be committed and needs neither Git nor a cluster.
    let out = ferroflux(
        strings(&[
            "bootstrap",
            "git",
            "--url=ssh://git@example.com/org/fleet.git",
            "--path=clusters/prod",
            "--export",
        ]),
        vec![],
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.starts_with("---\n# This manifest was generated by flux."));
    assert!(stdout.contains("  url: ssh://git@example.com/org/fleet.git\n"));
    assert!(stdout.contains("  path: ./clusters/prod\n"));
}

fn known_hosts_file(ssh: &GitSshServer) -> PathBuf {
    let p = ssh.dir.path().join("test_known_hosts");
    std::fs::write(&p, &ssh.known_hosts).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_git_over_ssh_with_a_key_file_and_with_a_generated_deploy_key() {
    assert!(
        GitSshServer::available(),
        "openssh-server is required: apt-get install openssh-server"
    );
    let ssh = GitSshServer::start().await;
    let client = cp().client().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let host_key = ssh
        .known_hosts
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();

    // 1. --private-key-file: the CLI and the cluster use the same key; an empty repository.
    let ns = cp().namespace(&client, "boot-ssh").await.unwrap();
    let repo = Repo::init(root.path(), "fleet");
    let url = ssh.url(&repo.bare);
    let _controllers = Controllers::start(&client, &ns);
    let kubelet = play_kubelet(client.clone(), &ns);
    let key_file = ssh.dir.path().join("client");
    let err = assert_ok(
        &ferroflux(
            strings(&[
                "bootstrap",
                "git",
                "--url",
                &url,
                "--private-key-file",
                &key_file.display().to_string(),
                "--silent",
                "--components=source-controller,kustomize-controller",
                "-n",
                &ns,
                "--timeout=3m",
            ]),
            vec![],
        )
        .await,
    );
    assert!(err.contains("✔ public key: ssh-ed25519 "), "{err}");
    let (dir, head) = clone_bare(&repo.bare);
    let sync = read(dir.path(), &format!("{ns}/gotk-sync.yaml"));
    assert!(sync.contains(&format!("  url: {url}\n")), "{sync}");
    assert!(sync.contains("  path: ./\n"), "{sync}");
    let components = read(dir.path(), &format!("{ns}/gotk-components.yaml"));
    assert!(components.contains("# Components: source-controller,kustomize-controller\n"));
    assert!(!components.contains("app.kubernetes.io/component: helm-controller"));
    let secret = assert_reconciled(&client, &ns, &head).await;
    assert_eq!(secret_value(&secret, "identity"), ssh.client_key);
    assert!(secret_value(&secret, "known_hosts").contains(&host_key));
    assert!(secret_value(&secret, "identity.pub").starts_with("ssh-ed25519 "));
    kubelet.abort();
    drop(_controllers);

    // 2. No key file: the CLI uses the user's ssh setup (here GIT_SSH_COMMAND), the cluster a
    // new ECDSA deploy key that bootstrap prints and waits for the user to authorize.
    let ns = cp().namespace(&client, "boot-ssh-gen").await.unwrap();
    let repo = Repo::init(root.path(), "fleet-gen");
    repo.commit(&[("README.md", "fleet\n")], "initial");
    let url = ssh.url(&repo.bare);
    let _controllers = Controllers::start(&client, &ns);
    let kubelet = play_kubelet(client.clone(), &ns);
    let ssh_command = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
        key_file.display(),
        known_hosts_file(&ssh).display()
    );
    let args = strings(&[
        "bootstrap",
        "git",
        "--url",
        &url,
        "--path=clusters/gen",
        "-n",
        &ns,
        "--timeout=3m",
    ]);
    let authorized = ssh.dir.path().join("authorized_keys");
    let (status, err, printed) = tokio::task::spawn_blocking(move || {
        let mut child = command(&args)
            .env("GIT_SSH_COMMAND", ssh_command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut printed = String::new();
        let mut all = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(key) = line.strip_prefix("✔ public key: ") {
                // The user adds the deploy key to the repository, then confirms.
                printed = key.to_string();
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&authorized)
                    .unwrap();
                writeln!(f, "{key}").unwrap();
                stdin.write_all(b"y\n").unwrap();
            }
            all.push_str(&line);
            all.push('\n');
        }
        (child.wait().unwrap(), all, printed)
    })
    .await
    .unwrap();
    assert!(status.success(), "bootstrap failed:\n{err}");
    assert!(
        printed.starts_with("ecdsa-sha2-nistp384 "),
        "{printed:?}\n{err}"
    );
    assert!(
        err.contains("Please give the key access to your repository? [y/N]"),
        "{err}"
    );
    let (_dir, head) = clone_bare(&repo.bare);
    let secret = assert_reconciled(&client, &ns, &head).await;
    assert_eq!(secret_value(&secret, "identity.pub").trim(), printed);
    assert!(secret_value(&secret, "identity").contains("PRIVATE KEY"));
    kubelet.abort();
}
