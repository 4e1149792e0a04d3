//! `crds:` — name-reference configuration derived from CRD OpenAPI
//! definitions (`x-kubernetes-object-ref-api-version` / `-kind`).

use serde_yaml::Value;

use crate::fieldspec::{NameBackRef, TransformerConfig};
use crate::kustomization::FieldSpec;
use crate::yaml::{self as y, scalar_str};

/// Reads a CRD-style OpenAPI document (a map of definitions) and returns
/// the name references it declares.
pub fn config_from_crds(text: &str) -> Result<TransformerConfig, String> {
    let docs = y::parse_docs(text)?;
    let mut cfg = TransformerConfig::default();
    for doc in docs {
        let Value::Mapping(defs) = &doc else { continue };
        for (_, def) in defs {
            let kind = y::get_str(def, &["x-kubernetes-group-version-kind", "kind"]);
            let gvk = y::get(def, "x-kubernetes-group-version-kind");
            let (group, version, kind) = match gvk {
                Some(Value::Sequence(s)) if !s.is_empty() => (
                    y::get_str(&s[0], &["group"]),
                    y::get_str(&s[0], &["version"]),
                    y::get_str(&s[0], &["kind"]),
                ),
                Some(Value::Mapping(_)) => (
                    y::get_str(def, &["x-kubernetes-group-version-kind", "group"]),
                    y::get_str(def, &["x-kubernetes-group-version-kind", "version"]),
                    kind,
                ),
                _ => continue,
            };
            let mut path = Vec::new();
            walk(
                def,
                &defs_of(&doc),
                &mut path,
                &group,
                &version,
                &kind,
                &mut cfg,
                0,
            );
        }
    }
    Ok(cfg)
}

fn defs_of(doc: &Value) -> Value {
    doc.clone()
}

#[allow(clippy::too_many_arguments)]
fn walk(
    def: &Value,
    defs: &Value,
    path: &mut Vec<String>,
    group: &str,
    version: &str,
    kind: &str,
    cfg: &mut TransformerConfig,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    let Some(Value::Mapping(props)) = y::get(def, "properties") else {
        return;
    };
    for (k, p) in props {
        let name = scalar_str(k).unwrap_or_default();
        path.push(name.clone());
        let ref_kind = y::get(p, "x-kubernetes-object-ref-kind").and_then(scalar_str);
        if let Some(rk) = ref_kind {
            let rav = y::get(p, "x-kubernetes-object-ref-api-version")
                .and_then(scalar_str)
                .unwrap_or_default();
            let (rg, rv) = crate::resid::parse_group_version(&rav);
            let fs = FieldSpec {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                path: path.join("/"),
                create: false,
            };
            let br = NameBackRef {
                group: rg.into(),
                version: rv.into(),
                kind: rk,
                field_specs: vec![fs],
            };
            let one = TransformerConfig {
                name_reference: vec![br],
                ..Default::default()
            };
            let _ = cfg.merge(&one);
        }
        let target = y::get(p, "$ref")
            .and_then(scalar_str)
            .and_then(|r| r.rsplit('/').next().map(String::from));
        if let Some(t) = target {
            if let Some(d) = y::get(defs, &t) {
                walk(d, defs, path, group, version, kind, cfg, depth + 1);
            }
        } else {
            walk(p, defs, path, group, version, kind, cfg, depth + 1);
        }
        path.pop();
    }
}
