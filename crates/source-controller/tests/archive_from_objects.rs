//! The artifact built straight from git objects (`archive::write_commit_archive`) is
//! byte-identical to archiving a real `git clone` checkout of the same commit with the
//! directory archiver: same entries, order, modes and sha256 digest. The repository has nested
//! directories, `.sourceignore` files at several depths (with a `!` re-include), symlinks, an
//! executable, a submodule (an empty directory without recursion), names whose git order differs
//! from byte order, and a path too long for USTAR.

use std::path::Path;
use std::process::Command;

use ferroflux_artifact::archive::{ArchiveOptions, ArchiveWriter, write_archive};
use ferroflux_artifact::ignore::git_source_matcher;
use ferroflux_source_controller::archive::{ArchiveInput, Overlay, write_commit_archive};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A repository exercising every kind of entry; returns (work tree, commit).
fn make_repo(root: &Path) -> (std::path::PathBuf, String) {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    write(&work, "README.md", "# readme\n");
    write(&work, ".gitignore", "nothing\n");
    write(&work, ".gitattributes", "* text=auto\n");
    write(
        &work,
        ".sourceignore",
        "# root rules\n*.tmp\ndocs/\n!docs/keep.md\n",
    );
    write(&work, "docs/keep.md", "kept\n");
    write(&work, "docs/drop.md", "dropped\n");
    write(&work, "img.png", "not really a png");
    write(&work, "apps/base/deploy.yaml", "kind: Deployment\n");
    write(&work, "apps/base/scratch.tmp", "tmp\n");
    write(&work, "apps/.sourceignore", "/local-only.yaml\nsecret*\n");
    write(&work, "apps/local-only.yaml", "x\n");
    write(
        &work,
        "apps/sub/local-only.yaml",
        "kept: anchored rule does not apply here\n",
    );
    write(&work, "apps/secret.yaml", "s\n");
    write(&work, "apps/nested/deep/er/cm.yaml", "kind: ConfigMap\n");
    write(&work, "apps/nested/.sourceignore", "*.md\n");
    write(&work, "apps/nested/notes.md", "n\n");
    write(&work, "apps/empty-after-ignore/x.tmp", "t\n");
    // Git sorts "x" (a tree) as "x/", after "x-y" and "x.yaml"; a directory walk sorts by bytes.
    write(&work, "x/f.yaml", "f\n");
    write(&work, "x.yaml", "x\n");
    write(&work, "x-y", "xy\n");
    write(&work, "empty.txt", "");
    let long = format!("{}/{}/file.yaml", "d".repeat(90), "e".repeat(70));
    write(&work, &long, "long\n");
    write(&work, "bin/run.sh", "#!/bin/sh\necho hi\n");
    Command::new("chmod")
        .args(["+x", work.join("bin/run.sh").to_str().unwrap()])
        .status()
        .unwrap();
    std::os::unix::fs::symlink("README.md", work.join("link-file")).unwrap();
    std::os::unix::fs::symlink("apps", work.join("link-dir")).unwrap();
    std::os::unix::fs::symlink("../README.md", work.join("apps/up-link")).unwrap();
    git(&work, &["add", "-A"]);
    // A submodule entry (gitlink) with its .gitmodules declaration.
    let child = root.join("child");
    std::fs::create_dir_all(&child).unwrap();
    git(&child, &["init", "-q", "-b", "main"]);
    write(&child, "child.yaml", "c\n");
    git(&child, &["add", "-A"]);
    git(&child, &["commit", "-q", "-m", "child"]);
    let child_head = git(&child, &["rev-parse", "HEAD"]);
    write(
        &work,
        ".gitmodules",
        "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../child\n",
    );
    git(&work, &["add", ".gitmodules"]);
    git(
        &work,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{child_head},vendor/lib"),
        ],
    );
    git(&work, &["commit", "-q", "-m", "everything"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    (work, head)
}

fn opts() -> ArchiveOptions {
    ArchiveOptions {
        level: 6,
        threads: 2,
    }
}

/// The old path: a real checkout on disk, archived by walking the directory.
fn archive_checkout(dir: &Path, ignore: Option<&str>) -> (Vec<u8>, String) {
    let matcher = git_source_matcher(dir, ignore).unwrap();
    let (bytes, summary) = write_archive(dir, Some(&matcher), &opts(), Vec::new()).unwrap();
    (bytes, summary.digest.to_string())
}

fn archive_objects(input: &ArchiveInput<'_>) -> (Vec<u8>, String) {
    let mut w = ArchiveWriter::new(Vec::new(), &opts()).unwrap();
    write_commit_archive(input, &mut w).unwrap();
    let (bytes, summary) = w.finish().unwrap();
    (bytes, summary.digest.to_string())
}

fn listing(tgz: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            format!(
                "{} {:o}",
                e.path().unwrap().display(),
                e.header().mode().unwrap()
            )
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, String, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (work, head) = make_repo(tmp.path());
    let cache = tmp.path().join("cache");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            cache.to_str().unwrap(),
        ],
    );
    (tmp, head, cache)
}

fn checkout(tmp: &Path, name: &str) -> std::path::PathBuf {
    let dir = tmp.join(name);
    git(
        tmp,
        &[
            "clone",
            "-q",
            tmp.join("work").to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    std::fs::remove_dir_all(dir.join(".git")).unwrap();
    dir
}

#[test]
fn object_archive_is_byte_identical_to_checkout_archive() {
    let (tmp, head, cache) = setup();
    let dir = checkout(tmp.path(), "checkout");
    assert!(
        dir.join("vendor/lib").is_dir(),
        "git made the submodule an empty dir"
    );
    for ignore in [None, Some("apps/base/\n!apps/base/deploy.yaml\n")] {
        let (old, old_digest) = archive_checkout(&dir, ignore);
        let (new, new_digest) = archive_objects(&ArchiveInput {
            cache_dir: &cache,
            commit: &head,
            sparse: &[],
            submodules: &[],
            overlays: &[],
            ignore,
        });
        assert_eq!(listing(&new), listing(&old), "ignore {ignore:?}");
        assert_eq!(new_digest, old_digest, "ignore {ignore:?}");
        assert_eq!(new, old);
        let names = listing(&new);
        for expected in [
            "bin/run.sh 700",
            "apps/sub/local-only.yaml 600",
            "vendor/lib 750",
            "docs/keep.md 600",
            "empty.txt 600",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        for gone in [
            "link-file",
            "link-dir",
            "apps/secret.yaml",
            "docs/drop.md",
            ".gitmodules",
        ] {
            assert!(
                !names.iter().any(|n| n.starts_with(&format!("{gone} "))),
                "{gone} in {names:?}"
            );
        }
    }
}

#[test]
fn overlays_match_copying_into_the_checkout() {
    let (tmp, head, cache) = setup();
    // Two "included artifacts": one merged into an existing directory (replacing a file,
    // bringing its own .sourceignore), one at a new path, one file replacing a directory.
    let inc = tmp.path().join("inc");
    write(&inc, "one/cm.yaml", "replaced\n");
    write(&inc, "one/extra/new.yaml", "new\n");
    write(&inc, "one/.sourceignore", "*.bak\n");
    write(&inc, "one/old.bak", "b\n");
    write(&inc, "two/file.yaml", "two\n");
    write(&inc, "three", "a file where a directory was\n");
    let overlays = [
        Overlay {
            to: vec!["apps".into(), "nested".into(), "deep".into(), "er".into()],
            src: inc.join("one"),
        },
        Overlay {
            to: vec!["vendored".into(), "two".into()],
            src: inc.join("two"),
        },
        Overlay {
            to: vec!["x".into()],
            src: inc.join("three"),
        },
    ];
    let dir = checkout(tmp.path(), "checkout");
    let cp = |src: &Path, to: &str| {
        let dst = dir.join(to);
        if src.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            let ok = Command::new("cp")
                .args(["-a", &format!("{}/.", src.display()), dst.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success());
        } else {
            if dst.is_dir() {
                std::fs::remove_dir_all(&dst).unwrap();
            }
            std::fs::copy(src, &dst).unwrap();
        }
    };
    cp(&inc.join("one"), "apps/nested/deep/er");
    cp(&inc.join("two"), "vendored/two");
    cp(&inc.join("three"), "x");
    let (old, old_digest) = archive_checkout(&dir, None);
    let (new, new_digest) = archive_objects(&ArchiveInput {
        cache_dir: &cache,
        commit: &head,
        sparse: &[],
        submodules: &[],
        overlays: &overlays,
        ignore: None,
    });
    assert_eq!(listing(&new), listing(&old));
    assert_eq!(new_digest, old_digest);
    let names = listing(&new);
    assert!(
        names.iter().any(|n| n == "vendored/two/file.yaml 600"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "x 600"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("apps/nested/deep/er/old.bak"))
    );
}

#[test]
fn sparse_checkout_keeps_root_files_and_cone() {
    let (tmp, head, cache) = setup();
    // The cone of the old checkout: root files, and everything below apps/nested.
    let dir = checkout(tmp.path(), "checkout");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let ft = entry.file_type().unwrap();
        if ft.is_dir() && entry.file_name() != "apps" {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    for entry in std::fs::read_dir(dir.join("apps")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "nested" {
            let p = entry.path();
            if entry.file_type().unwrap().is_dir() {
                std::fs::remove_dir_all(p).unwrap();
            } else {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let (old, old_digest) = archive_checkout(&dir, None);
    let (new, new_digest) = archive_objects(&ArchiveInput {
        cache_dir: &cache,
        commit: &head,
        sparse: &["apps/nested/".to_string()],
        submodules: &[],
        overlays: &[],
        ignore: None,
    });
    assert_eq!(listing(&new), listing(&old));
    assert_eq!(new_digest, old_digest);
}
