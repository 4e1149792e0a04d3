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

/// Entry points for the fuzz targets (not a stable API).
#[doc(hidden)]
pub mod fuzz_api {
    use std::path::Path;

    /// Parses a kustomization file.
    pub fn parse_kustomization(text: &str) -> bool {
        crate::kustomization::Kustomization::parse(text).is_ok()
    }

    /// Parses a patch as strategic-merge objects and as JSON 6902, and
    /// applies whatever parsed to a fixed Deployment.
    pub fn parse_and_apply_patch(text: &str) {
        let base = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  labels: {a: b}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: c\n        image: i\n        ports:\n        - containerPort: 80\n        env:\n        - {name: A, value: x}\n";
        let Ok(mut target) = crate::build::parse_resources(base, Path::new("base.yaml")) else {
            return;
        };
        let schemas = crate::openapi::Schemas::default();
        if let Ok(patches) = crate::build::parse_resources(text, Path::new("patch.yaml")) {
            for p in &patches {
                let _ = crate::patch::apply_sm_patch(&mut target[0], p, &schemas);
            }
        }
        if let Ok(ops) = crate::patch::parse_json_patch(text) {
            let _ = crate::patch::apply_json_patch(&mut target[0].obj, &ops);
        }
        let _ = crate::to_yaml_stream(&[target[0].obj.clone()]);
    }

    /// Builds an in-memory tree whose kustomization is `kustomization`
    /// and whose `patch.yaml` is `patch`.
    pub fn build_mem(kustomization: &str, patch: &str) {
        let mut fs = crate::MemFs::new();
        fs.add("/k/kustomization.yaml", kustomization.as_bytes().to_vec());
        fs.add("/k/patch.yaml", patch.as_bytes().to_vec());
        fs.add(
            "/k/res.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: v\n".to_vec(),
        );
        fs.add(
            "/k/base/kustomization.yaml",
            b"resources:\n- ../res.yaml\n".to_vec(),
        );
        let _ = crate::build(&fs, Path::new("/k"), &crate::BuildOptions::default());
    }
}
