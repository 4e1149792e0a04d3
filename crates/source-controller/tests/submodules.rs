//! `spec.recurseSubmodules` on the real control plane, against git http-backend with basic
//! auth: submodules at relative (`../child.git`) and absolute URLs, a submodule of a
//! submodule, a bumped submodule commit, recursion off, and an unreachable submodule URL.

mod support;

use ferroflux_api::source::GitRepository;
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::GitHttpServer;
use kube::api::Api;
use support::*;

/// Writes `files`, records `gitlinks` (path, commit) as submodule entries, commits and pushes.
fn commit_with_gitlinks(
    repo: &Repo,
    files: &[(&str, &str)],
    gitlinks: &[(&str, &str)],
    msg: &str,
) -> String {
    for (p, c) in files {
        let path = repo.work.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    for (p, _) in gitlinks {
        // An uninitialized submodule is an empty directory: `add -A` leaves its entry alone.
        std::fs::create_dir_all(repo.work.join(p)).unwrap();
    }
    git(&repo.work, &["add", "-A"]);
    for (p, commit) in gitlinks {
        git(
            &repo.work,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{commit},{p}"),
            ],
        );
    }
    git(&repo.work, &["commit", "-q", "-m", msg]);
    git(&repo.work, &["push", "-q", "-f", "origin", "main"]);
    git(&repo.work, &["rev-parse", "HEAD"])
}

/// Every entry of the artifact: (path, file content or `None` for a directory).
fn artifact_entries(o: &GitRepository) -> Vec<(String, Option<String>)> {
    use std::io::Read;
    let a = o.status.as_ref().unwrap().artifact.as_ref().unwrap();
    let bytes = curl(&a.url).1;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let content = if e.header().entry_type().is_dir() {
            None
        } else {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            Some(s)
        };
        out.push((path, content));
    }
    out
}

fn content_of(entries: &[(String, Option<String>)], path: &str) -> Option<String> {
    entries
        .iter()
        .find(|(p, _)| p == path)
        .and_then(|(_, c)| c.clone())
}

fn gitmodules(entries: &[(&str, &str)]) -> String {
    entries
        .iter()
        .map(|(path, url)| format!("[submodule \"{path}\"]\n\tpath = {path}\n\turl = {url}\n"))
        .collect()
}

fn with_recursion(name: &str, url: &str, recurse: bool) -> GitRepository {
    let mut v = serde_json::to_value(gitrepo(
        name,
        url,
        serde_json::json!({"branch": "main"}),
        Some("auth"),
    ))
    .unwrap();
    v["spec"]["recurseSubmodules"] = serde_json::json!(recurse);
    serde_json::from_value(v).unwrap()
}

fn revision(o: &GitRepository) -> String {
    o.status
        .as_ref()
        .and_then(|s| s.artifact.as_ref())
        .map(|a| a.revision.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submodules_are_fetched_recursively_with_the_parents_credentials() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, "gr-submodules").await.unwrap();
    let api: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let root = tempfile::tempdir().unwrap();
    let server = GitHttpServer::start(root.path(), Some(("git", "s3cret")))
        .await
        .expect("start the git server");
    basic_auth_secret(&client, &ns, "auth", "git", "s3cret").await;

    let grandchild = Repo::init(root.path(), "grandchild");
    let gc1 = grandchild.commit(&[("gc.yaml", "grandchild: 1\n")], "gc");
    let child = Repo::init(root.path(), "child");
    // The child's own submodule is relative to the child's URL.
    let c1 = commit_with_gitlinks(
        &child,
        &[
            ("child.yaml", "child: 1\n"),
            (
                ".gitmodules",
                &gitmodules(&[("deps/gc", "../grandchild.git")]),
            ),
        ],
        &[("deps/gc", &gc1)],
        "child 1",
    );
    let parent = Repo::init(root.path(), "parent");
    let parent_modules =
        |child_url: &str| gitmodules(&[("vendor/child", child_url), ("abs", &server.url("child"))]);
    let p1 = commit_with_gitlinks(
        &parent,
        &[
            ("app.yaml", "app: 1\n"),
            (".gitmodules", &parent_modules("../child.git")),
        ],
        &[("vendor/child", &c1), ("abs", &c1)],
        "parent 1",
    );
    let url = server.url("parent");
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;

    create(&api, &with_recursion("on", &url, true)).await;
    create(&api, &with_recursion("off", &url, false)).await;
    let want_rev = format!("main@sha1:{p1}");
    let on = wait_for(&api, "on", "ready with the first revision", |o| {
        is_ready_true(o) && revision(o) == want_rev
    })
    .await;
    let entries = artifact_entries(&on);
    assert_eq!(
        content_of(&entries, "vendor/child/child.yaml").as_deref(),
        Some("child: 1\n"),
        "{entries:?}"
    );
    assert_eq!(
        content_of(&entries, "abs/child.yaml").as_deref(),
        Some("child: 1\n"),
        "absolute URL: {entries:?}"
    );
    assert_eq!(
        content_of(&entries, "vendor/child/deps/gc/gc.yaml").as_deref(),
        Some("grandchild: 1\n"),
        "submodule of a submodule: {entries:?}"
    );
    assert_eq!(
        content_of(&entries, "app.yaml").as_deref(),
        Some("app: 1\n")
    );
    assert!(
        !entries.iter().any(|(p, _)| p.ends_with(".gitmodules")),
        "{entries:?}"
    );
    assert_eq!(
        on.status.as_ref().unwrap().observed_recurse_submodules,
        Some(true)
    );

    let off = wait_for(&api, "off", "ready", |o| {
        is_ready_true(o) && revision(o) == want_rev
    })
    .await;
    let entries = artifact_entries(&off);
    assert!(
        entries
            .iter()
            .any(|(p, c)| p == "vendor/child" && c.is_none()),
        "the submodule is an empty directory: {entries:?}"
    );
    assert!(
        !entries
            .iter()
            .any(|(p, _)| p.starts_with("vendor/child/") || p.starts_with("abs/")),
        "{entries:?}"
    );
    assert_eq!(
        off.status.as_ref().unwrap().observed_recurse_submodules,
        Some(false)
    );

    // A new child commit, bumped in the parent: a new artifact with the new content.
    let c2 = commit_with_gitlinks(
        &child,
        &[("child.yaml", "child: 2\n"), ("added.yaml", "new\n")],
        &[],
        "child 2",
    );
    let p2 = commit_with_gitlinks(&parent, &[], &[("vendor/child", &c2)], "bump child");
    request_reconcile(&api, "on", "bump").await;
    let want_rev = format!("main@sha1:{p2}");
    let on = wait_for(&api, "on", "ready with the bumped submodule", |o| {
        is_ready_true(o) && revision(o) == want_rev
    })
    .await;
    let entries = artifact_entries(&on);
    assert_eq!(
        content_of(&entries, "vendor/child/child.yaml").as_deref(),
        Some("child: 2\n")
    );
    assert_eq!(
        content_of(&entries, "vendor/child/added.yaml").as_deref(),
        Some("new\n")
    );
    // The other submodule entry still records the first commit.
    assert_eq!(
        content_of(&entries, "abs/child.yaml").as_deref(),
        Some("child: 1\n")
    );
    let good_artifact = on.status.as_ref().unwrap().artifact.clone().unwrap();

    // A submodule URL that does not exist: Ready=False naming it, the artifact stays.
    commit_with_gitlinks(
        &parent,
        &[(".gitmodules", &parent_modules("../missing.git"))],
        &[],
        "break the submodule URL",
    );
    request_reconcile(&api, "on", "broken").await;
    let missing = server.url("missing");
    let broken = wait_for(&api, "on", "Ready=False for the broken submodule", |o| {
        ready(o).is_some_and(|(s, _, m)| s == "False" && m.contains("submodule"))
    })
    .await;
    let (_, reason, message) = ready(&broken).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{message}");
    assert!(
        message.contains(&format!(
            "failed to fetch submodule 'vendor/child' from '{missing}'"
        )),
        "{message}"
    );
    assert_eq!(
        broken.status.as_ref().unwrap().artifact.as_ref(),
        Some(&good_artifact),
        "the previous artifact stays"
    );
}
