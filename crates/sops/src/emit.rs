//! Plaintext output as SOPS's stores write it (Go's `encoding/json` for JSON values).

use serde_yaml::Value;

/// Go's `json.Marshal` of a string (HTML-safe escaping, as Go does by default).
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `json.Marshal` of a float64 (ES6-like: exponent form below 1e-6 and from 1e21).
fn go_json_float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Go writes e.g. 1e+21 and 1e-07 -> 1e-7.
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("+", e),
        };
        format!("{m}e{sign}{digits}")
    } else {
        crate::go_format_float(f)
    }
}

/// A scalar as SOPS's `ValToString` writes it into dotenv files.
pub(crate) fn val_to_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => crate::go_format_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        Value::Tagged(t) => val_to_string(&t.value),
        other => serde_yaml::to_string(other).unwrap_or_default(),
    }
}

fn write(v: &Value, depth: usize, out: &mut String) {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        for _ in 0..d {
            out.push('\t');
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (_, Some(u)) => out.push_str(&u.to_string()),
            _ => out.push_str(&go_json_float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => go_json_string(s, out),
        Value::Tagged(t) => write(&t.value, depth, out),
        Value::Sequence(s) => {
            if s.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in s.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write(item, depth + 1, out);
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Mapping(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                let ks = match k {
                    Value::String(s) => s.clone(),
                    other => val_to_string(other),
                };
                go_json_string(&ks, out);
                out.push_str(": ");
                write(val, depth + 1, out);
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

/// SOPS's JSON store output: the tree encoded by Go's `encoding/json`, indented with tabs.
pub(crate) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write(v, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_go() {
        let v: Value =
            serde_yaml::from_str("{a: 1, b: [x, '<&>'], c: {}, d: 1.5, e: 1e-7}").unwrap();
        assert_eq!(
            go_json(&v),
            "{\n\t\"a\": 1,\n\t\"b\": [\n\t\t\"x\",\n\t\t\"\\u003c\\u0026\\u003e\"\n\t],\n\t\"c\": {},\n\t\"d\": 1.5,\n\t\"e\": 1e-7\n}"
        );
    }
}
