//! Artifact storage: layout, atomic writes, symlinks, retention and per-object locking.
//!
//! Layout: `<base>/<kind lowercased>/<namespace>/<name>/<file>` (Flux `ArtifactPath`). URLs are
//! `http://<advertised address>/<path>`, or `<advertised address>/<path>` when the address
//! already has an `http://`/`https://` scheme (Flux `SetArtifactURL`).
//!
//! Writes go to a temporary file in the target directory, are fsynced, given their final mode
//! (archives 0600, as Flux chmods them; the artifact server runs in the same process and user
//! so it can still read them) and renamed over the target, then the directory is fsynced. A
//! reader that opened the old file keeps reading the old bytes.
//!
//! Retention ([`Storage::garbage_files`]): among the regular files of an object's directory
//! (symlinks, `*.lock` files and subdirectories are ignored), every file older than the TTL is
//! garbage; of the rest, only the `records` newest are kept (the current artifact counts as one
//! of them). The current artifact is never garbage. Leftover temporary files (`.tmp-*`) do not
//! count as records and are removed once older than the TTL. Age is the file's mtime against
//! the `now` the caller passes in.
//!
//! One writer per object directory: take [`Storage::lock`] (async) or
//! [`Storage::blocking_lock`] around archive/write/symlink/GC of an object. The lock is
//! in-process (source-controller serves and writes from one leader process).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::OwnedMutexGuard;

use crate::archive::{ArchiveOptions, ArchiveWriter, write_archive};
use crate::digest::{Algorithm, Digest, DigestWriter};
use crate::error::{Error, Result};
use crate::ignore::Matcher;

/// The file mode Flux gives stored archives.
pub const ARCHIVE_FILE_MODE: u32 = 0o600;
/// Mode of the object directories (Flux `MkdirAll` uses 0700).
pub const DIR_MODE: u32 = 0o700;
/// The symlink name for the latest tarball (HelmChart, OCIRepository, Bucket).
pub const LATEST_TARBALL: &str = "latest.tar.gz";
/// The symlink name for the latest Helm repository index.
pub const INDEX_YAML: &str = "index.yaml";
const TMP_PREFIX: &str = ".tmp-";

/// Our own artifact record (FLUX-API.md §2.1). The API crate maps it to `meta.Artifact`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Relative path inside storage: `<kind lowercased>/<namespace>/<name>/<file>`.
    pub path: String,
    /// `http://<advertised address>/<path>`.
    pub url: String,
    /// Source-specific revision, e.g. `main@sha1:<hex>`.
    pub revision: String,
    /// `sha256:<hex>` of the stored file; empty until written.
    pub digest: String,
    /// When the file was written (the `now` passed to the write).
    pub last_update_time: SystemTime,
    /// Size of the stored file in bytes.
    pub size: Option<u64>,
    /// Free-form metadata (e.g. OCI annotations).
    pub metadata: BTreeMap<String, String>,
}

impl Artifact {
    /// `last_update_time` as RFC 3339 at second precision in UTC, the form `metav1.Time` uses.
    pub fn last_update_time_rfc3339(&self) -> String {
        format_rfc3339(self.last_update_time)
    }

    /// The file name part of `path`.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC, seconds; times before 1970 clamp to the epoch).
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's public-domain algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Retention settings (`--artifact-retention-records`, `--artifact-retention-ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How many of the newest artifacts to keep per object (Flux default 2).
    pub records: usize,
    /// Artifacts older than this are removed (Flux default 1 minute).
    pub ttl: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            records: 2,
            ttl: Duration::from_secs(60),
        }
    }
}

/// Holds the write lock of one object directory until dropped.
pub struct DirLock {
    _guard: OwnedMutexGuard<()>,
}

/// The storage directory. Cheap to clone; clones share the lock map.
#[derive(Clone)]
pub struct Storage {
    base: PathBuf,
    hostname: String,
    retention: Retention,
    locks: Arc<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>>,
}

fn check_component(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err(Error::InvalidPath {
            path: s.to_string(),
            reason: format!("{what} must be a single, non-empty path component"),
        });
    }
    Ok(())
}

/// `<kind lowercased>/<namespace>/<name>` (Flux `ArtifactDir`).
pub fn artifact_dir(kind: &str, namespace: &str, name: &str) -> Result<String> {
    check_component("kind", kind)?;
    check_component("namespace", namespace)?;
    check_component("name", name)?;
    Ok(format!("{}/{namespace}/{name}", kind.to_lowercase()))
}

/// `<kind lowercased>/<namespace>/<name>/<file>` (Flux `ArtifactPath`).
pub fn artifact_path(kind: &str, namespace: &str, name: &str, file: &str) -> Result<String> {
    check_component("file name", file)?;
    Ok(format!("{}/{file}", artifact_dir(kind, namespace, name)?))
}

/// The URL of `path` behind the advertised address `hostname`.
pub fn artifact_url(hostname: &str, path: &str) -> String {
    let path = path.trim_start_matches('/');
    if hostname.starts_with("http://") || hostname.starts_with("https://") {
        format!("{}/{path}", hostname.trim_end_matches('/'))
    } else {
        format!("http://{hostname}/{path}")
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

impl Storage {
    /// Storage rooted at `base` (which must be an existing directory), advertising
    /// `adv_addr` (e.g. `source-controller.flux-system.svc.cluster.local.`) in URLs.
    pub fn new(
        base: impl Into<PathBuf>,
        adv_addr: impl Into<String>,
        retention: Retention,
    ) -> Result<Storage> {
        let base = base.into();
        match fs::metadata(&base) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::InvalidPath {
                    path: base.display().to_string(),
                    reason: "storage path is not a directory".into(),
                });
            }
            Err(e) => return Err(Error::io("stat storage path", base, e)),
        }
        Ok(Storage {
            base,
            hostname: adv_addr.into(),
            retention,
            locks: Arc::default(),
        })
    }

    /// The storage directory.
    pub fn base_path(&self) -> &Path {
        &self.base
    }

    /// The advertised address used in URLs.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The retention settings.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// A new artifact record for an object (Flux `NewArtifactFor`): path and URL set, no
    /// digest yet.
    pub fn new_artifact_for(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        revision: &str,
        file: &str,
    ) -> Result<Artifact> {
        let path = artifact_path(kind, namespace, name, file)?;
        Ok(Artifact {
            url: artifact_url(&self.hostname, &path),
            path,
            revision: revision.to_string(),
            digest: String::new(),
            last_update_time: UNIX_EPOCH,
            size: None,
            metadata: BTreeMap::new(),
        })
    }

    /// The URL for a storage-relative path.
    pub fn url_for(&self, path: &str) -> String {
        artifact_url(&self.hostname, path)
    }

    /// The absolute local path of an artifact; refuses paths that are absolute or use `..`.
    pub fn local_path(&self, artifact: &Artifact) -> Result<PathBuf> {
        self.resolve(&artifact.path)
    }

    fn resolve(&self, rel: &str) -> Result<PathBuf> {
        let p = Path::new(rel);
        let ok = !rel.is_empty()
            && p.components().all(|c| matches!(c, Component::Normal(_)))
            && !rel.contains('\0');
        if !ok {
            return Err(Error::InvalidPath {
                path: rel.to_string(),
                reason: "artifact path must be relative without `.` or `..` components".into(),
            });
        }
        Ok(self.base.join(p))
    }

    fn object_dir(&self, artifact: &Artifact) -> Result<PathBuf> {
        let local = self.local_path(artifact)?;
        Ok(local.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// Creates the artifact's directory.
    pub fn mkdir_all(&self, artifact: &Artifact) -> Result<()> {
        let dir = self.object_dir(artifact)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(|e| Error::io("create directory", dir, e))
    }

    fn lock_for(&self, artifact: &Artifact) -> Result<Arc<tokio::sync::Mutex<()>>> {
        let dir = self.object_dir(artifact)?;
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Arc::clone(map.entry(dir).or_default()))
    }

    /// Waits for the write lock of the artifact's object directory.
    pub async fn lock(&self, artifact: &Artifact) -> Result<DirLock> {
        let m = self.lock_for(artifact)?;
        Ok(DirLock {
            _guard: m.lock_owned().await,
        })
    }

    /// [`Storage::lock`] for synchronous code (must not be called from an async task).
    pub fn blocking_lock(&self, artifact: &Artifact) -> Result<DirLock> {
        let m = self.lock_for(artifact)?;
        Ok(DirLock {
            _guard: m.blocking_lock_owned(),
        })
    }

    /// The write lock if it is free right now.
    pub fn try_lock(&self, artifact: &Artifact) -> Result<Option<DirLock>> {
        let m = self.lock_for(artifact)?;
        Ok(m.try_lock_owned().ok().map(|g| DirLock { _guard: g }))
    }

    /// Writes atomically: `fill` gets a writer to a temporary file in the target directory;
    /// the file is fsynced, chmod'ed to `mode` (if given) and renamed over the target.
    fn atomic<F>(
        &self,
        artifact: &mut Artifact,
        mode: Option<u32>,
        now: SystemTime,
        fill: F,
    ) -> Result<()>
    where
        F: FnOnce(&mut DigestWriter<&mut File>) -> Result<()>,
    {
        let local = self.local_path(artifact)?;
        self.mkdir_all(artifact)?;
        let dir = self.object_dir(artifact)?;
        let tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(|e| Error::io("create temporary file in", &dir, e))?;
        let (mut file, tmp_path) = tmp.into_parts();
        let mut w = DigestWriter::new(&mut file, Algorithm::Sha256);
        fill(&mut w)?;
        let (_, digest, size) = w.finish();
        file.sync_all()
            .map_err(|e| Error::io("fsync", tmp_path.to_path_buf(), e))?;
        if let Some(mode) = mode {
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("chmod", tmp_path.to_path_buf(), e))?;
        }
        drop(file);
        tmp_path
            .persist(&local)
            .map_err(|e| Error::io("rename temporary file to", &local, e.error))?;
        fsync_dir(&dir)?;
        artifact.digest = digest.to_string();
        artifact.size = Some(size);
        artifact.last_update_time = now;
        Ok(())
    }

    /// Archives `dir` (as [`crate::archive::write_archive`]) to the artifact's path, atomically,
    /// with mode 0600; sets digest, size and `last_update_time = now` (Flux `Archive`).
    pub fn archive(
        &self,
        artifact: &mut Artifact,
        dir: &Path,
        matcher: Option<&Matcher>,
        opts: &ArchiveOptions,
        now: SystemTime,
    ) -> Result<()> {
        self.atomic(artifact, Some(ARCHIVE_FILE_MODE), now, |w| {
            let buffered = io::BufWriter::with_capacity(256 * 1024, w);
            let (buffered, _) = write_archive(dir, matcher, opts, buffered)?;
            buffered
                .into_inner()
                .map_err(|e| Error::io("write", dir, e.into_error()))?;
            Ok(())
        })
    }

    /// Like [`Storage::archive`], with the entries written by `fill` (see
    /// [`crate::archive::ArchiveWriter`]) instead of read from a directory.
    pub fn archive_entries<F>(
        &self,
        artifact: &mut Artifact,
        opts: &ArchiveOptions,
        now: SystemTime,
        fill: F,
    ) -> Result<()>
    where
        F: FnOnce(&mut ArchiveWriter<&mut dyn Write>) -> Result<()>,
    {
        let path = artifact.path.clone();
        self.atomic(artifact, Some(ARCHIVE_FILE_MODE), now, |w| {
            let mut buffered = io::BufWriter::with_capacity(256 * 1024, w);
            let mut aw = ArchiveWriter::new(&mut buffered as &mut dyn Write, opts)
                .map_err(|e| Error::io("write archive", &path, e))?;
            fill(&mut aw)?;
            aw.finish()
                .map_err(|e| Error::io("write archive", &path, e))?;
            buffered
                .into_inner()
                .map_err(|e| Error::io("write", &path, e.into_error()))?;
            Ok(())
        })
    }

    /// Copies `reader` to the artifact's path atomically with `mode` (Flux `AtomicWriteFile`).
    pub fn atomic_write(
        &self,
        artifact: &mut Artifact,
        mut reader: impl Read,
        mode: u32,
        now: SystemTime,
    ) -> Result<()> {
        let path = artifact.path.clone();
        self.atomic(artifact, Some(mode), now, |w| {
            io::copy(&mut reader, w).map_err(|e| Error::io("write", path, e))?;
            Ok(())
        })
    }

    /// Copies the file at `src` to the artifact's path atomically (Flux `CopyFromPath`).
    pub fn copy_from_path(
        &self,
        artifact: &mut Artifact,
        src: &Path,
        now: SystemTime,
    ) -> Result<()> {
        let mut f = File::open(src).map_err(|e| Error::io("open", src, e))?;
        self.atomic(artifact, None, now, |w| {
            io::copy(&mut f, w).map_err(|e| Error::io("copy", src, e))?;
            Ok(())
        })
    }

    /// Points `<object dir>/<link_name>` at the artifact's file (replacing an older link
    /// atomically) and returns the link's URL (Flux `Symlink`). The link target is the bare
    /// file name, so the storage directory can move.
    pub fn symlink(&self, artifact: &Artifact, link_name: &str) -> Result<String> {
        check_component("link name", link_name)?;
        let dir = self.object_dir(artifact)?;
        let link = dir.join(link_name);
        let tmp = dir.join(format!("{TMP_PREFIX}{link_name}.link"));
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", tmp, e)),
        }
        std::os::unix::fs::symlink(artifact.file_name(), &tmp)
            .map_err(|e| Error::io("symlink", &tmp, e))?;
        fs::rename(&tmp, &link).map_err(|e| Error::io("rename symlink to", &link, e))?;
        let dir_rel = artifact.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        Ok(self.url_for(&format!("{dir_rel}/{link_name}")))
    }

    /// True when the artifact's file exists and is a regular file (not followed if a link).
    pub fn exists(&self, artifact: &Artifact) -> bool {
        self.local_path(artifact)
            .and_then(|p| fs::symlink_metadata(&p).map_err(|e| Error::io("stat", p, e)))
            .is_ok_and(|m| m.is_file())
    }

    /// Recomputes the stored file's digest and compares it with `artifact.digest`.
    pub fn verify(&self, artifact: &Artifact) -> Result<()> {
        if artifact.digest.is_empty() {
            return Err(Error::InvalidDigest {
                digest: String::new(),
                reason: "artifact has no digest".into(),
            });
        }
        let want = Digest::parse(&artifact.digest)?;
        let local = self.local_path(artifact)?;
        let mut f = File::open(&local).map_err(|e| Error::io("open", &local, e))?;
        let mut w = DigestWriter::new(io::sink(), want.algorithm);
        io::copy(&mut f, &mut w).map_err(|e| Error::io("read", &local, e))?;
        let (_, got, _) = w.finish();
        if got != want {
            return Err(Error::DigestMismatch {
                expected: want.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(())
    }

    /// Removes the artifact's file.
    pub fn remove(&self, artifact: &Artifact) -> Result<()> {
        let p = self.local_path(artifact)?;
        fs::remove_file(&p).map_err(|e| Error::io("remove", p, e))
    }

    /// Removes the whole object directory (when the object is deleted). Returns the removed
    /// directory, or `None` if there was none.
    pub fn remove_all(&self, artifact: &Artifact) -> Result<Option<PathBuf>> {
        let dir = self.object_dir(artifact)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(Some(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("remove directory", dir, e)),
        }
    }

    /// Removes every regular file of the object directory except the artifact's own file
    /// (symlinks are kept). Returns the removed paths.
    pub fn remove_all_but_current(&self, artifact: &Artifact) -> Result<Vec<PathBuf>> {
        let current = self.local_path(artifact)?;
        let mut removed = Vec::new();
        for (path, _, _) in self.list_files(artifact)? {
            if path != current {
                fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                removed.push(path);
            }
        }
        Ok(removed)
    }

    /// Regular files of the object dir (not links, not `*.lock`): path, mtime, is-temporary.
    fn list_files(&self, artifact: &Artifact) -> Result<Vec<(PathBuf, SystemTime, bool)>> {
        let dir = self.object_dir(artifact)?;
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read directory", dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("stat", entry.path(), e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !meta.is_file() || name.ends_with(".lock") {
                continue;
            }
            let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
            out.push((entry.path(), mtime, name.starts_with(TMP_PREFIX)));
        }
        Ok(out)
    }

    /// The files retention would delete for this object at time `now` (see the module docs).
    pub fn garbage_files(&self, artifact: &Artifact, now: SystemTime) -> Result<Vec<PathBuf>> {
        let current = self.local_path(artifact)?;
        let ttl = self.retention.ttl;
        let expired = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age > ttl);
        let mut garbage = Vec::new();
        let mut kept: Vec<(PathBuf, SystemTime)> = Vec::new();
        for (path, mtime, tmp) in self.list_files(artifact)? {
            if path == current {
                kept.push((path, mtime));
            } else if expired(mtime) {
                garbage.push(path);
            } else if !tmp {
                kept.push((path, mtime));
            }
        }
        // Newest first; ties by name for determinism. The current artifact always stays.
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut slots = self.retention.records.max(1).saturating_sub(1); // one is the current
        for (path, _) in kept {
            if path == current {
                continue;
            }
            if slots > 0 {
                slots -= 1;
            } else {
                garbage.push(path);
            }
        }
        garbage.sort();
        Ok(garbage)
    }

    /// Deletes [`Storage::garbage_files`] and returns them.
    pub fn garbage_collect(&self, artifact: &Artifact, now: SystemTime) -> Result<Vec<PathBuf>> {
        let garbage = self.garbage_files(artifact, now)?;
        for p in &garbage {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", p, e)),
            }
        }
        Ok(garbage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(format_rfc3339(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn paths_and_urls() {
        assert_eq!(
            artifact_path("GitRepository", "flux-system", "podinfo", "abc.tar.gz").unwrap(),
            "gitrepository/flux-system/podinfo/abc.tar.gz"
        );
        assert!(artifact_path("GitRepository", "..", "x", "f").is_err());
        assert!(artifact_path("GitRepository", "ns", "a/b", "f").is_err());
        assert_eq!(
            artifact_url(
                "source-controller.flux-system.svc.cluster.local.",
                "/a/b.tgz"
            ),
            "http://source-controller.flux-system.svc.cluster.local./a/b.tgz"
        );
        assert_eq!(artifact_url("https://x:9090/", "a"), "https://x:9090/a");
    }
}
