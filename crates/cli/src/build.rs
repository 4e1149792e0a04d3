//! `build kustomization`, `diff kustomization`, `kustomize build` and `helm template`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferroflux_api::kustomization::{KustomizationSpec, ValuesSourceKind};
use ferroflux_ssa::{ObjectRef, ResourceManager};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::Value;

use crate::cluster::{self, Global, get_object};
use crate::{Outcome, ok};

/// `build` kinds.
#[derive(Subcommand, Debug)]
pub enum BuildTarget {
    /// Build a Kustomization from a local directory, with the overlays the controller applies.
    #[command(visible_alias = "ks")]
    Kustomization(BuildKsArgs),
}

/// `build kustomization` flags.
#[derive(Args, Debug)]
pub struct BuildKsArgs {
    #[command(flatten)]
    pub local: LocalKsArgs,
    /// Build without the cluster (needs --kustomization-file); substitutions from
    /// ConfigMaps and Secrets (postBuild.substituteFrom) are skipped.
    #[arg(long)]
    pub dry_run: bool,
}

/// `diff` kinds.
#[derive(Subcommand, Debug)]
pub enum DiffTarget {
    /// Diff a Kustomization built from a local directory against the cluster.
    #[command(visible_alias = "ks")]
    Kustomization(DiffKsArgs),
}

/// `diff kustomization` flags.
#[derive(Args, Debug)]
pub struct DiffKsArgs {
    #[command(flatten)]
    pub local: LocalKsArgs,
    /// With --kustomization-file: diff even when the Kustomization is not in the cluster
    /// yet (a new Kustomization: nothing can be pruned).
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// `build|diff kustomization NAME --path DIR`.
#[derive(Args, Debug)]
pub struct LocalKsArgs {
    /// Name of the Kustomization (read from the cluster unless --kustomization-file is given).
    pub name: String,
    /// Path to the local directory that matches the Kustomization's spec.path.
    #[arg(long)]
    pub path: PathBuf,
    /// Read the Kustomization from this YAML file instead of the cluster.
    #[arg(long)]
    pub kustomization_file: Option<PathBuf>,
    /// Paths to leave out of the build, comma-separated, in .gitignore format
    /// (e.g. "/to_ignore/**/*.yaml,ignore.yaml").
    #[arg(long, value_delimiter = ',')]
    pub ignore_paths: Vec<String>,
}

/// `kustomize` subcommands.
#[derive(Subcommand, Debug)]
pub enum KustomizeCommand {
    /// Build a kustomization directory and print the objects as a YAML stream.
    Build {
        /// The directory holding kustomization.yaml (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// `helm` subcommands.
#[derive(Subcommand, Debug)]
pub enum HelmCommand {
    /// Render a chart's templates locally, as `helm template` does.
    Template(HelmTemplateArgs),
}

/// `helm template RELEASE CHART`.
#[derive(Args, Debug)]
pub struct HelmTemplateArgs {
    /// Release name.
    pub release: String,
    /// Path to the chart directory or .tgz.
    pub chart: PathBuf,
    /// Values files (repeatable).
    #[arg(short = 'f', long = "values")]
    pub values: Vec<PathBuf>,
    /// Set values on the command line (key=value, repeatable).
    #[arg(long)]
    pub set: Vec<String>,
    /// Set string values on the command line (key=value, repeatable).
    #[arg(long)]
    pub set_string: Vec<String>,
    /// Kubernetes version for Capabilities.KubeVersion.
    #[arg(long, default_value = "v1.20.0")]
    pub kube_version: String,
    /// Kubernetes API versions for Capabilities.APIVersions (repeatable).
    #[arg(short = 'a', long)]
    pub api_versions: Vec<String>,
    /// Include CRDs in the output.
    #[arg(long)]
    pub include_crds: bool,
    /// Skip tests from the output.
    #[arg(long)]
    pub skip_tests: bool,
}

/// The --ignore-paths patterns, anchored at the --path directory.
fn ignore_matcher(patterns: &[String]) -> ferroflux_artifact::ignore::Matcher {
    ferroflux_artifact::ignore::Matcher::new(
        patterns
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| ferroflux_artifact::ignore::Pattern::parse(p, &[]))
            .collect(),
    )
}

/// Copies `from` to `to`, leaving out what `ignore` excludes (`rel`: the path of `from`
/// below the --path directory).
fn copy_dir(
    from: &Path,
    to: &Path,
    rel: &[String],
    ignore: &ferroflux_artifact::ignore::Matcher,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut path = rel.to_vec();
        path.push(name);
        let parts: Vec<&str> = path.iter().map(String::as_str).collect();
        if ignore.is_excluded(&parts, ty.is_dir()) {
            continue;
        }
        let target = to.join(entry.file_name());
        if ty.is_dir() {
            copy_dir(&entry.path(), &target, &path, ignore)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

async fn load_ks(
    g: &Global,
    args: &LocalKsArgs,
    client: Option<&kube::Client>,
) -> anyhow::Result<(Value, KustomizationSpec)> {
    let obj: Value = match &args.kustomization_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let docs = ferroflux_kustomize::yaml::parse_docs(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let doc = docs
                .into_iter()
                .find(|d| {
                    ferroflux_kustomize::yaml::get_str(d, &["kind"]) == "Kustomization"
                        && ferroflux_kustomize::yaml::get_str(d, &["metadata", "name"]) == args.name
                })
                .with_context(|| {
                    format!("no Kustomization named {} in {}", args.name, file.display())
                })?;
            serde_json::to_value(doc)?
        }
        None => {
            let client = client.context("a cluster is needed to read the Kustomization; pass --kustomization-file to build offline")?;
            let obj = get_object(client, &cluster::KS, &g.namespace, &args.name).await?;
            serde_json::to_value(&obj)?
        }
    };
    let spec: KustomizationSpec =
        serde_json::from_value(obj.get("spec").cloned().unwrap_or_default())
            .with_context(|| format!("reading the spec of Kustomization {}", args.name))?;
    Ok((obj, spec))
}

async fn substitute_vars(
    client: Option<&kube::Client>,
    ns: &str,
    spec: &KustomizationSpec,
    dry_run: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    // Flux's dry-run skips the substitutions read from the cluster.
    if dry_run {
        return Ok(vars);
    }
    let refs = spec
        .post_build
        .as_ref()
        .and_then(|p| p.substitute_from.clone())
        .unwrap_or_default();
    if refs.is_empty() {
        return Ok(vars);
    }
    let Some(client) = client else {
        bail!(
            "postBuild.substituteFrom needs the cluster to read ConfigMaps and Secrets: configure a kubeconfig, \
             or pass --dry-run to build without them"
        );
    };
    for r in refs {
        let optional = r.optional.unwrap_or(false);
        match r.kind {
            ValuesSourceKind::ConfigMap => {
                match Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get_opt(&r.name)
                    .await?
                {
                    Some(cm) => vars.extend(cm.data.unwrap_or_default()),
                    None if optional => {}
                    None => bail!(
                        "substitute from 'ConfigMap/{ns}/{}' error: not found",
                        r.name
                    ),
                }
            }
            ValuesSourceKind::Secret => match Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(&r.name)
                .await?
            {
                Some(s) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        vars.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
                None if optional => {}
                None => bail!("substitute from 'Secret/{ns}/{}' error: not found", r.name),
            },
        }
    }
    Ok(vars)
}

/// Builds the local directory as the controller would build the Kustomization.
async fn local_build(
    g: &Global,
    args: &LocalKsArgs,
    client: Option<&kube::Client>,
    dry_run: bool,
) -> anyhow::Result<(Value, Vec<serde_yaml::Value>)> {
    if !args.path.is_dir() {
        bail!(
            "invalid resource path {:?}: not a directory",
            args.path.display().to_string()
        );
    }
    let (obj, mut spec) = load_ks(g, args, client).await?;
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&g.namespace)
        .to_string();
    let vars = substitute_vars(client, &ns, &spec, dry_run).await?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root");
    copy_dir(&args.path, &root, &[], &ignore_matcher(&args.ignore_paths))?;
    spec.path = Some("./".into());
    let objects = ferroflux_kustomize_controller::build::build(&root, &spec, &vars)
        .map_err(|e| anyhow::anyhow!("building Kustomization {ns}/{}: {e}", args.name))?;
    Ok((obj, objects))
}

/// `build kustomization NAME --path DIR`.
pub async fn build(g: &Global, target: BuildTarget) -> Outcome {
    let BuildTarget::Kustomization(BuildKsArgs {
        local: args,
        dry_run,
    }) = target;
    let client = match (&args.kustomization_file, dry_run) {
        (None, true) => bail!(
            "--dry-run needs --kustomization-file: without the cluster, Kustomization {} must come from a file",
            args.name
        ),
        (None, false) => Some(g.client().await?),
        (Some(_), true) => None,
        // The cluster, when there is one, gives postBuild.substituteFrom its values.
        (Some(_), false) => g.client().await.ok(),
    };
    let (_, objects) = local_build(g, &args, client.as_ref(), dry_run).await?;
    print!("{}", ferroflux_kustomize::to_yaml_stream(&objects));
    ok()
}

fn strip_server_fields(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            meta.remove(k);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
}

/// A line diff (longest common subsequence) with three lines of context, in the
/// unified format's line prefixes.
pub fn unified_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.0 != ' ')
        .map(|(k, _)| k)
        .collect();
    let mut out = String::new();
    let mut last_printed: Option<usize> = None;
    for (k, (op, line)) in ops.iter().enumerate() {
        let near = changed.iter().any(|&c| c.abs_diff(k) <= 3);
        if !near {
            continue;
        }
        if last_printed.is_some_and(|l| l + 1 != k) {
            out.push_str("...\n");
        }
        out.push_str(&format!("{op}{line}\n"));
        last_printed = Some(k);
    }
    out
}

async fn live_object(
    client: &kube::Client,
    id: &ObjectRef,
) -> anyhow::Result<Option<DynamicObject>> {
    let gvk = GroupVersionKind::gvk(&id.group, &id.version, &id.kind);
    let Ok((resource, caps)) = kube::discovery::pinned_kind(client, &gvk).await else {
        return Ok(None);
    };
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => Api::namespaced_with(client.clone(), &id.namespace, &resource),
    };
    Ok(api.get_opt(&id.name).await?)
}

/// `diff kustomization NAME --path DIR`: exit 1 when the cluster differs.
pub async fn diff(g: &Global, target: DiffTarget) -> Outcome {
    let DiffTarget::Kustomization(DiffKsArgs {
        local: args,
        ignore_not_found,
    }) = target;
    if ignore_not_found && args.kustomization_file.is_none() {
        bail!(
            "--ignore-not-found needs --kustomization-file: it describes the Kustomization the cluster does not have"
        );
    }
    let client = g.client().await?;
    let (mut ks, objects) = local_build(g, &args, Some(&client), false).await?;
    if args.kustomization_file.is_some() {
        // As Flux: the file gives the spec, the cluster's object its status (the inventory,
        // so that what would be pruned shows).
        let ns = ks
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(&g.namespace)
            .to_string();
        match cluster::KS
            .api(&client, Some(&ns))
            .get_opt(&args.name)
            .await
        {
            Ok(Some(live)) => {
                if let Some(status) = live.data.get("status") {
                    ks["status"] = status.clone();
                }
            }
            Ok(None) if ignore_not_found => {}
            Ok(None) => bail!(
                "Kustomization '{}' not found in {ns} namespace: pass --ignore-not-found to diff a Kustomization the cluster does not have yet",
                args.name
            ),
            Err(err) => {
                return Err(cluster::describe_get_error(
                    err,
                    &cluster::KS,
                    &args.name,
                    &ns,
                ));
            }
        }
    }
    let ks_ns = ks
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&g.namespace)
        .to_string();
    let owner = BTreeMap::from([
        (
            ferroflux_api::constants::KUSTOMIZE_NAME_LABEL.to_string(),
            args.name.clone(),
        ),
        (
            ferroflux_api::constants::KUSTOMIZE_NAMESPACE_LABEL.to_string(),
            ks_ns.clone(),
        ),
    ]);
    let manager = ResourceManager::new(
        client.clone(),
        ferroflux_api::constants::KUSTOMIZE_CONTROLLER,
        owner,
    );
    let mut differs = false;
    let mut built_ids = Vec::new();
    for obj in objects {
        let obj: DynamicObject = serde_json::from_value(serde_json::to_value(&obj)?)?;
        let id = ObjectRef::of(&obj)?;
        built_ids.push(id.clone());
        let live = live_object(&client, &id).await?;
        let merged = manager
            .dry_run(&obj)
            .await
            .with_context(|| format!("{id} dry-run failed"))?;
        match live {
            None => {
                println!("► {id} created");
                differs = true;
            }
            Some(live) => {
                let mut l = serde_json::to_value(&live)?;
                let mut m = serde_json::to_value(&merged)?;
                strip_server_fields(&mut l);
                strip_server_fields(&mut m);
                if l != m {
                    println!("► {id} drifted");
                    print!(
                        "{}",
                        unified_diff(&crate::output::to_yaml(&l), &crate::output::to_yaml(&m))
                    );
                    differs = true;
                }
            }
        }
    }
    let prune = ks
        .pointer("/spec/prune")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if prune && let Some(inv) = ks.pointer("/status/inventory") {
        let inv: ferroflux_api::meta::ResourceInventory =
            serde_json::from_value(inv.clone()).unwrap_or_default();
        for entry in &inv.entries {
            if let Some(id) = ObjectRef::from_inventory(entry)
                && !built_ids.iter().any(|b| b.same_object(&id))
            {
                println!("► {id} deleted");
                differs = true;
            }
        }
    }
    Ok(if differs {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `kustomize build DIR`.
pub fn kustomize(command: KustomizeCommand) -> Outcome {
    let KustomizeCommand::Build { dir } = command;
    let dir = std::fs::canonicalize(&dir)
        .with_context(|| format!("{}: no such directory", dir.display()))?;
    let objects =
        ferroflux_kustomize::build(&ferroflux_kustomize::DiskFs, &dir, &Default::default())
            .map_err(|e| anyhow::anyhow!("kustomize build {}: {e}", dir.display()))?;
    print!("{}", ferroflux_kustomize::to_yaml_stream(&objects));
    ok()
}

/// Renders the chart; `namespace` is the release namespace (helm's `-n`, "default" when absent).
fn template(args: HelmTemplateArgs, namespace: String) -> anyhow::Result<()> {
    let chart = ferroflux_helm::chart::load(&args.chart)
        .map_err(|e| anyhow::anyhow!("loading chart {}: {e}", args.chart.display()))?;
    let mut texts = Vec::new();
    for f in &args.values {
        texts.push(std::fs::read_to_string(f).with_context(|| format!("open {}", f.display()))?);
    }
    let mut user =
        ferroflux_helm::user_values(&texts, &args.set).map_err(|e| anyhow::anyhow!("{e}"))?;
    for s in &args.set_string {
        ferroflux_helm::values::parse_set_into(s, &mut user, true)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let opts = ferroflux_helm::RenderOptions {
        release: ferroflux_helm::ReleaseOptions {
            name: args.release.clone(),
            namespace,
            ..Default::default()
        },
        capabilities: ferroflux_helm::Capabilities::new(&args.kube_version, &args.api_versions),
        strict: false,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut host = ferroflux_gotemplate::FixedHost::new(now.as_nanos() as u64 | 1);
    host.now = (now.as_secs() as i64, now.subsec_nanos());
    let r = ferroflux_helm::render_chart(&chart, &user, &opts, &mut host)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Written piece by piece: the output can be megabytes of CRDs.
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    ferroflux_helm::write_template_output(&r, args.include_crds, args.skip_tests, &mut out)
        .and_then(|()| out.flush())
        .context("writing the output")
}

/// `helm template RELEASE CHART`, in release namespace `namespace` (the `-n/--namespace` flag
/// when given).
pub fn helm(command: HelmCommand, namespace: Option<String>) -> Outcome {
    let HelmCommand::Template(args) = command;
    let namespace = namespace.unwrap_or_else(|| "default".to_string());
    // Deeply nested templates recurse: give the renderer a large stack.
    let handle = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || template(args, namespace))?;
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the Helm renderer crashed"))??;
    ok()
}

#[cfg(test)]
mod tests {
    use super::unified_diff;

    #[test]
    fn diff_marks_changed_lines() {
        let d = unified_diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, " a\n-b\n+B\n c\n");
        assert_eq!(unified_diff("x\n", "x\n"), "");
    }
}
