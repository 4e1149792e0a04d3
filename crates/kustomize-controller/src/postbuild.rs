//! Post-build steps on the built objects: variable substitution and common metadata.

use std::collections::BTreeMap;

use ferroflux_api::constants::{DISABLED_VALUE, SUBSTITUTE_ANNOTATION};
use serde_yaml::Value;

use crate::envsubst::{Vars, substitute};

/// Why post-build substitution failed.
#[derive(Debug, thiserror::Error)]
pub enum PostBuildError {
    /// A variable name Flux refuses.
    #[error("'{0}' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'")]
    InvalidVarName(String),
    /// Substitution failed in one object.
    #[error("{object}: variable substitution failed: {source}")]
    Substitute {
        object: String,
        source: crate::envsubst::SubstError,
    },
    /// The substituted object is no longer valid YAML.
    #[error("{object}: the object is not valid YAML after variable substitution: {message}")]
    Reparse { object: String, message: String },
}

fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `Kind/namespace/name` of a built object, for messages.
pub fn describe(obj: &Value) -> String {
    let get = |path: &[&str]| {
        let mut v = obj;
        for p in path {
            v = v.get(*p).unwrap_or(&Value::Null);
        }
        v.as_str().unwrap_or_default().to_string()
    };
    let (kind, ns, name) = (
        get(&["kind"]),
        get(&["metadata", "namespace"]),
        get(&["metadata", "name"]),
    );
    if ns.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{ns}/{name}")
    }
}

fn substitution_disabled(obj: &Value) -> bool {
    ["labels", "annotations"].iter().any(|field| {
        obj.get("metadata")
            .and_then(|m| m.get(*field))
            .and_then(|m| m.get(SUBSTITUTE_ANNOTATION))
            .and_then(Value::as_str)
            == Some(DISABLED_VALUE)
    })
}

/// Substitutes `${var}` expressions in every object, as Flux does: only when there are
/// variables (or `always`), skipping objects labelled or annotated
/// `kustomize.toolkit.fluxcd.io/substitute: disabled`. Newlines in values are removed.
pub fn substitute_objects(
    objects: &mut [Value],
    vars: &BTreeMap<String, String>,
    always: bool,
) -> Result<(), PostBuildError> {
    if let Some(bad) = vars.keys().find(|k| !valid_var_name(k)) {
        return Err(PostBuildError::InvalidVarName(bad.clone()));
    }
    if vars.is_empty() && !always {
        return Ok(());
    }
    let values: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.replace('\n', "")))
        .collect();
    let lookup = Vars {
        values: &values,
        strict: false,
    };
    for obj in objects.iter_mut() {
        if substitution_disabled(obj) {
            continue;
        }
        let text = serde_yaml::to_string(obj).map_err(|e| PostBuildError::Reparse {
            object: describe(obj),
            message: e.to_string(),
        })?;
        if !text.contains("${") && !text.contains("$$") {
            continue;
        }
        let replaced = substitute(&text, &lookup).map_err(|source| PostBuildError::Substitute {
            object: describe(obj),
            source,
        })?;
        *obj = serde_yaml::from_str(&replaced).map_err(|e| PostBuildError::Reparse {
            object: describe(obj),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Adds `spec.commonMetadata` labels and annotations to every object.
pub fn set_common_metadata(
    objects: &mut [Value],
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) {
    for obj in objects.iter_mut() {
        for (field, entries) in [("labels", labels), ("annotations", annotations)] {
            if entries.is_empty() {
                continue;
            }
            let Some(meta) = obj.get_mut("metadata").and_then(Value::as_mapping_mut) else {
                continue;
            };
            let key = Value::String(field.to_string());
            if !matches!(meta.get(&key), Some(Value::Mapping(_))) {
                meta.insert(key.clone(), Value::Mapping(Default::default()));
            }
            if let Some(Value::Mapping(map)) = meta.get_mut(&key) {
                for (k, v) in entries {
                    map.insert(Value::String(k.clone()), Value::String(v.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objs(yaml: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|d| Value::deserialize(d).unwrap())
            .collect()
    }
    use serde::Deserialize;

    #[test]
    fn substitutes_and_retypes_values() {
        let mut o = objs(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-${ENV}\nspec:\n  replicas: ${REPLICAS:=1}\n",
        );
        let vars = BTreeMap::from([
            ("ENV".to_string(), "prod".to_string()),
            ("REPLICAS".to_string(), "3\n".to_string()),
        ]);
        substitute_objects(&mut o, &vars, false).unwrap();
        assert_eq!(o[0]["metadata"]["name"], Value::from("app-prod"));
        assert_eq!(o[0]["spec"]["replicas"], Value::from(3));
    }

    #[test]
    fn strategy_and_opt_out() {
        let src = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  a: ${A}\n";
        let mut o = objs(src);
        substitute_objects(&mut o, &BTreeMap::from([("A".into(), "1".into())]), false).unwrap();
        assert_eq!(o[0]["data"]["a"], Value::from("${A}"));
        let mut o =
            objs("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: ${A:=d}\n");
        substitute_objects(&mut o, &BTreeMap::new(), false).unwrap();
        assert_eq!(
            o[0]["data"]["a"],
            Value::from("${A:=d}"),
            "WithVariables and no variables: untouched"
        );
        substitute_objects(&mut o, &BTreeMap::new(), true).unwrap();
        assert_eq!(o[0]["data"]["a"], Value::from("d"), "Always");
    }

    #[test]
    fn invalid_names_and_broken_results_are_errors() {
        let mut o =
            objs("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: ${A}\n");
        let err = substitute_objects(&mut o, &BTreeMap::from([("1A".into(), "x".into())]), false)
            .unwrap_err();
        assert!(err.to_string().contains("'1A' var name is invalid"));
        let mut o =
            objs("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: ${A\n");
        let err = substitute_objects(&mut o, &BTreeMap::from([("A".into(), "x".into())]), false)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ConfigMap/x: variable substitution failed"),
            "{err}"
        );
    }

    #[test]
    fn common_metadata() {
        let mut o = objs("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n");
        set_common_metadata(
            &mut o,
            &BTreeMap::from([("team".into(), "a".into())]),
            &BTreeMap::new(),
        );
        assert_eq!(o[0]["metadata"]["labels"]["team"], Value::from("a"));
    }
}
