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
