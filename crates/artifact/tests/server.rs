//! The artifact server over real HTTP on 127.0.0.1 (ephemeral port).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use common::sha256_hex;
use ferroflux_artifact::server::ArtifactServer;
use ferroflux_artifact::storage::{Artifact, Retention, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a raw request line (exactly as given, no normalization) and reads the whole answer.
async fn raw(addr: SocketAddr, method: &str, target: &str) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {target} HTTP/1.1\r\nHost: artifacts\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8(buf[..split].to_vec()).unwrap();
    let body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body,
    }
}

async fn start(root: &Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = ArtifactServer::new(root).unwrap();
    tokio::spawn(server.serve(listener, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn store(storage: &Storage, kind: &str, name: &str, file: &str, content: &[u8]) -> Artifact {
    let mut a = storage
        .new_artifact_for(kind, "flux-system", name, "rev", file)
        .unwrap();
    storage
        .atomic_write(&mut a, content, 0o600, UNIX_EPOCH)
        .unwrap();
    a
}

#[tokio::test]
async fn get_head_404_and_content_types() {
    let base = tempfile::tempdir().unwrap();
    let storage = Storage::new(base.path(), "127.0.0.1", Retention::default()).unwrap();
    let content = b"\x1f\x8b fake gzip bytes".repeat(1000);
    let a = store(&storage, "GitRepository", "podinfo", "abc.tar.gz", &content);
    let idx = store(
        &storage,
        "HelmRepository",
        "bitnami",
        "index-1.yaml",
        b"apiVersion: v1\n",
    );
    storage.symlink(&idx, "index.yaml").unwrap();
    let (addr, _stop) = start(base.path()).await;

    let r = raw(addr, "GET", &format!("/{}", a.path)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
    assert_eq!(
        r.header("content-length").unwrap(),
        content.len().to_string()
    );
    assert_eq!(r.header("content-type").unwrap(), "application/gzip");

    let r = raw(addr, "HEAD", &format!("/{}", a.path)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("content-length").unwrap(),
        content.len().to_string()
    );

    let r = raw(
        addr,
        "GET",
        "/helmrepository/flux-system/bitnami/index.yaml",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"apiVersion: v1\n");
    assert_eq!(r.header("content-type").unwrap(), "application/x-yaml");

    // Readiness probe.
    let r = raw(addr, "GET", "/").await;
    assert_eq!(r.status, 200);

    for missing in [
        "/gitrepository/flux-system/podinfo/nope.tar.gz",
        "/gitrepository/flux-system/podinfo",
        "/gitrepository/flux-system/podinfo/",
        "/gitrepository/",
    ] {
        let r = raw(addr, "GET", missing).await;
        assert_eq!(r.status, 404, "{missing}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("abc.tar.gz"),
            "listing leaked"
        );
    }
    let r = raw(addr, "POST", &format!("/{}", a.path)).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn traversal_attempts_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let base = outer.path().join("data");
    std::fs::create_dir(&base).unwrap();
    std::fs::write(outer.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let storage = Storage::new(&base, "127.0.0.1", Retention::default()).unwrap();
    let a = store(&storage, "Bucket", "b", "x.tar.gz", b"x");
    // A link inside the root that points outside it.
    std::os::unix::fs::symlink(
        outer.path().join("secret.txt"),
        base.join("bucket/flux-system/b/leak"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../../../secret.txt",
        base.join("bucket/flux-system/b/leak2"),
    )
    .unwrap();
    let (addr, _stop) = start(&base).await;
    assert_eq!(raw(addr, "GET", &format!("/{}", a.path)).await.status, 200);

    for target in [
        "/../etc/passwd",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/bucket/..%2f..%2f..%2fsecret.txt",
        "/a/..%2f..%2f",
        "/bucket/flux-system/b/../../../../secret.txt",
        "/bucket/flux-system/b/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/bucket/flux-system/b/leak",
        "/bucket/flux-system/b/leak2",
        "/..%5c..%5csecret.txt",
        "/bucket/%00",
        "/%",
    ] {
        let r = raw(addr, "GET", target).await;
        assert!(
            r.status == 400 || r.status == 403 || r.status == 404,
            "{target} answered {}",
            r.status
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("TOP-SECRET"),
            "{target} leaked the secret"
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("root:"),
            "{target}"
        );
    }
    assert_eq!(
        raw(addr, "GET", "/bucket/flux-system/b/leak").await.status,
        403
    );
    assert_eq!(raw(addr, "GET", "/%2e%2e/secret.txt").await.status, 400);
}

/// Many downloads while another task keeps atomically replacing the artifact: every download
/// is one complete version, never a mix or a partial file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_downloads_during_replacement_never_see_partial_files() {
    let base = tempfile::tempdir().unwrap();
    let storage = Storage::new(base.path(), "127.0.0.1", Retention::default()).unwrap();
    let versions: Vec<Vec<u8>> = (0u8..4)
        .map(|v| {
            (0..(1 << 20) + usize::from(v) * 4099)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(v.wrapping_mul(101)))
                .collect()
        })
        .collect();
    let digests: HashSet<String> = versions.iter().map(|v| sha256_hex(v)).collect();
    let art = store(&storage, "OCIRepository", "app", "latest.bin", &versions[0]);
    let (addr, _stop) = start(base.path()).await;

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (storage, done, versions, mut art) = (
            storage.clone(),
            Arc::clone(&done),
            versions.clone(),
            art.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut n = 0usize;
            while !done.load(Ordering::SeqCst) && n < 10_000 {
                n += 1;
                let v = &versions[n % versions.len()];
                storage
                    .atomic_write(&mut art, &v[..], 0o600, UNIX_EPOCH)
                    .unwrap();
            }
            n
        })
    };
    let mut readers = Vec::new();
    for _ in 0..4 {
        let path = format!("/{}", art.path);
        let digests = digests.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = HashSet::new();
            for _ in 0..25 {
                let r = raw(addr, "GET", &path).await;
                assert_eq!(r.status, 200);
                assert_eq!(
                    r.header("content-length").unwrap(),
                    r.body.len().to_string()
                );
                let d = sha256_hex(&r.body);
                assert!(
                    digests.contains(&d),
                    "partial or mixed download ({} bytes)",
                    r.body.len()
                );
                seen.insert(d);
            }
            seen.len()
        }));
    }
    let mut distinct = 0;
    for r in readers {
        distinct = distinct.max(r.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let replacements = writer.await.unwrap();
    assert!(replacements > 1, "the artifact was never replaced");
    // No temporary files are left behind by the writer.
    let dir = storage.local_path(&art).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["latest.bin".to_string()]);
    eprintln!(
        "replacements: {replacements}, most distinct versions seen by one reader: {distinct}"
    );
}
