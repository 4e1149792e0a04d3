//! Patch merge keys/strategies and namespaceability per type, from the
//! compact table `data/patch-strategies.json` (generated from a Kubernetes
//! OpenAPI v2 document by `data/gen-patch-strategies.py`), optionally
//! overlaid by a custom OpenAPI document named in a kustomization.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value as J;

static BUILTIN_JSON: &str = include_str!("../data/patch-strategies.json");

/// A field that matters for merging.
#[derive(Debug, Clone, Default)]
pub struct Field {
    /// The definition of the field's value (of its items for lists, of its
    /// values for maps).
    pub target: Option<String>,
    pub is_list: bool,
    pub is_map: bool,
    pub strategy: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Table {
    gvk: HashMap<String, String>,
    namespaced: HashMap<String, bool>,
    defs: HashMap<String, HashMap<String, Field>>,
}

fn field_from_compact(v: &J) -> Option<Field> {
    let a = v.as_array()?;
    let mut f = Field::default();
    if let Some(t) = a.first().and_then(|x| x.as_str()) {
        if let Some(t) = t.strip_prefix('*') {
            f.is_map = true;
            f.target = Some(t.to_string());
        } else {
            f.target = Some(t.to_string());
        }
    }
    f.is_list = a.get(1).and_then(|x| x.as_bool()).unwrap_or(false);
    f.strategy = a
        .get(2)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_string();
    f.keys = a
        .get(3)
        .and_then(|x| x.as_array())
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Some(f)
}

fn ref_name(s: &J) -> Option<String> {
    s.get("$ref")
        .and_then(|r| r.as_str())
        .and_then(|r| r.strip_prefix("#/definitions/"))
        .map(String::from)
}

impl Table {
    fn from_compact(doc: &J) -> Table {
        let mut t = Table::default();
        if let Some(m) = doc.get("gvk").and_then(|x| x.as_object()) {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    t.gvk.insert(k.clone(), v.to_string());
                }
            }
        }
        if let Some(m) = doc.get("namespaced").and_then(|x| x.as_object()) {
            for (k, v) in m {
                t.namespaced.insert(k.clone(), v.as_bool().unwrap_or(true));
            }
        }
        if let Some(m) = doc.get("defs").and_then(|x| x.as_object()) {
            for (name, fields) in m {
                let mut fm = HashMap::new();
                if let Some(fs) = fields.as_object() {
                    for (fname, fv) in fs {
                        if let Some(f) = field_from_compact(fv) {
                            fm.insert(fname.clone(), f);
                        }
                    }
                }
                t.defs.insert(name.clone(), fm);
            }
        }
        t
    }

    /// Builds a table from a full OpenAPI v2 document (the same reduction
    /// the generator script performs).
    pub fn from_swagger(doc: &J) -> Table {
        let mut t = Table::default();
        let Some(defs) = doc.get("definitions").and_then(|d| d.as_object()) else {
            return t;
        };
        for (name, d) in defs {
            if let Some(gs) = d
                .get("x-kubernetes-group-version-kind")
                .and_then(|g| g.as_array())
            {
                for g in gs {
                    let group = g.get("group").and_then(|x| x.as_str()).unwrap_or("");
                    let version = g.get("version").and_then(|x| x.as_str()).unwrap_or("");
                    let kind = g.get("kind").and_then(|x| x.as_str()).unwrap_or("");
                    let av = if group.is_empty() {
                        version.to_string()
                    } else {
                        format!("{group}/{version}")
                    };
                    t.gvk.insert(format!("{av}|{kind}"), name.clone());
                }
            }
            t.add_def(name, d, 0);
        }
        t
    }

    /// Adds a definition; inline object properties become definitions
    /// named `<parent>/<field>`.
    fn add_def(&mut self, name: &str, d: &J, depth: usize) {
        let mut fm = HashMap::new();
        if let Some(props) = d.get("properties").and_then(|p| p.as_object()) {
            for (fname, prop) in props {
                let ty = prop.get("type").and_then(|x| x.as_str()).unwrap_or("");
                let mut f = Field {
                    is_list: ty == "array",
                    ..Default::default()
                };
                if f.is_list {
                    let items = prop.get("items");
                    f.target = items.and_then(ref_name);
                    if f.target.is_none()
                        && depth < 32
                        && let Some(it) = items.filter(|i| i.get("properties").is_some())
                    {
                        let sub = format!("{name}/{fname}[]");
                        self.add_def(&sub, it, depth + 1);
                        f.target = Some(sub);
                    }
                } else if ty == "object" && prop.get("additionalProperties").is_some() {
                    f.target = prop.get("additionalProperties").and_then(ref_name);
                    f.is_map = f.target.is_some();
                } else {
                    f.target = ref_name(prop)
                        .or_else(|| prop.get("allOf").and_then(|a| a.get(0)).and_then(ref_name));
                    if f.target.is_none() && prop.get("properties").is_some() && depth < 32 {
                        let sub = format!("{name}/{fname}");
                        self.add_def(&sub, prop, depth + 1);
                        f.target = Some(sub);
                    }
                }
                f.strategy = prop
                    .get("x-kubernetes-patch-strategy")
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string();
                if !f.strategy.is_empty() {
                    if let Some(ks) = prop
                        .get("x-kubernetes-list-map-keys")
                        .and_then(|x| x.as_array())
                    {
                        f.keys = ks
                            .iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect();
                    } else if let Some(k) = prop
                        .get("x-kubernetes-patch-merge-key")
                        .and_then(|x| x.as_str())
                    {
                        f.keys = vec![k.to_string()];
                    }
                }
                if f.target.is_some() || !f.strategy.is_empty() {
                    fm.insert(fname.clone(), f);
                }
            }
        }
        self.defs.insert(name.to_string(), fm);
    }

    pub fn def_for(&self, api_version: &str, kind: &str) -> Option<&str> {
        self.gvk
            .get(&format!("{api_version}|{kind}"))
            .map(|s| s.as_str())
    }

    pub fn field(&self, def: &str, field: &str) -> Option<&Field> {
        self.defs.get(def)?.get(field)
    }
}

pub fn builtin() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let doc: J = serde_json::from_str(BUILTIN_JSON).unwrap_or(J::Null);
        Table::from_compact(&doc)
    })
}

/// Cluster-scoped types that kustomize's built-in schema (Kubernetes 1.21)
/// knows but newer API servers no longer serve.
const LEGACY_CLUSTER_SCOPED: &[&str] = &[
    "admissionregistration.k8s.io/v1beta1|MutatingWebhookConfiguration",
    "admissionregistration.k8s.io/v1beta1|ValidatingWebhookConfiguration",
    "apiextensions.k8s.io/v1beta1|CustomResourceDefinition",
    "apiregistration.k8s.io/v1beta1|APIService",
    "certificates.k8s.io/v1beta1|CertificateSigningRequest",
    "flowcontrol.apiserver.k8s.io/v1beta1|FlowSchema",
    "flowcontrol.apiserver.k8s.io/v1beta1|PriorityLevelConfiguration",
    "networking.k8s.io/v1beta1|IngressClass",
    "node.k8s.io/v1beta1|RuntimeClass",
    "policy/v1beta1|PodSecurityPolicy",
    "extensions/v1beta1|PodSecurityPolicy",
    "rbac.authorization.k8s.io/v1beta1|ClusterRole",
    "rbac.authorization.k8s.io/v1beta1|ClusterRoleBinding",
    "rbac.authorization.k8s.io/v1alpha1|ClusterRole",
    "rbac.authorization.k8s.io/v1alpha1|ClusterRoleBinding",
    "scheduling.k8s.io/v1beta1|PriorityClass",
    "scheduling.k8s.io/v1alpha1|PriorityClass",
    "storage.k8s.io/v1beta1|CSIDriver",
    "storage.k8s.io/v1beta1|CSINode",
    "storage.k8s.io/v1beta1|StorageClass",
    "storage.k8s.io/v1beta1|VolumeAttachment",
];

/// Types that newer schemas know as cluster-scoped but kustomize's (1.21) does not.
const NOT_IN_LEGACY: &[&str] = &[];

pub fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    let key = format!("{api_version}|{kind}");
    if LEGACY_CLUSTER_SCOPED.contains(&key.as_str()) {
        return true;
    }
    if NOT_IN_LEGACY.contains(&key.as_str()) {
        return false;
    }
    matches!(namespaced().get(&key), Some(false))
}

/// Namespaceability only (cheap to load: the merge-key part of the table is
/// parsed only when a strategic merge needs it).
fn namespaced() -> &'static HashMap<String, bool> {
    #[derive(serde::Deserialize)]
    struct NsOnly {
        #[serde(default)]
        namespaced: HashMap<String, bool>,
    }
    static N: OnceLock<HashMap<String, bool>> = OnceLock::new();
    N.get_or_init(|| {
        serde_json::from_str::<NsOnly>(BUILTIN_JSON)
            .map(|n| n.namespaced)
            .unwrap_or_default()
    })
}

/// The schema context for one strategic merge: the custom document (if a
/// kustomization named one) in front of the built-in table.
#[derive(Clone, Default)]
pub struct Schemas {
    pub custom: Option<Arc<Table>>,
}

impl Schemas {
    /// The definition for a type: custom first, then the built-in table,
    /// then (for built-in groups only) the same kind in any served version.
    pub fn root(&self, api_version: &str, kind: &str) -> Option<(Option<Arc<Table>>, String)> {
        if let Some(c) = &self.custom
            && let Some(d) = c.def_for(api_version, kind)
        {
            return Some((Some(c.clone()), d.to_string()));
        }
        let b = builtin();
        if let Some(d) = b.def_for(api_version, kind) {
            return Some((None, d.to_string()));
        }
        let (group, _) = crate::resid::parse_group_version(api_version);
        let builtin_group = group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io");
        if builtin_group {
            // legacy versions (extensions/v1beta1 Deployment, ...): use the
            // current definition of the same kind in a core group.
            let mut best: Option<&String> = None;
            for (k, d) in &b.gvk {
                if let Some((_, kk)) = k.split_once('|')
                    && kk == kind
                    && (best.is_none()
                        || d.starts_with("io.k8s.api.apps")
                        || d.starts_with("io.k8s.api.core"))
                {
                    best = Some(d);
                }
            }
            if let Some(d) = best {
                return Some((None, d.clone()));
            }
        }
        None
    }
}

/// A position in the schema while walking an object.
#[derive(Clone)]
pub struct Cursor {
    pub table: Option<Arc<Table>>,
    pub def: String,
}

impl Cursor {
    fn table(&self) -> &Table {
        match &self.table {
            Some(t) => t,
            None => builtin(),
        }
    }
    pub fn field(&self, name: &str) -> Option<Field> {
        self.table().field(&self.def, name).cloned()
    }
    pub fn at(&self, def: &str) -> Cursor {
        let table = match &self.table {
            Some(t) if t.defs.contains_key(def) => Some(t.clone()),
            _ => None,
        };
        Cursor {
            table,
            def: def.to_string(),
        }
    }
}
