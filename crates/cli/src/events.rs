//! `events`: core/v1 Events of Flux objects, listed or watched.

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;

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
    /// Stream the events after listing them (until --timeout).
    #[arg(short, long)]
    pub watch: bool,
    /// Only events of these types, comma-separated (Normal, Warning).
    #[arg(long, value_delimiter = ',', value_parser = ["Normal", "Warning"])]
    pub types: Vec<String>,
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

/// Which events are shown: those of Flux objects, narrowed by --for and --types.
#[derive(Debug, Default)]
pub struct Selection {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub types: Vec<String>,
}

impl Selection {
    /// Reads `--for KIND/NAME` and `--types`.
    pub fn from_args(for_object: Option<&str>, types: &[String]) -> anyhow::Result<Selection> {
        let (kind, name) = match for_object {
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
        Ok(Selection {
            kind,
            name,
            types: types.to_vec(),
        })
    }

    /// Whether `e` is shown.
    pub fn keeps(&self, e: &Event) -> bool {
        let o = &e.involved_object;
        let flux = o
            .api_version
            .as_deref()
            .is_some_and(|v| v.contains("toolkit.fluxcd.io"));
        flux && self
            .kind
            .as_deref()
            .is_none_or(|k| o.kind.as_deref() == Some(k))
            && self
                .name
                .as_deref()
                .is_none_or(|n| o.name.as_deref() == Some(n))
            && (self.types.is_empty()
                || e.type_
                    .as_deref()
                    .is_some_and(|t| self.types.iter().any(|w| w.eq_ignore_ascii_case(t))))
    }
}

fn when(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn header(all_namespaces: bool) -> Vec<&'static str> {
    let mut header = vec!["Last seen", "Type", "Reason", "Object", "Message"];
    if all_namespaces {
        header.insert(0, "Namespace");
    }
    header
}

fn row(e: &Event, all_namespaces: bool) -> Vec<String> {
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
    if all_namespaces {
        row.insert(0, e.metadata.namespace.clone().unwrap_or_default());
    }
    row
}

/// `--watch`: the events as they come (the current ones first), until --timeout.
async fn watch(g: &Global, api: Api<Event>, sel: &Selection, all_ns: bool) -> anyhow::Result<()> {
    let run = async {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        let mut initial: Vec<Event> = Vec::new();
        let mut first = true;
        while let Some(event) = stream.next().await {
            match event? {
                watcher::Event::Init => initial.clear(),
                watcher::Event::InitApply(e) => initial.push(e),
                watcher::Event::InitDone => {
                    initial.retain(|e| sel.keeps(e));
                    initial.sort_by_key(when);
                    let rows: Vec<Vec<String>> = initial.iter().map(|e| row(e, all_ns)).collect();
                    let h = if first { header(all_ns) } else { vec![] };
                    print!("{}", table(&h, &rows));
                    first = false;
                }
                watcher::Event::Apply(e) if sel.keeps(&e) => {
                    print!("{}", table(&[], &[row(&e, all_ns)]));
                }
                _ => {}
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(g.timeout, run).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// `events`.
pub async fn events(g: &Global, args: EventsArgs) -> Outcome {
    let sel = Selection::from_args(args.for_object.as_deref(), &args.types)?;
    let client = g.client().await?;
    let api: Api<Event> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, &g.namespace)
    };
    if args.watch {
        watch(g, api, &sel, args.all_namespaces).await?;
        return ok();
    }
    let mut items: Vec<Event> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| sel.keeps(e))
        .collect();
    items.sort_by_key(when);
    let rows: Vec<Vec<String>> = items.iter().map(|e| row(e, args.all_namespaces)).collect();
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
    print!("{}", table(&header(args.all_namespaces), &rows));
    ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(api_version: &str, kind: &str, name: &str, type_: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e", "namespace": "flux-system"},
            "involvedObject": {"apiVersion": api_version, "kind": kind, "name": name},
            "type": type_, "reason": "R", "message": "m",
        }))
        .unwrap()
    }

    #[test]
    fn selection_by_flux_kind_name_and_type() {
        let ks = event(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            "podinfo",
            "Warning",
        );
        let pod = event("v1", "Pod", "podinfo", "Warning");
        let all = Selection::default();
        assert!(all.keeps(&ks) && !all.keeps(&pod));
        let sel = Selection::from_args(Some("kustomization/podinfo"), &[]).unwrap();
        assert!(sel.keeps(&ks));
        let sel = Selection::from_args(Some("GitRepository/podinfo"), &[]).unwrap();
        assert!(!sel.keeps(&ks));
        let sel = Selection::from_args(None, &["Normal".into()]).unwrap();
        assert!(!sel.keeps(&ks));
        let sel = Selection::from_args(None, &["Normal".into(), "Warning".into()]).unwrap();
        assert!(sel.keeps(&ks));
        assert!(Selection::from_args(Some("Pod/x"), &[]).is_err());
        assert!(Selection::from_args(Some("podinfo"), &[]).is_err());
    }
}
