//! The small filesystem interface the engine reads through.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Read-only access to a file tree. Paths given to it are absolute and
/// lexically clean (no `.` or `..` components).
pub trait FileSystem {
    /// The bytes of a regular file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Whether `path` is a regular file.
    fn is_file(&self, path: &Path) -> bool;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFs;

impl FileSystem for DiskFs {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}

/// An in-memory filesystem for tests: a map from absolute path to contents.
#[derive(Debug, Default, Clone)]
pub struct MemFs {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemFs {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) a file; `path` should be absolute.
    pub fn add(&mut self, path: impl AsRef<Path>, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.files.insert(clean(path.as_ref()), contents.into());
        self
    }
}

impl FileSystem for MemFs {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(&clean(path))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
    fn is_dir(&self, path: &Path) -> bool {
        let p = clean(path);
        self.files.keys().any(|k| k != &p && k.starts_with(&p))
    }
    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(&clean(path))
    }
}

/// Lexically cleans a path: drops `.`, resolves `..` against preceding components.
pub fn clean(p: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}
