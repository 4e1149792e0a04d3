//! Runs every case of the kustomize conformance corpus in-process and
//! compares the output with the expected stream as YAML values (like the
//! corpus' check.py). Known failures are tolerated; regressions are not.

use std::path::{Path, PathBuf};

use ferroflux_kustomize::{BuildOptions, DiskFs, build, to_yaml_stream};
use serde_yaml::Value;

/// Raise this whenever the pass count rises.
const PASS_FLOOR: usize = 288;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/kustomize/cases")
}

fn docs(text: &str) -> Result<Vec<Value>, String> {
    ferroflux_kustomize::yaml::parse_docs(text)
}

/// Compares as YAML values; numbers compare by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Mapping(x), Value::Mapping(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Sequence(x), Value::Sequence(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

fn run_case(case: &Path) -> Result<(), String> {
    let bd = std::fs::read_to_string(case.join("build-dir"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| ".".into());
    let bd = if bd.is_empty() { ".".into() } else { bd };
    let target = ferroflux_kustomize::fs::clean(&case.join("input").join(bd));
    let want_error = case.join("expected-error.txt").exists();
    let out = build(&DiskFs, &target, &BuildOptions::default());
    match (want_error, out) {
        (true, Err(_)) => Ok(()),
        (true, Ok(_)) => Err("expected the build to fail".into()),
        (false, Err(e)) => Err(format!("build failed: {e}")),
        (false, Ok(objs)) => {
            let expected =
                std::fs::read_to_string(case.join("expected.yaml")).map_err(|e| e.to_string())?;
            let expected = docs(&expected)?;
            // round-trip through our own serializer, as the CLI prints it
            let actual = docs(&to_yaml_stream(&objs))?;
            if expected.len() != actual.len() {
                return Err(format!(
                    "got {} documents, expected {}",
                    actual.len(),
                    expected.len()
                ));
            }
            for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
                if !same(a, e) {
                    return Err(format!("document {} differs", i + 1));
                }
            }
            Ok(())
        }
    }
}

#[test]
fn corpus() {
    let dir = cases_dir();
    // A missing corpus fails the test: passing without comparing anything would be a lie.
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the kustomize corpus is expected at {} (the shared/ directory beside the checkout): {e}",
            dir.display()
        )
    });
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (mut passed, mut failed) = (0, Vec::new());
    for n in &names {
        match run_case(&dir.join(n)) {
            Ok(()) => passed += 1,
            Err(e) => failed.push(format!("{n}: {e}")),
        }
    }
    for f in &failed {
        println!("FAIL {f}");
    }
    println!("corpus: {passed} passed, {} failed", failed.len());
    assert!(
        passed >= PASS_FLOOR,
        "corpus regression: {passed} passed, floor is {PASS_FLOOR}"
    );
}
