//! `get sources ...|kustomizations|helmreleases|all`: Flux's status tables.

use anyhow::bail;
use clap::{Args, Subcommand};
use futures::StreamExt;
use kube::api::{DynamicObject, ListParams};
use kube::runtime::watcher;

use crate::cluster::{self, FluxKind, Global, ready_and_message, suspended};
use crate::objects::revision;
use crate::output::{table, truncate_hex};
use crate::{Outcome, ok};

/// `get` flags and kinds.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// List the requested object(s) across all namespaces.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// After listing the requested objects, watch for changes (until --timeout).
    #[arg(short, long, global = true)]
    pub watch: bool,
    /// Skip the header when printing the results.
    #[arg(long, global = true)]
    pub no_header: bool,
    /// Filter objects by label selector.
    #[arg(short = 'l', long, global = true, value_name = "SELECTOR")]
    pub label_selector: Option<String>,
    /// Filter by a status condition, e.g. ready=false or ready!=true.
    #[arg(long, global = true, value_name = "TYPE=STATUS")]
    pub status_selector: Option<String>,
    #[command(subcommand)]
    pub target: GetTarget,
}

/// An optional object name.
#[derive(Args, Debug, Clone)]
pub struct MaybeName {
    /// Only this object.
    pub name: Option<String>,
}

/// Source kinds for `get sources`.
#[derive(Subcommand, Debug)]
pub enum SourcesKind {
    /// GitRepository sources.
    Git(MaybeName),
    /// HelmRepository sources.
    Helm(MaybeName),
    /// OCIRepository sources.
    Oci(MaybeName),
    /// Bucket sources.
    Bucket(MaybeName),
    /// HelmChart sources.
    Chart(MaybeName),
    /// All sources.
    All(MaybeName),
}

/// An optional object name, and whether to show each object's source.
#[derive(Args, Debug, Clone)]
pub struct WithSource {
    /// Only this object.
    pub name: Option<String>,
    /// Show the source reference of each object (Kind/namespace/name).
    #[arg(long)]
    pub show_source: bool,
}

/// What `get` lists.
#[derive(Subcommand, Debug)]
pub enum GetTarget {
    /// Get source statuses.
    #[command(visible_alias = "source")]
    Sources {
        #[command(subcommand)]
        kind: SourcesKind,
    },
    /// Get Kustomization statuses.
    #[command(visible_aliases = ["ks", "kustomization"])]
    Kustomizations(WithSource),
    /// Get HelmRelease statuses.
    #[command(visible_aliases = ["hr", "helmrelease"])]
    Helmreleases(WithSource),
    /// Get all resources and statuses.
    All(MaybeName),
}

/// The source of a Kustomization or HelmRelease as `--show-source` prints it:
/// `Kind/namespace/name`, the namespace defaulting to the object's.
pub fn source_of(kind: &FluxKind, obj: &DynamicObject) -> String {
    let reference = match kind.kind {
        "Kustomization" => obj.data.pointer("/spec/sourceRef"),
        "HelmRelease" => obj
            .data
            .pointer("/spec/chartRef")
            .or_else(|| obj.data.pointer("/spec/chart/spec/sourceRef")),
        _ => None,
    };
    let Some(r) = reference else {
        return String::new();
    };
    let field = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let ns = match field("namespace") {
        "" => obj.metadata.namespace.as_deref().unwrap_or_default(),
        ns => ns,
    };
    format!("{}/{ns}/{}", field("kind"), field("name"))
}

/// One table row of an object, as Flux's `summariseItem`.
pub fn row(
    kind: &FluxKind,
    obj: &DynamicObject,
    include_ns: bool,
    include_kind: bool,
    show_source: bool,
) -> Vec<String> {
    let mut row = Vec::new();
    if include_ns {
        row.push(obj.metadata.namespace.clone().unwrap_or_default());
    }
    let name = obj.metadata.name.clone().unwrap_or_default();
    row.push(if include_kind {
        format!("{}/{}", kind.kind.to_lowercase(), name)
    } else {
        name
    });
    let rev = revision(kind, obj);
    // Chart versions are SemVer: Flux does not shorten them.
    let rev = if kind.kind == "HelmChart" || kind.kind == "HelmRelease" {
        rev
    } else {
        truncate_hex(&rev)
    };
    let (ready, message) = ready_and_message(obj);
    if show_source {
        row.push(source_of(kind, obj));
    }
    row.push(rev);
    row.push(if suspended(obj) { "True" } else { "False" }.to_string());
    row.push(ready);
    row.push(truncate_hex(&message));
    row
}

/// The header for a kind's table.
pub fn header(include_ns: bool, show_source: bool) -> Vec<&'static str> {
    let mut h = vec!["Name", "Revision", "Suspended", "Ready", "Message"];
    if show_source {
        h.insert(1, "Source");
    }
    if include_ns {
        h.insert(0, "Namespace");
    }
    h
}

fn status_filter(selector: &Option<String>) -> anyhow::Result<Option<(String, String, bool)>> {
    let Some(sel) = selector else { return Ok(None) };
    let (sep, negate) = if sel.contains("!=") {
        ("!=", true)
    } else {
        ("=", false)
    };
    match sel.split_once(sep) {
        Some((t, s)) => Ok(Some((t.to_string(), s.to_string(), negate))),
        None => bail!(
            "expected status selector in type=status or type!=status format, but found: {sel}"
        ),
    }
}

fn matches(obj: &DynamicObject, filter: &Option<(String, String, bool)>) -> bool {
    let Some((ctype, cstatus, negate)) = filter else {
        return true;
    };
    let found = obj
        .data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .and_then(|cs| {
            cs.iter().rev().find(|c| {
                c.get("type")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| t.eq_ignore_ascii_case(ctype))
            })
        })
        .and_then(|c| c.get("status").and_then(|s| s.as_str()))
        .is_some_and(|s| s.eq_ignore_ascii_case(cstatus));
    found != *negate
}

struct Query<'a> {
    g: &'a Global,
    args: &'a GetArgs,
    client: kube::Client,
    show_source: bool,
}

impl Query<'_> {
    fn ns(&self) -> Option<&str> {
        (!self.args.all_namespaces).then_some(self.g.namespace.as_str())
    }

    fn ns_or_any(&self) -> String {
        if self.args.all_namespaces {
            "any".into()
        } else {
            format!("{:?}", self.g.namespace)
        }
    }

    fn params(&self, name: &Option<String>) -> ListParams {
        let mut lp = ListParams::default();
        if let Some(name) = name {
            lp = lp.fields(&format!("metadata.name={name}"));
        }
        if let Some(sel) = &self.args.label_selector {
            lp = lp.labels(sel);
        }
        lp
    }

    /// Lists one kind and prints its table. In `get all` mode, missing kinds and empty
    /// lists print nothing.
    async fn print_kind(
        &self,
        kind: &FluxKind,
        name: &Option<String>,
        get_all: bool,
    ) -> anyhow::Result<()> {
        let list = match kind
            .api(&self.client, self.ns())
            .list(&self.params(name))
            .await
        {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if get_all && s.code == 404 => return Ok(()),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("listing {} objects", kind.kind)));
            }
        };
        if list.items.is_empty() {
            if let Some(name) = name {
                bail!(
                    "{} object '{name}' not found in {} namespace",
                    kind.kind,
                    self.ns_or_any()
                );
            } else if !get_all {
                bail!(
                    "no {} objects found in {} namespace",
                    kind.kind,
                    self.ns_or_any()
                );
            }
            return Ok(());
        }
        let filter = status_filter(&self.args.status_selector)?;
        let rows: Vec<Vec<String>> = list
            .items
            .iter()
            .filter(|o| matches(o, &filter))
            .map(|o| row(kind, o, self.args.all_namespaces, get_all, self.show_source))
            .collect();
        if get_all && rows.is_empty() {
            return Ok(());
        }
        let header = if self.args.no_header {
            vec![]
        } else {
            header(self.args.all_namespaces, self.show_source)
        };
        print!("{}", table(&header, &rows));
        if get_all {
            println!();
        }
        Ok(())
    }

    /// `--watch`: the table, then one row per change, until --timeout.
    async fn watch(&self, kind: &FluxKind, name: &Option<String>) -> anyhow::Result<()> {
        let api = kind.api(&self.client, self.ns());
        let mut config = watcher::Config::default();
        if let Some(name) = name {
            config = config.fields(&format!("metadata.name={name}"));
        }
        if let Some(sel) = &self.args.label_selector {
            config = config.labels(sel);
        }
        let filter = status_filter(&self.args.status_selector)?;
        let include_ns = self.args.all_namespaces;
        let no_header = self.args.no_header;
        let show_source = self.show_source;
        let kind = *kind;
        let run = async move {
            let mut stream = watcher(api, config).boxed();
            let mut initial = Vec::new();
            let mut first = true;
            while let Some(event) = stream.next().await {
                match event? {
                    watcher::Event::Init => initial.clear(),
                    watcher::Event::InitApply(obj) => initial.push(obj),
                    watcher::Event::InitDone => {
                        let rows: Vec<Vec<String>> = initial
                            .iter()
                            .filter(|o| matches(o, &filter))
                            .map(|o| row(&kind, o, include_ns, false, show_source))
                            .collect();
                        let h = if no_header || !first {
                            vec![]
                        } else {
                            header(include_ns, show_source)
                        };
                        print!("{}", table(&h, &rows));
                        first = false;
                    }
                    watcher::Event::Apply(obj) | watcher::Event::Delete(obj) => {
                        if matches(&obj, &filter) {
                            print!(
                                "{}",
                                table(&[], &[row(&kind, &obj, include_ns, false, show_source)])
                            );
                        }
                    }
                }
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(self.g.timeout, run).await {
            Ok(result) => result,
            Err(_) => Ok(()),
        }
    }
}

/// `get ...`.
pub async fn run(g: &Global, args: GetArgs) -> Outcome {
    let client = g.client().await?;
    let show_source = match &args.target {
        GetTarget::Kustomizations(w) | GetTarget::Helmreleases(w) => w.show_source,
        _ => false,
    };
    let q = Query {
        g,
        args: &args,
        client,
        show_source,
    };
    let (kinds, name, get_all): (Vec<FluxKind>, Option<String>, bool) = match &args.target {
        GetTarget::Sources { kind } => match kind {
            SourcesKind::Git(n) => (vec![cluster::GIT], n.name.clone(), false),
            SourcesKind::Helm(n) => (vec![cluster::HELM_REPO], n.name.clone(), false),
            SourcesKind::Oci(n) => (vec![cluster::OCI], n.name.clone(), false),
            SourcesKind::Bucket(n) => (vec![cluster::BUCKET], n.name.clone(), false),
            SourcesKind::Chart(n) => (vec![cluster::CHART], n.name.clone(), false),
            SourcesKind::All(n) => (
                vec![
                    cluster::OCI,
                    cluster::BUCKET,
                    cluster::GIT,
                    cluster::HELM_REPO,
                    cluster::CHART,
                ],
                n.name.clone(),
                true,
            ),
        },
        GetTarget::Kustomizations(n) => (vec![cluster::KS], n.name.clone(), false),
        GetTarget::Helmreleases(n) => (vec![cluster::HR], n.name.clone(), false),
        GetTarget::All(n) => (
            vec![
                cluster::OCI,
                cluster::BUCKET,
                cluster::GIT,
                cluster::HELM_REPO,
                cluster::CHART,
                cluster::HR,
                cluster::KS,
            ],
            n.name.clone(),
            true,
        ),
    };
    if args.watch {
        if get_all {
            bail!(
                "--watch needs a single resource type, e.g. `ferroflux get kustomizations --watch`"
            );
        }
        q.watch(&kinds[0], &name).await?;
        return ok();
    }
    for kind in &kinds {
        if let Err(err) = q.print_kind(kind, &name, get_all).await {
            if get_all {
                crate::output::failure(format!("{err:#}"));
            } else {
                return Err(err);
            }
        }
    }
    ok()
}
