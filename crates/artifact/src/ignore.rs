//! Exclusion rules for archives: `.sourceignore` files, `spec.ignore`, and Flux's defaults.
//!
//! # Semantics (as source-controller implements them)
//!
//! Patterns use the `.gitignore` syntax as go-git's `plumbing/format/gitignore` interprets it,
//! which is what Flux uses (`fluxcd/pkg/sourceignore`):
//!
//! * A pattern without `/` (after removing a trailing `/`) matches any path component, so an
//!   excluded directory also excludes everything below it. A trailing `/` restricts the match to
//!   directories. A pattern with a `/` is anchored at the directory of the file it came from;
//!   `**` matches zero or more directories. Component globs follow Go's `filepath.Match`
//!   (`*`, `?`, `[a-z]`, `[^a-z]`, `\` escapes); a malformed glob never matches.
//! * `!pattern` re-includes. The last matching pattern wins. Unlike git, a negation can re-include
//!   a file below an excluded directory (the directory entry itself stays excluded).
//! * Lines starting with `#` and blank lines are skipped; trailing spaces are trimmed unless
//!   escaped with `\`.
//! * `.sourceignore` files are loaded from the root and every subdirectory except those named
//!   `.git` (symlinked directories and symlinked `.sourceignore` files are not followed), depth
//!   first in name order; a nested file's
//!   patterns only apply below its directory. `spec.ignore` is appended last, so it has the
//!   highest priority.
//! * Defaults for Git (and OCI/Bucket archives built from a directory): the VCS patterns
//!   `.git/ .gitignore .gitmodules .gitattributes` always apply, with the lowest priority. The
//!   other default exclusions (`*.jpg … *.zip`, CI files, `**/.goreleaser.yml`, `**/.sops.yaml`,
//!   `**/.flux.yaml`) apply only when there are no user patterns at all: as soon as any
//!   `.sourceignore` line or `spec.ignore` line exists, those user patterns *replace* the
//!   non-VCS defaults (`storage.SourceIgnoreFilter` in `fluxcd/pkg/artifact`).

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};

/// The name of the per-directory ignore file.
pub const IGNORE_FILE: &str = ".sourceignore";
/// VCS exclusions, always applied to Git sources.
pub const EXCLUDE_VCS: &str = ".git/,.gitignore,.gitmodules,.gitattributes";
/// Default extension exclusions.
pub const EXCLUDE_EXT: &str = "*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip";
/// Default CI exclusions.
pub const EXCLUDE_CI: &str = ".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,codeship-services.yml,codeship-steps.yml";
/// Other default exclusions.
pub const EXCLUDE_EXTRA: &str = "**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml";

/// One parsed ignore pattern, scoped to a domain (the directory it was read from, as path
/// components relative to the archive root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    domain: Vec<String>,
    parts: Vec<String>,
    inclusion: bool,
    dir_only: bool,
    is_glob: bool,
    /// A component glob is malformed: the pattern never matches.
    bad: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchResult {
    NoMatch,
    Exclude,
    Include,
}

impl Pattern {
    /// Parses one pattern line (not a comment, not blank) read in directory `domain`.
    pub fn parse(line: &str, domain: &[String]) -> Pattern {
        let mut p = line;
        let mut inclusion = false;
        if let Some(rest) = p.strip_prefix('!') {
            inclusion = true;
            p = rest;
        }
        if !p.ends_with("\\ ") {
            p = p.trim_end_matches(' ');
        }
        let mut dir_only = false;
        if let Some(rest) = p.strip_suffix('/') {
            dir_only = true;
            p = rest;
        }
        let is_glob = p.contains('/');
        let parts: Vec<String> = p.split('/').map(str::to_string).collect();
        let bad = parts
            .iter()
            .any(|c| c != "**" && !c.contains("**") && glob_match(c, "").is_err());
        Pattern {
            domain: domain.to_vec(),
            parts,
            inclusion,
            dir_only,
            is_glob,
            bad,
        }
    }

    /// Whether this is a `!` (re-include) pattern.
    pub fn is_inclusion(&self) -> bool {
        self.inclusion
    }

    fn matches(&self, path: &[&str], is_dir: bool) -> MatchResult {
        if self.bad || path.len() <= self.domain.len() {
            return MatchResult::NoMatch;
        }
        if self.domain.iter().zip(path).any(|(d, p)| d != p) {
            return MatchResult::NoMatch;
        }
        let path = &path[self.domain.len()..];
        let hit = if self.is_glob {
            self.glob_match(path, is_dir)
        } else {
            self.simple_name_match(path, is_dir)
        };
        match (hit, self.inclusion) {
            (false, _) => MatchResult::NoMatch,
            (true, true) => MatchResult::Include,
            (true, false) => MatchResult::Exclude,
        }
    }

    fn simple_name_match(&self, path: &[&str], is_dir: bool) -> bool {
        let pat = &self.parts[0];
        for (i, name) in path.iter().enumerate() {
            if !glob_match(pat, name).unwrap_or(false) {
                continue;
            }
            return !(self.dir_only && !is_dir && i == path.len() - 1);
        }
        false
    }

    fn glob_match(&self, mut path: &[&str], is_dir: bool) -> bool {
        let mut matched = false;
        let mut can_traverse = false;
        for (i, pat) in self.parts.iter().enumerate() {
            if pat.is_empty() {
                can_traverse = false;
                continue;
            }
            if pat == "**" {
                if i == self.parts.len() - 1 {
                    break;
                }
                can_traverse = true;
                continue;
            }
            if pat.contains("**") || path.is_empty() {
                return false;
            }
            if can_traverse {
                can_traverse = false;
                while let Some((first, rest)) = path.split_first() {
                    path = rest;
                    if glob_match(pat, first).unwrap_or(false) {
                        matched = true;
                        break;
                    } else if path.is_empty() {
                        matched = false;
                    }
                }
            } else {
                if !glob_match(pat, path[0]).unwrap_or(false) {
                    return false;
                }
                matched = true;
                path = &path[1..];
            }
        }
        if matched && self.dir_only && !is_dir && path.is_empty() {
            matched = false;
        }
        matched
    }
}

/// The malformed-pattern error of [`glob_match`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `filepath.Match` for one path component: `*`, `?`, `[...]` classes (with `^` negation
/// and ranges) and `\` escapes. The whole pattern is validated, so a malformed pattern is an
/// error even when a prefix would match.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let pat: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    validate(&pat)?;
    Ok(match_from(&pat, &name))
}

fn validate(pat: &[char]) -> Result<(), BadPattern> {
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            '\\' => {
                if i + 1 >= pat.len() {
                    return Err(BadPattern);
                }
                i += 2;
            }
            '[' => {
                i = class_end(pat, i)?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index just past the `]` closing the class that starts at `start` (`pat[start] == '['`).
fn class_end(pat: &[char], start: usize) -> Result<usize, BadPattern> {
    let mut i = start + 1;
    if i < pat.len() && pat[i] == '^' {
        i += 1;
    }
    let mut first = true;
    loop {
        if i >= pat.len() {
            return Err(BadPattern);
        }
        if pat[i] == ']' && !first {
            return Ok(i + 1);
        }
        first = false;
        // A range item: lo or lo-hi, each possibly escaped.
        i = class_char(pat, i)?.1;
        if i < pat.len() && pat[i] == '-' {
            if i + 1 >= pat.len() || pat[i + 1] == ']' {
                return Err(BadPattern);
            }
            i = class_char(pat, i + 1)?.1;
        }
    }
}

fn class_char(pat: &[char], i: usize) -> Result<(char, usize), BadPattern> {
    match pat.get(i) {
        None => Err(BadPattern),
        // Go's getEsc: an unescaped `-` or `]` cannot start a range item.
        Some('-') | Some(']') => Err(BadPattern),
        Some('\\') => pat.get(i + 1).map(|c| (*c, i + 2)).ok_or(BadPattern),
        Some(c) => Ok((*c, i + 1)),
    }
}

/// Matches `name` against the (validated) `pat` with backtracking over `*`.
fn match_from(pat: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                '*' => {
                    while p < pat.len() && pat[p] == '*' {
                        p += 1;
                    }
                    star = Some((p, n));
                    continue;
                }
                '?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                '[' => {
                    if let Ok(end) = class_end(pat, p)
                        && class_matches(&pat[p + 1..end - 1], name[n])
                    {
                        p = end;
                        n += 1;
                        continue;
                    }
                }
                '\\' => {
                    if p + 1 < pat.len() && pat[p + 1] == name[n] {
                        p += 2;
                        n += 1;
                        continue;
                    }
                }
                c => {
                    if c == name[n] {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: backtrack to the last star, letting it swallow one more character.
        match star {
            Some((sp, sn)) => {
                p = sp;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    while p < pat.len() && pat[p] == '*' {
        p += 1;
    }
    p == pat.len()
}

/// `body` is the class between `[` and `]`.
fn class_matches(body: &[char], c: char) -> bool {
    let (negated, mut i) = match body.first() {
        Some('^') => (true, 1),
        _ => (false, 0),
    };
    let mut hit = false;
    while i < body.len() {
        let Ok((lo, next)) = class_char(body, i) else {
            return false;
        };
        i = next;
        let mut hi = lo;
        if i < body.len() && body[i] == '-' {
            let Ok((h, next)) = class_char(body, i + 1) else {
                return false;
            };
            hi = h;
            i = next;
        }
        if lo <= c && c <= hi {
            hit = true;
        }
    }
    hit != negated
}

/// An ordered list of patterns; the last matching one decides.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    has_inclusions: bool,
}

impl Matcher {
    /// A matcher over `patterns`, lowest priority first.
    pub fn new(patterns: Vec<Pattern>) -> Matcher {
        let has_inclusions = patterns.iter().any(Pattern::is_inclusion);
        Matcher {
            patterns,
            has_inclusions,
        }
    }

    /// True when `path` (components relative to the archive root) is excluded.
    pub fn is_excluded(&self, path: &[&str], is_dir: bool) -> bool {
        for p in self.patterns.iter().rev() {
            match p.matches(path, is_dir) {
                MatchResult::NoMatch => continue,
                MatchResult::Exclude => return true,
                MatchResult::Include => return false,
            }
        }
        false
    }

    /// With no `!` patterns, everything below an excluded directory is excluded too, so a walk
    /// can skip the directory without reading it.
    pub fn can_prune_excluded_dirs(&self) -> bool {
        !self.has_inclusions
    }

    /// The patterns, lowest priority first.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}

fn parse_list(list: &str, domain: &[String]) -> Vec<Pattern> {
    list.split(',').map(|p| Pattern::parse(p, domain)).collect()
}

/// The VCS patterns (`.git/`, `.gitignore`, `.gitmodules`, `.gitattributes`).
pub fn vcs_patterns() -> Vec<Pattern> {
    parse_list(EXCLUDE_VCS, &[])
}

/// The extension, CI and extra default patterns.
pub fn default_patterns() -> Vec<Pattern> {
    let all = [EXCLUDE_EXT, EXCLUDE_CI, EXCLUDE_EXTRA].join(",");
    parse_list(&all, &[])
}

/// Parses the lines of an ignore file or of `spec.ignore`, scoped to `domain`.
pub fn read_patterns(text: &str, domain: &[String]) -> Vec<Pattern> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| Pattern::parse(l, domain))
        .collect()
}

/// Loads `.sourceignore` files from `root` and all its subdirectories (except `.git`), in the
/// order source-controller does: a directory's own file, then its subdirectories by name.
pub fn load_ignore_files(root: &Path) -> Result<Vec<Pattern>> {
    let mut out = Vec::new();
    let mut domain = Vec::new();
    load_dir(root, &mut domain, &mut out)?;
    Ok(out)
}

fn load_dir(dir: &Path, domain: &mut Vec<String>, out: &mut Vec<Pattern>) -> Result<()> {
    let file = dir.join(IGNORE_FILE);
    // Only a regular file counts (unlike Flux, a symlinked .sourceignore is not followed: it
    // could point at a FIFO or a device outside the checkout).
    match fs::symlink_metadata(&file) {
        Ok(m) if m.is_file() => {
            let bytes = fs::read(&file).map_err(|e| Error::io("read", &file, e))?;
            out.extend(read_patterns(&String::from_utf8_lossy(&bytes), domain));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat", file, e)),
    }
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        if ft.is_dir() && entry.file_name() != ".git" {
            subdirs.push(entry.file_name());
        }
    }
    subdirs.sort();
    for name in subdirs {
        domain.push(name.to_string_lossy().into_owned());
        load_dir(&dir.join(&name), domain, out)?;
        domain.pop();
    }
    Ok(())
}

/// Combines user patterns with Flux's defaults the way `storage.SourceIgnoreFilter` does: the
/// VCS patterns always come first; the other defaults are used only when `user` is empty.
pub fn source_ignore_matcher(user: Vec<Pattern>) -> Matcher {
    let mut all = vcs_patterns();
    if user.is_empty() {
        all.extend(default_patterns());
    } else {
        all.extend(user);
    }
    Matcher::new(all)
}

/// The matcher source-controller uses for a Git checkout (and for other directory sources):
/// `.sourceignore` files under `root`, then `spec_ignore`, on top of the defaults (see the
/// module documentation).
pub fn git_source_matcher(root: &Path, spec_ignore: Option<&str>) -> Result<Matcher> {
    let mut user = load_ignore_files(root)?;
    if let Some(text) = spec_ignore {
        user.extend(read_patterns(text, &[]));
    }
    Ok(source_ignore_matcher(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(lines: &str) -> Matcher {
        Matcher::new(read_patterns(lines, &[]))
    }

    fn ex(m: &Matcher, path: &str, is_dir: bool) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        m.is_excluded(&parts, is_dir)
    }

    #[test]
    fn go_filepath_match() {
        assert_eq!(glob_match("*.yaml", "a.yaml"), Ok(true));
        assert_eq!(glob_match("*.yaml", "a.yml"), Ok(false));
        assert_eq!(glob_match("a?c", "abc"), Ok(true));
        assert_eq!(glob_match("[a-c]x", "bx"), Ok(true));
        assert_eq!(glob_match("[^a-c]x", "bx"), Ok(false));
        assert_eq!(glob_match("[^a-c]x", "dx"), Ok(true));
        assert_eq!(glob_match("\\*", "*"), Ok(true));
        assert_eq!(glob_match("\\*", "a"), Ok(false));
        assert_eq!(glob_match("a*b*c", "aXbYbZc"), Ok(true));
        assert_eq!(glob_match("a*b*c", "aXbYbZ"), Ok(false));
        assert_eq!(glob_match("[", "a"), Err(BadPattern));
        assert_eq!(glob_match("a[", "a"), Err(BadPattern));
        assert_eq!(glob_match("\\", "a"), Err(BadPattern));
        assert_eq!(glob_match("[]a]", "]"), Err(BadPattern));
        assert_eq!(glob_match("[\\]a]", "]"), Ok(true));
        assert_eq!(glob_match("[a-]", "a"), Err(BadPattern));
        assert_eq!(glob_match("*", ""), Ok(true));
    }

    #[test]
    fn simple_names_match_any_component() {
        let m = m("*.png\nbuild/\n");
        assert!(ex(&m, "a.png", false));
        assert!(ex(&m, "deep/dir/a.png", false));
        assert!(ex(&m, "build", true));
        assert!(ex(&m, "x/build/out.yaml", false));
        // dir-only pattern does not match a file of that name
        assert!(!ex(&m, "build", false));
        assert!(!ex(&m, "a.yaml", false));
    }

    #[test]
    fn anchored_and_double_star() {
        let m = m("/top.yaml\nsub/*.txt\n**/secret.yaml\nlogs/**\n");
        assert!(ex(&m, "top.yaml", false));
        assert!(!ex(&m, "x/top.yaml", false));
        assert!(ex(&m, "sub/a.txt", false));
        assert!(!ex(&m, "other/sub/a.txt", false));
        assert!(ex(&m, "secret.yaml", false));
        assert!(ex(&m, "a/b/secret.yaml", false));
        assert!(ex(&m, "logs", true));
        assert!(ex(&m, "logs/x/y", false));
    }

    #[test]
    fn negation_last_match_wins() {
        let m = m("*.yaml\n!keep.yaml\n");
        assert!(ex(&m, "a.yaml", false));
        assert!(!ex(&m, "keep.yaml", false));
        assert!(!ex(&m, "d/keep.yaml", false));
        let m2 = super::tests::m("!keep.yaml\n*.yaml\n");
        assert!(ex(&m2, "keep.yaml", false));
    }

    #[test]
    fn domains_scope_nested_files() {
        let d = vec!["apps".to_string()];
        let m = Matcher::new(read_patterns("*.txt\n/local.yaml\n", &d));
        assert!(ex(&m, "apps/a.txt", false));
        assert!(ex(&m, "apps/x/a.txt", false));
        assert!(!ex(&m, "a.txt", false));
        assert!(!ex(&m, "other/a.txt", false));
        assert!(ex(&m, "apps/local.yaml", false));
        assert!(!ex(&m, "apps/x/local.yaml", false));
    }

    #[test]
    fn defaults_replaced_by_user_patterns_but_vcs_kept() {
        let d = source_ignore_matcher(vec![]);
        assert!(ex(&d, ".git", true));
        assert!(ex(&d, "img.png", false));
        assert!(ex(&d, ".github", true));
        assert!(ex(&d, "x/.sops.yaml", false));
        assert!(!ex(&d, "app.yaml", false));
        let u = source_ignore_matcher(read_patterns("*.md", &[]));
        assert!(ex(&u, ".git", true));
        assert!(ex(&u, ".gitignore", false));
        assert!(!ex(&u, "img.png", false));
        assert!(ex(&u, "README.md", false));
    }

    #[test]
    fn comments_blank_and_trailing_spaces() {
        let m = m("# comment\n\n   \nfoo   \r\nbar\\ \n");
        assert_eq!(m.patterns().len(), 2);
        assert!(ex(&m, "foo", false));
        assert!(!ex(&m, "bar", false));
    }
}
