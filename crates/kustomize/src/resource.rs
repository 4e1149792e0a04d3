//! A resource: the object plus the build-time bookkeeping kustomize keeps
//! (previous ids, name prefixes/suffixes, generator options, ...).

use serde_yaml::{Mapping, Value};

use crate::resid::{Gvk, ResId, parse_group_version};
use crate::yaml::{self as y, get_str};

pub const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
pub const TRANSFORMATIONS_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    pub obj: Value,
    /// Previous (namespace, name, kind), oldest first.
    pub prev: Vec<(String, String, String)>,
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    pub ref_by: Vec<ResId>,
    /// Generator behavior (create/merge/replace), if generated.
    pub behavior: Option<String>,
    pub needs_hash: bool,
    pub allow_name_change: bool,
    pub allow_kind_change: bool,
    pub ref_var_names: Vec<String>,
}

impl Resource {
    pub fn new(obj: Value) -> Self {
        Resource {
            obj,
            ..Default::default()
        }
    }
    pub fn kind(&self) -> String {
        get_str(&self.obj, &["kind"])
    }
    pub fn api_version(&self) -> String {
        get_str(&self.obj, &["apiVersion"])
    }
    pub fn name(&self) -> String {
        get_str(&self.obj, &["metadata", "name"])
    }
    pub fn namespace(&self) -> String {
        get_str(&self.obj, &["metadata", "namespace"])
    }
    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(&self.api_version(), &self.kind())
    }
    pub fn cur_id(&self) -> ResId {
        ResId::new(self.gvk(), &self.name(), &self.namespace())
    }
    pub fn prev_ids(&self) -> Vec<ResId> {
        let av = self.api_version();
        let (g, v) = parse_group_version(&av);
        self.prev
            .iter()
            .map(|(ns, n, k)| ResId {
                gvk: Gvk::new(g, v, k),
                name: n.clone(),
                namespace: ns.clone(),
                cluster_scoped: false,
            })
            .collect()
    }
    pub fn org_id(&self) -> ResId {
        self.prev_ids()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.cur_id())
    }
    pub fn all_ids(&self) -> Vec<ResId> {
        let mut v = self.prev_ids();
        v.push(self.cur_id());
        v
    }
    pub fn store_previous_id(&mut self) {
        let id = self.cur_id();
        self.prev.push((
            id.effective_namespace().to_string(),
            id.name.clone(),
            id.gvk.kind.clone(),
        ));
    }
    pub fn set_name(&mut self, name: &str) {
        y::set_path(
            &mut self.obj,
            &["metadata", "name"],
            Value::String(name.into()),
        );
    }
    pub fn set_namespace(&mut self, ns: &str) {
        if ns.is_empty() {
            y::remove_path(&mut self.obj, &["metadata", "namespace"]);
        } else {
            y::set_path(
                &mut self.obj,
                &["metadata", "namespace"],
                Value::String(ns.into()),
            );
        }
    }
    pub fn set_kind(&mut self, kind: &str) {
        y::set_path(&mut self.obj, &["kind"], Value::String(kind.into()));
    }
    pub fn labels(&self) -> Vec<(String, String)> {
        y::string_map(&self.obj, &["metadata", "labels"])
    }
    pub fn annotations(&self) -> Vec<(String, String)> {
        y::string_map(&self.obj, &["metadata", "annotations"])
    }
    pub fn annotation(&self, k: &str) -> Option<String> {
        self.annotations()
            .into_iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v)
    }
    pub fn set_annotation(&mut self, k: &str, v: &str) {
        y::ensure_map(&mut self.obj, &["metadata", "annotations"])
            .insert(y::key(k), Value::String(v.into()));
    }
    pub fn remove_annotation(&mut self, k: &str) {
        let mut empty = false;
        if let Some(Value::Mapping(m)) =
            y::get_mut(&mut self.obj, "metadata").and_then(|md| y::get_mut(md, "annotations"))
            && m.remove(k).is_some()
        {
            empty = m.is_empty();
        }
        if empty {
            y::remove_path(&mut self.obj, &["metadata", "annotations"]);
        }
    }
    pub fn set_labels_map(&mut self, m: Mapping) {
        if m.is_empty() {
            y::remove_path(&mut self.obj, &["metadata", "labels"]);
        } else {
            y::set_path(&mut self.obj, &["metadata", "labels"], Value::Mapping(m));
        }
    }
    pub fn set_annotations_map(&mut self, m: Mapping) {
        if m.is_empty() {
            y::remove_path(&mut self.obj, &["metadata", "annotations"]);
        } else {
            y::set_path(
                &mut self.obj,
                &["metadata", "annotations"],
                Value::Mapping(m),
            );
        }
    }
    pub fn is_empty_obj(&self) -> bool {
        match &self.obj {
            Value::Mapping(m) => m.is_empty(),
            Value::Null => true,
            _ => false,
        }
    }

    /// kustomize's CopyMergeMetaDataFieldsFrom: labels and annotations of
    /// `other` merged under ours, name and namespace taken from `other`.
    pub fn copy_merge_metadata_from(&mut self, other: &Resource) {
        let mut labels = Mapping::new();
        for (k, v) in other.labels().into_iter().chain(self.labels()) {
            labels.insert(y::key(&k), Value::String(v));
        }
        self.set_labels_map(labels);
        let mut ann = Mapping::new();
        for (k, v) in other.annotations().into_iter().chain(self.annotations()) {
            ann.insert(y::key(&k), Value::String(v));
        }
        self.set_annotations_map(ann);
        self.set_name(&other.name());
        self.set_namespace(&other.namespace());
        self.ref_var_names = other.ref_var_names.clone();
        // build annotations of `other` win (kustomize keeps maps[0]'s)
        self.prev = other.prev.clone();
        self.prefixes = other.prefixes.clone();
        self.suffixes = other.suffixes.clone();
        self.ref_by = other.ref_by.clone();
        self.allow_name_change = other.allow_name_change;
        self.allow_kind_change = other.allow_kind_change;
        self.behavior = other.behavior.clone();
        self.needs_hash = other.needs_hash && self.needs_hash;
    }

    pub fn matches_label_selector(&self, sel: &str) -> Result<bool, String> {
        crate::selector::matches(sel, &self.labels())
    }
    pub fn matches_annotation_selector(&self, sel: &str) -> Result<bool, String> {
        crate::selector::matches(sel, &self.annotations())
    }
}

/// Whether `a` and `b` end in the same sub-slice (kustomize's SameEndingSubSlice).
pub fn same_ending_sub_slice(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() > b.len() { (b, a) } else { (a, b) };
    let diff = long.len() - short.len();
    if short.is_empty() {
        return diff == 0;
    }
    (0..short.len()).all(|i| long[i + diff] == short[i])
}

impl Resource {
    pub fn prefixes_suffixes_equal(&self, o: &Resource, allow_empty: bool) -> bool {
        if allow_empty {
            let ep = self.prefixes.is_empty() || o.prefixes.is_empty();
            let es = self.suffixes.is_empty() || o.suffixes.is_empty();
            (ep || same_ending_sub_slice(&self.prefixes, &o.prefixes))
                && (es || same_ending_sub_slice(&self.suffixes, &o.suffixes))
        } else {
            same_ending_sub_slice(&self.prefixes, &o.prefixes)
                && same_ending_sub_slice(&self.suffixes, &o.suffixes)
        }
    }
}
