//! The fetcher end to end: storage → artifact server → fetch, verify, extract; retries,
//! 404, host override.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{http_response, sandbox, script_server, sha256_hex};
use ferroflux_artifact::Error;
use ferroflux_artifact::archive::ArchiveOptions;
use ferroflux_artifact::digest::{Algorithm, Digest};
use ferroflux_artifact::fetch::{FetchOptions, Fetcher};
use ferroflux_artifact::server::ArtifactServer;
use ferroflux_artifact::storage::{Retention, Storage};

fn fast() -> FetchOptions {
    FetchOptions {
        retries: 3,
        retry_wait_min: Duration::from_millis(5),
        retry_wait_max: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        ..FetchOptions::default()
    }
}

#[tokio::test]
async fn archive_serve_fetch_round_trip_with_host_override() {
    let base = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("deploy")).unwrap();
    std::fs::write(src.path().join("deploy/app.yaml"), "kind: Deployment\n").unwrap();
    std::fs::write(
        src.path().join("kustomization.yaml"),
        "resources: [deploy/app.yaml]\n",
    )
    .unwrap();
    // The advertised address is the in-cluster name; the fetcher reaches it via the override.
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
            "repo",
            "main@sha1:1234",
            "1234.tar.gz",
        )
        .unwrap();
    storage
        .archive(
            &mut a,
            src.path(),
            None,
            &ArchiveOptions::default(),
            UNIX_EPOCH,
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        ArtifactServer::new(base.path())
            .unwrap()
            .serve(listener, std::future::pending()),
    );

    let (_sb, work) = sandbox();
    let opts = FetchOptions {
        host_override: Some(addr.to_string()),
        ..fast()
    };
    let fetched = Fetcher::new(opts)
        .fetch(&a.url, &a.digest, &work)
        .await
        .unwrap();
    assert_eq!(fetched.digest.to_string(), a.digest);
    assert_eq!(Some(fetched.size), a.size);
    assert_eq!(
        std::fs::read_to_string(fetched.path().join("deploy/app.yaml")).unwrap(),
        "kind: Deployment\n"
    );
    assert_eq!(fetched.summary.files, 2);
    // Bare hex digests are sha256.
    let bare = a.digest.trim_start_matches("sha256:").to_string();
    let opts = FetchOptions {
        host_override: Some(addr.to_string()),
        ..fast()
    };
    let again = Fetcher::new(opts)
        .fetch(&a.url, &bare, &work)
        .await
        .unwrap();
    assert_ne!(again.path(), fetched.path());
    // Only the two extraction dirs exist in the work dir (the download temp file is gone).
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 2);
    drop((fetched, again));
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}

#[tokio::test]
async fn retries_transient_failures_then_succeeds_with_sha512() {
    let tgz = common::RawTar::new().file("a.yaml", b"a: 1\n").tgz();
    let body = tgz.clone();
    // 503, then a connection dropped without answer, then a short body, then success.
    let srv = script_server(move |n, _| match n {
        0 => Some(http_response("503 Service Unavailable", b"busy")),
        1 => None,
        2 => {
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            r.extend_from_slice(&body[..body.len() / 2]);
            Some(r)
        }
        _ => Some(http_response("200 OK", &body)),
    })
    .await;
    let mut h = Algorithm::Sha512.hasher();
    h.update(&tgz);
    let digest = h.finish().to_string();
    let (_sb, work) = sandbox();
    let url = format!("http://{}/x.tar.gz", srv.addr);
    let f = Fetcher::new(fast())
        .fetch(&url, &digest, &work)
        .await
        .unwrap();
    assert_eq!(f.digest, Digest::parse(&digest).unwrap());
    assert_eq!(srv.hits.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn not_found_is_typed_and_not_retried() {
    let srv =
        script_server(|_, _| Some(http_response("404 Not Found", b"404 page not found"))).await;
    let (sb, work) = sandbox();
    let url = format!("http://{}/gitrepository/ns/n/gone.tar.gz", srv.addr);
    let digest = format!("sha256:{}", sha256_hex(b""));
    let err = Fetcher::new(fast())
        .fetch(&url, &digest, &work)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { url: u } if u == &url),
        "{err:?}"
    );
    assert!(err.to_string().contains("404"));
    assert_eq!(srv.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(common::listing(sb.path()), vec!["work".to_string()]);
}

#[tokio::test]
async fn gives_up_after_retries_with_http_error() {
    let srv = script_server(|_, _| Some(http_response("500 Internal Server Error", b"x"))).await;
    let (_sb, work) = sandbox();
    let url = format!("http://{}/x.tar.gz", srv.addr);
    let digest = format!("sha256:{}", sha256_hex(b""));
    let err = Fetcher::new(fast())
        .fetch(&url, &digest, &work)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Http { reason, .. } if reason.contains("500")),
        "{err:?}"
    );
    assert_eq!(srv.hits.load(std::sync::atomic::Ordering::SeqCst), 4);
    // A 403 is permanent: no retry.
    let srv = script_server(|_, _| Some(http_response("403 Forbidden", b"x"))).await;
    let url = format!("http://{}/x.tar.gz", srv.addr);
    let err = Fetcher::new(fast())
        .fetch(&url, &digest, &work)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Http { .. }), "{err:?}");
    assert_eq!(srv.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Bad digests are refused before any request.
    let err = Fetcher::new(fast())
        .fetch(&url, "md5:abc", &work)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidDigest { .. }));
    // https is not spoken by this client.
    let err = Fetcher::new(fast())
        .fetch("https://example.invalid/x", &digest, &work)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plain http"), "{err}");
}
