//! A small TOML writer and reader for `toToml` / `fromToml`.

use crate::value::{Map, Value};

fn scalar(v: &Value) -> String {
    match v {
        Value::Str(s) => crate::gofmt::quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Int(i, _) => i.to_string(),
        Value::Float(f) => {
            if f.fract() == 0.0 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
        Value::List(l) => format!("[{}]", l.iter().map(scalar).collect::<Vec<_>>().join(", ")),
        Value::Nil => "\"\"".into(),
        other => crate::gofmt::quote(&crate::gofmt::sprint_v(other)),
    }
}

fn write_table(out: &mut String, m: &Map, prefix: &str) {
    for (k, v) in m {
        if !matches!(v, Value::Map(_)) {
            out.push_str(&format!("{k} = {}\n", scalar(v)));
        }
    }
    for (k, v) in m {
        if let Value::Map(sub) = v {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push_str(&format!("\n[{name}]\n"));
            write_table(out, &sub.snapshot(), &name);
        }
    }
}

/// toToml.
pub fn to_toml(v: &Value) -> String {
    let mut out = String::new();
    if let Value::Map(m) = v.to_data() {
        write_table(&mut out, &m.snapshot(), "");
    }
    out
}

fn parse_scalar(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if s.starts_with('"') {
        return crate::parse::unquote(s).map(Value::str);
    }
    if s.starts_with('\'') && s.ends_with('\'') && s.len() >= 2 {
        return Ok(Value::str(&s[1..s.len() - 1]));
    }
    if s == "true" || s == "false" {
        return Ok(Value::Bool(s == "true"));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let items: Result<Vec<Value>, String> = inner
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(parse_scalar)
            .collect();
        return Ok(Value::from(items?));
    }
    if let Ok(i) = s.replace('_', "").parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = s.parse::<f64>() {
        return Ok(Value::Float(f));
    }
    Err(format!("toml: cannot parse value {s:?}"))
}

/// fromToml (tables, dotted table names, scalars and flat arrays).
pub fn from_toml(text: &str) -> Result<Value, String> {
    let root = Value::map(Map::new());
    let mut cur = root.clone();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            cur = root.clone();
            for part in name.split('.') {
                let part = part.trim().trim_matches('"').to_string();
                let m = cur.as_map().cloned().ok_or("toml: bad table")?;
                let next = match m.get(&part) {
                    Some(v @ Value::Map(_)) => v,
                    _ => {
                        let v = Value::map(Map::new());
                        m.insert(part, v.clone());
                        v
                    }
                };
                cur = next;
            }
            continue;
        }
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("toml: expected key = value: {l:?}"))?;
        let key = k.trim().trim_matches('"').to_string();
        if let Some(m) = cur.as_map() {
            m.insert(key, parse_scalar(v)?);
        }
    }
    Ok(root)
}
