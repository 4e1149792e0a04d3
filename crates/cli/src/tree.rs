//! `tree kustomization NAME`: the inventory as a tree, recursing into nested
//! Kustomizations and into the Helm storage of HelmReleases.

use std::io::Read;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use ferroflux_api::meta::ResourceInventory;
use ferroflux_ssa::ObjectRef;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use crate::cluster::{self, Global, get_object, str_at};
use crate::{Outcome, ok};

/// `tree` kinds.
#[derive(Subcommand, Debug)]
pub enum TreeTarget {
    /// Print the resources reconciled by a Kustomization as a tree.
    #[command(visible_alias = "ks")]
    Kustomization(TreeKsArgs),
}

/// `tree kustomization` flags.
#[derive(Args, Debug)]
pub struct TreeKsArgs {
    /// Name of the Kustomization.
    pub name: String,
    /// List Flux resources only.
    #[arg(long)]
    pub compact: bool,
    /// The format in which the tree should be printed: json or yaml.
    #[arg(short, long, value_parser = ["json", "yaml"])]
    pub output: Option<String>,
}

/// One node of the tree.
pub struct Node {
    /// The object.
    pub id: ObjectRef,
    /// What it applied.
    pub children: Vec<Node>,
}

impl Node {
    fn to_json(&self) -> Value {
        let mut v = json!({"resource": {
            "Namespace": self.id.namespace,
            "Name": self.id.name,
            "GroupKind": {"Group": self.id.group, "Kind": self.id.kind},
        }});
        if !self.children.is_empty() {
            v["resources"] = Value::Array(self.children.iter().map(Node::to_json).collect());
        }
        v
    }

    /// Flux's tree text (`├── `, `└── `, `│   `).
    pub fn print(&self) -> String {
        let mut out = format!("{}\n", self.id);
        print_items(&self.children, &mut Vec::new(), &mut out);
        out
    }
}

fn print_items(items: &[Node], spaces: &mut Vec<bool>, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        for space in spaces.iter() {
            out.push_str(if *space { "    " } else { "│   " });
        }
        out.push_str(if last { "└── " } else { "├── " });
        out.push_str(&item.id.to_string());
        out.push('\n');
        if !item.children.is_empty() {
            spaces.push(last);
            print_items(&item.children, spaces, out);
            spaces.pop();
        }
    }
}

const FLUX_GROUP: &str = "toolkit.fluxcd.io";

async fn tree_ks(
    client: &kube::Client,
    ks: &DynamicObject,
    compact: bool,
    depth: usize,
) -> anyhow::Result<Vec<Node>> {
    let Some(inv) = ks.data.pointer("/status/inventory") else {
        return Ok(vec![]);
    };
    let inv: ResourceInventory =
        serde_json::from_value(inv.clone()).context("reading status.inventory")?;
    let ks_ns = ks.metadata.namespace.clone().unwrap_or_default();
    let ks_name = ks.metadata.name.clone().unwrap_or_default();
    let remote = ks.data.pointer("/spec/kubeConfig").is_some();
    let mut nodes = Vec::new();
    for entry in &inv.entries {
        let Some(id) = ObjectRef::from_inventory(entry) else {
            bail!(
                "unable to parse inventory entry '{}' of Kustomization {ks_ns}/{ks_name}",
                entry.id
            );
        };
        if compact && !id.group.contains(FLUX_GROUP) {
            continue;
        }
        if id.group == cluster::KS.group
            && id.kind == "Kustomization"
            && id.namespace == ks_ns
            && id.name == ks_name
        {
            continue;
        }
        let mut node = Node {
            id: id.clone(),
            children: vec![],
        };
        if id.group == cluster::HR.group && id.kind == "HelmRelease" {
            for child in helm_release_inventory(client, &id.namespace, &id.name).await? {
                if compact && !child.group.contains(FLUX_GROUP) {
                    continue;
                }
                node.children.push(Node {
                    id: child,
                    children: vec![],
                });
            }
        }
        if id.group == cluster::KS.group && id.kind == "Kustomization" && !remote && depth < 32 {
            let nested = get_object(client, &cluster::KS, &id.namespace, &id.name)
                .await
                .context("failed to find object")?;
            node.children = Box::pin(tree_ks(client, &nested, compact, depth + 1)).await?;
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// Decodes Helm's release storage value: base64, then gunzip when gzip-compressed.
pub fn decode_release(data: &[u8]) -> anyhow::Result<Value> {
    let text: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .context("the release is not base64")?;
    let json = if raw.starts_with(&[0x1f, 0x8b, 0x08]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .context("the release is not valid gzip")?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).context("the release is not JSON")
}

async fn helm_release_inventory(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Vec<ObjectRef>> {
    let hr = get_object(client, &cluster::HR, ns, name).await?;
    if hr.data.pointer("/spec/kubeConfig").is_some() {
        return Ok(vec![]);
    }
    let storage_ns = str_at(&hr.data, &["status", "storageNamespace"]).unwrap_or_default();
    let Some(latest) = hr.data.pointer("/status/history/0") else {
        return Ok(vec![]);
    };
    if storage_ns.is_empty() {
        return Ok(vec![]);
    }
    let rel_name = latest.get("name").and_then(Value::as_str).unwrap_or(name);
    let rel_ns = latest
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(ns)
        .to_string();
    let version = latest.get("version").and_then(Value::as_i64).unwrap_or(0);
    let secret_name = format!("sh.helm.release.v1.{rel_name}.v{version}");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), storage_ns);
    let Some(secret) = secrets.get_opt(&secret_name).await? else {
        return Ok(vec![]);
    };
    let Some(data) = secret.data.as_ref().and_then(|d| d.get("release")) else {
        bail!("failed to decode the Helm storage object for HelmRelease '{ns}/{name}'");
    };
    let release = decode_release(&data.0).with_context(|| {
        format!("failed to decode the Helm storage object for HelmRelease '{ns}/{name}'")
    })?;
    let manifest = release
        .get("manifest")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let docs = ferroflux_kustomize::yaml::parse_docs(manifest).map_err(|e| {
        anyhow::anyhow!("failed to read the Helm storage object for HelmRelease '{ns}/{name}': {e}")
    })?;
    let mut out = Vec::new();
    for doc in docs {
        let Ok(mut obj) =
            serde_json::to_value(&doc).and_then(serde_json::from_value::<DynamicObject>)
        else {
            continue;
        };
        if obj
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            let Some(types) = obj.types.as_ref() else {
                continue;
            };
            let (group, version) = types
                .api_version
                .split_once('/')
                .unwrap_or(("", &types.api_version));
            let gvk = GroupVersionKind::gvk(group, version, &types.kind);
            let namespaced = match kube::discovery::pinned_kind(client, &gvk).await {
                Ok((_, caps)) => caps.scope == kube::discovery::Scope::Namespaced,
                Err(_) => true,
            };
            if namespaced {
                obj.metadata.namespace = Some(rel_ns.clone());
            }
        }
        if let Ok(id) = ObjectRef::of(&obj) {
            out.push(id);
        }
    }
    Ok(out)
}

/// `tree kustomization NAME`.
pub async fn run(g: &Global, target: TreeTarget) -> Outcome {
    let TreeTarget::Kustomization(args) = target;
    let client = g.client().await?;
    let ks = get_object(&client, &cluster::KS, &g.namespace, &args.name).await?;
    let root = Node {
        id: ObjectRef {
            group: cluster::KS.group.into(),
            version: cluster::KS.version.into(),
            kind: "Kustomization".into(),
            namespace: g.namespace.clone(),
            name: args.name.clone(),
        },
        children: tree_ks(&client, &ks, args.compact, 0).await?,
    };
    match args.output.as_deref() {
        Some("json") => println!("{}", serde_json::to_string_pretty(&root.to_json())?),
        Some("yaml") => println!("{}", crate::output::to_yaml(&root.to_json())),
        _ => println!("{}", root.print()),
    }
    ok()
}
