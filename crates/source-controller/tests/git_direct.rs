//! git::fetch and the artifact built from the fetched objects against git http-backend, without a cluster.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ferroflux_source_controller::git::{self, Auth, FetchOutcome, FetchRequest, GitError, GitRef};
use ferroflux_testenv::git::GitHttpServer;
use support::*;

fn fetch(
    url: &str,
    r: &GitRef,
    auth: &Auth,
    cache: &std::path::Path,
    last: Option<&str>,
) -> Result<FetchOutcome, GitError> {
    git::fetch(&FetchRequest {
        url,
        reference: r,
        auth,
        cache_dir: cache,
        timeout: Duration::from_secs(20),
        last_revision: last,
        interrupt: Arc::new(AtomicBool::new(false)),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_fetch_and_incremental_update() {
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "r");
    let c1 = repo.commit(&[("a.txt", "1"), ("bin/run.sh", "#!/bin/sh\n")], "one");
    let server = GitHttpServer::start(root.path(), Some(("git", "pw")))
        .await
        .expect("start the git server");
    let url = server.url("r");
    let cache = tempfile::tempdir().unwrap();
    let good = Auth {
        basic: Some(("git".into(), "pw".into())),
        ..Default::default()
    };
    let bad = Auth {
        basic: Some(("git".into(), "nope".into())),
        ..Default::default()
    };
    let main = GitRef::Branch("main".into());
    let (u, r, g, c) = (
        url.clone(),
        main.clone(),
        good.clone(),
        cache.path().to_path_buf(),
    );
    let out = tokio::task::spawn_blocking(move || fetch(&u, &r, &g, &c, None))
        .await
        .unwrap();
    let out = out.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        out,
        FetchOutcome::Ready(git::Resolved {
            revision: format!("main@sha1:{c1}"),
            commit: c1.clone(),
            tag_object: None,
        })
    );

    let (u, r, c) = (url.clone(), main.clone(), cache.path().to_path_buf());
    let err = tokio::task::spawn_blocking(move || fetch(&u, &r, &bad, &c, None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, GitError::Auth(_)), "{err:?}");

    let (u, r, g, c, last) = (
        url.clone(),
        main.clone(),
        good.clone(),
        cache.path().to_path_buf(),
        format!("main@sha1:{c1}"),
    );
    let out = tokio::task::spawn_blocking(move || fetch(&u, &r, &g, &c, Some(&last)))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(out, FetchOutcome::Unchanged(_)), "{out:?}");

    let in_pack = |dir: &std::path::Path| -> u64 {
        let out = git(dir, &["count-objects", "-v"]);
        out.lines()
            .find_map(|l| l.strip_prefix("in-pack: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    // commit, root tree, bin/ tree, two blobs.
    assert_eq!(in_pack(cache.path()), 5);
    let c2 = repo.commit(&[("a.txt", "2")], "two");
    let (u, r, g, c) = (
        url.clone(),
        main.clone(),
        good.clone(),
        cache.path().to_path_buf(),
    );
    let out = tokio::task::spawn_blocking(move || fetch(&u, &r, &g, &c, Some("x")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out,
        FetchOutcome::Ready(git::Resolved {
            revision: format!("main@sha1:{c2}"),
            commit: c2.clone(),
            tag_object: None,
        })
    );

    // Only the new commit, its root tree and the changed blob were fetched.
    assert_eq!(in_pack(cache.path()), 8);
    // The artifact is built from the fetched objects.
    let mut w = ferroflux_artifact::archive::ArchiveWriter::new(
        Vec::new(),
        &ferroflux_artifact::archive::ArchiveOptions::default(),
    )
    .unwrap();
    let input = ferroflux_source_controller::archive::ArchiveInput {
        cache_dir: cache.path(),
        commit: &c2,
        sparse: &[],
        submodules: &[],
        overlays: &[],
        ignore: None,
    };
    ferroflux_source_controller::archive::write_commit_archive(&input, &mut w).unwrap();
    let (tgz, _) = w.finish().unwrap();
    let mut entries = Vec::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut e, &mut content).unwrap();
        let mode = e.header().mode().unwrap();
        entries.push((e.path().unwrap().display().to_string(), mode, content));
    }
    assert!(
        entries.contains(&("a.txt".into(), 0o600, "2".into())),
        "{entries:?}"
    );
    // Committed without the executable bit (exec bits: tests/archive_from_objects.rs).
    assert!(
        entries.contains(&("bin/run.sh".into(), 0o600, "#!/bin/sh\n".into())),
        "{entries:?}"
    );
}
