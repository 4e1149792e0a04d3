//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in a build. Each variant names the file
/// (or kustomization root) and, where it applies, the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{0}'"
    )]
    MissingKustomization(PathBuf),
    #[error("found multiple kustomization files under: {0}")]
    MultipleKustomizations(PathBuf),
    #[error("invalid Kustomization in {file}: {msg}")]
    InvalidKustomization { file: PathBuf, msg: String },
    #[error("{file}: field '{field}': {msg}")]
    Field {
        file: PathBuf,
        field: String,
        msg: String,
    },
    #[error("malformed YAML in {file}: {msg}")]
    MalformedYaml { file: PathBuf, msg: String },
    #[error("{file}: {msg}")]
    InvalidResource { file: PathBuf, msg: String },
    #[error("accumulating resources from '{path}' in {root}: {msg}")]
    MissingResource {
        root: PathBuf,
        path: String,
        msg: String,
    },
    #[error("security; file '{path}' is not in or below '{root}'")]
    OutsideRoot { path: PathBuf, root: PathBuf },
    #[error("cycle detected: '{0}' is already being built higher up in the tree")]
    Cycle(PathBuf),
    #[error("kustomization tree is too deep (more than {0} levels)")]
    TooDeep(usize),
    #[error("may not add resource with an already registered id: {0}")]
    DuplicateId(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{context}: {msg}")]
    Transform { context: String, msg: String },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn transform(context: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Transform {
            context: context.into(),
            msg: msg.to_string(),
        }
    }
    pub(crate) fn other(msg: impl std::fmt::Display) -> Self {
        Error::Other(msg.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
