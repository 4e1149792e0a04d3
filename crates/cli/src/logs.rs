//! `logs`: the controllers' logs, as `flux logs` prints them. In a cluster: one pod per
//! controller Deployment (those labelled `app.kubernetes.io/part-of=flux` in
//! --flux-namespace), read through the API server's pods/log. Without controller pods:
//! the log files of the local demo (`ferroflux dev up`). Either way every JSON line is
//! filtered by level, kind, name and namespace and printed in Flux's format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ferroflux_api::constants::{PART_OF_LABEL, PART_OF_VALUE};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use crate::cluster::Global;
use crate::output::duration_arg;
use crate::{Outcome, ok};

/// `logs` flags (Flux's).
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  # Print the reconciliation logs of all Flux custom resources in your cluster
  ferroflux logs --all-namespaces

  # Print all logs of all Flux custom resources newer than 2 minutes
  ferroflux logs --all-namespaces --since=2m

  # Stream logs for a particular log level
  ferroflux logs --follow --level=error --all-namespaces

  # Filter logs by kind, name and namespace
  ferroflux logs --kind=Kustomization --name=podinfo --namespace=default

  # Print logs when Flux is installed in a different namespace than flux-system
  ferroflux logs --flux-namespace=my-namespace")]
pub struct LogsArgs {
    /// Log level: debug, info, warn or error.
    #[arg(long, value_parser = ["debug", "info", "warn", "error"])]
    pub level: Option<String>,
    /// Displays logs of a particular toolkit kind, e.g. GitRepository.
    #[arg(long)]
    pub kind: Option<String>,
    /// Specifies the name of the object whose logs are displayed.
    #[arg(long)]
    pub name: Option<String>,
    /// Stream the logs (until --timeout).
    #[arg(short, long)]
    pub follow: bool,
    /// Lines of recent log to display per controller (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// The namespace where the Flux components are running.
    #[arg(long, default_value = ferroflux_api::constants::DEFAULT_NAMESPACE)]
    pub flux_namespace: String,
    /// Displays logs for objects across all namespaces (otherwise only those of -n).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only logs newer than a relative duration like 5s, 2m, or 3h (default: all logs).
    #[arg(long, value_parser = duration_arg, conflicts_with = "since_time")]
    pub since: Option<Duration>,
    /// Only logs after a specific date (RFC3339; default: all logs).
    #[arg(long, value_name = "RFC3339")]
    pub since_time: Option<String>,
}

/// One controller log line, whichever logger wrote it: Flux's controllers (zap: `ts`,
/// `msg`, `controllerKind`, `name`, `namespace`, and the object as `"Kind": {name,
/// namespace}`) or ours (tracing's JSON: `timestamp`, `message`, `kind`, `name`,
/// `namespace`, span fields under `span`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub ts: String,
    pub level: String,
    pub message: String,
    pub error: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `keys` found at the top level, then in `fields` and `span`.
fn field(obj: &serde_json::Map<String, Value>, keys: &[&str]) -> Option<String> {
    let scopes = [
        Some(obj),
        obj.get("fields").and_then(Value::as_object),
        obj.get("span").and_then(Value::as_object),
    ];
    scopes
        .into_iter()
        .flatten()
        .find_map(|scope| keys.iter().find_map(|k| scope.get(*k).and_then(text)))
}

/// Parses a log line; `None` for lines that are not JSON objects (Flux skips them too).
/// `controller_kind` is the kind the writing controller reconciles, for lines that do
/// not say (kustomize-controller: Kustomization).
pub fn parse_line(line: &str, controller_kind: Option<&str>) -> Option<Entry> {
    if !line.starts_with('{') {
        return None;
    }
    let value: Value = serde_json::from_str(line).ok()?;
    let obj = value.as_object()?;
    let mut entry = Entry {
        ts: field(obj, &["ts", "timestamp", "time"]).unwrap_or_default(),
        level: field(obj, &["level"]).unwrap_or_default().to_lowercase(),
        message: field(obj, &["msg", "message"]).unwrap_or_default(),
        error: field(obj, &["error", "err"]).unwrap_or_default(),
        kind: field(obj, &["reconciler kind", "controllerKind", "kind"]).unwrap_or_default(),
        name: field(obj, &["name"]).unwrap_or_default(),
        namespace: field(obj, &["namespace"]).unwrap_or_default(),
    };
    // controller-runtime names the object as `"Kustomization": {"name", "namespace"}`.
    if entry.name.is_empty()
        && let Some((kind, inner)) = obj.iter().find(|(k, v)| {
            k.starts_with(|c: char| c.is_ascii_uppercase()) && v.get("name").is_some()
        })
    {
        entry.name = inner.get("name").and_then(text).unwrap_or_default();
        entry.namespace = inner.get("namespace").and_then(text).unwrap_or_default();
        if entry.kind.is_empty() {
            entry.kind = kind.clone();
        }
    }
    // Only lines about an object get the controller's kind: startup and client lines
    // stay kind-less, as with Flux's controllerKind.
    if entry.kind.is_empty()
        && !entry.name.is_empty()
        && let Some(kind) = controller_kind
    {
        entry.kind = kind.to_string();
    }
    Some(entry)
}

/// What `logs` keeps: Flux's `filterPrintLog`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub level: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    /// `None`: every namespace (-A).
    pub namespace: Option<String>,
}

impl Filter {
    pub fn keeps(&self, e: &Entry) -> bool {
        self.level.as_deref().is_none_or(|l| l == e.level)
            && self
                .kind
                .as_deref()
                .is_none_or(|k| k.eq_ignore_ascii_case(&e.kind))
            && self
                .name
                .as_deref()
                .is_none_or(|n| n.eq_ignore_ascii_case(&e.name))
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns.eq_ignore_ascii_case(&e.namespace))
    }
}

/// Flux's line format: `TS LEVEL KIND[/NAME.NAMESPACE] - MESSAGE ERROR`.
pub fn format_entry(e: &Entry) -> String {
    let object = if e.name.is_empty() {
        e.kind.clone()
    } else {
        format!("{}/{}.{}", e.kind, e.name, e.namespace)
    };
    format!("{} {} {object} - {} {}", e.ts, e.level, e.message, e.error)
}

/// Parses, filters and formats one line; `None` when it is dropped.
pub fn render(line: &str, controller_kind: Option<&str>, filter: &Filter) -> Option<String> {
    parse_line(line, controller_kind)
        .filter(|e| filter.keeps(e))
        .map(|e| format_entry(&e))
}

/// The kind a controller reconciles when it reconciles only one.
pub fn controller_kind(controller: &str) -> Option<&'static str> {
    match controller {
        "kustomize-controller" => Some("Kustomization"),
        "helm-controller" => Some("HelmRelease"),
        _ => None,
    }
}

/// The pod to read for one Deployment, as kubectl's `ByLogging`: scheduled before
/// unscheduled, Running before Pending before the rest, ready before not, then newest.
pub fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    let rank = |p: &Pod| {
        let spec_node = scheduled(p);
        let status = p.status.as_ref();
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Running") => 0,
            Some("Pending") => 1,
            Some("Unknown") => 2,
            _ => 3,
        };
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (
            !spec_node,
            phase,
            !ready,
            std::cmp::Reverse(created),
            p.metadata.name.clone(),
        )
    };
    pods.iter().min_by_key(|p| rank(p))
}

/// Whether the pod is bound to a node (only a node's kubelet can serve its logs).
pub fn scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Turns a failed pods/log read (`err` is `None` when the pod has no node, which the API
/// server answers with an empty log) into what the user can do about it.
pub fn log_error(pod: &Pod, err: Option<&kube::Error>) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let said = match err {
        Some(kube::Error::Api(status)) => format!("the API server said: {}; ", status.message),
        Some(other) => format!("{other}; "),
        None => String::new(),
    };
    let why = match node.filter(|_| scheduled(pod)) {
        None => format!(
            "the pod is not scheduled on a node, so no kubelet runs it or can serve its logs: \
             see the scheduling events with `kubectl -n {ns} describe pod {name}`"
        ),
        Some(node) => format!(
            "the API server reads pod logs from the kubelet of node {node}, which did not serve them: \
             check the node with `kubectl get node {node}` and the pod with `kubectl -n {ns} describe pod {name}`"
        ),
    };
    format!("reading the logs of pod {ns}/{name} failed: {said}{why}")
}

/// Finds one pod per controller Deployment in `ns`, as `flux logs` does. `Ok(None)` when
/// no controller runs there as a pod.
async fn controller_pods(
    client: &kube::Client,
    ns: &str,
) -> anyhow::Result<Option<Vec<(String, Pod)>>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let selector = format!("{PART_OF_LABEL}={PART_OF_VALUE}");
    let list = deployments
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing the controller Deployments in namespace {ns:?}"))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    for d in list.items {
        let name = d.metadata.name.clone().unwrap_or_default();
        let labels = d
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .unwrap_or_default();
        if labels.is_empty() {
            continue;
        }
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let list = pods
            .list(&ListParams::default().labels(&selector.join(",")))
            .await
            .with_context(|| format!("listing the pods of Deployment {ns}/{name}"))?;
        if let Some(pod) = pick_pod(&list.items) {
            found.push((name, pod.clone()));
        }
    }
    Ok((!found.is_empty()).then_some(found))
}

fn log_params(args: &LogsArgs) -> anyhow::Result<LogParams> {
    let since_time = match &args.since_time {
        Some(t) => Some(
            t.parse::<k8s_openapi::jiff::Timestamp>()
                .map_err(|_| anyhow::anyhow!("{t} is not a valid (RFC3339) time"))?,
        ),
        None => None,
    };
    Ok(LogParams {
        follow: args.follow,
        tail_lines: (args.tail > -1).then_some(args.tail),
        // Rounded up to the second, as kubectl does.
        since_seconds: args.since.map(|d| d.as_secs_f64().ceil() as i64),
        since_time,
        ..Default::default()
    })
}

/// Streams one pod's log, printing the lines the filter keeps.
async fn pod_log(
    pods: &Api<Pod>,
    controller: &str,
    pod: &Pod,
    mut lp: LogParams,
    filter: &Filter,
) -> Result<(), String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers = pod.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    if containers > 1 {
        lp.container = Some("manager".into());
    }
    // The API server answers an empty log for a pod without a node rather than an error:
    // say so instead of printing nothing.
    if !scheduled(pod) {
        return Err(log_error(pod, None));
    }
    let stream = pods
        .log_stream(&name, &lp)
        .await
        .map_err(|e| log_error(pod, Some(&e)))?;
    let mut lines = stream.lines();
    let kind = controller_kind(controller);
    while let Some(line) = lines.next().await {
        let line = line.map_err(|e| format!("reading the logs of pod {name}: {e}"))?;
        if let Some(out) = render(&line, kind, filter) {
            println!("{out}");
        }
    }
    Ok(())
}

async fn cluster_logs(
    client: &kube::Client,
    args: &LogsArgs,
    filter: &Filter,
    found: Vec<(String, Pod)>,
) -> anyhow::Result<()> {
    let lp = log_params(args)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.flux_namespace);
    let reads = found
        .iter()
        .map(|(controller, pod)| pod_log(&pods, controller, pod, lp.clone(), filter));
    // Followed logs interleave; otherwise one controller after the other.
    let results: Vec<Result<(), String>> = if args.follow {
        futures::future::join_all(reads).await
    } else {
        let mut results = Vec::new();
        for read in reads {
            results.push(read.await);
        }
        results
    };
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    for f in &failures {
        crate::output::failure(f);
    }
    if !failures.is_empty() {
        bail!(
            "failed to collect logs from {} of {} Flux pods",
            failures.len(),
            found.len()
        );
    }
    Ok(())
}

/// The demo's controller log files, sorted.
fn demo_logs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "log")
            && p.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.ends_with("-controller"))
    });
    files.sort();
    files
}

/// Prints the kept lines of `text`, the last `tail` of them when tail > -1.
fn print_rendered(text: &str, kind: Option<&str>, filter: &Filter, tail: i64) {
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| render(l, kind, filter))
        .collect();
    let skip = if tail > -1 {
        lines.len().saturating_sub(tail as usize)
    } else {
        0
    };
    for line in &lines[skip..] {
        println!("{line}");
    }
}

/// The local demo's logs; with --follow, new lines as they are written (until --timeout).
async fn local_logs(files: &[PathBuf], args: &LogsArgs, filter: &Filter) -> anyhow::Result<()> {
    let mut offsets = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let controller = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        print_rendered(
            &String::from_utf8_lossy(&bytes),
            controller_kind(controller),
            filter,
            args.tail,
        );
        offsets.push(bytes.len());
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (file, offset) in files.iter().zip(offsets.iter_mut()) {
            let bytes = std::fs::read(file).unwrap_or_default();
            // Only whole lines; a partial last line waits for the next round.
            let end = bytes[..]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            if end > *offset {
                let controller = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                print_rendered(
                    &String::from_utf8_lossy(&bytes[*offset..end]),
                    controller_kind(controller),
                    filter,
                    -1,
                );
                *offset = end;
            }
        }
    }
}

/// `logs`.
pub async fn logs(g: &Global, args: LogsArgs) -> Outcome {
    let filter = Filter {
        level: args.level.clone(),
        kind: args.kind.clone(),
        name: args.name.clone(),
        namespace: (!args.all_namespaces).then(|| g.namespace.clone()),
    };
    // Checked before anything is read, so that a typo fails at once.
    log_params(&args)?;
    let client = g.client().await;
    let found = match &client {
        Ok(client) => controller_pods(client, &args.flux_namespace).await,
        Err(err) => Err(anyhow::anyhow!("{err:#}")),
    };
    let run = async {
        match (client, found) {
            (Ok(client), Ok(Some(found))) => cluster_logs(&client, &args, &filter, found).await,
            (_, found) => {
                let dir = crate::dev::dev_dir();
                let files = demo_logs(&dir);
                if files.is_empty() {
                    let why = match found {
                        Err(err) => format!("the cluster could not be asked ({err:#})"),
                        _ => format!(
                            "no Flux pods found in namespace {:?} (Deployments labelled {PART_OF_LABEL}={PART_OF_VALUE}, and their pods)",
                            args.flux_namespace
                        ),
                    };
                    bail!(
                        "{why}, and no local demo logs in {}: install the controllers with `ferroflux install` \
                         (see `ferroflux check`), pass --flux-namespace if they run elsewhere, or start the demo with `ferroflux dev up`",
                        dir.display()
                    );
                }
                local_logs(&files, &args, &filter).await
            }
        }
    };
    if args.follow {
        // Flux bounds every command by --timeout, streaming ones too.
        if let Ok(result) = tokio::time::timeout(g.timeout, run).await {
            result?;
        }
    } else {
        run.await?;
    }
    ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = r#"{"timestamp":"2026-11-29T12:00:00.123Z","level":"ERROR","namespace":"apps","name":"podinfo","reason":"BuildFailed","error":"kustomization.yaml not found","message":"reconciliation failed","target":"ferroflux_kustomize_controller::reconcile"}"#;
    const FLUX: &str = r#"{"level":"info","ts":"2026-11-29T12:00:01.000Z","msg":"stored artifact for commit 'x'","controller":"gitrepository","controllerGroup":"source.toolkit.fluxcd.io","controllerKind":"GitRepository","GitRepository":{"name":"podinfo","namespace":"flux-system"},"namespace":"flux-system","name":"podinfo","reconcileID":"1"}"#;
    const RUNTIME: &str =
        r#"{"level":"info","msg":"applied","Kustomization":{"name":"podinfo","namespace":"apps"}}"#;

    #[test]
    fn lines_of_either_logger_parse() {
        let e = parse_line(OURS, controller_kind("kustomize-controller")).unwrap();
        assert_eq!(
            e,
            Entry {
                ts: "2026-11-29T12:00:00.123Z".into(),
                level: "error".into(),
                message: "reconciliation failed".into(),
                error: "kustomization.yaml not found".into(),
                kind: "Kustomization".into(),
                name: "podinfo".into(),
                namespace: "apps".into(),
            }
        );
        let f = parse_line(FLUX, None).unwrap();
        assert_eq!(
            (f.kind.as_str(), f.name.as_str(), f.level.as_str()),
            ("GitRepository", "podinfo", "info")
        );
        let r = parse_line(RUNTIME, None).unwrap();
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.namespace.as_str()),
            ("Kustomization", "podinfo", "apps")
        );
        assert_eq!(parse_line("I1129 plain text", None), None);
        assert_eq!(parse_line("{not json", None), None);
    }

    #[test]
    fn lines_print_in_flux_format() {
        let e = parse_line(OURS, Some("Kustomization")).unwrap();
        assert_eq!(
            format_entry(&e),
            "2026-11-29T12:00:00.123Z error Kustomization/podinfo.apps - reconciliation failed kustomization.yaml not found"
        );
        let startup = parse_line(
            r#"{"timestamp":"t","level":"INFO","message":"starting servers","metrics":"0.0.0.0:8080"}"#,
            None,
        )
        .unwrap();
        assert_eq!(format_entry(&startup), "t info  - starting servers ");
    }

    #[test]
    fn the_filter_is_fluxs() {
        let all = Filter::default();
        let e = parse_line(OURS, Some("Kustomization")).unwrap();
        assert!(all.keeps(&e));
        // The namespace of -n unless -A: flux-system does not hold this object.
        let ns = |n: &str| Filter {
            namespace: Some(n.into()),
            ..Default::default()
        };
        assert!(!ns("flux-system").keeps(&e));
        assert!(ns("apps").keeps(&e));
        let level = |l: &str| Filter {
            level: Some(l.into()),
            ..Default::default()
        };
        assert!(level("error").keeps(&e) && !level("info").keeps(&e));
        let kind = |k: &str| Filter {
            kind: Some(k.into()),
            ..Default::default()
        };
        assert!(kind("kustomization").keeps(&e) && !kind("GitRepository").keeps(&e));
        let name = |n: &str| Filter {
            name: Some(n.into()),
            ..Default::default()
        };
        assert!(name("PodInfo").keeps(&e) && !name("podinfo2").keeps(&e));
        assert_eq!(render("not json", None, &all), None);
    }

    fn pod(name: &str, node: Option<&str>, phase: &str, created: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": [{"name": "manager"}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_pod_read_is_the_running_one_then_the_newest() {
        let pods = vec![
            pod("pending", None, "Pending", "2026-01-03T00:00:00Z"),
            pod("old", Some("n1"), "Running", "2026-01-01T00:00:00Z"),
            pod("new", Some("n1"), "Running", "2026-01-02T00:00:00Z"),
            pod("failed", Some("n1"), "Failed", "2026-01-04T00:00:00Z"),
        ];
        assert_eq!(
            pick_pod(&pods).unwrap().metadata.name.as_deref(),
            Some("new")
        );
        assert_eq!(
            pick_pod(&pods[..1]).unwrap().metadata.name.as_deref(),
            Some("pending")
        );
        assert!(pick_pod(&[]).is_none());
    }

    #[test]
    fn a_pod_that_cannot_serve_logs_is_explained() {
        let mut p = pod(
            "kustomize-controller-1",
            None,
            "Pending",
            "2026-01-01T00:00:00Z",
        );
        p.metadata.namespace = Some("flux-system".into());
        assert!(!scheduled(&p));
        assert_eq!(
            log_error(&p, None),
            "reading the logs of pod flux-system/kustomize-controller-1 failed: the pod is not scheduled on a node, \
             so no kubelet runs it or can serve its logs: see the scheduling events with \
             `kubectl -n flux-system describe pod kustomize-controller-1`"
        );
        let mut p = pod(
            "kustomize-controller-2",
            Some("node-1"),
            "Running",
            "2026-01-01T00:00:00Z",
        );
        p.metadata.namespace = Some("flux-system".into());
        assert!(scheduled(&p));
        let msg = log_error(&p, None);
        assert!(
            msg.contains("kubelet of node node-1") && msg.contains("kubectl get node node-1"),
            "{msg}"
        );
    }
}
