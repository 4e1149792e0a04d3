//! source.toolkit.fluxcd.io/v1: the kinds source-controller serves.

mod bucket;
mod common;
mod externalartifact;
mod gitrepository;
mod helmchart;
mod helmrepository;
mod ocirepository;

pub use bucket::*;
pub use common::*;
pub use externalartifact::*;
pub use gitrepository::*;
pub use helmchart::*;
pub use helmrepository::*;
pub use ocirepository::*;

/// API group of the source kinds.
pub const GROUP: &str = "source.toolkit.fluxcd.io";
/// Served and stored version.
pub const VERSION: &str = "v1";

macro_rules! source_status {
    ($($status:ty),*) => {$(
        impl SourceStatus for $status {
            fn artifact(&self) -> Option<&crate::meta::Artifact> {
                self.artifact.as_ref()
            }
            fn conditions(&self) -> &[crate::meta::Condition] {
                self.conditions.as_deref().unwrap_or_default()
            }
        }
    )*};
}

source_status!(
    GitRepositoryStatus,
    OCIRepositoryStatus,
    HelmRepositoryStatus,
    HelmChartStatus,
    BucketStatus,
    ExternalArtifactStatus
);
