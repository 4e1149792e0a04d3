//! Parses arbitrary text as a template (with a define-heavy prelude) and executes it
//! against Helm-like data. Any panic is a bug; errors are fine.
#![no_main]

use ferroflux_gotemplate::yaml::{self, Numbers};
use ferroflux_gotemplate::{FixedHost, Templates};
use libfuzzer_sys::fuzz_target;

const DATA: &str = "Values: {s: hello, n: 3, f: 1.5, l: [a, b, {x: 1}], m: {a: 1, b: [1, 2]}, e: '', z: null}\n\
Release: {Name: rel, Namespace: demo}\nChart: {Name: c, Version: 1.0.0}\n";

const PRELUDE: &str = r#"{{- define "t" }}[{{ . }}]{{ end -}}{{- define "rec" }}{{ if gt (len .) 0 }}{{ include "rec" (rest .) }}{{ end }}{{ end -}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut t = Templates::new();
    t.max_depth = 64;
    t.max_steps = 20_000;
    t.max_output = 1 << 20;
    if t.parse("prelude", PRELUDE).is_err() {
        return;
    }
    if t.parse("fuzz", text).is_err() {
        return;
    }
    let Ok(data) = yaml::parse(DATA, Numbers::Json) else { return };
    let _ = t.execute("fuzz", &data, &mut FixedHost::default());
    // The tpl function on the same text, and YAML/JSON round trips of the data.
    let _ = ferroflux_gotemplate::yaml::parse_all(text, Numbers::Json);
    let _ = ferroflux_gotemplate::json::parse(text);
    let _ = ferroflux_gotemplate::gofmt::sprintf(text, &[data.clone()]);
    let _ = ferroflux_gotemplate::semver::semver_compare(text, "1.2.3");
    // Manifest heads: the line-by-line fast path must agree with the full parser.
    match (yaml::parse_head(text), yaml::parse_head_full(text)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "heads differ"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("parse_head {a:?} but the full parser {b:?}"),
    }
});
