//! A fast path for [`super::parse_head`]: most rendered manifests (and nearly all of a CRD's
//! bulk) are plain block YAML — `key: value` lines, `- ` items, plain or simply quoted
//! scalars. For a document made only of such lines, with a consistent indentation structure,
//! validity is certain and the head can be read line by line, without the general parser.
//!
//! Anything outside that subset (block or multi-line scalars, flow collections other than
//! `[]`/`{}`, anchors, tags, escapes, tabs, non-ASCII text, directives, odd indentation) gives
//! `None` and the caller runs the full parser, so the subset only has to be *safe*: every
//! document it accepts is one the full parser accepts with the same head.

use super::{Head, Numbers, resolve_plain};
use crate::value::Value;

/// A scalar on a line: how the head reads it.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    /// A plain scalar; `true` when a comment follows it on its line (then it cannot
    /// continue on the next lines).
    Plain(&'a str, bool),
    /// The inside of a quoted scalar, and whether it was single-quoted.
    Quoted(&'a str, bool),
    /// `[]`, `{}` or a one-line flow sequence of simple scalars: never a head value.
    Flow,
    /// `|`, `|-`, `>`, ... : the text follows on more indented lines.
    Block,
    /// A quoted scalar that continues on the next lines (its quote character).
    Open(u8),
}

/// Where the quoted scalar opened by `q` closes in `s`: `Some(Some(i))` at byte `i`,
/// `Some(None)` when it goes on past the line, `None` when the text is outside the subset
/// (a double-quoted scalar with escapes).
fn close_quote(s: &str, q: u8) -> Option<Option<usize>> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if q == b'"' => return None,
            c if c == q => {
                if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return Some(Some(i));
            }
            _ => i += 1,
        }
    }
    Some(None)
}

/// Whether what follows a closing quote is only spaces and maybe a comment.
fn only_comment(s: &str) -> bool {
    let t = s.trim_start_matches(' ');
    t.is_empty() || (t.starts_with('#') && t.len() < s.len())
}

/// Characters of a plain scalar in block context that no parser treats specially (the
/// two-character indicators ": " and " #" are checked separately).
fn plain_char(c: u8) -> bool {
    // bytes >= 0x80 belong to characters already checked to be printable
    c.is_ascii_graphic() || c == b' ' || c >= 0x80
}

/// Whether `v` is plain text that cannot be read as anything but a plain scalar (nor end
/// one): no indicator first, no ": " or " #" inside, no ':' at the end.
fn plain_ok(v: &str) -> bool {
    let b = v.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    let first_ok = match first {
        b'-' => b.get(1).is_some_and(|c| *c != b' '),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|'
        | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' => false,
        _ => true,
    };
    first_ok
        && !v.ends_with(':')
        && !v.contains(": ")
        && !v.contains(" #")
        && b.iter().all(|c| plain_char(*c))
}

/// The inside of a one-line quoted scalar: double-quoted without escapes or inner double
/// quotes, single-quoted with `''` as its only escape. [`unquote`] gives its value.
fn quoted(v: &str) -> Option<&str> {
    let q = *v.as_bytes().first()?;
    if v.len() < 2 || v.as_bytes()[v.len() - 1] != q {
        return None;
    }
    let inner = &v[1..v.len() - 1];
    let ok = match q {
        b'"' => !inner.bytes().any(|c| c == b'"' || c == b'\\'),
        b'\'' => !inner.replace("''", "").contains('\''),
        _ => false,
    };
    ok.then_some(inner)
}

/// The value of the inside of a quoted scalar accepted by [`quoted`].
fn unquote(inner: &str, single: bool) -> String {
    if single {
        inner.replace("''", "'")
    } else {
        inner.to_string()
    }
}

/// `[a, "b", 'c']` with simple items (or `[]`).
fn flow_seq(v: &str) -> bool {
    let Some(inner) = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
        return false;
    };
    if inner.is_empty() {
        return true;
    }
    inner.split(',').all(|item| {
        let item = item.trim_matches(' ');
        let simple = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/' | b'*')
                })
        };
        match quoted(item) {
            Some(q) => !q
                .bytes()
                .any(|c| matches!(c, b',' | b'[' | b']' | b'{' | b'}')),
            None => simple(item) && item.as_bytes()[0].is_ascii_alphanumeric(),
        }
    })
}

/// The value part of a line (after `key: ` or `- `), comment removed; `None` when it is
/// outside the subset.
fn scalar(v: &str) -> Option<Scalar<'_>> {
    if let q @ (b'\'' | b'"') = *v.as_bytes().first()? {
        // quotes first: a " #" inside them is text
        return match close_quote(&v[1..], q)? {
            None => Some(Scalar::Open(q)),
            Some(i) => {
                let end = 1 + i + 1;
                if !only_comment(&v[end..]) {
                    return None;
                }
                quoted(&v[..end]).map(|inner| Scalar::Quoted(inner, q == b'\''))
            }
        };
    }
    // a comment starts at " #"
    let (v, comment) = match v.find(" #") {
        Some(i) => (&v[..i], true),
        None => (v, false),
    };
    let v = v.trim_end_matches(' ');
    match v.as_bytes().first()? {
        b'[' | b'{' => (v == "{}" || flow_seq(v)).then_some(Scalar::Flow),
        b'|' | b'>' => matches!(&v[1..], "" | "-" | "+").then_some(Scalar::Block),
        _ => plain_ok(v).then_some(Scalar::Plain(v, comment)),
    }
}

/// A mapping key at the start of `s` (plain, or quoted without escapes): `(key, rest after
/// "key:")`, or `None` when `s` is not a simple `key:` line.
fn key(s: &str) -> Option<(&str, &str)> {
    let (k, rest) = match s.as_bytes().first()? {
        q @ (b'"' | b'\'') => {
            // no escapes in a quoted key: it is the text between the quotes
            let close = 1 + s[1..].find(*q as char)?;
            let k = quoted(&s[..=close])?;
            if s[close + 1..].starts_with(*q as char) {
                return None;
            }
            (k, s[close + 1..].strip_prefix(':')?)
        }
        _ => {
            let i = s.find(':')?;
            let k = &s[..i];
            let b = k.as_bytes();
            let first_ok = b
                .first()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.');
            let ok = b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/'));
            if !(first_ok && ok) {
                return None;
            }
            (k, &s[i + 1..])
        }
    };
    if !(rest.is_empty() || rest.starts_with(' ')) || k.len() > 512 {
        return None;
    }
    Some((k, rest.trim_start_matches(' ')))
}

struct Level<'a> {
    indent: usize,
    seq: bool,
    /// A mapping's current key ("" for a sequence, as the full reader records it).
    key: &'a str,
}

/// What the lines after a value may be.
#[derive(Clone, Copy, PartialEq)]
enum After {
    /// Only structure (keys and items).
    Structure,
    /// A key with its value on the following lines.
    Pending,
    /// More-indented lines continue a plain scalar of the level at this indent.
    Plain(usize),
    /// The text of a block scalar of the level at this indent; its own indentation once
    /// its first line is seen.
    Block(usize, Option<usize>),
    /// More-indented lines continue a quoted scalar (quote character) of the level at this
    /// indent, up to its closing quote.
    Quote(usize, u8),
}

/// The head of `text` when it is in the subset; `None` otherwise (including a document that
/// is not a mapping, or has no content at all).
pub(crate) fn fast_head(text: &str) -> Option<Head> {
    // printable text: no control characters (tabs and CRs included) besides line breaks,
    // no DEL, C1 controls (NEL is a line break to YAML 1.1), surrogates, BOM or non-characters
    if text.bytes().any(|c| c == 0x7f || (c < 0x20 && c != b'\n')) {
        return None;
    }
    if !text.is_ascii()
        && text.chars().any(|c| {
            let c = c as u32;
            (0x80..0xA0).contains(&c) || c == 0xFEFF || c == 0xFFFE || c == 0xFFFF
        })
    {
        return None;
    }
    let mut head = Head::default();
    let mut stack: Vec<Level<'_>> = Vec::new();
    let mut after = After::Structure;
    for line in text.split('\n') {
        let col = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[col..];
        match after {
            After::Block(n, indent) => {
                if rest.is_empty() {
                    // an all-space line before the text could set its indentation: avoid
                    if indent.is_none() && col > 0 {
                        return None;
                    }
                    continue;
                }
                match indent {
                    Some(i) if col >= i => continue,
                    None if col > n => {
                        after = After::Block(n, Some(col));
                        continue;
                    }
                    _ => after = After::Structure,
                }
            }
            After::Quote(n, q) => {
                if rest.is_empty() {
                    continue;
                }
                if col <= n {
                    return None;
                }
                if let Some(i) = close_quote(rest, q)? {
                    if !only_comment(&rest[i + 1..]) {
                        return None;
                    }
                    after = After::Structure;
                }
                continue;
            }
            After::Plain(n) if col > n && !rest.is_empty() => {
                if rest.starts_with('#') || !plain_ok(rest.trim_end_matches(' ')) {
                    return None;
                }
                continue;
            }
            _ => {}
        }
        if rest.is_empty() {
            continue;
        }
        if rest.starts_with('#') {
            // a comment ends a plain scalar: more-indented text after it is an error
            if matches!(after, After::Plain(_)) {
                after = After::Structure;
            }
            continue;
        }
        let item = rest == "-" || rest.starts_with("- ");
        if rest == "-" || rest.starts_with("-  ") {
            return None;
        }
        if stack.is_empty() {
            if item {
                return None;
            }
            stack.push(Level {
                indent: col,
                seq: false,
                key: "",
            });
        } else if after == After::Pending {
            let parent = stack.last()?.indent;
            if !item && col > parent && matches!(scalar(rest), Some(Scalar::Flow)) {
                // `key:` with `{}` or `[..]` on the next line
                after = After::Structure;
                continue;
            }
            if (item && col >= parent) || (!item && col > parent) {
                stack.push(Level {
                    indent: col,
                    seq: item,
                    key: "",
                });
            }
        }
        // back out to the level this line belongs to
        while stack.last().is_some_and(|l| l.indent > col) {
            stack.pop();
        }
        if !item && stack.last().is_some_and(|l| l.seq && l.indent == col) {
            stack.pop();
        }
        let top = stack.last()?;
        if top.indent != col || top.seq != item {
            return None;
        }
        let body = if item {
            // "- key: value" opens a mapping two columns in; "- value" is a sequence scalar
            let body = &rest[2..];
            if key(body).is_none() {
                after = match scalar(body)? {
                    Scalar::Plain(_, false) => After::Plain(col),
                    Scalar::Block => After::Block(col, None),
                    Scalar::Open(q) => After::Quote(col, q),
                    _ => After::Structure,
                };
                continue;
            }
            stack.push(Level {
                indent: col + 2,
                seq: false,
                key: "",
            });
            body
        } else {
            rest
        };
        let (k, value) = key(body)?;
        let depth = stack.len();
        let level = stack.last_mut()?;
        level.key = k;
        let n = level.indent;
        if value.is_empty() || value.starts_with('#') {
            after = After::Pending;
            continue;
        }
        let s = scalar(value)?;
        after = match s {
            Scalar::Plain(_, false) => After::Plain(n),
            Scalar::Block => After::Block(n, None),
            Scalar::Open(q) => After::Quote(n, q),
            _ => After::Structure,
        };
        let path = |i: usize| stack[i].key;
        let slot = match depth {
            1 if path(0) == "kind" => 0,
            2 if path(0) == "metadata" && path(1) == "name" => 1,
            3 if path(0) == "metadata" && path(1) == "annotations" => 2,
            _ => continue,
        };
        // a head value must not continue on the next lines (the full parser would fold
        // them into it): more-indented lines now fail the structure check
        after = After::Plain(usize::MAX);
        let val = match s {
            Scalar::Quoted(q, single) => unquote(q, single),
            Scalar::Flow => continue,
            // a value folded from several lines: leave it to the full parser
            Scalar::Block | Scalar::Open(_) => return None,
            Scalar::Plain(p, _) => match resolve_plain(p, Numbers::Json) {
                Value::Str(x) => x.to_string(),
                Value::Nil => continue,
                other => crate::funcs::strval(&other),
            },
        };
        match slot {
            0 => head.kind = Some(val),
            1 => head.name = Some(val),
            _ => head.annotations.push((k.to_string(), val)),
        }
    }
    // an unclosed quote is an error
    (!stack.is_empty() && !matches!(after, After::Quote(..))).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow(text: &str) -> Result<Head, String> {
        super::super::parse_head_full(text)
    }

    /// Every document the fast path accepts, the full reader accepts with the same head.
    fn check(text: &str) -> bool {
        match fast_head(text) {
            Some(h) => {
                let s = slow(text).unwrap_or_else(|e| {
                    panic!("fast path accepted what the parser rejects ({e}):\n{text}")
                });
                assert_eq!(h, s, "heads differ for:\n{text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn typical_manifests_take_the_fast_path() {
        let docs = [
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-weight: \"-5\"\ndata:\n  a: b\n",
            "kind: Deployment\nmetadata:\n  name: 'x'\n  labels:\n    app: x\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: nginx:1.2 # pinned\n        args:\n        - --flag=1\n        - -v\n        ports: []\n",
            "kind: CustomResourceDefinition\nspec:\n  versions:\n  - additionalPrinterColumns:\n    - jsonPath: .status.conditions[?(@.type==\"Ready\")].status\n      name: Ready\n    name: v1\n    schema:\n      openAPIV3Schema:\n        properties:\n          spec:\n            type: object\n            x-kubernetes-preserve-unknown-fields: true\n",
            "# comment\nkind: Job\nmetadata:\n  name: 12\n  annotations:\n    a: true\n    b: null\n    c: 1.50\n",
            "kind: A\ndata:\n  x: |\n    text\n\n    # not a comment\n  y: >-\n      folded\nz: [a, b]\n",
            "kind: A\nx: foo\n  bar\n\n  baz\nrules:\n- apiGroups: [\"cert-manager.io\"]\n  verbs: [get, 'list']\n\"helm.sh/hook\": x\n",
        ];
        for d in docs {
            assert!(check(d), "expected the fast path for:\n{d}");
        }
    }

    #[test]
    fn outside_the_subset_falls_back() {
        let docs = [
            "kind: |\n  A\n",
            "kind: A\nx: foo # c\n  bar\n",
            "kind: A\nx: foo\n  # c\n  bar\n",
            "kind: A\nx: {a: 1}\n",
            "kind: A\nx: &a 1\ny: *a\n",
            "- a\n- b\n",
            "kind: A\n x: 1\n",
            "kind: \"a\\nb\"\n",
            "kind: A\nx:\n\t- 1\n",
            "kind: A\nb: c: d\n",
            "kind: A\nb: c:\n",
            "kind: A\nb: - c\n",
            "",
            "# only a comment\n",
        ];
        for d in docs {
            assert!(!check(d), "expected the full parser for:\n{d}");
        }
    }

    /// Random documents built from line fragments (valid and broken): the fast path must
    /// never accept a document the full parser rejects, nor read a different head.
    #[test]
    fn agrees_with_the_full_parser_on_random_documents() {
        let keys = [
            "kind",
            "metadata",
            "name",
            "annotations",
            "a",
            "b-c",
            "x.y/z",
            "-k",
            "k k",
            "\"q.k\"",
            "'s k'",
            "\"a\\\"b\"",
            "\"x\" ",
            "'x",
        ];
        let values = [
            "",
            "v",
            "\"q\"",
            "'s'",
            "1",
            "-1",
            "true",
            "null",
            "~",
            "[]",
            "{}",
            "a: b",
            "a:b",
            "a #c",
            "a#c",
            "x:",
            "- y",
            "-z",
            ":x",
            "[x]",
            "{x}",
            "a'b",
            "a\"b",
            "'a",
            "\"a",
            "a |b",
            ">x",
            "|",
            "!t",
            "&a x",
            "*a",
            "%x",
            "@x",
            "`x",
            "?x",
            "a, b",
            "0x1F",
            "1e3",
            ".5",
            "a]",
            "b}",
            "#c",
            "|",
            "|-",
            ">",
            ">+",
            "|2",
            "| #c",
            "[\"v1\"]",
            "[a, b]",
            "[*]",
            "[a,]",
            "[a, [b]]",
            "[-a]",
            "['x y']",
            "{a}",
            "a\\b",
            "x ]",
            "'it''s'",
            "'a''",
            "''''",
            "'a'b'",
            "\"é\"",
            "µs",
            "a÷b",
            "\u{85}x",
            "\u{feff}x",
            "x\u{a0}",
            "'a\"b'",
            "\"a'b\"",
            "\"\"",
            "''",
            "'open",
            "\"open",
            "'a #b'",
            "\"a #b\"",
            "'a' x",
            "'a'#c",
            "'a' #c",
            "'x''",
            "\"a\\nb\"",
        ];
        let texts = [
            "c'",
            "d' #x",
            "e'f'",
            "g''",
            "h'' i'",
            "\"x",
            "y\"",
            "z\" #c",
            "w\"v",
            "a\\\"",
            "{}",
            "[]",
            "[a]",
            "{a}",
            "text",
            "more text",
            "# comment",
            "",
            "  ",
            "a: b",
            "- x",
            "x:",
            "t #c",
            "---",
            "...",
        ];
        let indents = ["", "  ", "    ", " ", "      "];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let mut doc = String::new();
            for _ in 0..1 + next(9) {
                doc.push_str(indents[next(indents.len())]);
                if next(4) == 0 {
                    doc.push_str(texts[next(texts.len())]);
                    doc.push('\n');
                    continue;
                }
                if next(3) == 0 {
                    doc.push_str("- ");
                }
                if next(5) != 0 {
                    doc.push_str(keys[next(keys.len())]);
                    doc.push(':');
                    if next(4) != 0 {
                        doc.push(' ');
                    }
                }
                doc.push_str(values[next(values.len())]);
                doc.push('\n');
            }
            if check(&doc) {
                accepted += 1;
            }
        }
        assert!(
            accepted > 1000,
            "only {accepted} random documents took the fast path"
        );
    }
}
