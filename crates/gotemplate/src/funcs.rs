//! Go's builtin template functions, the sprig library as Helm ships it, and Helm's own
//! functions (`include`, `tpl`, `toYaml`, ...).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use sha2::Digest;

use crate::exec::{Exec, Func, FuncMap};
use crate::gofmt::{self, sprint_v};
use crate::value::{IntKind, Map, MapRef, Value};

type Args<'a> = &'a [Value];
type Res = Result<Value, String>;

fn reg(
    m: &mut FuncMap,
    name: &str,
    f: impl Fn(&mut Exec<'_>, Args) -> Res + Send + Sync + 'static,
) {
    m.insert(name.to_string(), Arc::new(f));
}

/// The largest string or list a function will build (a guard against runaway templates).
pub const MAX_GENERATED: i64 = 64 << 20;

fn gen_limit(n: i64) -> Result<usize, String> {
    if n > MAX_GENERATED {
        return Err(format!("requested size {n} is too large"));
    }
    Ok(n.max(0) as usize)
}

static NIL: Value = Value::Nil;

/// Argument `i`, or nil when there are fewer arguments.
fn arg(a: &[Value], i: usize) -> &Value {
    a.get(i).unwrap_or(&NIL)
}

fn arity(name: &str, a: Args, n: usize) -> Result<(), String> {
    if a.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

fn arity_min(name: &str, a: Args, n: usize) -> Result<(), String> {
    if a.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

/// sprig's strval: how sprig turns anything into a string.
pub fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => sprint_v(other),
    }
}

/// A Go `string` parameter.
fn s(a: Args, i: usize) -> Result<String, String> {
    match a.get(i) {
        Some(Value::Str(s)) => Ok(s.to_string()),
        Some(Value::Nil) | None => Err("invalid value; expected string".into()),
        Some(o) => Err(format!(
            "wrong type for value; expected string; got {}",
            o.type_name()
        )),
    }
}

/// A Go `int` parameter (numbers of any kind are accepted).
fn n(a: Args, i: usize) -> Result<i64, String> {
    match a.get(i) {
        Some(Value::Int(x, _)) => Ok(*x),
        Some(Value::Float(f)) => Ok(*f as i64),
        Some(Value::Nil) | None => Err("invalid value; expected int".into()),
        Some(o) => Err(format!(
            "wrong type for value; expected int; got {}",
            o.type_name()
        )),
    }
}

/// spf13/cast ToInt64.
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i, _) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => *b as i64,
        Value::Str(s) => parse_int_base0(s.trim()).unwrap_or(0),
        _ => 0,
    }
}

fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, b) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let b = b.replace('_', "");
    let v = if let Some(h) = b.strip_prefix("0x").or_else(|| b.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = b.strip_prefix("0o").or_else(|| b.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(x) = b.strip_prefix("0b").or_else(|| b.strip_prefix("0B")) {
        i64::from_str_radix(x, 2).ok()?
    } else if b.len() > 1 && b.starts_with('0') {
        i64::from_str_radix(&b[1..], 8).ok()?
    } else {
        b.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// spf13/cast ToFloat64.
pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i, _) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's empty.
pub fn empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i, _) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Object(_) => false,
    }
}

fn list_of(v: &Value, fname: &str) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.to_vec()),
        Value::Bytes(b) => Ok(b
            .iter()
            .map(|x| Value::Int(*x as i64, IntKind::Int))
            .collect()),
        Value::Nil => Err(format!("Cannot find {fname} on type <nil>")),
        Value::Object(o) => match o.to_data() {
            Value::List(l) => Ok(l.to_vec()),
            _ => Err(format!("Cannot find {fname} on type {}", v.type_name())),
        },
        o => Err(format!("Cannot find {fname} on type {}", o.kind_name())),
    }
}

fn map_of(v: &Value) -> Result<MapRef, String> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        // a nil map: readable, empty
        Value::Nil => Ok(MapRef::default()),
        o => Err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            o.type_name()
        )),
    }
}

// ---------------------------------------------------------------- comparison (Go builtins)

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(..) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn go_eq(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if ka != kb {
        if ka != Kind::Invalid && kb != Kind::Invalid {
            return Err(format!(
                "incompatible types for comparison: {} and {}",
                a.type_name(),
                b.type_name()
            ));
        }
        return Ok(false);
    }
    Ok(match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x, _), Value::Int(y, _)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Map(x), Value::Map(y)) => {
            let _ = (x, y);
            return Err(
                "non-comparable type map[string]interface {}: map[string]interface {}".into(),
            );
        }
        (Value::List(_), _) | (_, Value::List(_)) => {
            return Err("non-comparable type []interface {}: []interface {}".into());
        }
        (Value::Object(x), Value::Object(y)) => Arc::ptr_eq(x, y),
        _ => false,
    })
}

fn go_lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if matches!(ka, Kind::Invalid | Kind::Bool | Kind::Other)
        || matches!(kb, Kind::Invalid | Kind::Bool | Kind::Other)
    {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err(format!(
            "incompatible types for comparison: {} and {}",
            a.type_name(),
            b.type_name()
        ));
    }
    Ok(match (a, b) {
        (Value::Int(x, _), Value::Int(y, _)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        _ => false,
    })
}

// ---------------------------------------------------------------- escaping

fn html_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\0' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn js_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// url.QueryEscape.
pub fn query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

// ---------------------------------------------------------------- string helpers

fn title(s: &str) -> String {
    // strings.Title: uppercase letters that follow a separator
    let mut out = String::new();
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        // strings.Title's isSeparator: ASCII alphanumerics and '_' are not separators,
        // other ASCII is; letters and digits elsewhere are not, spaces are.
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric()
        };
    }
    out
}

/// strings.ToUpper: a rune without a single-rune upper case stays as it is.
pub fn go_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        })
        .collect()
}

/// strings.ToLower: the first rune of the lower case mapping.
pub fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

fn untitle(s: &str) -> String {
    let mut out = String::new();
    let mut prev_space = true;
    for c in s.chars() {
        if prev_space {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_space = c.is_whitespace();
    }
    out
}

fn words_split(s: &str) -> Vec<String> {
    // split into words for case conversions: separators and lower->upper transitions
    let mut words = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn snakecase(s: &str) -> String {
    words_split(s)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

fn kebabcase(s: &str) -> String {
    words_split(s)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("-")
}

fn camelcase(s: &str) -> String {
    // xstrings.ToCamelCase: underscores separate words; each word capitalised
    let mut out = String::new();
    let mut up = true;
    for c in s.chars() {
        if c == '_' {
            up = true;
            continue;
        }
        if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn swapcase(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<String>()
            } else {
                c.to_uppercase().collect::<String>()
            }
        })
        .collect()
}

fn wrap_words(s: &str, width: usize, sep: &str) -> String {
    // goutils.WrapCustom(str, width, sep, true)
    let mut out = Vec::new();
    for line in s.split('\n') {
        let mut cur = String::new();
        for word in line.split(' ') {
            let mut word = word.to_string();
            loop {
                if cur.is_empty() {
                    if word.chars().count() > width {
                        let head: String = word.chars().take(width).collect();
                        let tail: String = word.chars().skip(width).collect();
                        out.push(head);
                        word = tail;
                        continue;
                    }
                    cur = word;
                    break;
                } else if cur.chars().count() + 1 + word.chars().count() <= width {
                    cur.push(' ');
                    cur.push_str(&word);
                    break;
                } else {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
        out.push(cur);
    }
    out.join(sep)
}

fn abbrev(width: i64, s: &str) -> String {
    let n = s.chars().count() as i64;
    if width < 4 || n <= width {
        return s.to_string();
    }
    let head: String = s.chars().take((width - 3) as usize).collect();
    format!("{head}...")
}

fn random_string(ex: &mut Exec<'_>, count: i64, set: &[char]) -> String {
    let mut o = String::new();
    for _ in 0..count.clamp(0, MAX_GENERATED) {
        let r = ex.host.random_u64();
        o.push(set[(r % set.len() as u64) as usize]);
    }
    o
}

/// Compiles a Go (RE2) regular expression. RE2 takes a `{` that does not start a
/// repetition (`{n}`, `{n,}`, `{n,m}`) literally; Rust's regex needs it escaped.
/// Shared (`Arc`), not cloned: a cloned `Regex` starts with an empty matching cache of its
/// own, which costs more to build than most matches.
pub fn regex(p: &str) -> Result<Arc<regex::Regex>, String> {
    type Cache = std::sync::Mutex<HashMap<String, Arc<regex::Regex>>>;
    static CACHE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(Default::default);
    if let Some(r) = CACHE.lock().ok().and_then(|c| c.get(p).cloned()) {
        return Ok(r);
    }
    let r = Arc::new(compile_go_regex(p)?);
    if let Ok(mut c) = CACHE.lock() {
        if c.len() > 1000 {
            c.clear();
        }
        c.insert(p.to_string(), r.clone());
    }
    Ok(r)
}

/// Go's Perl classes and word boundaries are ASCII-only (`\d` is `[0-9]`, `\w` is
/// `[0-9A-Za-z_]`, `\s` is `[\t\n\f\r ]`), the regex crate's are Unicode: the ASCII
/// spelling for escape `\c`. A bracketed class is valid inside a class too (a nested class
/// is a union). The ASCII classes are also much smaller to compile than the Unicode ones.
fn go_ascii_escape(c: char, in_class: bool) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        's' => "[\\t\\n\\f\\r ]",
        'S' => "[^\\t\\n\\f\\r ]",
        'b' if !in_class => "(?-u:\\b)",
        'B' if !in_class => "(?-u:\\B)",
        _ => return None,
    })
}

fn compile_go_regex(p: &str) -> Result<regex::Regex, String> {
    let b: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len());
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == '\\' && i + 1 < b.len() {
            match go_ascii_escape(b[i + 1], in_class) {
                Some(class) => out.push_str(class),
                None => {
                    out.push(c);
                    out.push(b[i + 1]);
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if c == '[' {
            in_class = true;
            out.push(c);
            i += 1;
            if i < b.len() && b[i] == '^' {
                out.push('^');
                i += 1;
            }
            if i < b.len() && b[i] == ']' {
                out.push_str("\\]");
                i += 1;
            }
            continue;
        }
        if c == '{' {
            let rest: String = b[i..].iter().collect();
            let is_rep = rest
                .find('}')
                .map(|end| {
                    let inner = &rest[1..end];
                    let (a, bb) = inner.split_once(',').unwrap_or((inner, ""));
                    !a.is_empty()
                        && a.bytes().all(|x| x.is_ascii_digit())
                        && bb.bytes().all(|x| x.is_ascii_digit())
                })
                .unwrap_or(false);
            if !is_rep {
                out.push_str("\\{");
                i += 1;
                continue;
            }
        }
        if c == '}' {
            // a '}' that closes no repetition is literal too
            let before: String = out.chars().rev().take_while(|x| *x != '{').collect();
            let opened = out
                .rfind('{')
                .is_some_and(|pos| pos == 0 || !out[..pos].ends_with('\\'))
                && before.chars().all(|x| x.is_ascii_digit() || x == ',');
            if !opened {
                out.push_str("\\}");
                i += 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    regex::Regex::new(&out).map_err(|e| format!("error parsing regexp: {e}"))
}

/// Go's regexp Expand template ($1, ${1}, $name) → Rust's syntax is the same.
fn go_template_repl(r: &str) -> String {
    r.to_string()
}

fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let j = parts.join("/");
    if rooted {
        format!("/{j}")
    } else if j.is_empty() {
        ".".into()
    } else {
        j
    }
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn path_dir(p: &str) -> String {
    let i = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    path_clean(&p[..i])
}

fn path_ext(p: &str) -> String {
    let b = p.rsplit('/').next().unwrap_or(p);
    match b.rfind('.') {
        Some(i) => b[i..].to_string(),
        None => String::new(),
    }
}

fn b32enc(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
        let nchars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < nchars {
                out.push(A[((v >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b32dec(s: &str) -> Result<Vec<u8>, String> {
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let t = s.trim_end_matches('=');
    let mut bits = 0u64;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in t.chars() {
        let v = A.find(c).ok_or_else(|| "illegal base32 data".to_string())? as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Ok(out)
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- merge (mergo)

fn mergo(dst: &MapRef, src: &MapRef, overwrite: bool) {
    if dst.ptr_eq(src) {
        return;
    }
    let src = src.snapshot();
    for (k, sv) in src {
        let dv = dst.get(&k);
        if let (Some(Value::Map(dm)), Value::Map(sm)) = (&dv, &sv) {
            mergo(dm, sm, overwrite);
            continue;
        }
        if sv.is_nil() {
            if overwrite {
                dst.insert(k, sv);
            }
            continue;
        }
        match &dv {
            None => dst.insert(k, sv),
            Some(d) if empty(d) => dst.insert(k, sv),
            Some(_)
                if overwrite && !(empty(&sv) && matches!(sv, Value::Map(_) | Value::List(_))) =>
            {
                dst.insert(k, sv)
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- registration

pub fn register(m: &mut FuncMap) {
    builtins(m);
    strings(m);
    lists_dicts(m);
    math(m);
    misc(m);
    helm(m);
    crate::semver::register(m);
    crate::dates::register(m);
    crate::crypto::register(m);
}

fn builtins(m: &mut FuncMap) {
    reg(m, "not", |_, a| {
        arity("not", a, 1)?;
        Ok(Value::Bool(!arg(a, 0).truthy()))
    });
    reg(m, "len", |_, a| {
        arity("len", a, 1)?;
        Ok(Value::int(match arg(a, 0) {
            Value::Str(s) => s.len() as i64,
            Value::Bytes(b) => b.len() as i64,
            Value::List(l) => l.len() as i64,
            Value::Map(m) => m.len() as i64,
            Value::Nil => return Err("len of nil pointer".into()),
            Value::Object(o) => match o.to_data() {
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                _ => return Err(format!("len of type {}", o.type_name())),
            },
            o => return Err(format!("len of type {}", o.type_name())),
        }))
    });
    reg(m, "index", |_, a| {
        arity_min("index", a, 1)?;
        let mut v = arg(a, 0).clone();
        for k in &a[1..] {
            v = match (&v, k) {
                (Value::Nil, _) => return Err("index of untyped nil".into()),
                (Value::List(l), Value::Int(i, _)) => {
                    if *i < 0 || *i as usize >= l.len() {
                        return Err(format!("index out of range: {i}"));
                    }
                    l[*i as usize].clone()
                }
                (Value::Bytes(l), Value::Int(i, _)) => {
                    if *i < 0 || *i as usize >= l.len() {
                        return Err(format!("index out of range: {i}"));
                    }
                    Value::Int(l[*i as usize] as i64, IntKind::Int)
                }
                (Value::Str(s), Value::Int(i, _)) => {
                    if *i < 0 || *i as usize >= s.len() {
                        return Err(format!("index out of range: {i}"));
                    }
                    Value::Int(s.as_bytes()[*i as usize] as i64, IntKind::Int)
                }
                (Value::List(_), o) | (Value::Str(_), o) => {
                    return Err(format!(
                        "cannot index slice/array with type {}",
                        o.type_name()
                    ));
                }
                (Value::Map(m), Value::Str(s)) => m.get(s).unwrap_or_default(),
                (Value::Map(_), Value::Nil) => Value::Nil,
                (Value::Map(_), o) => {
                    return Err(format!(
                        "value has type {}; should be string",
                        o.type_name()
                    ));
                }
                (Value::Object(o), Value::Str(s)) => match o.to_data() {
                    Value::Map(m) => m.get(s).unwrap_or_default(),
                    _ => return Err(format!("can't index item of type {}", o.type_name())),
                },
                (o, _) => return Err(format!("can't index item of type {}", o.type_name())),
            };
        }
        Ok(v)
    });
    reg(m, "slice", |_, a| {
        // sprig's slice replaces the builtin in Helm: lists only, any number of indices
        arity_min("slice", a, 1)?;
        let idx: Vec<i64> = a[1..].iter().map(to_i64).collect();
        match arg(a, 0) {
            Value::List(l) => {
                let len = l.len() as i64;
                let (st, en) = match idx.len() {
                    0 => (0, len),
                    1 => (idx[0], len),
                    _ => (idx[0], idx[1]),
                };
                if st < 0 || en > len || st > en {
                    return Err(format!("slice bounds out of range [{st}:{en}]"));
                }
                Ok(Value::from(l[st as usize..en as usize].to_vec()))
            }
            Value::Str(s) => {
                let len = s.len() as i64;
                let (st, en) = match idx.len() {
                    0 => (0, len),
                    1 => (idx[0], len),
                    _ => (idx[0], idx[1]),
                };
                if st < 0 || en > len || st > en {
                    return Err(format!("slice bounds out of range [{st}:{en}]"));
                }
                Ok(Value::str(s.get(st as usize..en as usize).unwrap_or("")))
            }
            Value::Nil => Ok(Value::Nil),
            o => Err(format!("Cannot slice on type {}", o.type_name())),
        }
    });
    reg(m, "print", |_, a| Ok(Value::str(gofmt::sprint(a))));
    reg(m, "println", |_, a| Ok(Value::str(gofmt::sprintln(a))));
    reg(m, "printf", |_, a| {
        arity_min("printf", a, 1)?;
        let f = s(a, 0)?;
        Ok(Value::str(gofmt::sprintf(&f, &a[1..])))
    });
    reg(m, "html", |_, a| {
        Ok(Value::str(html_escape(&eval_args_str(a))))
    });
    reg(m, "js", |_, a| Ok(Value::str(js_escape(&eval_args_str(a)))));
    reg(m, "urlquery", |_, a| {
        Ok(Value::str(query_escape(&eval_args_str(a))))
    });
    reg(m, "call", |_, a| {
        arity_min("call", a, 1)?;
        Err(format!(
            "non-function {} of type {}",
            sprint_v(arg(a, 0)),
            arg(a, 0).type_name()
        ))
    });
    reg(m, "eq", |_, a| {
        arity_min("eq", a, 1)?;
        if a.len() < 2 {
            return Err("missing argument for comparison".into());
        }
        for b in &a[1..] {
            if go_eq(arg(a, 0), b)? {
                return Ok(Value::Bool(true));
            }
        }
        Ok(Value::Bool(false))
    });
    reg(m, "ne", |_, a| {
        arity("ne", a, 2)?;
        Ok(Value::Bool(!go_eq(arg(a, 0), arg(a, 1))?))
    });
    reg(m, "lt", |_, a| {
        arity("lt", a, 2)?;
        Ok(Value::Bool(go_lt(arg(a, 0), arg(a, 1))?))
    });
    reg(m, "le", |_, a| {
        arity("le", a, 2)?;
        Ok(Value::Bool(
            go_lt(arg(a, 0), arg(a, 1))? || go_eq(arg(a, 0), arg(a, 1))?,
        ))
    });
    reg(m, "gt", |_, a| {
        arity("gt", a, 2)?;
        Ok(Value::Bool(
            !go_lt(arg(a, 0), arg(a, 1))? && !go_eq(arg(a, 0), arg(a, 1))?,
        ))
    });
    reg(m, "ge", |_, a| {
        arity("ge", a, 2)?;
        Ok(Value::Bool(!go_lt(arg(a, 0), arg(a, 1))?))
    });
}

fn eval_args_str(a: Args) -> String {
    if a.len() == 1
        && let Value::Str(s) = arg(a, 0)
    {
        return s.to_string();
    }
    gofmt::sprint(a)
}

fn strings(m: &mut FuncMap) {
    reg(m, "hello", |_, _| Ok(Value::str("Hello!")));
    reg(m, "upper", |_, a| Ok(Value::str(go_upper(&s(a, 0)?))));
    reg(m, "lower", |_, a| Ok(Value::str(go_lower(&s(a, 0)?))));
    reg(m, "title", |_, a| Ok(Value::str(title(&s(a, 0)?))));
    reg(m, "untitle", |_, a| Ok(Value::str(untitle(&s(a, 0)?))));
    reg(m, "substr", |_, a| {
        arity("substr", a, 3)?;
        let (st, en, x) = (n(a, 0)?, n(a, 1)?, s(a, 2)?);
        let b = x.as_bytes();
        let len = b.len() as i64;
        let r = if st < 0 {
            &b[..en.clamp(0, len) as usize]
        } else if en < 0 || en > len {
            &b[st.min(len) as usize..]
        } else {
            &b[st.min(en) as usize..en as usize]
        };
        Ok(Value::str(String::from_utf8_lossy(r)))
    });
    reg(m, "repeat", |_, a| {
        arity("repeat", a, 2)?;
        let x = s(a, 1)?;
        let c = gen_limit(n(a, 0)?)?;
        gen_limit((c as i64).saturating_mul(x.len() as i64))?;
        Ok(Value::str(x.repeat(c)))
    });
    reg(m, "trim", |_, a| Ok(Value::str(s(a, 0)?.trim())));
    let trim_all: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("trimAll", a, 2)?;
        let (cut, x) = (s(a, 0)?, s(a, 1)?);
        Ok(Value::str(x.trim_matches(|c| cut.contains(c))))
    };
    reg(m, "trimAll", trim_all);
    reg(m, "trimall", trim_all);
    reg(m, "trimSuffix", |_, a| {
        arity("trimSuffix", a, 2)?;
        let (suf, x) = (s(a, 0)?, s(a, 1)?);
        Ok(Value::str(x.strip_suffix(suf.as_str()).unwrap_or(&x)))
    });
    reg(m, "trimPrefix", |_, a| {
        arity("trimPrefix", a, 2)?;
        let (p, x) = (s(a, 0)?, s(a, 1)?);
        Ok(Value::str(x.strip_prefix(p.as_str()).unwrap_or(&x)))
    });
    reg(m, "trunc", |_, a| {
        arity("trunc", a, 2)?;
        let (c, x) = (n(a, 0)?, s(a, 1)?);
        let len = x.len() as i64;
        Ok(Value::str(if c < 0 && len + c > 0 {
            String::from_utf8_lossy(&x.as_bytes()[(len + c) as usize..]).into_owned()
        } else if c >= 0 && len > c {
            String::from_utf8_lossy(&x.as_bytes()[..c as usize]).into_owned()
        } else {
            x
        }))
    });
    reg(m, "nospace", |_, a| {
        Ok(Value::str(
            s(a, 0)?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
        ))
    });
    reg(m, "abbrev", |_, a| {
        arity("abbrev", a, 2)?;
        Ok(Value::str(abbrev(n(a, 0)?, &s(a, 1)?)))
    });
    reg(m, "abbrevboth", |_, a| {
        arity("abbrevboth", a, 3)?;
        let (l, r, x) = (n(a, 0)?, n(a, 1)?, s(a, 2)?);
        let chars: Vec<char> = x.chars().collect();
        if r < 7 || chars.len() as i64 <= r {
            return Ok(Value::str(x));
        }
        let mut off = l.max(0) as usize;
        if off > chars.len() {
            off = chars.len();
        }
        if off <= 4 {
            return Ok(Value::str(abbrev(r, &x)));
        }
        let rest: String = chars[off..].iter().collect();
        if (r - 3) as usize >= rest.chars().count() {
            return Ok(Value::str(format!("...{rest}")));
        }
        Ok(Value::str(format!("...{}", abbrev(r - 3, &rest))))
    });
    reg(m, "initials", |_, a| {
        Ok(Value::str(
            s(a, 0)?
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .collect::<String>(),
        ))
    });
    const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    reg(m, "randAlphaNum", |ex, a| {
        Ok(Value::str(random_string(
            ex,
            n(a, 0)?,
            &ALNUM.chars().collect::<Vec<_>>(),
        )))
    });
    reg(m, "randAlpha", |ex, a| {
        Ok(Value::str(random_string(
            ex,
            n(a, 0)?,
            &ALNUM.chars().take(52).collect::<Vec<_>>(),
        )))
    });
    reg(m, "randNumeric", |ex, a| {
        Ok(Value::str(random_string(
            ex,
            n(a, 0)?,
            &"0123456789".chars().collect::<Vec<_>>(),
        )))
    });
    reg(m, "randAscii", |ex, a| {
        Ok(Value::str(random_string(
            ex,
            n(a, 0)?,
            &(32u8..127).map(|b| b as char).collect::<Vec<_>>(),
        )))
    });
    reg(m, "wrap", |_, a| {
        arity("wrap", a, 2)?;
        Ok(Value::str(wrap_words(
            &s(a, 1)?,
            n(a, 0)?.max(1) as usize,
            "\n",
        )))
    });
    reg(m, "wrapWith", |_, a| {
        arity("wrapWith", a, 3)?;
        Ok(Value::str(wrap_words(
            &s(a, 2)?,
            n(a, 0)?.max(1) as usize,
            &s(a, 1)?,
        )))
    });
    reg(m, "contains", |_, a| {
        arity("contains", a, 2)?;
        Ok(Value::Bool(s(a, 1)?.contains(&s(a, 0)?)))
    });
    reg(m, "hasPrefix", |_, a| {
        arity("hasPrefix", a, 2)?;
        Ok(Value::Bool(s(a, 1)?.starts_with(&s(a, 0)?)))
    });
    reg(m, "hasSuffix", |_, a| {
        arity("hasSuffix", a, 2)?;
        Ok(Value::Bool(s(a, 1)?.ends_with(&s(a, 0)?)))
    });
    reg(m, "quote", |_, a| {
        let v: Vec<String> = a
            .iter()
            .filter(|x| !x.is_nil())
            .map(|x| gofmt::quote(&strval(x)))
            .collect();
        Ok(Value::str(v.join(" ")))
    });
    reg(m, "squote", |_, a| {
        let v: Vec<String> = a
            .iter()
            .filter(|x| !x.is_nil())
            .map(|x| format!("'{}'", strval(x)))
            .collect();
        Ok(Value::str(v.join(" ")))
    });
    reg(m, "cat", |_, a| {
        let v: Vec<Value> = a.iter().filter(|x| !x.is_nil()).cloned().collect();
        let r = sprint_v(&Value::from(v));
        Ok(Value::str(&r[1..r.len() - 1]))
    });
    reg(m, "indent", |_, a| {
        arity("indent", a, 2)?;
        let pad = " ".repeat(gen_limit(n(a, 0)?)?);
        let x = s(a, 1)?;
        Ok(Value::str(format!(
            "{pad}{}",
            x.replace('\n', &format!("\n{pad}"))
        )))
    });
    reg(m, "nindent", |_, a| {
        arity("nindent", a, 2)?;
        let pad = " ".repeat(gen_limit(n(a, 0)?)?);
        let x = s(a, 1)?;
        Ok(Value::str(format!(
            "\n{pad}{}",
            x.replace('\n', &format!("\n{pad}"))
        )))
    });
    reg(m, "replace", |_, a| {
        arity("replace", a, 3)?;
        let (o, nw, x) = (s(a, 0)?, s(a, 1)?, s(a, 2)?);
        Ok(Value::str(if o.is_empty() {
            // strings.Replace with empty old inserts between runes
            let mut r = nw.clone();
            for c in x.chars() {
                r.push(c);
                r.push_str(&nw);
            }
            r
        } else {
            x.replace(&o, &nw)
        }))
    });
    reg(m, "plural", |_, a| {
        arity("plural", a, 3)?;
        Ok(Value::str(if n(a, 2)? == 1 { s(a, 0)? } else { s(a, 1)? }))
    });
    reg(m, "snakecase", |_, a| Ok(Value::str(snakecase(&s(a, 0)?))));
    reg(m, "camelcase", |_, a| Ok(Value::str(camelcase(&s(a, 0)?))));
    reg(m, "kebabcase", |_, a| Ok(Value::str(kebabcase(&s(a, 0)?))));
    reg(m, "swapcase", |_, a| Ok(Value::str(swapcase(&s(a, 0)?))));
    reg(m, "shuffle", |ex, a| {
        let mut c: Vec<char> = s(a, 0)?.chars().collect();
        for i in (1..c.len()).rev() {
            let j = (ex.host.random_u64() % (i as u64 + 1)) as usize;
            c.swap(i, j);
        }
        Ok(Value::str(c.into_iter().collect::<String>()))
    });
    reg(m, "toString", |_, a| {
        arity("toString", a, 1)?;
        Ok(Value::str(strval(arg(a, 0))))
    });
    reg(m, "toStrings", |_, a| {
        arity("toStrings", a, 1)?;
        let l = match arg(a, 0) {
            Value::List(l) => l.iter().map(|x| Value::str(strval(x))).collect(),
            Value::Nil => vec![],
            o => vec![Value::str(strval(o))],
        };
        Ok(Value::from(l))
    });
    reg(m, "split", |_, a| {
        arity("split", a, 2)?;
        let (sep, x) = (s(a, 0)?, s(a, 1)?);
        let mut mm = Map::new();
        for (i, p) in go_split(&x, &sep).into_iter().enumerate() {
            mm.insert(format!("_{i}"), Value::str(p));
        }
        Ok(Value::map(mm))
    });
    reg(m, "splitList", |_, a| {
        arity("splitList", a, 2)?;
        let (sep, x) = (s(a, 0)?, s(a, 1)?);
        Ok(Value::from(
            go_split(&x, &sep)
                .into_iter()
                .map(Value::str)
                .collect::<Vec<_>>(),
        ))
    });
    reg(m, "splitn", |_, a| {
        arity("splitn", a, 3)?;
        let (sep, cnt, x) = (s(a, 0)?, n(a, 1)?, s(a, 2)?);
        let parts: Vec<String> = if cnt < 0 {
            go_split(&x, &sep)
        } else {
            x.splitn(cnt as usize, sep.as_str())
                .map(String::from)
                .collect()
        };
        let mut mm = Map::new();
        for (i, p) in parts.into_iter().enumerate() {
            mm.insert(format!("_{i}"), Value::str(p));
        }
        Ok(Value::map(mm))
    });
    reg(m, "join", |_, a| {
        arity("join", a, 2)?;
        let sep = s(a, 0)?;
        let parts: Vec<String> = match arg(a, 1) {
            Value::List(l) => l.iter().filter(|x| !x.is_nil()).map(strval).collect(),
            Value::Nil => vec![],
            o => vec![strval(o)],
        };
        Ok(Value::str(parts.join(&sep)))
    });
    reg(m, "sortAlpha", |_, a| {
        arity("sortAlpha", a, 1)?;
        let mut l: Vec<String> = match arg(a, 0) {
            Value::List(l) => l.iter().map(strval).collect(),
            o => vec![strval(o)],
        };
        l.sort();
        Ok(Value::from(
            l.into_iter().map(Value::str).collect::<Vec<_>>(),
        ))
    });
    reg(m, "regexMatch", |_, a| {
        arity("regexMatch", a, 2)?;
        Ok(Value::Bool(regex(&s(a, 0)?)?.is_match(&s(a, 1)?)))
    });
    reg(m, "mustRegexMatch", |_, a| {
        arity("mustRegexMatch", a, 2)?;
        Ok(Value::Bool(regex(&s(a, 0)?)?.is_match(&s(a, 1)?)))
    });
    let find_all: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("regexFindAll", a, 3)?;
        let re = regex(&s(a, 0)?)?;
        let x = s(a, 1)?;
        let lim = n(a, 2)?;
        let it = re.find_iter(&x).map(|m| Value::str(m.as_str()));
        let v: Vec<Value> = if lim < 0 {
            it.collect()
        } else {
            it.take(lim as usize).collect()
        };
        Ok(Value::from(v))
    };
    reg(m, "regexFindAll", find_all);
    reg(m, "mustRegexFindAll", find_all);
    let find: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("regexFind", a, 2)?;
        let re = regex(&s(a, 0)?)?;
        Ok(Value::str(
            re.find(&s(a, 1)?)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
        ))
    };
    reg(m, "regexFind", find);
    reg(m, "mustRegexFind", find);
    let repl_all: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("regexReplaceAll", a, 3)?;
        let re = regex(&s(a, 0)?)?;
        Ok(Value::str(re.replace_all(
            &s(a, 1)?,
            go_template_repl(&s(a, 2)?).as_str(),
        )))
    };
    reg(m, "regexReplaceAll", repl_all);
    reg(m, "mustRegexReplaceAll", repl_all);
    let repl_lit: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("regexReplaceAllLiteral", a, 3)?;
        let re = regex(&s(a, 0)?)?;
        Ok(Value::str(
            re.replace_all(&s(a, 1)?, regex::NoExpand(&s(a, 2)?)),
        ))
    };
    reg(m, "regexReplaceAllLiteral", repl_lit);
    reg(m, "mustRegexReplaceAllLiteral", repl_lit);
    let rsplit: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("regexSplit", a, 3)?;
        let re = regex(&s(a, 0)?)?;
        let x = s(a, 1)?;
        let lim = n(a, 2)?;
        let v: Vec<Value> = if lim == 0 {
            vec![]
        } else if lim < 0 {
            re.split(&x).map(Value::str).collect()
        } else {
            re.splitn(&x, lim as usize).map(Value::str).collect()
        };
        Ok(Value::from(v))
    };
    reg(m, "regexSplit", rsplit);
    reg(m, "mustRegexSplit", rsplit);
    reg(m, "regexQuoteMeta", |_, a| {
        Ok(Value::str(regex::escape(&s(a, 0)?)))
    });
    reg(m, "b64enc", |_, a| {
        arity("b64enc", a, 1)?;
        Ok(Value::str(
            base64::engine::general_purpose::STANDARD.encode(strval(arg(a, 0))),
        ))
    });
    reg(m, "b64dec", |_, a| {
        arity("b64dec", a, 1)?;
        Ok(Value::str(
            match base64::engine::general_purpose::STANDARD.decode(strval(arg(a, 0))) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e.to_string(),
            },
        ))
    });
    reg(m, "b32enc", |_, a| {
        arity("b32enc", a, 1)?;
        Ok(Value::str(b32enc(strval(arg(a, 0)).as_bytes())))
    });
    reg(m, "b32dec", |_, a| {
        arity("b32dec", a, 1)?;
        Ok(Value::str(match b32dec(&strval(arg(a, 0))) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => e,
        }))
    });
    reg(m, "sha1sum", |_, a| {
        Ok(Value::str(hexs(&sha1::Sha1::digest(s(a, 0)?.as_bytes()))))
    });
    reg(m, "sha256sum", |_, a| {
        Ok(Value::str(hexs(&sha2::Sha256::digest(s(a, 0)?.as_bytes()))))
    });
    reg(m, "sha512sum", |_, a| {
        Ok(Value::str(hexs(&sha2::Sha512::digest(s(a, 0)?.as_bytes()))))
    });
    reg(m, "adler32sum", |_, a| {
        Ok(Value::str(adler32(s(a, 0)?.as_bytes()).to_string()))
    });
    reg(m, "base", |_, a| Ok(Value::str(path_base(&s(a, 0)?))));
    reg(m, "dir", |_, a| Ok(Value::str(path_dir(&s(a, 0)?))));
    reg(m, "clean", |_, a| Ok(Value::str(path_clean(&s(a, 0)?))));
    reg(m, "ext", |_, a| Ok(Value::str(path_ext(&s(a, 0)?))));
    reg(m, "isAbs", |_, a| {
        Ok(Value::Bool(s(a, 0)?.starts_with('/')))
    });
    reg(m, "osBase", |_, a| Ok(Value::str(path_base(&s(a, 0)?))));
    reg(m, "osDir", |_, a| Ok(Value::str(path_dir(&s(a, 0)?))));
    reg(m, "osClean", |_, a| Ok(Value::str(path_clean(&s(a, 0)?))));
    reg(m, "osExt", |_, a| Ok(Value::str(path_ext(&s(a, 0)?))));
    reg(m, "osIsAbs", |_, a| {
        Ok(Value::Bool(s(a, 0)?.starts_with('/')))
    });
}

/// strings.Split: an empty separator splits into UTF-8 sequences.
fn go_split(x: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return x.chars().map(|c| c.to_string()).collect();
    }
    x.split(sep).map(String::from).collect()
}

fn lists_dicts(m: &mut FuncMap) {
    let list: fn(&mut Exec<'_>, Args) -> Res = |_, a| Ok(Value::from(a.to_vec()));
    reg(m, "list", list);
    reg(m, "tuple", list);
    reg(m, "dict", |_, a| {
        let mut mm = Map::new();
        for pair in a.chunks(2) {
            let k = strval(&pair[0]);
            let v = pair.get(1).cloned().unwrap_or_else(|| Value::str(""));
            mm.insert(k, v);
        }
        Ok(Value::map(mm))
    });
    reg(m, "get", |_, a| {
        arity("get", a, 2)?;
        let d = map_of(arg(a, 0))?;
        Ok(d.get(&s(a, 1)?).unwrap_or_else(|| Value::str("")))
    });
    reg(m, "set", |_, a| {
        arity("set", a, 3)?;
        let d = map_of(arg(a, 0))?;
        d.insert(s(a, 1)?, arg(a, 2).clone());
        Ok(arg(a, 0).clone())
    });
    reg(m, "unset", |_, a| {
        arity("unset", a, 2)?;
        let d = map_of(arg(a, 0))?;
        d.write().remove(&s(a, 1)?);
        Ok(arg(a, 0).clone())
    });
    reg(m, "hasKey", |_, a| {
        arity("hasKey", a, 2)?;
        let d = map_of(arg(a, 0))?;
        Ok(Value::Bool(d.contains_key(&s(a, 1)?)))
    });
    reg(m, "pluck", |_, a| {
        arity_min("pluck", a, 1)?;
        let k = s(a, 0)?;
        let mut out = Vec::new();
        for d in &a[1..] {
            if let Some(v) = map_of(d)?.get(&k) {
                out.push(v);
            }
        }
        Ok(Value::from(out))
    });
    reg(m, "keys", |_, a| {
        let mut out = Vec::new();
        for d in a {
            for k in map_of(d)?.read().keys() {
                out.push(Value::str(k));
            }
        }
        Ok(Value::from(out))
    });
    reg(m, "values", |_, a| {
        arity("values", a, 1)?;
        Ok(Value::from(
            map_of(arg(a, 0))?
                .read()
                .values()
                .cloned()
                .collect::<Vec<_>>(),
        ))
    });
    reg(m, "pick", |_, a| {
        arity_min("pick", a, 1)?;
        let d = map_of(arg(a, 0))?;
        let mut out = Map::new();
        for k in &a[1..] {
            let k = strval(k);
            if let Some(v) = d.get(&k) {
                out.insert(k, v);
            }
        }
        Ok(Value::map(out))
    });
    reg(m, "omit", |_, a| {
        arity_min("omit", a, 1)?;
        let d = map_of(arg(a, 0))?;
        let drop: Vec<String> = a[1..].iter().map(strval).collect();
        let out: Map = d
            .snapshot()
            .into_iter()
            .filter(|(k, _)| !drop.contains(k))
            .collect();
        Ok(Value::map(out))
    });
    let merge: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity_min("merge", a, 1)?;
        let dst = map_of(arg(a, 0))?;
        for src in &a[1..] {
            mergo(&dst, &map_of(src)?, false);
        }
        Ok(arg(a, 0).clone())
    };
    reg(m, "merge", merge);
    reg(m, "mustMerge", merge);
    let merge_o: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity_min("mergeOverwrite", a, 1)?;
        let dst = map_of(arg(a, 0))?;
        for src in &a[1..] {
            mergo(&dst, &map_of(src)?, true);
        }
        Ok(arg(a, 0).clone())
    };
    reg(m, "mergeOverwrite", merge_o);
    reg(m, "mustMergeOverwrite", merge_o);
    let deep: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("deepCopy", a, 1)?;
        Ok(arg(a, 0).deep_copy())
    };
    reg(m, "deepCopy", deep);
    reg(m, "mustDeepCopy", deep);
    reg(m, "dig", |_, a| {
        arity_min("dig", a, 3)?;
        let d = a[a.len() - 1].clone();
        let def = a[a.len() - 2].clone();
        let keys: Vec<String> = a[..a.len() - 2].iter().map(strval).collect();
        let mut cur = d;
        for k in &keys {
            match map_of(&cur)?.get(k) {
                Some(v) => cur = v,
                None => return Ok(def),
            }
        }
        Ok(cur)
    });
    let append: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("append", a, 2)?;
        let mut l = if arg(a, 0).is_nil() {
            vec![]
        } else {
            list_of(arg(a, 0), "push")?
        };
        l.push(arg(a, 1).clone());
        Ok(Value::from(l))
    };
    reg(m, "append", append);
    reg(m, "push", append);
    reg(m, "mustAppend", append);
    reg(m, "mustPush", append);
    let prepend: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("prepend", a, 2)?;
        let mut l = if arg(a, 0).is_nil() {
            vec![]
        } else {
            list_of(arg(a, 0), "prepend")?
        };
        l.insert(0, arg(a, 1).clone());
        Ok(Value::from(l))
    };
    reg(m, "prepend", prepend);
    reg(m, "mustPrepend", prepend);
    let first: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("first", a, 1)?;
        if arg(a, 0).is_nil() {
            return Ok(Value::Nil);
        }
        Ok(list_of(arg(a, 0), "first")?
            .first()
            .cloned()
            .unwrap_or_default())
    };
    reg(m, "first", first);
    reg(m, "mustFirst", first);
    let last: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("last", a, 1)?;
        if arg(a, 0).is_nil() {
            return Ok(Value::Nil);
        }
        Ok(list_of(arg(a, 0), "last")?
            .last()
            .cloned()
            .unwrap_or_default())
    };
    reg(m, "last", last);
    reg(m, "mustLast", last);
    let rest: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("rest", a, 1)?;
        if arg(a, 0).is_nil() {
            return Ok(Value::Nil);
        }
        let l = list_of(arg(a, 0), "rest")?;
        if l.is_empty() {
            return Ok(Value::Nil);
        }
        Ok(Value::from(l[1..].to_vec()))
    };
    reg(m, "rest", rest);
    reg(m, "mustRest", rest);
    let initial: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("initial", a, 1)?;
        if arg(a, 0).is_nil() {
            return Ok(Value::Nil);
        }
        let l = list_of(arg(a, 0), "initial")?;
        if l.is_empty() {
            return Ok(Value::Nil);
        }
        Ok(Value::from(l[..l.len() - 1].to_vec()))
    };
    reg(m, "initial", initial);
    reg(m, "mustInitial", initial);
    let reverse: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("reverse", a, 1)?;
        let mut l = list_of(arg(a, 0), "reverse")?;
        l.reverse();
        Ok(Value::from(l))
    };
    reg(m, "reverse", reverse);
    reg(m, "mustReverse", reverse);
    let uniq: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("uniq", a, 1)?;
        let l = list_of(arg(a, 0), "uniq")?;
        let mut out: Vec<Value> = Vec::new();
        for x in l {
            if !out.iter().any(|y| y.deep_eq(&x)) {
                out.push(x);
            }
        }
        Ok(Value::from(out))
    };
    reg(m, "uniq", uniq);
    reg(m, "mustUniq", uniq);
    let without: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity_min("without", a, 1)?;
        let l = list_of(arg(a, 0), "without")?;
        Ok(Value::from(
            l.into_iter()
                .filter(|x| !a[1..].iter().any(|y| y.deep_eq(x)))
                .collect::<Vec<_>>(),
        ))
    };
    reg(m, "without", without);
    reg(m, "mustWithout", without);
    let has: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("has", a, 2)?;
        if arg(a, 1).is_nil() {
            return Ok(Value::Bool(false));
        }
        let l = list_of(arg(a, 1), "has")?;
        Ok(Value::Bool(l.iter().any(|x| x.deep_eq(arg(a, 0)))))
    };
    reg(m, "has", has);
    reg(m, "mustHas", has);
    let compact: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("compact", a, 1)?;
        let l = list_of(arg(a, 0), "compact")?;
        Ok(Value::from(
            l.into_iter().filter(|x| !empty(x)).collect::<Vec<_>>(),
        ))
    };
    reg(m, "compact", compact);
    reg(m, "mustCompact", compact);
    reg(m, "concat", |_, a| {
        let mut out = Vec::new();
        for l in a {
            if l.is_nil() {
                continue;
            }
            out.extend(list_of(l, "concat")?);
        }
        Ok(Value::from(out))
    });
    let chunk: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("chunk", a, 2)?;
        let size = n(a, 0)?.max(1) as usize;
        let l = list_of(arg(a, 1), "chunk")?;
        Ok(Value::from(
            l.chunks(size)
                .map(|c| Value::from(c.to_vec()))
                .collect::<Vec<_>>(),
        ))
    };
    reg(m, "chunk", chunk);
    reg(m, "mustChunk", chunk);
    reg(m, "mustSlice", |ex, a| {
        let f = m_get("slice");
        f(ex, a)
    });
    reg(m, "until", |_, a| {
        let c = n(a, 0)?;
        gen_limit(c.saturating_abs())?;
        let v: Vec<Value> = if c >= 0 {
            (0..c).map(Value::int).collect()
        } else {
            (c + 1..=0).rev().map(Value::int).collect()
        };
        Ok(Value::from(v))
    });
    reg(m, "untilStep", |_, a| {
        arity("untilStep", a, 3)?;
        let (st, stop, step) = (n(a, 0)?, n(a, 1)?, n(a, 2)?);
        if step != 0 {
            gen_limit((stop.saturating_sub(st) / step).saturating_abs())?;
        }
        let mut v = Vec::new();
        if step > 0 && st < stop {
            let mut i = st;
            while i < stop {
                v.push(Value::int(i));
                i += step;
            }
        } else if step < 0 && st > stop {
            let mut i = st;
            while i > stop {
                v.push(Value::int(i));
                i += step;
            }
        }
        Ok(Value::from(v))
    });
    reg(m, "seq", |_, a| {
        let p: Vec<i64> = a.iter().map(to_i64).collect();
        let (st, step, end) = match p.len() {
            0 => return Ok(Value::str("")),
            1 => (1, if p[0] >= 1 { 1 } else { -1 }, p[0]),
            2 => (p[0], if p[1] >= p[0] { 1 } else { -1 }, p[1]),
            _ => (p[0], p[1], p[2]),
        };
        let mut v = Vec::new();
        if step == 0 {
            return Ok(Value::str(""));
        }
        gen_limit((end.saturating_sub(st) / step).saturating_abs())?;
        let mut i = st;
        while (step > 0 && i <= end) || (step < 0 && i >= end) {
            v.push(i.to_string());
            i += step;
        }
        Ok(Value::str(v.join(" ")))
    });
}

fn m_get(name: &str) -> Func {
    let mut m = FuncMap::default();
    builtins(&mut m);
    m.remove(name)
        .unwrap_or_else(|| Arc::new(|_: &mut Exec<'_>, _: Args| Ok(Value::Nil)))
}

fn math(m: &mut FuncMap) {
    let i64v = |x: i64| Value::Int(x, IntKind::Int64);
    reg(m, "add1", move |_, a| {
        arity("add1", a, 1)?;
        Ok(i64v(to_i64(arg(a, 0)).wrapping_add(1)))
    });
    reg(m, "add", move |_, a| {
        Ok(i64v(
            a.iter().map(to_i64).fold(0i64, |x, y| x.wrapping_add(y)),
        ))
    });
    reg(m, "sub", move |_, a| {
        arity("sub", a, 2)?;
        Ok(i64v(to_i64(arg(a, 0)).wrapping_sub(to_i64(arg(a, 1)))))
    });
    reg(m, "div", move |_, a| {
        arity("div", a, 2)?;
        let d = to_i64(arg(a, 1));
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(i64v(to_i64(arg(a, 0)).wrapping_div(d)))
    });
    reg(m, "mod", move |_, a| {
        arity("mod", a, 2)?;
        let d = to_i64(arg(a, 1));
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(i64v(to_i64(arg(a, 0)).wrapping_rem(d)))
    });
    reg(m, "mul", move |_, a| {
        arity_min("mul", a, 1)?;
        Ok(i64v(
            a.iter().map(to_i64).fold(1i64, |x, y| x.wrapping_mul(y)),
        ))
    });
    reg(m, "randInt", move |ex, a| {
        arity("randInt", a, 2)?;
        let (lo, hi) = (to_i64(arg(a, 0)), to_i64(arg(a, 1)));
        if hi <= lo {
            return Err("invalid argument to Intn".into());
        }
        Ok(Value::int(
            lo + (ex.host.random_u64() % (hi - lo) as u64) as i64,
        ))
    });
    let max: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity_min("max", a, 1)?;
        Ok(Value::Int(
            a.iter().map(to_i64).max().unwrap_or(0),
            IntKind::Int64,
        ))
    };
    reg(m, "max", max);
    reg(m, "biggest", max);
    reg(m, "min", |_, a| {
        arity_min("min", a, 1)?;
        Ok(Value::Int(
            a.iter().map(to_i64).min().unwrap_or(0),
            IntKind::Int64,
        ))
    });
    reg(m, "maxf", |_, a| {
        arity_min("maxf", a, 1)?;
        Ok(Value::Float(
            a.iter().map(to_f64).fold(f64::NEG_INFINITY, f64::max),
        ))
    });
    reg(m, "minf", |_, a| {
        arity_min("minf", a, 1)?;
        Ok(Value::Float(
            a.iter().map(to_f64).fold(f64::INFINITY, f64::min),
        ))
    });
    reg(m, "floor", |_, a| {
        Ok(Value::Float(to_f64(arg(a, 0)).floor()))
    });
    reg(m, "ceil", |_, a| Ok(Value::Float(to_f64(arg(a, 0)).ceil())));
    reg(m, "round", |_, a| {
        arity_min("round", a, 2)?;
        let (x, p) = (to_f64(arg(a, 0)), to_i64(arg(a, 1)));
        let r = if a.len() > 2 { to_f64(arg(a, 2)) } else { 0.5 };
        let pow = 10f64.powi(p as i32);
        let digit = pow * x;
        let (int, frac) = (digit.trunc(), digit.fract());
        let rounder = if frac >= r { int + 1.0 } else { int };
        Ok(Value::Float(rounder / pow))
    });
    reg(m, "addf", |_, a| {
        Ok(Value::Float(a.iter().map(to_f64).sum()))
    });
    reg(m, "add1f", |_, a| Ok(Value::Float(to_f64(arg(a, 0)) + 1.0)));
    reg(m, "subf", |_, a| {
        arity_min("subf", a, 1)?;
        Ok(Value::Float(
            a[1..]
                .iter()
                .map(to_f64)
                .fold(to_f64(arg(a, 0)), |x, y| x - y),
        ))
    });
    reg(m, "divf", |_, a| {
        arity_min("divf", a, 1)?;
        Ok(Value::Float(
            a[1..]
                .iter()
                .map(to_f64)
                .fold(to_f64(arg(a, 0)), |x, y| x / y),
        ))
    });
    reg(m, "mulf", |_, a| {
        arity_min("mulf", a, 1)?;
        Ok(Value::Float(
            a[1..]
                .iter()
                .map(to_f64)
                .fold(to_f64(arg(a, 0)), |x, y| x * y),
        ))
    });
    reg(m, "int", |_, a| {
        arity("int", a, 1)?;
        Ok(Value::int(to_i64(arg(a, 0))))
    });
    reg(m, "int64", |_, a| {
        arity("int64", a, 1)?;
        Ok(Value::Int(to_i64(arg(a, 0)), IntKind::Int64))
    });
    reg(m, "float64", |_, a| {
        arity("float64", a, 1)?;
        Ok(Value::Float(to_f64(arg(a, 0))))
    });
    reg(m, "atoi", |_, a| {
        Ok(Value::int(s(a, 0)?.parse::<i64>().unwrap_or(0)))
    });
    reg(m, "toDecimal", |_, a| {
        Ok(Value::Int(
            i64::from_str_radix(&strval(arg(a, 0)), 8).unwrap_or(0),
            IntKind::Int64,
        ))
    });
}

fn misc(m: &mut FuncMap) {
    reg(m, "default", |_, a| {
        arity_min("default", a, 1)?;
        if a.len() < 2 || empty(arg(a, 1)) {
            return Ok(arg(a, 0).clone());
        }
        Ok(arg(a, 1).clone())
    });
    reg(m, "empty", |_, a| {
        arity("empty", a, 1)?;
        Ok(Value::Bool(empty(arg(a, 0))))
    });
    reg(m, "coalesce", |_, a| {
        Ok(a.iter().find(|x| !empty(x)).cloned().unwrap_or_default())
    });
    reg(m, "all", |_, a| {
        Ok(Value::Bool(a.iter().all(|x| !empty(x))))
    });
    reg(m, "any", |_, a| {
        Ok(Value::Bool(a.iter().any(|x| !empty(x))))
    });
    reg(m, "ternary", |_, a| {
        arity("ternary", a, 3)?;
        Ok(if arg(a, 2).truthy() {
            arg(a, 0).clone()
        } else {
            arg(a, 1).clone()
        })
    });
    reg(m, "typeOf", |_, a| {
        Ok(Value::str(
            a.first()
                .map(|v| v.type_name())
                .unwrap_or_else(|| "<nil>".into()),
        ))
    });
    reg(m, "typeIs", |_, a| {
        arity("typeIs", a, 2)?;
        Ok(Value::Bool(s(a, 0)? == arg(a, 1).type_name()))
    });
    reg(m, "typeIsLike", |_, a| {
        arity("typeIsLike", a, 2)?;
        let t = s(a, 0)?;
        let n = arg(a, 1).type_name();
        Ok(Value::Bool(t == n || t == format!("*{n}")))
    });
    reg(m, "kindOf", |_, a| {
        Ok(Value::str(
            a.first().map(|v| v.kind_name()).unwrap_or("invalid"),
        ))
    });
    reg(m, "kindIs", |_, a| {
        arity("kindIs", a, 2)?;
        Ok(Value::Bool(s(a, 0)? == arg(a, 1).kind_name()))
    });
    reg(m, "deepEqual", |_, a| {
        arity("deepEqual", a, 2)?;
        Ok(Value::Bool(arg(a, 0).deep_eq(arg(a, 1))))
    });
    reg(m, "uuidv4", |ex, _| {
        let (x, y) = (ex.host.random_u64(), ex.host.random_u64());
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&x.to_be_bytes());
        b[8..].copy_from_slice(&y.to_be_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hexs(&b);
        Ok(Value::str(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )))
    });
    reg(m, "randBytes", |ex, a| {
        let c = gen_limit(n(a, 0)?)?;
        let b: Vec<u8> = (0..c).map(|_| ex.host.random_u64() as u8).collect();
        Ok(Value::str(
            base64::engine::general_purpose::STANDARD.encode(b),
        ))
    });
    reg(m, "getHostByName", |ex, a| {
        Ok(Value::str(ex.host.host_by_name(&s(a, 0)?)))
    });
    crate::url::register(m);
}

fn helm(m: &mut FuncMap) {
    reg(m, "include", |ex, a| {
        arity("include", a, 2)?;
        let name = s(a, 0)?;
        Ok(Value::str(ex.include(&name, arg(a, 1))?))
    });
    reg(m, "tpl", |ex, a| {
        arity("tpl", a, 2)?;
        // The text is shared with the parsed template, not copied (it can be a whole file).
        let text = match arg(a, 0) {
            Value::Str(t) => t.clone(),
            _ => Arc::from(s(a, 0)?),
        };
        Ok(Value::str(ex.tpl_shared(text, arg(a, 1))?))
    });
    reg(m, "required", |_, a| {
        arity("required", a, 2)?;
        let msg = s(a, 0)?;
        match arg(a, 1) {
            Value::Nil => Err(user_error(&msg)),
            Value::Str(x) if x.is_empty() => Err(user_error(&msg)),
            v => Ok(v.clone()),
        }
    });
    reg(m, "fail", |_, a| {
        arity("fail", a, 1)?;
        Err(user_error(&s(a, 0)?))
    });
    let to_yaml: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("toYaml", a, 1)?;
        let y = crate::yaml::to_yaml(arg(a, 0));
        Ok(Value::str(y.strip_suffix('\n').unwrap_or(&y)))
    };
    reg(m, "toYaml", to_yaml);
    reg(m, "mustToYaml", to_yaml);
    reg(m, "toYamlPretty", |_, a| {
        arity("toYamlPretty", a, 1)?;
        let y = crate::yaml::to_yaml_pretty(arg(a, 0));
        Ok(Value::str(y.strip_suffix('\n').unwrap_or(&y)))
    });
    reg(m, "fromYaml", |_, a| {
        arity("fromYaml", a, 1)?;
        Ok(
            match crate::yaml::parse(&s(a, 0)?, crate::yaml::Numbers::Json) {
                Ok(Value::Map(mm)) => Value::Map(mm),
                Ok(Value::Nil) => Value::map(Map::new()),
                Ok(_) => err_map(
                    "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal into Go value of type map[string]interface {}",
                ),
                Err(e) => err_map(&format!("error converting YAML to JSON: {e}")),
            },
        )
    });
    reg(m, "fromYamlArray", |_, a| {
        arity("fromYamlArray", a, 1)?;
        Ok(
            match crate::yaml::parse(&s(a, 0)?, crate::yaml::Numbers::Json) {
                Ok(Value::List(l)) => Value::List(l),
                Ok(Value::Nil) => Value::from(Vec::<Value>::new()),
                Ok(_) => Value::from(vec![Value::str(
                    "error unmarshaling JSON: json: cannot unmarshal object into Go value of type []interface {}",
                )]),
                Err(e) => Value::from(vec![Value::str(format!(
                    "error converting YAML to JSON: {e}"
                ))]),
            },
        )
    });
    let to_json: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("toJson", a, 1)?;
        Ok(Value::str(crate::json::to_json(arg(a, 0), true, None)))
    };
    reg(m, "toJson", to_json);
    reg(m, "mustToJson", to_json);
    let to_raw: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("toRawJson", a, 1)?;
        Ok(Value::str(crate::json::to_json(arg(a, 0), false, None)))
    };
    reg(m, "toRawJson", to_raw);
    reg(m, "mustToRawJson", to_raw);
    let pretty: fn(&mut Exec<'_>, Args) -> Res = |_, a| {
        arity("toPrettyJson", a, 1)?;
        Ok(Value::str(crate::json::to_json(
            arg(a, 0),
            true,
            Some("  "),
        )))
    };
    reg(m, "toPrettyJson", pretty);
    reg(m, "mustToPrettyJson", pretty);
    reg(m, "fromJson", |_, a| {
        arity("fromJson", a, 1)?;
        Ok(match crate::json::parse(&s(a, 0)?) {
            Ok(Value::Map(mm)) => Value::Map(mm),
            Ok(_) => {
                err_map("json: cannot unmarshal into Go value of type map[string]interface {}")
            }
            Err(e) => err_map(&e),
        })
    });
    reg(m, "mustFromJson", |_, a| {
        arity("mustFromJson", a, 1)?;
        crate::json::parse(&s(a, 0)?)
    });
    reg(m, "fromJsonArray", |_, a| {
        arity("fromJsonArray", a, 1)?;
        Ok(match crate::json::parse(&s(a, 0)?) {
            Ok(Value::List(l)) => Value::List(l),
            Ok(_) => Value::from(vec![Value::str(
                "json: cannot unmarshal object into Go value of type []interface {}",
            )]),
            Err(e) => Value::from(vec![Value::str(e)]),
        })
    });
    reg(m, "toToml", |_, a| {
        arity("toToml", a, 1)?;
        Ok(Value::str(crate::toml::to_toml(arg(a, 0))))
    });
    reg(m, "fromToml", |_, a| {
        arity("fromToml", a, 1)?;
        Ok(match crate::toml::from_toml(&s(a, 0)?) {
            Ok(v) => v,
            Err(e) => err_map(&e),
        })
    });
    reg(m, "lookup", |ex, a| {
        arity("lookup", a, 4)?;
        ex.host.lookup(&s(a, 0)?, &s(a, 1)?, &s(a, 2)?, &s(a, 3)?)
    });
}

/// Helm marks the messages of `fail` and `required` so that the final error shows them
/// alone; see [`user_message`].
pub const USER_ERR_START: &str = "HELM_ERR_START";
pub const USER_ERR_END: &str = "HELM_ERR_END";

fn user_error(msg: &str) -> String {
    format!("{USER_ERR_START}{msg}{USER_ERR_END}")
}

/// The message of a `fail` or `required` inside an error chain, if any.
pub fn user_message(err: &str) -> Option<&str> {
    let start = err.find(USER_ERR_START)? + USER_ERR_START.len();
    let end = err.rfind(USER_ERR_END)?;
    err.get(start..end)
}

fn err_map(e: &str) -> Value {
    let mut mm = Map::new();
    mm.insert("Error".into(), Value::str(e));
    Value::map(mm)
}

/// Sorting helper used by other modules.
pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    strval(a).cmp(&strval(b))
}
