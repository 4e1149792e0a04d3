//! Legacy `vars`: `$(NAME)` references replaced with a field of a resource.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::fieldpath;
use crate::fieldspec::{self, Create};
use crate::kustomization::{FieldSpec, Var};
use crate::resid::{Gvk, ResId};
use crate::resource::Resource;

type R<T> = Result<T, String>;

pub fn var_gvk(v: &Var) -> Gvk {
    if !v.objref.api_version.is_empty() {
        Gvk::from_api_version(&v.objref.api_version, &v.objref.kind)
    } else {
        Gvk::new(&v.objref.group, &v.objref.version, &v.objref.kind)
    }
}

/// kustomize's ResAccumulator.MergeVars.
pub fn merge_vars(res: &mut [Resource], all: &mut Vec<Var>, incoming: &[Var]) -> R<()> {
    for v in incoming {
        let target = ResId::new(var_gvk(v), &v.objref.name, &v.objref.namespace);
        let strict = !target.namespace.is_empty() || target.cluster_scoped;
        let matched: Vec<usize> = res
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty_obj())
            .filter(|(_, r)| {
                r.all_ids().iter().any(|id| {
                    if strict {
                        target.equals(id)
                    } else {
                        target.gvkn_equals(id)
                    }
                })
            })
            .map(|(i, _)| i)
            .collect();
        if matched.len() > 1 {
            return Err(format!(
                "found {} resId matches for var {} (unable to disambiguate)",
                matched.len(),
                v.name
            ));
        }
        if let Some(&i) = matched.first() {
            res[i].ref_var_names.push(v.name.clone());
        }
    }
    merge_var_set(all, incoming)
}

pub fn merge_var_set(all: &mut Vec<Var>, incoming: &[Var]) -> R<()> {
    for v in incoming {
        if all.iter().any(|x| x.name == v.name) {
            return Err(format!("var '{}' already encountered", v.name));
        }
        let mut v = v.clone();
        if v.fieldref.field_path.is_empty() {
            v.fieldref.field_path = "metadata.name".into();
        }
        all.push(v);
    }
    Ok(())
}

/// Resolves all vars and substitutes them in the var-reference fields.
pub fn resolve(res: &mut [Resource], vars: &[Var], fss: &[FieldSpec]) -> R<()> {
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for v in vars {
        let mut found = None;
        'outer: for r in res.iter() {
            for n in &r.ref_var_names {
                if n == &v.name {
                    let fp = if v.fieldref.field_path.is_empty() {
                        "metadata.name"
                    } else {
                        &v.fieldref.field_path
                    };
                    let parts = fieldpath::split(fp);
                    match fieldpath::lookup(&r.obj, &parts) {
                        Some(val) => found = Some(val.clone()),
                        None => {
                            return Err(format!(
                                "field specified in var '{}' not found in corresponding resource",
                                v.name
                            ));
                        }
                    }
                    break 'outer;
                }
            }
        }
        match found {
            Some(val) => {
                map.insert(v.name.clone(), val);
            }
            None => {
                return Err(format!(
                    "var '{}' cannot be mapped to a field in the set of known resources",
                    v.name
                ));
            }
        }
    }
    if map.is_empty() {
        return Ok(());
    }
    for r in res.iter_mut() {
        for fs in fss {
            let mut set = |node: &mut Value| set_node(node, &map);
            fieldspec::apply(&mut r.obj, fs, Create::No, &mut set)?;
        }
    }
    Ok(())
}

fn primitive_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// kustomize's DoReplacements: a string that is exactly `$(VAR)` takes the
/// var's typed value; otherwise references are substituted as text.
fn do_replacements(input: &str, map: &BTreeMap<String, Value>) -> Value {
    let b = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let rb = rest.as_bytes();
            let (read, is_var, advance) = match rb[0] {
                b'$' => ("$".to_string(), false, 1),
                b'(' => match rest[1..].find(')') {
                    Some(i) => (rest[1..1 + i].to_string(), true, i + 2),
                    None => ("$(".to_string(), false, 1),
                },
                _ => {
                    let ch = rest.chars().next().unwrap_or(' ');
                    (format!("${ch}"), false, ch.len_utf8())
                }
            };
            if is_var {
                let mapped = map
                    .get(&read)
                    .and_then(|v| primitive_text(v).map(|t| (t, v.clone())));
                if input == format!("$({read})") {
                    return match mapped {
                        Some((_, v)) => v,
                        None => Value::String(input.to_string()),
                    };
                }
                match mapped {
                    Some((t, _)) => out.push_str(&t),
                    None => out.push_str(&format!("$({read})")),
                }
            } else {
                out.push_str(&read);
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint <= input.len() {
        out.push_str(&input[checkpoint.min(input.len())..]);
    }
    Value::String(out)
}

fn set_node(node: &mut Value, map: &BTreeMap<String, Value>) -> R<()> {
    match node {
        Value::String(s) => {
            let nv = do_replacements(s, map);
            *node = nv;
            Ok(())
        }
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                if !k.is_string() {
                    return Err(format!("invalid map key: value='{k:?}'"));
                }
                if let Value::String(s) = v {
                    let nv = do_replacements(s, map);
                    *v = nv;
                }
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for it in items.iter_mut() {
                match it {
                    Value::String(s) => {
                        let nv = do_replacements(s, map);
                        *it = nv;
                    }
                    _ => return Err("invalid value type expect a string".into()),
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
