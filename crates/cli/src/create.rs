//! `create source git|helm|oci|bucket` and `create kustomization|helmrelease`:
//! the objects `flux create` builds, printed with `--export` or applied and awaited.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Map, Value, json};

use crate::cluster::{self, FluxKind, Global};
use crate::output::{self, Spinner, duration_arg, format_duration};
use crate::{Outcome, ok};

/// Flags shared by every `create` command.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Reconciliation interval (Go duration).
    #[arg(long, global = true, default_value = "1m0s", value_parser = duration_arg)]
    pub interval: Duration,
    /// Export in YAML format to stdout instead of applying.
    #[arg(long, global = true)]
    pub export: bool,
    /// Set labels on the resource (key=value, repeatable or comma-separated).
    #[arg(
        long = "label",
        global = true,
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub labels: Vec<String>,
    #[command(subcommand)]
    pub target: CreateTarget,
}

/// What `create` makes.
#[derive(Subcommand, Debug)]
pub enum CreateTarget {
    /// Create or update sources.
    Source {
        /// Timeout for fetch operations performed by source-controller (e.g. git clone).
        #[arg(long, global = true, value_parser = duration_arg)]
        fetch_timeout: Option<Duration>,
        #[command(subcommand)]
        kind: SourceKind,
    },
    /// Create or update a Kustomization resource.
    #[command(visible_alias = "ks")]
    Kustomization(KsArgs),
    /// Create or update a HelmRelease resource.
    #[command(visible_alias = "hr")]
    Helmrelease(HrArgs),
}

/// Source kinds.
#[derive(Subcommand, Debug)]
pub enum SourceKind {
    /// Create or update a GitRepository source.
    Git(GitArgs),
    /// Create or update a HelmRepository source.
    Helm(HelmArgs),
    /// Create or update an OCIRepository source.
    Oci(OciArgs),
    /// Create or update a Bucket source.
    Bucket(BucketArgs),
}

/// `create source git`.
#[derive(Args, Debug)]
pub struct GitArgs {
    /// Name of the GitRepository.
    pub name: String,
    /// Git address, e.g. ssh://git@host/org/repository or https://host/org/repository.
    #[arg(long)]
    pub url: String,
    /// Git branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// Git tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Git tag semver range.
    #[arg(long = "tag-semver", visible_alias = "semver")]
    pub semver: Option<String>,
    /// Git reference name.
    #[arg(long)]
    pub ref_name: Option<String>,
    /// Git commit.
    #[arg(long)]
    pub commit: Option<String>,
    /// The name of an existing secret containing SSH or basic credentials.
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// The name of an existing secret containing the proxy address and credentials.
    #[arg(long)]
    pub proxy_secret_ref: Option<String>,
    /// Paths to ignore in the repository (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub ignore_paths: Vec<String>,
    /// When enabled, configure the GitRepository source to initialize and include Git submodules.
    #[arg(long)]
    pub recurse_submodules: bool,
}

/// `create source helm`.
#[derive(Args, Debug)]
pub struct HelmArgs {
    /// Name of the HelmRepository.
    pub name: String,
    /// Helm repository address (https:// or oci://).
    #[arg(long)]
    pub url: String,
    /// The name of an existing secret containing TLS, basic auth or docker-config credentials.
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// Pass credentials to all domains.
    #[arg(long)]
    pub pass_credentials: bool,
}

/// `create source oci`.
#[derive(Args, Debug)]
pub struct OciArgs {
    /// Name of the OCIRepository.
    pub name: String,
    /// The OCI repository URL (oci://...).
    #[arg(long)]
    pub url: String,
    /// The OCI artifact tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// The OCI artifact tag semver range.
    #[arg(long = "tag-semver", visible_alias = "semver")]
    pub semver: Option<String>,
    /// The OCI artifact digest.
    #[arg(long)]
    pub digest: Option<String>,
    /// The name of the Kubernetes image pull secret (type 'kubernetes.io/dockerconfigjson').
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// Connect to a non-TLS registry over plain HTTP.
    #[arg(long)]
    pub insecure: bool,
}

/// `create source bucket`.
#[derive(Args, Debug)]
pub struct BucketArgs {
    /// Name of the Bucket.
    pub name: String,
    /// The bucket name.
    #[arg(long)]
    pub bucket_name: String,
    /// The bucket endpoint address.
    #[arg(long)]
    pub endpoint: String,
    /// The S3 compatible storage provider name: generic, aws, azure, gcp.
    #[arg(long, default_value = "generic")]
    pub provider: String,
    /// The bucket region.
    #[arg(long)]
    pub region: Option<String>,
    /// Connect to a non-TLS S3 HTTP endpoint.
    #[arg(long)]
    pub insecure: bool,
    /// The name of an existing secret containing credentials.
    #[arg(long)]
    pub secret_ref: Option<String>,
}

/// `create kustomization`.
#[derive(Args, Debug)]
pub struct KsArgs {
    /// Name of the Kustomization.
    pub name: String,
    /// Source reference in the format '<kind>/<name>.<namespace>' or '<name>' (kind GitRepository, OCIRepository or Bucket).
    #[arg(long)]
    pub source: String,
    /// Path to the directory containing a kustomization.yaml file.
    #[arg(long, default_value = "./")]
    pub path: String,
    /// Enable garbage collection.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub prune: Option<bool>,
    /// Enable health checking of all the applied resources.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub wait: Option<bool>,
    /// Workload to include in the health assessment, '<kind>/<name>.<namespace>'.
    #[arg(long, value_delimiter = ',')]
    pub health_check: Vec<String>,
    /// Timeout of health checking operations.
    #[arg(long, default_value = "2m0s", value_parser = duration_arg)]
    pub health_check_timeout: Duration,
    /// Kustomizations that must be ready first, '<name>' or '<namespace>/<name>'.
    #[arg(long, value_delimiter = ',')]
    pub depends_on: Vec<String>,
    /// Overrides the namespace of all objects reconciled by this Kustomization.
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// The name of the service account to impersonate when reconciling.
    #[arg(long)]
    pub service_account: Option<String>,
    /// The interval at which to retry a previously failed reconciliation.
    #[arg(long, value_parser = duration_arg)]
    pub retry_interval: Option<Duration>,
}

/// `create helmrelease`.
#[derive(Args, Debug)]
pub struct HrArgs {
    /// Name of the HelmRelease.
    pub name: String,
    /// Name used for the Helm release.
    #[arg(long)]
    pub release_name: Option<String>,
    /// Chart source in the format '<kind>/<name>.<namespace>' (HelmRepository, GitRepository or Bucket).
    #[arg(long)]
    pub source: Option<String>,
    /// Helm chart name or path.
    #[arg(long)]
    pub chart: Option<String>,
    /// Helm chart version, accepts a semver range.
    #[arg(long)]
    pub chart_version: Option<String>,
    /// The HelmChart or OCIRepository to use as source, '<kind>/<name>.<namespace>'.
    #[arg(long)]
    pub chart_ref: Option<String>,
    /// HelmReleases that must be ready first, '<name>' or '<namespace>/<name>'.
    #[arg(long, value_delimiter = ',')]
    pub depends_on: Vec<String>,
    /// Namespace to install this release, defaults to the HelmRelease namespace.
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// Namespace to store the Helm release, defaults to the target namespace.
    #[arg(long)]
    pub storage_namespace: Option<String>,
    /// Create the target namespace if it does not exist.
    #[arg(long)]
    pub create_target_namespace: bool,
    /// The name of the service account to impersonate when reconciling.
    #[arg(long)]
    pub service_account: Option<String>,
    /// The reconcile strategy of the generated HelmChart: ChartVersion or Revision.
    #[arg(long, default_value = "ChartVersion")]
    pub reconcile_strategy: String,
    /// The interval at which to check for new chart versions.
    #[arg(long, value_parser = duration_arg)]
    pub chart_interval: Option<Duration>,
    /// Local paths to values.yaml files (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub values: Vec<std::path::PathBuf>,
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "name '{name}' is invalid, it should adhere to standard defined in RFC 1123, the name can only contain alphanumeric characters or '-'"
        );
    }
    Ok(())
}

fn parse_labels(labels: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("invalid label format '{l}', must be key=value");
        };
        out.insert(k.to_string(), json!(v));
    }
    Ok(out)
}

/// `<kind>/<name>.<namespace>`, `<kind>/<name>` or `<name>`.
fn parse_source_ref(s: &str, default_kind: &str, allowed: &[&str]) -> anyhow::Result<Value> {
    let (kind, rest) = match s.split_once('/') {
        Some((k, r)) => (k.to_string(), r),
        None => (default_kind.to_string(), s),
    };
    let Some(kind) = allowed.iter().find(|a| a.eq_ignore_ascii_case(&kind)) else {
        bail!(
            "source kind '{kind}' is not supported, must be one of: {}",
            allowed.join(", ")
        );
    };
    let (name, ns) = match rest.split_once('.') {
        Some((n, ns)) => (n, Some(ns)),
        None => (rest, None),
    };
    if name.is_empty() {
        bail!("source name is required, e.g. --source={default_kind}/my-source");
    }
    let mut r = json!({"kind": kind, "name": name});
    if let Some(ns) = ns {
        r["namespace"] = json!(ns);
    }
    Ok(r)
}

fn depends_on(list: &[String]) -> Value {
    Value::Array(
        list.iter()
            .map(|d| match d.split_once('/') {
                Some((ns, name)) => json!({"name": name, "namespace": ns}),
                None => json!({"name": d}),
            })
            .collect(),
    )
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Builds the object `flux create` would, as (kind, object).
pub fn build_object(g: &Global, args: &CreateArgs) -> anyhow::Result<(FluxKind, Value)> {
    let interval = format_duration(args.interval);
    let labels = parse_labels(&args.labels)?;
    let (kind, name, spec) = match &args.target {
        CreateTarget::Source {
            fetch_timeout,
            kind,
        } => {
            let timeout = fetch_timeout.filter(|d| !d.is_zero()).map(format_duration);
            match kind {
                SourceKind::Git(a) => {
                    let scheme = a.url.split("://").next().unwrap_or_default();
                    if !a.url.contains("://") || !["ssh", "http", "https"].contains(&scheme) {
                        bail!(
                            "git URL scheme '{scheme}' not supported, can be: ssh, http and https (got --url={})",
                            a.url
                        );
                    }
                    if a.branch.is_none()
                        && a.tag.is_none()
                        && a.semver.is_none()
                        && a.commit.is_none()
                        && a.ref_name.is_none()
                    {
                        bail!(
                            "a Git ref is required, use one of the following: --branch, --tag, --commit, --ref-name or --tag-semver"
                        );
                    }
                    let mut reference = Map::new();
                    if let Some(c) = &a.commit {
                        reference.insert("commit".into(), json!(c));
                        if let Some(b) = &a.branch {
                            reference.insert("branch".into(), json!(b));
                        }
                    } else if let Some(n) = &a.ref_name {
                        reference.insert("name".into(), json!(n));
                    } else if let Some(s) = &a.semver {
                        reference.insert("semver".into(), json!(s));
                    } else if let Some(t) = &a.tag {
                        reference.insert("tag".into(), json!(t));
                    } else if let Some(b) = &a.branch {
                        reference.insert("branch".into(), json!(b));
                    }
                    let mut spec = json!({"interval": interval, "ref": reference, "url": a.url});
                    if !a.ignore_paths.is_empty() {
                        spec["ignore"] = json!(a.ignore_paths.join("\n"));
                    }
                    if a.recurse_submodules {
                        spec["recurseSubmodules"] = json!(true);
                    }
                    if let Some(s) = &a.secret_ref {
                        spec["secretRef"] = json!({"name": s});
                    }
                    if let Some(s) = &a.proxy_secret_ref {
                        spec["proxySecretRef"] = json!({"name": s});
                    }
                    if let Some(t) = &timeout {
                        spec["timeout"] = json!(t);
                    }
                    (cluster::GIT, a.name.clone(), spec)
                }
                SourceKind::Helm(a) => {
                    let mut spec = json!({"interval": interval, "url": a.url});
                    if a.url.starts_with("oci://") {
                        spec["type"] = json!("oci");
                    } else if !a.url.starts_with("http://") && !a.url.starts_with("https://") {
                        bail!(
                            "url must start with http://, https:// or oci:// (got --url={})",
                            a.url
                        );
                    }
                    if let Some(s) = &a.secret_ref {
                        spec["secretRef"] = json!({"name": s});
                        if a.pass_credentials {
                            spec["passCredentials"] = json!(true);
                        }
                    }
                    if let Some(t) = &timeout {
                        spec["timeout"] = json!(t);
                    }
                    (cluster::HELM_REPO, a.name.clone(), spec)
                }
                SourceKind::Oci(a) => {
                    if !a.url.starts_with("oci://") {
                        bail!("url must start with oci:// (got --url={})", a.url);
                    }
                    let mut reference = Map::new();
                    if let Some(d) = &a.digest {
                        reference.insert("digest".into(), json!(d));
                    } else if let Some(s) = &a.semver {
                        reference.insert("semver".into(), json!(s));
                    } else if let Some(t) = &a.tag {
                        reference.insert("tag".into(), json!(t));
                    } else {
                        bail!("one of --tag, --tag-semver or --digest is required");
                    }
                    let mut spec = json!({"interval": interval, "ref": reference, "url": a.url});
                    if a.insecure {
                        spec["insecure"] = json!(true);
                    }
                    if let Some(s) = &a.secret_ref {
                        spec["secretRef"] = json!({"name": s});
                    }
                    if let Some(t) = &timeout {
                        spec["timeout"] = json!(t);
                    }
                    (cluster::OCI, a.name.clone(), spec)
                }
                SourceKind::Bucket(a) => {
                    let mut spec = json!({
                        "bucketName": a.bucket_name,
                        "endpoint": a.endpoint,
                        "interval": interval,
                        "provider": a.provider,
                    });
                    if a.insecure {
                        spec["insecure"] = json!(true);
                    }
                    if let Some(r) = &a.region {
                        spec["region"] = json!(r);
                    }
                    if let Some(s) = &a.secret_ref {
                        spec["secretRef"] = json!({"name": s});
                    }
                    if let Some(t) = &timeout {
                        spec["timeout"] = json!(t);
                    }
                    (cluster::BUCKET, a.name.clone(), spec)
                }
            }
        }
        CreateTarget::Kustomization(a) => {
            if !a.path.starts_with("./") {
                bail!("path must begin with ./ (got --path={})", a.path);
            }
            let source = parse_source_ref(
                &a.source,
                "GitRepository",
                &["GitRepository", "OCIRepository", "Bucket"],
            )?;
            let mut spec = json!({
                "interval": interval,
                "path": a.path,
                "prune": a.prune.unwrap_or(false),
                "sourceRef": source,
            });
            if let Some(t) = &a.target_namespace {
                spec["targetNamespace"] = json!(t);
            }
            if !a.depends_on.is_empty() {
                spec["dependsOn"] = depends_on(&a.depends_on);
            }
            let wait = a.wait.unwrap_or(false);
            if !a.health_check.is_empty() && !wait {
                let mut checks = Vec::new();
                for h in &a.health_check {
                    let (kind, rest) = h.split_once('/').unwrap_or(("", ""));
                    let (hname, hns) = rest.split_once('.').unwrap_or(("", ""));
                    if !["Deployment", "DaemonSet", "StatefulSet", "HelmRelease"].contains(&kind) {
                        bail!(
                            "invalid health check kind '{kind}' can be HelmRelease, Deployment, DaemonSet or StatefulSet"
                        );
                    }
                    if hname.is_empty() || hns.is_empty() {
                        bail!(
                            "invalid health check '{h}' must be in the format 'kind/name.namespace'"
                        );
                    }
                    let mut c = json!({"kind": kind, "name": hname, "namespace": hns});
                    if kind == "HelmRelease" {
                        c["apiVersion"] = json!(cluster::HR.api_version());
                    }
                    checks.push(c);
                }
                spec["healthChecks"] = Value::Array(checks);
                spec["timeout"] = json!(format_duration(a.health_check_timeout));
            }
            if wait {
                spec["wait"] = json!(true);
                spec["timeout"] = json!(format_duration(a.health_check_timeout));
            }
            if let Some(sa) = &a.service_account {
                spec["serviceAccountName"] = json!(sa);
            }
            if let Some(r) = a.retry_interval.filter(|d| !d.is_zero()) {
                spec["retryInterval"] = json!(format_duration(r));
            }
            (cluster::KS, a.name.clone(), spec)
        }
        CreateTarget::Helmrelease(a) => {
            let mut spec = json!({"interval": interval});
            if let Some(r) = &a.release_name {
                spec["releaseName"] = json!(r);
            }
            if let Some(t) = &a.target_namespace {
                spec["targetNamespace"] = json!(t);
            }
            if let Some(t) = &a.storage_namespace {
                spec["storageNamespace"] = json!(t);
            }
            if !a.depends_on.is_empty() {
                spec["dependsOn"] = depends_on(&a.depends_on);
            }
            if let Some(chart) = &a.chart {
                let Some(source) = &a.source else {
                    bail!(
                        "--source is required with --chart, e.g. --source=HelmRepository/podinfo"
                    );
                };
                let source = parse_source_ref(
                    source,
                    "HelmRepository",
                    &["HelmRepository", "GitRepository", "Bucket"],
                )?;
                let mut cspec = json!({
                    "chart": chart,
                    "reconcileStrategy": a.reconcile_strategy,
                    "sourceRef": source,
                });
                if let Some(v) = &a.chart_version {
                    cspec["version"] = json!(v);
                }
                if let Some(i) = a.chart_interval.filter(|d| !d.is_zero()) {
                    cspec["interval"] = json!(format_duration(i));
                }
                spec["chart"] = json!({"spec": cspec});
            } else if let Some(r) = &a.chart_ref {
                spec["chartRef"] = parse_source_ref(r, "", &["HelmChart", "OCIRepository"])?;
            } else {
                bail!("chart or chart-ref is required: pass --source and --chart, or --chart-ref");
            }
            if a.create_target_namespace {
                spec["install"] = json!({"createNamespace": true});
            }
            if let Some(sa) = &a.service_account {
                spec["serviceAccountName"] = json!(sa);
            }
            if !a.values.is_empty() {
                let mut values = json!({});
                for f in &a.values {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("reading values from {} failed", f.display()))?;
                    let v: Value = serde_yaml::from_str(&text)
                        .with_context(|| format!("parsing values from {} failed", f.display()))?;
                    if !v.is_null() {
                        merge(&mut values, v);
                    }
                }
                spec["values"] = values;
            }
            (cluster::HR, a.name.clone(), spec)
        }
    };
    validate_name(&name)?;
    let mut metadata = json!({"name": name, "namespace": g.namespace});
    if !labels.is_empty() {
        metadata["labels"] = Value::Object(labels);
    }
    Ok((
        kind,
        json!({"apiVersion": kind.api_version(), "kind": kind.kind, "metadata": metadata, "spec": spec}),
    ))
}

/// Waits until the object is Ready=True for its current generation.
pub async fn wait_ready(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<DynamicObject> {
    let api = kind.api(client, Some(ns));
    let start = Instant::now();
    loop {
        let obj = api
            .get(name)
            .await
            .map_err(|e| cluster::describe_get_error(e, kind, name, ns))?;
        let generation = obj.metadata.generation.unwrap_or(0);
        let observed = obj
            .data
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(ready) = cluster::condition(&obj, "Ready")
            && observed == generation
        {
            match ready.get("status").and_then(Value::as_str) {
                Some("True") => return Ok(obj),
                Some("False")
                    if cluster::condition(&obj, "Stalled")
                        .is_some_and(|c| c["status"] == "True") =>
                {
                    bail!(
                        "{} {ns}/{name} failed: {}",
                        kind.kind,
                        ready["message"].as_str().unwrap_or_default()
                    )
                }
                _ => {}
            }
        }
        if start.elapsed() >= timeout {
            let (_, message) = cluster::ready_and_message(&obj);
            bail!(
                "timed out after {} waiting for {} {ns}/{name} to become Ready (last status: {message}); \
                 is the controller running? See `ferroflux check` and `ferroflux get`",
                format_duration(timeout),
                kind.kind
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `create ...`.
pub async fn run(g: &Global, args: CreateArgs) -> Outcome {
    let (kind, obj) = build_object(g, &args)?;
    if args.export {
        print!("{}", output::export_doc(&obj));
        return ok();
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = g.namespace.clone();
    output::generate(format!("generating {}", kind.human));
    let client = g.client().await?;
    output::action(format!("applying {}", kind.human));
    let api = kind.api(&client, Some(&ns));
    let existed = api.get_opt(&name).await?.is_some();
    api.patch(
        &name,
        &PatchParams::apply("flux-client-side-apply").force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("applying {} {ns}/{name}", kind.kind))?;
    output::success(format!(
        "{} {}",
        kind.human,
        if existed { "updated" } else { "created" }
    ));
    let ready = {
        let _s = Spinner::start(format!("waiting for {} reconciliation", kind.human));
        wait_ready(&client, &kind, &ns, &name, g.timeout).await?
    };
    output::success(format!("{} reconciliation completed", kind.human));
    let rev = crate::objects::revision(&kind, &ready);
    if kind.is_source() {
        output::success(format!("fetched revision: {rev}"));
    } else {
        output::success(format!("applied revision {rev}"));
    }
    ok()
}
