//! kstatus rules, one case per rule and message (KSTATUS.md §2–§4).

use ferroflux_kstatus::{Status, aggregate, compute};
use serde_json::{Value, json};

fn check(object: Value, status: Status, message: &str) {
    let outcome = compute(&object, 1_000_000).unwrap_or_else(|e| panic!("compute failed: {e}"));
    assert_eq!(
        (outcome.status, outcome.message.as_str()),
        (status, message),
        "{object}"
    );
}

fn deployment(spec: i64, status: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 1},
           "spec": {"replicas": spec, "progressDeadlineSeconds": 600}, "status": status})
}

#[test]
fn deletion_and_generation_come_first() {
    check(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        Status::Terminating,
        "Resource scheduled for deletion",
    );
    check(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"generation": 3}, "status": {"observedGeneration": 2}}),
        Status::InProgress,
        "Widget generation is 3, but latest observed generation is 2",
    );
}

#[test]
fn standard_conditions_in_array_order() {
    let obj = |conds: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": conds}});
    check(
        obj(
            json!([{"type": "Stalled", "status": "True", "reason": "Boom", "message": "it broke"}, {"type": "Reconciling", "status": "True", "reason": "R", "message": "working"}]),
        ),
        Status::Failed,
        "it broke",
    );
    check(
        obj(
            json!([{"type": "Reconciling", "status": "True", "reason": "R", "message": "working"}, {"type": "Stalled", "status": "True", "reason": "Boom", "message": "it broke"}]),
        ),
        Status::InProgress,
        "working",
    );
}

#[test]
fn ready_condition_for_unknown_kinds_and_the_default() {
    let cr = |conds: Value| json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": conds}});
    check(
        cr(
            json!([{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:abc"}]),
        ),
        Status::Current,
        "Resource is Ready",
    );
    check(
        cr(
            json!([{"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "kustomize build failed"}]),
        ),
        Status::InProgress,
        "kustomize build failed",
    );
    check(cr(json!([])), Status::Current, "Resource is current");
    check(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
        Status::Current,
        "Resource is current",
    );
}

#[test]
fn deployment_rules() {
    check(
        deployment(3, json!({"replicas": 1})),
        Status::InProgress,
        "Replicas: 1/3",
    );
    check(
        deployment(3, json!({"replicas": 3, "updatedReplicas": 2})),
        Status::InProgress,
        "Updated: 2/3",
    );
    check(
        deployment(3, json!({"replicas": 4, "updatedReplicas": 3})),
        Status::InProgress,
        "Pending termination: 1",
    );
    check(
        deployment(
            3,
            json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
        ),
        Status::InProgress,
        "Available: 2/3",
    );
    check(
        deployment(
            3,
            json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "readyReplicas": 2}),
        ),
        Status::InProgress,
        "Ready: 2/3",
    );
    let full =
        json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "readyReplicas": 3});
    check(
        deployment(3, full.clone()),
        Status::InProgress,
        "ReplicaSet not Available",
    );
    let mut ok = full.clone();
    ok["conditions"] =
        json!([{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]);
    check(
        deployment(3, ok.clone()),
        Status::InProgress,
        "Deployment not Available",
    );
    ok["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Available", "status": "True"}));
    check(
        deployment(3, ok),
        Status::Current,
        "Deployment is available. Replicas: 3",
    );
    let mut dead = full;
    dead["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "x"}]);
    check(
        deployment(3, dead),
        Status::Failed,
        "Progress deadline exceeded",
    );
    // Scaled to zero and no deadline: Available is still required.
    check(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 0}, "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
        Status::Current,
        "Deployment is available. Replicas: 0",
    );
}

#[test]
fn statefulset_daemonset_replicaset_rules() {
    let sts = |spec: Value, status: Value| json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": spec, "status": status});
    check(
        sts(json!({"updateStrategy": {"type": "OnDelete"}}), json!({})),
        Status::Current,
        "StatefulSet is using the ondelete update strategy",
    );
    check(
        sts(json!({"replicas": 2}), json!({"replicas": 1})),
        Status::InProgress,
        "Replicas: 1/2",
    );
    check(
        sts(
            json!({"replicas": 2}),
            json!({"replicas": 2, "readyReplicas": 1}),
        ),
        Status::InProgress,
        "Ready: 1/2",
    );
    check(
        sts(
            json!({"replicas": 2, "updateStrategy": {"rollingUpdate": {"partition": 1}}}),
            json!({"replicas": 2, "readyReplicas": 2, "updatedReplicas": 0}),
        ),
        Status::InProgress,
        "updated: 0/1",
    );
    check(
        sts(
            json!({"replicas": 2}),
            json!({"replicas": 2, "readyReplicas": 2, "currentReplicas": 1}),
        ),
        Status::InProgress,
        "current: 1/2",
    );
    check(
        sts(
            json!({"replicas": 2}),
            json!({"replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "currentRevision": "a", "updateRevision": "b"}),
        ),
        Status::InProgress,
        "Waiting for updated revision to match current",
    );
    check(
        sts(
            json!({"replicas": 2}),
            json!({"replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "currentRevision": "a", "updateRevision": "a"}),
        ),
        Status::Current,
        "All replicas scheduled as expected. Replicas: 2",
    );

    let ds = |meta: Value, status: Value| json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta, "status": status});
    check(
        ds(json!({}), json!({})),
        Status::InProgress,
        "DaemonSet metadata.generation not found",
    );
    check(
        ds(json!({"generation": 1}), json!({})),
        Status::InProgress,
        "DaemonSet status.observedGeneration not found",
    );
    check(
        ds(json!({"generation": 1}), json!({"observedGeneration": 1})),
        Status::InProgress,
        "Missing .status.desiredNumberScheduled",
    );
    check(
        ds(
            json!({"generation": 1}),
            json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 1}),
        ),
        Status::InProgress,
        "Current: 1/2",
    );
    check(
        ds(
            json!({"generation": 1}),
            json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": 2}),
        ),
        Status::Current,
        "All replicas scheduled as expected. Replicas: 2",
    );

    let rs = |status: Value| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"replicas": 2}, "status": status});
    check(
        rs(json!({"conditions": [{"type": "ReplicaFailure", "status": "True"}]})),
        Status::InProgress,
        "Replica Failure condition. Check Pods",
    );
    check(
        rs(json!({"fullyLabeledReplicas": 1})),
        Status::InProgress,
        "Labelled: 1/2",
    );
    check(
        rs(
            json!({"replicas": 2, "fullyLabeledReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}),
        ),
        Status::Current,
        "ReplicaSet is available. Replicas: 2",
    );
}

#[test]
fn pod_pvc_service_job_crd_and_always_ready_rules() {
    let pod = |status: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "1970-01-12T13:46:30Z"}, "status": status});
    check(
        pod(json!({"phase": "Succeeded"})),
        Status::Current,
        "Pod has completed successfully",
    );
    check(
        pod(json!({"phase": "Failed"})),
        Status::Current,
        "Pod has completed, but not successfully",
    );
    check(
        pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})),
        Status::Current,
        "Pod is Ready",
    );
    check(
        pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        ),
        Status::Failed,
        "Containers in CrashLoop state: app",
    );
    check(
        pod(json!({"phase": "Running"})),
        Status::InProgress,
        "Pod is running but is not Ready",
    );
    // created at 999990, now 1000000: within the 15 s window.
    check(
        pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}),
        ),
        Status::InProgress,
        "Pod has not been scheduled",
    );
    check(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "1970-01-01T00:00:00Z"}, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}),
        Status::Failed,
        "Pod could not be scheduled",
    );
    check(
        pod(json!({})),
        Status::InProgress,
        "Pod phase not available",
    );
    assert!(compute(&pod(json!({"phase": "Weird"})), 0).is_err());

    check(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}),
        Status::InProgress,
        "PVC is not Bound. phase: Pending",
    );
    check(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}),
        Status::Current,
        "PVC is Bound",
    );
    check(
        json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}}),
        Status::InProgress,
        "ClusterIP not set. Service type: LoadBalancer",
    );
    check(
        json!({"apiVersion": "v1", "kind": "Service", "spec": {"clusterIP": "10.0.0.1"}}),
        Status::Current,
        "Service is ready",
    );
    for kind in ["Secret", "ConfigMap"] {
        check(
            json!({"apiVersion": "v1", "kind": kind}),
            Status::Current,
            "Resource is always ready",
        );
    }
    check(
        json!({"apiVersion": "batch/v1", "kind": "CronJob"}),
        Status::Current,
        "Resource is always ready",
    );

    let job = |spec: Value, status: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "spec": spec, "status": status});
    check(
        job(json!({"suspend": true}), json!({})),
        Status::Current,
        "Job is suspended",
    );
    check(
        job(
            json!({}),
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
        ),
        Status::Current,
        "Job Completed. succeeded: 1/1",
    );
    check(
        job(
            json!({}),
            json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True"}]}),
        ),
        Status::Failed,
        "Job Failed. failed: 3/1",
    );
    check(
        job(json!({"parallelism": 2}), json!({})),
        Status::InProgress,
        "Job not started. active: 0/2",
    );
    check(
        job(json!({}), json!({"startTime": "x", "active": 1})),
        Status::InProgress,
        "Job in progress. success:0, active: 1, failed: 0",
    );

    let crd = |conds: Value| json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {"conditions": conds}});
    check(
        crd(json!([{"type": "Established", "status": "True"}])),
        Status::Current,
        "CRD is established",
    );
    check(
        crd(
            json!([{"type": "NamesAccepted", "status": "False", "reason": "Conflict", "message": "name taken"}]),
        ),
        Status::Failed,
        "name taken",
    );
    check(crd(json!([])), Status::InProgress, "Install in progress");
    check(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}),
        Status::Current,
        "AllowedDisruptions has been computed.",
    );
}

#[test]
fn malformed_generation_and_conditions_are_errors() {
    assert!(compute(&json!({"kind": "X", "metadata": {"generation": 1.5}, "status": {"observedGeneration": 1}}), 0).is_err());
    assert!(compute(&json!({"kind": "X", "status": {"conditions": "nope"}}), 0).is_err());
}

#[test]
fn aggregation() {
    use Status::*;
    assert_eq!(aggregate(&[], Current), Current);
    assert_eq!(aggregate(&[Current, Failed, Unknown], Current), Failed);
    assert_eq!(aggregate(&[Current, Unknown], Current), Unknown);
    assert_eq!(aggregate(&[Current, Current], Current), Current);
    assert_eq!(aggregate(&[Current, InProgress], Current), InProgress);
    assert_eq!(aggregate(&[NotFound], NotFound), NotFound);
}
