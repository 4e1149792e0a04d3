//! The CustomResourceDefinitions of every kind, labelled the way Flux labels its own so
//! that `flux check` and `flux version` find them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::constants::{
    COMPONENT_LABEL, FLUX_DISTRIBUTION_VERSION, INSTANCE_LABEL, PART_OF_LABEL, PART_OF_VALUE,
    VERSION_LABEL,
};

/// One CRD and the controller that serves it.
pub struct CrdEntry {
    /// The definition.
    pub crd: CustomResourceDefinition,
    /// The controller that reconciles the kind (label `app.kubernetes.io/component`).
    pub component: &'static str,
}

impl CrdEntry {
    /// File name Flux uses for the CRD: `<group>_<plural>.yaml`.
    pub fn file_name(&self) -> String {
        format!(
            "{}_{}.yaml",
            self.crd.spec.group, self.crd.spec.names.plural
        )
    }
}

/// Every CRD ferroflux serves, in a stable order, with Flux's labels and annotations.
pub fn all() -> Vec<CrdEntry> {
    use crate::constants::{
        HELM_CONTROLLER, KUSTOMIZE_CONTROLLER, NOTIFICATION_CONTROLLER, SOURCE_CONTROLLER,
    };
    use crate::{helmrelease, kustomization, notification as n, source as s};
    [
        (s::GitRepository::crd(), SOURCE_CONTROLLER),
        (s::OCIRepository::crd(), SOURCE_CONTROLLER),
        (s::HelmRepository::crd(), SOURCE_CONTROLLER),
        (s::HelmChart::crd(), SOURCE_CONTROLLER),
        (s::Bucket::crd(), SOURCE_CONTROLLER),
        (s::ExternalArtifact::crd(), SOURCE_CONTROLLER),
        (kustomization::Kustomization::crd(), KUSTOMIZE_CONTROLLER),
        (helmrelease::HelmRelease::crd(), HELM_CONTROLLER),
        (n::Alert::crd(), NOTIFICATION_CONTROLLER),
        (n::Provider::crd(), NOTIFICATION_CONTROLLER),
        (n::Receiver::crd(), NOTIFICATION_CONTROLLER),
    ]
    .into_iter()
    .map(|(crd, component)| CrdEntry {
        crd: finish(crd, component),
        component,
    })
    .collect()
}

fn finish(mut crd: CustomResourceDefinition, component: &str) -> CustomResourceDefinition {
    let labels = crd.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(PART_OF_LABEL.into(), PART_OF_VALUE.into());
    labels.insert(VERSION_LABEL.into(), FLUX_DISTRIBUTION_VERSION.into());
    labels.insert(COMPONENT_LABEL.into(), component.into());
    labels.insert(
        INSTANCE_LABEL.into(),
        crate::constants::DEFAULT_NAMESPACE.into(),
    );
    // Flux marks its CRDs so that a Kustomization applying them never substitutes
    // `${...}` inside their descriptions and CEL rules.
    crd.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            crate::constants::SUBSTITUTE_ANNOTATION.into(),
            crate::constants::DISABLED_VALUE.into(),
        );
    crd.spec
        .names
        .list_kind
        .get_or_insert_with(|| format!("{}List", crd.spec.names.kind));
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_nullable(schema);
        }
    }
    crd
}

/// Optional fields are simply absent in Flux's schemas; schemars marks them `nullable`
/// (and adds `null` to enums), which would let `null` through where Flux's API server
/// prunes it. Remove the marks.
fn strip_nullable(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_nullable(child);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(
        items,
    )) = schema.items.as_mut()
    {
        strip_nullable(items);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(
        extra,
    )) = schema.additional_properties.as_mut()
    {
        strip_nullable(extra);
    }
}
