//! Semver constraints in the syntax Flux accepts for `spec.ref.semver` (Masterminds/semver v3):
//! `||` between alternatives, `,` or spaces between comparators that must all hold, operators
//! `=`, `!=`, `>`, `>=`, `<`, `<=`, `~` (patch-level), `^` (compatible), `x`/`X`/`*` wildcards
//! and hyphen ranges (`1.2 - 1.4.5`). Versions are parsed leniently like Masterminds'
//! `NewVersion`: an optional `v` prefix and missing minor/patch components (`v1.2` = 1.2.0).
//! Pre-releases only satisfy a constraint whose comparators name a pre-release themselves.

use semver::{Prerelease, Version};

/// Parses a tag as a version (Masterminds `NewVersion`, lenient).
pub fn parse_version(tag: &str) -> Option<Version> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(v) = Version::parse(s) {
        return Some(v);
    }
    // Coerce `1` / `1.2` (with optional pre-release/build suffix).
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut nums = [0u64; 3];
    for (i, p) in parts.iter().enumerate() {
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums[i] = p.parse().ok()?;
    }
    Version::parse(&format!("{}.{}.{}{rest}", nums[0], nums[1], nums[2])).ok()
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

/// A version with possibly missing (wildcard) components.
#[derive(Debug, Clone, PartialEq)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

impl Partial {
    fn parse(s: &str) -> Result<Partial, String> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s.split('+').next().unwrap_or(s);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (
                c,
                Prerelease::new(p).map_err(|e| format!("invalid pre-release {p:?}: {e}"))?,
            ),
            None => (s, Prerelease::EMPTY),
        };
        let mut comps = [None; 3];
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 3 || core.is_empty() {
            return Err(format!("invalid version {s:?}"));
        }
        for (i, p) in parts.iter().enumerate() {
            comps[i] = match *p {
                "x" | "X" | "*" => None,
                n => Some(
                    n.parse::<u64>()
                        .map_err(|_| format!("invalid version component {n:?} in {s:?}"))?,
                ),
            };
        }
        // After a wildcard everything is a wildcard.
        if comps[0].is_none() {
            comps[1] = None;
        }
        if comps[1].is_none() {
            comps[2] = None;
        }
        Ok(Partial {
            major: comps[0],
            minor: comps[1],
            patch: comps[2],
            pre,
        })
    }

    fn floor(&self) -> Version {
        let mut v = Version::new(
            self.major.unwrap_or(0),
            self.minor.unwrap_or(0),
            self.patch.unwrap_or(0),
        );
        v.pre = self.pre.clone();
        v
    }

    /// The first version above the range this partial names (`1.2` → 1.3.0); `None` = no bound.
    fn ceiling(&self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (None, _, _) => None,
            (Some(m), None, _) => Some(Version::new(m + 1, 0, 0)),
            (Some(m), Some(n), None) => Some(Version::new(m, n + 1, 0)),
            (Some(m), Some(n), Some(p)) => {
                let mut v = Version::new(m, n, p);
                v.pre = self.pre.clone();
                // The exact version: the "ceiling" is just above it.
                Some(Version {
                    build: semver::BuildMetadata::EMPTY,
                    ..v
                })
            }
        }
    }

    fn is_exact(&self) -> bool {
        self.patch.is_some()
    }
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    v: Partial,
}

fn strip_build(v: &Version) -> Version {
    Version {
        build: semver::BuildMetadata::EMPTY,
        ..v.clone()
    }
}

impl Comparator {
    fn in_range(&self, v: &Version) -> bool {
        let floor = self.v.floor();
        if self.v.is_exact() {
            return strip_build(v) == strip_build(&floor);
        }
        match self.v.ceiling() {
            None => true,
            Some(c) => *v >= floor && *v < c,
        }
    }

    fn matches(&self, v: &Version) -> bool {
        let floor = self.v.floor();
        match self.op {
            Op::Eq => self.in_range(v),
            Op::Ne => !self.in_range(v),
            Op::Gt => {
                if self.v.is_exact() {
                    *v > floor
                } else {
                    self.v.ceiling().is_some_and(|c| *v >= c)
                }
            }
            Op::Ge => *v >= floor,
            Op::Lt => *v < floor,
            Op::Le => {
                if self.v.is_exact() {
                    *v <= floor
                } else {
                    self.v.ceiling().is_none_or(|c| *v < c)
                }
            }
            Op::Tilde => {
                let upper = match (self.v.major, self.v.minor) {
                    (None, _) => return true,
                    (Some(m), None) => Version::new(m + 1, 0, 0),
                    (Some(m), Some(n)) => Version::new(m, n + 1, 0),
                };
                *v >= floor && *v < upper
            }
            Op::Caret => {
                let upper = match (self.v.major, self.v.minor, self.v.patch) {
                    (None, _, _) => return true,
                    (Some(m), _, _) if m > 0 => Version::new(m + 1, 0, 0),
                    (Some(0), None, _) => Version::new(1, 0, 0),
                    (Some(0), Some(n), _) if n > 0 => Version::new(0, n + 1, 0),
                    (Some(0), Some(0), None) => Version::new(0, 1, 0),
                    (Some(0), Some(0), Some(p)) => Version::new(0, 0, p + 1),
                    _ => return false,
                };
                *v >= floor && *v < upper
            }
        }
    }
}

/// A parsed constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    alternatives: Vec<Vec<Comparator>>,
}

fn parse_comparator(s: &str) -> Result<Comparator, String> {
    let ops = [
        (">=", Op::Ge),
        ("=>", Op::Ge),
        ("<=", Op::Le),
        ("=<", Op::Le),
        ("!=", Op::Ne),
        ("~>", Op::Tilde),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ];
    for (p, op) in ops {
        if let Some(rest) = s.strip_prefix(p) {
            return Ok(Comparator {
                op,
                v: Partial::parse(rest.trim())?,
            });
        }
    }
    Ok(Comparator {
        op: Op::Eq,
        v: Partial::parse(s)?,
    })
}

impl Constraint {
    /// Parses a constraint; the error says what is wrong.
    pub fn parse(input: &str) -> Result<Constraint, String> {
        let mut alternatives = Vec::new();
        for alt in input.split("||") {
            let alt = alt.trim();
            if alt.is_empty() {
                return Err(format!("improper constraint: {input}"));
            }
            // Tokenize: commas and whitespace separate; operators may be followed by spaces;
            // `a - b` is a hyphen range.
            let raw: Vec<&str> = alt
                .split([',', ' ', '\t'])
                .filter(|t| !t.is_empty())
                .collect();
            let mut tokens: Vec<String> = Vec::new();
            let mut i = 0;
            while i < raw.len() {
                let t = raw[i];
                let is_op_only = matches!(
                    t,
                    ">=" | "<=" | "=>" | "=<" | "!=" | ">" | "<" | "=" | "~" | "^" | "~>"
                );
                if is_op_only && i + 1 < raw.len() {
                    tokens.push(format!("{t}{}", raw[i + 1]));
                    i += 2;
                } else {
                    tokens.push(t.to_string());
                    i += 1;
                }
            }
            let mut comps = Vec::new();
            let mut j = 0;
            while j < tokens.len() {
                if j + 2 < tokens.len() && tokens[j + 1] == "-" {
                    comps.push(Comparator {
                        op: Op::Ge,
                        v: Partial::parse(&tokens[j])?,
                    });
                    comps.push(Comparator {
                        op: Op::Le,
                        v: Partial::parse(&tokens[j + 2])?,
                    });
                    j += 3;
                } else {
                    comps.push(parse_comparator(&tokens[j])?);
                    j += 1;
                }
            }
            alternatives.push(comps);
        }
        Ok(Constraint { alternatives })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.alternatives.iter().any(|comps| {
            if !v.pre.is_empty() && !comps.iter().any(|c| !c.v.pre.is_empty()) {
                return false;
            }
            comps.iter().all(|c| c.matches(v))
        })
    }
}

/// The tag with the highest version satisfying `constraint`, among `tags`. Ties (e.g. `v1.0.0`
/// and `1.0.0`) go to the tag name that sorts last, so the choice is deterministic.
pub fn latest_matching<'a>(
    constraint: &Constraint,
    tags: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(Version, &str)> = None;
    for t in tags {
        let Some(v) = parse_version(t) else { continue };
        if !constraint.matches(&v) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((bv, bt)) => v > *bv || (v == *bv && t > *bt),
        };
        if better {
            best = Some((v, t));
        }
    }
    best.map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick<'a>(c: &str, tags: &[&'a str]) -> Option<&'a str> {
        latest_matching(&Constraint::parse(c).unwrap(), tags.iter().copied())
    }

    const TAGS: &[&str] = &[
        "v0.1.0",
        "v0.2.0",
        "v0.2.5",
        "v1.0.0",
        "v1.1.0",
        "v1.2.3",
        "v1.3.0-rc.1",
        "v2.0.0",
        "latest",
        "v2.1",
    ];

    #[test]
    fn operators() {
        assert_eq!(pick(">=1.0.0", TAGS), Some("v2.1"));
        assert_eq!(pick(">=1.0.0 <2.0.0", TAGS), Some("v1.2.3"));
        assert_eq!(pick(">=1.0.0, <2.0.0", TAGS), Some("v1.2.3"));
        assert_eq!(pick("~1.1", TAGS), Some("v1.1.0"));
        assert_eq!(pick("^1.0", TAGS), Some("v1.2.3"));
        assert_eq!(pick("^0.2.0", TAGS), Some("v0.2.5"));
        assert_eq!(pick("1.x", TAGS), Some("v1.2.3"));
        assert_eq!(pick("*", TAGS), Some("v2.1"));
        assert_eq!(pick("<1.0.0", TAGS), Some("v0.2.5"));
        assert_eq!(pick("<=1.1", TAGS), Some("v1.1.0"));
        assert_eq!(pick(">1.1", TAGS), Some("v2.1"));
        assert_eq!(pick("!=2.1.0, >=2.0.0", TAGS), Some("v2.0.0"));
        assert_eq!(pick("0.1.0 - 1.0.0", TAGS), Some("v1.0.0"));
        assert_eq!(pick("<0.1.0 || 1.1.0", TAGS), Some("v1.1.0"));
        assert_eq!(pick("= 1.0.0", TAGS), Some("v1.0.0"));
        assert_eq!(pick(">=3.0.0", TAGS), None);
    }

    #[test]
    fn prereleases_need_a_prerelease_constraint() {
        assert_eq!(pick(">=1.3.0-0", TAGS), Some("v2.1"));
        assert_eq!(pick(">=1.3.0-0 <2.0.0", TAGS), Some("v1.3.0-rc.1"));
        assert_eq!(pick(">=1.2.4 <2.0.0", TAGS), None);
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_version("v1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(parse_version("3"), Some(Version::new(3, 0, 0)));
        assert!(parse_version("latest").is_none());
        assert!(Constraint::parse(">= foo").is_err());
    }
}
