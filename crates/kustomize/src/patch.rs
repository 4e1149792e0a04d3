//! Patches: strategic merge (kyaml merge2 semantics with the schema table)
//! and JSON 6902, plus target selection.

use serde_yaml::{Mapping, Value};

use crate::kustomization::Selector;
use crate::openapi::{Cursor, Schemas};
use crate::resource::Resource;
use crate::yaml::{self as y, scalar_str};

type R<T> = Result<T, String>;

// ------------------------------------------------------------ selection

fn anchored(p: &str) -> R<Option<regex::Regex>> {
    if p.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&format!("^(?:{p})$"))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Indices of the resources a patch target selects (kustomize's ResMap.Select).
pub fn select(res: &[Resource], s: &Selector) -> R<Vec<usize>> {
    let g = anchored(&s.group)?;
    let v = anchored(&s.version)?;
    let k = anchored(&s.kind)?;
    let n = anchored(&s.name)?;
    let ns = anchored(&s.namespace)?;
    let m = |re: &Option<regex::Regex>, x: &str| re.as_ref().is_none_or(|r| r.is_match(x));
    let mut out = Vec::new();
    for (i, r) in res.iter().enumerate() {
        let cur = r.cur_id();
        let org = r.org_id();
        if !m(&ns, org.effective_namespace()) && !m(&ns, cur.effective_namespace()) {
            continue;
        }
        if !m(&n, &org.name) && !m(&n, &cur.name) {
            continue;
        }
        let gvk = r.gvk();
        if !m(&g, &gvk.group) || !m(&v, &gvk.version) || !m(&k, &gvk.kind) {
            continue;
        }
        if !r.matches_label_selector(&s.label_selector)? {
            continue;
        }
        if !r.matches_annotation_selector(&s.annotation_selector)? {
            continue;
        }
        out.push(i);
    }
    Ok(out)
}

// ------------------------------------------------------ strategic merge

fn directive(v: &Value) -> R<Option<String>> {
    match v {
        Value::Mapping(m) => match m.get("$patch") {
            None => Ok(None),
            Some(d) => {
                let d = scalar_str(d).unwrap_or_default();
                match d.as_str() {
                    "delete" | "replace" | "merge" => Ok(Some(d)),
                    other => Err(format!("unknown patch strategy: {other}")),
                }
            }
        },
        Value::Sequence(items) => {
            for it in items.iter().filter(|i| is_directive_only(i)) {
                if let Some(d) = directive(it)?
                    && (d == "replace" || d == "delete")
                {
                    return Ok(Some(d));
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, val) in m {
                let ks = k.as_str().unwrap_or("");
                if ks.starts_with('$') {
                    continue;
                }
                if val.is_null() {
                    continue;
                }
                out.insert(k.clone(), strip_directives(val));
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .filter(|i| !matches!(directive(i), Ok(Some(_))) || !is_directive_only(i))
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_directive_only(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => m
            .keys()
            .all(|k| k.as_str().is_some_and(|s| s.starts_with('$'))),
        _ => false,
    }
}

/// Merges `patch` into `dest`. `None` means the node is cleared.
pub fn merge(
    dest: Option<&Value>,
    patch: Option<&Value>,
    schema: Option<&Cursor>,
) -> R<Option<Value>> {
    let dest = dest.filter(|d| !d.is_null());
    let Some(patch) = patch else {
        return Ok(dest.map(|d| walk_dest_only(d, schema)));
    };
    if patch.is_null() {
        return Ok(None);
    }
    let Some(dest) = dest else {
        // nothing to merge into: the patch (less directives and nulls)
        if let Some(d) = directive(patch)?
            && d == "delete"
        {
            return Ok(None);
        }
        return Ok(Some(strip_directives(patch)));
    };
    match dest {
        Value::Mapping(dm) => {
            let Value::Mapping(pm) = patch else {
                return Err(format!(
                    "wrong node kind: expected MappingNode but got {}",
                    kind_name(patch)
                ));
            };
            match directive(patch)?.as_deref() {
                Some("delete") => return Ok(None),
                Some("replace") => return Ok(Some(strip_directives(patch))),
                _ => {}
            }
            let mut out = Mapping::new();
            for (k, dv) in dm {
                if pm.contains_key(k) {
                    out.insert(k.clone(), dv.clone());
                    continue;
                }
                let ks = scalar_str(k).unwrap_or_default();
                out.insert(k.clone(), dest_only_field(dv, &ks, schema));
            }
            for (k, pv) in pm {
                let ks = scalar_str(k).unwrap_or_default();
                if ks.starts_with('$') {
                    continue;
                }
                let field = schema.and_then(|c| c.field(&ks));
                let child_cursor = field
                    .as_ref()
                    .and_then(|f| f.target.as_ref().map(|t| schema.map(|c| c.at(t))))
                    .flatten();
                let merged = if let (Some(f), Value::Sequence(_)) = (&field, pv) {
                    merge_list(dm.get(k), pv, f, child_cursor.as_ref())?
                } else if field.as_ref().is_some_and(|f| f.is_map) {
                    // map of typed values
                    merge_map_of(dm.get(k), pv, child_cursor.as_ref())?
                } else {
                    merge(dm.get(k), Some(pv), child_cursor.as_ref())?
                };
                match merged {
                    Some(v) => {
                        out.insert(k.clone(), v);
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
            Ok(Some(Value::Mapping(out)))
        }
        Value::Sequence(_) => {
            if !patch.is_sequence() {
                return Err(format!(
                    "wrong node kind: expected SequenceNode but got {}",
                    kind_name(patch)
                ));
            }
            Ok(Some(strip_directives(patch)))
        }
        _ => {
            if patch.is_mapping() || patch.is_sequence() {
                return Err(format!(
                    "wrong node kind: expected ScalarNode but got {}",
                    kind_name(patch)
                ));
            }
            Ok(Some(patch.clone()))
        }
    }
}

/// kyaml walks fields only the destination has too: associative lists
/// there get their duplicate keys folded (the last element wins).
fn walk_dest_only(v: &Value, schema: Option<&Cursor>) -> Value {
    match v {
        Value::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, dv) in m {
                let ks = scalar_str(k).unwrap_or_default();
                out.insert(k.clone(), dest_only_field(dv, &ks, schema));
            }
            Value::Mapping(out)
        }
        other => other.clone(),
    }
}

fn dest_only_field(dv: &Value, key: &str, schema: Option<&Cursor>) -> Value {
    let Some(c) = schema else {
        return dv.clone();
    };
    let Some(field) = c.field(key) else {
        return dv.clone();
    };
    let child = field.target.as_ref().map(|t| c.at(t));
    match dv {
        Value::Sequence(items) => {
            let associative = field.strategy.split(',').any(|s| s == "merge");
            if !associative || field.keys.is_empty() {
                return Value::Sequence(
                    items
                        .iter()
                        .map(|i| walk_dest_only(i, child.as_ref()))
                        .collect(),
                );
            }
            let mut out: Vec<(Vec<String>, Value)> = Vec::new();
            let mut loose = Vec::new();
            for it in items {
                let kv = if it.is_mapping() {
                    key_values(it, &field.keys)
                } else {
                    vec![]
                };
                if kv.iter().all(|s| s.is_empty()) {
                    loose.push(it.clone());
                    continue;
                }
                let w = walk_dest_only(it, child.as_ref());
                if let Some(pos) = out.iter().position(|(o, _)| values_match(o, &kv)) {
                    out[pos].1 = w;
                } else {
                    out.push((kv, w));
                }
            }
            let mut v: Vec<Value> = out.into_iter().map(|(_, v)| v).collect();
            v.extend(loose);
            Value::Sequence(v)
        }
        Value::Mapping(_) if field.is_map => {
            if let Value::Mapping(m) = dv {
                let mut o = Mapping::new();
                for (k, v) in m {
                    o.insert(k.clone(), walk_dest_only(v, child.as_ref()));
                }
                Value::Mapping(o)
            } else {
                dv.clone()
            }
        }
        Value::Mapping(_) => walk_dest_only(dv, child.as_ref()),
        other => other.clone(),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Mapping(_) => "MappingNode",
        Value::Sequence(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

fn merge_map_of(dest: Option<&Value>, patch: &Value, elem: Option<&Cursor>) -> R<Option<Value>> {
    let (Some(Value::Mapping(dm)), Value::Mapping(pm)) = (dest, patch) else {
        return merge(dest, Some(patch), None);
    };
    match directive(patch)?.as_deref() {
        Some("delete") => return Ok(None),
        Some("replace") => return Ok(Some(strip_directives(patch))),
        _ => {}
    }
    let mut out = dm.clone();
    for (k, pv) in pm {
        if k.as_str().is_some_and(|s| s.starts_with('$')) {
            continue;
        }
        match merge(dm.get(k), Some(pv), elem)? {
            Some(v) => {
                out.insert(k.clone(), v);
            }
            None => {
                out.remove(k);
            }
        }
    }
    Ok(Some(Value::Mapping(out)))
}

fn key_values(elem: &Value, keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| y::get(elem, k).and_then(scalar_str).unwrap_or_default())
        .collect()
}

fn values_match(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut common = false;
    for (x, z) in a.iter().zip(b) {
        if x == z {
            common = true;
            continue;
        }
        if !x.is_empty() && !z.is_empty() {
            return false;
        }
    }
    common
}

fn merge_list(
    dest: Option<&Value>,
    patch: &Value,
    field: &crate::openapi::Field,
    elem: Option<&Cursor>,
) -> R<Option<Value>> {
    let associative = field.strategy.split(',').any(|s| s == "merge");
    let dest = dest.filter(|d| !d.is_null());
    let Some(Value::Sequence(ditems)) = dest else {
        return merge(dest, Some(patch), None);
    };
    let Value::Sequence(pitems) = patch else {
        return merge(dest, Some(patch), None);
    };
    if !associative {
        return Ok(Some(strip_directives(patch)));
    }
    match directive(patch)?.as_deref() {
        Some("delete") => return Ok(None),
        Some("replace") => return Ok(Some(strip_directives(patch))),
        _ => {}
    }
    let keys = &field.keys;
    if keys.is_empty() {
        // primitive list with merge strategy: union, patch values first
        let mut out: Vec<Value> = Vec::new();
        for v in pitems.iter().chain(ditems.iter()) {
            if v.is_mapping() {
                continue;
            }
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        return Ok(Some(Value::Sequence(out)));
    }
    // element keys, patch first then dest
    let mut order: Vec<Vec<String>> = Vec::new();
    for it in pitems.iter().chain(ditems.iter()) {
        if !it.is_mapping() {
            continue;
        }
        let kv = key_values(it, keys);
        if kv.iter().all(|s| s.is_empty()) {
            continue;
        }
        if let Some(pos) = order.iter().position(|o| values_match(o, &kv)) {
            // merge the key values (kyaml's mergeValues)
            let merged: Vec<String> = order[pos]
                .iter()
                .zip(&kv)
                .map(|(a, b)| if a.is_empty() { b.clone() } else { a.clone() })
                .collect();
            order[pos] = merged;
            continue;
        }
        order.push(kv);
    }
    let mut out: Vec<Value> = Vec::new();
    for kv in &order {
        let d = ditems
            .iter()
            .find(|it| it.is_mapping() && values_match(&key_values(it, keys), kv));
        let p = pitems
            .iter()
            .find(|it| it.is_mapping() && values_match(&key_values(it, keys), kv));
        let merged = match (d, p) {
            (Some(d), Some(p)) => {
                if directive(p)?.as_deref() == Some("delete") {
                    None
                } else {
                    merge(Some(d), Some(p), elem)?
                }
            }
            (Some(d), None) => Some(walk_dest_only(d, elem)),
            (None, Some(p)) => merge(None, Some(p), elem)?,
            (None, None) => None,
        };
        if let Some(mut m) = merged {
            if matches!(&m, Value::Mapping(mm) if mm.is_empty()) {
                continue;
            }
            // make sure the key fields are present
            if let Value::Mapping(mm) = &mut m {
                for (k, v) in keys.iter().zip(kv) {
                    if !v.is_empty() && !mm.contains_key(k.as_str()) {
                        mm.insert(y::key(k), Value::String(v.clone()));
                    }
                }
            }
            out.push(m);
        }
    }
    // elements without any key value are kept (dest first)
    for it in ditems.iter() {
        if !it.is_mapping() || key_values(it, keys).iter().all(|s| s.is_empty()) {
            out.push(it.clone());
        }
    }
    for it in pitems.iter() {
        if it.is_mapping()
            && key_values(it, keys).iter().all(|s| s.is_empty())
            && !is_directive_only(it)
        {
            out.push(strip_directives(it));
        }
    }
    Ok(Some(Value::Sequence(out)))
}

/// Applies a strategic-merge patch to a resource (kustomize's ApplySmPatch).
pub fn apply_sm_patch(target: &mut Resource, patch: &Resource, schemas: &Schemas) -> R<()> {
    let (n, ns, k) = (target.name(), target.namespace(), target.kind());
    if patch.allow_name_change || patch.allow_kind_change {
        target.store_previous_id();
    }
    // the patch takes the target's apiVersion (kustomize sets the patch's gvk)
    let mut p = patch.obj.clone();
    if let Value::Mapping(m) = &mut p {
        m.insert(y::key("apiVersion"), Value::String(target.api_version()));
    }
    let cursor = schemas
        .root(&target.api_version(), &target.kind())
        .map(|(t, d)| Cursor { table: t, def: d });
    let merged = merge(Some(&target.obj), Some(&p), cursor.as_ref())?;
    match merged {
        None => {
            target.obj = Value::Mapping(Mapping::new());
            return Ok(());
        }
        Some(v) => target.obj = v,
    }
    if target.is_empty_obj() {
        return Ok(());
    }
    if !patch.allow_kind_change {
        target.set_kind(&k);
    }
    if !patch.allow_name_change {
        target.set_name(&n);
    }
    target.set_namespace(&ns);
    Ok(())
}

// ------------------------------------------------------------ JSON 6902

/// Parses JSON-patch operations (JSON or YAML).
pub fn parse_json_patch(text: &str) -> R<Vec<Value>> {
    if text.trim().is_empty() {
        return Err("empty json patch operations".into());
    }
    let v: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    match v {
        Value::Sequence(ops) => {
            for op in &ops {
                let o = y::get(op, "op").and_then(scalar_str).unwrap_or_default();
                if !matches!(
                    o.as_str(),
                    "add" | "remove" | "replace" | "move" | "copy" | "test"
                ) {
                    return Err(format!("Unexpected kind: {o}"));
                }
                if y::get(op, "path").is_none() {
                    return Err("operation missing path field".into());
                }
            }
            Ok(ops)
        }
        _ => Err("json patch must be a list of operations".into()),
    }
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn pointer(path: &str) -> R<Vec<String>> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("invalid JSON pointer {path:?}"));
    };
    Ok(rest.split('/').map(unescape).collect())
}

fn lookup_mut<'a>(doc: &'a mut Value, toks: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Mapping(m) => m.get_mut(t.as_str())?,
            Value::Sequence(s) => {
                let i: usize = t.parse().ok()?;
                s.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn array_index(tok: &str, len: usize, allow_end: bool) -> R<usize> {
    if tok == "-" && allow_end {
        return Ok(len);
    }
    let i: i64 = tok
        .parse()
        .map_err(|_| format!("invalid array index {tok:?}"))?;
    let i = if i < 0 { i + len as i64 } else { i };
    let max = if allow_end {
        len as i64
    } else {
        len as i64 - 1
    };
    if i < 0 || i > max {
        return Err(format!("array index out of bounds: {tok}"));
    }
    Ok(i as usize)
}

fn op_add(doc: &mut Value, toks: &[String], val: Value) -> R<()> {
    let Some((last, parent)) = toks.split_last() else {
        *doc = val;
        return Ok(());
    };
    let p = lookup_mut(doc, parent).ok_or_else(|| {
        format!(
            "add operation does not apply: doc is missing path: /{}",
            toks.join("/")
        )
    })?;
    match p {
        Value::Mapping(m) => {
            m.insert(y::key(last), val);
            Ok(())
        }
        Value::Sequence(s) => {
            let i = array_index(last, s.len(), true)?;
            s.insert(i, val);
            Ok(())
        }
        _ => Err(format!("add operation does not apply: /{}", toks.join("/"))),
    }
}

fn op_remove(doc: &mut Value, toks: &[String], what: &str) -> R<Value> {
    let Some((last, parent)) = toks.split_last() else {
        return Ok(std::mem::replace(doc, Value::Null));
    };
    let missing = || {
        format!(
            "{what} operation does not apply: doc is missing path: \"/{}\"",
            toks.join("/")
        )
    };
    let p = lookup_mut(doc, parent).ok_or_else(missing)?;
    match p {
        Value::Mapping(m) => m.remove(last.as_str()).ok_or_else(missing),
        Value::Sequence(s) => {
            let i = array_index(last, s.len(), false).map_err(|_| missing())?;
            Ok(s.remove(i))
        }
        _ => Err(missing()),
    }
}

/// Applies JSON-patch operations to an object.
pub fn apply_json_patch(doc: &mut Value, ops: &[Value]) -> R<()> {
    for op in ops {
        let o = y::get(op, "op").and_then(scalar_str).unwrap_or_default();
        let path = y::get(op, "path").and_then(scalar_str).unwrap_or_default();
        let toks = pointer(&path)?;
        let value = y::get(op, "value").cloned();
        match o.as_str() {
            "add" => op_add(doc, &toks, value.unwrap_or(Value::Null))?,
            "remove" => {
                op_remove(doc, &toks, "remove")?;
            }
            "replace" => {
                let v = value.unwrap_or(Value::Null);
                if toks.is_empty() {
                    *doc = v;
                } else {
                    let target = lookup_mut(doc, &toks).ok_or_else(|| {
                        format!("replace operation does not apply: doc is missing key: {path}")
                    })?;
                    *target = v;
                }
            }
            "move" => {
                let from = y::get(op, "from").and_then(scalar_str).unwrap_or_default();
                let v = op_remove(doc, &pointer(&from)?, "move")?;
                op_add(doc, &toks, v)?;
            }
            "copy" => {
                let from = y::get(op, "from").and_then(scalar_str).unwrap_or_default();
                let v = lookup_mut(doc, &pointer(&from)?)
                    .map(|v| v.clone())
                    .ok_or_else(|| {
                        format!("copy operation does not apply: doc is missing from path: {from}")
                    })?;
                op_add(doc, &toks, v)?;
            }
            "test" => {
                let cur = lookup_mut(doc, &toks).map(|v| v.clone());
                let want = value.unwrap_or(Value::Null);
                let ok = match &cur {
                    Some(c) => json_equal(c, &want),
                    None => want.is_null(),
                };
                if !ok {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(z)) => x.as_f64() == z.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(text: &str) -> Resource {
        Resource::new(serde_yaml::from_str(text).unwrap())
    }

    #[test]
    fn delete_directive_on_missing_element_keeps_others() {
        let mut d = res(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      containers:\n      - name: w\n        image: x\n        env:\n        - {name: KEEP, value: v}\n        - {name: DROP, value: v}\n",
        );
        let p = res(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      containers:\n      - name: w\n        env:\n        - {name: DROP, $patch: delete}\n        - {name: MISSING, $patch: delete}\n",
        );
        apply_sm_patch(&mut d, &p, &Schemas::default()).unwrap();
        let env = y::get_path(&d.obj, &["spec", "template", "spec", "containers"]).unwrap();
        assert_eq!(
            y::inline(env),
            "[{name: w, image: x, env: [{name: KEEP, value: v}]}]"
        );
    }
}
