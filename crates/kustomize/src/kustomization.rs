//! The kustomization file.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

/// A string that also accepts YAML numbers and booleans (rendered as text).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::String(s) => Ok(Str(s)),
            Value::Number(n) => Ok(Str(n.to_string())),
            Value::Bool(b) => Ok(Str(b.to_string())),
            Value::Null => Ok(Str(String::new())),
            _ => Err(serde::de::Error::custom("expected a string")),
        }
    }
}

pub type StrMap = BTreeMap<String, Str>;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    pub labels: StrMap,
    pub annotations: StrMap,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Selector {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub label_selector: String,
    pub annotation_selector: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Patch {
    pub path: String,
    pub patch: String,
    pub target: Option<Selector>,
    pub options: BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct FieldSpec {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub path: String,
    pub create: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Label {
    pub pairs: StrMap,
    pub include_selectors: bool,
    pub include_templates: bool,
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Image {
    pub name: String,
    pub new_name: String,
    pub tag_suffix: String,
    pub new_tag: Str,
    pub digest: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Replica {
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct GeneratorOptions {
    pub labels: StrMap,
    pub annotations: StrMap,
    pub disable_name_suffix_hash: Option<bool>,
    pub immutable: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct GeneratorArgs {
    pub namespace: String,
    pub name: String,
    pub behavior: String,
    pub literals: Vec<String>,
    pub files: Vec<String>,
    pub envs: Vec<String>,
    pub env: String,
    pub options: Option<GeneratorOptions>,
    /// Secrets only.
    #[serde(rename = "type")]
    pub type_: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct VarTarget {
    pub api_version: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct FieldSelector {
    pub field_path: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Var {
    pub name: String,
    pub objref: VarTarget,
    pub fieldref: FieldSelector,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LegacySortOptions {
    pub order_first: Vec<String>,
    pub order_last: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct SortOptions {
    pub order: String,
    pub legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: String,
    pub kind: String,
    pub metadata: Option<ObjectMeta>,
    pub openapi: BTreeMap<String, String>,
    pub name_prefix: String,
    pub name_suffix: String,
    pub namespace: String,
    pub common_labels: StrMap,
    pub labels: Vec<Label>,
    pub common_annotations: StrMap,
    pub patches_strategic_merge: Vec<String>,
    #[serde(rename = "patchesJson6902")]
    pub patches_json6902: Vec<Patch>,
    pub patches: Vec<Patch>,
    pub images: Vec<Image>,
    pub image_tags: Vec<Image>,
    pub replacements: Vec<Value>,
    pub replicas: Vec<Replica>,
    pub vars: Vec<Var>,
    pub sort_options: Option<SortOptions>,
    pub resources: Vec<String>,
    pub components: Vec<String>,
    pub crds: Vec<String>,
    pub bases: Vec<String>,
    pub config_map_generator: Vec<GeneratorArgs>,
    pub secret_generator: Vec<GeneratorArgs>,
    pub helm_globals: Option<Value>,
    pub helm_charts: Vec<Value>,
    pub helm_chart_inflation_generator: Vec<Value>,
    pub generator_options: Option<GeneratorOptions>,
    pub configurations: Vec<String>,
    pub generators: Vec<String>,
    pub transformers: Vec<String>,
    pub validators: Vec<String>,
    pub build_metadata: Vec<String>,
}

pub const KUSTOMIZATION_VERSION: &str = "kustomize.config.k8s.io/v1beta1";
pub const COMPONENT_VERSION: &str = "kustomize.config.k8s.io/v1alpha1";

impl Kustomization {
    /// Parses and normalises (legacy fields folded in) a kustomization.
    pub fn parse(text: &str) -> Result<Kustomization, String> {
        let v: Value = serde_yaml::from_str::<Lenient>(text)
            .map_err(|e| e.to_string())?
            .0;
        let v = if v.is_null() {
            Value::Mapping(Default::default())
        } else {
            v
        };
        let mut v = v;
        v.apply_merge().map_err(|e| e.to_string())?;
        if !v.is_mapping() {
            return Err("kustomization must be a YAML mapping".into());
        }
        let is_empty = match &v {
            Value::Mapping(m) => m
                .keys()
                .all(|k| matches!(k.as_str(), Some("apiVersion") | Some("kind"))),
            _ => true,
        };
        normalize_keys(&mut v, 0);
        let mut k: Kustomization = serde_yaml::from_value(v).map_err(|e| e.to_string())?;
        if is_empty {
            return Err("kustomization.yaml is empty".into());
        }
        if let Some(v) = k.openapi.get("version")
            && v != "v1.21.2"
            && !v.is_empty()
        {
            return Err(format!(
                "the specified OpenAPI version is not built in: {v}"
            ));
        }
        k.fix()?;
        Ok(k)
    }

    fn fix(&mut self) -> Result<(), String> {
        if self.kind.is_empty() {
            self.kind = "Kustomization".into();
        }
        let mut errs = Vec::new();
        if self.kind != "Kustomization" && self.kind != "Component" {
            errs.push("kind should be Kustomization or Component".to_string());
        }
        let required = if self.kind == "Component" {
            COMPONENT_VERSION
        } else {
            KUSTOMIZATION_VERSION
        };
        if !self.api_version.is_empty() && self.api_version != required {
            errs.push(format!(
                "apiVersion for {} should be {}",
                self.kind, required
            ));
        }
        if !errs.is_empty() {
            return Err(errs.join("\n"));
        }
        let bases = std::mem::take(&mut self.bases);
        self.resources.extend(bases);
        let tags = std::mem::take(&mut self.image_tags);
        self.images.extend(tags);
        for g in self
            .config_map_generator
            .iter_mut()
            .chain(self.secret_generator.iter_mut())
        {
            if !g.env.is_empty() {
                let e = std::mem::take(&mut g.env);
                g.envs.push(e);
            }
        }
        if !self.helm_charts.is_empty()
            || !self.helm_chart_inflation_generator.is_empty()
            || self.helm_globals.is_some()
        {
            return Err("helm chart inflation is not supported by ferroflux-kustomize".into());
        }
        Ok(())
    }
}

/// Field names of the kustomization schema. Go's JSON decoding matches
/// them case-insensitively, so keys are folded onto these first.
const CANONICAL: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "openapi",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patchesStrategicMerge",
    "patchesJson6902",
    "patches",
    "images",
    "imageTags",
    "replacements",
    "replicas",
    "vars",
    "sortOptions",
    "resources",
    "components",
    "crds",
    "bases",
    "configMapGenerator",
    "secretGenerator",
    "helmGlobals",
    "helmCharts",
    "helmChartInflationGenerator",
    "generatorOptions",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "buildMetadata",
    "name",
    "annotations",
    "group",
    "version",
    "labelSelector",
    "annotationSelector",
    "path",
    "patch",
    "target",
    "options",
    "create",
    "pairs",
    "includeSelectors",
    "includeTemplates",
    "fields",
    "newName",
    "tagSuffix",
    "newTag",
    "digest",
    "count",
    "disableNameSuffixHash",
    "immutable",
    "behavior",
    "literals",
    "files",
    "envs",
    "env",
    "type",
    "objref",
    "fieldref",
    "fieldPath",
    "order",
    "legacySortOptions",
    "orderFirst",
    "orderLast",
    "fieldSpecs",
    "imageTag",
    "replica",
    "jsonOp",
    "unsetOnly",
    "setRoleBindingSubjects",
    "prefix",
    "suffix",
    "paths",
    "source",
    "targets",
    "sourceValue",
    "select",
    "reject",
    "fieldPaths",
    "delimiter",
    "index",
    "nameReference",
    "varReference",
    "nameSpace",
    "templateLabels",
];

/// Keys whose values are free-form maps (user keys must not be folded).
const OPAQUE: &[&str] = &[
    "commonLabels",
    "commonAnnotations",
    "pairs",
    "labels",
    "annotations",
    "openapi",
    "options",
    "replacements",
    "helmGlobals",
    "helmCharts",
    "helmChartInflationGenerator",
];

pub(crate) fn normalize_keys(v: &mut Value, depth: usize) {
    if depth > 16 {
        return;
    }
    match v {
        Value::Mapping(m) => {
            let old = std::mem::take(m);
            for (k, mut val) in old {
                let key = match k.as_str() {
                    Some(s) => {
                        let canon = CANONICAL
                            .iter()
                            .find(|c| c.eq_ignore_ascii_case(s))
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| s.to_string());
                        if !OPAQUE.contains(&canon.as_str()) {
                            normalize_keys(&mut val, depth + 1);
                        }
                        Value::String(canon)
                    }
                    None => k,
                };
                m.insert(key, val);
            }
        }
        Value::Sequence(items) => {
            for it in items {
                normalize_keys(it, depth + 1);
            }
        }
        _ => {}
    }
}

/// A YAML value whose mappings accept duplicate keys (the last one wins),
/// as the Go YAML-to-JSON conversion kustomize uses for kustomizations does.
struct Lenient(Value);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor).map(Lenient)
    }
}

struct LenientVisitor;

impl<'de> serde::de::Visitor<'de> for LenientVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(LenientVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Lenient(v)) = a.next_element()? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut m = serde_yaml::Mapping::new();
        while let Some((Lenient(k), Lenient(v))) = a.next_entry()? {
            m.insert(k, v);
        }
        Ok(Value::Mapping(m))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, a: A) -> Result<Value, A::Error> {
        use serde::de::VariantAccess;
        let (Lenient(tag), variant) = a.variant::<Lenient>()?;
        let Lenient(v) = variant.newtype_variant::<Lenient>()?;
        let tag = serde_yaml::value::Tag::new(crate::yaml::scalar_str(&tag).unwrap_or_default());
        Ok(Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag,
            value: v,
        })))
    }
}
