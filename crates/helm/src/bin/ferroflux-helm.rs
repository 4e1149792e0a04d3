//! `ferroflux-helm template RELEASE CHART [flags]`: prints what `helm template` prints.

use std::path::Path;
use std::process::ExitCode;

use ferroflux_helm::{Capabilities, ReleaseOptions, RenderOptions};

fn usage() -> ExitCode {
    eprintln!(
        "usage: ferroflux-helm template RELEASE CHART [-f values.yaml]... [--set k=v]... [--set-string k=v]... \
         [--namespace NS] [--kube-version V] [--api-versions G/V]... [--include-crds] [--skip-tests]"
    );
    ExitCode::from(2)
}

/// What to print: the rendered chart, and the `--include-crds` and `--skip-tests` flags.
struct Output {
    rendered: ferroflux_helm::Rendered,
    include_crds: bool,
    skip_tests: bool,
}

fn run(args: Vec<String>) -> Result<Output, String> {
    let mut pos = Vec::new();
    let mut files = Vec::new();
    let mut sets = Vec::new();
    let mut set_strings = Vec::new();
    let mut ns = "default".to_string();
    let mut kube = "v1.20.0".to_string();
    let mut apis = Vec::new();
    let (mut crds, mut skip_tests) = (false, false);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .ok_or_else(|| format!("flag needs an argument: {name}")),
            }
        };
        match flag.as_str() {
            "-f" | "--values" => files.push(val(&flag)?),
            "--set" => sets.push(val(&flag)?),
            "--set-string" => set_strings.push(val(&flag)?),
            "-n" | "--namespace" => ns = val(&flag)?,
            "--kube-version" => kube = val(&flag)?,
            "-a" | "--api-versions" => apis.push(val(&flag)?),
            "--include-crds" => crds = true,
            "--skip-tests" => skip_tests = true,
            f if f.starts_with('-') => return Err(format!("unknown flag: {f}")),
            _ => pos.push(a),
        }
    }
    if pos.first().map(String::as_str) != Some("template") || pos.len() != 3 {
        return Err("expected: template RELEASE CHART".into());
    }
    let chart = ferroflux_helm::chart::load(Path::new(&pos[2])).map_err(|e| e.to_string())?;
    let mut texts = Vec::new();
    for f in &files {
        texts.push(std::fs::read_to_string(f).map_err(|e| format!("open {f}: {e}"))?);
    }
    let mut user = ferroflux_helm::user_values(&texts, &sets).map_err(|e| e.to_string())?;
    for s in &set_strings {
        ferroflux_helm::values::parse_set_into(s, &mut user, true).map_err(|e| e.to_string())?;
    }
    let opts = RenderOptions {
        release: ReleaseOptions {
            name: pos[1].clone(),
            namespace: ns,
            ..Default::default()
        },
        capabilities: Capabilities::new(&kube, &apis),
        strict: false,
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut host = ferroflux_gotemplate::FixedHost::new(seed);
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        host.now = (d.as_secs() as i64, d.subsec_nanos());
    }
    ferroflux_helm::skip_frees_for_exit(true);
    let r =
        ferroflux_helm::render_chart(&chart, &user, &opts, &mut host).map_err(|e| e.to_string())?;
    // The process ends right after printing: freeing these trees would only cost time.
    std::mem::forget((chart, user, opts));
    Ok(Output {
        rendered: r,
        include_crds: crds,
        skip_tests,
    })
}

// Rendering allocates many small strings and maps; mimalloc is markedly faster at that
// than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return usage();
    }
    match run(args) {
        Ok(out) => {
            use std::io::Write;
            let mut stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            let written = ferroflux_helm::write_template_output(
                &out.rendered,
                out.include_crds,
                out.skip_tests,
                &mut stdout,
            )
            .and_then(|_| stdout.flush());
            std::mem::forget(out);
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: writing the output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
