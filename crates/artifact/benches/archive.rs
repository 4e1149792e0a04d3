//! Archive benchmark: our deterministic tar.gz against GNU `tar` + `gzip -6` on the same tree.
//!
//! Run: `cargo bench -p ferroflux-artifact --bench archive` (release mode).
//! Environment: `BENCH_FILES` (default 30000), `BENCH_ROUNDS` (default 3), `BENCH_THREADS`
//! (compression threads for ours; default: available parallelism, at most 4).
//!
//! The bench creates a tree of YAML-like files of mixed sizes in a temporary directory, then
//! alternately archives it with `tar -I 'gzip -6' -cf` and with `write_archive`, keeps the best
//! wall time of each, and prints MB/s (uncompressed content bytes per second), the speed ratio
//! and both compressed sizes. It never asserts times; it exits non-zero only if a tool fails.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferroflux_artifact::archive::{ArchiveOptions, write_archive};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "frontend",
    "backend",
    "payments",
    "gateway",
    "worker",
    "scheduler",
    "redis",
    "postgres",
    "ingress",
    "metrics",
    "logging",
    "auth",
    "billing",
    "search",
    "catalog",
    "orders",
    "cache",
    "queue",
    "notifier",
    "reporting",
    "api",
    "web",
    "admin",
    "batch",
    "sync",
    "proxy",
];
const KINDS: &[&str] = &[
    "Deployment",
    "Service",
    "ConfigMap",
    "Ingress",
    "StatefulSet",
    "CronJob",
    "HelmRelease",
    "Kustomization",
    "ServiceAccount",
    "Role",
];

fn yaml_doc(r: &mut Rng, out: &mut String) {
    let name = format!("{}-{}", r.pick(WORDS), r.pick(WORDS));
    let ns = format!("team-{}", r.below(40));
    let kind = r.pick(KINDS);
    out.push_str(&format!(
        "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app.kubernetes.io/name: {name}\n    app.kubernetes.io/part-of: {}\n    app.kubernetes.io/version: \"{}.{}.{}\"\n  annotations:\n    checksum/config: {:016x}{:016x}\nspec:\n  replicas: {}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      serviceAccountName: {name}\n      containers:\n        - name: {}\n          image: registry.example.com/{}/{name}:v{}.{}.{}\n          ports:\n            - containerPort: {}\n              protocol: TCP\n          env:\n",
        r.pick(WORDS),
        r.below(5),
        r.below(30),
        r.below(100),
        r.next(),
        r.next(),
        1 + r.below(6),
        r.pick(WORDS),
        r.pick(WORDS),
        r.below(4),
        r.below(40),
        r.below(200),
        8000 + r.below(1000),
    ));
    for _ in 0..(1 + r.below(6)) {
        let words: Vec<&str> = (0..1 + r.below(6)).map(|_| r.pick(WORDS)).collect();
        out.push_str(&format!(
            "            - name: {}_{}\n              value: \"{}\"\n",
            r.pick(WORDS).to_uppercase(),
            r.below(1000),
            words.join(" ")
        ));
    }
    out.push_str(&format!(
        "          resources:\n            limits:\n              cpu: {}m\n              memory: {}Mi\n            requests:\n              cpu: {}m\n              memory: {}Mi\n---\n",
        100 * (1 + r.below(20)),
        64 * (1 + r.below(64)),
        50 * (1 + r.below(10)),
        32 * (1 + r.below(32)),
    ));
}

fn make_tree(root: &Path, files: usize) -> u64 {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    let mut text = String::new();
    for i in 0..files {
        let dir = root.join(format!(
            "clusters/{}/apps/{}-{}",
            r.below(8),
            r.pick(WORDS),
            i / 20
        ));
        fs::create_dir_all(&dir).expect("mkdir");
        // 75% small, 22% medium, 3% large.
        let roll = r.below(100);
        let target = if roll < 75 {
            300 + r.below(2700)
        } else if roll < 97 {
            3_000 + r.below(17_000)
        } else {
            20_000 + r.below(130_000)
        } as usize;
        text.clear();
        while text.len() < target {
            yaml_doc(&mut r, &mut text);
        }
        text.truncate(target);
        let path = dir.join(format!("{}-{i}.yaml", r.pick(KINDS).to_lowercase()));
        fs::write(&path, &text).expect("write");
        total += text.len() as u64;
    }
    total
}

/// (own CPU, waited-for children CPU) in seconds from /proc/self/stat (utime+stime,
/// cutime+cstime; USER_HZ is 100 on Linux). Zero where /proc is unavailable.
fn cpu_times() -> (f64, f64) {
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesized command name; utime is field 14 overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let get = |i: usize| f.get(i - 3).copied().unwrap_or(0.0) / 100.0;
    (get(14) + get(15), get(16) + get(17))
}

fn run_tar(tree: &Path, out: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new("tar")
        .arg("-I")
        .arg("gzip -6")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(tree)
        .arg(".")
        .status()
        .expect("run GNU tar");
    assert!(status.success(), "tar failed");
    t.elapsed()
}

fn run_ours(tree: &Path, out: &Path, opts: &ArchiveOptions) -> Duration {
    let t = Instant::now();
    let f = BufWriter::with_capacity(256 * 1024, File::create(out).expect("create"));
    let (w, _summary) = write_archive(tree, None, opts, f).expect("archive");
    w.into_inner().expect("flush").sync_data().ok();
    t.elapsed()
}

fn main() {
    let files: usize = std::env::var("BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut opts = ArchiveOptions::default();
    if let Some(t) = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.threads = t;
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    let t = Instant::now();
    let bytes = make_tree(&tree, files);
    println!(
        "tree: {files} files, {:.1} MB of YAML, created in {:.1}s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let tar_out = tmp.path().join("gnu.tar.gz");
    let our_out = tmp.path().join("ours.tar.gz");
    // Warm the page cache once for both.
    run_tar(&tree, &tar_out);
    let mut best_tar = Duration::MAX;
    let mut best_ours = Duration::MAX;
    let (mut cpu_tar, mut cpu_ours) = (0.0, 0.0);
    for round in 0..rounds {
        let (_, c0) = cpu_times();
        let dt = run_tar(&tree, &tar_out);
        let (s1, c1) = cpu_times();
        let d = run_ours(&tree, &our_out, &opts);
        let (s2, _) = cpu_times();
        cpu_tar += c1 - c0;
        cpu_ours += s2 - s1;
        println!(
            "round {}: tar {:.3}s, ours {:.3}s",
            round + 1,
            dt.as_secs_f64(),
            d.as_secs_f64()
        );
        best_tar = best_tar.min(dt);
        best_ours = best_ours.min(d);
    }
    let tar_size = fs::metadata(&tar_out).expect("stat").len();
    let our_size = fs::metadata(&our_out).expect("stat").len();
    let mbps = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "GNU tar + gzip -6: {:.1} MB/s ({:.3}s), {} bytes compressed",
        mbps(best_tar),
        best_tar.as_secs_f64(),
        tar_size
    );
    println!(
        "ferroflux ({} threads): {:.1} MB/s ({:.3}s), {} bytes compressed",
        opts.threads,
        mbps(best_ours),
        best_ours.as_secs_f64(),
        our_size
    );
    println!(
        "CPU seconds per run (user+sys, mean): tar+gzip {:.2}s, ours {:.2}s",
        cpu_tar / rounds as f64,
        cpu_ours / rounds as f64
    );
    println!(
        "speed ratio: {:.2}x; size ratio ours/tar: {:.4} ({})",
        best_tar.as_secs_f64() / best_ours.as_secs_f64(),
        our_size as f64 / tar_size as f64,
        if our_size <= tar_size {
            "equal or better compression"
        } else {
            "WORSE compression"
        }
    );
}
