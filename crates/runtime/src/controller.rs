//! The reconcile scaffold around kube-runtime's [`Controller`]:
//!
//! * watches one kind (all namespaces or `RUNTIME_NAMESPACE`, `--watch-label-selector`) and
//!   reacts only to a new generation, a changed `reconcile.fluxcd.io/requestedAt` annotation or
//!   a deletion (status writes do not retrigger);
//! * adds the `finalizers.fluxcd.io` finalizer, and on deletion calls [`Reconciler::finalize`]
//!   then removes it;
//! * skips suspended objects ("Reconciliation is suspended for this object");
//! * requeues successes after the object's interval with ± `--interval-jitter-percentage`
//!   jitter, and failures with an exponential backoff (750 ms doubling) capped at the interval;
//! * records `gotk_reconcile_duration_seconds` and runs at most `--concurrent` reconciles;
//! * stops taking work on shutdown and lets running reconciles finish.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use ferroflux_api::constants::{FINALIZER, RECONCILE_REQUEST_ANNOTATION};

use crate::events::EventRecorder;
use crate::flags::RuntimeArgs;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// A reconcile failure. The reconciler has already written status and events; the scaffold
/// only logs it and requeues with backoff.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReconcileError(pub String);

impl ReconcileError {
    /// From anything printable.
    pub fn new(msg: impl std::fmt::Display) -> Self {
        ReconcileError(msg.to_string())
    }
}

/// What every reconcile can use.
pub struct Context {
    /// API client.
    pub client: kube::Client,
    /// Controller name (`source-controller`).
    pub controller: String,
    /// Event recorder.
    pub events: EventRecorder,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// `--interval-jitter-percentage`.
    pub jitter_percentage: u8,
}

/// A controller's per-kind logic.
pub trait Reconciler<K>: Send + Sync + 'static {
    /// Brings the object to its desired state and writes its status. Returns when to come
    /// back (normally the object's interval; the scaffold adds jitter).
    fn reconcile(
        &self,
        obj: Arc<K>,
        ctx: Arc<Context>,
    ) -> impl Future<Output = Result<Duration, ReconcileError>> + Send;

    /// Cleans up before the finalizer is removed (e.g. deletes stored artifacts).
    fn finalize(
        &self,
        obj: Arc<K>,
        ctx: Arc<Context>,
    ) -> impl Future<Output = Result<(), ReconcileError>> + Send;

    /// The object's `spec.interval`.
    fn interval(&self, obj: &K) -> Duration;

    /// The object's `spec.suspend`.
    fn suspended(&self, obj: &K) -> bool;
}

fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `interval` moved by a uniformly random amount within ± `percentage` % (`unit` in [0, 1)).
pub fn jittered(interval: Duration, percentage: u8, unit: f64) -> Duration {
    if percentage == 0 {
        return interval;
    }
    let p = f64::from(percentage.min(100)) / 100.0;
    let factor = 1.0 + p * (2.0 * unit - 1.0);
    interval.mul_f64(factor.max(0.0))
}

/// Backoff after `failures` consecutive failures: 750 ms doubling, capped at `cap`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let d = Duration::from_millis(750).saturating_mul(1u32 << exp);
    d.min(cap.max(Duration::from_secs(1)))
}

/// The watch predicate: generation, the reconcile-request annotation and deletion.
pub fn trigger_hash<K: Resource>(obj: &K) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.meta().generation.hash(&mut h);
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION))
        .hash(&mut h);
    obj.meta().deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

struct State<K: Resource, R> {
    ctx: Arc<Context>,
    reconciler: Arc<R>,
    failures: Mutex<HashMap<ObjectRef<K>, u32>>,
}

async fn patch_finalizers<K>(
    client: &kube::Client,
    obj: &K,
    finalizers: Vec<String>,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": obj.resource_version(),
        }
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| ReconcileError::new(format!("failed to update finalizers: {e}")))
}

async fn reconcile_one<K, R>(obj: Arc<K>, st: Arc<State<K, R>>) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static,
    R: Reconciler<K>,
{
    let ctx = Arc::clone(&st.ctx);
    let kind = K::kind(&()).into_owned();
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);

    if obj.meta().deletion_timestamp.is_some() {
        if has_finalizer {
            st.reconciler
                .finalize(Arc::clone(&obj), Arc::clone(&ctx))
                .await?;
            let rest: Vec<String> = obj
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            patch_finalizers(&ctx.client, obj.as_ref(), rest).await?;
        }
        ctx.metrics.remove_object(&kind, &ns, &name);
        tracing::info!(%kind, namespace = %ns, %name, "finalized");
        return Ok(Action::await_change());
    }

    if st.reconciler.suspended(&obj) {
        tracing::info!(%kind, namespace = %ns, %name, "Reconciliation is suspended for this object");
        return Ok(Action::await_change());
    }

    if !has_finalizer {
        let mut fins = obj.finalizers().to_vec();
        fins.push(FINALIZER.to_string());
        patch_finalizers(&ctx.client, obj.as_ref(), fins).await?;
    }

    let start = Instant::now();
    let res = st
        .reconciler
        .reconcile(Arc::clone(&obj), Arc::clone(&ctx))
        .await;
    ctx.metrics
        .observe_reconcile(&kind, &ns, &name, start.elapsed());
    let key = ObjectRef::from_obj(obj.as_ref());
    match res {
        Ok(after) => {
            st.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            Ok(Action::requeue(jittered(
                after,
                ctx.jitter_percentage,
                random_unit(),
            )))
        }
        Err(e) => Err(e),
    }
}

fn error_policy<K, R>(obj: Arc<K>, err: &ReconcileError, st: Arc<State<K, R>>) -> Action
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    R: Reconciler<K>,
{
    let key = ObjectRef::from_obj(obj.as_ref());
    let n = {
        let mut f = st.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key).or_insert(0);
        *n += 1;
        *n
    };
    let after = backoff(n, st.reconciler.interval(&obj));
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        error = %err,
        retry_in = ?after,
        "reconciliation failed"
    );
    Action::requeue(after)
}

/// Runs the controller for kind `K` until `shutdown`.
pub async fn run<K, R>(
    ctx: Arc<Context>,
    reconciler: Arc<R>,
    args: &RuntimeArgs,
    default_concurrency: u16,
    shutdown: Shutdown,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static,
    R: Reconciler<K>,
{
    run_with(ctx, reconciler, args, default_concurrency, shutdown, |c| c).await;
}

/// Like [`run`], with a hook to add triggers to the kube-runtime `Controller` before it
/// starts — e.g. `.watches(...)` on the sources a kind consumes, so that a new artifact
/// reconciles its consumers at once instead of at their next interval.
pub async fn run_with<K, R, F>(
    ctx: Arc<Context>,
    reconciler: Arc<R>,
    args: &RuntimeArgs,
    default_concurrency: u16,
    shutdown: Shutdown,
    customize: F,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static,
    R: Reconciler<K>,
    F: FnOnce(Controller<K>) -> Controller<K>,
{
    let api: Api<K> = match args.watch_namespace() {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let mut wc = watcher::Config::default();
    if !args.watch_label_selector.is_empty() {
        wc = wc.labels(&args.watch_label_selector);
    }
    let (reader, writer) = reflector::store();
    let stream = watcher(api, wc)
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(trigger_hash::<K>),
            Default::default(),
        );
    let state = Arc::new(State {
        ctx,
        reconciler,
        failures: Mutex::default(),
    });
    let concurrency = args.concurrent_or(default_concurrency);
    customize(Controller::for_stream(stream, reader))
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown.wait())
        .run(reconcile_one::<K, R>, error_policy::<K, R>, state)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_bounds() {
        let i = Duration::from_secs(100);
        assert_eq!(jittered(i, 0, 0.9), i);
        assert_eq!(jittered(i, 5, 0.0), Duration::from_secs(95));
        assert_eq!(jittered(i, 5, 0.5), Duration::from_secs(100));
        let hi = jittered(i, 5, 0.999_999);
        assert!(hi <= Duration::from_secs(105) && hi > Duration::from_secs(104));
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(1, cap), Duration::from_millis(750));
        assert_eq!(backoff(2, cap), Duration::from_millis(1500));
        assert_eq!(backoff(4, cap), Duration::from_secs(6));
        assert_eq!(backoff(30, cap), cap);
    }
}
