//! `crds:` — transformer configuration derived from OpenAPI definitions of
//! custom types (`x-kubernetes-object-ref-kind`, `-annotation`, ...).

use serde_yaml::Value;

use crate::fieldspec::{NameBackRef, TransformerConfig};
use crate::kustomization::FieldSpec;
use crate::yaml::{self as y, scalar_str};

/// Reads a name → `{Schema: ...}` map of definitions.
pub fn config_from_crds(text: &str) -> Result<TransformerConfig, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let Value::Mapping(defs) = &doc else {
        return Err("expected a map of type definitions".into());
    };
    let mut cfg = TransformerConfig::default();
    for (name, def) in defs {
        let name = scalar_str(name).unwrap_or_default();
        let props = y::get_path(def, &["Schema", "properties"]);
        let looks_k8s = matches!(props, Some(Value::Mapping(m))
            if m.contains_key("kind") && m.contains_key("apiVersion") && m.contains_key("metadata"));
        if !looks_k8s {
            continue;
        }
        let kind = name.rsplit('.').next().unwrap_or(&name).to_string();
        let mut path = Vec::new();
        load(&doc, &name, &kind, &mut path, &mut cfg, 0)?;
    }
    Ok(cfg)
}

fn fs(kind: &str, path: &[String]) -> FieldSpec {
    FieldSpec {
        kind: kind.into(),
        path: path.join("/"),
        ..Default::default()
    }
}

fn load(
    doc: &Value,
    type_name: &str,
    kind: &str,
    path: &mut Vec<String>,
    cfg: &mut TransformerConfig,
    depth: usize,
) -> Result<(), String> {
    if depth > 32 {
        return Ok(());
    }
    let Some(def) = y::get(doc, type_name) else {
        return Ok(());
    };
    let Some(Value::Mapping(props)) = y::get_path(def, &["Schema", "properties"]) else {
        return Ok(());
    };
    for (pname, p) in props {
        let pname = scalar_str(pname).unwrap_or_default();
        path.push(pname);
        let ext = |k: &str| y::get(p, k).and_then(scalar_str);
        let mut add = TransformerConfig::default();
        if ext("x-kubernetes-annotation").is_some() {
            add.common_annotations.push(fs(kind, path));
        }
        if ext("x-kubernetes-label-selector").is_some() {
            add.common_labels.push(fs(kind, path));
        }
        if ext("x-kubernetes-identity").is_some() {
            add.name_prefix.push(fs(kind, path));
        }
        if let (Some(v), Some(k)) = (
            ext("x-kubernetes-object-ref-api-version"),
            ext("x-kubernetes-object-ref-kind"),
        ) {
            let key = ext("x-kubernetes-object-ref-name-key").unwrap_or_else(|| "name".into());
            let mut full = path.clone();
            full.push(key);
            add.name_reference.push(NameBackRef {
                group: String::new(),
                version: v,
                kind: k,
                field_specs: vec![fs(kind, &full)],
            });
        }
        cfg.merge(&add)?;
        if let Some(r) = ext("$ref") {
            load(doc, &r, kind, path, cfg, depth + 1)?;
        }
        path.pop();
    }
    Ok(())
}
