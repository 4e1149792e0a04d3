//! Health checks with `spec.healthCheckExprs` and cancellation (Flux's `checkHealth` with
//! its CEL status reader and `CancelHealthCheckOnNewRevision`).
//!
//! Objects whose GroupKind has expressions are read here and judged by them (an
//! evaluation error reads `Unknown` with the error, as Flux's poller reports it); every
//! other object is judged by kstatus through the apply engine. The end of the wait and its
//! error text are Flux's (`WaitForSetWithContext`, KSTATUS.md §6).

use std::collections::HashMap;
use std::time::Duration;

use ferroflux_cel::HealthCheckReader;
use ferroflux_kstatus::{Status, aggregate};
use ferroflux_ssa::{ObjectRef, ResourceManager, WaitOptions};
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

/// The latest status of each object and the read error if any.
type Observed = Vec<(ObjectRef, Status, Option<String>)>;

/// Whether nothing is left to wait for (Flux: all Current, a Failed one with fail-fast,
/// or every object Current or Failed).
fn finished(observed: &Observed, fail_fast: bool) -> bool {
    let statuses: Vec<Status> = observed.iter().map(|(_, s, _)| *s).collect();
    aggregate(&statuses, Status::Current) == Status::Current
        || (fail_fast && statuses.contains(&Status::Failed))
        || statuses
            .iter()
            .all(|s| matches!(s, Status::Current | Status::Failed))
}

/// Flux's error text for a wait that did not end with everything Current.
fn wait_error(observed: &Observed, timed_out: bool) -> Option<String> {
    let failures: Vec<String> = observed
        .iter()
        .filter(|(_, status, _)| {
            *status == Status::Failed || (timed_out && *status != Status::Current)
        })
        .map(|(id, status, err)| match err {
            Some(err) => format!("{id} status: '{status}': {err}"),
            None => format!("{id} status: '{status}'"),
        })
        .collect();
    if failures.is_empty() {
        return None;
    }
    let lead = if timed_out {
        "timeout waiting for"
    } else {
        "failed early due to stalled resources"
    };
    Some(format!("{lead}: [{}]", failures.join(", ")))
}

/// Reads objects judged by CEL expressions.
pub struct CelPoller<'a> {
    pub client: kube::Client,
    pub reader: &'a HealthCheckReader,
    /// Flux's custom Job reader comes before the CEL reader unless the Kustomization
    /// impersonates or targets a remote cluster; then CEL judges Jobs too.
    pub cel_judges_jobs: bool,
    resources: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
}

impl<'a> CelPoller<'a> {
    pub fn new(client: kube::Client, reader: &'a HealthCheckReader, cel_judges_jobs: bool) -> Self {
        Self {
            client,
            reader,
            cel_judges_jobs,
            resources: HashMap::new(),
        }
    }

    /// Whether `id` is judged by an expression.
    pub fn judges(&self, id: &ObjectRef) -> bool {
        if !self.cel_judges_jobs && id.group == "batch" && id.kind == "Job" {
            return false;
        }
        self.reader.evaluator(&id.group, &id.kind).is_some()
    }

    async fn read(&mut self, id: &ObjectRef) -> (Status, Option<String>) {
        let gvk = GroupVersionKind::gvk(&id.group, &id.version, &id.kind);
        let found = match self.resources.get(&gvk) {
            Some(found) => found.clone(),
            None => match kube::discovery::pinned_kind(&self.client, &gvk).await {
                Ok(found) => {
                    self.resources.insert(gvk, found.clone());
                    found
                }
                Err(e) => return (Status::Unknown, Some(e.to_string())),
            },
        };
        let (resource, caps) = found;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            Scope::Namespaced => {
                Api::namespaced_with(self.client.clone(), &id.namespace, &resource)
            }
        };
        match api.get_opt(&id.name).await {
            Ok(None) => (Status::NotFound, None),
            Err(e) => (Status::Unknown, Some(e.to_string())),
            Ok(Some(obj)) => {
                let value = match serde_json::to_value(&obj) {
                    Ok(v) => v,
                    Err(e) => return (Status::Unknown, Some(e.to_string())),
                };
                match self
                    .reader
                    .evaluator(&id.group, &id.kind)
                    .map(|e| e.evaluate(&value))
                {
                    Some(Ok(status)) => (status, None),
                    Some(Err(e)) => (Status::Unknown, Some(e)),
                    None => (Status::Unknown, Some("no health check expression".into())),
                }
            }
        }
    }
}

/// Polls `objects` until they are all Current, one Failed (fail-fast), nothing can change
/// any more, or the timeout; objects with expressions are judged by `cel`, the rest by
/// kstatus.
pub async fn wait(
    manager: &ResourceManager,
    cel: &mut CelPoller<'_>,
    objects: &[ObjectRef],
    options: &WaitOptions,
) -> Result<(), String> {
    if objects.is_empty() {
        return Ok(());
    }
    let (by_cel, by_kstatus): (Vec<ObjectRef>, Vec<ObjectRef>) =
        objects.iter().cloned().partition(|o| cel.judges(o));
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        let mut observed = manager.observe(&by_kstatus).await;
        for id in &by_cel {
            let (status, err) = cel.read(id).await;
            observed.push((id.clone(), status, err));
        }
        // Report in the order the objects were given.
        observed.sort_by_key(|(id, _, _)| objects.iter().position(|o| o == id));
        let timed_out = tokio::time::Instant::now() >= deadline;
        if finished(&observed, options.fail_fast) || timed_out {
            return match wait_error(&observed, timed_out) {
                Some(message) => Err(message),
                None => Ok(()),
            };
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(options.interval.min(left).max(Duration::from_millis(1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ObjectRef {
        ObjectRef {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn unknown_from_a_cel_error_is_reported_with_the_error_at_timeout() {
        let observed: Observed = vec![
            (id("a"), Status::Current, None),
            (
                id("b"),
                Status::Unknown,
                Some("failed to evaluate the CEL expression 'status.x': No such key: x".into()),
            ),
        ];
        assert!(!finished(&observed, true));
        assert_eq!(wait_error(&observed, false), None);
        assert_eq!(
            wait_error(&observed, true).unwrap(),
            "timeout waiting for: [Widget/ns/b status: 'Unknown': failed to evaluate the CEL expression 'status.x': No such key: x]"
        );
    }

    #[test]
    fn failed_ends_the_wait_early() {
        let observed: Observed = vec![
            (id("a"), Status::InProgress, None),
            (id("b"), Status::Failed, None),
        ];
        assert!(finished(&observed, true));
        assert_eq!(
            wait_error(&observed, false).unwrap(),
            "failed early due to stalled resources: [Widget/ns/b status: 'Failed']"
        );
    }
}
