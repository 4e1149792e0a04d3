//! `Receiver` (notification.toolkit.fluxcd.io/v1): a webhook that triggers reconciles.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::meta::{Condition, LocalObjectReference};

/// Desired state of a Receiver.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "notification.toolkit.fluxcd.io",
    version = "v1",
    kind = "Receiver",
    plural = "receivers",
    namespaced,
    status = "ReceiverStatus",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-notifications",
    doc = "Receiver is the Schema for the receivers API.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[x_kube(validation = Rule::new("self.type != 'generic-oidc' || (has(self.oidcProviders) && size(self.oidcProviders) > 0)").message("generic-oidc receivers must define at least one oidcProvider"))]
#[x_kube(validation = Rule::new("self.type == 'generic-oidc' || !has(self.oidcProviders) || size(self.oidcProviders) == 0").message("oidcProviders can only be set when type is generic-oidc"))]
#[x_kube(validation = Rule::new("self.type != 'generic-oidc' || !has(self.secretRef)").message("secretRef cannot be set when type is generic-oidc"))]
#[x_kube(validation = Rule::new("self.type == 'generic-oidc' || has(self.secretRef)").message("secretRef is required when type is not generic-oidc"))]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// Webhook flavour: how requests are authenticated and parsed.
    #[serde(rename = "type")]
    pub receiver_type: ReceiverType,
    /// How often to re-check the Receiver (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), extend("default" = "10m"))]
    pub interval: Option<String>,
    /// Event types accepted (e.g. `push` for GitHub); all when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Objects to reconcile when the webhook is called.
    pub resources: Vec<ReceiverResource>,
    /// CEL expression filtering the resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_filter: Option<String>,
    /// Secret with the `token` used in the path and to check signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// OIDC providers for `generic-oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["issuerURL"]))]
    pub oidc_providers: Option<Vec<OIDCProvider>>,
    /// Stop serving the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// A resource a Receiver reconciles, optionally filtered by CEL.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverResource {
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent.
    pub kind: super::FluxKind,
    /// Name of the referent, or `*` for all.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub namespace: Option<String>,
    /// Labels the referent must have (with name `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<std::collections::BTreeMap<String, String>>,
    /// CEL expression over the request and the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Receiver types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverType {
    #[default]
    Generic,
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    #[serde(rename = "generic-oidc")]
    GenericOidc,
    Github,
    Gitlab,
    Bitbucket,
    Harbor,
    Dockerhub,
    Quay,
    Gcr,
    Nexus,
    Acr,
    Cdevents,
}

/// An OIDC issuer trusted by a `generic-oidc` Receiver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OIDCProvider {
    /// Issuer address.
    #[serde(rename = "issuerURL")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub issuer_url: String,
    /// Expected audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Named CEL expressions usable in validations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<OIDCVariable>>,
    /// CEL checks the token's claims must pass.
    #[schemars(length(min = 1))]
    pub validations: Vec<OIDCValidation>,
}

/// A named CEL expression.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct OIDCVariable {
    /// Name.
    pub name: String,
    /// CEL expression.
    pub expression: String,
}

/// A CEL check and the message shown when it fails.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct OIDCValidation {
    /// CEL expression that must be true.
    pub expression: String,
    /// Message when it is false.
    pub message: String,
}

/// Observed state of a Receiver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": -1}))]
pub struct ReceiverStatus {
    /// Last generation the controller acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::conditions_schema")]
    pub conditions: Option<Vec<Condition>>,
    /// Path of the webhook: `/hook/<sha256(token+name+namespace)>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// Last handled `reconcile.fluxcd.io/requestedAt` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// The webhook path Flux derives from the token, name and namespace.
pub fn webhook_path(token: &str, name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{token}{name}{namespace}").as_bytes());
    format!("/hook/{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_path_is_sha256_of_token_name_namespace() {
        // sha256("tokenreceiverflux-system")
        let path = super::webhook_path("token", "receiver", "flux-system");
        assert!(path.starts_with("/hook/"));
        assert_eq!(path.len(), "/hook/".len() + 64);
        assert_ne!(path, super::webhook_path("token", "receiver", "other"));
    }
}
