//! JSON as Go's encoding/json reads (numbers are float64) and writes it (sorted keys,
//! HTML-safe escaping unless asked otherwise).

use crate::gofmt::format_float_json;
use crate::value::{Map, Value};

/// json.Unmarshal into `interface{}`.
pub fn parse(text: &str) -> Result<Value, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(from_serde(&v))
}

pub fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::from(a.iter().map(from_serde).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => {
            let m: Map = o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect();
            Value::map(m)
        }
    }
}

/// Converts to serde_json (for the release codec and schema validation).
pub fn to_serde(v: &Value) -> serde_json::Value {
    match v.to_data() {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Int(i, _) => serde_json::Value::from(i),
        Value::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                serde_json::Value::from(f as i64)
            } else {
                serde_json::Number::from_f64(f)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Value::Str(s) => serde_json::Value::String(s.to_string()),
        Value::Bytes(b) => {
            use base64::Engine;
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(&b))
        }
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_serde).collect()),
        Value::Map(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m.snapshot() {
                o.insert(k, to_serde(&v));
            }
            serde_json::Value::Object(o)
        }
        Value::Object(_) => serde_json::Value::Null,
    }
}

fn write_str(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write(out: &mut String, v: &Value, html: bool, indent: Option<&str>, depth: usize) {
    let nl = |out: &mut String, d: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..d {
                out.push_str(ind);
            }
        }
    };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i, _) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_json(*f)),
        Value::Str(s) => write_str(out, s, html),
        Value::Bytes(b) => {
            use base64::Engine;
            write_str(
                out,
                &base64::engine::general_purpose::STANDARD.encode(b),
                html,
            )
        }
        Value::List(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                write(out, x, html, indent, depth + 1);
            }
            nl(out, depth);
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.snapshot();
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                write_str(out, k, html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write(out, x, html, indent, depth + 1);
            }
            nl(out, depth);
            out.push('}');
        }
        Value::Object(o) => write(out, &o.to_data(), html, indent, depth),
    }
}

/// json.Marshal (html: escape <, >, &) or json.MarshalIndent with `indent`.
pub fn to_json(v: &Value, html: bool, indent: Option<&str>) -> String {
    let mut out = String::new();
    write(&mut out, v, html, indent, 0);
    out
}
