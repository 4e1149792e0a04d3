//! The engine on its own: parsing, executing, errors, and the injected host.

use ferroflux_gotemplate::yaml::{self, Numbers};
use ferroflux_gotemplate::{FixedHost, Host, Map, Templates, Value};

fn run(tpl: &str, data: &str) -> Result<String, String> {
    let mut t = Templates::new();
    t.parse("t", tpl).map_err(|e| e.0)?;
    let d = yaml::parse(data, Numbers::Json)?;
    t.execute("t", &d, &mut FixedHost::default())
        .map_err(|e| e.0)
}

#[test]
fn executes_go_templates() {
    assert_eq!(
        run(
            "{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}",
            "m: {b: 2, a: 1}"
        )
        .unwrap(),
        "a=1;b=2;"
    );
    assert_eq!(
        run("{{ .x }} {{ printf \"%d\" .x }}", "x: 1000000").unwrap(),
        "1e+06 %!d(float64=1e+06)"
    );
    assert_eq!(
        run("{{ if and .a (not .b) }}yes{{ end }}", "a: true\nb: false").unwrap(),
        "yes"
    );
    assert_eq!(
        run(
            "{{- define \"x\" }}[{{ . }}]{{ end }}{{ include \"x\" 3 | quote }}",
            ""
        )
        .unwrap(),
        "\"[3]\""
    );
}

#[test]
fn errors_name_template_line_and_column() {
    let e = run("line1\n  {{ .a.b.c }}", "a: {}").unwrap_err();
    assert_eq!(
        e,
        "template: t:2:7: executing \"t\" at <.a.b.c>: nil pointer evaluating interface {}.c"
    );
    let e = run("{{ required \"need x\" .x }}", "").unwrap_err();
    assert!(
        e.contains("error calling required: ") && e.contains("need x"),
        "{e}"
    );
    let e = run("{{ nope }}", "").unwrap_err();
    assert_eq!(e, "template: t:1: function \"nope\" not defined");
}

struct TestHost {
    n: u64,
}

impl Host for TestHost {
    fn random_u64(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
    fn now(&self) -> (i64, u32) {
        (86_400 * 365, 0)
    }
    fn lookup(&self, api: &str, kind: &str, ns: &str, name: &str) -> Result<Value, String> {
        let mut m = Map::new();
        m.insert("id".into(), Value::str(format!("{api}/{kind}/{ns}/{name}")));
        Ok(Value::map(m))
    }
}

#[test]
fn host_supplies_randomness_clock_and_lookup() {
    let mut t = Templates::new();
    t.parse("t", "{{ randNumeric 3 }} {{ now | date \"2006-01-02\" }} {{ (lookup \"v1\" \"Secret\" \"ns\" \"s\").id }}")
        .unwrap();
    let out = t.execute("t", &Value::Nil, &mut TestHost { n: 0 }).unwrap();
    assert_eq!(out, "123 1971-01-01 v1/Secret/ns/s");
}

#[test]
fn limits_stop_runaway_templates() {
    let mut t = Templates::new();
    t.max_steps = 1000;
    t.parse("t", "{{ range 100000000 }}x{{ end }}").unwrap();
    let e = t
        .execute("t", &Value::Nil, &mut FixedHost::default())
        .unwrap_err();
    assert!(e.0.contains("exceeded 1000 steps"), "{}", e.0);
    let mut t = Templates::new();
    t.parse(
        "t",
        "{{ define \"r\" }}{{ include \"r\" . }}{{ end }}{{ include \"r\" 1 }}",
    )
    .unwrap();
    assert!(
        t.execute("t", &Value::Nil, &mut FixedHost::default())
            .is_err()
    );
}
