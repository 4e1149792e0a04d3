//! Object identity: the `Kind/namespace/name` form Flux prints and the inventory entries
//! (cli-utils `ObjMetadata`) it stores.

use std::collections::BTreeSet;

use ferroflux_api::meta::{ResourceInventory, ResourceRef};
use kube::api::DynamicObject;

/// Identifies one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// API group ("" for core).
    pub group: String,
    /// API version (without group).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace ("" when cluster-scoped or unset).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// Reads the identity of a manifest.
    pub fn of(obj: &DynamicObject) -> Result<Self, crate::Error> {
        let types = obj
            .types
            .as_ref()
            .ok_or_else(|| crate::Error::Invalid("object without apiVersion/kind".into()))?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), types.api_version.clone()),
        };
        let name = obj
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                crate::Error::Invalid(format!("{} without metadata.name", types.kind))
            })?;
        Ok(Self {
            group,
            version,
            kind: types.kind.clone(),
            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
            name,
        })
    }

    /// `group/version` or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The inventory entry for this object.
    pub fn inventory_entry(&self) -> ResourceRef {
        ResourceRef::new(
            &self.namespace,
            &self.name,
            &self.group,
            &self.kind,
            &self.version,
        )
    }

    /// Parses an inventory entry back into an identity.
    pub fn from_inventory(entry: &ResourceRef) -> Option<Self> {
        let (namespace, name, group, kind) = entry.parse()?;
        Some(Self {
            group,
            version: entry.v.clone(),
            kind,
            namespace,
            name,
        })
    }

    /// Same object regardless of API version.
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        self.group == other.group
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl std::fmt::Display for ObjectRef {
    /// `Kind/namespace/name`, or `Kind/name` when cluster-scoped (Flux's `FmtObjMetadata`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// The inventory of a set of objects, sorted and deduplicated like Flux's.
pub fn inventory_of(objects: &[ObjectRef]) -> ResourceInventory {
    let entries: BTreeSet<ResourceRef> = objects.iter().map(ObjectRef::inventory_entry).collect();
    ResourceInventory {
        entries: entries.into_iter().collect(),
    }
}

/// Objects in `old` that are not in `new` (compared without the API version).
pub fn stale_objects(old: &ResourceInventory, new: &ResourceInventory) -> Vec<ObjectRef> {
    let new: Vec<ObjectRef> = new
        .entries
        .iter()
        .filter_map(ObjectRef::from_inventory)
        .collect();
    old.entries
        .iter()
        .filter_map(ObjectRef::from_inventory)
        .filter(|o| !new.iter().any(|n| n.same_object(o)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(group: &str, version: &str, kind: &str, ns: &str, name: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn ids_and_inventory_entries_as_flux_writes_them() {
        let svc = obj("", "v1", "Service", "default", "podinfo");
        assert_eq!(svc.to_string(), "Service/default/podinfo");
        assert_eq!(svc.inventory_entry().id, "default_podinfo__Service");
        let role = obj(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "",
            "system:viewer",
        );
        assert_eq!(role.to_string(), "ClusterRole/system:viewer");
        assert_eq!(
            role.inventory_entry().id,
            "_system__viewer_rbac.authorization.k8s.io_ClusterRole"
        );
        assert_eq!(
            ObjectRef::from_inventory(&role.inventory_entry()),
            Some(role)
        );
    }

    #[test]
    fn stale_objects_ignore_version_changes() {
        let old = inventory_of(&[
            obj("apps", "v1", "Deployment", "a", "web"),
            obj("", "v1", "ConfigMap", "a", "gone"),
        ]);
        let new = inventory_of(&[obj("apps", "v2", "Deployment", "a", "web")]);
        assert_eq!(
            stale_objects(&old, &new),
            vec![obj("", "v1", "ConfigMap", "a", "gone")]
        );
    }
}
