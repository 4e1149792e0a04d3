//! Bash-style variable substitution as Flux's post-build step does it
//! (`fluxcd/pkg/envsubst`, a fork of drone/envsubst): only `${...}` expressions are
//! expanded (`$var` is left alone), `$$` escapes a dollar (so `$${var}` is the literal
//! `${var}`), and the bash forms below are supported. In Flux's default (non-strict)
//! mode every variable counts as set, so an unknown `${var}` becomes empty and only the
//! colon forms (`:-`, `:=`) fall back to their default.
//!
//! | form | meaning |
//! |---|---|
//! | `${var}` | value |
//! | `${#var}` | length |
//! | `${var^}` `${var^^}` `${var,}` `${var,,}` | case changes |
//! | `${var:n}` `${var:n:len}` | substring |
//! | `${var#pat}` `${var##pat}` `${var%pat}` `${var%%pat}` | strip glob prefix/suffix |
//! | `${var-def}` `${var:-def}` `${var=def}` `${var:=def}` | defaults |
//! | `${var/pat/rep}` `${var//pat/rep}` `${var/#pat/rep}` `${var/%pat/rep}` | replace |

use std::collections::BTreeMap;

/// Why substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    /// A `${` with no closing `}`.
    #[error("missing closing brace in {0:?}")]
    Unclosed(String),
    /// An expression this syntax does not support.
    #[error("unsupported or malformed expression ${{{0}}}")]
    Unsupported(String),
    /// A variable with no value in strict mode.
    #[error("variable not set (strict mode): {0}")]
    NotSet(String),
}

/// Variables and the lookup mode.
pub struct Vars<'a> {
    /// The variables.
    pub values: &'a BTreeMap<String, String>,
    /// Strict: a variable without a value (and no default) is an error.
    pub strict: bool,
}

impl Vars<'_> {
    fn lookup(&self, name: &str) -> Result<(String, bool), SubstError> {
        match self.values.get(name) {
            Some(v) => Ok((v.clone(), true)),
            None if self.strict => Ok((String::new(), false)),
            // Flux's non-strict lookup reports every variable as set.
            None => Ok((String::new(), true)),
        }
    }
}

/// Expands every `${...}` in `input`.
pub fn substitute(input: &str, vars: &Vars) -> Result<String, SubstError> {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let end = matching_brace(input, i + 2)
                .ok_or_else(|| SubstError::Unclosed(snippet(input, i)))?;
            out.push_str(&expand(&input[i + 2..end], vars)?);
            i = end + 1;
            continue;
        }
        let ch = input[i..].chars().next().unwrap_or_default();
        out.push(ch);
        i += ch.len_utf8();
    }
    Ok(out)
}

fn snippet(input: &str, at: usize) -> String {
    input[at..].chars().take(40).collect()
}

/// Index of the `}` closing an expression starting at `start`, allowing nested `${...}`.
fn matching_brace(input: &str, start: usize) -> Option<usize> {
    let bytes = input.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn expand(expr: &str, vars: &Vars) -> Result<String, SubstError> {
    let unsupported = || SubstError::Unsupported(expr.to_string());
    if let Some(name) = expr.strip_prefix('#') {
        if !name.is_empty() && name.chars().all(is_ident) {
            let (value, _) = vars.lookup(name)?;
            return Ok(value.chars().count().to_string());
        }
        return Err(unsupported());
    }
    let name_end = expr.find(|c: char| !is_ident(c)).unwrap_or(expr.len());
    let name = &expr[..name_end];
    if name.is_empty() {
        return Err(unsupported());
    }
    let op = &expr[name_end..];
    let (value, set) = vars.lookup(name)?;
    let strict_value = |value: String| {
        if vars.strict && !set {
            Err(SubstError::NotSet(name.to_string()))
        } else {
            Ok(value)
        }
    };
    if op.is_empty() {
        return strict_value(value);
    }
    // Defaults: the default is itself expanded.
    for (prefix, use_when_empty) in [(":-", true), (":=", true), ("-", false), ("=", false)] {
        if let Some(default) = op.strip_prefix(prefix) {
            let use_default = !set || (use_when_empty && value.is_empty());
            return if use_default {
                substitute(default, vars)
            } else {
                Ok(value)
            };
        }
    }
    if op.starts_with(":+") || op.starts_with(":?") || op.starts_with('+') || op.starts_with('?') {
        return Err(unsupported());
    }
    let value = strict_value(value)?;
    match op {
        "^" => return Ok(map_first(&value, |c| c.to_uppercase().collect())),
        "^^" => return Ok(value.to_uppercase()),
        "," => return Ok(map_first(&value, |c| c.to_lowercase().collect())),
        ",," => return Ok(value.to_lowercase()),
        _ => {}
    }
    if let Some(range) = op.strip_prefix(':') {
        return substring(&value, range).ok_or_else(unsupported);
    }
    if let Some(pattern) = op.strip_prefix("##") {
        return Ok(strip_prefix(&value, &substitute(pattern, vars)?, true));
    }
    if let Some(pattern) = op.strip_prefix('#') {
        return Ok(strip_prefix(&value, &substitute(pattern, vars)?, false));
    }
    if let Some(pattern) = op.strip_prefix("%%") {
        return Ok(strip_suffix(&value, &substitute(pattern, vars)?, true));
    }
    if let Some(pattern) = op.strip_prefix('%') {
        return Ok(strip_suffix(&value, &substitute(pattern, vars)?, false));
    }
    if let Some(rest) = op.strip_prefix('/') {
        let (mode, rest) = match rest.chars().next() {
            Some('/') => (Replace::All, &rest[1..]),
            Some('#') => (Replace::Prefix, &rest[1..]),
            Some('%') => (Replace::Suffix, &rest[1..]),
            _ => (Replace::First, rest),
        };
        let (pattern, replacement) = split_unescaped_slash(rest);
        let pattern = substitute(&pattern, vars)?;
        let replacement = substitute(&replacement, vars)?;
        return Ok(replace(&value, &pattern, &replacement, mode));
    }
    Err(unsupported())
}

fn map_first(value: &str, f: impl Fn(char) -> String) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(c) => f(c) + chars.as_str(),
        None => String::new(),
    }
}

fn substring(value: &str, range: &str) -> Option<String> {
    let chars: Vec<char> = value.chars().collect();
    let (offset, length) = match range.split_once(':') {
        Some((o, l)) => (o.trim(), Some(l.trim())),
        None => (range.trim(), None),
    };
    let offset: i64 = offset.parse().ok()?;
    let start = if offset < 0 {
        (chars.len() as i64 + offset).max(0) as usize
    } else {
        (offset as usize).min(chars.len())
    };
    let end = match length {
        None => chars.len(),
        Some(l) => {
            let l: i64 = l.parse().ok()?;
            if l < 0 {
                (chars.len() as i64 + l).max(start as i64) as usize
            } else {
                (start + l as usize).min(chars.len())
            }
        }
    };
    Some(chars[start..end.max(start)].iter().collect())
}

fn split_unescaped_slash(text: &str) -> (String, String) {
    let mut pattern = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('/') | Some('\\')) => {
                pattern.push(chars.next().unwrap_or('\\'))
            }
            '/' => return (pattern, chars.collect()),
            other => pattern.push(other),
        }
    }
    (pattern, String::new())
}

#[derive(Clone, Copy)]
enum Replace {
    First,
    All,
    Prefix,
    Suffix,
}

/// Char boundaries of `s`, including its end.
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect()
}

fn strip_prefix(value: &str, pattern: &str, longest: bool) -> String {
    let mut ends = boundaries(value);
    if longest {
        ends.reverse();
    }
    for end in ends {
        if glob_match(pattern, &value[..end]) {
            return value[end..].to_string();
        }
    }
    value.to_string()
}

fn strip_suffix(value: &str, pattern: &str, longest: bool) -> String {
    let mut starts = boundaries(value);
    if !longest {
        starts.reverse();
    }
    for start in starts {
        if glob_match(pattern, &value[start..]) {
            return value[..start].to_string();
        }
    }
    value.to_string()
}

fn replace(value: &str, pattern: &str, replacement: &str, mode: Replace) -> String {
    if pattern.is_empty() {
        return value.to_string();
    }
    let bounds = boundaries(value);
    match mode {
        Replace::Prefix => {
            for &end in bounds.iter().rev() {
                if glob_match(pattern, &value[..end]) {
                    return format!("{replacement}{}", &value[end..]);
                }
            }
            value.to_string()
        }
        Replace::Suffix => {
            for &start in &bounds {
                if glob_match(pattern, &value[start..]) {
                    return format!("{}{replacement}", &value[..start]);
                }
            }
            value.to_string()
        }
        Replace::First | Replace::All => {
            let mut out = String::new();
            let mut i = 0;
            let mut replaced = false;
            while i < value.len() {
                if !(replaced && matches!(mode, Replace::First)) {
                    // Longest match starting here, like bash.
                    let found = bounds
                        .iter()
                        .rev()
                        .filter(|&&end| end > i)
                        .find(|&&end| glob_match(pattern, &value[i..end]));
                    if let Some(&end) = found {
                        out.push_str(replacement);
                        i = end;
                        replaced = true;
                        continue;
                    }
                }
                let ch = value[i..].chars().next().unwrap_or_default();
                out.push(ch);
                i += ch.len_utf8();
            }
            out
        }
    }
}

/// Shell glob matching: `*`, `?`, `[...]` (with `!`/`^` negation and ranges), `\` escapes.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| glob_at(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && glob_at(&p[1..], &t[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(1).position(|&c| c == ']').map(|i| i + 1) else {
                return t.first() == Some(&'[') && glob_at(&p[1..], &t[1..]);
            };
            let Some(&c) = t.first() else { return false };
            let class = &p[1..close];
            let (negate, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut matched = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    matched |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    matched |= class[i] == c;
                    i += 1;
                }
            }
            matched != negate && glob_at(&p[close + 1..], &t[1..])
        }
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && glob_at(&p[2..], &t[1..]),
        Some(&c) => t.first() == Some(&c) && glob_at(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, vars: &[(&str, &str)]) -> String {
        let values: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        substitute(
            input,
            &Vars {
                values: &values,
                strict: false,
            },
        )
        .unwrap()
    }

    #[test]
    fn plain_and_escaped() {
        assert_eq!(
            run("replicas: ${REPLICAS}", &[("REPLICAS", "3")]),
            "replicas: 3"
        );
        assert_eq!(run("a: $REPLICAS", &[("REPLICAS", "3")]), "a: $REPLICAS");
        assert_eq!(
            run("a: $${REPLICAS}", &[("REPLICAS", "3")]),
            "a: ${REPLICAS}"
        );
        assert_eq!(run("a: ${MISSING}", &[]), "a: ");
        assert_eq!(run("price: $5 and ${X}", &[("X", "y")]), "price: $5 and y");
        assert_eq!(run("ünïcode ${X}", &[("X", "ö")]), "ünïcode ö");
    }

    #[test]
    fn defaults() {
        assert_eq!(run("${X:=dev}", &[]), "dev");
        assert_eq!(run("${X:-dev}", &[("X", "")]), "dev");
        assert_eq!(run("${X:=dev}", &[("X", "prod")]), "prod");
        // Non-strict: every variable counts as set, so the non-colon forms keep "".
        assert_eq!(run("${X=dev}", &[]), "");
        assert_eq!(run("${X:=${Y}-x}", &[("Y", "y")]), "y-x");
    }

    #[test]
    fn string_operations() {
        let v = [("V", "Hello-World-1")];
        assert_eq!(run("${#V}", &v), "13");
        assert_eq!(run("${V^^}", &v), "HELLO-WORLD-1");
        assert_eq!(run("${V,,}", &v), "hello-world-1");
        assert_eq!(run("${V,}", &v), "hello-World-1");
        assert_eq!(run("${V:6}", &v), "World-1");
        assert_eq!(run("${V:0:5}", &v), "Hello");
        assert_eq!(run("${V#*-}", &v), "World-1");
        assert_eq!(run("${V##*-}", &v), "1");
        assert_eq!(run("${V%-*}", &v), "Hello-World");
        assert_eq!(run("${V%%-*}", &v), "Hello");
        assert_eq!(run("${V/-/_}", &v), "Hello_World-1");
        assert_eq!(run("${V//-/_}", &v), "Hello_World_1");
        assert_eq!(run("${V/#Hello/Bye}", &v), "Bye-World-1");
        assert_eq!(run("${V/%1/2}", &v), "Hello-World-2");
    }

    #[test]
    fn errors_and_strict_mode() {
        let values = BTreeMap::new();
        let vars = Vars {
            values: &values,
            strict: false,
        };
        assert_eq!(
            substitute("${X", &vars),
            Err(SubstError::Unclosed("${X".into()))
        );
        assert!(matches!(
            substitute("${X:+y}", &vars),
            Err(SubstError::Unsupported(_))
        ));
        assert!(matches!(
            substitute("${}", &vars),
            Err(SubstError::Unsupported(_))
        ));
        let strict = Vars {
            values: &values,
            strict: true,
        };
        assert_eq!(
            substitute("${X}", &strict),
            Err(SubstError::NotSet("X".into()))
        );
        assert_eq!(substitute("${X=dflt}", &strict).unwrap(), "dflt");
    }
}
