//! What every ferroflux controller shares (FLUX-API.md §3, §4; ARCHITECTURE.md):
//!
//! * [`conditions`]: pure kstatus/Flux condition helpers and `finalize_status`;
//! * [`status`]: server-side apply of the status subresource as `gotk-<controller>`;
//! * [`events`]: Kubernetes Events plus the POST of Flux's event JSON to `--events-addr`;
//! * [`controller`]: the reconcile scaffold around kube-runtime's `Controller` (finalizer,
//!   suspend, reconcile requests, jittered requeue, backoff, concurrency, sharding);
//! * [`metrics`], [`http`]: `/metrics`, `/healthz`, `/readyz`;
//! * [`leader`]: leader election on a Lease;
//! * [`flags`]: the shared command-line flags; [`manager`]: process wiring;
//!   [`shutdown`]: SIGTERM handling.

pub mod conditions;
pub mod controller;
pub mod error;
pub mod events;
pub mod flags;
pub mod http;
pub mod leader;
pub mod manager;
pub mod metrics;
pub mod shutdown;
pub mod status;

pub use controller::{Context, ReconcileError, Reconciler};
pub use error::Error;
pub use events::{EventRecorder, Severity};
pub use flags::RuntimeArgs;
pub use manager::Manager;
