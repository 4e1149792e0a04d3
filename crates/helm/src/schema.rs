//! values.schema.json validation: the JSON Schema keywords charts use (draft 7 subset).

use serde_json::Value as J;

fn type_ok(t: &str, v: &J) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0) || v.is_i64() || v.is_u64(),
        _ => true,
    }
}

fn jtype(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "boolean",
        J::Number(n) => {
            if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        J::String(_) => "string",
        J::Array(_) => "array",
        J::Object(_) => "object",
    }
}

fn resolve<'a>(root: &'a J, r: &str) -> Option<&'a J> {
    let p = r.strip_prefix('#')?;
    if p.is_empty() {
        return Some(root);
    }
    root.pointer(p)
}

/// A schema's `pattern` / `patternProperties` regex, compiled once per pattern (the same
/// pattern is checked against every matching value and key).
fn regex_match(pat: &str, s: &str) -> Option<bool> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if !c.contains_key(pat) {
            // Bounded: a hostile schema cannot grow the cache without limit.
            if c.len() >= 1024 {
                c.clear();
            }
            c.insert(pat.to_string(), regex::Regex::new(pat).ok());
        }
        c.get(pat)
            .and_then(|re| re.as_ref())
            .map(|re| re.is_match(s))
    })
}

fn num_eq(a: &J, b: &J) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// "at 'PATH'", formatted only when an error is reported.
struct At<'a>(&'a str);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at '{}'", self.0)
    }
}

/// Validates `v` against `schema`, appending "path: message" errors.
pub fn validate(root: &J, schema: &J, v: &J, path: &str, errs: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        if schema == &J::Bool(false) {
            errs.push(format!("{path}: false schema"));
        }
        return;
    };
    let at = At(path);
    if let Some(r) = s.get("$ref").and_then(|r| r.as_str())
        && let Some(t) = resolve(root, r)
    {
        validate(root, t, v, path, errs);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            J::String(t) => type_ok(t, v),
            J::Array(ts) => ts.iter().any(|t| t.as_str().is_some_and(|t| type_ok(t, v))),
            _ => true,
        };
        if !ok {
            errs.push(format!(
                "{at}: got {}, want {}",
                jtype(v),
                match t {
                    J::String(s) => s.clone(),
                    o => o.to_string(),
                }
            ));
            return;
        }
    }
    if let Some(J::Array(e)) = s.get("enum")
        && !e.iter().any(|x| num_eq(x, v))
    {
        errs.push(format!(
            "{at}: value must be one of {}",
            e.iter()
                .map(|x| match x {
                    J::String(s) => format!("'{s}'"),
                    o => o.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(c) = s.get("const")
        && !num_eq(c, v)
    {
        errs.push(format!("{at}: value must be {c}"));
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(J::Array(subs)) = s.get(k) {
            let results: Vec<usize> = subs
                .iter()
                .map(|sub| {
                    let mut e = Vec::new();
                    validate(root, sub, v, path, &mut e);
                    e.len()
                })
                .collect();
            let ok = results.iter().filter(|n| **n == 0).count();
            match k {
                "allOf" if ok != subs.len() => {
                    for sub in subs {
                        validate(root, sub, v, path, errs);
                    }
                }
                "anyOf" if ok == 0 => errs.push(format!("{at}: anyOf failed")),
                "oneOf" if ok != 1 => errs.push(format!("{at}: oneOf failed")),
                _ => {}
            }
        }
    }
    if let Some(n) = s.get("not") {
        let mut e = Vec::new();
        validate(root, n, v, path, &mut e);
        if e.is_empty() {
            errs.push(format!("{at}: not failed"));
        }
    }
    if let (Some(i), Some(t), Some(_)) = (s.get("if"), s.get("then"), Some(())) {
        let mut e = Vec::new();
        validate(root, i, v, path, &mut e);
        if e.is_empty() {
            validate(root, t, v, path, errs);
        } else if let Some(el) = s.get("else") {
            validate(root, el, v, path, errs);
        }
    }
    match v {
        J::Object(o) => {
            if let Some(J::Array(req)) = s.get("required") {
                for r in req {
                    if let Some(r) = r.as_str()
                        && !o.contains_key(r)
                    {
                        errs.push(format!("{at}: missing property '{r}'"));
                    }
                }
            }
            let props = s.get("properties").and_then(|p| p.as_object());
            let pprops = s.get("patternProperties").and_then(|p| p.as_object());
            for (k, val) in o {
                let sub = format!("{path}/{k}");
                let mut matched = false;
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    matched = true;
                    validate(root, ps, val, &sub, errs);
                }
                if let Some(pp) = pprops {
                    for (pat, ps) in pp {
                        if regex_match(pat, k).unwrap_or(false) {
                            matched = true;
                            validate(root, ps, val, &sub, errs);
                        }
                    }
                }
                if !matched && let Some(ap) = s.get("additionalProperties") {
                    if ap == &J::Bool(false) {
                        errs.push(format!("{at}: additional properties '{k}' not allowed"));
                    } else {
                        validate(root, ap, val, &sub, errs);
                    }
                }
            }
            if let Some(n) = s.get("minProperties").and_then(|n| n.as_u64())
                && (o.len() as u64) < n
            {
                errs.push(format!("{at}: minProperties"));
            }
        }
        J::Array(a) => {
            match s.get("items") {
                Some(J::Array(tuple)) => {
                    for (i, (sub, x)) in tuple.iter().zip(a.iter()).enumerate() {
                        validate(root, sub, x, &format!("{path}/{i}"), errs);
                    }
                }
                Some(items) => {
                    for (i, x) in a.iter().enumerate() {
                        validate(root, items, x, &format!("{path}/{i}"), errs);
                    }
                }
                None => {}
            }
            if let Some(n) = s.get("minItems").and_then(|n| n.as_u64())
                && (a.len() as u64) < n
            {
                errs.push(format!("{at}: minItems: got {}, want {n}", a.len()));
            }
            if let Some(n) = s.get("maxItems").and_then(|n| n.as_u64())
                && (a.len() as u64) > n
            {
                errs.push(format!("{at}: maxItems: got {}, want {n}", a.len()));
            }
        }
        J::String(st) => {
            let len = st.chars().count() as u64;
            if let Some(n) = s.get("minLength").and_then(|n| n.as_u64())
                && len < n
            {
                errs.push(format!("{at}: minLength: got {len}, want {n}"));
            }
            if let Some(n) = s.get("maxLength").and_then(|n| n.as_u64())
                && len > n
            {
                errs.push(format!("{at}: maxLength: got {len}, want {n}"));
            }
            if let Some(p) = s.get("pattern").and_then(|p| p.as_str())
                && regex_match(p, st) == Some(false)
            {
                errs.push(format!("{at}: '{st}' does not match pattern '{p}'"));
            }
        }
        J::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if let Some(m) = s.get("minimum").and_then(|m| m.as_f64())
                && f < m
            {
                errs.push(format!("{at}: minimum: got {f}, want {m}"));
            }
            if let Some(m) = s.get("maximum").and_then(|m| m.as_f64())
                && f > m
            {
                errs.push(format!("{at}: maximum: got {f}, want {m}"));
            }
            if let Some(m) = s.get("exclusiveMinimum").and_then(|m| m.as_f64())
                && f <= m
            {
                errs.push(format!("{at}: exclusiveMinimum"));
            }
            if let Some(m) = s.get("exclusiveMaximum").and_then(|m| m.as_f64())
                && f >= m
            {
                errs.push(format!("{at}: exclusiveMaximum"));
            }
        }
        _ => {}
    }
}
