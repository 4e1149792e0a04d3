//! Prepares what a Kustomization builds, as Flux's generator does: use the
//! kustomization file found there or generate one listing every manifest, then write the
//! Kustomization's own overlays into it (targetNamespace, namePrefix/nameSuffix, patches,
//! components, images, buildMetadata).

use std::path::{Component, Path, PathBuf};

use ferroflux_api::kustomization::KustomizationSpec;
use serde_yaml::{Mapping, Value};

/// Kustomization file names kustomize recognises, in its order.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Why the build directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// `spec.path` does not exist in the artifact.
    #[error("kustomization path not found: {0}")]
    PathNotFound(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// A manifest or the kustomization file is not valid YAML.
    #[error("failed to decode Kubernetes YAML from {path}: {message}")]
    Yaml { path: String, message: String },
    /// A component is not a local relative path.
    #[error("component path '{0}' must be local and relative")]
    RemoteComponent(String),
}

/// Resolves `spec.path` inside `root` without ever leaving it: `..` stops at the root,
/// like Flux's SecureJoin.
pub fn secure_join(root: &Path, path: &str) -> PathBuf {
    let mut out = root.to_path_buf();
    let mut depth = 0usize;
    for part in Path::new(path).components() {
        match part {
            Component::Normal(p) => {
                out.push(p);
                depth += 1;
            }
            Component::ParentDir if depth > 0 => {
                out.pop();
                depth -= 1;
            }
            _ => {}
        }
    }
    out
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The effective kustomization of `dir`: its own kustomization file (or a generated one)
/// with the Kustomization's overlays written in. Returns the file's path and its new
/// content; nothing is written, so the extracted artifact can be shared between builds.
pub fn prepare(
    root: &Path,
    dir: &Path,
    spec: &KustomizationSpec,
) -> Result<(PathBuf, String), GenerateError> {
    if !dir.is_dir() {
        let shown = dir
            .strip_prefix(root)
            .map(|p| format!("./{}", p.display()))
            .unwrap_or_else(|_| dir.display().to_string());
        return Err(GenerateError::PathNotFound(format!(
            "stat {shown}: no such file or directory"
        )));
    }
    let existing = KUSTOMIZATION_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file());
    let (file, mut kus) = match existing {
        Some(file) => {
            let text = std::fs::read_to_string(&file).map_err(|e| io_err(&file, e))?;
            let value: Value = serde_yaml::from_str(&text).map_err(|e| GenerateError::Yaml {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            let map = match value {
                Value::Mapping(m) => m,
                Value::Null => Mapping::new(),
                _ => {
                    return Err(GenerateError::Yaml {
                        path: file.display().to_string(),
                        message: "not a mapping".into(),
                    });
                }
            };
            (file, map)
        }
        None => (dir.join("kustomization.yaml"), generate(dir)?),
    };
    apply_overlays(&mut kus, dir, spec)?;
    let text = serde_yaml::to_string(&Value::Mapping(kus)).map_err(|e| io_err(&file, e))?;
    Ok((file, text))
}

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

/// A kustomization listing every manifest and nested kustomization under `dir`.
fn generate(dir: &Path) -> Result<Mapping, GenerateError> {
    let mut resources = Vec::new();
    scan(dir, dir, &mut resources)?;
    let mut kus = Mapping::new();
    kus.insert(key("apiVersion"), key("kustomize.config.k8s.io/v1beta1"));
    kus.insert(key("kind"), key("Kustomization"));
    if resources.is_empty() {
        // An empty directory builds to nothing; kustomize needs some field set.
        kus.insert(key("namespace"), key("_placeholder"));
    } else {
        kus.insert(
            key("resources"),
            Value::Sequence(resources.into_iter().map(Value::String).collect()),
        );
    }
    Ok(kus)
}

fn scan(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), GenerateError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let relative = format!("./{}", path.strip_prefix(base).unwrap_or(&path).display());
        if path.is_dir() {
            if KUSTOMIZATION_FILES.iter().any(|f| path.join(f).is_file()) {
                out.push(relative);
            } else {
                scan(base, &path, out)?;
            }
            continue;
        }
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        if !is_yaml {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            use serde::Deserialize;
            Value::deserialize(doc).map_err(|e| GenerateError::Yaml {
                path: relative.clone(),
                message: e.to_string(),
            })?;
        }
        out.push(relative);
    }
    Ok(())
}

fn is_local_relative(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let remote = [
        "git::",
        "gh:",
        "ssh://",
        "https://",
        "http://",
        "git@",
        "github.com:",
        "github.com/",
    ]
    .iter()
    .any(|p| p.len() < lower.len() && lower.starts_with(p));
    !remote
        && !Path::new(path).is_absolute()
        && !Path::new(lower.trim_start_matches("file://")).is_absolute()
}

fn apply_overlays(
    kus: &mut Mapping,
    dir: &Path,
    spec: &KustomizationSpec,
) -> Result<(), GenerateError> {
    if let Some(ns) = &spec.target_namespace {
        kus.insert(key("namespace"), key(ns));
    }
    if let Some(prefix) = &spec.name_prefix {
        kus.insert(key("namePrefix"), key(prefix));
    }
    if let Some(suffix) = &spec.name_suffix {
        kus.insert(key("nameSuffix"), key(suffix));
    }
    if let Some(patches) = spec.patches.as_ref().filter(|p| !p.is_empty()) {
        let list = sequence(kus, "patches");
        for patch in patches {
            list.push(serde_yaml::to_value(patch).map_err(|e| io_err(dir, e))?);
        }
    }
    if let Some(components) = &spec.components {
        let ignore_missing = spec.ignore_missing_components.unwrap_or(false);
        let mut add = Vec::new();
        for component in components {
            if !is_local_relative(component) {
                return Err(GenerateError::RemoteComponent(component.clone()));
            }
            if ignore_missing && !dir.join(component).exists() {
                continue;
            }
            add.push(Value::String(component.clone()));
        }
        if !add.is_empty() {
            sequence(kus, "components").extend(add);
        }
    }
    if let Some(images) = spec.images.as_ref().filter(|i| !i.is_empty()) {
        let list = sequence(kus, "images");
        for image in images {
            let existing = list
                .iter_mut()
                .find(|i| i.get("name").and_then(Value::as_str) == Some(image.name.as_str()));
            match existing {
                Some(Value::Mapping(entry)) => {
                    if let Some(new_name) = image.new_name.as_ref().filter(|n| !n.is_empty()) {
                        entry.insert(key("newName"), key(new_name));
                    }
                    if image.new_tag.as_deref().is_some_and(|t| !t.is_empty())
                        || image.digest.as_deref().is_some_and(|d| !d.is_empty())
                    {
                        set_or_remove(entry, "newTag", image.new_tag.as_deref());
                        set_or_remove(entry, "digest", image.digest.as_deref());
                    }
                }
                _ => list.push(serde_yaml::to_value(image).map_err(|e| io_err(dir, e))?),
            }
        }
    }
    if let Some(metadata) = spec.build_metadata.as_ref().filter(|m| !m.is_empty()) {
        kus.insert(
            key("buildMetadata"),
            serde_yaml::to_value(metadata).map_err(|e| io_err(dir, e))?,
        );
    }
    Ok(())
}

fn set_or_remove(entry: &mut Mapping, field: &str, value: Option<&str>) {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => {
            entry.insert(key(field), key(v));
        }
        None => {
            entry.remove(key(field));
        }
    }
}

fn sequence<'a>(kus: &'a mut Mapping, field: &str) -> &'a mut Vec<Value> {
    if !matches!(kus.get(key(field)), Some(Value::Sequence(_))) {
        kus.insert(key(field), Value::Sequence(Vec::new()));
    }
    match kus.get_mut(key(field)) {
        Some(Value::Sequence(seq)) => seq,
        _ => unreachable!("inserted above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_never_leaves_the_root() {
        let root = Path::new("/tmp/artifact");
        assert_eq!(secure_join(root, "./apps/prod"), root.join("apps/prod"));
        assert_eq!(secure_join(root, "../../etc"), root.join("etc"));
        assert_eq!(secure_join(root, "/abs/path"), root.join("abs/path"));
        assert_eq!(secure_join(root, "a/../../b"), root.join("b"));
    }

    #[test]
    fn local_relative_paths() {
        assert!(is_local_relative("../components/x"));
        assert!(!is_local_relative("https://github.com/x"));
        assert!(!is_local_relative("/abs"));
    }
}
