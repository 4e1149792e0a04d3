//! Kubernetes label selector strings (`a=b,c!=d,e in (x,y),!f`).

enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn parse(sel: &str) -> Result<Vec<Req>, String> {
    let mut reqs = Vec::new();
    // split on commas that are not inside parentheses
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in sel.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        if let Some(k) = p.strip_prefix('!') {
            reqs.push(Req::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = p.split_once("!=") {
            reqs.push(Req::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some(i) = p.find(" notin ") {
            reqs.push(Req::NotIn(p[..i].trim().into(), set(&p[i + 7..])?));
        } else if let Some(i) = p.find(" in ") {
            reqs.push(Req::In(p[..i].trim().into(), set(&p[i + 4..])?));
        } else if p.contains(' ') || p.contains('(') {
            return Err(format!("unable to parse requirement: {p:?}"));
        } else {
            reqs.push(Req::Exists(p.to_string()));
        }
    }
    Ok(reqs)
}

fn set(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| format!("found '{s}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect())
}

/// Whether the labels (or annotations) match the selector. An empty selector matches everything.
pub fn matches(sel: &str, labels: &[(String, String)]) -> Result<bool, String> {
    let get = |k: &str| labels.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    for r in parse(sel)? {
        let ok = match &r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::Ne(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}
