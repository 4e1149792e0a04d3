//! `replacements`: copy a field of one resource into fields of others.

use serde_yaml::Value;

use crate::fieldpath::{self, CreateAs};
use crate::resid::{Gvk, ResId};
use crate::resource::Resource;
use crate::yaml::{self as y, scalar_str};

type R<T> = Result<T, String>;

fn s(v: &Value, k: &str) -> String {
    y::get(v, k).and_then(scalar_str).unwrap_or_default()
}

struct IdSel {
    gvk: Gvk,
    name: String,
    namespace: String,
}

fn id_sel(v: &Value) -> IdSel {
    IdSel {
        gvk: Gvk::new(&s(v, "group"), &s(v, "version"), &s(v, "kind")),
        name: s(v, "name"),
        namespace: s(v, "namespace"),
    }
}

impl IdSel {
    fn is_empty(&self) -> bool {
        self.gvk == Gvk::default() && self.name.is_empty() && self.namespace.is_empty()
    }
    fn selects(&self, id: &ResId) -> bool {
        (self.name.is_empty() || self.name == id.name)
            && (self.namespace.is_empty() || {
                let sel = ResId::new(Gvk::default(), "", &self.namespace);
                sel.ns_equals(id)
            })
            && id.gvk.is_selected(&self.gvk)
    }
}

const KNOWN_SOURCE: &[&str] = &[
    "group",
    "version",
    "kind",
    "name",
    "namespace",
    "fieldPath",
    "options",
];
const KNOWN_REPL: &[&str] = &["source", "targets", "sourceValue", "path"];

fn check_keys(v: &Value, known: &[&str], what: &str) -> R<()> {
    if let Value::Mapping(m) = v {
        for k in m.keys() {
            let k = scalar_str(k).unwrap_or_default();
            if !known.contains(&k.as_str()) {
                return Err(format!("unknown field \"{k}\" in {what}"));
            }
        }
    }
    Ok(())
}

fn ids_of(r: &Resource) -> Vec<ResId> {
    let mut v = vec![r.cur_id()];
    v.extend(r.prev_ids());
    v
}

fn options(v: Option<&Value>) -> (String, i64, bool, String) {
    match v {
        Some(o) => (
            s(o, "delimiter"),
            y::get(o, "index").and_then(|x| x.as_i64()).unwrap_or(0),
            y::get(o, "create")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            s(o, "encoding"),
        ),
        None => (String::new(), 0, false, String::new()),
    }
}

fn get_replacement(res: &[Resource], r: &Value) -> R<Value> {
    let sv = y::get(r, "sourceValue");
    let src = y::get(r, "source");
    if sv.is_some() && src.is_some() {
        return Err("value and resource selectors are mutually exclusive".into());
    }
    if let Some(v) = sv {
        return Ok(Value::String(scalar_str(v).unwrap_or_default()));
    }
    let src = src.ok_or("replacements must specify a source and at least one target")?;
    check_keys(src, KNOWN_SOURCE, "replacement source")?;
    let sel = id_sel(src);
    let mut matches = Vec::new();
    for r in res {
        if ids_of(r).iter().any(|id| sel.selects(id)) {
            if !matches.is_empty() {
                return Err(format!(
                    "multiple matches for selector {}",
                    selector_string(&sel)
                ));
            }
            matches.push(r);
        }
    }
    let Some(m) = matches.first() else {
        return Err(format!("nothing selected by {}", selector_string(&sel)));
    };
    let mut fp = s(src, "fieldPath");
    if fp.is_empty() {
        fp = "metadata.name".into();
    }
    let parts = fieldpath::split(&fp);
    let v = fieldpath::lookup(&m.obj, &parts)
        .filter(|v| !is_nil_or_empty(v))
        .ok_or_else(|| {
            format!(
                "fieldPath `{fp}` is missing for replacement source {}",
                selector_string(&sel)
            )
        })?;
    let (delim, index, _, _) = options(y::get(src, "options"));
    if delim.is_empty() {
        return Ok(v.clone());
    }
    if v.is_mapping() || v.is_sequence() {
        return Err("delimiter option can only be used with scalar nodes".into());
    }
    let text = scalar_str(v).unwrap_or_default();
    let parts: Vec<&str> = text.split(delim.as_str()).collect();
    if index < 0 || index as usize >= parts.len() {
        return Err(format!(
            "options.index {index} is out of bounds for value {text}"
        ));
    }
    Ok(retyped(v, parts[index as usize]))
}

fn is_nil_or_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Mapping(m) => m.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        _ => false,
    }
}

fn selector_string(s: &IdSel) -> String {
    ResId {
        gvk: s.gvk.clone(),
        name: s.name.clone(),
        namespace: s.namespace.clone(),
        cluster_scoped: false,
    }
    .to_string()
}

/// Text `t` with the YAML type of `like` (kyaml keeps the node's tag and
/// only swaps its text).
fn retyped(like: &Value, t: &str) -> Value {
    match like {
        Value::String(_) => Value::String(t.to_string()),
        Value::Number(_) => {
            if let Ok(i) = t.parse::<i64>() {
                Value::Number(i.into())
            } else if let Ok(f) = t.parse::<f64>() {
                Value::Number(f.into())
            } else {
                Value::String(t.to_string())
            }
        }
        Value::Bool(_) => match t {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(t.to_string()),
        },
        _ => serde_yaml::from_str::<Value>(t)
            .ok()
            .filter(|v| !v.is_mapping() && !v.is_sequence())
            .unwrap_or_else(|| Value::String(t.to_string())),
    }
}

fn set_field(target: &mut Value, value: &Value, delim: &str, index: i64) -> R<()> {
    let mut value = value.clone();
    if !delim.is_empty() {
        if target.is_mapping() || target.is_sequence() {
            return Err("delimiter option can only be used with scalar nodes".into());
        }
        let cur = scalar_str(target).unwrap_or_default();
        let mut tv: Vec<String> = cur.split(delim).map(String::from).collect();
        let v = scalar_str(&value).unwrap_or_default();
        if index < 0 {
            tv.insert(0, v);
        } else if index as usize >= tv.len() {
            tv.push(v);
        } else {
            tv[index as usize] = v;
        }
        value = Value::String(tv.join(delim));
    }
    let target_scalar = !(target.is_mapping() || target.is_sequence());
    let value_scalar = !(value.is_mapping() || value.is_sequence());
    if target_scalar && value_scalar {
        let text = scalar_str(&value).unwrap_or_default();
        *target = if target.is_null() {
            value.clone()
        } else {
            retyped(target, &text)
        };
    } else {
        *target = value;
    }
    Ok(())
}

fn selector_fields(v: &Value) -> (IdSel, String, String) {
    (id_sel(v), s(v, "labelSelector"), s(v, "annotationSelector"))
}

fn apply_targets(res: &mut [Resource], value: &Value, targets: &[Value]) -> R<()> {
    for t in targets {
        let Some(select) = y::get(t, "select") else {
            return Err("target must specify resources to select".into());
        };
        let (sel, ls, ans) = selector_fields(select);
        let rejects: Vec<(IdSel, String, String)> = match y::get(t, "reject") {
            Some(Value::Sequence(rs)) => rs.iter().map(selector_fields).collect(),
            _ => vec![],
        };
        let mut fps: Vec<String> = match y::get(t, "fieldPaths") {
            Some(Value::Sequence(f)) => f.iter().filter_map(scalar_str).collect(),
            _ => vec![],
        };
        if fps.is_empty() {
            fps.push("metadata.name".into());
        }
        let (delim, index, create, _) = options(y::get(t, "options"));
        for r in res.iter_mut() {
            if !r.matches_label_selector(&ls)? || !r.matches_annotation_selector(&ans)? {
                continue;
            }
            let mut rejected_by_labels = false;
            for (_, rls, rans) in &rejects {
                if rls.is_empty() && rans.is_empty() {
                    continue;
                }
                if r.matches_label_selector(rls)? && r.matches_annotation_selector(rans)? {
                    rejected_by_labels = true;
                }
            }
            if rejected_by_labels {
                continue;
            }
            let ids = ids_of(r);
            let reject_id = rejects
                .iter()
                .any(|(rs, _, _)| !rs.is_empty() && ids.iter().any(|id| rs.selects(id)));
            if !ids.iter().any(|id| sel.selects(id)) || reject_id {
                continue;
            }
            for fp in &fps {
                let parts = fieldpath::split(fp);
                let ck = if create {
                    match value {
                        Value::Mapping(_) => CreateAs::Map,
                        Value::Sequence(_) => CreateAs::Seq,
                        _ => CreateAs::Scalar,
                    }
                } else {
                    CreateAs::No
                };
                let mut setter = |n: &mut Value| set_field(n, value, &delim, index);
                let n = fieldpath::visit(&mut r.obj, &parts, ck, &mut setter)?;
                if n == 0 {
                    return Err(if create {
                        format!("unable to find or create field \"{fp}\" in replacement target")
                    } else {
                        format!("unable to find field \"{fp}\" in replacement target")
                    });
                }
            }
        }
    }
    Ok(())
}

/// Applies a list of replacements in order.
pub fn apply(res: &mut [Resource], replacements: &[Value]) -> R<()> {
    for r in replacements {
        check_keys(r, KNOWN_REPL, "replacement")?;
        let targets = match y::get(r, "targets") {
            Some(Value::Sequence(t)) => t.clone(),
            _ => {
                return Err("replacements must specify a source and at least one target".into());
            }
        };
        if y::get(r, "source").is_none() && y::get(r, "sourceValue").is_none() {
            return Err("replacements must specify a source and at least one target".into());
        }
        let value = get_replacement(res, r)?;
        apply_targets(res, &value, &targets)?;
    }
    Ok(())
}
