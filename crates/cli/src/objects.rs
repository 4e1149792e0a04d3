//! Verbs on named objects: `reconcile`, `suspend`, `resume`, `delete`, `export`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferroflux_api::constants::{
    FORCE_REQUEST_ANNOTATION, RECONCILE_REQUEST_ANNOTATION, RESET_REQUEST_ANNOTATION,
};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::cluster::{self, FluxKind, Global, get_object, str_at, suspended};
use crate::output::{self, Spinner};
use crate::{Outcome, ok};

/// Names of objects of one kind.
#[derive(Args, Clone, Debug)]
pub struct Names {
    /// Names of the objects.
    pub names: Vec<String>,
    /// Select all objects of this kind in the namespace.
    #[arg(long)]
    pub all: bool,
}

/// A source kind with names.
#[derive(Subcommand, Clone, Debug)]
pub enum SourceTarget {
    /// GitRepository sources.
    Git(Names),
    /// HelmRepository sources.
    Helm(Names),
    /// OCIRepository sources.
    Oci(Names),
    /// Bucket sources.
    Bucket(Names),
    /// HelmChart sources.
    Chart(Names),
}

impl SourceTarget {
    fn split(self) -> (FluxKind, Names) {
        match self {
            SourceTarget::Git(n) => (cluster::GIT, n),
            SourceTarget::Helm(n) => (cluster::HELM_REPO, n),
            SourceTarget::Oci(n) => (cluster::OCI, n),
            SourceTarget::Bucket(n) => (cluster::BUCKET, n),
            SourceTarget::Chart(n) => (cluster::CHART, n),
        }
    }
}

/// The kinds `suspend`, `resume`, `delete` and `export` act on.
#[derive(Subcommand, Clone, Debug)]
pub enum Target {
    /// Sources (git, helm, oci, bucket, chart).
    Source {
        #[command(subcommand)]
        kind: SourceTarget,
    },
    /// Kustomizations.
    #[command(visible_alias = "ks")]
    Kustomization(Names),
    /// HelmReleases.
    #[command(visible_alias = "hr")]
    Helmrelease(Names),
}

impl Target {
    fn split(self) -> (FluxKind, Names) {
        match self {
            Target::Source { kind } => kind.split(),
            Target::Kustomization(n) => (cluster::KS, n),
            Target::Helmrelease(n) => (cluster::HR, n),
        }
    }
}

/// One name for `reconcile source ...`.
#[derive(Args, Clone, Debug)]
pub struct OneName {
    /// Name of the object.
    pub name: String,
}

/// `reconcile source <kind> NAME`.
#[derive(Subcommand, Clone, Debug)]
pub enum ReconcileSource {
    /// Reconcile a GitRepository source.
    Git(OneName),
    /// Reconcile a HelmRepository source.
    Helm(OneName),
    /// Reconcile an OCIRepository source.
    Oci(OneName),
    /// Reconcile a Bucket source.
    Bucket(OneName),
    /// Reconcile a HelmChart source.
    Chart(OneName),
}

/// `reconcile kustomization NAME`.
#[derive(Args, Clone, Debug)]
pub struct ReconcileKs {
    /// Name of the Kustomization.
    pub name: String,
    /// Reconcile the Kustomization's source first.
    #[arg(long)]
    pub with_source: bool,
}

/// `reconcile helmrelease NAME`.
#[derive(Args, Clone, Debug)]
pub struct ReconcileHr {
    /// Name of the HelmRelease.
    pub name: String,
    /// Reconcile the HelmRelease's chart source first.
    #[arg(long)]
    pub with_source: bool,
    /// Force a one-off install or upgrade of the HelmRelease resource.
    #[arg(long)]
    pub force: bool,
    /// Reset the failure counters of the HelmRelease (remediation retries).
    #[arg(long)]
    pub reset: bool,
}

/// What `reconcile` acts on.
#[derive(Subcommand, Clone, Debug)]
pub enum ReconcileTarget {
    /// Reconcile sources.
    Source {
        #[command(subcommand)]
        kind: ReconcileSource,
    },
    /// Reconcile a Kustomization.
    #[command(visible_alias = "ks")]
    Kustomization(ReconcileKs),
    /// Reconcile a HelmRelease.
    #[command(visible_alias = "hr")]
    Helmrelease(ReconcileHr),
}

/// `delete <kind> NAME`.
#[derive(Args, Clone, Debug)]
pub struct DeleteArgs {
    /// Delete without asking for confirmation.
    #[arg(short, long, global = true)]
    pub silent: bool,
    #[command(subcommand)]
    pub target: Target,
}

/// `resume [--wait] <kind> NAME...|--all`.
#[derive(Args, Clone, Debug)]
pub struct ResumeArgs {
    /// Wait for each object to reconcile (the default for a single named object; pass
    /// --wait=false to return at once).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub wait: Option<bool>,
    #[command(subcommand)]
    pub target: Target,
}

/// Flux's rule: wait when asked to, or by default when one object is named.
pub fn resume_waits(wait: Option<bool>, names: &Names) -> bool {
    wait.unwrap_or(!names.all && names.names.len() == 1)
}

/// `export <kind> NAME|--all`.
#[derive(Args, Clone, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: Target,
}

/// The CLI path of a kind, for messages that say what to run.
pub fn cli_path(kind: &FluxKind) -> &'static str {
    match kind.kind {
        "GitRepository" => "source git",
        "HelmRepository" => "source helm",
        "OCIRepository" => "source oci",
        "Bucket" => "source bucket",
        "HelmChart" => "source chart",
        "Kustomization" => "kustomization",
        "HelmRelease" => "helmrelease",
        _ => "",
    }
}

/// The revision flux prints for a kind.
pub fn revision(kind: &FluxKind, obj: &DynamicObject) -> String {
    let data = &obj.data;
    match kind.kind {
        "Kustomization" => str_at(data, &["status", "lastAppliedRevision"])
            .unwrap_or_default()
            .to_string(),
        "HelmRelease" => data
            .pointer("/status/history/0/chartVersion")
            .and_then(Value::as_str)
            .or_else(|| str_at(data, &["status", "lastAttemptedRevision"]))
            .unwrap_or_default()
            .to_string(),
        _ => str_at(data, &["status", "artifact", "revision"])
            .unwrap_or_default()
            .to_string(),
    }
}

fn success_message(kind: &FluxKind, obj: &DynamicObject) -> String {
    if kind.is_source() {
        format!("fetched revision {}", revision(kind, obj))
    } else {
        format!("applied revision {}", revision(kind, obj))
    }
}

/// Go's `time.RFC3339Nano` of now (UTC).
pub fn now_token() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Whether the controller handled `token` and reports a settled state for the current
/// generation: `Some(Ok)` when Ready=True, `Some(Err)` when it failed, `None` to keep waiting.
fn handled(obj: &DynamicObject, token: &str) -> Option<Result<(), String>> {
    let status = obj.data.get("status")?;
    if status.get("lastHandledReconcileAt").and_then(Value::as_str) != Some(token) {
        return None;
    }
    let generation = obj.metadata.generation.unwrap_or(0);
    let ready = cluster::condition(obj, "Ready")?;
    let ready_gen = ready
        .get("observedGeneration")
        .and_then(Value::as_i64)
        .or_else(|| status.get("observedGeneration").and_then(Value::as_i64))
        .unwrap_or(0);
    if ready_gen < generation || ready_gen < 1 {
        return None;
    }
    let reconciling = cluster::condition(obj, "Reconciling")
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"));
    let stalled = cluster::condition(obj, "Stalled")
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"));
    let message = ready
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match ready.get("status").and_then(Value::as_str) {
        Some("True") => Some(Ok(())),
        _ if stalled => Some(Err(message)),
        Some("False") if !reconciling => Some(Err(message)),
        _ => None,
    }
}

/// Sets the reconcile-request annotation (and for a HelmRelease `forceAt`/`resetAt`) to a
/// fresh token with a merge patch, and returns the token.
pub async fn request_reconcile(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
    force: bool,
    reset: bool,
) -> anyhow::Result<String> {
    let token = now_token();
    let mut annotations = serde_json::Map::new();
    annotations.insert(RECONCILE_REQUEST_ANNOTATION.into(), json!(token));
    if force {
        annotations.insert(FORCE_REQUEST_ANNOTATION.into(), json!(token));
    }
    if reset {
        annotations.insert(RESET_REQUEST_ANNOTATION.into(), json!(token));
    }
    kind.api(client, Some(ns))
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .with_context(|| format!("annotating {} {ns}/{name}", kind.kind))?;
    Ok(token)
}

/// Waits until the object handled `token` and is Ready for its generation.
pub async fn wait_handled(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
    token: &str,
    timeout: Duration,
) -> anyhow::Result<DynamicObject> {
    let api = kind.api(client, Some(ns));
    let start = Instant::now();
    loop {
        let obj = api
            .get(name)
            .await
            .map_err(|e| cluster::describe_get_error(e, kind, name, ns))?;
        match handled(&obj, token) {
            Some(Ok(())) => return Ok(obj),
            Some(Err(msg)) => bail!("{} reconciliation failed: '{msg}'", kind.kind),
            None => {}
        }
        if start.elapsed() >= timeout {
            let controller = match kind.group {
                "kustomize.toolkit.fluxcd.io" => "kustomize-controller",
                "helm.toolkit.fluxcd.io" => "helm-controller",
                "notification.toolkit.fluxcd.io" => "notification-controller",
                _ => "source-controller",
            };
            bail!(
                "timed out after {} waiting for {} {ns}/{name} to be reconciled: is {controller} running? \
                 See `ferroflux check` and `ferroflux logs`, or raise --timeout",
                output::format_duration(timeout),
                kind.kind
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn reconcile_one(
    g: &Global,
    client: &kube::Client,
    kind: &FluxKind,
    name: &str,
    force: bool,
    reset: bool,
) -> anyhow::Result<DynamicObject> {
    let ns = g.namespace.as_str();
    let obj = get_object(client, kind, ns, name).await?;
    if suspended(&obj) {
        bail!(
            "{} '{ns}/{name}' is suspended: resume it first with `ferroflux resume {} {name} -n {ns}`",
            kind.kind,
            cli_path(kind)
        );
    }
    output::action(format!("annotating {} {name} in {ns} namespace", kind.kind));
    let token = request_reconcile(client, kind, ns, name, force, reset).await?;
    output::success(format!("{} annotated", kind.kind));
    let obj = {
        let _spinner = Spinner::start(format!("waiting for {} reconciliation", kind.kind));
        wait_handled(client, kind, ns, name, &token, g.timeout).await?
    };
    output::success(success_message(kind, &obj));
    Ok(obj)
}

/// `reconcile ...`.
pub async fn reconcile(g: &Global, target: ReconcileTarget) -> Outcome {
    let client = g.client().await?;
    let ns = g.namespace.clone();
    match target {
        ReconcileTarget::Source { kind } => {
            let (kind, name) = match kind {
                ReconcileSource::Git(n) => (cluster::GIT, n.name),
                ReconcileSource::Helm(n) => (cluster::HELM_REPO, n.name),
                ReconcileSource::Oci(n) => (cluster::OCI, n.name),
                ReconcileSource::Bucket(n) => (cluster::BUCKET, n.name),
                ReconcileSource::Chart(n) => (cluster::CHART, n.name),
            };
            reconcile_one(g, &client, &kind, &name, false, false).await?;
        }
        ReconcileTarget::Kustomization(args) => {
            if args.with_source {
                let ks = get_object(&client, &cluster::KS, &ns, &args.name).await?;
                if suspended(&ks) {
                    bail!(
                        "Kustomization '{ns}/{}' is suspended: resume it first with `ferroflux resume kustomization {} -n {ns}`",
                        args.name,
                        args.name
                    );
                }
                let src_kind =
                    str_at(&ks.data, &["spec", "sourceRef", "kind"]).unwrap_or("GitRepository");
                let src_name = str_at(&ks.data, &["spec", "sourceRef", "name"])
                    .unwrap_or_default()
                    .to_string();
                let src_ns = str_at(&ks.data, &["spec", "sourceRef", "namespace"])
                    .unwrap_or(&ns)
                    .to_string();
                let Some(kind) = cluster::by_kind(src_kind).filter(FluxKind::is_source) else {
                    bail!("cannot reconcile source of kind {src_kind}");
                };
                let g2 = Global {
                    namespace: src_ns,
                    ..g.clone()
                };
                reconcile_one(&g2, &client, &kind, &src_name, false, false).await?;
            }
            reconcile_one(g, &client, &cluster::KS, &args.name, false, false).await?;
        }
        ReconcileTarget::Helmrelease(args) => {
            if args.with_source {
                let hr = get_object(&client, &cluster::HR, &ns, &args.name).await?;
                if suspended(&hr) {
                    bail!(
                        "HelmRelease '{ns}/{}' is suspended: resume it first with `ferroflux resume helmrelease {} -n {ns}`",
                        args.name,
                        args.name
                    );
                }
                let source = if let Some(chart) = str_at(&hr.data, &["status", "helmChart"]) {
                    let (cns, cname) = chart.split_once('/').unwrap_or((&ns, chart));
                    Some((cluster::CHART, cns.to_string(), cname.to_string()))
                } else if let Some(kind) =
                    str_at(&hr.data, &["spec", "chartRef", "kind"]).and_then(cluster::by_kind)
                {
                    let cname = str_at(&hr.data, &["spec", "chartRef", "name"])
                        .unwrap_or_default()
                        .to_string();
                    let cns = str_at(&hr.data, &["spec", "chartRef", "namespace"])
                        .unwrap_or(&ns)
                        .to_string();
                    Some((kind, cns, cname))
                } else {
                    None
                };
                match source {
                    Some((kind, cns, cname)) => {
                        let g2 = Global {
                            namespace: cns,
                            ..g.clone()
                        };
                        reconcile_one(&g2, &client, &kind, &cname, false, false).await?;
                    }
                    None => output::warning(
                        "the HelmRelease has no chart source yet (status.helmChart is empty)",
                    ),
                }
            }
            reconcile_one(g, &client, &cluster::HR, &args.name, args.force, args.reset).await?;
        }
    }
    ok()
}

async fn selected(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    names: &Names,
) -> anyhow::Result<Vec<String>> {
    if names.all {
        let list = kind
            .api(client, Some(ns))
            .list(&ListParams::default())
            .await?;
        let found: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect();
        if found.is_empty() {
            bail!("no {} objects found in {ns} namespace", kind.kind);
        }
        return Ok(found);
    }
    if names.names.is_empty() {
        bail!("{} name is required (or pass --all)", kind.human);
    }
    Ok(names.names.clone())
}

async fn set_suspend(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
    suspend: bool,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let mut patch = json!({"spec": {"suspend": suspend}});
    if let Some(token) = token {
        patch["metadata"] = json!({"annotations": {RECONCILE_REQUEST_ANNOTATION: token}});
    }
    kind.api(client, Some(ns))
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| cluster::describe_get_error(e, kind, name, ns))?;
    Ok(())
}

/// `suspend ...`.
pub async fn suspend(g: &Global, target: Target) -> Outcome {
    let client = g.client().await?;
    let (kind, names) = target.split();
    let ns = g.namespace.as_str();
    for name in selected(&client, &kind, ns, &names).await? {
        output::action(format!(
            "suspending {} {name} in {ns} namespace",
            kind.human
        ));
        set_suspend(&client, &kind, ns, &name, true, None).await?;
        output::success(format!("{} suspended", kind.human));
    }
    ok()
}

/// `resume ...`: unsuspends and requests a reconcile; waits for it when `resume_waits`.
pub async fn resume(g: &Global, args: ResumeArgs) -> Outcome {
    let client = g.client().await?;
    let (kind, names) = args.target.split();
    let wait = resume_waits(args.wait, &names);
    let ns = g.namespace.as_str();
    let mut pending = Vec::new();
    for name in selected(&client, &kind, ns, &names).await? {
        output::action(format!("resuming {} {name} in {ns} namespace", kind.human));
        let token = now_token();
        set_suspend(&client, &kind, ns, &name, false, Some(&token)).await?;
        output::success(format!("{} resumed", kind.human));
        pending.push((name, token));
    }
    if !wait {
        return ok();
    }
    let mut failed = 0;
    {
        let _spinner = Spinner::start(format!("waiting for {} reconciliation", kind.kind));
        let mut results = Vec::new();
        for (name, token) in &pending {
            results.push((
                name.clone(),
                wait_handled(&client, &kind, ns, name, token, g.timeout).await,
            ));
        }
        drop(_spinner);
        for (name, result) in results {
            match result {
                Ok(obj) => {
                    output::success(format!("{} {name} reconciliation completed", kind.kind));
                    output::success(success_message(&kind, &obj));
                }
                Err(err) => {
                    failed += 1;
                    output::failure(format!(
                        "{} {name} reconciliation failed: {err:#}",
                        kind.kind
                    ));
                }
            }
        }
    }
    if failed > 0 {
        bail!("reconciliation failed for {failed} {}(s)", kind.kind);
    }
    ok()
}

/// `delete ...`.
pub async fn delete(g: &Global, args: DeleteArgs) -> Outcome {
    let client = g.client().await?;
    let (kind, names) = args.target.split();
    let ns = g.namespace.as_str();
    for name in selected(&client, &kind, ns, &names).await? {
        get_object(&client, &kind, ns, &name).await?;
        if !args.silent
            && !output::confirm(&format!(
                "Are you sure you want to delete this {} ({ns}/{name})",
                kind.human
            ))
        {
            bail!(
                "aborting: {} {ns}/{name} was not deleted (pass --silent to skip the confirmation)",
                kind.human
            );
        }
        output::action(format!("deleting {} {name} in {ns} namespace", kind.human));
        kind.api(&client, Some(ns))
            .delete(&name, &DeleteParams::default())
            .await
            .map_err(|e| cluster::describe_get_error(e, &kind, &name, ns))?;
        output::success(format!("{} deleted", kind.human));
    }
    ok()
}

/// The object as `flux export` prints it: types, name, namespace, labels, annotations
/// and spec; no status and no server-set metadata.
pub fn export_value(kind: &FluxKind, obj: &DynamicObject) -> Value {
    let mut meta = serde_json::Map::new();
    meta.insert("name".into(), json!(obj.metadata.name));
    if let Some(ns) = &obj.metadata.namespace {
        meta.insert("namespace".into(), json!(ns));
    }
    if let Some(labels) = obj.metadata.labels.as_ref().filter(|l| !l.is_empty()) {
        meta.insert("labels".into(), json!(labels));
    }
    if let Some(annotations) = obj.metadata.annotations.as_ref().filter(|a| !a.is_empty()) {
        meta.insert("annotations".into(), json!(annotations));
    }
    let mut out = json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind,
        "metadata": meta,
    });
    if let Some(spec) = obj.data.get("spec") {
        out["spec"] = spec.clone();
    }
    out
}

/// `export ...`.
pub async fn export(g: &Global, args: ExportArgs) -> Outcome {
    let client = g.client().await?;
    let (kind, names) = args.target.split();
    let ns = g.namespace.as_str();
    for name in selected(&client, &kind, ns, &names).await? {
        let obj = get_object(&client, &kind, ns, &name).await?;
        print!("{}", output::export_doc(&export_value(&kind, &obj)));
    }
    ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_waits_like_flux() {
        let one = Names {
            names: vec!["a".into()],
            all: false,
        };
        let two = Names {
            names: vec!["a".into(), "b".into()],
            all: false,
        };
        let all = Names {
            names: vec![],
            all: true,
        };
        assert!(resume_waits(None, &one));
        assert!(!resume_waits(None, &two));
        assert!(!resume_waits(None, &all));
        assert!(resume_waits(Some(true), &two));
        assert!(!resume_waits(Some(false), &one));
    }
}
