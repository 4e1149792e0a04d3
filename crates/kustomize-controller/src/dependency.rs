//! Whether a Kustomization's dependencies are ready (Flux's `checkDependencies`, the
//! built-in check). A `readyExpr` (CEL over `self` and `dep`) replaces this check unless
//! the `AdditiveCELDependencyCheck` gate is on; it is evaluated in `reconcile`.

use ferroflux_api::kustomization::Kustomization;
use ferroflux_api::meta::{condition_types, is_condition_true};

/// Why a dependency is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The dependency does not exist.
    NotFound(String),
    /// It exists but is not Ready at its latest generation.
    NotReady(String),
    /// It is Ready but has not applied the revision this Kustomization is about to apply.
    RevisionMismatch {
        id: String,
        applied: String,
        wanted: String,
    },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::NotFound(id) => write!(f, "dependency '{id}' not found"),
            NotReady::NotReady(id) => write!(f, "dependency '{id}' is not ready"),
            NotReady::RevisionMismatch {
                id,
                applied,
                wanted,
            } => {
                write!(
                    f,
                    "dependency '{id}' is not up-to-date: applied revision '{applied}' differs from source revision '{wanted}'"
                )
            }
        }
    }
}

/// Checks one dependency: `dep` as read from the cluster (None when absent), and the
/// source revision when both use the same source.
pub fn check(
    id: &str,
    dep: Option<&Kustomization>,
    same_source_revision: Option<&str>,
) -> Result<(), NotReady> {
    let Some(dep) = dep else {
        return Err(NotReady::NotFound(id.to_string()));
    };
    let status = dep.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let current_generation =
        dep.metadata.generation.is_some() && dep.metadata.generation == status.observed_generation;
    if conditions.is_empty()
        || !current_generation
        || !is_condition_true(&conditions, condition_types::READY)
    {
        return Err(NotReady::NotReady(id.to_string()));
    }
    if let Some(wanted) = same_source_revision {
        let applied = status.last_applied_revision.unwrap_or_default();
        if applied != wanted {
            return Err(NotReady::RevisionMismatch {
                id: id.to_string(),
                applied,
                wanted: wanted.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ks(generation: i64, observed: i64, ready: &str, revision: &str) -> Kustomization {
        serde_json::from_value(json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "dep", "namespace": "ns", "generation": generation},
            "spec": {"interval": "1m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "repo"}},
            "status": {"observedGeneration": observed, "lastAppliedRevision": revision, "conditions": [
                {"type": "Ready", "status": ready, "reason": "X", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn ready_at_the_same_revision() {
        assert_eq!(
            check(
                "ns/dep",
                Some(&ks(2, 2, "True", "main@sha1:a")),
                Some("main@sha1:a")
            ),
            Ok(())
        );
        assert_eq!(
            check("ns/dep", Some(&ks(2, 2, "True", "main@sha1:a")), None),
            Ok(())
        );
    }

    #[test]
    fn not_ready_cases() {
        assert_eq!(
            check("ns/dep", None, None),
            Err(NotReady::NotFound("ns/dep".into()))
        );
        assert_eq!(
            check("ns/dep", Some(&ks(3, 2, "True", "r")), None),
            Err(NotReady::NotReady("ns/dep".into()))
        );
        assert_eq!(
            check("ns/dep", Some(&ks(2, 2, "False", "r")), None),
            Err(NotReady::NotReady("ns/dep".into()))
        );
        assert!(matches!(
            check("ns/dep", Some(&ks(2, 2, "True", "old")), Some("new")),
            Err(NotReady::RevisionMismatch { .. })
        ));
    }
}
