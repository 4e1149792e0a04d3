//! Waiting for a set of objects to become Current (Flux's `WaitForSetWithContext`).

use std::time::Duration;

use ferroflux_kstatus::{Status, aggregate, compute};

use crate::apply::ResourceManager;
use crate::{Error, ObjectRef};

/// How to wait.
#[derive(Clone, Debug)]
pub struct WaitOptions {
    /// Time between polls (Flux: 5 s for health checks).
    pub interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
    /// Stop as soon as one object is Failed.
    pub fail_fast: bool,
}

/// The latest status of each object, and the read error if any.
pub(crate) type Observed = Vec<(ObjectRef, Status, Option<String>)>;

/// Whether the wait is over: all Current, a Failed one with fail-fast, or nothing left
/// that could still change (every object Current or Failed).
pub(crate) fn finished(observed: &Observed, fail_fast: bool) -> bool {
    let statuses: Vec<Status> = observed.iter().map(|(_, s, _)| *s).collect();
    aggregate(&statuses, Status::Current) == Status::Current
        || (fail_fast && statuses.contains(&Status::Failed))
        || statuses
            .iter()
            .all(|s| matches!(s, Status::Current | Status::Failed))
}

/// Flux's error text for a wait that did not end with everything Current.
pub(crate) fn wait_error(observed: &Observed, timed_out: bool) -> Option<String> {
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

/// Judges objects in place of kstatus, as Flux's custom status readers do (CEL health-check
/// expressions): `None` leaves the object to kstatus, `Some(Err(..))` reads `Unknown` with
/// the error.
pub type CustomStatus<'a> =
    &'a (dyn Fn(&ObjectRef, &serde_json::Value) -> Option<Result<Status, String>> + Sync);

impl ResourceManager {
    /// Polls the objects until they are all Current, or one Failed (fail-fast), or the
    /// timeout. The error names every object that is not Current and its status.
    pub async fn wait(&self, objects: &[ObjectRef], options: &WaitOptions) -> Result<(), Error> {
        self.wait_with(objects, options, &|_, _| None).await
    }

    /// [`wait`](Self::wait), with `custom` judging the objects it claims.
    pub async fn wait_with(
        &self,
        objects: &[ObjectRef],
        options: &WaitOptions,
        custom: CustomStatus<'_>,
    ) -> Result<(), Error> {
        if objects.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + options.timeout;
        loop {
            let observed = self.observe(objects, custom).await;
            let timed_out = tokio::time::Instant::now() >= deadline;
            if finished(&observed, options.fail_fast) || timed_out {
                return match wait_error(&observed, timed_out) {
                    Some(message) => Err(Error::Wait(message)),
                    None => Ok(()),
                };
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(options.interval.min(left)).await;
        }
    }

    /// The status of each object now, in the order given.
    async fn observe(&self, objects: &[ObjectRef], custom: CustomStatus<'_>) -> Observed {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut observed = Vec::with_capacity(objects.len());
        for id in objects {
            let (status, err) = match self.api(id).await {
                Err(err) => (Status::Unknown, Some(err.to_string())),
                Ok((api, _)) => match api.get_opt(&id.name).await {
                    Ok(None) => (Status::NotFound, None),
                    Err(err) => (Status::Unknown, Some(err.to_string())),
                    Ok(Some(obj)) => match serde_json::to_value(&obj)
                        .map_err(|e| e.to_string())
                        .and_then(|v| match custom(id, &v) {
                            Some(judged) => judged,
                            None => compute(&v, now)
                                .map(|outcome| outcome.status)
                                .map_err(|e| e.to_string()),
                        }) {
                        Ok(status) => (status, None),
                        Err(err) => (Status::Unknown, Some(err)),
                    },
                },
            };
            observed.push((id.clone(), status, err));
        }
        observed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn finish_rules_and_messages() {
        let current = vec![(id("ConfigMap", "a"), Status::Current, None)];
        assert!(finished(&current, true));
        assert_eq!(wait_error(&current, false), None);
        let mixed = vec![
            (id("ConfigMap", "a"), Status::Current, None),
            (id("Pod", "b"), Status::Failed, None),
            (id("Pod", "c"), Status::InProgress, None),
        ];
        assert!(finished(&mixed, true));
        assert!(!finished(&mixed, false));
        assert_eq!(
            wait_error(&mixed, false).unwrap(),
            "failed early due to stalled resources: [Pod/ns/b status: 'Failed']"
        );
        assert_eq!(
            wait_error(&mixed, true).unwrap(),
            "timeout waiting for: [Pod/ns/b status: 'Failed', Pod/ns/c status: 'InProgress']"
        );
    }

    #[test]
    fn a_read_error_is_reported_with_the_status_at_timeout() {
        let observed = vec![
            (id("ConfigMap", "a"), Status::Current, None),
            (
                id("Widget", "b"),
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
}
