//! Resource identity: group/version/kind, name and namespace.

use std::fmt;

/// Group, version and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let (g, v) = parse_group_version(api_version);
        Gvk::new(g, v, kind)
    }
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// Whether `self` is selected by `selector` (empty selector fields match anything).
    pub fn is_selected(&self, selector: &Gvk) -> bool {
        (selector.group.is_empty() || selector.group == self.group)
            && (selector.version.is_empty() || selector.version == self.version)
            && (selector.kind.is_empty() || selector.kind == self.kind)
    }
    pub fn is_cluster_scoped(&self) -> bool {
        crate::openapi::is_cluster_scoped(&self.api_version(), &self.kind)
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = if self.group.is_empty() {
            "[noGrp]"
        } else {
            &self.group
        };
        let v = if self.version.is_empty() {
            "[noVer]"
        } else {
            &self.version
        };
        let k = if self.kind.is_empty() {
            "[noKind]"
        } else {
            &self.kind
        };
        write!(f, "{k}.{v}.{g}")
    }
}

pub fn parse_group_version(api_version: &str) -> (&str, &str) {
    match api_version.find('/') {
        Some(i) => (&api_version[..i], &api_version[i + 1..]),
        None => ("", api_version),
    }
}

pub const NOT_NAMESPACEABLE: &str = "_non_namespaceable_";

/// A resource id. `cluster_scoped` is computed from the schema for current
/// ids; ids rebuilt from history carry `false` (as kustomize's do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResId {
    pub gvk: Gvk,
    pub name: String,
    pub namespace: String,
    pub cluster_scoped: bool,
}

impl ResId {
    pub fn new(gvk: Gvk, name: &str, namespace: &str) -> Self {
        let cluster_scoped = gvk.is_cluster_scoped();
        ResId {
            gvk,
            name: name.into(),
            namespace: namespace.into(),
            cluster_scoped,
        }
    }
    pub fn effective_namespace(&self) -> &str {
        if self.cluster_scoped {
            NOT_NAMESPACEABLE
        } else if self.namespace.is_empty() || self.namespace == "default" {
            "default"
        } else {
            &self.namespace
        }
    }
    pub fn ns_equals(&self, o: &ResId) -> bool {
        self.effective_namespace() == o.effective_namespace()
    }
    pub fn gvkn_equals(&self, o: &ResId) -> bool {
        self.name == o.name && self.gvk == o.gvk
    }
    pub fn equals(&self, o: &ResId) -> bool {
        self.ns_equals(o) && self.gvkn_equals(o)
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = if self.namespace.is_empty() {
            "[noNs]"
        } else {
            &self.namespace
        };
        let nm = if self.name.is_empty() {
            "[noName]"
        } else {
            &self.name
        };
        write!(f, "{}/{}.{}", self.gvk, nm, ns)
    }
}
