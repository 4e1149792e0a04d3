//! Metadata cleanup before apply, as Flux's kustomize-controller does it: fields that
//! `kubectl` (client-side apply, `kubectl edit`, `kubectl apply --server-side`) or
//! pre-SSA controllers took are handed to our field manager, so the next apply removes
//! whatever the manifest no longer has; `kubectl`'s last-applied annotation and Flux v1's
//! bookkeeping go too. Objects annotated `kustomize.toolkit.fluxcd.io/ssa: Merge` are left
//! alone. Pure: builds the JSON patch, the caller sends it.

use serde_json::{Map, Value, json};

/// A field manager whose entries are taken over: by name prefix (or exact name) and
/// operation (`Apply` or `Update`); subresource entries are never matched.
#[derive(Clone, Debug)]
pub struct ManagerMatch {
    pub name: String,
    pub exact: bool,
    pub operation: &'static str,
}

/// What is removed from in-cluster objects before they are applied.
#[derive(Clone, Debug, Default)]
pub struct Cleanup {
    pub annotations: Vec<String>,
    pub labels: Vec<String>,
    pub managers: Vec<ManagerMatch>,
}

impl Cleanup {
    /// kustomize-controller's list (`kustomization_controller.go`, apply options).
    pub fn flux_defaults(controller: &str) -> Cleanup {
        let by_prefix = |name: &str, operation| ManagerMatch {
            name: name.to_string(),
            exact: false,
            operation,
        };
        Cleanup {
            annotations: vec![
                "kubectl.kubernetes.io/last-applied-configuration".into(),
                "kustomize.toolkit.fluxcd.io/checksum".into(),
                "fluxcd.io/sync-checksum".into(),
            ],
            labels: vec!["fluxcd.io/sync-gc-mark".into()],
            managers: vec![
                by_prefix("kubectl", "Apply"),
                by_prefix("kubectl", "Update"),
                by_prefix("before-first-apply", "Update"),
                by_prefix(controller, "Update"),
            ],
        }
    }
}

impl Cleanup {
    /// Adds managers (by name prefix) whose Apply and Update entries are taken over too:
    /// kustomize-controller's `--override-manager`.
    pub fn with_managers(mut self, names: &[String]) -> Cleanup {
        for name in names.iter().filter(|n| !n.is_empty()) {
            for operation in ["Apply", "Update"] {
                self.managers.push(ManagerMatch {
                    name: name.clone(),
                    exact: false,
                    operation,
                });
            }
        }
        self
    }
}

fn matches(entry: &Value, m: &ManagerMatch) -> bool {
    if entry.get("operation").and_then(Value::as_str) != Some(m.operation) {
        return false;
    }
    if entry
        .get("subresource")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return false;
    }
    let name = entry.get("manager").and_then(Value::as_str).unwrap_or("");
    if m.exact {
        name == m.name
    } else {
        name.starts_with(&m.name)
    }
}

/// The union of two `fieldsV1` sets: their tries merged key by key.
pub fn union_fields(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out: Map<String, Value> = x.clone();
            for (k, v) in y {
                let merged = match out.get(k) {
                    Some(existing) => union_fields(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Null, other) | (other, Value::Null) => other.clone(),
        (first, _) => first.clone(),
    }
}

/// JSON pointer escaping of one path segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSON patch (RFC 6902) that cleans `existing` for our `field_manager`, or `None`
/// when there is nothing to clean.
pub fn cleanup_patch(existing: &Value, field_manager: &str, cleanup: &Cleanup) -> Option<Value> {
    let meta = existing.get("metadata")?;
    let mut ops = Vec::new();
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        for key in &cleanup.annotations {
            if annotations.contains_key(key) {
                ops.push(json!({"op": "remove", "path": format!("/metadata/annotations/{}", escape(key))}));
            }
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for key in &cleanup.labels {
            if labels.contains_key(key) {
                ops.push(
                    json!({"op": "remove", "path": format!("/metadata/labels/{}", escape(key))}),
                );
            }
        }
    }
    if let Some(entries) = meta.get("managedFields").and_then(Value::as_array) {
        // Our own Apply entry collects the fields of every matching entry; without one, the
        // first match is renamed into it.
        let ours = |e: &Value| {
            e.get("manager").and_then(Value::as_str) == Some(field_manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply")
        };
        let mut target: Option<Value> = entries.iter().find(|e| ours(e)).cloned();
        let mut kept = Vec::new();
        let mut edited = false;
        for entry in entries {
            if ours(entry) {
                continue;
            }
            if cleanup.managers.iter().any(|m| matches(entry, m)) {
                edited = true;
                match &mut target {
                    None => {
                        let mut renamed = entry.clone();
                        renamed["manager"] = json!(field_manager);
                        renamed["operation"] = json!("Apply");
                        target = Some(renamed);
                    }
                    Some(t) => {
                        let merged = union_fields(
                            t.get("fieldsV1").unwrap_or(&Value::Null),
                            entry.get("fieldsV1").unwrap_or(&Value::Null),
                        );
                        t["fieldsV1"] = merged;
                    }
                }
                continue;
            }
            kept.push(entry.clone());
        }
        if edited {
            kept.extend(target);
            ops.push(json!({"op": "replace", "path": "/metadata/managedFields", "value": kept}));
        }
    }
    (!ops.is_empty()).then_some(Value::Array(ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, op: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": op, "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn kubectl_fields_move_to_our_apply_entry() {
        let obj = json!({"metadata": {
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"},
        "labels": {"fluxcd.io/sync-gc-mark": "x", "app": "a"},
        "managedFields": [
            entry("kustomize-controller", "Apply", json!({"f:data": {"f:a": {}}})),
            entry("kubectl-edit", "Update", json!({"f:metadata": {"f:labels": {"f:added": {}}}})),
            entry("kube-controller-manager", "Update", json!({"f:status": {}})),
            json!({"manager": "kubectl", "operation": "Update", "subresource": "status", "fieldsV1": {}}),
        ]}});
        let patch = cleanup_patch(
            &obj,
            "kustomize-controller",
            &Cleanup::flux_defaults("kustomize-controller"),
        )
        .unwrap();
        let ops = patch.as_array().unwrap();
        assert_eq!(
            ops[0]["path"],
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
        );
        assert_eq!(ops[1]["path"], "/metadata/labels/fluxcd.io~1sync-gc-mark");
        let entries = ops[2]["value"].as_array().unwrap();
        let managers: Vec<&str> = entries
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        // Other managers and subresource entries stay; ours comes last with the union.
        assert_eq!(
            managers,
            ["kube-controller-manager", "kubectl", "kustomize-controller"]
        );
        assert_eq!(
            entries[2]["fieldsV1"],
            json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:added": {}}}})
        );
    }

    #[test]
    fn without_our_entry_the_first_match_is_renamed() {
        let obj = json!({"metadata": {"managedFields": [
            entry("kubectl-client-side-apply", "Update", json!({"f:data": {}})),
            entry("before-first-apply", "Update", json!({"f:metadata": {}})),
        ]}});
        let patch = cleanup_patch(
            &obj,
            "kustomize-controller",
            &Cleanup::flux_defaults("kustomize-controller"),
        )
        .unwrap();
        let entries = patch[0]["value"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["manager"], "kustomize-controller");
        assert_eq!(entries[0]["operation"], "Apply");
        assert_eq!(
            entries[0]["fieldsV1"],
            json!({"f:data": {}, "f:metadata": {}})
        );
    }

    #[test]
    fn override_managers_are_taken_over_too() {
        let obj = json!({"metadata": {"managedFields": [
            entry("kustomize-controller", "Apply", json!({"f:data": {}})),
            entry("argocd-controller", "Apply", json!({"f:spec": {}})),
        ]}});
        let plain = Cleanup::flux_defaults("kustomize-controller");
        assert!(cleanup_patch(&obj, "kustomize-controller", &plain).is_none());
        let with = plain.with_managers(&["argocd".to_string()]);
        let patch = cleanup_patch(&obj, "kustomize-controller", &with).unwrap();
        assert_eq!(
            patch[0]["value"],
            json!([entry(
                "kustomize-controller",
                "Apply",
                json!({"f:data": {}, "f:spec": {}})
            )])
        );
    }

    #[test]
    fn a_clean_object_needs_no_patch() {
        let obj = json!({"metadata": {"annotations": {"a": "b"}, "managedFields": [
            entry("kustomize-controller", "Apply", json!({"f:data": {}})),
            entry("helm", "Update", json!({"f:spec": {}})),
        ]}});
        assert!(
            cleanup_patch(
                &obj,
                "kustomize-controller",
                &Cleanup::flux_defaults("kustomize-controller")
            )
            .is_none()
        );
    }
}
