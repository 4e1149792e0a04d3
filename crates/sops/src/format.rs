//! SOPS-encrypted files in the formats of SOPS's stores (YAML, JSON, dotenv, binary), as
//! Flux decrypts `Secret` data entries and `secretGenerator` sources.

use serde_yaml::{Mapping, Value};

use crate::{
    DecryptOptions, Identity, SopsError, decrypt_tree, emit, parse_metadata, take_metadata,
};

/// A SOPS store format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (one or more documents).
    Yaml,
    /// JSON (one top-level object).
    Json,
    /// Dotenv (`KEY=value` lines).
    Dotenv,
    /// INI (recognised, not supported).
    Ini,
    /// A binary file: a JSON envelope whose `data` holds the file's text.
    Binary,
}

/// The output format Flux chooses for a `Secret` data key: by its extension (`.yaml`/`.yml`,
/// `.json`, `.env`, `.ini`), `.dockerconfigjson` as JSON, anything else binary.
pub fn format_for_key(key: &str) -> Format {
    if key.ends_with(".dockerconfigjson") || key.ends_with(".json") {
        Format::Json
    } else if key.ends_with(".yaml") || key.ends_with(".yml") {
        Format::Yaml
    } else if key.ends_with(".env") {
        Format::Dotenv
    } else if key.ends_with(".ini") {
        Format::Ini
    } else {
        Format::Binary
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The format of a SOPS-encrypted file recognised by Flux's marker bytes, if any.
pub(crate) fn detect_encrypted_format(b: &[u8]) -> Option<Format> {
    if contains(b, b"\"mac\": \"ENC[") {
        Some(Format::Json)
    } else if contains(b, b"sops_mac=ENC[") {
        Some(Format::Dotenv)
    } else if contains(b, b"mac: ENC[") {
        Some(Format::Yaml)
    } else if contains(b, b"[sops]") {
        Some(Format::Ini)
    } else {
        None
    }
}

/// A dotenv line: a comment, or the key of an entry in the value mapping.
enum DotenvLine {
    Comment(String),
    Entry(String),
}

/// Decrypts a SOPS-encrypted file read as `input` and emits the plaintext as `output`
/// (as `sops --decrypt --input-type ... --output-type ...`, with SOPS's JSON and dotenv
/// layout; YAML is emitted with two-space indentation).
pub fn decrypt_file(
    data: &[u8],
    input: Format,
    output: Format,
    identities: &[Identity],
) -> Result<Vec<u8>, SopsError> {
    decrypt_file_with(data, input, output, identities, DecryptOptions::STRICT)
}

/// [`decrypt_file`] with options (Flux decrypts `Secret` data entries and `secretGenerator`
/// sources without verifying the MAC: [`DecryptOptions::FLUX`]).
pub fn decrypt_file_with(
    data: &[u8],
    input: Format,
    output: Format,
    identities: &[Identity],
    opts: DecryptOptions,
) -> Result<Vec<u8>, SopsError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| SopsError::Format("the encrypted file is not UTF-8".into()))?;
    let mut dotenv_lines = None;
    let mut branches = match input {
        Format::Yaml => {
            let mut out = Vec::new();
            for doc in serde_yaml::Deserializer::from_str(text) {
                let v = Value::deserialize_doc(doc)?;
                match v {
                    Value::Mapping(_) => out.push(v),
                    Value::Null => {}
                    _ => {
                        return Err(SopsError::Format(
                            "failed to load encrypted yaml data: YAML documents that are not mappings are not supported".into(),
                        ));
                    }
                }
            }
            out
        }
        Format::Json | Format::Binary => {
            let v: Value = serde_yaml::from_str(text).map_err(|e| {
                SopsError::Format(format!("failed to load encrypted json data: {e}"))
            })?;
            if !v.is_mapping() {
                return Err(SopsError::Format(
                    "failed to load encrypted json data: not a JSON object".into(),
                ));
            }
            vec![v]
        }
        Format::Dotenv => {
            let (lines, map) = parse_dotenv(text)?;
            dotenv_lines = Some(lines);
            vec![Value::Mapping(map)]
        }
        Format::Ini => {
            return Err(SopsError::Format(
                "SOPS-encrypted INI files are not supported".into(),
            ));
        }
    };
    let meta = if input == Format::Dotenv {
        let Some(Value::Mapping(m)) = branches.first_mut() else {
            return Err(SopsError::Metadata("no sops metadata found".into()));
        };
        let mut flat = Vec::new();
        let keys: Vec<Value> = m
            .keys()
            .filter(|k| k.as_str().is_some_and(|s| s.starts_with("sops_")))
            .cloned()
            .collect();
        for k in keys {
            let v = m.remove(&k).unwrap_or(Value::Null);
            let name = k.as_str().unwrap_or_default()["sops_".len()..].to_string();
            flat.push((name, v));
        }
        if let Some(lines) = &mut dotenv_lines {
            lines.retain(|l| !matches!(l, DotenvLine::Entry(k) if k.starts_with("sops_")));
        }
        if flat.is_empty() {
            return Err(SopsError::Metadata("no sops metadata found".into()));
        }
        parse_metadata(&unflatten(flat)?)?
    } else {
        take_metadata(&mut branches)?
    };
    let key = decrypt_tree(&mut branches, &meta, identities, opts)?;
    match output {
        Format::Yaml => {
            let mut out = String::new();
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(
                    &serde_yaml::to_string(b)
                        .map_err(|e| SopsError::Format(format!("Error marshaling to YAML: {e}")))?,
                );
            }
            Ok(out.into_bytes())
        }
        Format::Json => {
            let b = branches
                .first()
                .cloned()
                .unwrap_or(Value::Mapping(Mapping::new()));
            let mut out = emit::go_json(&b);
            out.push('\n');
            Ok(out.into_bytes())
        }
        Format::Dotenv => {
            let Some(Value::Mapping(m)) = branches.first() else {
                return Ok(Vec::new());
            };
            let mut out = String::new();
            let write_entry = |out: &mut String, k: &str, v: &Value| -> Result<(), SopsError> {
                let value = match v {
                    Value::String(s) => s.replace('\n', "\\n"),
                    Value::Mapping(_) | Value::Sequence(_) => {
                        return Err(SopsError::Format(format!(
                            "cannot use complex value in dotenv file; offending key {k}"
                        )));
                    }
                    other => emit::val_to_string(other),
                };
                out.push_str(&format!("{k}={value}\n"));
                Ok(())
            };
            match &dotenv_lines {
                Some(lines) => {
                    for l in lines {
                        match l {
                            DotenvLine::Comment(c) => {
                                let c = crate::decrypt_comment(c, &key);
                                out.push_str(&format!("#{c}\n"));
                            }
                            DotenvLine::Entry(k) => {
                                if let Some(v) = m.get(k.as_str()) {
                                    write_entry(&mut out, k, v)?;
                                }
                            }
                        }
                    }
                }
                None => {
                    for (k, v) in m {
                        let k = k
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| emit::val_to_string(k));
                        write_entry(&mut out, &k, v)?;
                    }
                }
            }
            Ok(out.into_bytes())
        }
        Format::Binary => {
            if branches.len() != 1 {
                return Err(SopsError::Format(
                    "error emitting binary store: there must be exactly one tree branch".into(),
                ));
            }
            match branches[0].get("data") {
                Some(Value::String(s)) => Ok(s.clone().into_bytes()),
                Some(_) => Err(SopsError::Format(
                    "error emitting binary store: 'data' key in tree does not have a string value"
                        .into(),
                )),
                None => Err(SopsError::Format(
                    "error emitting binary store: no binary data found in tree".into(),
                )),
            }
        }
        Format::Ini => Err(SopsError::Format(
            "emitting INI files is not supported".into(),
        )),
    }
}

trait DeserializeDoc {
    fn deserialize_doc(doc: serde_yaml::Deserializer<'_>) -> Result<Value, SopsError>;
}

impl DeserializeDoc for Value {
    fn deserialize_doc(doc: serde_yaml::Deserializer<'_>) -> Result<Value, SopsError> {
        serde::Deserialize::deserialize(doc)
            .map_err(|e| SopsError::Format(format!("failed to load encrypted yaml data: {e}")))
    }
}

/// SOPS's dotenv `LoadPlainFile`: `KEY=value` lines (`\n` in a value is a newline) and
/// `#` comments; empty lines are skipped.
fn parse_dotenv(text: &str) -> Result<(Vec<DotenvLine>, Mapping), SopsError> {
    let mut lines = Vec::new();
    let mut map = Mapping::new();
    for line in text.split('\n') {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            lines.push(DotenvLine::Comment(c.to_string()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(SopsError::Format(
                "failed to load encrypted dotenv data: invalid dotenv input line".into(),
            ));
        };
        lines.push(DotenvLine::Entry(k.to_string()));
        map.insert(
            Value::String(k.into()),
            Value::String(v.replace("\\n", "\n")),
        );
    }
    Ok((lines, map))
}

/// SOPS's `unflattenTreeBranch` for flattened metadata keys (`age__list_0__map_enc`).
fn unflatten(flat: Vec<(String, Value)>) -> Result<Value, SopsError> {
    #[derive(Debug)]
    enum Tok {
        Map(String),
        List(usize),
    }
    fn split_at_sep(a: &str) -> (&str, &str) {
        let end = [a.find("__map_"), a.find("__list_")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(a.len());
        a.split_at(end)
    }
    fn tokenize(s: &str) -> Result<Vec<Tok>, SopsError> {
        let (first, mut rest) = split_at_sep(s);
        let mut toks = vec![Tok::Map(first.to_string())];
        while !rest.is_empty() {
            if let Some(a) = rest.strip_prefix("__map_") {
                let (seg, r) = split_at_sep(a);
                toks.push(Tok::Map(seg.to_string()));
                rest = r;
            } else if let Some(a) = rest.strip_prefix("__list_") {
                let (seg, r) = split_at_sep(a);
                let n = seg.parse().map_err(|_| {
                    SopsError::Metadata(format!("malformed flattened metadata key '{s}'"))
                })?;
                toks.push(Tok::List(n));
                rest = r;
            } else {
                break;
            }
        }
        Ok(toks)
    }
    fn place(node: &mut Value, toks: &[Tok], value: Value) {
        let Some((t, rest)) = toks.split_first() else {
            *node = value;
            return;
        };
        match t {
            Tok::Map(k) => {
                if !node.is_mapping() {
                    *node = Value::Mapping(Mapping::new());
                }
                if let Value::Mapping(m) = node {
                    let key = Value::String(k.clone());
                    if !m.contains_key(&key) {
                        m.insert(key.clone(), Value::Null);
                    }
                    if let Some(child) = m.get_mut(&key) {
                        place(child, rest, value);
                    }
                }
            }
            Tok::List(i) => {
                if !node.is_sequence() {
                    *node = Value::Sequence(Vec::new());
                }
                if let Value::Sequence(s) = node {
                    while s.len() <= *i {
                        s.push(Value::Null);
                    }
                    place(&mut s[*i], rest, value);
                }
            }
        }
    }
    let mut root = Value::Mapping(Mapping::new());
    for (k, v) in flat {
        let toks = tokenize(&k)?;
        place(&mut root, &toks, v);
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unflattens_dotenv_metadata() {
        let v = unflatten(vec![
            (
                "age__list_0__map_recipient".into(),
                Value::String("age1x".into()),
            ),
            ("age__list_0__map_enc".into(), Value::String("E".into())),
            ("mac".into(), Value::String("M".into())),
            (
                "key_groups__list_1__map_age__list_0__map_enc".into(),
                Value::String("K".into()),
            ),
        ])
        .unwrap();
        let want: Value = serde_yaml::from_str(
            "age: [{recipient: age1x, enc: E}]\nmac: M\nkey_groups: [null, {age: [{enc: K}]}]\n",
        )
        .unwrap();
        assert_eq!(v, want);
    }

    #[test]
    fn formats_for_keys() {
        assert_eq!(format_for_key("app.env"), Format::Dotenv);
        assert_eq!(format_for_key("a.yml"), Format::Yaml);
        assert_eq!(format_for_key(".dockerconfigjson"), Format::Json);
        assert_eq!(format_for_key("token"), Format::Binary);
    }
}
