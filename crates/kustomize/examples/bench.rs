//! Benchmark: native build vs `kubectl kustomize` (kustomize v5.7.1).
//!
//! cargo run -p ferroflux-kustomize --release --example bench -- \
//!     [--kubectl PATH] [--cli PATH] [--reps N]
//!
//! Measures (1) the whole conformance corpus and (2) a synthetic overlay tree
//! of 200 bases x 20 resources with patches and generators. For each, it
//! prints the in-process time per build of the native engine, the
//! wall-clock time per build of both CLIs run as child processes (same
//! process tree, same inputs), their ratio, and the peak RSS of both CLIs
//! (from /usr/bin/time). No assertions: numbers are printed only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferroflux_kustomize::{BuildOptions, DiskFs, build};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd args dir` under /usr/bin/time; returns (wall time, peak RSS KiB, ok).
fn run_timed(cmd: &[String], dir: &Path) -> (Duration, u64, bool) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("RSS=%M")
        .args(cmd)
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let el = start.elapsed();
    match out {
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let rss = err
                .lines()
                .filter_map(|l| l.strip_prefix("RSS="))
                .filter_map(|v| v.trim().parse().ok())
                .next_back()
                .unwrap_or(0);
            (el, rss, o.status.success())
        }
        Err(_) => (el, 0, false),
    }
}

struct Stats {
    ours_inproc: Duration,
    ours_cli: Duration,
    theirs_cli: Duration,
    ours_rss: u64,
    theirs_rss: u64,
    builds: usize,
}

fn measure(dirs: &[PathBuf], reps: usize, cli: &[String], kubectl: &[String]) -> Stats {
    let mut s = Stats {
        ours_inproc: Duration::ZERO,
        ours_cli: Duration::ZERO,
        theirs_cli: Duration::ZERO,
        ours_rss: 0,
        theirs_rss: 0,
        builds: 0,
    };
    for d in dirs {
        let start = Instant::now();
        for _ in 0..reps {
            let _ = build(&DiskFs, d, &BuildOptions::default());
        }
        s.ours_inproc += start.elapsed() / reps as u32;
        let (t, rss, _) = run_timed(cli, d);
        s.ours_cli += t;
        s.ours_rss = s.ours_rss.max(rss);
        let (t, rss, _) = run_timed(kubectl, d);
        s.theirs_cli += t;
        s.theirs_rss = s.theirs_rss.max(rss);
        s.builds += 1;
    }
    s
}

fn report(title: &str, s: &Stats) {
    let n = s.builds.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n;
    println!("== {title}: {} builds", s.builds);
    println!(
        "  native in-process: {:>9.3} ms/build   ratio vs kubectl: {:>7.1}x",
        ms(s.ours_inproc),
        s.theirs_cli.as_secs_f64() / s.ours_inproc.as_secs_f64().max(1e-9)
    );
    println!(
        "  native CLI:        {:>9.3} ms/build   ratio vs kubectl: {:>7.1}x   peak RSS {} KiB",
        ms(s.ours_cli),
        s.theirs_cli.as_secs_f64() / s.ours_cli.as_secs_f64().max(1e-9),
        s.ours_rss
    );
    println!(
        "  kubectl kustomize: {:>9.3} ms/build                              peak RSS {} KiB",
        ms(s.theirs_cli),
        s.theirs_rss
    );
}

fn write(p: &Path, text: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(p, text).expect("write");
}

/// 200 bases x 20 resources, each base with a generator and a patch; an
/// overlay with prefix, labels, a generator and patches over all bases.
fn synthetic(root: &Path, bases: usize, per: usize) -> PathBuf {
    let _ = std::fs::remove_dir_all(root);
    let mut overlay_res = String::new();
    for b in 0..bases {
        let dir = root.join(format!("base{b}"));
        let mut res = String::new();
        let mut names = String::new();
        for r in 0..per {
            let text = match r % 3 {
                0 => format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{b}-{r}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: app{b}-{r}}}\n  template:\n    metadata:\n      labels: {{app: app{b}-{r}}}\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.{r}\n        envFrom:\n        - configMapRef: {{name: cfg{b}}}\n        ports:\n        - containerPort: 80\n"
                ),
                1 => format!(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{b}-{r}\nspec:\n  selector: {{app: app{b}-{r}}}\n  ports:\n  - port: 80\n"
                ),
                _ => format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain{b}-{r}\ndata:\n  key: value{r}\n"
                ),
            };
            write(&dir.join(format!("r{r}.yaml")), &text);
            names.push_str(&format!("- r{r}.yaml\n"));
            res.push_str(&text);
        }
        write(
            &dir.join("kustomization.yaml"),
            &format!(
                "resources:\n{names}configMapGenerator:\n- name: cfg{b}\n  literals:\n  - A=1\n  - B=two\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value: {{base: b{b}}}\n"
            ),
        );
        overlay_res.push_str(&format!("- base{b}\n"));
    }
    let ov = root.join("overlay");
    write(
        &ov.join("kustomization.yaml"),
        &format!(
            "namePrefix: prod-\nnamespace: prod\ncommonLabels:\n  env: prod\nresources:\n{}configMapGenerator:\n- name: global\n  literals:\n  - X=y\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: any\n    spec:\n      replicas: 3\n      template:\n        spec:\n          containers:\n          - name: main\n            resources:\n              limits: {{cpu: 500m}}\nimages:\n- name: nginx\n  newTag: stable\n",
            overlay_res.replace("- base", "- ../base")
        ),
    );
    ov
}

fn main() {
    let reps: usize = arg("--reps").and_then(|r| r.parse().ok()).unwrap_or(5);
    let kubectl = arg("--kubectl").unwrap_or_else(|| {
        manifest()
            .join("../../target/oracle/kubectl")
            .to_string_lossy()
            .into_owned()
    });
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest().join("../../target"));
    let cli = arg("--cli").unwrap_or_else(|| {
        target_dir
            .join("release/ferroflux-kustomize")
            .to_string_lossy()
            .into_owned()
    });
    let kubectl_cmd = vec![kubectl, "kustomize".to_string()];
    let cli_cmd = vec![cli, "build".to_string()];

    // (1) the corpus: every case that builds successfully
    let cases = manifest().join("../../../shared/corpus/kustomize/cases");
    let mut dirs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&cases) {
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for c in names {
            if !c.join("expected.yaml").exists() {
                continue;
            }
            let bd = std::fs::read_to_string(c.join("build-dir"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| ".".into());
            dirs.push(ferroflux_kustomize::fs::clean(&c.join("input").join(bd)));
        }
    }
    let s = measure(&dirs, reps, &cli_cmd, &kubectl_cmd);
    report("corpus", &s);

    // (2) synthetic overlay tree
    let root =
        std::env::temp_dir().join(format!("ferroflux-kustomize-bench-{}", std::process::id()));
    let ov = synthetic(&root, 200, 20);
    let start = Instant::now();
    let objs = build(&DiskFs, &ov, &BuildOptions::default()).expect("synthetic build");
    let first = start.elapsed();
    println!(
        "synthetic tree: {} objects (first in-process build {:.1} ms)",
        objs.len(),
        first.as_secs_f64() * 1000.0
    );
    let s = measure(&[ov], reps.min(3), &cli_cmd, &kubectl_cmd);
    report("synthetic 200 bases x 20 resources", &s);
    let _ = std::fs::remove_dir_all(&root);
}
