//! `spec.include` of a GitRepository: the artifact of another GitRepository (read from this
//! process's storage) is unpacked and its `fromPath` laid over the archive at `toPath`
//! (Flux's `Storage.CopyToPath`).

use std::fs;
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};

use ferroflux_api::source::GitRepositoryInclude;
use ferroflux_artifact::extract::{ExtractLimits, extract_tar_gz};
use ferroflux_artifact::storage::{Artifact, Storage};

use crate::archive::Overlay;

/// `fromPath`, defaulting to the artifact's root.
pub fn from_path(incl: &GitRepositoryInclude) -> &str {
    incl.from_path.as_deref().unwrap_or("")
}

/// `toPath`, defaulting to the included repository's name.
pub fn to_path(incl: &GitRepositoryInclude) -> &str {
    incl.to_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(&incl.repository.name)
}

/// Joins `rel` under `root` lexically, clamping `..` at `root` (like Go's securejoin
/// without symlinks), so a path can never leave `root`.
pub fn secure_join(root: &Path, rel: &str) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

/// An included artifact unpacked into a temporary directory, and where its `fromPath` goes.
pub struct UnpackedInclude {
    /// Lays `fromPath` over the archive at `toPath`.
    pub overlay: Overlay,
    _dir: tempfile::TempDir,
}

/// The path components of `rel` below the root, `..` clamped at the root (as
/// [`secure_join`]).
pub fn secure_components(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts
}

/// Unpacks the included artifact and finds its `fromPath`, to be laid over the archive at
/// `toPath` (Flux's `Storage.CopyToPath`). The error is the message Flux gives (`failed to
/// copy '<name>' include from <from> to <to>: <why>`).
pub fn unpack_include(
    storage: &Storage,
    artifact: &Artifact,
    incl: &GitRepositoryInclude,
) -> Result<UnpackedInclude, String> {
    let name = &incl.repository.name;
    let (from, to) = (from_path(incl), to_path(incl));
    let fail = |why: String| format!("failed to copy '{name}' include from {from} to {to}: {why}");
    let local = storage
        .local_path(artifact)
        .map_err(|e| fail(e.to_string()))?;
    let file =
        fs::File::open(&local).map_err(|e| fail(format!("open {}: {e}", local.display())))?;
    let unpack = tempfile::Builder::new()
        .prefix("include-")
        .tempdir()
        .map_err(|e| fail(format!("create temporary directory: {e}")))?;
    let limits = ExtractLimits {
        max_size: None,
        ..ExtractLimits::default()
    };
    extract_tar_gz(BufReader::new(file), unpack.path(), &limits)
        .map_err(|e| fail(e.to_string()))?;
    let src = secure_join(unpack.path(), from);
    if fs::symlink_metadata(&src).is_err() {
        return Err(fail(format!(
            "'{from}' does not exist in the artifact of '{name}'"
        )));
    }
    Ok(UnpackedInclude {
        overlay: Overlay {
            to: secure_components(to),
            src,
        },
        _dir: unpack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_default_and_stay_inside() {
        let mut incl = GitRepositoryInclude::default();
        incl.repository.name = "lib".into();
        assert_eq!(to_path(&incl), "lib");
        assert_eq!(from_path(&incl), "");
        incl.to_path = Some("vendor/lib".into());
        assert_eq!(to_path(&incl), "vendor/lib");
        let root = Path::new("/w");
        assert_eq!(secure_join(root, "../../etc"), PathBuf::from("/w/etc"));
        assert_eq!(secure_join(root, "/a/./b/../c"), PathBuf::from("/w/a/c"));
        assert_eq!(secure_join(root, ""), PathBuf::from("/w"));
        assert_eq!(secure_components("../a/./b/../c/"), vec!["a", "c"]);
        assert!(secure_components("/").is_empty());
    }
}
