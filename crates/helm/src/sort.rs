//! Splitting rendered files into documents, separating hooks, and Helm's install order
//! (pkg/release/util/manifest_sorter.go, kind_sorter.go).

use std::collections::BTreeMap;

use ferroflux_gotemplate::yaml::{self, Numbers};

use crate::Error;

/// A non-hook manifest document.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The template path, e.g. `chart/templates/deployment.yaml`.
    pub name: String,
    pub content: String,
    pub kind: String,
}

/// A hook document.
#[derive(Clone, Debug)]
pub struct Hook {
    pub name: String,
    pub kind: String,
    pub path: String,
    pub manifest: String,
    pub events: Vec<String>,
    pub weight: i64,
    pub delete_policies: Vec<String>,
    pub output_log_policies: Vec<String>,
}

pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

const EVENTS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
];

/// SplitManifests: documents separated by `---` lines, trimmed, empty ones dropped.
pub fn split_manifests(big: &str) -> Vec<String> {
    split_on_separators(big.trim())
        .into_iter()
        .filter(|d| !d.is_empty())
        .map(|d| d.trim().to_string())
        .collect()
}

/// `regexp.Split` by Helm's separator `(?:^|\s*\n)---\s*`, without compiling a regex at
/// every start: a match is "---" at the very start, or a whitespace run ending in '\n'
/// followed by "---"; either way with the whitespace after it.
fn split_on_separators(text: &str) -> Vec<&str> {
    let ws_after = |from: usize| from + (text[from..].len() - text[from..].trim_start().len());
    let mut out = Vec::new();
    let mut last = 0;
    let mut pos = 0;
    if text.starts_with("---") {
        out.push(&text[..0]);
        last = ws_after(3);
        pos = last;
    }
    let sep = memchr::memmem::Finder::new("\n---");
    while let Some(off) = sep.find(&text.as_bytes()[pos..]) {
        let j = pos + off;
        // the whitespace run before the '\n' belongs to the separator (not before `pos`)
        let i = pos + text[pos..j].trim_end().len();
        out.push(&text[last..i]);
        last = ws_after(j + 4);
        pos = last;
    }
    out.push(&text[last..]);
    out
}

fn kind_less(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let pa = INSTALL_ORDER.iter().position(|k| *k == a);
    let pb = INSTALL_ORDER.iter().position(|k| *k == b);
    match (pa, pb) {
        (None, None) => a.cmp(b),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    }
}

/// SortManifests: hooks and manifests from rendered files, each sorted in install order.
pub fn sort_manifests(
    files: &BTreeMap<String, String>,
) -> Result<(Vec<Hook>, Vec<Manifest>), Error> {
    let mut hooks = Vec::new();
    let mut generic = Vec::new();
    for (path, content) in files {
        if path.rsplit('/').next().unwrap_or("").starts_with('_') || content.trim().is_empty() {
            continue;
        }
        for m in split_manifests(content) {
            let head = yaml::parse_head(&m)
                .map_err(|e| Error::Render(format!("YAML parse error on {path}: {e}")))?;
            if head.not_a_map && (head.kind.is_some() || !m.trim_start().starts_with('#')) {
                // a scalar or a list where Helm expects an object
                if yaml::parse(&m, Numbers::Json).is_ok_and(|v| !v.is_nil()) {
                    return Err(Error::Render(format!(
                        "YAML parse error on {path}: error unmarshaling JSON: json: cannot unmarshal into Go value of type releaseutil.SimpleHead"
                    )));
                }
            }
            let kind = head.kind.clone().unwrap_or_default();
            let name = head.name.clone().unwrap_or_default();
            let ann = |k: &str| {
                head.annotations
                    .iter()
                    .find(|(a, _)| a == k)
                    .map(|(_, v)| v.clone())
            };
            let Some(hook_types) = ann("helm.sh/hook") else {
                generic.push(Manifest {
                    name: path.clone(),
                    content: m,
                    kind,
                });
                continue;
            };
            let weight = ann("helm.sh/hook-weight")
                .and_then(|w| w.trim().parse::<i64>().ok())
                .unwrap_or(0);
            let mut events = Vec::new();
            let mut unknown = false;
            for t in hook_types.split(',') {
                let t = t.trim().to_lowercase();
                let t = if t == "test-success" {
                    "test".to_string()
                } else {
                    t
                };
                if !EVENTS.contains(&t.as_str()) {
                    unknown = true;
                    break;
                }
                events.push(t);
            }
            if unknown {
                continue;
            }
            let list = |k: &str| -> Vec<String> {
                ann(k)
                    .map(|v| {
                        v.split(',')
                            .map(|x| x.trim().to_lowercase())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            hooks.push(Hook {
                name,
                kind,
                path: path.clone(),
                manifest: m,
                events,
                weight,
                delete_policies: list("helm.sh/hook-delete-policy"),
                output_log_policies: list("helm.sh/hook-output-log-policy"),
            });
        }
    }
    hooks.sort_by(|a, b| kind_less(&a.kind, &b.kind));
    generic.sort_by(|a, b| kind_less(&a.kind, &b.kind));
    Ok((hooks, generic))
}
