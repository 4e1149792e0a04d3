//! Per-object opt-outs written as labels or annotations (Flux's `AnyInMetadata`: the key
//! may be a label or an annotation, the value matches case-insensitively).

use ferroflux_api::constants::{
    FORCE_ANNOTATION, PRUNE_ANNOTATION, RECONCILE_ANNOTATION, SSA_ANNOTATION,
};
use kube::api::ObjectMeta;

/// How an object is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyPolicy {
    /// Apply, taking ownership of every field in the manifest (default).
    Override,
    /// Apply without removing fields other managers set.
    Merge,
    /// Create when absent, never update.
    IfNotPresent,
    /// Never apply.
    Ignore,
}

fn value<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(key)))
        .map(String::as_str)
}

fn is(meta: &ObjectMeta, key: &str, expected: &str) -> bool {
    value(meta, key).is_some_and(|v| v.eq_ignore_ascii_case(expected))
}

/// The apply policy of an object from its desired manifest and, if it exists, its
/// in-cluster copy; `reconcile: disabled` on either means `Ignore`.
pub fn apply_policy(desired: &ObjectMeta, existing: Option<&ObjectMeta>) -> ApplyPolicy {
    let either =
        |key: &str, v: &str| is(desired, key, v) || existing.is_some_and(|m| is(m, key, v));
    if either(RECONCILE_ANNOTATION, "disabled") || either(SSA_ANNOTATION, "Ignore") {
        return ApplyPolicy::Ignore;
    }
    if either(SSA_ANNOTATION, "IfNotPresent") {
        return ApplyPolicy::IfNotPresent;
    }
    if either(SSA_ANNOTATION, "Merge") {
        return ApplyPolicy::Merge;
    }
    ApplyPolicy::Override
}

/// Whether the object may be recreated when an immutable field changes.
pub fn force_enabled(meta: &ObjectMeta) -> bool {
    is(meta, FORCE_ANNOTATION, "Enabled")
}

/// Whether garbage collection must leave the object alone.
pub fn prune_disabled(meta: &ObjectMeta) -> bool {
    is(meta, PRUNE_ANNOTATION, "disabled")
        || is(meta, RECONCILE_ANNOTATION, "disabled")
        || is(meta, SSA_ANNOTATION, "Ignore")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(annotations: &[(&str, &str)], labels: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        ObjectMeta {
            annotations: map(annotations),
            labels: map(labels),
            ..Default::default()
        }
    }

    #[test]
    fn policies_from_labels_or_annotations_case_insensitively() {
        assert_eq!(apply_policy(&meta(&[], &[]), None), ApplyPolicy::Override);
        assert_eq!(
            apply_policy(&meta(&[(SSA_ANNOTATION, "merge")], &[]), None),
            ApplyPolicy::Merge
        );
        assert_eq!(
            apply_policy(&meta(&[], &[(SSA_ANNOTATION, "IfNotPresent")]), None),
            ApplyPolicy::IfNotPresent
        );
        assert_eq!(
            apply_policy(
                &meta(&[], &[]),
                Some(&meta(&[(RECONCILE_ANNOTATION, "Disabled")], &[]))
            ),
            ApplyPolicy::Ignore
        );
        assert!(force_enabled(&meta(&[(FORCE_ANNOTATION, "enabled")], &[])));
        assert!(prune_disabled(&meta(
            &[],
            &[(PRUNE_ANNOTATION, "disabled")]
        )));
        assert!(!prune_disabled(&meta(&[], &[])));
    }
}
