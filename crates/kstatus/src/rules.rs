//! The kind rules of cli-utils (`core.go` `legacyTypes`).

use serde_json::Value;

use crate::{ComputeError, Cond, Outcome};

/// Integer field with a default for missing or wrongly typed values (`GetIntField`).
fn int(object: &Value, pointer: &str, default: i64) -> i64 {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn string<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn has(conditions: &[Cond], type_: &str, status: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == status)
}

pub(crate) fn by_kind(
    group: &str,
    kind: &str,
    object: &Value,
    conditions: &[Cond],
    now_unix: i64,
) -> Result<Option<Outcome>, ComputeError> {
    Ok(Some(match (group, kind) {
        ("", "Service") => service(object),
        ("", "Pod") => pod(object, conditions, now_unix)?,
        ("", "Secret") | ("", "ConfigMap") | ("batch", "CronJob") => {
            Outcome::current("Resource is always ready")
        }
        ("", "PersistentVolumeClaim") => pvc(object),
        ("apps", "StatefulSet") => statefulset(object),
        ("apps" | "extensions", "DaemonSet") => daemonset(object),
        ("apps" | "extensions", "Deployment") => deployment(object, conditions),
        ("apps" | "extensions", "ReplicaSet") => replicaset(object, conditions),
        ("policy", "PodDisruptionBudget") => {
            Outcome::current("AllowedDisruptions has been computed.")
        }
        ("batch", "Job") => job(object, conditions),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(conditions),
        _ => return Ok(None),
    }))
}

fn deployment(object: &Value, conditions: &[Cond]) -> Outcome {
    let mut progressing = false;
    let mut available = false;
    for c in conditions {
        if c.type_ == "Progressing" && c.reason == "ProgressDeadlineExceeded" {
            return Outcome::failed("ProgressDeadlineExceeded", "Progress deadline exceeded");
        }
        if c.type_ == "Progressing" && c.status == "True" && c.reason == "NewReplicaSetAvailable" {
            progressing = true;
        }
        if c.type_ == "Available" && c.status == "True" {
            available = true;
        }
    }
    let deadline = object
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64);
    if deadline.is_none() || deadline == Some(i64::from(i32::MAX)) {
        progressing = true;
    }
    let spec = int(object, "/spec/replicas", 1);
    let st = int(object, "/status/replicas", 0);
    let upd = int(object, "/status/updatedReplicas", 0);
    let rdy = int(object, "/status/readyReplicas", 0);
    let av = int(object, "/status/availableReplicas", 0);
    if spec > st {
        return Outcome::in_progress("LessReplicas", format!("Replicas: {st}/{spec}"));
    }
    if spec > upd {
        return Outcome::in_progress("LessUpdated", format!("Updated: {upd}/{spec}"));
    }
    if st > spec {
        return Outcome::in_progress("ExtraPods", format!("Pending termination: {}", st - spec));
    }
    if upd > av {
        return Outcome::in_progress("LessAvailable", format!("Available: {av}/{upd}"));
    }
    if spec > rdy {
        return Outcome::in_progress("LessReady", format!("Ready: {rdy}/{spec}"));
    }
    if !progressing {
        return Outcome::in_progress("ReplicaSetNotAvailable", "ReplicaSet not Available");
    }
    if !available {
        return Outcome::in_progress("DeploymentNotAvailable", "Deployment not Available");
    }
    Outcome::current(format!("Deployment is available. Replicas: {st}"))
}

fn statefulset(object: &Value) -> Outcome {
    if string(object, "/spec/updateStrategy/type") == Some("OnDelete") {
        return Outcome::current("StatefulSet is using the ondelete update strategy");
    }
    let spec = int(object, "/spec/replicas", 1);
    let st = int(object, "/status/replicas", 0);
    let rdy = int(object, "/status/readyReplicas", 0);
    let cur = int(object, "/status/currentReplicas", 0);
    let upd = int(object, "/status/updatedReplicas", 0);
    if spec > st {
        return Outcome::in_progress("LessReplicas", format!("Replicas: {st}/{spec}"));
    }
    if spec > rdy {
        return Outcome::in_progress("LessReady", format!("Ready: {rdy}/{spec}"));
    }
    if st > spec {
        return Outcome::in_progress("ExtraPods", format!("Pending termination: {}", st - spec));
    }
    let partition = int(object, "/spec/updateStrategy/rollingUpdate/partition", -1);
    if partition != -1 {
        if upd < spec - partition {
            return Outcome::in_progress(
                "PartitionRollout",
                format!("updated: {upd}/{}", spec - partition),
            );
        }
        return Outcome::current(format!("Partition rollout complete. updated: {upd}"));
    }
    if spec > cur {
        return Outcome::in_progress("LessCurrent", format!("current: {cur}/{spec}"));
    }
    if string(object, "/status/currentRevision") != string(object, "/status/updateRevision") {
        return Outcome::in_progress(
            "RevisionMismatch",
            "Waiting for updated revision to match current",
        );
    }
    Outcome::current(format!(
        "All replicas scheduled as expected. Replicas: {st}"
    ))
}

fn daemonset(object: &Value) -> Outcome {
    let kind = string(object, "/kind").unwrap_or("DaemonSet");
    if object.pointer("/metadata/generation").is_none() {
        return Outcome::in_progress(
            "NoGeneration",
            format!("{kind} metadata.generation not found"),
        );
    }
    if object.pointer("/status/observedGeneration").is_none() {
        return Outcome::in_progress(
            "NoObservedGeneration",
            format!("{kind} status.observedGeneration not found"),
        );
    }
    let Some(desired) = object
        .pointer("/status/desiredNumberScheduled")
        .and_then(Value::as_i64)
    else {
        return Outcome::in_progress("NoDesiredNumber", "Missing .status.desiredNumberScheduled");
    };
    let current = int(object, "/status/currentNumberScheduled", 0);
    let updated = int(object, "/status/updatedNumberScheduled", 0);
    let available = int(object, "/status/numberAvailable", 0);
    let ready = int(object, "/status/numberReady", 0);
    if desired > current {
        return Outcome::in_progress("LessCurrent", format!("Current: {current}/{desired}"));
    }
    if desired > updated {
        return Outcome::in_progress("LessUpdated", format!("Updated: {updated}/{desired}"));
    }
    if desired > available {
        return Outcome::in_progress("LessAvailable", format!("Available: {available}/{desired}"));
    }
    if desired > ready {
        return Outcome::in_progress("LessReady", format!("Ready: {ready}/{desired}"));
    }
    Outcome::current(format!(
        "All replicas scheduled as expected. Replicas: {desired}"
    ))
}

fn replicaset(object: &Value, conditions: &[Cond]) -> Outcome {
    if has(conditions, "ReplicaFailure", "True") {
        return Outcome::in_progress("ReplicaFailure", "Replica Failure condition. Check Pods");
    }
    let spec = int(object, "/spec/replicas", 1);
    let st = int(object, "/status/replicas", 0);
    let labelled = int(object, "/status/fullyLabeledReplicas", 0);
    let available = int(object, "/status/availableReplicas", 0);
    let ready = int(object, "/status/readyReplicas", 0);
    if spec > labelled {
        return Outcome::in_progress("LessLabelled", format!("Labelled: {labelled}/{spec}"));
    }
    if spec > available {
        return Outcome::in_progress("LessAvailable", format!("Available: {available}/{spec}"));
    }
    if spec > ready {
        return Outcome::in_progress("LessReady", format!("Ready: {ready}/{spec}"));
    }
    if st > spec {
        return Outcome::in_progress("ExtraPods", format!("Pending termination: {}", st - spec));
    }
    Outcome::current(format!("ReplicaSet is available. Replicas: {st}"))
}

fn pod(object: &Value, conditions: &[Cond], now_unix: i64) -> Result<Outcome, ComputeError> {
    let phase = string(object, "/status/phase").unwrap_or("");
    Ok(match phase {
        "Succeeded" => Outcome::current("Pod has completed successfully"),
        "Failed" => Outcome::current("Pod has completed, but not successfully"),
        "Running" => {
            if has(conditions, "Ready", "True") {
                return Ok(Outcome::current("Pod is Ready"));
            }
            let crashing: Vec<&str> = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|cs| {
                    cs.pointer("/state/waiting/reason").and_then(Value::as_str)
                        == Some("CrashLoopBackOff")
                })
                .filter_map(|cs| cs.get("name").and_then(Value::as_str))
                .collect();
            if !crashing.is_empty() {
                return Ok(Outcome::failed(
                    "ContainerCrashLooping",
                    format!("Containers in CrashLoop state: {}", crashing.join(",")),
                ));
            }
            Outcome::in_progress("PodRunningNotReady", "Pod is running but is not Ready")
        }
        "Pending" => {
            let unschedulable = conditions.iter().any(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason == "Unschedulable"
            });
            if unschedulable {
                let created = string(object, "/metadata/creationTimestamp")
                    .and_then(parse_rfc3339)
                    .unwrap_or(now_unix);
                if now_unix - created < 15 {
                    return Ok(Outcome::in_progress(
                        "PodNotScheduled",
                        "Pod has not been scheduled",
                    ));
                }
                return Ok(Outcome::failed(
                    "PodUnschedulable",
                    "Pod could not be scheduled",
                ));
            }
            Outcome::in_progress("PodPending", "Pod is in the Pending phase")
        }
        "" => Outcome::in_progress("PodNotObserved", "Pod phase not available"),
        other => return Err(ComputeError(format!("unknown phase {other}"))),
    })
}

fn pvc(object: &Value) -> Outcome {
    match string(object, "/status/phase") {
        Some("Bound") => Outcome::current("PVC is Bound"),
        phase => Outcome::in_progress(
            "NotBound",
            format!("PVC is not Bound. phase: {}", phase.unwrap_or("unknown")),
        ),
    }
}

fn service(object: &Value) -> Outcome {
    let service_type = string(object, "/spec/type").unwrap_or("ClusterIP");
    if service_type == "LoadBalancer" && string(object, "/spec/clusterIP").unwrap_or("").is_empty()
    {
        return Outcome::in_progress(
            "NoIPAssigned",
            "ClusterIP not set. Service type: LoadBalancer",
        );
    }
    Outcome::current("Service is ready")
}

/// Flux's own Job reader (`fluxcd/pkg:runtime/statusreaders/job.go`), which
/// kustomize-controller always uses: a running Job is InProgress.
fn job(object: &Value, conditions: &[Cond]) -> Outcome {
    if object.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Outcome::current("Job is suspended");
    }
    let parallelism = int(object, "/spec/parallelism", 1);
    let completions = int(object, "/spec/completions", parallelism);
    let succeeded = int(object, "/status/succeeded", 0);
    let active = int(object, "/status/active", 0);
    let failed = int(object, "/status/failed", 0);
    if has(conditions, "Complete", "True") {
        return Outcome::current(format!(
            "Job Completed. succeeded: {succeeded}/{completions}"
        ));
    }
    if has(conditions, "Failed", "True") {
        return Outcome::failed(
            "JobFailed",
            format!("Job Failed. failed: {failed}/{completions}"),
        );
    }
    if object.pointer("/status/startTime").is_none() {
        return Outcome::in_progress(
            "JobNotStarted",
            format!("Job not started. active: 0/{parallelism}"),
        );
    }
    Outcome::in_progress(
        "JobInProgress",
        format!("Job in progress. success:{succeeded}, active: {active}, failed: {failed}"),
    )
}

fn crd(conditions: &[Cond]) -> Outcome {
    for c in conditions {
        if c.type_ == "NamesAccepted" && c.status == "False" {
            return Outcome::failed(&c.reason, c.message.clone());
        }
        if c.type_ == "Established" {
            if c.status == "False" && c.reason != "Installing" {
                return Outcome::failed(&c.reason, c.message.clone());
            }
            if c.status == "True" {
                return Outcome::current("CRD is established");
            }
        }
    }
    Outcome::in_progress("Installing", "Install in progress")
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as the API server writes them.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time
        .split(':')
        .map(|p| p.split('.').next().and_then(|p| p.parse::<i64>().ok()));
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + min * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn parses_api_server_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-01T12:30:15Z"), Some(1_709_296_215));
    }
}
