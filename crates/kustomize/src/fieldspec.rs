//! Field specs (which fields of which kinds a transformer touches), the
//! transformer configuration, and the walker that applies a field spec.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::kustomization::FieldSpec;
use crate::resid::{Gvk, parse_group_version};
use crate::yaml::get_str;

static DEFAULT_CONFIG: &str = include_str!("../data/fieldspecs.yaml");

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct NameBackRef {
    pub group: String,
    pub version: String,
    pub kind: String,
    #[serde(rename = "fieldSpecs")]
    pub field_specs: Vec<FieldSpec>,
}

impl NameBackRef {
    pub fn gvk(&self) -> Gvk {
        Gvk::new(&self.group, &self.version, &self.kind)
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct TransformerConfig {
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub name_space: Vec<FieldSpec>,
    #[serde(rename = "namespace")]
    pub namespace_alias: Vec<FieldSpec>,
    pub common_labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    pub labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub name_reference: Vec<NameBackRef>,
    pub var_reference: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
}

pub fn fs_gvk(fs: &FieldSpec) -> Gvk {
    Gvk::new(&fs.group, &fs.version, &fs.kind)
}

fn effectively_equals(a: &FieldSpec, b: &FieldSpec) -> bool {
    fs_gvk(a).is_selected(&fs_gvk(b)) && a.path == b.path
}

/// kustomize's FsSlice.MergeOne.
pub fn merge_one(list: &mut Vec<FieldSpec>, x: FieldSpec) -> Result<(), String> {
    if let Some(e) = list.iter().find(|e| effectively_equals(e, &x)) {
        if e.create != x.create {
            return Err(format!("conflicting fieldspecs for path '{}'", x.path));
        }
        return Ok(());
    }
    list.push(x);
    Ok(())
}

pub fn merge_all(list: &mut Vec<FieldSpec>, incoming: &[FieldSpec]) -> Result<(), String> {
    for x in incoming {
        merge_one(list, x.clone())?;
    }
    Ok(())
}

impl TransformerConfig {
    pub fn parse(text: &str) -> Result<TransformerConfig, String> {
        let v: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if v.is_null() {
            return Ok(TransformerConfig::default());
        }
        let mut c: TransformerConfig = serde_yaml::from_value(v).map_err(|e| e.to_string())?;
        let alias = std::mem::take(&mut c.namespace_alias);
        c.name_space.extend(alias);
        Ok(c)
    }

    pub fn default_config() -> TransformerConfig {
        static D: std::sync::OnceLock<TransformerConfig> = std::sync::OnceLock::new();
        D.get_or_init(|| TransformerConfig::parse(DEFAULT_CONFIG).unwrap_or_default())
            .clone()
    }

    pub fn merge(&mut self, o: &TransformerConfig) -> Result<(), String> {
        merge_all(&mut self.name_prefix, &o.name_prefix)?;
        merge_all(&mut self.name_suffix, &o.name_suffix)?;
        merge_all(&mut self.name_space, &o.name_space)?;
        merge_all(&mut self.common_labels, &o.common_labels)?;
        merge_all(&mut self.template_labels, &o.template_labels)?;
        merge_all(&mut self.labels, &o.labels)?;
        merge_all(&mut self.common_annotations, &o.common_annotations)?;
        merge_all(&mut self.var_reference, &o.var_reference)?;
        merge_all(&mut self.images, &o.images)?;
        merge_all(&mut self.replicas, &o.replicas)?;
        for br in &o.name_reference {
            if let Some(e) = self.name_reference.iter_mut().find(|e| e.gvk() == br.gvk()) {
                merge_all(&mut e.field_specs, &br.field_specs)?;
            } else {
                self.name_reference.push(br.clone());
            }
        }
        Ok(())
    }
}

/// Splits a field-spec path on `/`, honouring `\/` escapes and `[...]` brackets.
pub fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                cur.push('/');
                chars.next();
            }
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '/' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Whether the field spec's gvk selects the object.
pub fn matches_obj(fs: &FieldSpec, obj: &Value) -> bool {
    let kind = get_str(obj, &["kind"]);
    if !fs.kind.is_empty() && fs.kind != kind {
        return false;
    }
    let av = get_str(obj, &["apiVersion"]);
    let (g, v) = parse_group_version(&av);
    if !fs.group.is_empty() && fs.group != g {
        return false;
    }
    if !fs.version.is_empty() && fs.version != v {
        return false;
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Never create.
    No,
    /// Create the leaf as a (null) scalar, intermediate maps as needed.
    Scalar,
    /// Create the leaf as a map, intermediate maps as needed.
    Map,
}

pub type SetFn<'a> = dyn FnMut(&mut Value) -> Result<(), String> + 'a;

/// Applies `set` to every node the field spec addresses in `obj` (which must
/// be selected by the spec's gvk; checked here).
pub fn apply(
    obj: &mut Value,
    fs: &FieldSpec,
    create: Create,
    set: &mut SetFn,
) -> Result<(), String> {
    if !matches_obj(fs, obj) {
        return Ok(());
    }
    let path = split_path(&fs.path);
    walk(obj, &path, fs.create, create, set)
        .map_err(|e| format!("considering field '{}': {}", fs.path, e))
}

fn walk(
    node: &mut Value,
    path: &[String],
    fs_create: bool,
    create: Create,
    set: &mut SetFn,
) -> Result<(), String> {
    if path.is_empty() {
        return set(node);
    }
    match node {
        Value::Null => Ok(()),
        Value::Sequence(items) => {
            for it in items.iter_mut() {
                walk(it, path, fs_create, create, set)?;
            }
            Ok(())
        }
        Value::Mapping(m) => {
            let (name, is_seq) = match path[0].strip_suffix("[]") {
                Some(n) => (n.to_string(), true),
                None => (path[0].clone(), false),
            };
            if name.is_empty() {
                return Err("cannot set or create an empty field name".into());
            }
            let creating = fs_create && create != Create::No && !is_seq;
            if !m.contains_key(name.as_str()) {
                if !creating {
                    return Ok(());
                }
                let v = if path.len() <= 1 && create == Create::Scalar {
                    Value::Null
                } else {
                    Value::Mapping(Mapping::new())
                };
                m.insert(Value::String(name.clone()), v);
            }
            let child = m.get_mut(name.as_str()).expect("present");
            if is_seq && child.is_null() {
                *child = Value::Sequence(Vec::new());
            }
            if child.is_null() && creating && (path.len() > 1 || create == Create::Map) {
                *child = Value::Mapping(Mapping::new());
            }
            if child.is_null() && path.len() > 1 {
                return Ok(());
            }
            if child.is_null() && path.len() == 1 && !creating {
                // kyaml passes null nodes to the setter only when creating
                return set(child);
            }
            walk(child, &path[1..], fs_create, create, set)
        }
        Value::Tagged(t) => walk(&mut t.value, path, fs_create, create, set),
        _ => Err("expected sequence or mapping node".into()),
    }
}
