//! The runtime's error type.

/// What can go wrong in the shared runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("failed to {action}: {source}")]
    Kube {
        /// What we were doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A value could not be serialized.
    #[error("failed to serialize: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A listen address or other flag value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An I/O operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What we were doing.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
