//! Renders every case of the shared helm corpus in-process and compares the output with
//! the real `helm template`'s as YAML value streams (like the corpus's check.py).

use std::path::{Path, PathBuf};

use ferroflux_gotemplate::Value;
use ferroflux_gotemplate::yaml::{self, Numbers};
use ferroflux_helm::{Capabilities, ReleaseOptions, RenderOptions};

/// The pass count must not drop below this.
const FLOOR: usize = 61;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/helm/cases")
}

fn render_case(dir: &Path) -> Result<String, String> {
    let args = std::fs::read_to_string(dir.join("args")).map_err(|e| e.to_string())?;
    let toks: Vec<&str> = args.split_whitespace().collect();
    let (mut ns, mut kube, mut apis, mut crds, mut skip_tests) = (
        "default".to_string(),
        "1.20.0".to_string(),
        vec![],
        false,
        false,
    );
    let mut i = 0;
    while i < toks.len() {
        match toks[i] {
            "--namespace" => {
                ns = toks[i + 1].to_string();
                i += 1;
            }
            "--kube-version" => {
                kube = toks[i + 1].to_string();
                i += 1;
            }
            "--api-versions" => {
                apis.push(toks[i + 1].to_string());
                i += 1;
            }
            "--include-crds" => crds = true,
            "--skip-tests" => skip_tests = true,
            other => return Err(format!("unknown arg {other}")),
        }
        i += 1;
    }
    let chart = ferroflux_helm::chart::load(&dir.join("chart")).map_err(|e| e.to_string())?;
    let vals = std::fs::read_to_string(dir.join("values.yaml")).unwrap_or_default();
    let user = ferroflux_helm::user_values(&[vals], &[]).map_err(|e| e.to_string())?;
    let opts = RenderOptions {
        release: ReleaseOptions {
            name: "rel".into(),
            namespace: ns,
            ..Default::default()
        },
        capabilities: Capabilities::new(&kube, &apis),
        strict: false,
    };
    let r = ferroflux_helm::render_chart(
        &chart,
        &user,
        &opts,
        &mut ferroflux_gotemplate::FixedHost::default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(ferroflux_helm::template_output(&r, crds, skip_tests))
}

fn docs(text: &str) -> Result<Vec<Value>, String> {
    Ok(yaml::parse_all(text, Numbers::Native)?
        .into_iter()
        .filter(|d| !d.is_nil())
        .collect())
}

fn check(dir: &Path) -> Result<(), String> {
    let out = render_case(dir);
    if dir.join("expected-error.txt").exists() {
        return match out {
            Ok(_) => Err("expected an error, rendered fine".into()),
            Err(_) => Ok(()),
        };
    }
    let out = out?;
    let expected = std::fs::read_to_string(dir.join("expected.yaml")).map_err(|e| e.to_string())?;
    let (want, got) = (docs(&expected)?, docs(&out)?);
    if want.len() != got.len() {
        return Err(format!(
            "expected {} documents, got {}",
            want.len(),
            got.len()
        ));
    }
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        if !w.deep_eq(g) {
            return Err(format!("document {i} differs"));
        }
    }
    Ok(())
}

#[test]
fn corpus() {
    let dir = cases_dir();
    // A missing corpus fails the test: passing without comparing anything would be a lie.
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the helm corpus is expected at {} (the shared/ directory beside the checkout): {e}",
            dir.display()
        )
    });
    let mut cases: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("args").exists())
        .collect();
    cases.sort();
    let results = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            cases
                .iter()
                .map(|c| (c.clone(), check(c)))
                .collect::<Vec<_>>()
        })
        .expect("spawn")
        .join()
        .expect("renderer thread");
    let mut passed = 0;
    let mut failed = Vec::new();
    for (c, r) in &results {
        let name = c
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match r {
            Ok(()) => passed += 1,
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    for f in &failed {
        println!("FAIL {f}");
    }
    println!("corpus: {passed} passed, {} failed", failed.len());
    assert!(
        passed >= FLOOR,
        "corpus pass count {passed} dropped below the floor {FLOOR}"
    );
}
