//! The artifact of a commit, built straight from the git objects in the cache repository:
//! no checkout is written to disk.
//!
//! The tar stream is the one [`ferroflux_artifact::archive::write_archive`] would produce for a
//! checkout of the commit (what `git::checkout` used to write), entry for entry:
//!
//! * the commit's tree, limited by `spec.sparseCheckout` (cone mode: the root files plus
//!   everything on or below the listed directories);
//! * blobs become files (the executable bit kept), symlinks are left out (the directory archiver
//!   never follows nor stores them), a submodule is an empty directory unless its checkout is
//!   given (`spec.recurseSubmodules`), then it is that commit's tree, recursively;
//! * names that would be unsafe in a checkout (`..`, `.git`, with a `/`) are skipped;
//! * the exclusion rules are the `.sourceignore` files found in that tree (at any depth, in the
//!   order `ignore::load_ignore_files` reads them from a directory), then `spec.ignore`, on top
//!   of Flux's defaults;
//! * `spec.include` content (already unpacked from the other artifacts) is laid over the tree at
//!   its `toPath`, replacing what is there, as copying it into a checkout did.
//!
//! Git sorts a tree's entries as if directory names ended with `/`; the archive wants plain
//! byte order of the names (a directory walk's order), so each directory is sorted again.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferroflux_artifact::archive::ArchiveWriter;
use ferroflux_artifact::ignore::{self, Matcher, Pattern};
use gix::objs::tree::EntryKind;

use crate::git::{GitError, open_cache, safe_name, tree_of};

/// A submodule's commit, fetched into its own cache repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmoduleCheckout {
    /// Its path from the root of the archive (parents' submodule paths included).
    pub path: Vec<String>,
    /// The cache repository holding `commit`.
    pub cache_dir: PathBuf,
    /// The commit recorded in the parent's tree.
    pub commit: String,
}

/// Content laid over the tree: the file or directory `src` lands at `to`.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Destination, as path components from the archive root (empty: the root).
    pub to: Vec<String>,
    /// A file or directory on disk.
    pub src: PathBuf,
}

/// What to archive.
pub struct ArchiveInput<'a> {
    /// The cache repository holding `commit`.
    pub cache_dir: &'a Path,
    /// The commit (full hex).
    pub commit: &'a str,
    /// `spec.sparseCheckout`.
    pub sparse: &'a [String],
    /// Submodules to expand; any other submodule is an empty directory.
    pub submodules: &'a [SubmoduleCheckout],
    /// `spec.include` content, in `spec.include` order (a later one wins).
    pub overlays: &'a [Overlay],
    /// `spec.ignore`.
    pub ignore: Option<&'a str>,
}

/// Where a file's bytes are.
#[derive(Debug, Clone)]
enum Content {
    Blob { repo: usize, id: gix::ObjectId },
    Disk(PathBuf),
}

#[derive(Debug, Clone)]
enum Node {
    /// A git tree, read when visited. `sparse`: whether `spec.sparseCheckout` applies to its
    /// entries (not inside submodules: they are checked out whole, like git does).
    Tree {
        repo: usize,
        id: gix::ObjectId,
        sparse: bool,
    },
    /// A directory held in memory (a tree something was laid over, or an empty submodule).
    Dir(BTreeMap<Vec<u8>, Node>),
    File {
        executable: bool,
        content: Content,
    },
    /// In a checkout but never archived (symlinks).
    Skipped,
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(self, Node::Tree { .. } | Node::Dir(_))
    }
}

type Children<'n> = Vec<(Vec<u8>, Cow<'n, Node>)>;

/// The sparse paths as components (empty ones dropped).
pub(crate) fn sparse_paths(sparse: &[String]) -> Vec<Vec<String>> {
    sparse
        .iter()
        .map(|s| {
            s.trim_matches('/')
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(str::to_string)
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .collect()
}

/// Cone-mode sparse checkout: whether the entry `name` of the directory `dir` is checked out.
/// Directories on or below a sparse path are; other entries (files, submodules) only at the
/// root or below a sparse path.
pub(crate) fn sparse_wants(sparse: &[Vec<String>], dir: &[String], name: &str, tree: bool) -> bool {
    if sparse.is_empty() {
        return true;
    }
    if tree {
        let len = dir.len() + 1;
        return sparse.iter().any(|s| {
            let n = s.len().min(len);
            s[..n].iter().map(String::as_str).eq(dir
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(name))
                .take(n))
        });
    }
    dir.is_empty()
        || sparse
            .iter()
            .any(|s| dir.len() >= s.len() && dir[..s.len()] == s[..])
}

struct Source {
    repos: Vec<gix::Repository>,
    sparse: Vec<Vec<String>>,
    /// Submodule path → (repository index, root tree).
    submodules: HashMap<Vec<String>, (usize, gix::ObjectId)>,
}

impl Source {
    /// The entries of a directory node, in archive order. `dir` is its path.
    fn children<'n>(&self, node: &'n Node, dir: &[String]) -> Result<Children<'n>, GitError> {
        match node {
            Node::Dir(map) => Ok(map
                .iter()
                .map(|(k, v)| (k.clone(), Cow::Borrowed(v)))
                .collect()),
            Node::Tree { repo, id, sparse } => {
                let mut out: Children<'n> = self
                    .read_tree(*repo, *id, *sparse, dir)?
                    .into_iter()
                    .map(|(k, v)| (k, Cow::Owned(v)))
                    .collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }
            Node::File { .. } | Node::Skipped => Ok(Vec::new()),
        }
    }

    fn read_tree(
        &self,
        repo_idx: usize,
        tree_id: gix::ObjectId,
        sparse: bool,
        dir: &[String],
    ) -> Result<Vec<(Vec<u8>, Node)>, GitError> {
        let repo = &self.repos[repo_idx];
        let obj = repo
            .find_object(tree_id)
            .map_err(|e| GitError::Other(format!("missing tree {tree_id}: {e}")))?;
        let tree = obj
            .try_into_tree()
            .map_err(|e| GitError::Other(format!("not a tree {tree_id}: {e}")))?;
        let decoded = tree
            .decode()
            .map_err(|e| GitError::Other(format!("corrupt tree {tree_id}: {e}")))?;
        let no_sparse: &[Vec<String>] = &[];
        let cone = if sparse { &self.sparse[..] } else { no_sparse };
        let mut out = Vec::with_capacity(decoded.entries.len());
        for e in &decoded.entries {
            let Some(name) = safe_name(e.filename) else {
                tracing::warn!(name = %String::from_utf8_lossy(e.filename), "skipping unsafe path in git tree");
                continue;
            };
            let kind = e.mode.kind();
            if !sparse_wants(cone, dir, name, kind == EntryKind::Tree) {
                continue;
            }
            let id = e.oid.to_owned();
            let node = match kind {
                EntryKind::Tree => Node::Tree {
                    repo: repo_idx,
                    id,
                    sparse,
                },
                EntryKind::Blob | EntryKind::BlobExecutable => Node::File {
                    executable: kind == EntryKind::BlobExecutable,
                    content: Content::Blob { repo: repo_idx, id },
                },
                EntryKind::Link => Node::Skipped,
                EntryKind::Commit => {
                    let mut path = dir.to_vec();
                    path.push(name.to_string());
                    match self.submodules.get(&path) {
                        Some((repo, id)) => Node::Tree {
                            repo: *repo,
                            id: *id,
                            sparse: false,
                        },
                        // Like git without --recurse-submodules: an empty directory.
                        None => Node::Dir(BTreeMap::new()),
                    }
                }
            };
            out.push((name.as_bytes().to_vec(), node));
        }
        Ok(out)
    }

    fn read_content(&self, content: &Content) -> Result<Vec<u8>, GitError> {
        match content {
            Content::Blob { repo, id } => self.repos[*repo]
                .find_object(*id)
                .map(|o| o.detach().data)
                .map_err(|e| GitError::Other(format!("missing blob {id}: {e}"))),
            Content::Disk(p) => std::fs::read(p)
                .map_err(|e| GitError::Other(format!("failed to read {}: {e}", p.display()))),
        }
    }

    /// Turns the node at `node` into an in-memory directory (reading a git tree; a file or
    /// symlink there is replaced, as `mkdir -p` through a checkout would fail on a file: see
    /// [`Source::overlay`]) and returns its map.
    fn make_dir<'n>(
        &self,
        node: &'n mut Node,
        dir: &[String],
    ) -> Result<&'n mut BTreeMap<Vec<u8>, Node>, GitError> {
        match node {
            Node::Tree { repo, id, sparse } => {
                let entries = self.read_tree(*repo, *id, *sparse, dir)?;
                *node = Node::Dir(entries.into_iter().collect());
            }
            Node::File { .. } => {
                return Err(GitError::Other(format!(
                    "'{}' is a file, not a directory",
                    dir.join("/")
                )));
            }
            Node::Skipped => *node = Node::Dir(BTreeMap::new()),
            Node::Dir(_) => {}
        }
        match node {
            Node::Dir(map) => Ok(map),
            _ => unreachable!("made a directory above"),
        }
    }

    /// Lays the file or directory `src` over the tree at `to`: directories merge, a file
    /// replaces whatever was at its path (what copying into a checkout did).
    fn overlay(&self, root: &mut Node, to: &[String], src: &Path) -> Result<(), GitError> {
        let mut node = root;
        for i in 0..to.len() {
            let map = self.make_dir(node, &to[..i])?;
            node = map
                .entry(to[i].as_bytes().to_vec())
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
        }
        self.overlay_at(node, &mut to.to_vec(), src)
    }

    fn overlay_at(
        &self,
        node: &mut Node,
        path: &mut Vec<String>,
        src: &Path,
    ) -> Result<(), GitError> {
        let io = |e: std::io::Error| GitError::Other(format!("{}: {e}", src.display()));
        let meta = std::fs::symlink_metadata(src).map_err(io)?;
        if meta.is_dir() {
            let map = self.make_dir(node, path)?;
            let mut names: Vec<_> = std::fs::read_dir(src)
                .map_err(io)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            names.sort();
            for name in names {
                let Some(n) = name.to_str() else { continue };
                // A new entry that is neither a file nor a directory stays a placeholder
                // that is never archived (copying skipped such entries).
                let child = map.entry(n.as_bytes().to_vec()).or_insert(Node::Skipped);
                path.push(n.to_string());
                let res = self.overlay_at(child, path, &src.join(&name));
                path.pop();
                res?;
            }
        } else if meta.is_file() {
            *node = Node::File {
                executable: meta.permissions().mode() & 0o111 != 0,
                content: Content::Disk(src.to_path_buf()),
            };
        }
        Ok(())
    }

    /// The `.sourceignore` patterns of the tree, in `ignore::load_ignore_files` order: a
    /// directory's own file, then its subdirectories by name (`.git` never, symlinks never).
    fn ignore_patterns(
        &self,
        node: &Node,
        dir: &mut Vec<String>,
        out: &mut Vec<Pattern>,
    ) -> Result<(), GitError> {
        let children = self.children(node, dir)?;
        if let Some((_, f)) = children
            .iter()
            .find(|(n, _)| n.as_slice() == ignore::IGNORE_FILE.as_bytes())
            && let Node::File { content, .. } = f.as_ref()
        {
            let bytes = self.read_content(content)?;
            out.extend(ignore::read_patterns(&String::from_utf8_lossy(&bytes), dir));
        }
        for (name, child) in &children {
            if child.is_dir() && name.as_slice() != b".git" {
                dir.push(String::from_utf8_lossy(name).into_owned());
                let res = self.ignore_patterns(child, dir, out);
                dir.pop();
                res?;
            }
        }
        Ok(())
    }

    /// Writes the entries below `node` (the directory at `rel`), as the directory archiver
    /// walks a checkout.
    fn write<W: Write>(
        &self,
        node: &Node,
        rel: &mut Vec<String>,
        rel_bytes: &mut Vec<u8>,
        matcher: &Matcher,
        w: &mut ArchiveWriter<W>,
    ) -> Result<(), GitError> {
        let wio = |e: std::io::Error| GitError::Other(format!("failed to write archive: {e}"));
        for (name, child) in self.children(node, rel)? {
            let is_dir = child.is_dir();
            if !is_dir && !matches!(child.as_ref(), Node::File { .. }) {
                continue;
            }
            let prev_len = rel_bytes.len();
            if !rel_bytes.is_empty() {
                rel_bytes.push(b'/');
            }
            rel_bytes.extend_from_slice(&name);
            rel.push(String::from_utf8_lossy(&name).into_owned());
            let excluded = {
                let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
                matcher.is_excluded(&parts, is_dir)
            };
            let res = match child.as_ref() {
                Node::File {
                    executable,
                    content,
                } if !excluded => self
                    .read_content(content)
                    .and_then(|data| w.file(rel_bytes, *executable, &data).map_err(wio)),
                Node::File { .. } => Ok(()),
                _ if excluded && matcher.can_prune_excluded_dirs() => Ok(()),
                _ => {
                    let header = if excluded {
                        Ok(())
                    } else {
                        w.dir(rel_bytes).map_err(wio)
                    };
                    header.and_then(|()| self.write(&child, rel, rel_bytes, matcher, w))
                }
            };
            rel.pop();
            rel_bytes.truncate(prev_len);
            res?;
        }
        Ok(())
    }
}

/// Writes the archive of `input` (see the module documentation) into `w`, after its root
/// entry.
pub fn write_commit_archive<W: Write>(
    input: &ArchiveInput<'_>,
    w: &mut ArchiveWriter<W>,
) -> Result<(), GitError> {
    let mut repos = vec![open_cache(input.cache_dir)?];
    let root_tree = tree_of(&repos[0], input.commit)?.id;
    let mut submodules = HashMap::new();
    for s in input.submodules {
        let repo = open_cache(&s.cache_dir)?;
        let tree = tree_of(&repo, &s.commit)
            .map_err(|e| GitError::Other(format!("submodule '{}': {e}", s.path.join("/"))))?
            .id;
        submodules.insert(s.path.clone(), (repos.len(), tree));
        repos.push(repo);
    }
    for r in &mut repos {
        // Trees are read twice (ignore files, then entries): keep them decoded at hand.
        r.object_cache_size_if_unset(4 * 1024 * 1024);
    }
    let src = Source {
        repos,
        sparse: sparse_paths(input.sparse),
        submodules,
    };
    let mut root = Node::Tree {
        repo: 0,
        id: root_tree,
        sparse: true,
    };
    for o in input.overlays {
        src.overlay(&mut root, &o.to, &o.src)?;
    }
    let mut user = Vec::new();
    src.ignore_patterns(&root, &mut Vec::new(), &mut user)?;
    if let Some(text) = input.ignore {
        user.extend(ignore::read_patterns(text, &[]));
    }
    let matcher = ignore::source_ignore_matcher(user);
    src.write(&root, &mut Vec::new(), &mut Vec::new(), &matcher, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sparse_cone() {
        let cone = sparse_paths(&s(&["apps/prod/", "./infra"]));
        assert_eq!(cone, vec![s(&["apps", "prod"]), s(&["infra"])]);
        assert!(sparse_wants(&cone, &[], "README.md", false));
        assert!(sparse_wants(&cone, &[], "apps", true));
        assert!(!sparse_wants(&cone, &s(&["apps"]), "x.yaml", false));
        assert!(sparse_wants(&cone, &s(&["apps"]), "prod", true));
        assert!(!sparse_wants(&cone, &s(&["apps"]), "dev", true));
        assert!(sparse_wants(&cone, &s(&["apps", "prod"]), "x.yaml", false));
        assert!(sparse_wants(&cone, &s(&["apps", "prod", "a"]), "b", true));
        assert!(!sparse_wants(&cone, &[], "docs", true));
        assert!(sparse_wants(&[], &s(&["any"]), "thing", true));
    }
}
