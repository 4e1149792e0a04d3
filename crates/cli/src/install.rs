//! `version`, `check`, `install` and `uninstall`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ferroflux_api::constants::{PART_OF_LABEL, PART_OF_VALUE, VERSION_LABEL};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::Scope;
use serde_json::{Value, json};

use crate::cluster::{self, Global};
use crate::output;
use crate::{Outcome, ok};

/// Every file of `deploy/` and `crds/` that the build reads, embedded at compile time.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "deploy/kustomization.yaml",
        include_str!("../../../deploy/kustomization.yaml"),
    ),
    (
        "deploy/namespace.yaml",
        include_str!("../../../deploy/namespace.yaml"),
    ),
    (
        "deploy/rbac.yaml",
        include_str!("../../../deploy/rbac.yaml"),
    ),
    (
        "deploy/source-controller.yaml",
        include_str!("../../../deploy/source-controller.yaml"),
    ),
    (
        "deploy/kustomize-controller.yaml",
        include_str!("../../../deploy/kustomize-controller.yaml"),
    ),
    (
        "deploy/helm-controller.yaml",
        include_str!("../../../deploy/helm-controller.yaml"),
    ),
    (
        "deploy/notification-controller.yaml",
        include_str!("../../../deploy/notification-controller.yaml"),
    ),
    (
        "deploy/network-policies.yaml",
        include_str!("../../../deploy/network-policies.yaml"),
    ),
    (
        "deploy/Dockerfile",
        include_str!("../../../deploy/Dockerfile"),
    ),
    (
        "deploy/Dockerfile.dockerignore",
        include_str!("../../../deploy/Dockerfile.dockerignore"),
    ),
    (
        "crds/kustomization.yaml",
        include_str!("../../../crds/kustomization.yaml"),
    ),
    (
        "crds/source.toolkit.fluxcd.io_gitrepositories.yaml",
        include_str!("../../../crds/source.toolkit.fluxcd.io_gitrepositories.yaml"),
    ),
    (
        "crds/source.toolkit.fluxcd.io_ocirepositories.yaml",
        include_str!("../../../crds/source.toolkit.fluxcd.io_ocirepositories.yaml"),
    ),
    (
        "crds/source.toolkit.fluxcd.io_helmrepositories.yaml",
        include_str!("../../../crds/source.toolkit.fluxcd.io_helmrepositories.yaml"),
    ),
    (
        "crds/source.toolkit.fluxcd.io_helmcharts.yaml",
        include_str!("../../../crds/source.toolkit.fluxcd.io_helmcharts.yaml"),
    ),
    (
        "crds/source.toolkit.fluxcd.io_buckets.yaml",
        include_str!("../../../crds/source.toolkit.fluxcd.io_buckets.yaml"),
    ),
    (
        "crds/source.toolkit.fluxcd.io_externalartifacts.yaml",
        include_str!("../../../crds/source.toolkit.fluxcd.io_externalartifacts.yaml"),
    ),
    (
        "crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
        include_str!("../../../crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
    ),
    (
        "crds/helm.toolkit.fluxcd.io_helmreleases.yaml",
        include_str!("../../../crds/helm.toolkit.fluxcd.io_helmreleases.yaml"),
    ),
    (
        "crds/notification.toolkit.fluxcd.io_alerts.yaml",
        include_str!("../../../crds/notification.toolkit.fluxcd.io_alerts.yaml"),
    ),
    (
        "crds/notification.toolkit.fluxcd.io_providers.yaml",
        include_str!("../../../crds/notification.toolkit.fluxcd.io_providers.yaml"),
    ),
    (
        "crds/notification.toolkit.fluxcd.io_receivers.yaml",
        include_str!("../../../crds/notification.toolkit.fluxcd.io_receivers.yaml"),
    ),
];

/// The objects of `deploy/`, built with our kustomize from the embedded files.
pub fn manifests() -> anyhow::Result<Vec<serde_yaml::Value>> {
    let mut fs = ferroflux_kustomize::MemFs::new();
    for (path, text) in EMBEDDED {
        fs.add(Path::new("/").join(path), text.as_bytes());
    }
    ferroflux_kustomize::build(
        &fs,
        Path::new("/deploy"),
        &ferroflux_kustomize::BuildOptions::default(),
    )
    .context("building the embedded deploy/ kustomization")
}

/// Kubernetes versions ferroflux supports (Flux's constraint).
const K8S_MIN: (u64, u64) = (1, 33);

/// `version`.
#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Print only the client version.
    #[arg(long)]
    pub client: bool,
    /// The format of the output: yaml or json.
    #[arg(short, long, default_value = "yaml", value_parser = ["yaml", "json"])]
    pub output: String,
}

/// `check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Only run pre-installation checks.
    #[arg(long)]
    pub pre: bool,
    /// How often the controllers' Deployments are polled while waiting for them.
    #[arg(long, default_value = "5s", value_parser = crate::output::duration_arg)]
    pub poll_interval: Duration,
}

/// `install`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  # Install or upgrade ferroflux in the flux-system namespace, and wait for the controllers
  ferroflux install

  # Give slow image pulls more time
  ferroflux install --timeout=10m

  # Write the install manifests to a file (nothing is applied)
  ferroflux install --export > flux-system.yaml")]
pub struct InstallArgs {
    /// Write the install manifests to stdout and exit.
    #[arg(long)]
    pub export: bool,
}
/// `uninstall`.
#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// Skip the namespace deletion.
    #[arg(long)]
    pub keep_namespace: bool,
    /// Delete components without asking for confirmation.
    #[arg(short, long)]
    pub silent: bool,
    /// Only print the objects that would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

struct ClusterInfo {
    distribution: Option<String>,
    bootstrapped: bool,
}

/// Labels kustomize-controller puts on what it applies: on the GitRepository CRD they say
/// the components are managed from Git, i.e. the cluster was bootstrapped (Flux's test).
const BOOTSTRAP_LABELS: [&str; 2] = [
    "kustomize.toolkit.fluxcd.io/name",
    "kustomize.toolkit.fluxcd.io/namespace",
];

/// Flux's `getFluxClusterInfo`: the version and distribution labels of the GitRepository
/// CRD, and whether a Kustomization applied it.
async fn cluster_info(client: &kube::Client) -> anyhow::Result<ClusterInfo> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get_opt("gitrepositories.source.toolkit.fluxcd.io")
        .await?;
    let labels = crd.and_then(|c| c.metadata.labels).unwrap_or_default();
    let distribution = labels
        .get(VERSION_LABEL)
        .map(|version| match labels.get(PART_OF_LABEL) {
            Some(p) => format!("{p}-{version}"),
            None => version.clone(),
        });
    let bootstrapped = BOOTSTRAP_LABELS.iter().all(|l| labels.contains_key(*l));
    Ok(ClusterInfo {
        distribution,
        bootstrapped,
    })
}

/// `version`.
pub async fn version(g: &Global, args: VersionArgs) -> Outcome {
    let mut info: Vec<(String, String)> = vec![
        (
            "ferroflux".into(),
            format!("v{}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "flux".into(),
            ferroflux_api::constants::FLUX_DISTRIBUTION_VERSION.into(),
        ),
    ];
    if !args.client {
        let client = g.client().await?;
        let ci = cluster_info(&client)
            .await
            .context("reading the ferroflux version from the cluster (pass --client for the client version only)")?;
        if let Some(d) = ci.distribution {
            info.push(("distribution".into(), d));
        }
        let deployments: Api<Deployment> = Api::namespaced(client, &g.namespace);
        let lp = ListParams::default().labels(&format!("{PART_OF_LABEL}={PART_OF_VALUE}"));
        for d in deployments.list(&lp).await?.items {
            for c in d
                .spec
                .and_then(|s| s.template.spec)
                .map(|s| s.containers)
                .unwrap_or_default()
            {
                let image = c.image.unwrap_or_default();
                let tag = image
                    .rsplit_once(':')
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_default();
                info.push((c.name, tag));
            }
        }
    }
    if args.output == "json" {
        let map: serde_json::Map<String, Value> =
            info.into_iter().map(|(k, v)| (k, json!(v))).collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        for (k, v) in info {
            println!("{k}: {v}");
        }
    }
    ok()
}

fn parse_version(git_version: &str) -> Option<(u64, u64, u64)> {
    let v = git_version.trim_start_matches('v');
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

pub(crate) fn deployment_ready(d: &Deployment) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return false;
    };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) >= want
        && status.available_replicas.unwrap_or(0) >= want
        && status.replicas.unwrap_or(0) == want
}

/// `check [--pre]`.
pub async fn check(g: &Global, args: CheckArgs) -> Outcome {
    output::action("checking prerequisites");
    let client = g
        .client()
        .await
        .context("Kubernetes client initialization failed")?;
    let mut failed = false;
    match client.apiserver_version().await {
        Err(err) => {
            output::failure(format!("Kubernetes API call failed: {err}"));
            failed = true;
        }
        Ok(info) => match parse_version(&info.git_version) {
            None => {
                output::failure("Kubernetes version can't be determined");
                failed = true;
            }
            Some((maj, min, patch)) => {
                let range = format!(">={}.{}.0-0", K8S_MIN.0, K8S_MIN.1);
                if (maj, min) >= K8S_MIN {
                    output::success(format!("Kubernetes {maj}.{min}.{patch} {range}"));
                } else {
                    output::failure(format!(
                        "Kubernetes version {} does not match {range}",
                        info.git_version
                    ));
                    failed = true;
                }
            }
        },
    }
    if args.pre {
        if failed {
            bail!(
                "prerequisites checks failed: use a Kubernetes {}.{} or newer cluster",
                K8S_MIN.0,
                K8S_MIN.1
            );
        }
        output::success("prerequisites checks passed");
        return ok();
    }
    if failed {
        bail!("check failed: the cluster is not reachable or not supported");
    }
    let ns = g.namespace.as_str();
    output::action("checking version in cluster");
    match cluster_info(&client).await {
        Ok(ci) => {
            if let Some(d) = ci.distribution {
                output::success(format!("distribution: {d}"));
            }
            output::success(format!("bootstrapped: {}", ci.bootstrapped));
        }
        Err(err) => {
            output::failure(format!("checking failed: {err:#}"));
            failed = true;
        }
    }
    output::action("checking controllers");
    let selector = format!("{PART_OF_LABEL}={PART_OF_VALUE}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let list = deployments
        .list(&ListParams::default().labels(&selector))
        .await?;
    if list.items.is_empty() {
        output::failure(format!(
            "no controllers found in the '{ns}' namespace with the label selector '{selector}': run `ferroflux install`"
        ));
        failed = true;
    }
    for d in &list.items {
        // kstatus on each Deployment until --timeout, as Flux's status checker; the
        // component's line says whether it is ready.
        let name = d.metadata.name.clone().unwrap_or_default();
        if crate::components::wait_ready(&client, ns, &[name], args.poll_interval, g.timeout)
            .await
            .is_err()
        {
            failed = true;
        }
        for c in d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| s.containers.clone())
            .unwrap_or_default()
        {
            output::action(c.image.unwrap_or_default());
        }
    }
    output::action("checking crds");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let list = crds.list(&ListParams::default().labels(&selector)).await?;
    if list.items.is_empty() {
        output::failure(format!(
            "no crds found with the label selector '{selector}': run `ferroflux install`"
        ));
        failed = true;
    }
    for crd in list.items {
        let name = crd.metadata.name.unwrap_or_default();
        match crd
            .status
            .and_then(|s| s.stored_versions)
            .and_then(|v| v.last().cloned())
        {
            Some(v) => output::success(format!("{name}/{v}")),
            None => {
                output::failure(format!("no stored versions for {name}"));
                failed = true;
            }
        }
    }
    if failed {
        bail!("check failed");
    }
    output::success("all checks passed");
    ok()
}

fn to_dynamic(objs: Vec<serde_yaml::Value>) -> anyhow::Result<Vec<DynamicObject>> {
    objs.into_iter()
        .map(|o| {
            let json: Value = serde_json::to_value(&o)?;
            Ok(serde_json::from_value(json)?)
        })
        .collect()
}

/// The controllers `install` waits for: the Deployments of the components.
fn component_names(objects: &[serde_yaml::Value]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some("Deployment"))
        .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
        .collect()
}

/// How often `install` looks at the Deployments while it waits (Flux: 5 s).
const POLL: Duration = Duration::from_secs(2);

/// `install [--export]`: applies the components, then waits (until --timeout) for the
/// controllers to be ready, as `flux install` does.
pub async fn install(g: &Global, args: InstallArgs) -> Outcome {
    let objects = manifests()?;
    if args.export {
        print!("{}", ferroflux_kustomize::to_yaml_stream(&objects));
        return ok();
    }
    let ns = ferroflux_api::constants::DEFAULT_NAMESPACE;
    if g.namespace != ns {
        bail!(
            "ferroflux installs into the {ns} namespace only (deploy/ is built for it), not {:?}: drop -n/--namespace",
            g.namespace
        );
    }
    output::generate("generating manifests");
    output::success("manifests build completed");
    output::action(format!("installing components in {ns} namespace"));
    let client = g.client().await?;
    if let Ok(ci) = cluster_info(&client).await
        && ci.bootstrapped
    {
        bail!(
            "this cluster has already been bootstrapped with {}: upgrade it with `ferroflux bootstrap git` \
             (the same flags as the first time), so that the repository and the cluster stay in sync",
            ci.distribution.as_deref().unwrap_or("Flux")
        );
    }
    let names = component_names(&objects);
    let manager = ferroflux_ssa::ResourceManager::new(client.clone(), "ferroflux", BTreeMap::new());
    let changes = manager
        .apply_all_staged(
            to_dynamic(objects)?,
            &ferroflux_ssa::ApplyOptions::default(),
        )
        .await
        .context("install failed: applying the ferroflux components")?;
    for entry in &changes.entries {
        eprintln!("{} {}", entry.object, entry.action.as_str());
    }
    output::waiting("verifying installation");
    crate::components::wait_ready(&client, ns, &names, POLL, g.timeout).await?;
    output::success("install finished");
    ok()
}

/// `uninstall`: removes finalizers from every Flux object, then deletes the components,
/// the CRDs (and with them every Flux object) and the namespace.
pub async fn uninstall(g: &Global, args: UninstallArgs) -> Outcome {
    let objects = to_dynamic(manifests()?)?;
    if !args.silent && !args.dry_run {
        output::warning(
            "uninstalling deletes the controllers, their RBAC and the CRDs; deleting the CRDs deletes every \
             Flux object (GitRepositories, Kustomizations, HelmReleases, ...) in every namespace. \
             The workloads they applied stay.",
        );
        if !output::confirm(
            "Are you sure you want to delete Flux and its custom resource definitions",
        ) {
            bail!("aborting: nothing was deleted (pass --silent to skip the confirmation)");
        }
    }
    let client = g.client().await?;
    let dry = if args.dry_run { " (dry run)" } else { "" };
    output::action(format!(
        "deleting components in {} namespace{dry}",
        ferroflux_api::constants::DEFAULT_NAMESPACE
    ));
    // Flux objects lose their finalizers first, so that CRD deletion does not wait for
    // controllers that are being removed.
    output::action(format!("removing finalizers from Flux objects{dry}"));
    for kind in cluster::ALL {
        let Ok(list) = kind.api(&client, None).list(&ListParams::default()).await else {
            continue;
        };
        for obj in list.items {
            let (Some(name), Some(ns)) =
                (obj.metadata.name.clone(), obj.metadata.namespace.clone())
            else {
                continue;
            };
            if obj
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
            {
                if !args.dry_run {
                    kind.api(&client, Some(&ns))
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                        )
                        .await
                        .with_context(|| {
                            format!("removing the finalizers of {} {ns}/{name}", kind.kind)
                        })?;
                }
                output::success(format!("{}/{ns}/{name} finalizers deleted{dry}", kind.kind));
            }
        }
    }
    let mut ordered: Vec<&DynamicObject> = objects.iter().collect();
    // Components first, then CRDs, then the namespace.
    ordered.sort_by_key(|o| match o.types.as_ref().map(|t| t.kind.as_str()) {
        Some("Namespace") => 2,
        Some("CustomResourceDefinition") => 1,
        _ => 0,
    });
    let dp = if args.dry_run {
        DeleteParams {
            dry_run: true,
            ..Default::default()
        }
    } else {
        DeleteParams::default()
    };
    for obj in ordered {
        let id = ferroflux_ssa::ObjectRef::of(obj)?;
        if id.kind == "Namespace" && args.keep_namespace {
            continue;
        }
        let gvk = GroupVersionKind::gvk(&id.group, &id.version, &id.kind);
        let Ok((resource, caps)) = kube::discovery::pinned_kind(&client, &gvk).await else {
            continue;
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(client.clone(), &id.namespace, &resource),
        };
        match api.delete(&id.name, &dp).await {
            Ok(_) => output::success(format!("{id} deleted{dry}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(err) => return Err(anyhow::Error::new(err).context(format!("deleting {id}"))),
        }
    }
    output::success(format!("uninstall finished{dry}"));
    ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_deploy_and_crds_is_embedded() {
        let root = ferroflux_testenv::workspace_root();
        let mut on_disk = Vec::new();
        for dir in ["deploy", "crds"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                on_disk.push(format!("{dir}/{name}"));
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "add new deploy/ or crds/ files to EMBEDDED in install.rs"
        );
        for (path, text) in EMBEDDED {
            assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), *text);
        }
    }

    #[test]
    fn embedded_deploy_builds_like_the_directory() {
        let root = ferroflux_testenv::workspace_root();
        let disk = ferroflux_kustomize::build(
            &ferroflux_kustomize::DiskFs,
            &root.join("deploy"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(manifests().unwrap(), disk);
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("v1.36.3"), Some((1, 36, 3)));
        assert_eq!(parse_version("v1.33.0-rc.1+k3s"), Some((1, 33, 0)));
    }
}
