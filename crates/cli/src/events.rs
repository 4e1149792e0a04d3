//! `events` (core/v1 Events of Flux objects) and `logs` (controller logs).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use crate::cluster::{self, Global};
use crate::output::table;
use crate::{Outcome, ok};

/// `events` flags.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Get events for a particular object, in the format '<kind>/<name>' (e.g. Kustomization/podinfo).
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub for_object: Option<String>,
    /// Display events from all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `logs` flags.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Only lines about this Flux kind (e.g. Kustomization).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only lines about this object name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only lines of this level: debug, info or error.
    #[arg(long)]
    pub level: Option<String>,
    /// Lines of recent log to display per controller.
    #[arg(long)]
    pub tail: Option<i64>,
    /// The namespace the controllers run in.
    #[arg(long, default_value = ferroflux_api::constants::DEFAULT_NAMESPACE)]
    pub flux_namespace: String,
}

fn age(ts: Option<k8s_openapi::jiff::Timestamp>) -> String {
    let Some(ts) = ts else {
        return "<unknown>".into();
    };
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(ts)
        .as_secs()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `events`.
pub async fn events(g: &Global, args: EventsArgs) -> Outcome {
    let client = g.client().await?;
    let api: Api<Event> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, &g.namespace)
    };
    let (want_kind, want_name) = match &args.for_object {
        Some(f) => match f.split_once('/') {
            Some((k, n)) => {
                let Some(kind) = cluster::by_kind(k) else {
                    bail!(
                        "unknown kind '{k}' in --for={f}: use a Flux kind such as Kustomization/NAME or GitRepository/NAME"
                    );
                };
                (Some(kind.kind.to_string()), Some(n.to_string()))
            }
            None => bail!("--for must be '<kind>/<name>', e.g. --for Kustomization/podinfo"),
        },
        None => (None, None),
    };
    let mut items: Vec<Event> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            let o = &e.involved_object;
            let flux = o
                .api_version
                .as_deref()
                .is_some_and(|v| v.contains("toolkit.fluxcd.io"));
            flux && want_kind
                .as_deref()
                .is_none_or(|k| o.kind.as_deref() == Some(k))
                && want_name
                    .as_deref()
                    .is_none_or(|n| o.name.as_deref() == Some(n))
        })
        .collect();
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    items.sort_by_key(when);
    let mut header = vec!["Last seen", "Type", "Reason", "Object", "Message"];
    if args.all_namespaces {
        header.insert(0, "Namespace");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            let o = &e.involved_object;
            let mut row = vec![
                age(when(e)),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                format!(
                    "{}/{}",
                    o.kind.clone().unwrap_or_default(),
                    o.name.clone().unwrap_or_default()
                ),
                e.message.clone().unwrap_or_default().trim().to_string(),
            ];
            if args.all_namespaces {
                row.insert(0, e.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    if rows.is_empty() {
        crate::output::action(format!(
            "no events found for Flux objects in {}",
            if args.all_namespaces {
                "any namespace".to_string()
            } else {
                format!("{} namespace", g.namespace)
            }
        ));
        return ok();
    }
    print!("{}", table(&header, &rows));
    ok()
}

const CONTROLLERS: [&str; 4] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
];

fn keep(line: &str, args: &LogsArgs) -> bool {
    let lower = line.to_lowercase();
    args.kind
        .as_deref()
        .is_none_or(|k| lower.contains(&k.to_lowercase()))
        && args.name.as_deref().is_none_or(|n| line.contains(n))
        && args
            .level
            .as_deref()
            .is_none_or(|l| lower.contains(&l.to_lowercase()))
}

/// `logs`: the controllers' pods in a cluster, or the local demo's log files.
pub async fn logs(g: &Global, args: LogsArgs) -> Outcome {
    let mut printed = false;
    if let Ok(client) = g.client().await {
        let pods: Api<Pod> = Api::namespaced(client, &args.flux_namespace);
        let selector = format!("app in ({})", CONTROLLERS.join(","));
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            for pod in list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let lp = LogParams {
                    tail_lines: args.tail,
                    ..Default::default()
                };
                match pods.logs(&name, &lp).await {
                    Ok(text) => {
                        for line in text.lines().filter(|l| keep(l, &args)) {
                            println!("{line}");
                        }
                        printed = true;
                    }
                    Err(err) => {
                        crate::output::failure(format!("reading the logs of pod {name}: {err}"))
                    }
                }
            }
        }
    }
    if !printed {
        let dir: PathBuf = crate::dev::dev_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "log"));
        files.sort();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| keep(l, &args)).collect();
            let skip = args
                .tail
                .map(|t| lines.len().saturating_sub(t.max(0) as usize))
                .unwrap_or(0);
            let source = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            for line in &lines[skip..] {
                println!("{source}: {line}");
            }
            printed = true;
        }
        if !printed {
            bail!(
                "no controller pods (label app=<controller>) in the '{}' namespace and no local demo logs in {}: \
                 install the controllers with `ferroflux install` or start the demo with `ferroflux dev up`",
                args.flux_namespace,
                dir.display()
            );
        }
    }
    ok()
}
