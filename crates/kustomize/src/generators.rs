//! ConfigMap and Secret generators, and kustomize's name hash.

use base64::Engine;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::kustomization::{GeneratorArgs, GeneratorOptions};
use crate::resource::Resource;
use crate::yaml::{self as y, scalar_str};

type R<T> = Result<T, String>;

/// Merges kustomization-wide generator options into a generator's own
/// (kustomize's MergeGlobalOptionsIntoLocal).
pub fn merge_options(
    local: Option<&GeneratorOptions>,
    global: Option<&GeneratorOptions>,
) -> Option<GeneratorOptions> {
    let Some(g) = global else {
        return local.cloned();
    };
    let mut l = local.cloned().unwrap_or_default();
    for (k, v) in &g.labels {
        l.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &g.annotations {
        l.annotations.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if g.disable_name_suffix_hash == Some(true) {
        l.disable_name_suffix_hash = Some(true);
    }
    if g.immutable {
        l.immutable = true;
    }
    Some(l)
}

fn parse_literal(s: &str) -> R<(String, String)> {
    if s.starts_with('=') {
        return Err(format!("invalid literal source {s}, expected key=value"));
    }
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid literal source {s}, expected key=value"))?;
    let v = if v.len() >= 2
        && v.as_bytes()[0] == v.as_bytes()[v.len() - 1]
        && (v.starts_with('"') || v.starts_with('\''))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Ok((k.to_string(), v.to_string()))
}

fn parse_file_source(s: &str) -> R<(String, String)> {
    match s.matches('=').count() {
        0 => {
            let base = s.rsplit('/').next().unwrap_or(s).to_string();
            Ok((base, s.to_string()))
        }
        1 => {
            let (k, p) = s.split_once('=').unwrap_or_default();
            if k.is_empty() {
                return Err(format!("key name for file path {p} missing"));
            }
            if p.is_empty() {
                return Err(format!("file path for key name {k} missing"));
            }
            Ok((k.to_string(), p.to_string()))
        }
        _ => Err("key names or file paths cannot contain '='".into()),
    }
}

fn valid_env_name(k: &str) -> bool {
    let mut cs = k.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || "-._".contains(c))
        && cs.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        && k != "."
        && k != ".."
        && !k.starts_with("..")
}

/// Loads the key/value pairs of a generator (env files, then literals, then files).
pub fn load_pairs(
    args: &GeneratorArgs,
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, crate::Error>,
) -> Result<Vec<(String, Vec<u8>)>, crate::Error> {
    let mut all: Vec<(String, Vec<u8>)> = Vec::new();
    for p in &args.envs {
        let content = load(p)?;
        let text = String::from_utf8(content)
            .map_err(|_| crate::Error::other(format!("env source file {p}: invalid utf8")))?;
        for (i, line) in text.lines().enumerate() {
            let line = if i == 0 {
                line.trim_start_matches('\u{feff}')
            } else {
                line
            };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k, v),
                None => (line, ""),
            };
            if !valid_env_name(k) {
                return Err(crate::Error::other(format!(
                    "env source file {p}: invalid key '{k}': a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"
                )));
            }
            all.push((k.to_string(), v.as_bytes().to_vec()));
        }
    }
    for l in &args.literals {
        let (k, v) = parse_literal(l).map_err(crate::Error::other)?;
        all.push((k, v.into_bytes()));
    }
    for f in &args.files {
        let (k, p) = parse_file_source(f).map_err(crate::Error::other)?;
        let content = load(&p)?;
        all.push((k, content));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &all {
        if !valid_key(k) {
            return Err(crate::Error::other(format!(
                "invalid key name '{k}' in generator '{}'",
                args.name
            )));
        }
        if !seen.insert(k.clone()) {
            return Err(crate::Error::other(format!(
                "configmap {} illegally repeats the key `{k}`",
                args.name
            )));
        }
    }
    Ok(all)
}

/// Generates a ConfigMap (`secret == false`) or Secret.
pub fn generate(
    args: &GeneratorArgs,
    opts: Option<&GeneratorOptions>,
    secret: bool,
    pairs: Vec<(String, Vec<u8>)>,
) -> R<Resource> {
    if args.name.is_empty() {
        return Err("a configmap must have a name".into());
    }
    let mut m = Mapping::new();
    m.insert(y::key("apiVersion"), y::key("v1"));
    m.insert(
        y::key("kind"),
        y::key(if secret { "Secret" } else { "ConfigMap" }),
    );
    let mut md = Mapping::new();
    md.insert(y::key("name"), y::key(&args.name));
    if !args.namespace.is_empty() {
        md.insert(y::key("namespace"), y::key(&args.namespace));
    }
    m.insert(y::key("metadata"), Value::Mapping(md));
    if secret {
        let t = if args.type_.is_empty() {
            "Opaque"
        } else {
            &args.type_
        };
        m.insert(y::key("type"), y::key(t));
        if !pairs.is_empty() {
            let mut data = Mapping::new();
            let mut sorted = pairs;
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in sorted {
                data.insert(y::key(&k), Value::String(encode_base64(&v)));
            }
            m.insert(y::key("data"), Value::Mapping(data));
        }
    } else if !pairs.is_empty() {
        let mut data = Mapping::new();
        let mut bin = Mapping::new();
        let mut sorted = pairs;
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in sorted {
            match String::from_utf8(v) {
                Ok(s) => {
                    data.insert(y::key(&k), Value::String(s));
                }
                Err(e) => {
                    bin.insert(y::key(&k), Value::String(encode_base64(e.as_bytes())));
                }
            }
        }
        if !data.is_empty() {
            m.insert(y::key("data"), Value::Mapping(data));
        }
        if !bin.is_empty() {
            m.insert(y::key("binaryData"), Value::Mapping(bin));
        }
    }
    let mut obj = Value::Mapping(m);
    if let Some(o) = opts {
        if !o.labels.is_empty() {
            let l = y::ensure_map(&mut obj, &["metadata", "labels"]);
            for (k, v) in &o.labels {
                l.insert(y::key(k), Value::String(v.0.clone()));
            }
        }
        if !o.annotations.is_empty() {
            let a = y::ensure_map(&mut obj, &["metadata", "annotations"]);
            for (k, v) in &o.annotations {
                a.insert(y::key(k), Value::String(v.0.clone()));
            }
        }
        if o.immutable {
            y::set_path(&mut obj, &["immutable"], Value::Bool(true));
        }
    }
    let mut r = Resource::new(obj);
    r.needs_hash = opts.is_none_or(|o| o.disable_name_suffix_hash != Some(true));
    r.behavior = Some(if args.behavior.is_empty() {
        "create".to_string()
    } else {
        args.behavior.clone()
    });
    Ok(r)
}

/// Base64 as kyaml writes ConfigMap/Secret data: lines of 70 characters,
/// each ended by a newline, once the encoding is 70 characters or longer.
fn encode_base64(data: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    let lines = enc.len() / 70 + 1;
    if lines <= 1 {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + lines);
    for chunk in enc.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

// ------------------------------------------------------------------ hash

/// Go's encoding/json string encoding (HTML-safe escapes included).
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's json.Marshal of a decoded YAML value (maps with sorted keys).
pub fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => go_json_string(s, out),
        Value::Sequence(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(it, out);
            }
            out.push(']');
        }
        Value::Mapping(m) => {
            let mut items: Vec<(String, &Value)> = m
                .iter()
                .map(|(k, v)| (scalar_str(k).unwrap_or_default(), v))
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(v, out);
            }
            out.push('}');
        }
        Value::Tagged(t) => go_json(&t.value, out),
    }
}

fn encode(hex: &str) -> String {
    hex.chars()
        .take(10)
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

fn hex256(data: &str) -> String {
    let d = Sha256::digest(data.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn node_value(obj: &Value, field: &str) -> Value {
    match y::get(obj, field) {
        None => Value::String(String::new()),
        Some(v @ Value::Mapping(_)) | Some(v @ Value::Sequence(_)) => v.clone(),
        Some(v) => Value::String(scalar_str(v).unwrap_or_default()),
    }
}

/// kustomize's content hash of a ConfigMap or Secret (the name suffix).
pub fn hash(obj: &Value) -> String {
    let kind = y::get_str(obj, &["kind"]);
    let mut m = Mapping::new();
    // kustomize looks up "metadata/name" as a single field name, so the
    // name never contributes to the hash.
    m.insert(y::key("name"), y::key(""));
    let encoded = match kind.as_str() {
        "ConfigMap" => {
            m.insert(y::key("kind"), y::key("ConfigMap"));
            m.insert(y::key("data"), node_value(obj, "data"));
            let b = node_value(obj, "binaryData");
            if b.is_mapping() {
                m.insert(y::key("binaryData"), b);
            }
            let mut s = String::new();
            go_json(&Value::Mapping(m), &mut s);
            s
        }
        "Secret" => {
            m.insert(y::key("kind"), y::key("Secret"));
            m.insert(y::key("type"), node_value(obj, "type"));
            m.insert(y::key("data"), node_value(obj, "data"));
            let b = node_value(obj, "stringData");
            if b.is_mapping() {
                m.insert(y::key("stringData"), b);
            }
            let mut s = String::new();
            go_json(&Value::Mapping(m), &mut s);
            s
        }
        _ => {
            let mut s = String::new();
            go_json(obj, &mut s);
            s
        }
    };
    encode(&hex256(&encoded))
}
