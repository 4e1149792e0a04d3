//! Artifacts for ferroflux: what source-controller produces and what kustomize-controller and
//! helm-controller consume (FLUX-API.md §2).
//!
//! * [`archive`]: a directory → deterministic tar.gz with its sha256 digest, built the way Flux's
//!   `storage.Archive` builds it; exclusions in [`ignore`].
//! * [`storage`]: the on-disk layout `<kind>/<namespace>/<name>/<file>`, atomic writes,
//!   `latest.tar.gz`/`index.yaml` symlinks, retention, one writer per object directory.
//! * [`server`]: the HTTP file server for the storage directory.
//! * [`fetch`] and [`extract`]: download with retries, verify the digest while streaming, and
//!   extract into a fresh temporary directory, refusing anything unsafe.
//!
//! Engines here never read the clock or the environment: `now` and the
//! `SOURCE_CONTROLLER_LOCALHOST` override are parameters ([`fetch::localhost_override_from_env`]
//! is the one edge helper that reads the environment).

pub mod archive;
pub mod digest;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod ignore;
pub mod pargz;
pub mod server;
pub mod storage;

pub use error::{Error, Result};
