//! Extra triggers: a source with a new artifact reconciles the Kustomizations built from
//! it at once (Flux indexes Kustomizations by source for the same purpose).

use std::hash::{Hash, Hasher};

use ferroflux_api::kustomization::Kustomization;
use ferroflux_api::source::{Bucket, ExternalArtifact, GitRepository, OCIRepository};
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

/// Kustomizations in `store` whose `spec.sourceRef` names this source.
pub fn consumers(
    store: &Store<Kustomization>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<Kustomization>> {
    store
        .state()
        .iter()
        .filter(|ks| {
            let source = &ks.spec.source_ref;
            let source_ns = source
                .namespace
                .clone()
                .unwrap_or_else(|| ks.namespace().unwrap_or_default());
            source.kind.as_str() == kind && source.name == name && source_ns == namespace
        })
        .map(|ks| ObjectRef::from_obj(ks.as_ref()))
        .collect()
}

fn artifact_hash(artifact: Option<&ferroflux_api::meta::Artifact>) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    artifact.map(|a| (&a.digest, &a.revision)).hash(&mut h);
    Some(h.finish())
}

macro_rules! watch_source {
    ($controller:expr, $client:expr, $store:expr, $kind:ty) => {{
        let store = $store.clone();
        let stream = watcher(
            Api::<$kind>::all($client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .applied_objects()
        .predicate_filter(
            |s: &$kind| artifact_hash(s.status.as_ref().and_then(|st| st.artifact.as_ref())),
            Default::default(),
        )
        .filter_map(|r| async move { r.ok() })
        .map(Ok::<_, watcher::Error>);
        $controller.watches_stream(stream, move |source: $kind| {
            consumers(
                &store,
                &<$kind>::kind(&()),
                &source.namespace().unwrap_or_default(),
                &source.name_any(),
            )
        })
    }};
}

/// Adds source watches to the Kustomization controller.
pub fn with_source_watches(
    controller: Controller<Kustomization>,
    client: kube::Client,
) -> Controller<Kustomization> {
    let store = controller.store();
    let controller = watch_source!(controller, client, store, GitRepository);
    let controller = watch_source!(controller, client, store, OCIRepository);
    let controller = watch_source!(controller, client, store, Bucket);
    watch_source!(controller, client, store, ExternalArtifact)
}

/// Kustomizations in `store` that read this ConfigMap or Secret: `substituteFrom`,
/// `decryption.secretRef` or `kubeConfig.secretRef` in the same namespace.
pub fn readers(
    store: &Store<Kustomization>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<Kustomization>> {
    store
        .state()
        .iter()
        .filter(|ks| ks.namespace().as_deref() == Some(namespace))
        .filter(|ks| {
            let spec = &ks.spec;
            let substitutes = spec
                .post_build
                .iter()
                .flat_map(|p| p.substitute_from.iter().flatten())
                .any(|r| {
                    r.name == name
                        && matches!(
                            (r.kind, kind),
                            (
                                ferroflux_api::kustomization::ValuesSourceKind::ConfigMap,
                                "ConfigMap"
                            ) | (
                                ferroflux_api::kustomization::ValuesSourceKind::Secret,
                                "Secret"
                            )
                        )
                });
            let secret_refs = kind == "Secret"
                && (spec
                    .decryption
                    .as_ref()
                    .and_then(|d| d.secret_ref.as_ref())
                    .is_some_and(|r| r.name == name)
                    || spec
                        .kube_config
                        .as_ref()
                        .and_then(|k| k.secret_ref.as_ref())
                        .is_some_and(|r| r.name == name));
            substitutes || secret_refs
        })
        .map(|ks| ObjectRef::from_obj(ks.as_ref()))
        .collect()
}

macro_rules! watch_labelled {
    ($controller:expr, $client:expr, $store:expr, $kind:ty, $name:literal) => {{
        let store = $store.clone();
        let config = watcher::Config::default().labels(&format!(
            "{}={}",
            ferroflux_api::constants::WATCH_LABEL,
            ferroflux_api::constants::WATCH_LABEL_ENABLED
        ));
        let stream = watcher(Api::<$kind>::all($client.clone()), config)
            .default_backoff()
            .applied_objects()
            .predicate_filter(
                |o: &$kind| {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    serde_json::to_string(&o.data)
                        .unwrap_or_default()
                        .hash(&mut h);
                    Some(h.finish())
                },
                Default::default(),
            )
            .filter_map(|r| async move { r.ok() })
            .map(Ok::<_, watcher::Error>);
        $controller.watches_stream(stream, move |obj: $kind| {
            readers(
                &store,
                $name,
                &obj.namespace().unwrap_or_default(),
                &obj.name_any(),
            )
        })
    }};
}

/// Adds watches on ConfigMaps and Secrets labelled `reconcile.fluxcd.io/watch: Enabled`:
/// a change reconciles the Kustomizations that read them.
pub fn with_config_watches(
    controller: Controller<Kustomization>,
    client: kube::Client,
) -> Controller<Kustomization> {
    let store = controller.store();
    let controller = watch_labelled!(
        controller,
        client,
        store,
        k8s_openapi::api::core::v1::ConfigMap,
        "ConfigMap"
    );
    watch_labelled!(
        controller,
        client,
        store,
        k8s_openapi::api::core::v1::Secret,
        "Secret"
    )
}
