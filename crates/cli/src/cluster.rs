//! Global flags as kubectl and flux have them, the kube client built from them, and the
//! Flux kinds the verbs work on.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use crate::output::duration_arg;

/// Flags every command accepts.
#[derive(Args, Clone, Debug)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the local `dev up` cluster).
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use (instead of the context's).
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use (instead of the context's).
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The address and port of the Kubernetes API server (instead of the kubeconfig's).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server (instead of the kubeconfig's).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Do not check the API server's certificate (insecure).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// The namespace scope for this operation.
    #[arg(short = 'n', long, global = true, default_value = ferroflux_api::constants::DEFAULT_NAMESPACE, env = "FLUX_SYSTEM_NAMESPACE")]
    pub namespace: String,
    /// Timeout for this operation (Go duration: 30s, 5m, 1h).
    #[arg(long, global = true, default_value = "5m0s", value_parser = duration_arg)]
    pub timeout: Duration,
}

impl Global {
    /// A client for the cluster these flags name. Without any kubeconfig, the local
    /// control plane of `ferroflux dev up` is used when it runs.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let path = self.kubeconfig.clone().or_else(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from)?;
            let default = home.join(".kube/config");
            if default.exists() {
                Some(default)
            } else {
                crate::dev::running_kubeconfig()
            }
        });
        let mut config = match path {
            Some(path) => {
                // KUBECONFIG may list several files, as kubectl allows.
                let kubeconfig = if path.to_string_lossy().contains(':') {
                    Kubeconfig::from_env()
                        .ok()
                        .flatten()
                        .with_context(|| format!("reading the kubeconfigs {}", path.display()))?
                } else {
                    Kubeconfig::read_from(&path)
                        .with_context(|| format!("reading the kubeconfig {}", path.display()))?
                };
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("loading the kubeconfig {}", path.display()))?
            }
            None => kube::Config::incluster().context(
                "no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or run `ferroflux dev up`",
            )?,
        };
        // kubectl's overrides, applied over whatever the kubeconfig said.
        if let Some(server) = &self.server {
            config.cluster_url = server
                .parse()
                .with_context(|| format!("--server {server:?} is not a URL"))?;
        }
        if let Some(token) = &self.token {
            config.auth_info.token = Some(token.clone().into());
        }
        if self.insecure_skip_tls_verify {
            config.accept_invalid_certs = true;
        }
        kube::Client::try_from(config).context("creating the Kubernetes client")
    }
}

/// One Flux kind the verbs accept.
#[derive(Clone, Copy, Debug)]
pub struct FluxKind {
    /// The Kind.
    pub kind: &'static str,
    /// API group.
    pub group: &'static str,
    /// Served version the CLI uses.
    pub version: &'static str,
    /// Resource plural.
    pub plural: &'static str,
    /// What flux calls it in messages (`GitRepository source`, `Kustomization`).
    pub human: &'static str,
}

impl FluxKind {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// The dynamic API resource.
    pub fn resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }

    /// The API of this kind in `namespace`, or across all namespaces.
    pub fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource()),
            None => Api::all_with(client.clone(), &self.resource()),
        }
    }

    /// Whether this is a source kind.
    pub fn is_source(&self) -> bool {
        self.group == "source.toolkit.fluxcd.io"
    }
}

const SOURCE: &str = "source.toolkit.fluxcd.io";

pub const GIT: FluxKind = FluxKind {
    kind: "GitRepository",
    group: SOURCE,
    version: "v1",
    plural: "gitrepositories",
    human: "GitRepository source",
};
pub const HELM_REPO: FluxKind = FluxKind {
    kind: "HelmRepository",
    group: SOURCE,
    version: "v1",
    plural: "helmrepositories",
    human: "HelmRepository source",
};
pub const OCI: FluxKind = FluxKind {
    kind: "OCIRepository",
    group: SOURCE,
    version: "v1",
    plural: "ocirepositories",
    human: "OCIRepository source",
};
pub const BUCKET: FluxKind = FluxKind {
    kind: "Bucket",
    group: SOURCE,
    version: "v1",
    plural: "buckets",
    human: "Bucket source",
};
pub const CHART: FluxKind = FluxKind {
    kind: "HelmChart",
    group: SOURCE,
    version: "v1",
    plural: "helmcharts",
    human: "HelmChart source",
};
pub const KS: FluxKind = FluxKind {
    kind: "Kustomization",
    group: "kustomize.toolkit.fluxcd.io",
    version: "v1",
    plural: "kustomizations",
    human: "Kustomization",
};
pub const HR: FluxKind = FluxKind {
    kind: "HelmRelease",
    group: "helm.toolkit.fluxcd.io",
    version: "v2",
    plural: "helmreleases",
    human: "HelmRelease",
};
pub const RECEIVER: FluxKind = FluxKind {
    kind: "Receiver",
    group: "notification.toolkit.fluxcd.io",
    version: "v1",
    plural: "receivers",
    human: "Receiver",
};
pub const PROVIDER: FluxKind = FluxKind {
    kind: "Provider",
    group: "notification.toolkit.fluxcd.io",
    version: "v1beta3",
    plural: "providers",
    human: "Provider",
};
pub const ALERT: FluxKind = FluxKind {
    kind: "Alert",
    group: "notification.toolkit.fluxcd.io",
    version: "v1beta3",
    plural: "alerts",
    human: "Alert",
};

/// Every Flux kind, sources first (the order of `flux get all`).
pub const ALL: [FluxKind; 10] = [
    OCI, BUCKET, GIT, HELM_REPO, CHART, HR, KS, RECEIVER, PROVIDER, ALERT,
];

/// Finds a kind by its Kind name, case-insensitively.
pub fn by_kind(kind: &str) -> Option<FluxKind> {
    ALL.iter()
        .copied()
        .find(|k| k.kind.eq_ignore_ascii_case(kind))
}

/// Reads a string at a JSON path.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// A condition of the object's status.
pub fn condition<'a>(obj: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    obj.data
        .get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Flux's `statusAndMessage`: Ready's status and message, or `False` and
/// "waiting to be reconciled" when there is no Ready condition.
pub fn ready_and_message(obj: &DynamicObject) -> (String, String) {
    match condition(obj, "Ready") {
        Some(c) => (
            c.get("status")
                .and_then(Value::as_str)
                .unwrap_or("Unknown")
                .to_string(),
            c.get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        None => ("False".into(), "waiting to be reconciled".into()),
    }
}

/// `spec.suspend`.
pub fn suspended(obj: &DynamicObject) -> bool {
    obj.data
        .get("spec")
        .and_then(|s| s.get("suspend"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Names an API error for users: not found gets a hint.
pub fn describe_get_error(
    err: kube::Error,
    kind: &FluxKind,
    name: &str,
    ns: &str,
) -> anyhow::Error {
    match &err {
        kube::Error::Api(status) if status.code == 404 => anyhow::anyhow!(
            "{} '{}' not found in {} namespace: check the name and namespace (-n), or list them with `ferroflux get`",
            kind.kind,
            name,
            ns
        ),
        _ => anyhow::Error::new(err).context(format!("getting {} {}/{}", kind.kind, ns, name)),
    }
}

/// Gets one object, with a clear error when it is missing.
pub async fn get_object(
    client: &kube::Client,
    kind: &FluxKind,
    ns: &str,
    name: &str,
) -> anyhow::Result<DynamicObject> {
    kind.api(client, Some(ns))
        .get(name)
        .await
        .map_err(|e| describe_get_error(e, kind, name, ns))
}
