//! Values: user value merging, `--set` parsing (pkg/strvals), coalescing with chart defaults
//! (pkg/chart/common/util/coalesce.go), dependency enabling and import-values.

use ferroflux_gotemplate::{IntKind, Map, MapRef, Value};

use crate::Error;
use crate::chart::Chart;

/// Deep copy of a map.
pub fn copy_map(m: &Map) -> Map {
    m.iter().map(|(k, v)| (k.clone(), v.deep_copy())).collect()
}

/// Helm CLI's mergeMaps: later maps win, nested maps merge.
pub fn merge_maps(a: &Map, b: &Map) -> Map {
    let mut out = a.clone();
    for (k, v) in b {
        if let Value::Map(vm) = v
            && let Some(Value::Map(bv)) = out.get(k)
        {
            let merged = merge_maps(&bv.snapshot(), &vm.snapshot());
            out.insert(k.clone(), Value::map(merged));
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    out
}

// ---------------------------------------------------------------- strvals

fn typed_val(s: &str, string_only: bool) -> Value {
    if string_only {
        return Value::str(s);
    }
    if s.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if s.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if s.eq_ignore_ascii_case("null") {
        return Value::Nil;
    }
    if s == "0" {
        return Value::Int(0, IntKind::Int64);
    }
    if !s.is_empty()
        && !s.starts_with('0')
        && let Ok(i) = s.parse::<i64>()
    {
        // strconv.ParseInt accepts a leading sign
        return Value::Int(i, IntKind::Int64);
    }
    Value::str(s)
}

struct SetParser<'a> {
    s: &'a [char],
    i: usize,
    string_only: bool,
}

impl SetParser<'_> {
    /// Reads until one of `stops`, handling backslash escapes. Returns the text and the stop
    /// character (None at end).
    fn read_until(&mut self, stops: &[char]) -> (String, Option<char>) {
        let mut out = String::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            if c == '\\' && self.i < self.s.len() {
                out.push(self.s[self.i]);
                self.i += 1;
                continue;
            }
            if stops.contains(&c) {
                return (out, Some(c));
            }
            out.push(c);
        }
        (out, None)
    }

    fn parse(&mut self, data: &MapRef) -> Result<(), String> {
        while self.i < self.s.len() {
            self.key(data)?;
        }
        Ok(())
    }

    fn value_list(&mut self) -> Result<Vec<Value>, String> {
        // after '{'
        let mut out = Vec::new();
        loop {
            let (v, stop) = self.read_until(&[',', '}']);
            match stop {
                Some(',') => out.push(typed_val(&v, self.string_only)),
                Some('}') => {
                    // like strvals, "{}" is a list holding one empty string
                    out.push(typed_val(&v, self.string_only));
                    // consume a following ','
                    if self.i < self.s.len() && self.s[self.i] == ',' {
                        self.i += 1;
                    }
                    return Ok(out);
                }
                _ => return Err("list must terminate with '}'".into()),
            }
        }
    }

    fn key(&mut self, data: &MapRef) -> Result<(), String> {
        let (k, stop) = self.read_until(&['=', '[', ',', '.']);
        match stop {
            None => {
                if k.is_empty() {
                    return Ok(());
                }
                Err(format!("key \"{k}\" has no value"))
            }
            Some(',') => {
                if k.is_empty() {
                    return Ok(());
                }
                Err(format!("key \"{k}\" has no value (cannot end with ,)"))
            }
            Some('=') => {
                if self.i < self.s.len() && self.s[self.i] == '{' {
                    self.i += 1;
                    let l = self.value_list()?;
                    data.insert(k, Value::from(l));
                    return Ok(());
                }
                let (v, _) = self.read_until(&[',']);
                data.insert(k, typed_val(&v, self.string_only));
                Ok(())
            }
            Some('.') => {
                let inner = match data.get(&k) {
                    Some(Value::Map(m)) => m,
                    _ => {
                        let m = MapRef::default();
                        data.insert(k.clone(), Value::Map(m.clone()));
                        m
                    }
                };
                self.key(&inner)
            }
            Some('[') => {
                let list = match data.get(&k) {
                    Some(Value::List(l)) => l.to_vec(),
                    _ => vec![],
                };
                let l = self.list_index(list)?;
                data.insert(k, Value::from(l));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn list_index(&mut self, mut list: Vec<Value>) -> Result<Vec<Value>, String> {
        let (idx, _) = self.read_until(&[']']);
        let i: usize = idx
            .parse()
            .map_err(|_| format!("failed to parse index: {idx}"))?;
        if i > 65536 {
            return Err(format!(
                "index of {i} is greater than maximum supported index of 65536"
            ));
        }
        while list.len() <= i {
            list.push(Value::Nil);
        }
        let next = self.s.get(self.i).copied();
        self.i += 1;
        match next {
            Some('=') => {
                if self.i < self.s.len() && self.s[self.i] == '{' {
                    self.i += 1;
                    list[i] = Value::from(self.value_list()?);
                } else {
                    let (v, _) = self.read_until(&[',']);
                    list[i] = typed_val(&v, self.string_only);
                }
            }
            Some('.') => {
                let inner = match &list[i] {
                    Value::Map(m) => m.clone(),
                    _ => MapRef::default(),
                };
                self.key(&inner)?;
                list[i] = Value::Map(inner);
            }
            Some('[') => {
                let sub = match &list[i] {
                    Value::List(l) => l.to_vec(),
                    _ => vec![],
                };
                list[i] = Value::from(self.list_index(sub)?);
            }
            _ => return Err("unexpected data at end of array index".into()),
        }
        Ok(list)
    }
}

/// strvals.ParseInto: applies one `--set` (or `--set-string` when `string_only`) argument.
pub fn parse_set_into(s: &str, dest: &mut Map, string_only: bool) -> Result<(), Error> {
    let chars: Vec<char> = s.chars().collect();
    let m = MapRef::new(std::mem::take(dest));
    let mut p = SetParser {
        s: &chars,
        i: 0,
        string_only,
    };
    let r = p.parse(&m);
    *dest = m.snapshot();
    r.map_err(|e| Error::Values(format!("failed parsing --set data: {e}")))
}

// ---------------------------------------------------------------- coalescing

/// coalesceTablesFullKey: `dst` wins over `src`; nulls in dst delete (unless merging).
fn coalesce_tables(dst: &MapRef, src: &MapRef, merge: bool) {
    let dsnap = dst.snapshot();
    for (k, v) in &dsnap {
        if v.is_nil() {
            src.insert(k.clone(), Value::Nil);
        }
    }
    for (k, sv) in src.snapshot() {
        let dv = dst.get(&k);
        match dv {
            Some(Value::Nil) if !merge => {
                dst.write().remove(&k);
            }
            None => dst.insert(k, sv),
            Some(Value::Map(dm)) => {
                if let Value::Map(sm) = &sv {
                    coalesce_tables(&dm, sm, merge);
                }
            }
            Some(_) => {}
        }
    }
}

fn coalesce_values(c: &Chart, v: &MapRef, merge: bool) {
    let vc = copy_map(&c.values);
    for (key, val) in vc {
        match v.get(&key) {
            Some(Value::Nil) if !merge => {
                v.write().remove(&key);
            }
            Some(Value::Map(dest)) => {
                if let Value::Map(src) = &val {
                    let m = merge || c.dependencies.iter().any(|d| d.name() == key);
                    coalesce_tables(&dest, src, m);
                }
            }
            Some(_) => {}
            None => v.insert(key, val),
        }
    }
}

fn coalesce_globals(dest: &MapRef, src: &MapRef) {
    let dg = match dest.get("global") {
        None => MapRef::default(),
        Some(Value::Map(m)) => m,
        Some(_) => return,
    };
    let sg = match src.get("global") {
        None => MapRef::default(),
        Some(Value::Map(m)) => m,
        Some(_) => return,
    };
    for (key, val) in sg.snapshot() {
        if let Value::Map(vm) = &val {
            let vv = MapRef::new(copy_map(&vm.snapshot()));
            match dg.get(&key) {
                None => dg.insert(key, Value::Map(vv)),
                Some(Value::Map(destv)) => {
                    coalesce_tables(&vv, &destv, true);
                    dg.insert(key, Value::Map(vv));
                }
                Some(_) => {}
            }
        } else if let Some(Value::Map(_)) = dg.get(&key) {
            // table in dest: skip
        } else {
            dg.insert(key, val);
        }
    }
    dest.insert("global", Value::Map(dg));
}

fn coalesce(c: &Chart, dest: &MapRef, merge: bool) -> Result<(), Error> {
    coalesce_values(c, dest, merge);
    for sub in &c.dependencies {
        let name = sub.name();
        let dv = match dest.get(&name) {
            None => {
                let m = MapRef::default();
                dest.insert(name.clone(), Value::Map(m.clone()));
                m
            }
            Some(Value::Map(m)) => m,
            Some(other) => {
                return Err(Error::Values(format!(
                    "type mismatch on {name}: {}",
                    other.type_name()
                )));
            }
        };
        coalesce_globals(&dv, dest);
        coalesce(sub, &dv, merge)?;
    }
    Ok(())
}

/// util.CoalesceValues: the chart's defaults (and its subcharts') under the user's values.
pub fn coalesce_values_for(c: &Chart, user: &Map) -> Result<Map, Error> {
    let dest = MapRef::new(copy_map(user));
    coalesce(c, &dest, false)?;
    Ok(dest.snapshot())
}

/// util.MergeValues: like coalescing, but nulls are kept.
pub fn merge_values_for(c: &Chart, user: &Map) -> Result<Map, Error> {
    let dest = MapRef::new(copy_map(user));
    coalesce(c, &dest, true)?;
    Ok(dest.snapshot())
}

// ---------------------------------------------------------------- dependencies

/// Value at a dotted path in a map.
pub fn path_value(m: &Map, path: &str) -> Option<Value> {
    let mut cur = Value::map(m.clone());
    for part in path.split('.') {
        let next = cur.as_map()?.get(part)?;
        cur = next;
    }
    Some(cur)
}

fn compatible(constraint: &str, version: &str) -> bool {
    ferroflux_gotemplate::semver::semver_compare(constraint, version).unwrap_or(false)
}

/// processDependencyEnabled: aliases, tags and conditions; disabled subcharts are dropped
/// (from the chart and from its dependency list).
pub fn process_dependency_enabled(c: &mut Chart, v: &Map, path: &str) -> Result<(), Error> {
    if c.dependencies_meta.is_empty() {
        return Ok(());
    }
    let originals = std::mem::take(&mut c.dependencies);
    // Charts no dependency entry names (with a compatible version) are kept as they are.
    let mut chart_deps: Vec<Chart> = originals
        .iter()
        .filter(|ch| {
            !c.dependencies_meta
                .iter()
                .any(|r| ch.name() == r.name && compatible(&r.version, &ch.version()))
        })
        .cloned()
        .collect();
    for req in c.dependencies_meta.iter_mut() {
        if let Some(ch) = originals
            .iter()
            .find(|ch| ch.name() == req.name && compatible(&req.version, &ch.version()))
        {
            let mut copy = ch.clone();
            if !req.alias.is_empty() {
                copy.metadata.insert("name".into(), Value::str(&req.alias));
            }
            chart_deps.push(copy);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    c.dependencies = chart_deps;
    for r in c.dependencies_meta.iter_mut() {
        r.enabled = true;
    }
    let cvals = coalesce_values_for(c, v)?;
    let reqs = &mut c.dependencies_meta;
    // tags
    if let Some(Value::Map(tags)) = cvals.get("tags") {
        let tags = tags.snapshot();
        for r in reqs.iter_mut() {
            let (mut has_true, mut has_false) = (false, false);
            for t in &r.tags {
                if let Some(Value::Bool(b)) = tags.get(t) {
                    if *b {
                        has_true = true;
                    } else {
                        has_false = true;
                    }
                }
            }
            r.enabled = has_true || !has_false;
        }
    }
    // conditions: the first condition path that holds a bool decides
    for r in reqs.iter_mut() {
        for cond in r.condition.split(',') {
            let cond = cond.trim();
            if cond.is_empty() {
                continue;
            }
            if let Some(Value::Bool(b)) = path_value(&cvals, &format!("{path}{cond}")) {
                r.enabled = b;
                break;
            }
        }
    }
    let disabled: Vec<String> = reqs
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.name.clone())
        .collect();
    reqs.retain(|r| !disabled.contains(&r.name));
    let mut kept: Vec<Chart> = std::mem::take(&mut c.dependencies)
        .into_iter()
        .filter(|d| !disabled.contains(&d.name()))
        .collect();
    for t in kept.iter_mut() {
        let sub = format!("{path}{}.", t.name());
        process_dependency_enabled(t, &cvals, &sub)?;
    }
    c.dependencies = kept;
    Ok(())
}

fn path_to_map(path: &str, data: Map) -> Map {
    if path == "." || path.is_empty() {
        return data;
    }
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = data;
    for p in parts.iter().rev() {
        let mut m = Map::new();
        m.insert(p.to_string(), Value::map(cur));
        cur = m;
    }
    cur
}

/// processDependencyImportValues (children first), merging imported values under the
/// parent's own.
pub fn process_import_values(c: &mut Chart) -> Result<(), Error> {
    for d in c.dependencies.iter_mut() {
        process_import_values(d)?;
    }
    if c.dependencies_meta.is_empty() {
        return Ok(());
    }
    let cvals = merge_values_for(c, &Map::new())?;
    let b = MapRef::default();
    for r in c.dependencies_meta.iter() {
        for iv in &r.import_values {
            let (child, parent) = match iv {
                Value::Map(m) => (
                    m.get("child")
                        .map(|v| ferroflux_gotemplate::funcs::strval(&v))
                        .unwrap_or_default(),
                    m.get("parent")
                        .map(|v| ferroflux_gotemplate::funcs::strval(&v))
                        .unwrap_or_default(),
                ),
                Value::Str(s) => (format!("exports.{s}"), ".".to_string()),
                _ => continue,
            };
            if let Some(Value::Map(vv)) = path_value(&cvals, &format!("{}.{child}", r.name)) {
                let add = MapRef::new(path_to_map(&parent, copy_map(&vv.snapshot())));
                // MergeTables(b, add): b wins
                coalesce_tables(&b, &add, true);
            }
        }
    }
    let out = MapRef::new(cvals);
    coalesce_tables(&out, &b, true);
    c.values = out.snapshot();
    Ok(())
}
