//! Shared by the CLI's integration tests.

use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// Plays the kubelet and the Deployment controller for namespace `ns`: reports every
/// Deployment's replicas updated, ready and available, with the conditions the Deployment
/// controller sets, so that kstatus reads them as Current.
pub fn play_kubelet(client: kube::Client, ns: &str) -> tokio::task::JoinHandle<()> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, ns);
    tokio::spawn(async move {
        loop {
            if let Ok(list) = api.list(&Default::default()).await {
                for d in list.items {
                    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    let status = json!({"status": {
                        "observedGeneration": d.metadata.generation,
                        "replicas": replicas, "updatedReplicas": replicas,
                        "readyReplicas": replicas, "availableReplicas": replicas,
                        "conditions": [
                            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                        ],
                    }});
                    let name = d.metadata.name.unwrap_or_default();
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}
