//! YAML helpers: parsing multi-document streams, path access on
//! `serde_yaml::Value`, and the emitter used for output.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// Parses a multi-document YAML stream. Empty documents are dropped;
/// merge keys (`<<`) are applied.
pub fn parse_docs(text: &str) -> Result<Vec<Value>, String> {
    let text = octal_ints(text);
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if v.is_null() {
            continue;
        }
        v.apply_merge().map_err(|e| e.to_string())?;
        out.push(v);
    }
    Ok(out)
}

/// kustomize (go-yaml, then JSON) reads a plain `0755` as the octal
/// integer 493, where YAML 1.2 (serde_yaml) keeps the string "0755".
/// Rewrites such plain mapping values to their decimal value, leaving
/// quoted scalars and block-scalar contents alone.
fn octal_ints(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(": 0") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut block_indent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start().len();
        if let Some(bi) = block_indent {
            if body.trim().is_empty() || indent > bi {
                out.push_str(line);
                continue;
            }
            block_indent = None;
        }
        let trimmed = body.trim_end();
        let header = trimmed
            .rsplit_once(' ')
            .map(|(_, last)| last)
            .unwrap_or(trimmed);
        if (header.starts_with('|') || header.starts_with('>'))
            && header[1..]
                .chars()
                .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
        {
            block_indent = Some(indent);
            out.push_str(line);
            continue;
        }
        if let Some((k, v)) = trimmed.rsplit_once(": ") {
            let v = v.trim();
            if v.len() > 1
                && v.starts_with('0')
                && v.chars().all(|c| ('0'..='7').contains(&c))
                && !k.contains('#')
                && !k.contains('"')
                && !k.contains('\'')
                && let Ok(n) = i64::from_str_radix(&v[1..], 8)
            {
                out.push_str(k);
                out.push_str(": ");
                out.push_str(&n.to_string());
                out.push_str(&line[body.len()..]);
                continue;
            }
        }
        out.push_str(line);
    }
    std::borrow::Cow::Owned(out)
}

/// The text of a scalar, as kyaml's `YNode().Value` would give it.
pub fn scalar_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Tagged(t) => scalar_str(&t.value),
        _ => None,
    }
}

pub fn key(s: &str) -> Value {
    Value::String(s.to_string())
}

pub fn get<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    match v {
        Value::Mapping(m) => m.get(field),
        _ => None,
    }
}

pub fn get_mut<'a>(v: &'a mut Value, field: &str) -> Option<&'a mut Value> {
    match v {
        Value::Mapping(m) => m.get_mut(field),
        _ => None,
    }
}

pub fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = get(cur, p)?;
    }
    Some(cur)
}

pub fn get_str(v: &Value, path: &[&str]) -> String {
    get_path(v, path)
        .and_then(|x| if x.is_null() { None } else { scalar_str(x) })
        .unwrap_or_default()
}

/// Returns the mapping at `path`, creating empty mappings on the way.
/// Null or non-mapping intermediate values are replaced by mappings.
pub fn ensure_map<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Mapping {
    if !v.is_mapping() {
        *v = Value::Mapping(Mapping::new());
    }
    let mut cur = v;
    for p in path {
        let m = match cur {
            Value::Mapping(m) => m,
            _ => unreachable!(),
        };
        if !matches!(m.get(*p), Some(Value::Mapping(_))) {
            m.insert(key(p), Value::Mapping(Mapping::new()));
        }
        cur = m.get_mut(*p).expect("just inserted");
    }
    match cur {
        Value::Mapping(m) => m,
        _ => unreachable!(),
    }
}

pub fn set_path(v: &mut Value, path: &[&str], val: Value) {
    if let Some((last, parents)) = path.split_last() {
        ensure_map(v, parents).insert(key(last), val);
    }
}

pub fn remove_path(v: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for p in parents {
        cur = get_mut(cur, p)?;
    }
    match cur {
        Value::Mapping(m) => m.remove(*last),
        _ => None,
    }
}

/// A string map (labels, annotations) at `path`; non-string values are
/// rendered as their scalar text.
pub fn string_map(v: &Value, path: &[&str]) -> Vec<(String, String)> {
    match get_path(v, path) {
        Some(Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((scalar_str(k)?, scalar_str(v).unwrap_or_default())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Deep-sorts mapping keys (kustomize prints objects with sorted keys).
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => {
            let mut items: Vec<(&Value, &Value)> = m.iter().collect();
            items.sort_by_key(|(k, _)| key_sort_string(k));
            let mut out = Mapping::new();
            for (k, v) in items {
                out.insert(k.clone(), sorted(v));
            }
            Value::Mapping(out)
        }
        Value::Sequence(s) => Value::Sequence(s.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn key_sort_string(k: &Value) -> String {
    scalar_str(k).unwrap_or_default()
}

// ---------------------------------------------------------------- emitter

/// Serializes one document in block style (keys in their current order).
pub fn to_yaml_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Mapping(m) if !m.is_empty() => emit_map(m, 0, &mut out),
        Value::Sequence(s) if !s.is_empty() => emit_seq(s, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn emit_map(m: &Mapping, indent: usize, out: &mut String) {
    for (k, v) in m {
        pad(out, indent);
        out.push_str(&inline_key(k));
        out.push(':');
        emit_value_after_key(v, indent, out);
    }
}

fn emit_value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(m, indent + 2, out);
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            emit_seq(s, indent, out);
        }
        Value::String(s) if is_block_candidate(s) => {
            emit_block(s, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn emit_seq(s: &[Value], indent: usize, out: &mut String) {
    for item in s {
        pad(out, indent);
        out.push('-');
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                // first key on the dash line
                let mut first = true;
                for (k, v) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        pad(out, indent + 2);
                    }
                    out.push_str(&inline_key(k));
                    out.push(':');
                    emit_value_after_key(v, indent + 2, out);
                }
            }
            Value::Sequence(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_seq(inner, indent + 2, out);
            }
            Value::String(s) if is_block_candidate(s) => {
                emit_block(s, indent + 2, out);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn is_block_candidate(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with(' ')
        && !s.starts_with('\n')
        && !s.lines().any(|l| l.ends_with(' ') || l.ends_with('\t'))
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
        && !s.contains('\r')
        && !s.contains('\u{feff}')
}

fn emit_block(s: &str, indent: usize, out: &mut String) {
    let body = s.strip_suffix('\n');
    let (indicator, content) = match body {
        Some(b) if !b.ends_with('\n') => ("|", b),
        Some(_) => ("|+", s.strip_suffix('\n').unwrap_or(s)),
        None => ("|-", s),
    };
    out.push(' ');
    out.push_str(indicator);
    out.push('\n');
    for line in content.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn inline_key(k: &Value) -> String {
    match k {
        Value::String(s) => quote_if_needed(s),
        other => inline(other),
    }
}

/// Inline (flow) form of a value.
pub fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_str(n),
        Value::String(s) => quote_if_needed(s),
        Value::Sequence(s) => {
            let items: Vec<String> = s.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", inline_key(k), inline(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Tagged(t) => format!("{} {}", t.tag, inline(&t.value)),
    }
}

fn number_str(n: &serde_yaml::Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.is_nan() {
            return ".nan".into();
        }
        if f.is_infinite() {
            return if f > 0.0 {
                ".inf".into()
            } else {
                "-.inf".into()
            };
        }
        let s = format!("{f:?}");
        return s;
    }
    n.to_string()
}

fn is_plain_safe(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    let dot_path = s.starts_with("./") || s.starts_with("../");
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_' || first == '$' || dot_path) {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./$(){}=+@,:%~".contains(c))
    {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    // YAML 1.1 and 1.2 special words
    !matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "nan" | "inf"
    ) && (dot_path || !lower.starts_with('.'))
}

fn quote_if_needed(s: &str) -> String {
    if is_plain_safe(s) && !looks_numeric(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn looks_numeric(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_digit())
}
