//! `spec.recurseSubmodules`: every submodule of the commit, recursively, fetched into its own
//! cache repository at the commit its parent's tree records, with the parent's credentials
//! (what Flux's go-git clone with `RecurseSubmodules` does).
//!
//! Submodules are the entries of `.gitmodules` in the commit whose `path` is a submodule entry
//! (gitlink) of the tree; a gitlink without one stays an empty directory, as in git. Relative
//! URLs (`./x`, `../x`) are resolved against the parent repository's URL.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

use crate::archive::{SubmoduleCheckout, sparse_paths, sparse_wants};
use crate::git::{self, Auth, FetchRequest, GitError, GitRef, open_cache, safe_name};

/// How deep submodules of submodules are followed (go-git's default recursion depth).
pub const MAX_DEPTH: usize = 10;

/// Inputs of [`fetch_submodules`].
pub struct SubmoduleRequest<'a> {
    /// The parent repository's URL (relative submodule URLs are resolved against it).
    pub url: &'a str,
    /// The parent's credentials, used for every submodule.
    pub auth: &'a Auth,
    /// The parent's cache repository; submodule caches live below it.
    pub cache_dir: &'a Path,
    /// The parent commit (full hex).
    pub commit: &'a str,
    /// `spec.sparseCheckout`: submodules outside it are not fetched.
    pub sparse: &'a [String],
    /// Budget of each fetch.
    pub timeout: Duration,
    /// Set to abort.
    pub interrupt: Arc<AtomicBool>,
}

/// One `submodule.<name>` section of `.gitmodules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// `submodule.<name>.path`.
    pub path: String,
    /// `submodule.<name>.url`, if any.
    pub url: Option<String>,
}

/// Parses `.gitmodules` (git config syntax).
pub fn parse_gitmodules(text: &str) -> Result<Vec<Declared>, String> {
    let file: gix::config::File = text.parse().map_err(|e| format!("{e}"))?;
    let Some(sections) = file.sections_by_name("submodule") else {
        return Ok(Vec::new());
    };
    Ok(sections
        .filter_map(|s| {
            let path = s
                .value("path")?
                .to_str_lossy()
                .trim_matches('/')
                .to_string();
            let url = s.value("url").map(|u| u.to_str_lossy().into_owned());
            Some(Declared { path, url })
        })
        .collect())
}

/// Resolves a submodule URL against the parent's URL the way git does: `./x` and `../x` are
/// relative to the parent repository (each `../` drops one path component of it); anything
/// else is used as is.
pub fn resolve_url(parent: &str, url: &str) -> String {
    if !(url.starts_with("./") || url.starts_with("../")) {
        return url.to_string();
    }
    let mut base = parent.trim_end_matches('/').to_string();
    let mut rest = url;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("../") {
            rest = r;
            // Drop the last path component; in scp-like URLs (`host:path`) the ':' also
            // separates one.
            let scheme_end = base.find("://").map_or(0, |i| i + 3);
            let cut = base[scheme_end..].rfind(['/', ':']).map(|i| i + scheme_end);
            match cut {
                Some(i) if base.as_bytes()[i] == b':' => {
                    base.truncate(i + 1);
                    return format!("{base}{rest}");
                }
                Some(i) => base.truncate(i),
                None => base.clear(),
            }
        } else {
            break;
        }
    }
    if base.is_empty() {
        rest.to_string()
    } else {
        format!("{base}/{rest}")
    }
}

/// The cache repository of the submodule URL `url`, below the parent's cache. Keyed by URL,
/// not path: a changed URL must be fetched from (and fail there if it is wrong), not served
/// from a cache filled from the old one.
fn module_cache(parent_cache: &Path, url: &str) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut h);
    let readable: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    parent_cache
        .join("modules")
        .join(format!("{readable}-{:016x}", h.finish()))
}

fn with_context(e: GitError, ctx: &str) -> GitError {
    match e {
        GitError::Auth(m) => GitError::Auth(format!("{ctx}: {m}")),
        GitError::AuthConfig(m) => GitError::AuthConfig(format!("{ctx}: {m}")),
        GitError::RefNotFound(m) => GitError::RefNotFound(format!("{ctx}: {m}")),
        GitError::InvalidUrl(m) => GitError::InvalidUrl(format!("{ctx}: {m}")),
        GitError::Timeout(m) => GitError::Timeout(format!("{ctx}: {m}")),
        GitError::Other(m) => GitError::Other(format!("{ctx}: {m}")),
    }
}

/// A declared submodule and the commit its gitlink records.
struct Gitlink {
    /// Path components in its repository.
    path: Vec<String>,
    /// URL from `.gitmodules`, as written.
    url: Option<String>,
    /// Commit hex.
    commit: String,
}

/// The declared submodules of `commit_hex` with the commit their gitlink records.
fn submodules_of(
    cache_dir: &Path,
    commit_hex: &str,
    sparse: &[Vec<String>],
) -> Result<Vec<Gitlink>, GitError> {
    let repo = open_cache(cache_dir)?;
    let tree = git::tree_of(&repo, commit_hex)?;
    let Some(entry) = tree
        .find_entry(".gitmodules")
        .filter(|e| e.mode().is_blob())
    else {
        return Ok(Vec::new());
    };
    let blob = entry
        .object()
        .map_err(|e| GitError::Other(format!("failed to read .gitmodules: {e}")))?;
    let declared = parse_gitmodules(&String::from_utf8_lossy(&blob.data))
        .map_err(|e| GitError::Other(format!("invalid .gitmodules in {commit_hex}: {e}")))?;
    let mut out = Vec::new();
    for d in declared {
        let parts: Vec<String> = d.path.split('/').map(str::to_string).collect();
        if parts.iter().any(|p| safe_name(p.as_bytes()).is_none()) {
            continue;
        }
        let wanted = (0..parts.len())
            .all(|i| sparse_wants(sparse, &parts[..i], &parts[i], i + 1 < parts.len()));
        if !wanted {
            continue;
        }
        let found = tree
            .lookup_entry_by_path(&d.path)
            .map_err(|e| GitError::Other(format!("failed to read tree of {commit_hex}: {e}")))?;
        if let Some(e) = found.filter(|e| e.mode().kind() == EntryKind::Commit) {
            out.push(Gitlink {
                path: parts,
                url: d.url,
                commit: e.object_id().to_string(),
            });
        }
    }
    Ok(out)
}

/// Fetches every submodule of the commit (recursively, up to [`MAX_DEPTH`]) and returns
/// where each one's commit is. A failure names the submodule's path and URL.
pub fn fetch_submodules(req: &SubmoduleRequest<'_>) -> Result<Vec<SubmoduleCheckout>, GitError> {
    let mut out = Vec::new();
    // (cache, commit, URL, path prefix, depth)
    let mut todo = vec![(
        req.cache_dir.to_path_buf(),
        req.commit.to_string(),
        req.url.to_string(),
        Vec::<String>::new(),
        0usize,
    )];
    let top_sparse = sparse_paths(req.sparse);
    while let Some((cache, commit, url, prefix, depth)) = todo.pop() {
        if depth >= MAX_DEPTH {
            continue;
        }
        // spec.sparseCheckout limits the parent's tree only.
        let sparse = if depth == 0 { &top_sparse[..] } else { &[] };
        for link in submodules_of(&cache, &commit, sparse)? {
            let (sub_url, sub_commit) = (link.url, link.commit);
            let mut path = prefix.clone();
            path.extend(link.path);
            let shown = path.join("/");
            let Some(sub_url) = sub_url.filter(|u| !u.is_empty()) else {
                return Err(GitError::Other(format!(
                    "submodule '{shown}' has no URL in .gitmodules"
                )));
            };
            let sub_url = resolve_url(&url, &sub_url);
            let ctx = format!("failed to fetch submodule '{shown}' from '{sub_url}'");
            let sub_cache = module_cache(req.cache_dir, &sub_url);
            git::fetch(&FetchRequest {
                url: &sub_url,
                reference: &GitRef::Commit {
                    commit: sub_commit.clone(),
                    branch: None,
                },
                auth: req.auth,
                cache_dir: &sub_cache,
                timeout: req.timeout,
                last_revision: None,
                interrupt: Arc::clone(&req.interrupt),
            })
            .map_err(|e| with_context(e, &ctx))?;
            out.push(SubmoduleCheckout {
                path: path.clone(),
                cache_dir: sub_cache.clone(),
                commit: sub_commit.clone(),
            });
            todo.push((sub_cache, sub_commit, sub_url, path, depth + 1));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls() {
        let p = "http://h:80/repos/parent.git";
        assert_eq!(
            resolve_url(p, "../child.git"),
            "http://h:80/repos/child.git"
        );
        assert_eq!(
            resolve_url(p, "./child.git"),
            "http://h:80/repos/parent.git/child.git"
        );
        assert_eq!(resolve_url(p, "../../x/c"), "http://h:80/x/c");
        assert_eq!(resolve_url("http://h/p/", "../c"), "http://h/c");
        assert_eq!(
            resolve_url("git@h:org/p.git", "../c.git"),
            "git@h:org/c.git"
        );
        assert_eq!(resolve_url("git@h:p.git", "../c.git"), "git@h:c.git");
        assert_eq!(resolve_url(p, "https://other/c.git"), "https://other/c.git");
    }

    #[test]
    fn gitmodules() {
        let text = "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n[submodule \"x\"]\n\turl = y\n[core]\n\tbare = false\n";
        assert_eq!(
            parse_gitmodules(text).unwrap(),
            vec![Declared {
                path: "vendor/lib".into(),
                url: Some("../lib.git".into())
            }]
        );
        assert!(parse_gitmodules("").unwrap().is_empty());
    }

    #[test]
    fn caches_per_url() {
        let a = module_cache(Path::new("/c"), "http://h/a.git");
        assert!(a.starts_with("/c/modules"));
        assert!(
            a.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("http___h_a.git-")
        );
        assert_ne!(a, module_cache(Path::new("/c"), "http://h/b.git"));
        assert_eq!(a, module_cache(Path::new("/c"), "http://h/a.git"));
    }
}
