//! Directory → deterministic tar.gz, the way Flux's `storage.Archive` builds it.
//!
//! * Entries are written depth first, each directory's entries in byte order of their names
//!   (Go's `filepath.Walk` order), starting with the root directory itself as `.`; directory
//!   names carry no trailing slash (as Go's `tar.Writer` writes Flux's headers).
//! * Headers are sanitized: name relative to the root, uid/gid 0, empty user/group names, mtime
//!   0 (1970-01-01), no atime/ctime, modes normalized to Flux's `DefaultDirMode` 0750,
//!   `DefaultExeFileMode` 0700 (any execute bit set) and `DefaultFileMode` 0600.
//! * Only regular files and directories are archived; symlinks, sockets, devices and FIFOs are
//!   skipped (never followed), so nothing outside the tree can be pulled in.
//! * USTAR headers; names longer than USTAR allows get a PAX `path` record (and sizes of 8 GiB
//!   or more a PAX `size` record). The stream ends with two zero blocks.
//! * gzip at level 6 by default, one member, deterministic for any thread count
//!   ([`crate::pargz`]); the digest is sha256 over the compressed bytes, computed while writing.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::digest::{Algorithm, Digest, DigestWriter};
use crate::error::{Error, Result};
use crate::ignore::Matcher;
use crate::pargz::ParGzWriter;

/// Mode of directories inside an archive (Flux `DefaultDirMode`).
pub const DIR_MODE: u32 = 0o750;
/// Mode of non-executable files inside an archive (Flux `DefaultFileMode`).
pub const FILE_MODE: u32 = 0o600;
/// Mode of executable files inside an archive (Flux `DefaultExeFileMode`).
pub const EXE_FILE_MODE: u32 = 0o700;

const BLOCK: usize = 512;

/// How to compress.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// gzip level 0-9; 6 (the default) compresses like `gzip -6`.
    pub level: u32,
    /// Compression threads. The output bytes do not depend on this.
    pub threads: usize,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            level: 6,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4),
        }
    }
}

/// What [`write_archive`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// sha256 over the compressed bytes.
    pub digest: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    /// Number of tar entries (directories and files).
    pub entries: u64,
    /// Uncompressed bytes of file content.
    pub content_bytes: u64,
}

/// Archives `dir` into `out` as tar.gz, skipping what `matcher` excludes. Returns `out` and the
/// summary (digest, compressed size).
pub fn write_archive<W: Write>(
    dir: &Path,
    matcher: Option<&Matcher>,
    opts: &ArchiveOptions,
    out: W,
) -> Result<(W, ArchiveSummary)> {
    let meta = fs::metadata(dir).map_err(|e| Error::io("stat", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidPath {
            path: dir.display().to_string(),
            reason: "not a directory".into(),
        });
    }
    let mut w = ArchiveWriter::new(out, opts).map_err(|e| Error::io("write archive", dir, e))?;
    let mut rel_names: Vec<String> = Vec::new();
    let mut rel_bytes: Vec<u8> = Vec::new();
    walk(dir, &mut rel_names, &mut rel_bytes, matcher, &mut w.tar)?;
    w.finish().map_err(|e| Error::io("write archive", dir, e))
}

/// Builds the same archive as [`write_archive`] from entries the caller supplies instead of a
/// directory (e.g. straight from git objects), so nothing has to be written to disk first.
///
/// The caller is responsible for the order [`write_archive`] uses to get byte-identical
/// output: depth first, each directory's entries sorted by the bytes of their names, a
/// directory's entry right before its contents. Names are relative paths with `/` separators
/// and no trailing slash; the root entry `.` is written by [`ArchiveWriter::new`].
pub struct ArchiveWriter<W: Write> {
    tar: TarWriter<W>,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts the archive (gzip stream and the root `.` directory entry).
    pub fn new(out: W, opts: &ArchiveOptions) -> std::io::Result<Self> {
        let digest_out = DigestWriter::new(out, Algorithm::Sha256);
        let gz = ParGzWriter::new(digest_out, opts.level.min(9), opts.threads);
        let mut tar = TarWriter {
            gz,
            entries: 0,
            content_bytes: 0,
        };
        tar.header(b".", DIR_MODE, 0, b'5')?;
        Ok(ArchiveWriter { tar })
    }

    /// A directory entry.
    pub fn dir(&mut self, name: &[u8]) -> std::io::Result<()> {
        self.tar.header(name, DIR_MODE, 0, b'5')
    }

    /// A regular file with the given content.
    pub fn file(&mut self, name: &[u8], executable: bool, content: &[u8]) -> std::io::Result<()> {
        let size = content.len() as u64;
        self.tar.header(name, file_mode(executable), size, b'0')?;
        self.tar.gz.write_all(content)?;
        self.tar.content_bytes += size;
        self.tar.pad(size)
    }

    /// A regular file of exactly `size` bytes read from `reader`; fails when `reader` ends
    /// early (the archive is then unusable).
    pub fn file_from_reader(
        &mut self,
        name: &[u8],
        executable: bool,
        size: u64,
        reader: &mut impl std::io::Read,
    ) -> std::io::Result<()> {
        self.tar.header(name, file_mode(executable), size, b'0')?;
        let got = self.tar.gz.write_from_reader(reader, size)?;
        if got != size {
            return Err(std::io::Error::other(format!(
                "file shrank while archiving ({got} of {size} bytes)"
            )));
        }
        self.tar.content_bytes += size;
        self.tar.pad(size)
    }

    /// Ends the tar stream and the gzip member; returns `out` and the summary.
    pub fn finish(self) -> std::io::Result<(W, ArchiveSummary)> {
        let entries = self.tar.entries;
        let content_bytes = self.tar.content_bytes;
        let digest_out = self.tar.finish()?;
        let (out, digest, size) = digest_out.finish();
        Ok((
            out,
            ArchiveSummary {
                digest,
                size,
                entries,
                content_bytes,
            },
        ))
    }
}

fn file_mode(executable: bool) -> u32 {
    if executable { EXE_FILE_MODE } else { FILE_MODE }
}

fn walk<W: Write>(
    dir: &Path,
    rel_names: &mut Vec<String>,
    rel_bytes: &mut Vec<u8>,
    matcher: Option<&Matcher>,
    w: &mut TarWriter<W>,
) -> Result<()> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        entries.push((entry.file_name(), ft));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    for (name, ft) in entries {
        if !(ft.is_dir() || ft.is_file()) {
            continue; // symlinks, devices, sockets, FIFOs
        }
        let path = dir.join(&name);
        let prev_len = rel_bytes.len();
        if !rel_bytes.is_empty() {
            rel_bytes.push(b'/');
        }
        rel_bytes.extend_from_slice(name.as_bytes());
        rel_names.push(name.to_string_lossy().into_owned());

        let excluded = matcher.is_some_and(|m| {
            let parts: Vec<&str> = rel_names.iter().map(String::as_str).collect();
            m.is_excluded(&parts, ft.is_dir())
        });
        let res = if ft.is_dir() {
            if excluded && matcher.is_some_and(Matcher::can_prune_excluded_dirs) {
                Ok(())
            } else {
                let written = if excluded {
                    Ok(())
                } else {
                    w.header(rel_bytes, DIR_MODE, 0, b'5')
                        .map_err(|e| Error::io("write archive", &path, e))
                };
                written.and_then(|()| walk(&path, rel_names, rel_bytes, matcher, w))
            }
        } else if excluded {
            Ok(())
        } else {
            w.file(&path, rel_bytes)
        };

        rel_names.pop();
        rel_bytes.truncate(prev_len);
        res?;
    }
    Ok(())
}

struct TarWriter<W: Write> {
    gz: ParGzWriter<DigestWriter<W>>,
    entries: u64,
    content_bytes: u64,
}

impl<W: Write> TarWriter<W> {
    fn file(&mut self, path: &Path, name: &[u8]) -> Result<()> {
        let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let meta = f.metadata().map_err(|e| Error::io("stat", path, e))?;
        if !meta.is_file() {
            // Replaced by something else since the directory was read.
            return Ok(());
        }
        let mode = file_mode(meta.permissions().mode() & 0o111 != 0);
        let size = meta.len();
        self.header(name, mode, size, b'0')
            .map_err(|e| Error::io("write archive", path, e))?;
        let got = self
            .gz
            .write_from_reader(&mut f, size)
            .map_err(|e| Error::io("read", path, e))?;
        if got != size {
            return Err(Error::io(
                "read",
                path,
                std::io::Error::other(format!(
                    "file shrank while archiving ({got} of {size} bytes)"
                )),
            ));
        }
        self.content_bytes += size;
        self.pad(size)
            .map_err(|e| Error::io("write archive", path, e))
    }

    /// Zero fill up to the next block after `size` content bytes.
    fn pad(&mut self, size: u64) -> std::io::Result<()> {
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.gz.write_all(&[0u8; BLOCK][..pad])
    }

    fn header(&mut self, name: &[u8], mode: u32, size: u64, typeflag: u8) -> std::io::Result<()> {
        self.entries += 1;
        let mut pax = Vec::new();
        let (prefix, short) = match split_ustar_name(name) {
            Some(split) => split,
            None => {
                pax_record(&mut pax, "path", name);
                (&b""[..], &name[..name.len().min(100)])
            }
        };
        let size_field = if size > 0o77777777777 {
            pax_record(&mut pax, "size", size.to_string().as_bytes());
            0
        } else {
            size
        };
        if !pax.is_empty() {
            let block = ustar_block(b"", b"PaxHeader", 0o600, pax.len() as u64, b'x');
            self.gz.write_all(&block)?;
            self.gz.write_all(&pax)?;
            let pad = (BLOCK - pax.len() % BLOCK) % BLOCK;
            self.gz.write_all(&[0u8; BLOCK][..pad])?;
        }
        let block = ustar_block(prefix, short, mode, size_field, typeflag);
        self.gz.write_all(&block)
    }

    fn finish(mut self) -> std::io::Result<DigestWriter<W>> {
        self.gz.write_all(&[0u8; 2 * BLOCK])?;
        self.gz.finish()
    }
}

/// Splits a long name into USTAR prefix (≤155) and name (≤100) at a slash, like Go's
/// `splitUSTARPath`. `Some((b"", name))` when the name fits as is.
fn split_ustar_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((b"", name));
    }
    let limit = name.len().min(156);
    let i = name[..limit].iter().rposition(|&b| b == b'/')?;
    let (prefix, rest) = (&name[..i], &name[i + 1..]);
    if i == 0 || rest.is_empty() || rest.len() > 100 || prefix.len() > 155 {
        return None;
    }
    Some((prefix, rest))
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let base = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn octal(field: &mut [u8], value: u64) {
    // Zero-padded octal digits filling all but the last byte, which stays NUL.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn ustar_block(prefix: &[u8], name: &[u8], mode: u32, size: u64, typeflag: u8) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    octal(&mut b[100..108], u64::from(mode));
    octal(&mut b[108..116], 0); // uid
    octal(&mut b[116..124], 0); // gid
    octal(&mut b[124..136], size);
    octal(&mut b[136..148], 0); // mtime: 1970-01-01
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname and gname stay empty.
    octal(&mut b[329..337], 0); // devmajor
    octal(&mut b[337..345], 0); // devminor
    b[345..345 + prefix.len()].copy_from_slice(prefix);
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}");
    b[148..154].copy_from_slice(s.as_bytes());
    b[154] = 0;
    b[155] = b' ';
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_split_and_pax_lengths() {
        assert_eq!(split_ustar_name(b"a/b"), Some((&b""[..], &b"a/b"[..])));
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        let (p, n) = split_ustar_name(long.as_bytes()).unwrap();
        assert_eq!(p.len(), 120);
        assert_eq!(n.len(), 50);
        assert!(split_ustar_name("x".repeat(200).as_bytes()).is_none());
        let mut rec = Vec::new();
        pax_record(&mut rec, "path", b"abc");
        assert_eq!(rec, b"12 path=abc\n");
        let mut rec = Vec::new();
        pax_record(&mut rec, "path", "p".repeat(95).as_bytes());
        assert_eq!(rec.len(), 105);
        assert!(rec.starts_with(b"105 "));
    }

    #[test]
    fn header_fields() {
        let b = ustar_block(b"", b"dir/file.yaml", 0o600, 1234, b'0');
        assert_eq!(&b[100..108], b"0000600\0");
        assert_eq!(&b[124..136], b"00000002322\0");
        assert_eq!(&b[136..148], b"00000000000\0");
        let h = tar::Header::from_byte_slice(&b);
        assert!(h.as_ustar().is_some());
        assert!(h.cksum().is_ok());
        assert_eq!(h.size().unwrap(), 1234);
        assert_eq!(h.mode().unwrap(), 0o600);
    }
}
