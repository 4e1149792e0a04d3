//! The hostile-archive suite: crafted archives (raw tar headers where the `tar` crate would
//! refuse to write them), each rejected with a clear error, with nothing left behind: neither
//! outside the temporary directory nor the temporary directory itself.

mod common;

use std::io::Write;

use common::{RawTar, http_response, listing, sandbox, script_server, sha256_hex};
use ferroflux_artifact::Error;
use ferroflux_artifact::extract::{ExtractLimits, LinkPolicy, extract_to_temp};
use ferroflux_artifact::fetch::{FetchOptions, Fetcher};

fn allow_links() -> ExtractLimits {
    ExtractLimits {
        links: LinkPolicy::AllowWithinRoot,
        ..ExtractLimits::default()
    }
}

/// Extracts `tgz` inside a fresh sandbox and returns the error; asserts that the sandbox holds
/// nothing but its empty `work` directory afterwards.
fn reject(tgz: &[u8], limits: &ExtractLimits) -> Error {
    let (sb, work) = sandbox();
    let res = extract_to_temp(tgz, &work, limits);
    let err = match res {
        Ok((dir, _)) => panic!("hostile archive was accepted: {:?}", listing(dir.path())),
        Err(e) => e,
    };
    assert_eq!(
        listing(sb.path()),
        vec!["work".to_string()],
        "left behind after: {err}"
    );
    assert!(!err.to_string().is_empty());
    err
}

fn assert_unsafe(err: &Error, needle: &str) {
    match err {
        Error::UnsafeEntry { reason, .. } => {
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            )
        }
        other => panic!("expected UnsafeEntry({needle}), got {other:?}"),
    }
}

#[test]
fn h01_dotdot_traversal() {
    let tgz = RawTar::new()
        .file("ok.yaml", b"a: 1\n")
        .file("../evil.txt", b"pwned")
        .tgz();
    let e = reject(&tgz, &ExtractLimits::default());
    assert_unsafe(&e, "..");
    assert!(e.to_string().contains("../evil.txt"), "{e}");
    let tgz = RawTar::new().file("a/../../../evil.txt", b"pwned").tgz();
    assert_unsafe(&reject(&tgz, &ExtractLimits::default()), "traversal");
}

#[test]
fn h02_absolute_path() {
    let (sb, _) = sandbox();
    let target = sb.path().join("abs-evil.txt");
    let tgz = RawTar::new()
        .file(&target.display().to_string(), b"pwned")
        .tgz();
    assert_unsafe(&reject(&tgz, &ExtractLimits::default()), "absolute");
    assert!(!target.exists());
}

#[test]
fn h03_symlink_rejected_by_default() {
    let tgz = RawTar::new()
        .entry("link", b'2', b"", "../../../../etc")
        .file("link/passwd", b"pwned")
        .tgz();
    assert_unsafe(&reject(&tgz, &ExtractLimits::default()), "symlink");
}

#[test]
fn h04_symlink_escape_when_links_allowed() {
    let tgz = RawTar::new()
        .entry("link", b'2', b"", "../..")
        .file("link/evil.txt", b"pwned")
        .tgz();
    assert_unsafe(&reject(&tgz, &allow_links()), "outside");
    let tgz = RawTar::new().entry("abs", b'2', b"", "/etc/passwd").tgz();
    assert_unsafe(&reject(&tgz, &allow_links()), "relative");
}

#[test]
fn h05_symlink_chain_escape_and_write_through_link() {
    // "d" -> "." is inside; "x" -> "d/.." looks inside lexically but really is the parent.
    let tgz = RawTar::new()
        .entry("d", b'2', b"", ".")
        .entry("x", b'2', b"", "d/..")
        .tgz();
    assert_unsafe(&reject(&tgz, &allow_links()), "resolves outside");
    // A file entry below a symlink is never written through it.
    let tgz = RawTar::new()
        .entry("sub", b'5', b"", "")
        .entry("d", b'2', b"", "sub")
        .file("d/evil.txt", b"pwned")
        .tgz();
    assert_unsafe(&reject(&tgz, &allow_links()), "symlink");
}

#[test]
fn h06_hardlink_escape() {
    let tgz = RawTar::new()
        .entry("h", b'1', b"", "../../../../etc/passwd")
        .tgz();
    assert_unsafe(&reject(&tgz, &ExtractLimits::default()), "hardlink");
    assert_unsafe(&reject(&tgz, &allow_links()), "outside");
    let tgz = RawTar::new().entry("h", b'1', b"", "/etc/passwd").tgz();
    assert_unsafe(&reject(&tgz, &allow_links()), "outside");
}

#[test]
fn h07_device_and_fifo_nodes() {
    for t in [b'3', b'4', b'6'] {
        let tgz = RawTar::new().entry("dev", t, b"", "").tgz();
        assert_unsafe(&reject(&tgz, &allow_links()), "device");
    }
}

#[test]
fn h08_bomb_by_ratio() {
    // 16 MiB of zeros compress to ~16 KiB: a ratio of about 1000.
    let size: u64 = 16 << 20;
    let mut tar = common::raw_header(b"zeros.bin", b'0', size, b"").to_vec();
    tar.resize(tar.len() + size as usize, 0);
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(3));
    e.write_all(&tar).unwrap();
    let tgz = e.finish().unwrap();
    assert!(tgz.len() < (size / 250) as usize);
    let by_ratio = ExtractLimits {
        max_size: None,
        ..ExtractLimits::default()
    };
    let e = reject(&tgz, &by_ratio);
    assert!(
        matches!(&e, Error::Bomb { reason } if reason.contains("ratio")),
        "{e:?}"
    );
    // Without a ratio limit, a size cap catches the same archive.
    let by_size = ExtractLimits {
        max_size: Some(8 << 20),
        max_ratio: None,
        ..ExtractLimits::default()
    };
    let e = reject(&tgz, &by_size);
    assert!(matches!(&e, Error::Bomb { .. }), "{e:?}");
}

#[test]
fn h09_bomb_by_declared_size() {
    // One header claiming 1 TiB: refused before a single byte is written.
    let tgz = RawTar::new().lying_header("huge.bin", 1 << 40).tgz();
    let e = reject(&tgz, &ExtractLimits::default());
    assert!(
        matches!(&e, Error::Bomb { reason } if reason.contains("more than the limit")),
        "{e:?}"
    );
}

#[test]
fn h10_bomb_by_entry_count() {
    let mut t = RawTar::new();
    for i in 0..2_000 {
        t = t.file(&format!("f{i}"), b"");
    }
    let limits = ExtractLimits {
        max_entries: Some(1_000),
        ..ExtractLimits::default()
    };
    let e = reject(&t.tgz(), &limits);
    assert!(
        matches!(&e, Error::Bomb { reason } if reason.contains("1000 entries")),
        "{e:?}"
    );
}

#[test]
fn h11_truncated_and_corrupt_gzip() {
    let tgz = RawTar::new()
        .file("a.yaml", &b"k: v\n".repeat(20_000))
        .tgz();
    let e = reject(&tgz[..tgz.len() / 2], &ExtractLimits::default());
    assert!(matches!(e, Error::InvalidArchive { .. }), "{e:?}");
    // Only the 8-byte trailer missing: the tar part is complete, the gzip stream is not.
    let e = reject(&tgz[..tgz.len() - 8], &ExtractLimits::default());
    assert!(matches!(e, Error::InvalidArchive { .. }), "{e:?}");
    // Flipped CRC.
    let mut bad = tgz.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xff;
    let e = reject(&bad, &ExtractLimits::default());
    assert!(matches!(e, Error::InvalidArchive { .. }), "{e:?}");
    // Not gzip at all.
    let e = reject(b"this is not a gzip stream", &ExtractLimits::default());
    assert!(matches!(e, Error::InvalidArchive { .. }), "{e:?}");
}

#[test]
fn h12_file_replacing_a_directory_and_backslashes() {
    let tgz = RawTar::new()
        .entry("d", b'5', b"", "")
        .file("d/x", b"1")
        .file("d", b"replace dir")
        .tgz();
    assert_unsafe(&reject(&tgz, &ExtractLimits::default()), "directory");
    let tgz = RawTar::new().file("..\\evil", b"x").tgz();
    assert_unsafe(&reject(&tgz, &ExtractLimits::default()), "backslash");
}

#[test]
fn safe_links_are_allowed_when_opted_in() {
    let (_sb, work) = sandbox();
    let tgz = RawTar::new()
        .entry("dir", b'5', b"", "")
        .file("dir/a.yaml", b"a: 1\n")
        .entry("dir/link.yaml", b'2', b"", "a.yaml")
        .entry("top", b'2', b"", "dir/../dir/a.yaml")
        .entry("hard.yaml", b'1', b"", "dir/a.yaml")
        .tgz();
    let (dir, summary) = extract_to_temp(&tgz[..], &work, &allow_links()).unwrap();
    assert_eq!(summary.symlinks, 2);
    assert_eq!(summary.hardlinks, 1);
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    assert_eq!(read("dir/link.yaml"), "a: 1\n");
    assert_eq!(read("top"), "a: 1\n");
    assert_eq!(read("hard.yaml"), "a: 1\n");
    // Default policy skips nothing silently: it refuses; Skip drops links.
    let skip = ExtractLimits {
        links: LinkPolicy::Skip,
        ..ExtractLimits::default()
    };
    let (dir2, s2) = extract_to_temp(&tgz[..], &work, &skip).unwrap();
    assert_eq!(s2.symlinks + s2.hardlinks, 0);
    assert!(!dir2.path().join("top").exists());
}

// --- over HTTP: wrong digest and oversize downloads -------------------------------------

fn fast_fetch_opts() -> FetchOptions {
    FetchOptions {
        retries: 2,
        retry_wait_min: std::time::Duration::from_millis(5),
        retry_wait_max: std::time::Duration::from_millis(20),
        ..FetchOptions::default()
    }
}

async fn fetch_reject(body: Vec<u8>, digest: String, opts: FetchOptions) -> Error {
    let served = body.clone();
    let srv = script_server(move |_, _| Some(http_response("200 OK", &served))).await;
    let (sb, work) = sandbox();
    let url = format!("http://{}/gitrepository/ns/name/x.tar.gz", srv.addr);
    let err = Fetcher::new(opts)
        .fetch(&url, &digest, &work)
        .await
        .expect_err("hostile download was accepted");
    assert_eq!(
        listing(sb.path()),
        vec!["work".to_string()],
        "left behind after: {err}"
    );
    err
}

#[tokio::test]
async fn h13_wrong_digest() {
    let tgz = RawTar::new().file("a.yaml", b"a: 1\n").tgz();
    let wrong = sha256_hex(b"something else");
    let e = fetch_reject(tgz.clone(), format!("sha256:{wrong}"), fast_fetch_opts()).await;
    match &e {
        Error::DigestMismatch { expected, actual } => {
            assert_eq!(expected, &format!("sha256:{wrong}"));
            assert_eq!(actual, &format!("sha256:{}", sha256_hex(&tgz)));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(e.to_string().contains("doesn't match"), "{e}");
}

#[tokio::test]
async fn h14_oversize_download() {
    let tgz = RawTar::new().file("a.bin", &vec![7u8; 300_000]).tgz();
    let mut big = tgz.clone();
    big.extend(std::iter::repeat_n(1u8, 200_000)); // garbage after the stream, too
    let opts = FetchOptions {
        max_download_size: Some(100_000),
        ..fast_fetch_opts()
    };
    let digest = format!("sha256:{}", sha256_hex(&big));
    let e = fetch_reject(big, digest, opts).await;
    assert!(matches!(e, Error::TooLarge { limit: 100_000, .. }), "{e:?}");
}

#[tokio::test]
async fn h15_hostile_archive_with_correct_digest_is_still_refused() {
    let tgz = RawTar::new().file("../../evil.txt", b"pwned").tgz();
    let digest = format!("sha256:{}", sha256_hex(&tgz));
    let e = fetch_reject(tgz, digest, fast_fetch_opts()).await;
    assert_unsafe(&e, "traversal");
}
