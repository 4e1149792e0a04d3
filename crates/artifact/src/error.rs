//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while archiving, storing, serving or fetching an artifact.
///
/// Callers in the controllers map [`Error::NotFound`] and [`Error::DigestMismatch`] (and the
/// other fetch errors) to the `ArtifactFailed` condition reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The artifact server answered 404.
    #[error("artifact not found at {url} (HTTP 404)")]
    NotFound { url: String },

    /// The downloaded bytes do not hash to the digest the source advertised.
    #[error("computed digest doesn't match provided: expected {expected}, computed {actual}")]
    DigestMismatch { expected: String, actual: String },

    /// The download is larger than the configured cap.
    #[error("artifact at {url} exceeds the download size limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },

    /// The request could not be made, the connection failed, or the server answered with a
    /// non-success status other than 404.
    #[error("HTTP GET {url} failed: {reason}")]
    Http { url: String, reason: String },

    /// An archive entry that would write outside the extraction root, or of a forbidden type.
    #[error("unsafe archive entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: String },

    /// The archive expands beyond the configured limits.
    #[error("archive rejected as a decompression bomb: {reason}")]
    Bomb { reason: String },

    /// The archive is not a readable gzip-compressed tar stream (truncated, corrupt, ...).
    #[error("invalid archive: {reason}")]
    InvalidArchive { reason: String },

    /// A digest string that is not `<algorithm>:<hex>` (or bare hex) with a supported algorithm.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },

    /// A path or URL that is not acceptable (empty name, `..`, not a directory, ...).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsafe_entry(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::UnsafeEntry {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn bomb(reason: impl Into<String>) -> Self {
        Error::Bomb {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_archive(reason: impl Into<String>) -> Self {
        Error::InvalidArchive {
            reason: reason.into(),
        }
    }

    /// True for the errors a fetch should not retry: the server answered definitively, or the
    /// bytes themselves are wrong.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Error::Http { .. } | Error::Io { .. })
    }
}
