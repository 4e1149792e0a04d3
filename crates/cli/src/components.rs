//! Waiting for the controllers' Deployments to become ready, as `flux install` does
//! (Flux's status checker: kstatus on each component's Deployment, polled until all are
//! Current or the timeout passes, then one line per component, sorted by name).

use std::time::Duration;

use anyhow::bail;
use ferroflux_kstatus::Status;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

use crate::output;

/// What was last seen of one component's Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The Deployment's name (the component).
    pub name: String,
    /// kstatus of the Deployment; `NotFound` when it does not exist.
    pub status: Status,
    /// kstatus's explanation (`Available: 0/1`), or the read error.
    pub message: String,
}

/// kstatus of a Deployment (or `NotFound`), with its message.
pub fn judge(name: &str, deployment: Option<&Deployment>, now_unix: i64) -> Observed {
    let (status, message) = match deployment {
        None => (Status::NotFound, "not found".to_string()),
        Some(d) => match serde_json::to_value(d)
            .map_err(|e| e.to_string())
            .and_then(|v| ferroflux_kstatus::compute(&v, now_unix).map_err(|e| e.to_string()))
        {
            Ok(outcome) => (outcome.status, outcome.message),
            Err(err) => (Status::Unknown, err),
        },
    };
    Observed {
        name: name.to_string(),
        status,
        message,
    }
}

/// Whether every component is Current.
pub fn all_ready(observed: &[Observed]) -> bool {
    observed.iter().all(|o| o.status == Status::Current)
}

/// Flux's report lines, sorted by name: `(ok, "source-controller: deployment ready")`.
pub fn report(observed: &[Observed]) -> Vec<(bool, String)> {
    let mut sorted: Vec<&Observed> = observed.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
        .into_iter()
        .map(|o| match o.status {
            Status::Current => (true, format!("{}: deployment ready", o.name)),
            Status::NotFound => (false, format!("{}: deployment not found", o.name)),
            _ => (
                false,
                format!("{}: deployment not ready ({})", o.name, o.message),
            ),
        })
        .collect()
}

/// The error of a wait that ended with components not ready: names them and says where
/// to look, since the cause is on the cluster's side (images, scheduling, crashes).
pub fn not_ready_error(observed: &[Observed], ns: &str, timeout: Duration) -> String {
    let mut names: Vec<&str> = observed
        .iter()
        .filter(|o| o.status != Status::Current)
        .map(|o| o.name.as_str())
        .collect();
    names.sort();
    let first = names.first().copied().unwrap_or("source-controller");
    format!(
        "install failed: {} not ready after {}: see `kubectl -n {ns} describe deployment {first}`, \
         `kubectl -n {ns} get pods` and `ferroflux logs`, then run `ferroflux check` \
         (or raise --timeout if the images are still being pulled)",
        names.join(", "),
        output::format_duration(timeout),
    )
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Polls the named Deployments in `ns` every `interval` until all are ready or `timeout`
/// passes, prints one line per component, and fails naming the ones not ready.
pub async fn wait_ready(
    client: &kube::Client,
    ns: &str,
    names: &[String],
    interval: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + timeout;
    let observed = loop {
        let mut observed = Vec::with_capacity(names.len());
        for name in names {
            let seen = match api.get_opt(name).await {
                Ok(d) => judge(name, d.as_ref(), now_unix()),
                Err(err) => Observed {
                    name: name.clone(),
                    status: Status::Unknown,
                    message: format!("reading it failed: {err}"),
                },
            };
            observed.push(seen);
        }
        let now = tokio::time::Instant::now();
        if all_ready(&observed) || now >= deadline {
            break observed;
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    };
    for (ok, line) in report(&observed) {
        if ok {
            output::success(line);
        } else {
            output::failure(line);
        }
    }
    if !all_ready(&observed) {
        bail!("{}", not_ready_error(&observed, ns, timeout));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "namespace": "flux-system", "generation": 1},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 600,
                     "selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}},
                                  "spec": {"containers": [{"name": "manager", "image": "x"}]}}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_available_deployment_is_ready_and_a_new_one_is_not() {
        let ready = deployment(serde_json::json!({
            "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }));
        assert_eq!(judge("a", Some(&ready), 0).status, Status::Current);
        // What the API server holds before any kubelet ran a pod.
        let fresh = deployment(serde_json::json!({}));
        let seen = judge("b", Some(&fresh), 0);
        assert_eq!(seen.status, Status::InProgress);
        assert_eq!(judge("c", None, 0).status, Status::NotFound);
    }

    #[test]
    fn the_report_is_sorted_and_the_error_names_what_is_not_ready() {
        let observed = vec![
            Observed {
                name: "source-controller".into(),
                status: Status::InProgress,
                message: "Replicas: 0/1".into(),
            },
            Observed {
                name: "helm-controller".into(),
                status: Status::Current,
                message: String::new(),
            },
            Observed {
                name: "kustomize-controller".into(),
                status: Status::NotFound,
                message: "not found".into(),
            },
        ];
        assert!(!all_ready(&observed));
        assert_eq!(
            report(&observed),
            vec![
                (true, "helm-controller: deployment ready".to_string()),
                (
                    false,
                    "kustomize-controller: deployment not found".to_string()
                ),
                (
                    false,
                    "source-controller: deployment not ready (Replicas: 0/1)".to_string()
                ),
            ]
        );
        let err = not_ready_error(&observed, "flux-system", Duration::from_secs(300));
        assert!(
            err.starts_with(
                "install failed: kustomize-controller, source-controller not ready after 5m0s: \
                 see `kubectl -n flux-system describe deployment kustomize-controller`"
            ),
            "{err}"
        );
        assert!(err.contains("ferroflux logs"), "{err}");
    }
}
