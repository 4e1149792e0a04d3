//! Server-side apply with dry-run drift detection, in stages.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use crate::policy::{ApplyPolicy, apply_policy, force_enabled};
use crate::stage::{Stage, stage_of};
use crate::{Error, ObjectRef, WaitOptions};

/// What happened to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// It did not exist and was created.
    Created,
    /// It existed and differed; it was updated.
    Configured,
    /// It existed and matched.
    Unchanged,
    /// It was deleted (prune).
    Deleted,
    /// A policy (annotation, missing owner label) left it alone.
    Skipped,
}

impl Action {
    /// The word Flux prints in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Skipped => "skipped",
        }
    }
}

/// One line of a change set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSetEntry {
    /// The object.
    pub object: ObjectRef,
    /// What happened to it.
    pub action: Action,
}

/// The outcome of an apply or prune, in manifest order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// One entry per object.
    pub entries: Vec<ChangeSetEntry>,
}

impl ChangeSet {
    /// Entries other than `unchanged`, as `Kind/ns/name action` lines (Flux's event text).
    pub fn changes(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.action != Action::Unchanged)
            .map(|e| format!("{} {}", e.object, e.action.as_str()))
            .collect()
    }

    /// Objects that were applied (not skipped), the set to wait for.
    pub fn applied(&self) -> Vec<ObjectRef> {
        self.entries
            .iter()
            .filter(|e| e.action != Action::Skipped && e.action != Action::Deleted)
            .map(|e| e.object.clone())
            .collect()
    }
}

/// How to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Recreate objects whose immutable fields changed (`spec.force`).
    pub force: bool,
    /// How many objects of a stage are applied at once (`--concurrent-ssa`).
    pub concurrency: usize,
    /// Wait used after the cluster-definitions stage.
    pub cluster_stage_wait: WaitOptions,
    /// Metadata taken over or removed from existing objects before they are applied.
    pub cleanup: Option<crate::cleanup::Cleanup>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            force: false,
            concurrency: 4,
            cluster_stage_wait: WaitOptions {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(60),
                fail_fast: true,
            },
            cleanup: None,
        }
    }
}

/// Applies, prunes and waits, as one field manager that labels what it owns.
pub struct ResourceManager {
    pub(crate) client: kube::Client,
    field_manager: String,
    pub(crate) owner_labels: BTreeMap<String, String>,
    resources: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

impl ResourceManager {
    /// A manager applying as `field_manager` and setting `owner_labels` on every object.
    pub fn new(
        client: kube::Client,
        field_manager: impl Into<String>,
        owner_labels: BTreeMap<String, String>,
    ) -> Self {
        Self {
            client,
            field_manager: field_manager.into(),
            owner_labels,
            resources: Mutex::new(HashMap::new()),
        }
    }

    /// The API of an object's kind, discovered once and cached.
    pub(crate) async fn api(&self, obj: &ObjectRef) -> Result<(Api<DynamicObject>, Scope), Error> {
        let gvk = GroupVersionKind::gvk(&obj.group, &obj.version, &obj.kind);
        let cached = self
            .resources
            .lock()
            .ok()
            .and_then(|m| m.get(&gvk).cloned());
        let (resource, caps) = match cached {
            Some(found) => found,
            None => {
                let found = kube::discovery::pinned_kind(&self.client, &gvk)
                    .await
                    .map_err(|_| Error::UnknownKind {
                        id: obj.to_string(),
                        kind: obj.kind.clone(),
                        api_version: obj.api_version(),
                    })?;
                if let Ok(mut map) = self.resources.lock() {
                    map.insert(gvk, found.clone());
                }
                found
            }
        };
        let api = match caps.scope {
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            Scope::Namespaced => {
                if obj.namespace.is_empty() {
                    return Err(Error::NamespaceMissing(obj.to_string()));
                }
                Api::namespaced_with(self.client.clone(), &obj.namespace, &resource)
            }
        };
        Ok((api, caps.scope))
    }

    /// Applies the objects in stages — CRDs, Namespaces and ClusterRoles first (waiting
    /// until they are ready), then `*Class` kinds, then the rest — and reports what
    /// happened to each. Nothing is applied when a manifest is invalid.
    pub async fn apply_all_staged(
        &self,
        objects: Vec<DynamicObject>,
        options: &ApplyOptions,
    ) -> Result<ChangeSet, Error> {
        let mut staged: BTreeMap<Stage, Vec<(ObjectRef, DynamicObject)>> = BTreeMap::new();
        for obj in objects {
            let id = ObjectRef::of(&obj)?;
            staged
                .entry(stage_of(&id.group, &id.kind))
                .or_default()
                .push((id, obj));
        }
        let mut changes = ChangeSet::default();
        for (stage, objects) in staged {
            let ids: Vec<ObjectRef> = objects.iter().map(|(id, _)| id.clone()).collect();
            let applied = self.apply_batch(objects, options).await?;
            changes.entries.extend(applied.entries);
            if stage == Stage::Cluster {
                self.wait(&ids, &options.cluster_stage_wait).await?;
            }
        }
        Ok(changes)
    }

    /// Applies objects concurrently, keeping their order in the change set. The first
    /// failure is returned after every object has been tried, so one bad object does not
    /// hide the others' errors.
    async fn apply_batch(
        &self,
        objects: Vec<(ObjectRef, DynamicObject)>,
        options: &ApplyOptions,
    ) -> Result<ChangeSet, Error> {
        let results: Vec<Result<ChangeSetEntry, Error>> = futures::stream::iter(objects)
            .map(|(id, obj)| self.apply_one(id, obj, options))
            .buffered(options.concurrency.max(1))
            .collect()
            .await;
        let mut changes = ChangeSet::default();
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(entry) => changes.entries.push(entry),
                Err(err) => errors.push(err),
            }
        }
        match errors.len() {
            0 => Ok(changes),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Apply {
                id: format!("{} objects", errors.len()),
                verb: "apply",
                message: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }

    async fn apply_one(
        &self,
        id: ObjectRef,
        mut desired: DynamicObject,
        options: &ApplyOptions,
    ) -> Result<ChangeSetEntry, Error> {
        let (api, _) = self.api(&id).await?;
        let labels = desired.metadata.labels.get_or_insert_with(Default::default);
        labels.extend(self.owner_labels.clone());
        // Named like Flux's "<object> query failed: ...", so a refused read (RBAC under
        // impersonation) says which object it was.
        let mut existing = api
            .get_opt(&id.name)
            .await
            .map_err(|e| Error::apply(&id, "query", e))?;
        let policy = apply_policy(&desired.metadata, existing.as_ref().map(|e| &e.metadata));
        // Fields kubectl or a pre-SSA manager took are handed to us first, so that this
        // apply removes what the manifest does not have (Flux's metadata cleanup);
        // `ssa: Merge` objects keep them.
        let mut cleaned = false;
        if let (Some(current), Some(cleanup)) = (&existing, &options.cleanup)
            && !matches!(policy, ApplyPolicy::Merge | ApplyPolicy::Ignore)
            && let Some(patch) = crate::cleanup::cleanup_patch(
                &serde_json::to_value(current).unwrap_or_default(),
                &self.field_manager,
                cleanup,
            )
        {
            let patch: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| Error::Invalid(format!("{id} cleanup patch: {e}")))?;
            let updated = api
                .patch(
                    &id.name,
                    &PatchParams {
                        field_manager: Some(self.field_manager.clone()),
                        ..PatchParams::default()
                    },
                    &Patch::Json::<()>(patch),
                )
                .await
                .map_err(|e| Error::apply(&id, "metadata.managedFields cleanup", e))?;
            existing = Some(updated);
            cleaned = true;
        }
        match policy {
            ApplyPolicy::Ignore => {
                return Ok(ChangeSetEntry {
                    object: id,
                    action: Action::Skipped,
                });
            }
            ApplyPolicy::IfNotPresent if existing.is_some() => {
                return Ok(ChangeSetEntry {
                    object: id,
                    action: Action::Skipped,
                });
            }
            _ => {}
        }
        let params = PatchParams::apply(&self.field_manager).force();
        let dry_run = match api
            .patch(&id.name, &params.clone().dry_run(), &Patch::Apply(&desired))
            .await
        {
            Ok(obj) => obj,
            Err(err)
                if existing.is_some()
                    && is_immutable_error(&err)
                    && (options.force || force_enabled(&desired.metadata)) =>
            {
                // An immutable field changed and recreation is allowed: delete, then create.
                api.delete(&id.name, &DeleteParams::background())
                    .await
                    .map_err(|e| Error::apply(&id, "delete", e))?;
                self.wait_gone(&api, &id.name).await;
                api.patch(&id.name, &params, &Patch::Apply(&desired))
                    .await
                    .map_err(|e| Error::apply(&id, "apply", e))?;
                return Ok(ChangeSetEntry {
                    object: id,
                    action: Action::Created,
                });
            }
            Err(err) => return Err(Error::apply(&id, "dry-run", err)),
        };
        if let Some(existing) = &existing
            && !cleaned
            && !drifted(
                &serde_json::to_value(existing).unwrap_or_default(),
                &serde_json::to_value(&dry_run).unwrap_or_default(),
            )
        {
            return Ok(ChangeSetEntry {
                object: id,
                action: Action::Unchanged,
            });
        }
        api.patch(&id.name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|e| Error::apply(&id, "apply", e))?;
        let action = if existing.is_some() {
            Action::Configured
        } else {
            Action::Created
        };
        Ok(ChangeSetEntry { object: id, action })
    }

    /// Server-side dry-run apply of one object: what the API server would store, or why
    /// it refuses the object. Nothing is changed.
    pub async fn dry_run(&self, desired: &DynamicObject) -> Result<DynamicObject, Error> {
        let id = ObjectRef::of(desired)?;
        let (api, _) = self.api(&id).await?;
        let mut desired = desired.clone();
        desired
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .extend(self.owner_labels.clone());
        let params = PatchParams::apply(&self.field_manager).force().dry_run();
        api.patch(&id.name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|e| Error::apply(&id, "dry-run", e))
    }

    async fn wait_gone(&self, api: &Api<DynamicObject>, name: &str) {
        for _ in 0..300 {
            if matches!(api.get_opt(name).await, Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether the API server refused a change to a field that cannot change once set.
fn is_immutable_error(err: &kube::Error) -> bool {
    const PHRASES: [&str; 4] = [
        "is immutable",
        "immutable field",
        "may not change once set",
        "cannot be changed",
    ];
    matches!(err, kube::Error::Api(status) if status.code == 422 && PHRASES.iter().any(|p| status.message.contains(p)))
}

/// Whether a dry-run apply would change the object: compare the in-cluster object with
/// the dry-run result, ignoring bookkeeping the API server rewrites on every write.
pub(crate) fn drifted(existing: &Value, dry_run: &Value) -> bool {
    strip_bookkeeping(existing) != strip_bookkeeping(dry_run)
}

fn strip_bookkeeping(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            meta.remove(key);
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drift_ignores_bookkeeping_only() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1", "managedFields": [1]}, "data": {"k": "v"}});
        let b = json!({"metadata": {"name": "x", "resourceVersion": "2", "managedFields": [2]}, "data": {"k": "v"}});
        assert!(!drifted(&a, &b));
        let c = json!({"metadata": {"name": "x"}, "data": {"k": "edited"}});
        assert!(drifted(&a, &c));
    }
}
