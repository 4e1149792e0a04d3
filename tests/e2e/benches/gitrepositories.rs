//! GitRepository benchmark (issue 4): a large repository (50,000 files, with history) served
//! by a real git HTTP server; source-controller (release build) as a process against the test
//! control plane. Prints, for the first reconcile, a no-change reconcile and a reconcile of a
//! new commit: the wall time and the controller's peak RSS over that step; next to them,
//! `git clone --depth 1` and `tar -czf` of the same repository. Then the idle RSS of a
//! source-controller holding 100 GitRepositories.
//!
//! `cargo bench -p ferroflux-e2e --bench gitrepositories [-- FILES]`
//! Not a test: nothing is asserted about time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferroflux_e2e::{ControllerProcess, free_port};
use ferroflux_testenv::ControlPlane;
use ferroflux_testenv::git::{GitHttpServer, Repo, git};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

/// Deterministic filler text: words from a xorshift generator, so the repository compresses
/// like source text rather than like zeros or noise.
struct Words(u64);
impl Words {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn text(&mut self, bytes: usize) -> String {
        const WORDS: &[&str] = &[
            "apiVersion",
            "kind",
            "metadata",
            "name",
            "spec",
            "replicas",
            "image",
            "port",
            "container",
            "value",
            "labels",
            "selector",
            "template",
            "data",
            "config",
            "true",
            "false",
            "namespace",
            "resources",
            "limits",
            "requests",
            "memory",
            "cpu",
            "env",
        ];
        let mut out = String::with_capacity(bytes + 16);
        while out.len() < bytes {
            let r = self.next();
            out.push_str(WORDS[(r % WORDS.len() as u64) as usize]);
            out.push_str(if r.is_multiple_of(7) { ":\n" } else { " " });
            if r.is_multiple_of(5) {
                out.push_str(&(r % 10_000).to_string());
                out.push('\n');
            }
        }
        out
    }
}

/// Writes `files` files under `work` (100 per directory), commits them, then `history` more
/// commits each rewriting 1% of the files; pushes to `main`.
fn make_large_repo(repo: &Repo, files: usize, history: usize) {
    let mut words = Words(0x9e37_79b9_7f4a_7c15);
    for i in 0..files {
        let path = repo
            .work
            .join(format!("dir-{:04}/file-{:05}.yaml", i / 100, i));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let size = 512 + (words.next() % 3072) as usize;
        std::fs::write(path, words.text(size)).unwrap();
    }
    git(&repo.work, &["add", "-A"]);
    git(&repo.work, &["commit", "-q", "-m", "initial"]);
    for c in 0..history {
        rewrite_some(&repo.work, files, &mut words, files / 100, c);
        git(&repo.work, &["commit", "-q", "-am", &format!("change {c}")]);
    }
    git(&repo.work, &["push", "-q", "origin", "HEAD:main"]);
}

fn rewrite_some(work: &Path, files: usize, words: &mut Words, count: usize, salt: usize) {
    for k in 0..count {
        let i = (words.next() as usize + k * 7919 + salt) % files;
        let path = work.join(format!("dir-{:04}/file-{:05}.yaml", i / 100, i));
        std::fs::write(path, words.text(1024)).unwrap();
    }
}

/// Flushes dirty pages, so a measured step does not pay for the writeback of the step
/// before it: on this machine's disk, checkouts slowed down 3-10× under writeback throttling.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Runs `cmd` under GNU time: (seconds, peak RSS in MiB).
fn timed(cmd: &mut Command) -> (f64, f64) {
    settle();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .current_dir(cmd.get_current_dir().unwrap_or(Path::new(".")))
        .output()
        .expect("run /usr/bin/time (Debian package time)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let mut parts = last.split_whitespace();
    let secs: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    let kib: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    (secs, kib / 1024.0)
}

fn gitrepo_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::erase::<ferroflux_api::source::GitRepository>(&()),
    )
}

async fn wait_for(api: &Api<DynamicObject>, name: &str, check: impl Fn(&DynamicObject) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let obj = api.get(name).await.unwrap();
        if check(&obj) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {:?}",
            obj.data.get("status")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn revision(obj: &DynamicObject) -> Option<String> {
    obj.data
        .pointer("/status/artifact/revision")
        .and_then(|r| r.as_str())
        .map(String::from)
}

fn start_source(cp: &ControlPlane, ns: &str, storage: &Path) -> ControllerProcess {
    let port = free_port();
    ControllerProcess::start(
        env!("CARGO_BIN_EXE_e2e-source-controller"),
        &cp.kubeconfig_path,
        ns,
        &[
            "--log-level=debug".to_string(),
            format!("--storage-path={}", storage.display()),
            format!("--storage-addr=127.0.0.1:{port}"),
            format!("--storage-adv-addr=127.0.0.1:{port}"),
        ],
    )
}

async fn large_repository(files: usize) {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, "bench-git").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let repo = Repo::init(root.path(), "large");
    make_large_repo(&repo, files, 20);
    let pack_bytes: u64 = walk_size(&repo.bare);
    println!(
        "repository: {files} files, 21 commits, {:.1} MiB of objects in the bare repository (made in {:.0}s)",
        pack_bytes as f64 / 1048576.0,
        began.elapsed().as_secs_f64()
    );
    let server = GitHttpServer::start(root.path(), None).await.unwrap();
    let url = server.url("large");

    // The reference: what a script doing the same work with git and tar costs.
    let scratch = tempfile::tempdir().unwrap();
    let (clone_s, clone_mib) = timed(
        Command::new("git")
            .args([
                "clone", "-q", "--depth", "1", "--branch", "main", &url, "clone",
            ])
            .current_dir(scratch.path()),
    );
    let (tar_s, tar_mib) = timed(
        Command::new("tar")
            .args(["--exclude=.git", "-czf", "../out.tar.gz", "."])
            .current_dir(scratch.path().join("clone")),
    );

    let storage = tempfile::tempdir().unwrap();
    let source = start_source(cp, &ns, storage.path());
    let api = gitrepo_api(&client, &ns);
    tokio::time::sleep(Duration::from_millis(500)).await;
    settle();
    source.reset_peak_rss();
    let t = Instant::now();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "large"},
            "spec": {"url": url, "interval": "1h", "timeout": "10m", "ref": {"branch": "main"}}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    wait_for(&api, "large", |o| revision(o).is_some()).await;
    let first = (t.elapsed().as_secs_f64(), source.peak_rss_mib());
    let rev1 = revision(&api.get("large").await.unwrap()).unwrap();
    let artifact_mib = walk_size(storage.path()) as f64 / 1048576.0;

    // No change on the remote: a reconcile request must not fetch or re-archive.
    settle();
    source.reset_peak_rss();
    let t = Instant::now();
    let token = request(&api, "large").await;
    wait_for(&api, "large", |o| {
        o.data
            .pointer("/status/lastHandledReconcileAt")
            .and_then(|v| v.as_str())
            == Some(token.as_str())
    })
    .await;
    let unchanged = (t.elapsed().as_secs_f64(), source.peak_rss_mib());

    // A new commit touching 100 files: only its objects are fetched.
    let mut words = Words(42);
    rewrite_some(&repo.work, files, &mut words, 100, 999);
    git(&repo.work, &["commit", "-q", "-am", "new commit"]);
    git(&repo.work, &["push", "-q", "origin", "HEAD:main"]);
    settle();
    source.reset_peak_rss();
    let t = Instant::now();
    request(&api, "large").await;
    wait_for(&api, "large", |o| revision(o).is_some_and(|r| r != rev1)).await;
    let new_commit = (t.elapsed().as_secs_f64(), source.peak_rss_mib());

    println!("| step | time | peak RSS |");
    println!("|---|---|---|");
    for (what, (secs, mib)) in [
        (
            "source-controller: first reconcile (clone + archive)",
            first,
        ),
        ("source-controller: no-change reconcile", unchanged),
        (
            "source-controller: new commit (100 files changed)",
            new_commit,
        ),
        ("`git clone --depth 1`", (clone_s, clone_mib)),
        ("`tar -czf` of the checkout", (tar_s, tar_mib)),
    ] {
        println!("| {what} | {secs:.2} s | {mib:.1} MiB |");
    }
    println!(
        "git clone --depth 1 + tar -czf: {:.2} s; ferroflux first reconcile is {:.2}× that; artifact {artifact_mib:.1} MiB",
        clone_s + tar_s,
        first.0 / (clone_s + tar_s)
    );
}

async fn request(api: &Api<DynamicObject>, name: &str) -> String {
    let token = format!("{:?}", std::time::SystemTime::now());
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}),
        ),
    )
    .await
    .unwrap();
    token
}

async fn idle_with_many(n: usize) {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let ns = cp.namespace(&client, "bench-idle").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "small");
    repo.commit(
        &[(
            "app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        )],
        "app",
    );
    let server = GitHttpServer::start(root.path(), None).await.unwrap();
    let storage = tempfile::tempdir().unwrap();
    let source = start_source(cp, &ns, storage.path());
    let api = gitrepo_api(&client, &ns);
    let t = Instant::now();
    for i in 0..n {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": format!("repo-{i}")},
                "spec": {"url": server.url("small"), "interval": "1h", "ref": {"branch": "main"}}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    }
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        if list.items.iter().filter(|o| revision(o).is_some()).count() == n {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "not all Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_ready = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "{n} GitRepositories: all with an artifact in {all_ready:.1} s; source-controller idle RSS {:.1} MiB (peak {:.1} MiB)",
        source.rss_mib(),
        source.peak_rss_mib()
    );
}

fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                total += walk_size(&e.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let files: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);
    large_repository(files).await;
    idle_with_many(100).await;
}
