//! Health checks with `spec.healthCheckExprs` (Flux's `checkHealth` with its CEL status
//! reader).
//!
//! Objects whose GroupKind has expressions are judged by them (an evaluation error reads
//! `Unknown` with the error, as Flux's poller reports it); every other object by kstatus.
//! Reading, polling and the wait's end and error text are the apply engine's
//! (`ResourceManager::wait_with`, Flux's `WaitForSetWithContext`, KSTATUS.md §6).

use ferroflux_cel::HealthCheckReader;
use ferroflux_kstatus::Status;
use ferroflux_ssa::{ObjectRef, ResourceManager, WaitOptions};

/// Judges objects by CEL expressions, for the objects whose GroupKind has them.
pub struct CelJudge<'a> {
    pub reader: &'a HealthCheckReader,
    /// Flux's custom Job reader comes before the CEL reader unless the Kustomization
    /// impersonates or targets a remote cluster; then CEL judges Jobs too.
    pub cel_judges_jobs: bool,
}

impl CelJudge<'_> {
    /// The status of `object` by its expressions, or `None` when kstatus judges it.
    pub fn judge(
        &self,
        id: &ObjectRef,
        object: &serde_json::Value,
    ) -> Option<Result<Status, String>> {
        if !self.cel_judges_jobs && id.group == "batch" && id.kind == "Job" {
            return None;
        }
        self.reader
            .evaluator(&id.group, &id.kind)
            .map(|e| e.evaluate(object))
    }
}

/// Polls `objects` until they are all Current, one Failed (fail-fast), nothing can change
/// any more, or the timeout; objects with expressions are judged by `cel`, the rest by
/// kstatus. The error is Flux's wait message.
pub async fn wait(
    manager: &ResourceManager,
    cel: &CelJudge<'_>,
    objects: &[ObjectRef],
    options: &WaitOptions,
) -> Result<(), String> {
    manager
        .wait_with(objects, options, &|id, object| cel.judge(id, object))
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroflux_cel::CustomHealthCheck;
    use serde_json::json;

    fn id(group: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: "a".into(),
        }
    }

    fn reader() -> HealthCheckReader {
        let check = |api_version: &str, kind: &str| CustomHealthCheck {
            api_version: api_version.into(),
            kind: Some(kind.into()),
            current: "status.phase == 'Ready'".into(),
            ..Default::default()
        };
        HealthCheckReader::new(&[check("example.com/v1", "Widget"), check("batch/v1", "Job")])
            .unwrap()
    }

    #[test]
    fn expressions_judge_their_kinds_and_jobs_only_when_impersonating() {
        let reader = reader();
        let ready = json!({"status": {"phase": "Ready"}});
        let judge = CelJudge {
            reader: &reader,
            cel_judges_jobs: false,
        };
        assert_eq!(
            judge.judge(&id("example.com", "Widget"), &ready),
            Some(Ok(Status::Current))
        );
        assert_eq!(judge.judge(&id("", "ConfigMap"), &ready), None);
        assert_eq!(judge.judge(&id("batch", "Job"), &ready), None);
        let impersonating = CelJudge {
            reader: &reader,
            cel_judges_jobs: true,
        };
        assert_eq!(
            impersonating.judge(&id("batch", "Job"), &ready),
            Some(Ok(Status::Current))
        );
    }
}
