//! Dotted field paths (`spec.containers.[name=app].image`, `a.0.b`, `*`)
//! as replacements and vars use them.

use serde_yaml::{Mapping, Value};

use crate::yaml::{self as y, scalar_str};

type R<T> = Result<T, String>;

/// Splits on `.` except inside `[...]`.
pub fn split(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '.' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    let mut res = Vec::new();
    for part in out.into_iter().filter(|s| !s.is_empty()) {
        // `containers[0]` is `containers`, `0`
        if let Some(open) = part.find('[')
            && open > 0
            && part.ends_with(']')
        {
            let idx = &part[open + 1..part.len() - 1];
            if !idx.is_empty() && idx.chars().all(|c| c.is_ascii_digit()) {
                res.push(part[..open].to_string());
                res.push(idx.to_string());
                continue;
            }
        }
        res.push(part);
    }
    res
}

fn list_selector(part: &str) -> Option<(String, String)> {
    let inner = part.strip_prefix('[')?.strip_suffix(']')?;
    let (k, v) = inner.split_once('=')?;
    Some((k.to_string(), v.to_string()))
}

fn index_of(part: &str) -> Option<usize> {
    let p = part
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(part);
    p.parse().ok()
}

/// Looks a path up (no wildcards).
pub fn lookup<'a>(node: &'a Value, parts: &[String]) -> Option<&'a Value> {
    let mut cur = node;
    for p in parts {
        cur = match cur {
            Value::Mapping(m) => {
                if let Some((k, v)) = list_selector(p) {
                    let _ = (k, v);
                    return None;
                }
                m.get(p.as_str())?
            }
            Value::Sequence(items) => {
                if let Some((k, v)) = list_selector(p) {
                    items.iter().find(|it| {
                        y::get(it, &k).and_then(scalar_str).as_deref() == Some(v.as_str())
                    })?
                } else if let Some(i) = index_of(p) {
                    items.get(i)?
                } else {
                    return None;
                }
            }
            _ => return None,
        };
    }
    Some(cur)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CreateAs {
    No,
    Scalar,
    Map,
    Seq,
}

/// Visits every node matching the path, creating missing parts when asked.
/// Returns the number of matches.
pub fn visit(
    node: &mut Value,
    parts: &[String],
    create: CreateAs,
    f: &mut dyn FnMut(&mut Value) -> R<()>,
) -> R<usize> {
    let Some((first, rest)) = parts.split_first() else {
        f(node)?;
        return Ok(1);
    };
    let next_kind = |rest: &[String]| -> Value {
        match rest.first() {
            None => match create {
                CreateAs::Map => Value::Mapping(Mapping::new()),
                CreateAs::Seq => Value::Sequence(vec![]),
                _ => Value::Null,
            },
            Some(n) if n.starts_with('[') || n == "*" || n == "-" => Value::Sequence(vec![]),
            Some(_) => Value::Mapping(Mapping::new()),
        }
    };
    if node.is_null() && create != CreateAs::No {
        *node = if first.starts_with('[') || first == "*" {
            Value::Sequence(vec![])
        } else {
            Value::Mapping(Mapping::new())
        };
    }
    match node {
        Value::Mapping(m) => {
            if first == "*" {
                let mut n = 0;
                for (_, v) in m.iter_mut() {
                    n += visit(v, rest, create, f)?;
                }
                return Ok(n);
            }
            if !m.contains_key(first.as_str()) {
                if create == CreateAs::No {
                    return Ok(0);
                }
                m.insert(y::key(first), next_kind(rest));
            }
            let child = m.get_mut(first.as_str()).expect("present");
            if child.is_null() && !rest.is_empty() && create != CreateAs::No {
                *child = next_kind(rest);
            }
            visit(child, rest, create, f)
        }
        Value::Sequence(items) => {
            if first == "*" || first == "[*]" {
                let mut n = 0;
                for it in items.iter_mut() {
                    n += visit(it, rest, create, f)?;
                }
                return Ok(n);
            }
            if let Some((k, v)) = list_selector(first) {
                let mut n = 0;
                for it in items.iter_mut() {
                    if y::get(it, &k).and_then(scalar_str).as_deref() == Some(v.as_str()) {
                        n += visit(it, rest, create, f)?;
                    }
                }
                if n == 0 && create != CreateAs::No {
                    let mut m = Mapping::new();
                    m.insert(y::key(&k), Value::String(v.clone()));
                    items.push(Value::Mapping(m));
                    let last = items.last_mut().expect("pushed");
                    n += visit(last, rest, create, f)?;
                }
                return Ok(n);
            }
            if first == "-" {
                if create == CreateAs::No {
                    return Ok(0);
                }
                items.push(next_kind(rest));
                let last = items.last_mut().expect("pushed");
                return visit(last, rest, create, f);
            }
            if let Some(i) = index_of(first)
                && let Some(it) = items.get_mut(i)
            {
                return visit(it, rest, create, f);
            }
            Ok(0)
        }
        _ => Ok(0),
    }
}
