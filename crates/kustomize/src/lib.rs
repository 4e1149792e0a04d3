//! Native `kustomize build` with kustomize v5.7 behaviour.
//!
//! A pure engine: a directory in, a list of objects out. Files are read
//! through the [`FileSystem`] trait; there is no kube client, network,
//! environment or clock access. Remote bases, exec/container/starlark
//! functions and non-builtin plugins are refused with a clear error.
//!
//! ```no_run
//! use ferroflux_kustomize::{build, to_yaml_stream, BuildOptions, DiskFs};
//! let objs = build(&DiskFs, std::path::Path::new("/repo/app"), &BuildOptions::default()).unwrap();
//! print!("{}", to_yaml_stream(&objs));
//! ```

mod build;
mod crds;
mod error;
mod fieldpath;
mod fieldspec;
pub mod fs;
mod generators;
mod kustomization;
mod nameref;
mod openapi;
mod patch;
mod replacements;
mod resid;
mod resource;
mod selector;
mod transforms;
mod valueadd;
mod vars;
pub mod yaml;

use std::path::Path;

pub use error::{Error, Result};
pub use fs::{DiskFs, FileSystem, MemFs};
pub use serde_yaml::Value;

/// Options of a build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Apply kustomize's output order (legacy order unless the
    /// kustomization sets `sortOptions`). Default true, as `kustomize build`.
    pub sort: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { sort: true }
    }
}

/// Builds the kustomization in `dir` and returns the resulting objects in
/// kustomize's output order. `dir` should be absolute (relative paths are
/// taken as they are by the filesystem).
pub fn build(fs: &dyn FileSystem, dir: &Path, opts: &BuildOptions) -> Result<Vec<Value>> {
    let mut b = build::Builder::new(fs);
    let res = b.build(dir, opts.sort)?;
    Ok(res.into_iter().map(|r| r.obj).collect())
}

/// Serializes objects as a YAML stream the way kustomize prints them
/// (keys sorted, documents separated by `---`).
pub fn to_yaml_stream(objs: &[Value]) -> String {
    let mut out = String::new();
    for (i, o) in objs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&yaml::to_yaml_string(&yaml::sorted(o)));
    }
    out
}
