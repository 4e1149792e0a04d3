//! Names Flux fixes by convention: finalizer, labels, annotations, field managers.
//! Each value is what Flux itself writes, so that objects, `kubectl` selectors and the
//! real `flux` CLI see the same strings whichever implementation wrote them.

/// Finalizer every Flux controller adds to the objects it reconciles.
pub const FINALIZER: &str = "finalizers.fluxcd.io";

/// Annotation whose change requests an immediate reconcile (`flux reconcile`).
pub const RECONCILE_REQUEST_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";
/// HelmRelease: force a one-off upgrade; honoured only when equal to `requestedAt`.
pub const FORCE_REQUEST_ANNOTATION: &str = "reconcile.fluxcd.io/forceAt";
/// HelmRelease: reset the failure counters; honoured only when equal to `requestedAt`.
pub const RESET_REQUEST_ANNOTATION: &str = "reconcile.fluxcd.io/resetAt";
/// Label on Secrets/ConfigMaps that makes their consumers reconcile when they change.
pub const WATCH_LABEL: &str = "reconcile.fluxcd.io/watch";
/// Value of [`WATCH_LABEL`] that enables the watch.
pub const WATCH_LABEL_ENABLED: &str = "Enabled";
/// Sharding label read by `--watch-label-selector` in Flux's sharding guide.
pub const SHARDING_KEY_LABEL: &str = "sharding.fluxcd.io/key";

/// Kustomization owner labels set on every applied object.
pub const KUSTOMIZE_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
/// See [`KUSTOMIZE_NAME_LABEL`].
pub const KUSTOMIZE_NAMESPACE_LABEL: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// HelmRelease owner labels set on every rendered object.
pub const HELM_NAME_LABEL: &str = "helm.toolkit.fluxcd.io/name";
/// See [`HELM_NAME_LABEL`].
pub const HELM_NAMESPACE_LABEL: &str = "helm.toolkit.fluxcd.io/namespace";

/// Per-object apply policy: `Override` (default), `Merge`, `IfNotPresent`, `Ignore`.
pub const SSA_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/ssa";
/// Per-object `Enabled`: recreate the object when an immutable field changes.
pub const FORCE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/force";
/// Per-object `Disabled`: never garbage-collect the object.
pub const PRUNE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/prune";
/// Per-object `disabled`: neither apply nor prune (label or annotation).
pub const RECONCILE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/reconcile";
/// Per-object `disabled`: skip post-build variable substitution.
pub const SUBSTITUTE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";
/// The "off" value shared by the per-object annotations above.
pub const DISABLED_VALUE: &str = "disabled";
/// The "on" value of [`FORCE_ANNOTATION`].
pub const ENABLED_VALUE: &str = "Enabled";

/// Prefix of object annotations copied into event metadata.
pub const EVENT_ANNOTATION_PREFIX: &str = "event.toolkit.fluxcd.io/";

/// Controller names: field manager for applied objects and `reportingController` of events.
pub const SOURCE_CONTROLLER: &str = "source-controller";
/// See [`SOURCE_CONTROLLER`].
pub const KUSTOMIZE_CONTROLLER: &str = "kustomize-controller";
/// See [`SOURCE_CONTROLLER`].
pub const HELM_CONTROLLER: &str = "helm-controller";
/// See [`SOURCE_CONTROLLER`].
pub const NOTIFICATION_CONTROLLER: &str = "notification-controller";

/// The field manager a controller uses for its status patches: `gotk-<controller>`.
pub fn status_field_manager(controller: &str) -> String {
    format!("gotk-{controller}")
}

/// Labels Flux tooling uses to find its own components and CRDs.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Value of [`PART_OF_LABEL`]; `flux check` selects on `app.kubernetes.io/part-of=flux`.
pub const PART_OF_VALUE: &str = "flux";
/// `flux version` and `flux check` read this label on the GitRepository CRD.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// Which controller a CRD or Deployment belongs to.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The instance label Flux's install sets (`flux-system`).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The Flux distribution whose API ferroflux serves. Flux's tools compare versions with
/// this value, so it names the Flux release we are compatible with, not our own version.
pub const FLUX_DISTRIBUTION_VERSION: &str = "v2.9.4";
/// The namespace Flux installs itself into.
pub const DEFAULT_NAMESPACE: &str = "flux-system";
