use crate::ObjectRef;

/// What went wrong applying, pruning or waiting, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest is not a Kubernetes object.
    #[error("invalid object: {0}")]
    Invalid(String),
    /// The API server does not serve the object's kind.
    #[error(
        "{id}: no matches for kind \"{kind}\" in version \"{api_version}\" (is its CRD installed?)"
    )]
    UnknownKind {
        id: String,
        kind: String,
        api_version: String,
    },
    /// A namespaced object has no namespace.
    #[error(
        "{0} namespace not specified: the object is namespaced; set metadata.namespace or targetNamespace"
    )]
    NamespaceMissing(String),
    /// The API server refused the apply (dry-run or real).
    #[error("{id} {verb} failed: {message}")]
    Apply {
        id: String,
        verb: &'static str,
        message: String,
    },
    /// Deleting a stale object failed.
    #[error("{id} delete failed: {message}")]
    Delete { id: String, message: String },
    /// The wait ended with objects not Current.
    #[error("{0}")]
    Wait(String),
    /// Any other API error.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

impl Error {
    pub(crate) fn apply(obj: &ObjectRef, verb: &'static str, err: kube::Error) -> Self {
        let message = match err {
            kube::Error::Api(status) => status.message,
            other => other.to_string(),
        };
        Error::Apply {
            id: obj.to_string(),
            verb,
            message,
        }
    }
}
