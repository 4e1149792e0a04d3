//! Types shared by several kinds (`fluxcd/pkg/apis/meta` in Flux): the Artifact a source
//! produces, object references, inventories and condition vocabulary.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Pattern of `Artifact.digest`: `<algorithm>:<encoded checksum>`.
pub const DIGEST_PATTERN: &str = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$";

/// The output of a source: a file in source-controller's storage, served over HTTP.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Path of the file relative to the storage root: `<kind>/<namespace>/<name>/<file>`.
    pub path: String,
    /// HTTP address of the file.
    pub url: String,
    /// Source-specific revision, e.g. `main@sha1:<hex>`.
    pub revision: String,
    /// `<algorithm>:<checksum>` of the file's bytes.
    #[schemars(regex(pattern = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"))]
    pub digest: String,
    /// When the artifact was last written.
    pub last_update_time: Time,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Free-form metadata, e.g. OCI annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A reference to an object in the same namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the referent.
    pub name: String,
}

/// A reference to a key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyReference {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret; defaults depend on the consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A reference to an object of the same kind, possibly in another namespace (dependsOn).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyReference {
    /// Name of the dependency.
    pub name: String,
    /// Namespace of the dependency; defaults to the dependent's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// CEL expression (variables `dep`, `self`) replacing the built-in readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_expr: Option<String>,
}

/// Where a kubeconfig for a remote cluster is read from: exactly one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeConfigReference {
    /// A ConfigMap naming a cloud provider to build the kubeconfig from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalObjectReference>,
    /// A Secret holding a kubeconfig (key `value` or `value.yaml` unless `key` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyReference>,
}

/// Labels and annotations added to every object a Kustomization or HelmRelease applies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CommonMetadata {
    /// Annotations to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Selects objects by group/version/kind, name, namespace and label/annotation selectors.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name (a regular expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace (a regular expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Kubernetes label selector applied to annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<String>,
}

/// A kustomize patch (strategic merge or JSON 6902) and the objects it applies to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Patch {
    /// The patch document.
    pub patch: String,
    /// Objects to patch; when absent the patch names its own target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Selector>,
}

/// A kustomize image override.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Image name to match.
    pub name: String,
    /// Replacement name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Replacement tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// Replacement digest (wins over the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Fields to ignore when detecting drift, for the selected objects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct IgnoreRule {
    /// JSON pointers to ignore.
    pub paths: Vec<String>,
    /// Objects the rule applies to; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Selector>,
}

/// A custom health check written in CEL for a kind kstatus does not understand.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomHealthCheck {
    /// API version of the kind.
    pub api_version: String,
    /// Kind the expressions apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// True when the object is healthy.
    pub current: String,
    /// True while the object is progressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
    /// True when the object has failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// The objects a Kustomization or HelmRelease applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ResourceInventory {
    /// One entry per object.
    pub entries: Vec<ResourceRef>,
}

/// An inventory entry: `id` = `<namespace>_<name>_<group>_<kind>`, `v` = API version.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub struct ResourceRef {
    /// Object id in cli-utils' `ObjMetadata` text form.
    pub id: String,
    /// API version of the object.
    pub v: String,
}

impl ResourceRef {
    /// Builds an entry the way cli-utils prints `ObjMetadata`: colons in names (RBAC)
    /// become `__`, the core group is empty, cluster-scoped objects have no namespace.
    pub fn new(namespace: &str, name: &str, group: &str, kind: &str, version: &str) -> Self {
        let name = name.replace(':', "__");
        Self {
            id: format!("{namespace}_{name}_{group}_{kind}"),
            v: version.to_string(),
        }
    }

    /// Splits the id back into (namespace, name, group, kind).
    pub fn parse(&self) -> Option<(String, String, String, String)> {
        // Names may contain '_' only through the ':' transcoding, which makes '__'. The
        // namespace never contains '_' and group and kind never do, so split from both ends.
        let (namespace, rest) = self.id.split_once('_')?;
        let (rest, kind) = rest.rsplit_once('_')?;
        let (name, group) = rest.rsplit_once('_')?;
        Some((
            namespace.to_string(),
            name.replace("__", ":"),
            group.to_string(),
            kind.to_string(),
        ))
    }
}

/// Condition types shared by all kinds (kstatus vocabulary).
pub mod condition_types {
    /// Whether the object is ready.
    pub const READY: &str = "Ready";
    /// Present (True) while the controller is working on the object.
    pub const RECONCILING: &str = "Reconciling";
    /// Present (True) when the controller cannot make progress without a spec change.
    pub const STALLED: &str = "Stalled";
    /// Result of health checks (Kustomization).
    pub const HEALTHY: &str = "Healthy";
    /// source-controller: an artifact is in storage.
    pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
    /// source-controller: the stored artifact is older than the source.
    pub const ARTIFACT_OUTDATED: &str = "ArtifactOutdated";
    /// source-controller: signature verification result.
    pub const SOURCE_VERIFIED: &str = "SourceVerified";
    /// source-controller: fetching the source failed.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// source-controller: building the artifact failed.
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// source-controller: a storage operation failed.
    pub const STORAGE_OPERATION_FAILED: &str = "StorageOperationFailed";
    /// GitRepository: an included repository has no artifact.
    pub const INCLUDE_UNAVAILABLE: &str = "IncludeUnavailable";
    /// HelmRelease: outcome of the last release action.
    pub const RELEASED: &str = "Released";
    /// HelmRelease: outcome of the Helm tests.
    pub const TEST_SUCCESS: &str = "TestSuccess";
    /// HelmRelease: outcome of the last remediation.
    pub const REMEDIATED: &str = "Remediated";
    /// HelmRelease: drift detected in the cluster.
    pub const DRIFTED: &str = "Drifted";
}

/// Condition reasons (`fluxcd/pkg/apis/meta` and the controllers' own).
pub mod reasons {
    #![allow(missing_docs)]
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const PROGRESSING: &str = "Progressing";
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    pub const SUSPENDED: &str = "Suspended";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    pub const INVALID_PATH: &str = "InvalidPath";
    pub const INVALID_URL: &str = "InvalidURL";
    pub const INSECURE_CONNECTIONS_DISALLOWED: &str = "InsecureConnectionsDisallowed";
    pub const UNSUPPORTED_CONNECTION_TYPE: &str = "UnsupportedConnectionType";
    pub const PRUNE_FAILED: &str = "PruneFailed";
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    pub const BUILD_FAILED: &str = "BuildFailed";
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    pub const HEALTH_CHECK_CANCELED: &str = "HealthCheckCanceled";
    pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
    pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
    pub const INVALID_CEL_EXPRESSION: &str = "InvalidCELExpression";
    pub const FEATURE_GATE_DISABLED: &str = "FeatureGateDisabled";
    pub const ACCESS_DENIED: &str = "AccessDenied";
    // source-controller
    pub const NEW_REVISION: &str = "NewRevision";
    pub const URL_INVALID: &str = "URLInvalid";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const DIRECTORY_CREATION_FAILED: &str = "DirectoryCreationFailed";
    pub const STAT_OPERATION_FAILED: &str = "StatOperationFailed";
    pub const READ_OPERATION_FAILED: &str = "ReadOperationFailed";
    pub const ACQUIRE_LOCK_FAILED: &str = "AcquireLockFailed";
    pub const ARCHIVE_OPERATION_FAILED: &str = "ArchiveOperationFailed";
    pub const SYMLINK_UPDATE_FAILED: &str = "SymlinkUpdateFailed";
    pub const ARTIFACT_UP_TO_DATE: &str = "ArtifactUpToDate";
    pub const CACHE_OPERATION_FAILED: &str = "CacheOperationFailed";
    pub const PATCH_OPERATION_FAILED: &str = "PatchOperationFailed";
    pub const INVALID_STS_CONFIGURATION: &str = "InvalidSTSConfiguration";
    pub const INVALID_PROVIDER_CONFIGURATION: &str = "InvalidProviderConfiguration";
    pub const GIT_OPERATION_SUCCEEDED: &str = "GitOperationSucceeded";
    pub const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
    pub const INDEXATION_FAILED: &str = "IndexationFailed";
    pub const CHART_PULL_SUCCEEDED: &str = "ChartPullSucceeded";
    pub const CHART_PACKAGE_SUCCEEDED: &str = "ChartPackageSucceeded";
    pub const OCI_ARTIFACT_PULL_FAILED: &str = "OCIArtifactPullFailed";
    pub const OCI_ARTIFACT_LAYER_OPERATION_FAILED: &str = "OCIArtifactLayerOperationFailed";
    pub const BUCKET_OPERATION_SUCCEEDED: &str = "BucketOperationSucceeded";
    pub const BUCKET_OPERATION_FAILED: &str = "BucketOperationFailed";
    // helm-controller
    pub const INSTALL_SUCCEEDED: &str = "InstallSucceeded";
    pub const INSTALL_FAILED: &str = "InstallFailed";
    pub const UPGRADE_SUCCEEDED: &str = "UpgradeSucceeded";
    pub const UPGRADE_FAILED: &str = "UpgradeFailed";
    pub const TEST_SUCCEEDED: &str = "TestSucceeded";
    pub const TEST_FAILED: &str = "TestFailed";
    pub const ROLLBACK_SUCCEEDED: &str = "RollbackSucceeded";
    pub const ROLLBACK_FAILED: &str = "RollbackFailed";
    pub const UNINSTALL_SUCCEEDED: &str = "UninstallSucceeded";
    pub const UNINSTALL_FAILED: &str = "UninstallFailed";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const NO_DRIFT_DETECTED: &str = "NoDriftDetected";
    // notification-controller
    pub const INITIALIZED: &str = "Initialized";
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    pub const TOKEN_NOT_FOUND: &str = "TokenNotFound";
}

/// Schema of a `conditions` list with the constraints `metav1.Condition` carries in
/// Flux's CRDs (reason pattern, message length, status enum), which the plain
/// k8s-openapi schema of `Condition` lacks.
pub fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "description": "Conditions holds the conditions for the object.",
        "items": {
            "type": "object",
            "description": "Condition contains details for one aspect of the current state of this API Resource.",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {
                    "type": "string",
                    "format": "date-time",
                    "description": "Last time the condition transitioned from one status to another."
                },
                "message": {
                    "type": "string",
                    "maxLength": 32768,
                    "description": "Human readable message about the transition."
                },
                "observedGeneration": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": 0,
                    "description": "metadata.generation the condition was set for."
                },
                "reason": {
                    "type": "string",
                    "maxLength": 1024,
                    "minLength": 1,
                    "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                    "description": "Programmatic identifier of the reason for the last transition."
                },
                "status": {
                    "type": "string",
                    "enum": ["True", "False", "Unknown"],
                    "description": "Status of the condition."
                },
                "type": {
                    "type": "string",
                    "maxLength": 316,
                    "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                    "description": "Type of condition in CamelCase."
                }
            }
        }
    })
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of that type is present with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}
