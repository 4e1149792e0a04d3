//! Safe extraction of a gzip-compressed tar stream.
//!
//! Every entry name must be relative, without `..` components or backslashes (Flux
//! `validRelPath`); a leading `./` is accepted. Nothing is ever written through a symbolic link:
//! every parent directory of an entry is checked with `lstat` and must be a real directory
//! inside the root, and files are created with `O_EXCL`.
//!
//! Links follow a [`LinkPolicy`]. The default, [`LinkPolicy::Reject`], is Flux's: any symlink
//! or hardlink fails the extraction (Flux `tar.Untar` without `WithSkipSymlinks`). With
//! [`LinkPolicy::AllowWithinRoot`], a symlink may only point inside the root: absolute targets
//! are refused, and after all entries are written every symlink is resolved component by
//! component against the real tree (following the other links) and must stay inside the root;
//! a hardlink must name a regular file already extracted inside the root.
//!
//! Devices, FIFOs and other special entries are always refused. Decompression bombs are caught
//! by [`ExtractLimits`]: the sum of entry sizes (checked from the header before any byte is
//! written), the number of entries, the decompressed/compressed ratio, and a hard cap on the
//! decompressed stream itself (which also bounds PAX and long-name records). The gzip trailer is
//! verified, so a truncated or corrupted stream is an error even if the tar part was complete.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;
use tempfile::TempDir;

use crate::error::{Error, Result};

/// Flux's default cap on the extracted size (`tar.DefaultMaxUntarSize`, 100 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 100 << 20;
/// Default cap on the number of entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// Default cap on decompressed bytes per compressed byte.
pub const DEFAULT_MAX_RATIO: u64 = 250;
/// The ratio is only judged once this many bytes were decompressed.
pub const RATIO_GRACE_BYTES: u64 = 8 << 20;

/// What to do with symlink and hardlink entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkPolicy {
    /// Fail on any link entry (Flux's behaviour).
    #[default]
    Reject,
    /// Drop link entries silently (Flux `WithSkipSymlinks`).
    Skip,
    /// Create links whose targets resolve inside the root; fail on any other.
    AllowWithinRoot,
}

/// Limits against hostile archives. `None` disables a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Maximum sum of the sizes of all entries.
    pub max_size: Option<u64>,
    /// Maximum number of entries.
    pub max_entries: Option<u64>,
    /// Maximum decompressed/compressed ratio (judged after [`RATIO_GRACE_BYTES`]).
    pub max_ratio: Option<u64>,
    /// Link handling.
    pub links: LinkPolicy,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_size: Some(DEFAULT_MAX_SIZE),
            max_entries: Some(DEFAULT_MAX_ENTRIES),
            max_ratio: Some(DEFAULT_MAX_RATIO),
            links: LinkPolicy::Reject,
        }
    }
}

/// What an extraction wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Counts bytes read from the compressed input.
struct CountIn<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountIn<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Counts decompressed bytes and stops the stream when a bomb limit trips.
struct CountOut<R> {
    inner: R,
    compressed: Rc<Cell<u64>>,
    total: u64,
    hard_cap: Option<u64>,
    max_ratio: Option<u64>,
    tripped: Rc<Cell<Option<&'static str>>>,
}

impl<R: Read> Read for CountOut<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.hard_cap.is_some_and(|cap| self.total > cap) {
            self.tripped
                .set(Some("the decompressed stream exceeds the size limit"));
            return Err(io::Error::other("decompression limit exceeded"));
        }
        if let Some(ratio) = self.max_ratio
            && self.total > RATIO_GRACE_BYTES
            && self.total > ratio.saturating_mul(self.compressed.get().max(1))
        {
            self.tripped
                .set(Some("the decompressed/compressed ratio exceeds the limit"));
            return Err(io::Error::other("decompression ratio exceeded"));
        }
        Ok(n)
    }
}

/// Extracts into a fresh temporary directory created inside `parent`; on any error the
/// directory and everything in it is removed.
pub fn extract_to_temp(
    reader: impl Read,
    parent: &Path,
    limits: &ExtractLimits,
) -> Result<(TempDir, ExtractSummary)> {
    let tmp = tempfile::Builder::new()
        .prefix("artifact-")
        .tempdir_in(parent)
        .map_err(|e| Error::io("create temporary directory in", parent, e))?;
    let summary = extract_tar_gz(reader, tmp.path(), limits)?;
    Ok((tmp, summary))
}

/// Extracts a tar.gz stream into `dest`, which must be an existing directory (normally empty).
/// On error, what was already written stays; use [`extract_to_temp`] for automatic cleanup.
pub fn extract_tar_gz(
    reader: impl Read,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<ExtractSummary> {
    let meta = fs::symlink_metadata(dest).map_err(|e| Error::io("stat", dest, e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidPath {
            path: dest.display().to_string(),
            reason: "extraction root must be a directory".into(),
        });
    }
    let compressed = Rc::new(Cell::new(0u64));
    let tripped = Rc::new(Cell::new(None));
    let hard_cap = limits.max_size.map(|s| {
        s.saturating_add(
            limits
                .max_entries
                .unwrap_or(DEFAULT_MAX_ENTRIES)
                .saturating_mul(1024),
        )
        .saturating_add(1 << 20)
    });
    let input = CountIn {
        inner: reader,
        count: Rc::clone(&compressed),
    };
    let stream = CountOut {
        inner: flate2::read::GzDecoder::new(input),
        compressed,
        total: 0,
        hard_cap,
        max_ratio: limits.max_ratio,
        tripped: Rc::clone(&tripped),
    };
    let mut ex = Extractor {
        root: dest.to_path_buf(),
        limits,
        dirs: HashSet::new(),
        links: Vec::new(),
        summary: ExtractSummary::default(),
        declared: 0,
        entries: 0,
    };
    let stream_err = |e: io::Error, what: &str| match tripped.get() {
        Some(reason) => Error::bomb(reason),
        None => Error::invalid_archive(format!("{what}: {e}")),
    };
    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .map_err(|e| stream_err(e, "cannot read tar stream"))?;
    for entry in entries {
        let entry = entry.map_err(|e| stream_err(e, "cannot read tar entry"))?;
        ex.entry(entry).map_err(|e| match (e, tripped.get()) {
            (_, Some(reason)) => Error::bomb(reason),
            (e, None) => e,
        })?;
    }
    // Read to the end of the gzip stream so its CRC and length are verified.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| stream_err(e, "corrupt gzip stream"))?;
    ex.check_symlinks()?;
    Ok(ex.summary)
}

struct Extractor<'a> {
    root: PathBuf,
    limits: &'a ExtractLimits,
    /// Directories known to be real directories inside the root (relative).
    dirs: HashSet<PathBuf>,
    /// Symlinks created (relative), checked at the end.
    links: Vec<PathBuf>,
    summary: ExtractSummary,
    declared: u64,
    entries: u64,
}

/// Validates an entry name; returns its normalized relative path, or `None` for the root.
fn clean_name(raw: &[u8]) -> Result<Option<PathBuf>> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let bad = |reason: &str| Err(Error::unsafe_entry(shown.clone(), reason));
    if raw.is_empty() {
        return bad("empty name");
    }
    if raw.contains(&0) {
        return bad("name contains a NUL byte");
    }
    if raw[0] == b'/' {
        return bad("absolute path");
    }
    if raw.contains(&b'\\') {
        return bad("backslash in name");
    }
    let mut out = PathBuf::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return bad("path traversal (`..`)"),
            c => out.push(std::ffi::OsStr::from_bytes(c)),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

impl Extractor<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        self.entries += 1;
        if let Some(max) = self.limits.max_entries
            && self.entries > max
        {
            return Err(Error::bomb(format!("more than {max} entries")));
        }
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let size = entry.size();
        self.declared = self.declared.saturating_add(size);
        if let Some(max) = self.limits.max_size
            && self.declared > max
        {
            return Err(Error::bomb(format!(
                "entries add up to more than the limit of {max} bytes (at {shown:?})"
            )));
        }
        let Some(rel) = clean_name(&raw_name)? else {
            // The root itself ("." or "./").
            return if kind.is_dir() {
                Ok(())
            } else {
                Err(Error::unsafe_entry(
                    shown,
                    "non-directory entry for the root",
                ))
            };
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                self.prepare_parent(&rel, &shown)?;
                let abs = self.root.join(&rel);
                self.clear_target(&abs, &shown)?;
                let mode = entry.header().mode().unwrap_or(0o600);
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode((mode & 0o777) | 0o600)
                    .open(&abs)
                    .map_err(|e| Error::io("create", &abs, e))?;
                let n = io::copy(&mut (&mut entry).take(size), &mut f).map_err(|e| {
                    Error::invalid_archive(format!("cannot read content of {shown:?}: {e}"))
                })?;
                if n != size {
                    return Err(Error::invalid_archive(format!(
                        "entry {shown:?} is truncated ({n} of {size} bytes)"
                    )));
                }
                self.summary.files += 1;
                self.summary.bytes += n;
                Ok(())
            }
            EntryType::Directory => {
                self.prepare_parent(&rel, &shown)?;
                let mode = entry.header().mode().unwrap_or(0o750);
                self.make_dir(&rel, (mode & 0o777) | 0o700, &shown)?;
                self.summary.dirs += 1;
                Ok(())
            }
            EntryType::Symlink | EntryType::Link => {
                let hard = kind == EntryType::Link;
                let what = if hard { "hardlink" } else { "symlink" };
                match self.limits.links {
                    LinkPolicy::Skip => Ok(()),
                    LinkPolicy::Reject => Err(Error::unsafe_entry(
                        shown,
                        format!("{what} entries are not allowed"),
                    )),
                    LinkPolicy::AllowWithinRoot => {
                        let target = entry
                            .link_name_bytes()
                            .map(|c| c.into_owned())
                            .unwrap_or_default();
                        if hard {
                            self.hardlink(&rel, &target, &shown)
                        } else {
                            self.symlink(&rel, &target, &shown)
                        }
                    }
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => Err(Error::unsafe_entry(
                shown,
                "device and FIFO entries are not allowed",
            )),
            other => Err(Error::unsafe_entry(
                shown,
                format!("unsupported entry type {:?}", other.as_byte() as char),
            )),
        }
    }

    /// Ensures every ancestor of `rel` is a real directory inside the root (creating missing
    /// ones), never a symlink.
    fn prepare_parent(&mut self, rel: &Path, shown: &str) -> Result<()> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.dirs.contains(parent) {
            return Ok(());
        }
        let mut cur = PathBuf::new();
        for comp in parent.components() {
            cur.push(comp);
            if self.dirs.contains(&cur) {
                continue;
            }
            self.make_dir(&cur.clone(), 0o750, shown)?;
        }
        Ok(())
    }

    fn make_dir(&mut self, rel: &Path, mode: u32, shown: &str) -> Result<()> {
        let abs = self.root.join(rel);
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::unsafe_entry(
                    shown,
                    format!(
                        "path goes through the symlink {:?}",
                        rel.display().to_string()
                    ),
                ));
            }
            Ok(_) => {
                return Err(Error::unsafe_entry(
                    shown,
                    format!("{:?} is not a directory", rel.display().to_string()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&abs)
                    .map_err(|e| Error::io("create directory", &abs, e))?;
            }
            Err(e) => return Err(Error::io("stat", abs, e)),
        }
        self.dirs.insert(rel.to_path_buf());
        Ok(())
    }

    /// Removes a file or link at `abs` so a later entry can replace it; refuses to replace a
    /// directory.
    fn clear_target(&self, abs: &Path, shown: &str) -> Result<()> {
        match fs::symlink_metadata(abs) {
            Ok(m) if m.is_dir() => Err(Error::unsafe_entry(shown, "would replace a directory")),
            Ok(_) => fs::remove_file(abs).map_err(|e| Error::io("remove", abs, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("stat", abs, e)),
        }
    }

    fn symlink(&mut self, rel: &Path, target: &[u8], shown: &str) -> Result<()> {
        if target.is_empty() || target[0] == b'/' || target.contains(&0) {
            return Err(Error::unsafe_entry(
                shown,
                "symlink target must be a non-empty relative path",
            ));
        }
        // Lexical check first (cheap, catches the obvious cases with a clear message).
        let mut depth = rel.components().count() as i64 - 1;
        for comp in target.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return Err(Error::unsafe_entry(
                    shown,
                    format!(
                        "symlink target {:?} points outside the extraction root",
                        String::from_utf8_lossy(target)
                    ),
                ));
            }
        }
        self.prepare_parent(rel, shown)?;
        let abs = self.root.join(rel);
        self.clear_target(&abs, shown)?;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &abs)
            .map_err(|e| Error::io("symlink", &abs, e))?;
        self.links.push(rel.to_path_buf());
        self.summary.symlinks += 1;
        Ok(())
    }

    fn hardlink(&mut self, rel: &Path, target: &[u8], shown: &str) -> Result<()> {
        let escape = |why: &str| {
            Error::unsafe_entry(
                shown,
                format!(
                    "hardlink target {:?} {why}",
                    String::from_utf8_lossy(target)
                ),
            )
        };
        let target_rel = match clean_name(target) {
            Ok(Some(t)) => t,
            _ => return Err(escape("points outside the extraction root")),
        };
        // The target's parents must be real directories we created, and it a regular file.
        if let Some(p) = target_rel.parent()
            && !p.as_os_str().is_empty()
            && !self.dirs.contains(p)
        {
            return Err(escape("is not an extracted file inside the root"));
        }
        let target_abs = self.root.join(&target_rel);
        match fs::symlink_metadata(&target_abs) {
            Ok(m) if m.is_file() => {}
            _ => return Err(escape("is not an extracted regular file inside the root")),
        }
        self.prepare_parent(rel, shown)?;
        let abs = self.root.join(rel);
        self.clear_target(&abs, shown)?;
        fs::hard_link(&target_abs, &abs).map_err(|e| Error::io("hardlink", &abs, e))?;
        self.summary.hardlinks += 1;
        Ok(())
    }

    /// Resolves every created symlink against the final tree and refuses any that leads out.
    fn check_symlinks(&self) -> Result<()> {
        for link in &self.links {
            if !self.resolves_inside(link)? {
                return Err(Error::unsafe_entry(
                    link.display().to_string(),
                    "symlink resolves outside the extraction root",
                ));
            }
        }
        Ok(())
    }

    /// Follows `rel` component by component (with the links in the tree) and reports whether
    /// it stays inside the root. Missing components are taken lexically.
    fn resolves_inside(&self, rel: &Path) -> Result<bool> {
        let mut pending: Vec<Vec<u8>> = rel
            .as_os_str()
            .as_bytes()
            .split(|&b| b == b'/')
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if cur.pop().is_none() {
                        return Ok(false);
                    }
                    continue;
                }
                _ => {}
            }
            cur.push(comp);
            let mut abs = self.root.clone();
            for c in &cur {
                abs.push(std::ffi::OsStr::from_bytes(c));
            }
            match fs::symlink_metadata(&abs) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        return Ok(false); // a loop
                    }
                    let target = fs::read_link(&abs).map_err(|e| Error::io("readlink", &abs, e))?;
                    let t = target.as_os_str().as_bytes();
                    if t.first() == Some(&b'/') {
                        return Ok(false);
                    }
                    cur.pop();
                    pending.extend(t.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                }
                _ => {}
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(clean_name(b"./a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(clean_name(b".").unwrap(), None);
        assert_eq!(clean_name(b"./").unwrap(), None);
        assert!(clean_name(b"/etc/passwd").is_err());
        assert!(clean_name(b"a/../../b").is_err());
        assert!(clean_name(b"..").is_err());
        assert!(clean_name(b"a\\b").is_err());
        assert!(clean_name(b"").is_err());
    }
}
