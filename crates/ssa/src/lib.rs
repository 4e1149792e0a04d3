//! The apply engine shared by kustomize-controller and helm-controller (Flux's
//! `fluxcd/pkg/ssa`): server-side apply in stages (CRDs, Namespaces and ClusterRoles
//! first, then `*Class` kinds, then the rest), drift detection by dry-run, the inventory
//! of applied objects, garbage collection of stale ones, and kstatus waits.
//!
//! The deciding parts (staging, per-object policies, drift comparison, inventory diff,
//! wait aggregation) are pure functions in their own modules; [`ResourceManager`] does
//! the I/O.

mod apply;
pub mod cleanup;
mod error;
mod object;
mod policy;
mod prune;
mod stage;
mod wait;

pub use apply::{Action, ApplyOptions, ChangeSet, ChangeSetEntry, ResourceManager};
pub use error::Error;
pub use object::{ObjectRef, inventory_of, stale_objects};
pub use policy::{ApplyPolicy, apply_policy, prune_disabled};
pub use prune::PruneOptions;
pub use stage::{Stage, stage_of};
pub use wait::{CustomStatus, WaitOptions};
