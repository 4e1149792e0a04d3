//! The order of a staged apply.

/// Apply stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// CRDs, Namespaces and ClusterRoles: applied first and waited for, because the rest
    /// may need them.
    Cluster,
    /// Kinds whose name ends in `Class` (StorageClass, IngressClass, ...).
    Class,
    /// Everything else.
    Rest,
}

/// The stage of a kind (Flux's `IsClusterDefinition` / `IsClass`).
pub fn stage_of(group: &str, kind: &str) -> Stage {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("", "Namespace")
        | ("rbac.authorization.k8s.io", "ClusterRole") => Stage::Cluster,
        (_, k) if k.ends_with("Class") => Stage::Class,
        _ => Stage::Rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages() {
        assert_eq!(
            stage_of("apiextensions.k8s.io", "CustomResourceDefinition"),
            Stage::Cluster
        );
        assert_eq!(stage_of("", "Namespace"), Stage::Cluster);
        assert_eq!(
            stage_of("rbac.authorization.k8s.io", "ClusterRole"),
            Stage::Cluster
        );
        assert_eq!(stage_of("storage.k8s.io", "StorageClass"), Stage::Class);
        assert_eq!(stage_of("apps", "Deployment"), Stage::Rest);
        assert_eq!(
            stage_of("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            Stage::Rest
        );
    }
}
