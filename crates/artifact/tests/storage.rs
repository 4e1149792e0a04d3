//! Storage: layout, atomic archive writes, symlinks, retention, removal, locking.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferroflux_artifact::archive::ArchiveOptions;
use ferroflux_artifact::ignore::git_source_matcher;
use ferroflux_artifact::storage::{LATEST_TARBALL, Retention, Storage};

fn set_mtime(p: &Path, t: SystemTime) {
    File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn archive_into_storage_is_atomic_0600_and_verifiable() {
    let base = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("app.yaml"), "kind: ConfigMap\n").unwrap();
    let storage = Storage::new(
        base.path(),
        "source-controller.flux-system.svc.cluster.local.",
        Retention::default(),
    )
    .unwrap();
    let mut a = storage
        .new_artifact_for(
            "GitRepository",
            "flux-system",
            "podinfo",
            "main@sha1:abc",
            "abc.tar.gz",
        )
        .unwrap();
    assert_eq!(a.path, "gitrepository/flux-system/podinfo/abc.tar.gz");
    assert_eq!(
        a.url,
        "http://source-controller.flux-system.svc.cluster.local./gitrepository/flux-system/podinfo/abc.tar.gz"
    );
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let m = git_source_matcher(src.path(), None).unwrap();
    storage
        .archive(
            &mut a,
            src.path(),
            Some(&m),
            &ArchiveOptions::default(),
            now,
        )
        .unwrap();
    let local = storage.local_path(&a).unwrap();
    let meta = fs::metadata(&local).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(Some(meta.len()), a.size);
    assert_eq!(a.last_update_time, now);
    assert_eq!(a.last_update_time_rfc3339(), "2023-11-14T22:13:20Z");
    let sum = Command::new("sha256sum").arg(&local).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    assert_eq!(
        a.digest,
        format!("sha256:{}", sum.split_whitespace().next().unwrap())
    );
    storage.verify(&a).unwrap();
    assert!(storage.exists(&a));
    // Only the artifact is in the directory: no temporary files left.
    let names: Vec<_> = fs::read_dir(local.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["abc.tar.gz"]);

    // Corrupt it: verification reports a digest mismatch.
    fs::write(&local, "tampered").unwrap();
    let err = storage.verify(&a).unwrap_err();
    assert!(
        matches!(err, ferroflux_artifact::Error::DigestMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn archive_failure_leaves_no_file() {
    let base = tempfile::tempdir().unwrap();
    let storage = Storage::new(base.path(), "h", Retention::default()).unwrap();
    let mut a = storage
        .new_artifact_for("Bucket", "ns", "b", "r", "x.tar.gz")
        .unwrap();
    let missing = base.path().join("no-such-dir");
    assert!(
        storage
            .archive(
                &mut a,
                &missing,
                None,
                &ArchiveOptions::default(),
                UNIX_EPOCH
            )
            .is_err()
    );
    assert!(!storage.exists(&a));
    let dir = base.path().join("bucket/ns/b");
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
}

#[test]
fn latest_symlink_points_at_current_and_is_replaced() {
    let base = tempfile::tempdir().unwrap();
    let storage = Storage::new(
        base.path(),
        "https://artifacts.example:9443",
        Retention::default(),
    )
    .unwrap();
    let mut a1 = storage
        .new_artifact_for("HelmChart", "ns", "c", "1.0.0", "c-1.0.0.tgz")
        .unwrap();
    storage
        .atomic_write(&mut a1, &b"one"[..], 0o600, UNIX_EPOCH)
        .unwrap();
    let url = storage.symlink(&a1, LATEST_TARBALL).unwrap();
    assert_eq!(
        url,
        "https://artifacts.example:9443/helmchart/ns/c/latest.tar.gz"
    );
    let link = base.path().join("helmchart/ns/c/latest.tar.gz");
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("c-1.0.0.tgz"));
    let mut a2 = storage
        .new_artifact_for("HelmChart", "ns", "c", "1.1.0", "c-1.1.0.tgz")
        .unwrap();
    storage
        .atomic_write(&mut a2, &b"two"[..], 0o600, UNIX_EPOCH)
        .unwrap();
    storage.symlink(&a2, LATEST_TARBALL).unwrap();
    assert_eq!(fs::read(&link).unwrap(), b"two");
    assert!(storage.symlink(&a2, "../escape").is_err());
}

#[test]
fn retention_keeps_newest_records_drops_expired_never_current() {
    let base = tempfile::tempdir().unwrap();
    let storage = Storage::new(
        base.path(),
        "h",
        Retention {
            records: 2,
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let mut arts = Vec::new();
    // Five artifacts written 100s apart; the oldest (a0) is the *current* one.
    for i in 0..5u64 {
        let mut a = storage
            .new_artifact_for("GitRepository", "ns", "repo", "r", &format!("a{i}.tar.gz"))
            .unwrap();
        storage.atomic_write(&mut a, &b"x"[..], 0o600, now).unwrap();
        set_mtime(
            &storage.local_path(&a).unwrap(),
            now - Duration::from_secs(500 - i * 100),
        );
        arts.push(a);
    }
    storage.symlink(&arts[0], LATEST_TARBALL).unwrap();
    let lock = storage
        .local_path(&arts[0])
        .unwrap()
        .with_extension("gz.lock");
    fs::write(&lock, "").unwrap();
    let current = &arts[0];
    let garbage = storage.garbage_files(current, now).unwrap();
    let names: Vec<_> = garbage
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // Keep 2 records: the current (a0, oldest) and the newest other (a4).
    assert_eq!(names, vec!["a1.tar.gz", "a2.tar.gz", "a3.tar.gz"]);

    // TTL: 550s later a4 (then 650s old) is expired too; the current artifact stays even though it is oldest.
    let later = now + Duration::from_secs(550);
    let names: Vec<_> = storage
        .garbage_collect(current, later)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["a1.tar.gz", "a2.tar.gz", "a3.tar.gz", "a4.tar.gz"]
    );
    assert!(storage.exists(current));
    assert!(lock.exists(), "lock files are not artifacts");
    assert!(
        base.path()
            .join("gitrepository/ns/repo/latest.tar.gz")
            .exists()
    );

    // remove_all_but_current and remove_all.
    let mut extra = storage
        .new_artifact_for("GitRepository", "ns", "repo", "r", "z.tar.gz")
        .unwrap();
    storage
        .atomic_write(&mut extra, &b"z"[..], 0o600, now)
        .unwrap();
    let removed = storage.remove_all_but_current(current).unwrap();
    assert!(removed.iter().any(|p| p.ends_with("z.tar.gz")));
    assert!(storage.exists(current));
    let dir = storage.remove_all(current).unwrap().unwrap();
    assert!(!dir.exists());
    assert_eq!(storage.remove_all(current).unwrap(), None);
}

#[tokio::test]
async fn one_writer_per_object_directory() {
    let base = tempfile::tempdir().unwrap();
    let storage = Storage::new(base.path(), "h", Retention::default()).unwrap();
    let a = storage
        .new_artifact_for("GitRepository", "ns", "one", "r", "1.tar.gz")
        .unwrap();
    let same_dir = storage
        .new_artifact_for("GitRepository", "ns", "one", "r", "2.tar.gz")
        .unwrap();
    let other = storage
        .new_artifact_for("GitRepository", "ns", "two", "r", "1.tar.gz")
        .unwrap();
    let guard = storage.lock(&a).await.unwrap();
    assert!(storage.try_lock(&same_dir).unwrap().is_none());
    assert!(storage.try_lock(&other).unwrap().is_some());
    let s2 = storage.clone();
    let waiter = tokio::spawn(async move { s2.lock(&same_dir).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    drop(guard);
    waiter.await.unwrap().unwrap();
}
