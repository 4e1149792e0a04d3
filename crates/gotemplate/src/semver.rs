//! Masterminds/semver v3: versions and constraints as sprig's `semver` and
//! `semverCompare` (and Helm's kubeVersion check) use them.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::exec::FuncMap;
use crate::value::{IntKind, Object, Value};

/// A parsed semantic version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub meta: String,
    pub original: String,
}

impl Version {
    /// Masterminds NewVersion (loose: "v" prefix, missing minor/patch allowed).
    pub fn parse(s: &str) -> Result<Version, String> {
        let orig = s.to_string();
        let t = s.strip_prefix('v').unwrap_or(s);
        let (t, meta) = match t.split_once('+') {
            Some((a, b)) => (a, b.to_string()),
            None => (t, String::new()),
        };
        let (core, pre) = match t.split_once('-') {
            Some((a, b)) => (a, b.to_string()),
            None => (t, String::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty()
            || parts.len() > 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("invalid semantic version".into());
        }
        let num = |i: usize| -> Result<u64, String> {
            match parts.get(i) {
                Some(p) => p
                    .parse()
                    .map_err(|_| "invalid semantic version".to_string()),
                None => Ok(0),
            }
        };
        let ok_ident = |x: &str| {
            x.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        };
        if (!pre.is_empty() && !ok_ident(&pre)) || (!meta.is_empty() && !ok_ident(&meta)) {
            return Err("invalid semantic version".into());
        }
        Ok(Version {
            major: num(0)?,
            minor: num(1)?,
            patch: num(2)?,
            pre,
            meta,
            original: orig,
        })
    }

    pub fn compare(&self, o: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| cmp_pre(&self.pre, &o.pre))
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = match (pa.get(i), pb.get(i)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) => (x, y),
        };
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

struct Con {
    op: String,
    v: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    major_dirty: bool,
}

fn parse_con(op: &str, ver: &str) -> Result<Con, String> {
    let t = ver.strip_prefix('v').unwrap_or(ver);
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let wild = |p: Option<&&str>| p.is_none_or(|p| matches!(*p, "x" | "X" | "*"));
    let major_dirty =
        wild(parts.first()) && parts.first().is_some_and(|p| matches!(*p, "x" | "X" | "*"));
    let minor_dirty = major_dirty || wild(parts.get(1));
    let patch_dirty = minor_dirty || wild(parts.get(2));
    let fixed: Vec<String> = (0..3)
        .map(|i| match parts.get(i) {
            Some(p) if !matches!(*p, "x" | "X" | "*") => p.to_string(),
            _ => "0".to_string(),
        })
        .collect();
    let v = Version::parse(&format!("{}{}", fixed.join("."), rest))
        .map_err(|_| format!("improper constraint: {op}{ver}"))?;
    Ok(Con {
        op: op.to_string(),
        v,
        minor_dirty,
        patch_dirty,
        major_dirty,
    })
}

fn check(c: &Con, v: &Version) -> bool {
    if !v.pre.is_empty() && c.v.pre.is_empty() {
        return false;
    }
    let cv = &c.v;
    match c.op.as_str() {
        "" | "=" => {
            if c.major_dirty {
                true
            } else if c.minor_dirty {
                v.major == cv.major
            } else if c.patch_dirty {
                v.major == cv.major && v.minor == cv.minor
            } else {
                v.compare(cv) == Ordering::Equal
            }
        }
        "!=" => {
            if c.major_dirty {
                false
            } else if c.minor_dirty {
                v.major != cv.major
            } else if c.patch_dirty {
                !(v.major == cv.major && v.minor == cv.minor)
            } else {
                v.compare(cv) != Ordering::Equal
            }
        }
        ">" => {
            if c.major_dirty {
                false
            } else if c.minor_dirty {
                v.major > cv.major
            } else if c.patch_dirty {
                v.major > cv.major || (v.major == cv.major && v.minor > cv.minor)
            } else {
                v.compare(cv) == Ordering::Greater
            }
        }
        ">=" | "=>" => v.compare(cv) != Ordering::Less,
        "<" => v.compare(cv) == Ordering::Less,
        "<=" | "=<" => {
            if c.major_dirty {
                true
            } else if c.minor_dirty {
                v.major <= cv.major
            } else if c.patch_dirty {
                v.major < cv.major || (v.major == cv.major && v.minor <= cv.minor)
            } else {
                v.compare(cv) != Ordering::Greater
            }
        }
        "~" | "~>" => {
            if v.compare(cv) == Ordering::Less {
                return false;
            }
            if cv.major == 0 && cv.minor == 0 && cv.patch == 0 && !c.minor_dirty && !c.patch_dirty {
                return true;
            }
            if c.major_dirty {
                return true;
            }
            v.major == cv.major && (c.minor_dirty || v.minor == cv.minor)
        }
        "^" => {
            if v.compare(cv) == Ordering::Less {
                return false;
            }
            if cv.major > 0 || c.minor_dirty {
                return v.major == cv.major;
            }
            if v.major > 0 {
                return false;
            }
            if cv.minor > 0 || c.patch_dirty {
                return v.minor == cv.minor;
            }
            if v.minor > 0 {
                return false;
            }
            v.patch == cv.patch
        }
        _ => false,
    }
}

/// A parsed constraint: OR of ANDs.
pub struct Constraints(Vec<Vec<Con>>);

impl Constraints {
    pub fn parse(s: &str) -> Result<Constraints, String> {
        let mut ors = Vec::new();
        for group in s.split("||") {
            let g = group.replace(',', " ");
            let toks: Vec<&str> = g.split_whitespace().collect();
            let mut ands = Vec::new();
            let mut i = 0;
            while i < toks.len() {
                let t = toks[i];
                if i + 2 < toks.len() && toks[i + 1] == "-" {
                    ands.push(parse_con(">=", t)?);
                    ands.push(parse_con("<=", toks[i + 2])?);
                    i += 3;
                    continue;
                }
                let opend = t.find(|c: char| !"<>=!~^".contains(c)).unwrap_or(t.len());
                let (op, ver) = t.split_at(opend);
                if ver.is_empty() {
                    if i + 1 >= toks.len() {
                        return Err(format!("improper constraint: {s}"));
                    }
                    ands.push(parse_con(op, toks[i + 1])?);
                    i += 2;
                } else {
                    ands.push(parse_con(op, ver)?);
                    i += 1;
                }
            }
            if ands.is_empty() {
                return Err(format!("improper constraint: {s}"));
            }
            ors.push(ands);
        }
        Ok(Constraints(ors))
    }

    pub fn check(&self, v: &Version) -> bool {
        self.0.iter().any(|ands| ands.iter().all(|c| check(c, v)))
    }
}

/// semverCompare.
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    let c = Constraints::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.check(&v))
}

struct SemverObj(Version);

impl Object for SemverObj {
    fn type_name(&self) -> String {
        "*semver.Version".into()
    }
    fn field(&self, name: &str) -> Option<Value> {
        let v = &self.0;
        Some(match name {
            "Major" => Value::Int(v.major as i64, IntKind::Int64),
            "Minor" => Value::Int(v.minor as i64, IntKind::Int64),
            "Patch" => Value::Int(v.patch as i64, IntKind::Int64),
            "Prerelease" => Value::str(&v.pre),
            "Metadata" => Value::str(&v.meta),
            "Original" => Value::str(&v.original),
            "String" => Value::str(self.fmt_v()),
            _ => return None,
        })
    }
    fn fmt_v(&self) -> String {
        let v = &self.0;
        let mut s = format!("{}.{}.{}", v.major, v.minor, v.patch);
        if !v.pre.is_empty() {
            s.push('-');
            s.push_str(&v.pre);
        }
        if !v.meta.is_empty() {
            s.push('+');
            s.push_str(&v.meta);
        }
        s
    }
}

pub fn register(m: &mut FuncMap) {
    m.insert(
        "semverCompare".into(),
        Arc::new(|_, a| {
            if a.len() != 2 {
                return Err(format!(
                    "wrong number of args for semverCompare: want 2 got {}",
                    a.len()
                ));
            }
            let (Some(c), Some(v)) = (a[0].as_str(), a[1].as_str()) else {
                return Err("wrong type for value; expected string".into());
            };
            Ok(Value::Bool(semver_compare(c, v)?))
        }),
    );
    m.insert(
        "semver".into(),
        Arc::new(|_, a| {
            let Some(v) = a.first().and_then(|v| v.as_str()) else {
                return Err("wrong type for value; expected string".into());
            };
            Ok(Value::Object(Arc::new(SemverObj(Version::parse(v)?))))
        }),
    );
}
