//! `events`: core/v1 Events of Flux objects.

use anyhow::bail;
use clap::Args;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

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
