//! The build pipeline of a Kustomization, without the cluster: prepare the directory,
//! run the native kustomize engine, substitute variables, add common metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferroflux_api::kustomization::{KustomizationSpec, SubstituteStrategy};
use ferroflux_kustomize::{BuildOptions, DiskFs, FileSystem};

use crate::generator::{GenerateError, prepare, secure_join};
use crate::postbuild::{PostBuildError, describe, set_common_metadata, substitute_objects};

/// Why a build failed. [`BuildError::reason`] gives the Flux condition reason.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The directory could not be prepared.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// kustomize refused the input.
    #[error("kustomize build failed: {0}")]
    Kustomize(String),
    /// Variable substitution failed.
    #[error("post build failed: {0}")]
    PostBuild(#[from] PostBuildError),
    /// A SOPS-encrypted Secret and no decryption configured.
    #[error(
        "{0} is encrypted with SOPS but spec.decryption is not set: add `decryption: {{provider: sops, secretRef: ...}}` to the Kustomization"
    )]
    EncryptedWithoutDecryption(String),
}

impl BuildError {
    /// The `Ready=False` reason Flux uses for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            BuildError::Generate(GenerateError::PathNotFound(_)) => {
                ferroflux_api::meta::reasons::ARTIFACT_FAILED
            }
            _ => ferroflux_api::meta::reasons::BUILD_FAILED,
        }
    }
}

/// The artifact on disk with the effective kustomization file laid over it in memory, so
/// that builds never modify the (shared, cached) extracted artifact.
struct OverlayFs {
    file: PathBuf,
    content: Vec<u8>,
}

impl FileSystem for OverlayFs {
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path == self.file {
            return Ok(self.content.clone());
        }
        DiskFs.read_file(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        DiskFs.is_dir(path)
    }
    fn is_file(&self, path: &Path) -> bool {
        path == self.file || DiskFs.is_file(path)
    }
}

/// Builds the Kustomization from an extracted artifact at `root`, which is only read.
/// `vars` are the post-build variables already gathered from `substituteFrom`; the
/// inline `spec.postBuild.substitute` ones are added here and win.
pub fn build(
    root: &Path,
    spec: &KustomizationSpec,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<serde_yaml::Value>, BuildError> {
    let dir = secure_join(root, spec.path());
    let (file, content) = prepare(root, &dir, spec)?;
    let fs = OverlayFs {
        file,
        content: content.into_bytes(),
    };
    let mut objects =
        ferroflux_kustomize::build(&fs, &dir, &BuildOptions::default()).map_err(|e| {
            // kustomize errors name absolute paths of our scratch directory; show them
            // relative to the artifact root, as the user knows them.
            BuildError::Kustomize(
                e.to_string()
                    .replace(&format!("{}/", root.display()), "")
                    .replace(&root.display().to_string(), "."),
            )
        })?;
    if let Some(post) = &spec.post_build {
        let mut merged = vars.clone();
        merged.extend(post.substitute.clone().unwrap_or_default());
        substitute_objects(
            &mut objects,
            &merged,
            spec.substitute_strategy() == SubstituteStrategy::Always,
        )?;
    }
    if spec.decryption.is_none()
        && let Some(secret) = objects.iter().find(|o| {
            o.get("kind").and_then(|k| k.as_str()) == Some("Secret") && o.get("sops").is_some()
        })
    {
        return Err(BuildError::EncryptedWithoutDecryption(describe(secret)));
    }
    if let Some(common) = &spec.common_metadata {
        set_common_metadata(
            &mut objects,
            &common.labels.clone().unwrap_or_default(),
            &common.annotations.clone().unwrap_or_default(),
        );
    }
    Ok(objects)
}
