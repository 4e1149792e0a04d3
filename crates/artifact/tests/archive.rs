//! Archive determinism, headers (checked with the real GNU tar and sha256sum) and ignore rules.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use ferroflux_artifact::archive::{ArchiveOptions, write_archive};
use ferroflux_artifact::extract::{ExtractLimits, extract_to_temp};
use ferroflux_artifact::ignore::{Matcher, git_source_matcher};

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn archive(dir: &Path, matcher: Option<&Matcher>, threads: usize) -> (Vec<u8>, String) {
    let opts = ArchiveOptions { level: 6, threads };
    let (bytes, summary) = write_archive(dir, matcher, &opts, Vec::new()).unwrap();
    assert_eq!(summary.size, bytes.len() as u64);
    (bytes, summary.digest.to_string())
}

/// Names in the archive, as the Rust tar reader sees them.
fn names(tgz: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

fn file_names(tgz: &[u8]) -> BTreeSet<String> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    a.entries()
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.header()
                .entry_type()
                .is_file()
                .then(|| String::from_utf8(e.path_bytes().into_owned()).unwrap())
        })
        .collect()
}

fn populate(root: &Path, reverse: bool) {
    let mut files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("apps/app-{}/manifest-{i}.yaml", i % 7),
                format!(
                    "kind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  k: \"{}\"\n",
                    "v".repeat(i * 13)
                ),
            )
        })
        .collect();
    files.push(("README.md".into(), "# repo\n".into()));
    files.push(("big/blob.txt".into(), "line of text\n".repeat(50_000)));
    if reverse {
        files.reverse();
    }
    for (rel, content) in &files {
        write(root, rel, content);
    }
}

#[test]
fn same_tree_gives_identical_bytes_regardless_of_creation_order_and_threads() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    populate(a.path(), false);
    populate(b.path(), true);
    // Different mtimes and permissions that normalize to the same mode.
    fs::set_permissions(
        b.path().join("README.md"),
        fs::Permissions::from_mode(0o664),
    )
    .unwrap();
    let (x1, d1) = archive(a.path(), None, 1);
    let (x2, d2) = archive(a.path(), None, 1);
    let (y, dy) = archive(b.path(), None, 3);
    assert_eq!(x1, x2, "same tree archived twice");
    assert_eq!(x1, y, "trees created in different orders");
    assert_eq!(d1, d2);
    assert_eq!(d1, dy);
    assert!(d1.starts_with("sha256:"));
}

#[test]
fn digest_equals_sha256sum_and_gnu_tar_sees_normalized_headers() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src, "a/config.yaml", "a: 1\n");
    write(&src, "run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(
        &src,
        &format!("{}/{}", "d".repeat(120), "f".repeat(110)),
        "long\n",
    );
    std::os::unix::fs::symlink("/etc/passwd", src.join("escape")).unwrap();
    std::os::unix::fs::symlink("a/config.yaml", src.join("inside-link")).unwrap();

    let (bytes, digest) = archive(&src, None, 2);
    let out = t.path().join("out.tar.gz");
    fs::write(&out, &bytes).unwrap();

    let sum = Command::new("sha256sum").arg(&out).output().unwrap();
    assert!(sum.status.success());
    let hex = String::from_utf8(sum.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap();
    assert_eq!(digest, format!("sha256:{hex}"));

    let list = Command::new("tar")
        .args(["--numeric-owner", "-tzvf"])
        .arg(&out)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listing = String::from_utf8(list.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    let line_for = |name: &str| {
        *lines
            .iter()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not in listing:\n{listing}"))
    };
    let root = line_for(".");
    assert!(root.starts_with("drwxr-x--- 0/0 "), "{root}");
    assert!(root.contains("1970-01-01 00:00"), "{root}");
    let dir = line_for("a");
    assert!(dir.starts_with("drwxr-x--- 0/0 "), "{dir}");
    let cfg = line_for("a/config.yaml");
    assert!(cfg.starts_with("-rw------- 0/0 "), "{cfg}");
    assert!(cfg.contains(" 5 1970-01-01 00:00 "), "{cfg}");
    let exe = line_for("run.sh");
    assert!(exe.starts_with("-rwx------ 0/0 "), "{exe}");
    line_for(&format!("{}/{}", "d".repeat(120), "f".repeat(110)));
    for l in &lines {
        assert!(l.contains(" 0/0 "), "{l}");
        assert!(l.contains("1970-01-01 00:00"), "{l}");
        assert!(
            !l.contains("escape") && !l.contains("inside-link"),
            "symlink archived: {l}"
        );
    }
    // Symbolic owner names are empty too: GNU tar then prints the numeric ids.
    let sym = Command::new("tar").arg("-tzvf").arg(&out).output().unwrap();
    let sym = String::from_utf8(sym.stdout).unwrap();
    assert!(sym.lines().all(|l| l.contains(" 0/0 ")), "{sym}");

    // GNU tar extracts it, and our extractor round-trips it.
    let x = t.path().join("x");
    fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&out)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        fs::read_to_string(x.join("a/config.yaml")).unwrap(),
        "a: 1\n"
    );
    let (dir, _) = extract_to_temp(&bytes[..], t.path(), &ExtractLimits::default()).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
}

#[test]
fn entries_are_walk_ordered() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "b.yaml", "b");
    write(t.path(), "a/z.yaml", "z");
    write(t.path(), "a.yaml", "a");
    write(t.path(), "a/b/c.yaml", "c");
    let (bytes, _) = archive(t.path(), None, 1);
    assert_eq!(
        names(&bytes),
        vec![
            ".",
            "a",
            "a/b",
            "a/b/c.yaml",
            "a/z.yaml",
            "a.yaml",
            "b.yaml"
        ]
    );
}

fn git_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, ".git/config", "[core]\n");
    write(r, ".git/objects/ab/cdef", "x");
    write(r, ".gitignore", "target/\n");
    write(r, ".github/workflows/ci.yaml", "on: push\n");
    write(r, "logo.png", "png");
    write(r, "docs/diagram.jpg", "jpg");
    write(r, "apps/.sops.yaml", "creation_rules: []\n");
    write(r, "apps/app.yaml", "kind: A\n");
    write(r, "apps/notes.txt", "notes\n");
    write(r, "apps/keep.txt", "keep\n");
    write(r, "apps/sub/deep.txt", "deep\n");
    write(r, "infra/notes.txt", "infra notes\n");
    write(r, "infra/values.yaml", "v: 1\n");
    t
}

#[test]
fn default_exclusions_apply_without_user_patterns() {
    let t = git_tree();
    let m = git_source_matcher(t.path(), None).unwrap();
    let (bytes, _) = archive(t.path(), Some(&m), 1);
    let files = file_names(&bytes);
    let expected: BTreeSet<String> = [
        "apps/app.yaml",
        "apps/notes.txt",
        "apps/keep.txt",
        "apps/sub/deep.txt",
        "infra/notes.txt",
        "infra/values.yaml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(files, expected);
    let all = names(&bytes);
    assert!(!all.iter().any(|n| n.starts_with(".git")), "{all:?}");
}

#[test]
fn nested_sourceignore_with_negation_replaces_non_vcs_defaults() {
    let t = git_tree();
    // Nested file: only applies below apps/; negation re-includes keep.txt.
    write(t.path(), "apps/.sourceignore", "*.txt\n!keep.txt\n");
    let m = git_source_matcher(t.path(), None).unwrap();
    let (bytes, _) = archive(t.path(), Some(&m), 1);
    let files = file_names(&bytes);
    assert!(files.contains("apps/keep.txt"), "{files:?}");
    assert!(!files.contains("apps/notes.txt"), "{files:?}");
    assert!(!files.contains("apps/sub/deep.txt"), "{files:?}");
    assert!(
        files.contains("infra/notes.txt"),
        "nested rule leaked: {files:?}"
    );
    // User patterns exist, so the extension/CI/extra defaults no longer apply...
    assert!(files.contains("logo.png"), "{files:?}");
    assert!(files.contains("apps/.sops.yaml"), "{files:?}");
    assert!(files.contains(".github/workflows/ci.yaml"), "{files:?}");
    assert!(files.contains("apps/.sourceignore"), "{files:?}");
    // ...but the VCS exclusions always do.
    assert!(!files.iter().any(|f| f.starts_with(".git/")), "{files:?}");
    assert!(!files.contains(".gitignore"), "{files:?}");
}

#[test]
fn spec_ignore_has_highest_priority_and_replaces_defaults() {
    let t = git_tree();
    write(t.path(), ".sourceignore", "infra/\n");
    // spec.ignore comes last: it re-includes infra/values.yaml and excludes *.yaml elsewhere.
    let spec = "# spec.ignore\n/apps/*.yaml\n!/infra/values.yaml\n";
    let m = git_source_matcher(t.path(), Some(spec)).unwrap();
    let (bytes, _) = archive(t.path(), Some(&m), 1);
    let files = file_names(&bytes);
    let all = names(&bytes);
    assert!(!files.contains("apps/app.yaml"), "{files:?}");
    assert!(files.contains("infra/values.yaml"), "{files:?}");
    assert!(!files.contains("infra/notes.txt"), "{files:?}");
    // go-git semantics: the excluded directory entry itself is not written.
    assert!(!all.contains(&"infra".to_string()), "{all:?}");
    assert!(files.contains("logo.png"), "defaults replaced: {files:?}");
    assert!(!files.contains(".gitignore"));

    // spec.ignore alone (no .sourceignore) also replaces the defaults.
    let t2 = git_tree();
    let m2 = git_source_matcher(t2.path(), Some("*.txt\n")).unwrap();
    let (bytes2, _) = archive(t2.path(), Some(&m2), 1);
    let files2 = file_names(&bytes2);
    assert!(files2.contains("logo.png"), "{files2:?}");
    assert!(!files2.contains("apps/notes.txt"), "{files2:?}");
    assert!(!files2.iter().any(|f| f.starts_with(".git/")), "{files2:?}");
}

#[test]
fn excluded_content_is_really_absent_from_bytes() {
    let t = git_tree();
    write(t.path(), "secret.key", "TOPSECRET-MARKER");
    let m = git_source_matcher(t.path(), Some("*.key\n")).unwrap();
    let (bytes, _) = archive(t.path(), Some(&m), 1);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert!(!raw.windows(16).any(|w| w == b"TOPSECRET-MARKER"));
}

/// Go's `archive/tar` + `compress/gzip` (what Flux's `tar.Untar` uses) read our archive with
/// the exact sanitized headers. Needs the `go` toolchain, which the tests need anyway to build
/// the control plane; without it the test fails rather than passing unchecked.
#[test]
fn go_reader_sees_flux_headers() {
    if let Err(e) = Command::new("go").arg("version").output() {
        panic!("the Go toolchain is needed for the Go reader cross-check: {e}");
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src, "a/c.yaml", "x: 1\n");
    write(&src, "run.sh", "#!/bin/sh\n");
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    write(
        &src,
        &format!("{}/{}", "d".repeat(120), "f".repeat(110)),
        "long\n",
    );
    let (bytes, _) = archive(&src, None, 2);
    let tgz = t.path().join("out.tar.gz");
    fs::write(&tgz, &bytes).unwrap();
    let prog = t.path().join("prog");
    fs::create_dir(&prog).unwrap();
    fs::write(prog.join("go.mod"), "module check\n\ngo 1.21\n").unwrap();
    fs::write(
        prog.join("main.go"),
        r#"package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		panic(err)
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %c %o %d/%d %q/%q %d %d\n", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime.Unix(), n)
	}
	if _, err := io.ReadAll(zr); err != nil {
		panic(err)
	}
	fmt.Println("END")
}
"#,
    )
    .unwrap();
    let mut cmd = Command::new("go");
    cmd.arg("run").arg(".").arg(&tgz).current_dir(&prog);
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "");
    if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
        cmd.env("GOCACHE", t.path().join("gocache"));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(110));
    let expected = format!(
        ". 5 750 0/0 \"\"/\"\" 0 0\n\
         a 5 750 0/0 \"\"/\"\" 0 0\n\
         a/c.yaml 0 600 0/0 \"\"/\"\" 0 5\n\
         {d} 5 750 0/0 \"\"/\"\" 0 0\n\
         {long} 0 600 0/0 \"\"/\"\" 0 5\n\
         run.sh 0 700 0/0 \"\"/\"\" 0 10\n\
         END\n",
        d = "d".repeat(120)
    );
    assert_eq!(text, expected);
}
