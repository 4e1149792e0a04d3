//! Scale benchmark (issue 5, after flux-benchmark's MTTP): N Kustomizations, each applying a
//! ServiceAccount, a Service, a ConfigMap and a Deployment scaled to 0, all built from one
//! GitRepository. Prints the time from creating the Kustomizations until every one is Ready,
//! and the peak RSS (VmHWM) of source-controller and kustomize-controller.
//!
//! `cargo bench -p ferroflux-e2e --bench kustomizations -- 100 1000`
//! Flux v2.9's published figures for N=1000: 4m13s and 223 MiB peak (kustomize-controller,
//! 16-core runner). Not a test: nothing is asserted about time.

use std::time::{Duration, Instant};

use ferroflux_e2e::{ControllerProcess, free_port};
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::{GitHttpServer, Repo};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

fn start(bin: &str, cp: &ControlPlane, ns: &str, args: &[String]) -> ControllerProcess {
    let mut all = vec!["--log-level=warn".to_string()];
    all.extend_from_slice(args);
    ControllerProcess::start(bin, &cp.kubeconfig_path, ns, &all)
}

const APP: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${APP}
---
apiVersion: v1
kind: Service
metadata:
  name: ${APP}
spec:
  selector:
    app: ${APP}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ${APP}
data:
  app: ${APP}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${APP}
spec:
  replicas: 0
  selector:
    matchLabels:
      app: ${APP}
  template:
    metadata:
      labels:
        app: ${APP}
    spec:
      serviceAccountName: ${APP}
      containers:
      - name: app
        image: ghcr.io/stefanprodan/podinfo:6.5.0
"#;

async fn run(n: usize, concurrent: u16) {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, &format!("bench-{n}")).await.unwrap();
    let git_root = tempfile::tempdir().unwrap();
    let repo = Repo::init(git_root.path(), "apps");
    repo.commit(&[("app/app.yaml", APP)], "app");
    let server = GitHttpServer::start(git_root.path(), None).await.unwrap();
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let source = start(
        env!("CARGO_BIN_EXE_e2e-source-controller"),
        cp,
        &ns,
        &[
            format!("--storage-path={}", storage.path().display()),
            format!("--storage-addr=127.0.0.1:{port}"),
            format!("--storage-adv-addr=127.0.0.1:{port}"),
        ],
    );
    let kustomize = start(
        env!("CARGO_BIN_EXE_e2e-kustomize-controller"),
        cp,
        &ns,
        &[format!("--concurrent={concurrent}")],
    );

    let git = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::erase::<ferroflux_api::source::GitRepository>(&()),
    );
    git.create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "apps"}, "spec": {"url": server.url("apps"), "interval": "10m", "ref": {"branch": "main"}}})).unwrap()).await.unwrap();
    // Wait for the artifact so the measurement is the Kustomizations' work.
    loop {
        let g = git.get("apps").await.unwrap();
        if g.data.pointer("/status/artifact/revision").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let kss = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::erase::<ferroflux_api::kustomization::Kustomization>(&()),
    );
    let began = Instant::now();
    for i in 0..n {
        let ks = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": format!("app-{i}")},
            "spec": {"interval": "1h", "path": "./app", "prune": true, "targetNamespace": ns,
                     "sourceRef": {"kind": "GitRepository", "name": "apps"}, "postBuild": {"substitute": {"APP": format!("app-{i}")}}}});
        kss.create(&PostParams::default(), &serde_json::from_value(ks).unwrap())
            .await
            .unwrap();
    }
    let created = began.elapsed();
    loop {
        let list = kss.list(&ListParams::default()).await.unwrap();
        let ready = list
            .items
            .iter()
            .filter(|k| {
                k.data
                    .pointer("/status/conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
            .count();
        if ready == n {
            break;
        }
        if began.elapsed() > Duration::from_secs(900) {
            println!("N={n}: only {ready}/{n} Ready after 15 minutes");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = began.elapsed();
    println!(
        "N={n:>5} concurrent={concurrent}: all Ready in {:>6.1}s (creating them took {:.1}s); peak RSS kustomize-controller {:.1} MiB, source-controller {:.1} MiB; {:.1} Kustomizations/s",
        elapsed.as_secs_f64(),
        created.as_secs_f64(),
        kustomize.peak_rss_mib(),
        source.peak_rss_mib(),
        n as f64 / elapsed.as_secs_f64()
    );
    drop(kustomize);
    drop(source);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let sizes: Vec<usize> = if args.is_empty() {
        vec![100]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    let concurrent: u16 = std::env::var("KS_CONCURRENT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    for n in sizes {
        run(n, concurrent).await;
    }
}
