//! The Kustomization reconciler, in Flux's order: source → dependencies → fetch → build →
//! apply → inventory → prune → health → status. Each step that fails writes a `Ready=False`
//! condition with Flux's reason and a message naming the object, and leaves everything that
//! was applied before as it is: nothing is pruned after a failed build or apply.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroflux_api::constants::{
    KUSTOMIZE_NAME_LABEL, KUSTOMIZE_NAMESPACE_LABEL, RECONCILE_REQUEST_ANNOTATION,
};
use ferroflux_api::kustomization::{Kustomization, KustomizationStatus};
use ferroflux_api::meta::{Artifact, condition_types as ct, reasons};
use ferroflux_runtime::conditions::{self, finalize_status};
use ferroflux_runtime::{Context, ReconcileError, Reconciler, Severity};
use ferroflux_ssa::{
    Action, ApplyOptions, ChangeSet, ObjectRef, PruneOptions, ResourceManager, WaitOptions,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use sha2::{Digest, Sha256};

use crate::build::build;
use crate::cache::ArtifactCache;
use crate::dependency;
use crate::health::{self, CelJudge};
use crate::history;
use ferroflux_cel::HealthCheckReader;

/// Settings of the reconciler (flags of the binary).
#[derive(Clone, Debug)]
pub struct Options {
    /// `--requeue-dependency`: how soon to retry when a dependency or source is not ready.
    pub requeue_dependency: Duration,
    /// `--no-cross-namespace-refs`.
    pub no_cross_namespace_refs: bool,
    /// `--default-service-account`: impersonated when the object names none.
    pub default_service_account: Option<String>,
    /// `--concurrent-ssa`.
    pub concurrent_ssa: usize,
    /// `--override-manager`: more field managers whose fields are taken over before apply.
    pub override_managers: Vec<String>,
    /// Poll interval of health checks (Flux: 5s).
    pub health_check_interval: Duration,
    /// Feature gate `AdditiveCELDependencyCheck`: `readyExpr` is checked in addition to
    /// the built-in readiness check instead of replacing it.
    pub additive_cel_dependency_check: bool,
    /// Feature gate `CancelHealthCheckOnNewRevision`: a new reconcile request or source
    /// revision cancels running health checks (`HealthCheckCanceled`).
    pub cancel_health_check_on_new_revision: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            requeue_dependency: Duration::from_secs(30),
            no_cross_namespace_refs: false,
            default_service_account: None,
            concurrent_ssa: 4,
            override_managers: Vec::new(),
            health_check_interval: Duration::from_secs(5),
            additive_cel_dependency_check: false,
            cancel_health_check_on_new_revision: false,
        }
    }
}

/// Reconciles Kustomizations.
pub struct KustomizationReconciler {
    /// Settings.
    pub options: Options,
    /// Extracted artifacts by digest.
    pub cache: ArtifactCache,
    /// The controller's own client configuration, the base of impersonating clients.
    pub base_config: kube::Config,
}

/// Flux's prefix of configuration errors that stall the object (`TerminalErrorMessage`).
const TERMINAL_ERROR_MESSAGE: &str = "Reconciliation failed terminally due to configuration error";

/// Parses `spec.healthCheckExprs` (Flux does this before anything else).
fn health_check_reader(obj: &Kustomization) -> Result<HealthCheckReader, String> {
    let checks: Vec<ferroflux_cel::CustomHealthCheck> = obj
        .spec
        .health_check_exprs
        .iter()
        .flatten()
        .map(|c| ferroflux_cel::CustomHealthCheck {
            api_version: c.api_version.clone(),
            kind: c.kind.clone(),
            current: c.current.clone(),
            in_progress: c.in_progress.clone(),
            failed: c.failed.clone(),
        })
        .collect();
    HealthCheckReader::new(&checks)
}

/// How a reconcile ended, before status is written.
struct Failure {
    reason: &'static str,
    message: String,
    /// When to come back.
    requeue: Duration,
    /// Terminal for this generation (Stalled=True).
    stalled: bool,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>, requeue: Duration) -> Self {
        Self {
            reason,
            message: message.into(),
            requeue,
            stalled: false,
        }
    }
}

/// The source kinds a Kustomization can read, as API resources.
fn source_resource(kind: &str) -> ApiResource {
    use ferroflux_api::source::{Bucket, ExternalArtifact, GitRepository, OCIRepository};
    match kind {
        "OCIRepository" => ApiResource::erase::<OCIRepository>(&()),
        "Bucket" => ApiResource::erase::<Bucket>(&()),
        "ExternalArtifact" => ApiResource::erase::<ExternalArtifact>(&()),
        _ => ApiResource::erase::<GitRepository>(&()),
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// The build output digest recorded in `status.history`.
fn objects_digest(objects: &[serde_yaml::Value]) -> String {
    let mut hasher = Sha256::new();
    for obj in objects {
        hasher.update(serde_json::to_vec(obj).unwrap_or_default());
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Decrypts SOPS-encrypted objects in place, as Flux does after the build (without the MAC
/// check: kustomize legitimately changes the plaintext it covers).
fn decrypt_objects(
    objects: &mut [serde_yaml::Value],
    identities: &[ferroflux_sops::Identity],
) -> Result<(), String> {
    for object in objects.iter_mut() {
        if ferroflux_sops::is_decryption_disabled(object) {
            continue;
        }
        let secret = object.get("kind").and_then(|k| k.as_str()) == Some("Secret");
        if ferroflux_sops::is_encrypted(object) || secret {
            *object = ferroflux_sops::decrypt_object_with(
                object,
                identities,
                ferroflux_sops::DecryptOptions::FLUX,
            )
            .map_err(|e| {
                format!(
                    "{}: decryption failed: {e}",
                    crate::postbuild::describe(object)
                )
            })?;
        }
    }
    Ok(())
}

/// The apply engine acting for this Kustomization: its owner labels on every object.
fn manager_for(obj: &Kustomization, client: kube::Client, controller: &str) -> ResourceManager {
    let owner = BTreeMap::from([
        (KUSTOMIZE_NAME_LABEL.to_string(), obj.name_any()),
        (
            KUSTOMIZE_NAMESPACE_LABEL.to_string(),
            obj.namespace().unwrap_or_default(),
        ),
    ]);
    ResourceManager::new(client, controller.to_string(), owner)
}

/// Deletes `objects` (waiting for them with `deletionPolicy: WaitForTermination`), records an
/// event listing what was deleted, and returns the objects that could not be deleted.
async fn delete_objects(
    obj: &Kustomization,
    ctx: &Context,
    manager: &ResourceManager,
    objects: &[ObjectRef],
    revision: Option<&str>,
) -> Vec<(ObjectRef, ferroflux_ssa::Error)> {
    let wait = (obj.spec.deletion_policy()
        == ferroflux_api::kustomization::DeletionPolicy::WaitForTermination)
        .then(|| obj.spec.timeout());
    let (changes, failed) = manager
        .delete_all(
            objects,
            &PruneOptions {
                wait_for_termination: wait,
            },
        )
        .await;
    let deleted: Vec<String> = changes
        .entries
        .iter()
        .filter(|e| e.action == Action::Deleted)
        .map(|e| format!("{} deleted", e.object))
        .collect();
    if !deleted.is_empty() {
        let metadata = revision
            .map(|r| BTreeMap::from([("revision".to_string(), r.to_string())]))
            .unwrap_or_default();
        ctx.events
            .event(
                obj,
                Severity::Info,
                reasons::PROGRESSING,
                &deleted.join("\n"),
                metadata,
            )
            .await;
    }
    failed
}

impl KustomizationReconciler {
    /// A client acting as the object's service account (or the default one), or as the
    /// controller itself; for `spec.kubeConfig`, a client of the remote cluster.
    async fn target_client(
        &self,
        obj: &Kustomization,
        ctx: &Context,
    ) -> Result<kube::Client, Failure> {
        let ns = obj.namespace().unwrap_or_default();
        if let Some(kube_config) = &obj.spec.kube_config {
            let Some(secret_ref) = &kube_config.secret_ref else {
                return Err(Failure {
                    stalled: true,
                    ..Failure::new(
                        reasons::RECONCILIATION_FAILED,
                        "spec.kubeConfig.configMapRef (cloud provider kubeconfigs) is not supported yet; use spec.kubeConfig.secretRef",
                        obj.spec.retry_interval(),
                    )
                });
            };
            let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get(&secret_ref.name)
                .await
                .map_err(|e| {
                    Failure::new(
                        reasons::RECONCILIATION_FAILED,
                        format!(
                            "unable to read the kubeconfig Secret '{ns}/{}': {e}",
                            secret_ref.name
                        ),
                        obj.spec.retry_interval(),
                    )
                })?;
            let data = secret.data.unwrap_or_default();
            let keys = match &secret_ref.key {
                Some(k) => vec![k.clone()],
                None => vec!["value".to_string(), "value.yaml".to_string()],
            };
            let Some(bytes) = keys.iter().find_map(|k| data.get(k)) else {
                return Err(Failure::new(
                    reasons::RECONCILIATION_FAILED,
                    format!(
                        "Secret '{ns}/{}' has none of the keys {keys:?} holding a kubeconfig",
                        secret_ref.name
                    ),
                    obj.spec.retry_interval(),
                ));
            };
            let text = String::from_utf8_lossy(&bytes.0).into_owned();
            let parsed = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| {
                Failure::new(
                    reasons::RECONCILIATION_FAILED,
                    format!(
                        "invalid kubeconfig in Secret '{ns}/{}': {e}",
                        secret_ref.name
                    ),
                    obj.spec.retry_interval(),
                )
            })?;
            let config = kube::Config::from_custom_kubeconfig(parsed, &Default::default())
                .await
                .map_err(|e| {
                    Failure::new(
                        reasons::RECONCILIATION_FAILED,
                        format!(
                            "invalid kubeconfig in Secret '{ns}/{}': {e}",
                            secret_ref.name
                        ),
                        obj.spec.retry_interval(),
                    )
                })?;
            return kube::Client::try_from(config).map_err(|e| {
                Failure::new(
                    reasons::RECONCILIATION_FAILED,
                    e.to_string(),
                    obj.spec.retry_interval(),
                )
            });
        }
        let service_account = obj
            .spec
            .service_account_name
            .clone()
            .or_else(|| self.options.default_service_account.clone());
        match service_account {
            None => Ok(ctx.client.clone()),
            Some(sa) => {
                let mut config = self.base_config.clone();
                config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{sa}"));
                kube::Client::try_from(config).map_err(|e| {
                    Failure::new(
                        reasons::RECONCILIATION_FAILED,
                        e.to_string(),
                        obj.spec.retry_interval(),
                    )
                })
            }
        }
    }

    async fn source_artifact(
        &self,
        obj: &Kustomization,
        ctx: &Context,
    ) -> Result<(String, Artifact), Failure> {
        let ns = obj.namespace().unwrap_or_default();
        let source = &obj.spec.source_ref;
        let source_ns = source.namespace.clone().unwrap_or_else(|| ns.clone());
        let kind = source.kind.as_str();
        let id = format!("{kind}/{source_ns}/{}", source.name);
        if self.options.no_cross_namespace_refs && source_ns != ns {
            return Err(Failure {
                stalled: true,
                ..Failure::new(
                    reasons::ACCESS_DENIED,
                    format!("can't access '{id}', cross-namespace references have been blocked"),
                    obj.spec.retry_interval(),
                )
            });
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &source_ns, &source_resource(kind));
        let found = api.get_opt(&source.name).await.map_err(|e| {
            Failure::new(
                reasons::ARTIFACT_FAILED,
                format!("unable to read source '{id}': {e}"),
                self.options.requeue_dependency,
            )
        })?;
        let Some(found) = found else {
            return Err(Failure::new(
                reasons::ARTIFACT_FAILED,
                format!("Source '{id}' not found"),
                self.options.requeue_dependency,
            ));
        };
        let artifact = found
            .data
            .get("status")
            .and_then(|s| s.get("artifact"))
            .cloned()
            .and_then(|a| serde_json::from_value::<Artifact>(a).ok());
        match artifact {
            Some(artifact) => Ok((id, artifact)),
            None => Err(Failure::new(
                reasons::ARTIFACT_FAILED,
                format!("Source '{id}' is not ready, artifact not found"),
                self.options.requeue_dependency,
            )),
        }
    }

    async fn check_dependencies(
        &self,
        obj: &Kustomization,
        ctx: &Context,
        revision: &str,
    ) -> Result<(), Failure> {
        let ns = obj.namespace().unwrap_or_default();
        // `self` of readyExpr: this Kustomization as read at the start of the reconcile.
        let mut self_json: Option<serde_json::Value> = None;
        for dep in obj.spec.depends_on.iter().flatten() {
            let dep_ns = dep.namespace.clone().unwrap_or_else(|| ns.clone());
            let id = format!("{dep_ns}/{}", dep.name);
            let found = Api::<Kustomization>::namespaced(ctx.client.clone(), &dep_ns)
                .get_opt(&dep.name)
                .await
                .map_err(|e| {
                    Failure::new(
                        reasons::DEPENDENCY_NOT_READY,
                        format!("unable to read dependency '{id}': {e}"),
                        self.options.requeue_dependency,
                    )
                })?;
            let not_ready = |message: String| {
                Failure::new(
                    reasons::DEPENDENCY_NOT_READY,
                    message,
                    self.options.requeue_dependency,
                )
            };
            let ready_expr = dep.ready_expr.as_deref().filter(|e| !e.is_empty());
            if let Some(source) = ready_expr {
                let Some(found) = found.as_ref() else {
                    return Err(not_ready(
                        dependency::NotReady::NotFound(id.clone()).to_string(),
                    ));
                };
                let expression = ferroflux_cel::Expression::compile_bool(source, &["self", "dep"])
                    .map_err(|e| Failure {
                        stalled: true,
                        ..Failure::new(
                            reasons::INVALID_CEL_EXPRESSION,
                            format!(
                                "{TERMINAL_ERROR_MESSAGE}: failed to evaluate dependency {}: {e}",
                                dep.name
                            ),
                            obj.spec.interval(),
                        )
                    })?;
                let me = match &self_json {
                    Some(v) => v,
                    None => self_json.insert(serde_json::to_value(obj).map_err(|e| {
                        not_ready(format!(
                            "failed to convert Kustomization to unstructured: {e}"
                        ))
                    })?),
                };
                let dep_json = serde_json::to_value(found)
                    .map_err(|e| not_ready(format!("failed to convert dep object to map: {e}")))?;
                let ready = expression
                    .evaluate_bool([("self", me), ("dep", &dep_json)])
                    .map_err(not_ready)?;
                if !ready {
                    return Err(not_ready(format!(
                        "dependency '{id}' is not ready according to readyExpr eval"
                    )));
                }
                // The expression replaces the built-in check unless the gate adds it.
                if !self.options.additive_cel_dependency_check {
                    continue;
                }
            }
            let same_source = found.as_ref().is_some_and(|d| {
                d.spec.source_ref.kind == obj.spec.source_ref.kind
                    && d.spec.source_ref.name == obj.spec.source_ref.name
                    && d.spec
                        .source_ref
                        .namespace
                        .clone()
                        .unwrap_or_else(|| dep_ns.clone())
                        == obj
                            .spec
                            .source_ref
                            .namespace
                            .clone()
                            .unwrap_or_else(|| ns.clone())
            });
            dependency::check(&id, found.as_ref(), same_source.then_some(revision)).map_err(
                |e| {
                    Failure::new(
                        reasons::DEPENDENCY_NOT_READY,
                        e.to_string(),
                        self.options.requeue_dependency,
                    )
                },
            )?;
        }
        Ok(())
    }

    /// The age identities of `spec.decryption.secretRef`: every `*.agekey` entry.
    async fn decryption_identities(
        &self,
        obj: &Kustomization,
        ctx: &Context,
    ) -> Result<Vec<ferroflux_sops::Identity>, Failure> {
        let ns = obj.namespace().unwrap_or_default();
        let retry = obj.spec.retry_interval();
        let Some(secret_ref) = obj
            .spec
            .decryption
            .as_ref()
            .and_then(|d| d.secret_ref.as_ref())
        else {
            return Err(Failure::new(
                reasons::BUILD_FAILED,
                "spec.decryption.secretRef is required: name a Secret holding the age keys (`<name>.agekey` entries)",
                retry,
            ));
        };
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get(&secret_ref.name)
            .await
            .map_err(|e| {
                Failure::new(
                    reasons::BUILD_FAILED,
                    format!(
                        "cannot read the decryption Secret '{ns}/{}': {e}",
                        secret_ref.name
                    ),
                    retry,
                )
            })?;
        let mut identities = Vec::new();
        for (key, value) in secret.data.unwrap_or_default() {
            if key.ends_with(".agekey") {
                let text = String::from_utf8_lossy(&value.0).into_owned();
                let parsed = ferroflux_sops::parse_identities(&text).map_err(|e| {
                    Failure::new(
                        reasons::BUILD_FAILED,
                        format!(
                            "decryption Secret '{ns}/{}' key '{key}': {e}",
                            secret_ref.name
                        ),
                        retry,
                    )
                })?;
                identities.extend(parsed);
            }
        }
        if identities.is_empty() {
            return Err(Failure::new(
                reasons::BUILD_FAILED,
                format!(
                    "decryption Secret '{ns}/{}' has no '*.agekey' entry (only age keys are supported)",
                    secret_ref.name
                ),
                retry,
            ));
        }
        Ok(identities)
    }

    async fn load_variables(
        &self,
        obj: &Kustomization,
        ctx: &Context,
    ) -> Result<BTreeMap<String, String>, Failure> {
        let ns = obj.namespace().unwrap_or_default();
        let mut vars = BTreeMap::new();
        let Some(post) = &obj.spec.post_build else {
            return Ok(vars);
        };
        for reference in post.substitute_from.iter().flatten() {
            let optional = reference.optional.unwrap_or(false);
            let fail = |what: &str, e: String| {
                Failure::new(
                    reasons::BUILD_FAILED,
                    format!("substitute from '{what}/{}' error: {e}", reference.name),
                    obj.spec.retry_interval(),
                )
            };
            match reference.kind {
                ferroflux_api::kustomization::ValuesSourceKind::ConfigMap => {
                    match Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
                        .get_opt(&reference.name)
                        .await
                    {
                        Ok(Some(cm)) => vars.extend(cm.data.unwrap_or_default()),
                        Ok(None) if optional => {}
                        Ok(None) => {
                            return Err(fail(
                                "ConfigMap",
                                format!("configmaps \"{}\" not found", reference.name),
                            ));
                        }
                        Err(e) => return Err(fail("ConfigMap", e.to_string())),
                    }
                }
                ferroflux_api::kustomization::ValuesSourceKind::Secret => {
                    match Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                        .get_opt(&reference.name)
                        .await
                    {
                        Ok(Some(secret)) => {
                            for (k, v) in secret.data.unwrap_or_default() {
                                vars.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                            }
                        }
                        Ok(None) if optional => {}
                        Ok(None) => {
                            return Err(fail(
                                "Secret",
                                format!("secrets \"{}\" not found", reference.name),
                            ));
                        }
                        Err(e) => return Err(fail("Secret", e.to_string())),
                    }
                }
            }
        }
        Ok(vars)
    }

    /// Everything between "source found" and "applied, pruned and healthy".
    async fn apply_revision(
        &self,
        obj: &Kustomization,
        ctx: &Context,
        artifact: &Artifact,
        status: &mut KustomizationStatus,
    ) -> Result<(ChangeSet, String, ResourceManager), Failure> {
        let retry = obj.spec.retry_interval();
        let revision = artifact.revision.clone();
        let fetched = self
            .cache
            .get(&artifact.url, &artifact.digest)
            .await
            .map_err(|e| {
                let requeue = if matches!(e, ferroflux_artifact::Error::NotFound { .. }) {
                    self.options.requeue_dependency
                } else {
                    retry
                };
                Failure::new(
                    reasons::ARTIFACT_FAILED,
                    format!("failed to fetch the artifact of revision '{revision}': {e}"),
                    requeue,
                )
            })?;
        status.last_attempted_revision = Some(revision.clone());

        let vars = self.load_variables(obj, ctx).await?;
        let spec = obj.spec.clone();
        let root = fetched.path().to_path_buf();
        let built = tokio::task::spawn_blocking(move || build(&root, &spec, &vars))
            .await
            .map_err(|e| {
                Failure::new(
                    reasons::BUILD_FAILED,
                    format!("build task failed: {e}"),
                    retry,
                )
            })?;
        let mut objects = built.map_err(|e| Failure::new(e.reason(), e.to_string(), retry))?;
        if obj.spec.decryption.is_some() {
            let identities = self.decryption_identities(obj, ctx).await?;
            decrypt_objects(&mut objects, &identities)
                .map_err(|message| Failure::new(reasons::BUILD_FAILED, message, retry))?;
        }
        let digest = objects_digest(&objects);

        let mut manifests = Vec::with_capacity(objects.len());
        for object in &objects {
            let value = serde_json::to_value(object)
                .map_err(|e| Failure::new(reasons::BUILD_FAILED, e.to_string(), retry))?;
            let dynamic: DynamicObject = serde_json::from_value(value).map_err(|e| {
                Failure::new(
                    reasons::BUILD_FAILED,
                    format!(
                        "{}: not a Kubernetes object: {e}",
                        crate::postbuild::describe(object)
                    ),
                    retry,
                )
            })?;
            manifests.push(dynamic);
        }

        let client = self.target_client(obj, ctx).await?;
        let manager = manager_for(obj, client, &ctx.controller);
        let old_inventory = status.inventory.clone().unwrap_or_default();

        // Safety: a source that suddenly builds to nothing must not wipe the cluster.
        if manifests.is_empty() && obj.spec.prune && !old_inventory.entries.is_empty() {
            return Err(Failure::new(
                reasons::PRUNE_FAILED,
                format!(
                    "revision '{revision}' builds to no objects while {} are applied; refusing to prune them all. If this is intended, delete the Kustomization or set spec.prune to false",
                    old_inventory.entries.len()
                ),
                retry,
            ));
        }

        let apply_options = ApplyOptions {
            force: obj.spec.force.unwrap_or(false),
            concurrency: self.options.concurrent_ssa,
            cleanup: Some(
                ferroflux_ssa::cleanup::Cleanup::flux_defaults(&ctx.controller)
                    .with_managers(&self.options.override_managers),
            ),
            ..Default::default()
        };
        let changes = manager
            .apply_all_staged(manifests, &apply_options)
            .await
            .map_err(|e| Failure::new(reasons::RECONCILIATION_FAILED, e.to_string(), retry))?;
        let changed = changes.changes();
        if !changed.is_empty() {
            ctx.events
                .event(
                    obj,
                    Severity::Info,
                    reasons::PROGRESSING,
                    &changed.join("\n"),
                    BTreeMap::from([("revision".to_string(), revision.clone())]),
                )
                .await;
        }

        let applied: Vec<ObjectRef> = changes.entries.iter().map(|e| e.object.clone()).collect();
        let mut new_inventory = ferroflux_ssa::inventory_of(&applied);
        if obj.spec.prune {
            let stale = ferroflux_ssa::stale_objects(&old_inventory, &new_inventory);
            if !stale.is_empty() {
                let failed = delete_objects(obj, ctx, &manager, &stale, Some(&revision)).await;
                if !failed.is_empty() {
                    // Objects that could not be deleted stay in the inventory.
                    let kept: Vec<ObjectRef> = applied
                        .iter()
                        .cloned()
                        .chain(failed.iter().map(|(o, _)| o.clone()))
                        .collect();
                    new_inventory = ferroflux_ssa::inventory_of(&kept);
                    status.inventory = Some(new_inventory);
                    let message = failed
                        .iter()
                        .map(|(_, e)| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(Failure::new(
                        reasons::PRUNE_FAILED,
                        format!("prune failed: {message}"),
                        retry,
                    ));
                }
            }
        }
        status.inventory = Some(new_inventory);
        Ok((changes, digest, manager))
    }

    /// Resolves when a new reconcile of `obj` has been asked for while it is being
    /// reconciled: its `requestedAt` annotation or generation changed
    /// (`Kustomization/<ns>/<name>`), or its source has an artifact other than `revision`
    /// (`<Kind>/<ns>/<name>`). Polled at the health check interval.
    async fn new_reconcile_request(
        &self,
        obj: &Kustomization,
        ctx: &Context,
        revision: &str,
    ) -> String {
        let ns = obj.namespace().unwrap_or_default();
        let source = &obj.spec.source_ref;
        let source_ns = source.namespace.clone().unwrap_or_else(|| ns.clone());
        let kind = source.kind.as_str();
        let sources: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &source_ns, &source_resource(kind));
        let kustomizations = Api::<Kustomization>::namespaced(ctx.client.clone(), &ns);
        let requested = obj.annotations().get(RECONCILE_REQUEST_ANNOTATION).cloned();
        loop {
            tokio::time::sleep(self.options.health_check_interval).await;
            if let Ok(Some(now)) = kustomizations.get_opt(&obj.name_any()).await
                && (now.metadata.generation != obj.metadata.generation
                    || now.annotations().get(RECONCILE_REQUEST_ANNOTATION) != requested.as_ref())
            {
                return format!("Kustomization/{ns}/{}", obj.name_any());
            }
            if let Ok(Some(found)) = sources.get_opt(&source.name).await
                && let Some(latest) = found
                    .data
                    .pointer("/status/artifact/revision")
                    .and_then(|r| r.as_str())
                && latest != revision
            {
                return format!("{kind}/{source_ns}/{}", source.name);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_health(
        &self,
        obj: &Kustomization,
        ctx: &Context,
        manager: &ResourceManager,
        exprs: &HealthCheckReader,
        changes: &ChangeSet,
        revision: &str,
        status: &mut KustomizationStatus,
    ) -> Result<(), Failure> {
        let generation = obj.metadata.generation;
        let conds = status.conditions.get_or_insert_with(Vec::new);
        let self_ref = |o: &ObjectRef| {
            o.kind == "Kustomization"
                && o.group == "kustomize.toolkit.fluxcd.io"
                && o.name == obj.name_any()
                && o.namespace == obj.namespace().unwrap_or_default()
        };
        let targets: Vec<ObjectRef> = if obj.spec.wait.unwrap_or(false) {
            changes
                .applied()
                .into_iter()
                .filter(|o| !self_ref(o))
                .collect()
        } else {
            obj.spec
                .health_checks
                .iter()
                .flatten()
                .map(|h| {
                    let (group, version) =
                        match h.api_version.as_deref().unwrap_or("v1").split_once('/') {
                            Some((g, v)) => (g.to_string(), v.to_string()),
                            None => (
                                String::new(),
                                h.api_version.clone().unwrap_or_else(|| "v1".into()),
                            ),
                        };
                    ObjectRef {
                        group,
                        version,
                        kind: h.kind.clone(),
                        namespace: h
                            .namespace
                            .clone()
                            .unwrap_or_else(|| obj.namespace().unwrap_or_default()),
                        name: h.name.clone(),
                    }
                })
                .collect()
        };
        if targets.is_empty() {
            conditions::remove(conds, ct::HEALTHY);
            return Ok(());
        }
        let timeout = obj.spec.timeout();
        let message = format!(
            "Running health checks for revision {revision} with a timeout of {}",
            ferroflux_api::duration::format(timeout)
        );
        conditions::mark_reconciling(conds, reasons::PROGRESSING, &message, generation, now());
        conditions::mark_unknown(
            conds,
            ct::HEALTHY,
            reasons::PROGRESSING,
            &message,
            generation,
            now(),
        );
        // Tell users before the (possibly long) wait, as Flux does.
        let _ = ferroflux_runtime::status::patch_status(&ctx.client, obj, &ctx.controller, status)
            .await;
        let conds = status.conditions.get_or_insert_with(Vec::new);
        let started = Instant::now();
        let wait = WaitOptions {
            interval: self.options.health_check_interval,
            timeout,
            fail_fast: true,
        };
        // Flux's Job reader precedes the CEL reader unless the poller is built for an
        // impersonated or remote client.
        let impersonating = obj.spec.kube_config.is_some()
            || obj.spec.service_account_name.is_some()
            || self.options.default_service_account.is_some();
        let judge = CelJudge {
            reader: exprs,
            cel_judges_jobs: impersonating,
        };
        let waited = health::wait(manager, &judge, &targets, &wait);
        let result = if self.options.cancel_health_check_on_new_revision {
            tokio::select! {
                result = waited => result,
                trigger = self.new_reconcile_request(obj, ctx, revision) => {
                    return Err(Failure::new(
                        reasons::HEALTH_CHECK_CANCELED,
                        format!("New reconciliation triggered by {trigger}"),
                        Duration::ZERO,
                    ));
                }
            }
        } else {
            waited.await
        };
        match result {
            Ok(()) => {
                let took = ferroflux_api::duration::format(Duration::from_millis(
                    started.elapsed().as_millis() as u64,
                ));
                conditions::mark_true(
                    conds,
                    ct::HEALTHY,
                    reasons::SUCCEEDED,
                    &format!("Health check passed in {took}"),
                    generation,
                    now(),
                );
                Ok(())
            }
            Err(message) => {
                conditions::mark_false(
                    conds,
                    ct::HEALTHY,
                    reasons::HEALTH_CHECK_FAILED,
                    &message,
                    generation,
                    now(),
                );
                Err(Failure::new(
                    reasons::HEALTH_CHECK_FAILED,
                    message,
                    obj.spec.retry_interval(),
                ))
            }
        }
    }
}

impl Reconciler<Kustomization> for KustomizationReconciler {
    async fn reconcile(
        &self,
        obj: Arc<Kustomization>,
        ctx: Arc<Context>,
    ) -> Result<Duration, ReconcileError> {
        let started = Instant::now();
        let generation = obj.metadata.generation;
        let mut status = obj.status.clone().unwrap_or_default();

        let outcome: Result<(ChangeSet, String, Artifact), Failure> = async {
            // Custom health checks are parsed first: a bad expression stalls the object.
            let exprs = health_check_reader(&obj).map_err(|e| Failure {
                stalled: true,
                ..Failure::new(
                    reasons::INVALID_CEL_EXPRESSION,
                    format!("{TERMINAL_ERROR_MESSAGE}: {e}"),
                    obj.spec.interval(),
                )
            })?;
            let (_, artifact) = self.source_artifact(&obj, &ctx).await?;
            self.check_dependencies(&obj, &ctx, &artifact.revision)
                .await?;
            // Tell users what is going on before the (possibly long) apply.
            {
                let conds = status.conditions.get_or_insert_with(Vec::new);
                let message = format!(
                    "Fetching manifests for revision {} with a timeout of {}",
                    artifact.revision,
                    ferroflux_api::duration::format(obj.spec.timeout())
                );
                let progressing_before = conditions::is_true(conds, ct::RECONCILING);
                conditions::mark_reconciling(
                    conds,
                    reasons::PROGRESSING,
                    &message,
                    generation,
                    now(),
                );
                conditions::mark_unknown(
                    conds,
                    ct::READY,
                    reasons::PROGRESSING,
                    "Reconciliation in progress",
                    generation,
                    now(),
                );
                if !progressing_before {
                    let _ = ferroflux_runtime::status::patch_status(
                        &ctx.client,
                        obj.as_ref(),
                        &ctx.controller,
                        &status,
                    )
                    .await;
                }
            }
            // `timeout` bounds fetching, building and applying; health checks have their own.
            let timeout = obj.spec.timeout();
            let (changes, digest, manager) = tokio::time::timeout(
                timeout,
                self.apply_revision(&obj, &ctx, &artifact, &mut status),
            )
            .await
            .map_err(|_| {
                Failure::new(
                    reasons::RECONCILIATION_FAILED,
                    format!(
                        "reconciliation timed out after {}",
                        ferroflux_api::duration::format(timeout)
                    ),
                    obj.spec.retry_interval(),
                )
            })??;
            self.check_health(
                &obj,
                &ctx,
                &manager,
                &exprs,
                &changes,
                &artifact.revision,
                &mut status,
            )
            .await?;
            Ok((changes, digest, artifact))
        }
        .await;

        let conds = status.conditions.get_or_insert_with(Vec::new);
        let elapsed = started.elapsed();
        let (requeue, result) = match outcome {
            Ok((_changes, digest, artifact)) => {
                let revision = artifact.revision.clone();
                status.last_applied_revision = Some(revision.clone());
                status.last_attempted_revision = Some(revision.clone());
                status.last_applied_origin_revision = artifact
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("org.opencontainers.image.revision").cloned());
                conditions::mark_true(
                    conds,
                    ct::READY,
                    reasons::RECONCILIATION_SUCCEEDED,
                    &format!("Applied revision: {revision}"),
                    generation,
                    now(),
                );
                let time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now());
                history::upsert(
                    status.history.get_or_insert_with(Vec::new),
                    &digest,
                    time,
                    elapsed,
                    reasons::RECONCILIATION_SUCCEEDED,
                    BTreeMap::from([("revision".to_string(), revision.clone())]),
                );
                (obj.spec.interval(), Ok(revision))
            }
            Err(failure) => {
                if failure.stalled {
                    conditions::mark_stalled(
                        conds,
                        failure.reason,
                        &failure.message,
                        generation,
                        now(),
                    );
                }
                conditions::mark_false(
                    conds,
                    ct::READY,
                    failure.reason,
                    &failure.message,
                    generation,
                    now(),
                );
                (failure.requeue, Err(failure))
            }
        };
        if let Some(token) = obj.annotations().get(RECONCILE_REQUEST_ANNOTATION) {
            status.last_handled_reconcile_at = Some(token.clone());
        }
        let mut observed = status.observed_generation;
        finalize_status(
            status.conditions.get_or_insert_with(Vec::new),
            generation,
            &mut observed,
            now(),
        );
        status.observed_generation = observed;
        ferroflux_runtime::status::patch_status(
            &ctx.client,
            obj.as_ref(),
            &ctx.controller,
            &status,
        )
        .await
        .map_err(ReconcileError::new)?;

        match result {
            Ok(revision) => {
                let message = format!(
                    "Reconciliation finished in {}, next run in {}",
                    ferroflux_api::duration::format(elapsed),
                    ferroflux_api::duration::format(obj.spec.interval())
                );
                let metadata = BTreeMap::from([
                    ("revision".to_string(), revision),
                    ("commit_status".to_string(), "update".to_string()),
                ]);
                ctx.events
                    .event(
                        obj.as_ref(),
                        Severity::Info,
                        reasons::RECONCILIATION_SUCCEEDED,
                        &message,
                        metadata,
                    )
                    .await;
                Ok(requeue)
            }
            Err(failure) => {
                let mut metadata = BTreeMap::new();
                if let Some(rev) = &status.last_attempted_revision {
                    metadata.insert("revision".to_string(), rev.clone());
                }
                let severity = if failure.reason == reasons::DEPENDENCY_NOT_READY
                    || failure.reason == reasons::HEALTH_CHECK_CANCELED
                    || failure.reason == reasons::ARTIFACT_FAILED
                        && failure.requeue == self.options.requeue_dependency
                {
                    Severity::Info
                } else {
                    Severity::Error
                };
                // Flux words the event of a cancelled health check differently.
                let message = match failure
                    .message
                    .strip_prefix("New reconciliation triggered by ")
                {
                    Some(trigger) if failure.reason == reasons::HEALTH_CHECK_CANCELED => format!(
                        "Health checks canceled due to new reconciliation triggered by {trigger}"
                    ),
                    _ => failure.message.clone(),
                };
                ctx.events
                    .event(obj.as_ref(), severity, failure.reason, &message, metadata)
                    .await;
                tracing::info!(namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any(), reason = failure.reason, error = %failure.message, "reconciliation failed");
                Ok(requeue)
            }
        }
    }

    async fn finalize(
        &self,
        obj: Arc<Kustomization>,
        ctx: Arc<Context>,
    ) -> Result<(), ReconcileError> {
        if !obj.spec.deletes_on_finalize() || obj.spec.suspended() {
            return Ok(());
        }
        let Some(inventory) = obj.status.as_ref().and_then(|s| s.inventory.clone()) else {
            return Ok(());
        };
        let objects: Vec<ObjectRef> = inventory
            .entries
            .iter()
            .filter_map(ObjectRef::from_inventory)
            .collect();
        let client = match self.target_client(&obj, &ctx).await {
            Ok(client) => client,
            Err(failure) => return Err(ReconcileError::new(failure.message)),
        };
        let manager = manager_for(&obj, client, &ctx.controller);
        let failed = delete_objects(&obj, &ctx, &manager, &objects, None).await;
        if let Some((_, err)) = failed.first() {
            return Err(ReconcileError::new(format!(
                "garbage collection failed: {err}"
            )));
        }
        Ok(())
    }

    fn interval(&self, obj: &Kustomization) -> Duration {
        obj.spec.interval()
    }

    fn suspended(&self, obj: &Kustomization) -> bool {
        obj.spec.suspended()
    }
}
