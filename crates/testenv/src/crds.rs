//! Installs the CRDs in `crds/` and waits until the API server serves them.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

use crate::ClusterError;

/// Server-side applies every `*.yaml` CRD in `dir`, then waits for each to be Established.
pub async fn install_crds(client: &kube::Client, dir: &Path) -> Result<(), ClusterError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| ClusterError::Crds(format!("reading {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        // crds/kustomization.yaml makes the directory a kustomize base; it is not a CRD.
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ClusterError::Crds(format!("reading {}: {e}", file.display())))?;
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text)
            .map_err(|e| ClusterError::Crds(format!("parsing {}: {e}", file.display())))?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("ferroflux-testenv").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| ClusterError::Crds(format!("applying {}: {e}", file.display())))?;
        names.push(name);
    }
    for name in names {
        let mut established = false;
        for _ in 0..200 {
            let crd = api.get(&name).await?;
            established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !established {
            return Err(ClusterError::Crds(format!(
                "CRD {name} did not become Established"
            )));
        }
    }
    Ok(())
}
