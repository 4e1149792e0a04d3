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
//! Typical use:
//!
//! ```text
//! // source-controller (sync calls: run them in spawn_blocking)
//! let storage = Storage::new("/data", adv_addr, Retention { records: 2, ttl })?;
//! let mut a = storage.new_artifact_for("GitRepository", ns, name, &revision, &format!("{sha}.tar.gz"))?;
//! let _guard = storage.blocking_lock(&a)?;
//! let matcher = ignore::git_source_matcher(checkout, spec.ignore.as_deref())?;
//! storage.archive(&mut a, checkout, Some(&matcher), &ArchiveOptions::default(), now)?;
//! storage.garbage_collect(&a, now)?;
//! ArtifactServer::new("/data".as_ref())?.serve(ArtifactServer::bind(":9090").await?, shutdown).await?;
//!
//! // kustomize-controller / helm-controller
//! let opts = FetchOptions { retries: http_retry, host_override: localhost_override_from_env(&url), ..Default::default() };
//! let fetched = Fetcher::new(opts).fetch(&url, &digest, tmp_parent).await?; // NotFound / DigestMismatch → ArtifactFailed
//! kustomize_build(fetched.path().join(spec.path));
//! ```
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
