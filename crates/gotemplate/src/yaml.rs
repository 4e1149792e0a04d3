//! YAML as Helm sees it: go-yaml v2 scalar resolution (YAML 1.1 booleans, octal, ...) read
//! through sigs.k8s.io/yaml (so every number becomes a float64 and every key a string), and
//! go-yaml v2's emitter for `toYaml`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::gofmt::format_float_g;
use crate::value::{Map, Value};

/// How numbers are typed when loading.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// Through JSON, as sigs.k8s.io/yaml does: every number is a float64.
    Json,
    /// Native go-yaml: ints are int (Go `int`), floats float64.
    Native,
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map, Option<String>, usize, Vec<Value>),
}

struct Builder {
    numbers: Numbers,
    stack: Vec<Frame>,
    docs: Vec<Value>,
    anchors: HashMap<usize, Value>,
    err: Option<String>,
    doc_started: bool,
}

/// yaml.v2's resolve for a plain scalar.
pub fn resolve_plain(s: &str, numbers: Numbers) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Nil,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let c = s.as_bytes()[0];
    if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' {
        let plain = s.replace('_', "");
        if let Some(i) = parse_go_int(&plain) {
            return match numbers {
                Numbers::Json => Value::Float(i as f64),
                Numbers::Native => Value::int(i as i64),
            };
        }
        if is_yaml_float(&plain)
            && let Ok(f) = plain.parse::<f64>()
        {
            return Value::Float(f);
        }
        // binary with a sign: -0b101
        if let Some(b) = plain.strip_prefix("-0b")
            && let Ok(i) = i64::from_str_radix(b, 2)
        {
            return match numbers {
                Numbers::Json => Value::Float(-(i as f64)),
                Numbers::Native => Value::int(-i),
            };
        }
    }
    Value::str(s)
}

/// strconv.ParseInt(s, 0, 64) / ParseUint(s, 0, 64).
fn parse_go_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(b) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        i128::from_str_radix(b, 2).ok()?
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        i128::from_str_radix(o, 8).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i128::from_str_radix(&body[1..], 8).ok()?
    } else {
        if !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        body.parse::<i128>().ok()?
    };
    let v = if neg { -v } else { v };
    if v > u64::MAX as i128 || v < i64::MIN as i128 {
        return None;
    }
    Some(v)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A key as sigs.k8s.io/yaml turns it into a JSON key.
fn key_string(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Nil => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i, _) => i.to_string(),
        Value::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e21 {
                format!("{}", *f as i64)
            } else {
                format_float_g(*f)
            }
        }
        other => crate::gofmt::sprint_v(other),
    }
}

impl Builder {
    fn add(&mut self, v: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(v),
            Some(Frame::Seq(items, _)) => items.push(v),
            Some(Frame::Map(m, key, _, merges)) => match key.take() {
                None => {
                    if let Value::Str(s) = &v
                        && &**s == "<<"
                    {
                        *key = Some("\u{0}<<".into());
                    } else {
                        *key = Some(key_string(&v));
                    }
                }
                Some(k) if k == "\u{0}<<" => merges.push(v),
                Some(k) => {
                    m.insert(k, v);
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        if self.err.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => self.doc_started = true,
            Event::Alias(id) => {
                let v = self.anchors.get(&id).cloned().unwrap_or_default();
                self.add(v, 0);
            }
            Event::Scalar(s, style, anchor, tag) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map(_, None, _, _)));
                let v = if let Some(t) = &tag {
                    match t.suffix.as_str() {
                        "str" => Value::str(&s),
                        "int" | "float" | "bool" | "null" => resolve_plain(&s, self.numbers),
                        "binary" => Value::str(&s),
                        _ => {
                            if style == TScalarStyle::Plain {
                                resolve_plain(&s, self.numbers)
                            } else {
                                Value::str(&s)
                            }
                        }
                    }
                } else if style == TScalarStyle::Plain {
                    if is_key && s == "<<" {
                        Value::str("<<")
                    } else {
                        resolve_plain(&s, self.numbers)
                    }
                } else {
                    Value::str(&s)
                };
                self.add(v, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(Vec::new(), anchor)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, anchor)) = self.stack.pop() {
                    self.add(Value::from(items), anchor);
                }
            }
            Event::MappingStart(anchor, _) => {
                self.stack
                    .push(Frame::Map(Map::new(), None, anchor, Vec::new()))
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut m, _, anchor, merges)) = self.stack.pop() {
                    // merge keys: explicit keys win; earlier merge sources win over later
                    let mut merged = Map::new();
                    for src in merges.iter() {
                        let list: Vec<Value> = match src {
                            Value::List(l) => l.to_vec(),
                            other => vec![other.clone()],
                        };
                        for item in list {
                            if let Value::Map(mm) = item {
                                for (k, v) in mm.snapshot() {
                                    merged.entry(k).or_insert(v);
                                }
                            }
                        }
                    }
                    for (k, v) in merged {
                        m.entry(k).or_insert(v);
                    }
                    self.add(Value::map(m), anchor);
                }
            }
            _ => {}
        }
    }
}

/// Parses a YAML stream into its documents (an empty document is `nil`).
pub fn parse_all(text: &str, numbers: Numbers) -> Result<Vec<Value>, String> {
    let mut b = Builder {
        numbers,
        stack: Vec::new(),
        docs: Vec::new(),
        anchors: HashMap::new(),
        err: None,
        doc_started: false,
    };
    let mut p = Parser::new_from_str(text);
    p.load(&mut b, true).map_err(|e| {
        // go-yaml's form: "yaml: line N: problem"
        let info = e.info();
        let problem = match info.split_once(", ") {
            Some((ctx, rest)) if ctx.starts_with("while ") => rest,
            _ => info,
        };
        let lines = text.lines().count().max(1);
        format!("yaml: line {}: {problem}", e.marker().line().min(lines))
    })?;
    if let Some(e) = b.err {
        return Err(e);
    }
    Ok(b.docs)
}

/// Parses one YAML document (the first; none is `nil`).
pub fn parse(text: &str, numbers: Numbers) -> Result<Value, String> {
    Ok(parse_all(text, numbers)?
        .into_iter()
        .next()
        .unwrap_or_default())
}

// ---------------------------------------------------------------- emitter

/// yaml.v2's key order (sorter.go): letters before digits runs compare numerically.
/// `v3`: go-yaml v3's variant, which remembers whether the common prefix ended in a digit.
pub fn yaml_key_less(a: &str, b: &str, v3: bool) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let n = ar.len().min(br.len());
    let mut digits = false;
    for i in 0..n {
        if ar[i] == br[i] {
            digits = ar[i].is_numeric();
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return if v3 && digits { al } else { bl };
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i as isize - 1;
            while j >= 0 && ar[j as usize].is_ascii_digit() {
                if ar[j as usize] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
                j -= 1;
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// A stable merge sort that tolerates an ordering that is not total (go-yaml's is not),
/// where the standard sort may panic.
fn merge_sort<T: Clone>(v: &mut [T], less: &dyn Fn(&T, &T) -> bool) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let mid = n / 2;
    merge_sort(&mut v[..mid], less);
    merge_sort(&mut v[mid..], less);
    let (left, right) = (v[..mid].to_vec(), v[mid..].to_vec());
    let (mut i, mut j, mut k) = (0, 0, 0);
    while i < left.len() && j < right.len() {
        if less(&right[j], &left[i]) {
            v[k] = right[j].clone();
            j += 1;
        } else {
            v[k] = left[i].clone();
            i += 1;
        }
        k += 1;
    }
    for x in &left[i..] {
        v[k] = x.clone();
        k += 1;
    }
    for x in &right[j..] {
        v[k] = x.clone();
        k += 1;
    }
}

/// Converts a value to what it is after a JSON round trip read by go-yaml: integral floats
/// become ints, objects become data.
fn jsonish(v: &Value) -> Value {
    match v {
        Value::Object(o) => jsonish(&o.to_data()),
        Value::Bytes(b) => {
            use base64::Engine;
            Value::str(base64::engine::general_purpose::STANDARD.encode(b))
        }
        other => other.clone(),
    }
}

struct Emitter {
    out: String,
    column: usize,
    pretty: bool,
}

const BEST_WIDTH: usize = 80;

struct Analysis {
    multiline: bool,
    block_plain: bool,
    single: bool,
    block: bool,
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || u == 0x85
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
        || (0x10000..=0x10FFFF).contains(&u)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single: true,
            block: false,
        };
    }
    let mut block_ind = false;
    let mut flow_ind = false;
    if s.starts_with("---") || s.starts_with("...") {
        block_ind = true;
        flow_ind = true;
    }
    let mut preceded_ws = true;
    let (mut line_breaks, mut special) = (false, false);
    let (mut lead_space, mut lead_break, mut trail_space, mut trail_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let n = chars.len();
    for i in 0..n {
        let c = chars[i];
        let followed_ws =
            i + 1 >= n || matches!(chars[i + 1], ' ' | '\t') || is_break(chars[i + 1]);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_ind = true;
                    block_ind = true;
                }
                '?' | ':' => {
                    flow_ind = true;
                    if followed_ws {
                        block_ind = true;
                    }
                }
                '-' if followed_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_ind = true,
                ':' => {
                    flow_ind = true;
                    if followed_ws {
                        block_ind = true;
                    }
                }
                '#' if preceded_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                lead_space = true;
            }
            if i == n - 1 {
                trail_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                lead_break = true;
            }
            if i == n - 1 {
                trail_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = matches!(c, ' ' | '\t') || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single: true,
        block: true,
    };
    if lead_space || lead_break || trail_space || trail_break {
        a.block_plain = false;
    }
    if trail_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single = false;
        a.block = false;
    }
    if line_breaks {
        a.block_plain = false;
    }
    if block_ind {
        a.block_plain = false;
    }
    let _ = flow_ind;
    a
}

#[derive(PartialEq, Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

impl Emitter {
    /// Line width: go-yaml v2 folds long scalars at 80 columns; v3 (toYamlPretty) does not.
    fn width(&self) -> usize {
        if self.pretty { usize::MAX } else { BEST_WIDTH }
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
    }
    fn puts(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }
    fn newline_indent(&mut self, indent: usize) {
        self.put('\n');
        for _ in 0..indent {
            self.put(' ');
        }
    }

    fn choose(&self, s: &str, simple_key: bool) -> Style {
        let plain_ok = {
            let r = resolve_plain(s, Numbers::Native);
            matches!(r, Value::Str(_)) && !is_base60_float(s)
        };
        let want = if s.contains('\n') {
            Style::Literal
        } else if plain_ok {
            Style::Plain
        } else {
            Style::Double
        };
        let a = analyze(s);
        let mut style = want;
        if style == Style::Plain && (!a.block_plain || (s.is_empty() && simple_key)) {
            style = Style::Single;
        }
        if style == Style::Plain && a.multiline {
            style = Style::Single;
        }
        if style == Style::Single && !a.single {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block || simple_key) {
            style = Style::Double;
        }
        style
    }

    fn scalar(&mut self, s: &str, indent: usize, simple_key: bool) {
        let style = self.choose(s, simple_key);
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => {
                let chars: Vec<char> = s.chars().collect();
                let mut spaces = false;
                for i in 0..chars.len() {
                    let c = chars[i];
                    if c == ' ' {
                        if allow_breaks
                            && !spaces
                            && self.column > self.width()
                            && !(i + 1 < chars.len() && chars[i + 1] == ' ')
                        {
                            self.newline_indent(indent);
                        } else {
                            self.put(c);
                        }
                        spaces = true;
                    } else {
                        self.put(c);
                        spaces = false;
                    }
                }
            }
            Style::Single => {
                self.put('\'');
                let chars: Vec<char> = s.chars().collect();
                let mut spaces = false;
                let mut breaks = false;
                let n = chars.len();
                for i in 0..n {
                    let c = chars[i];
                    if c == ' ' {
                        if allow_breaks
                            && !spaces
                            && self.column > self.width()
                            && i != 0
                            && i != n - 1
                            && !(i + 1 < n && chars[i + 1] == ' ')
                        {
                            self.newline_indent(indent);
                        } else {
                            self.put(c);
                        }
                        spaces = true;
                    } else if is_break(c) {
                        if !breaks && c == '\n' {
                            self.put('\n');
                        }
                        self.put('\n');
                        breaks = true;
                    } else {
                        if breaks {
                            for _ in 0..indent {
                                self.put(' ');
                            }
                        }
                        if c == '\'' {
                            self.put('\'');
                        }
                        self.put(c);
                        spaces = false;
                        breaks = false;
                    }
                }
                self.put('\'');
            }
            Style::Double => {
                self.put('"');
                let chars: Vec<char> = s.chars().collect();
                let n = chars.len();
                let mut spaces = false;
                for i in 0..n {
                    let c = chars[i];
                    if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                        self.put('\\');
                        match c {
                            '\0' => self.put('0'),
                            '\u{7}' => self.put('a'),
                            '\u{8}' => self.put('b'),
                            '\t' => self.put('t'),
                            '\n' => self.put('n'),
                            '\u{b}' => self.put('v'),
                            '\u{c}' => self.put('f'),
                            '\r' => self.put('r'),
                            '\u{1b}' => self.put('e'),
                            '"' => self.put('"'),
                            '\\' => self.put('\\'),
                            '\u{85}' => self.put('N'),
                            '\u{a0}' => self.put('_'),
                            '\u{2028}' => self.put('L'),
                            '\u{2029}' => self.put('P'),
                            c => {
                                let u = c as u32;
                                if u <= 0xFF {
                                    self.puts(&format!("x{u:02X}"));
                                } else if u <= 0xFFFF {
                                    self.puts(&format!("u{u:04X}"));
                                } else {
                                    self.puts(&format!("U{u:08X}"));
                                }
                            }
                        }
                        spaces = false;
                    } else if c == ' ' {
                        if allow_breaks
                            && !spaces
                            && self.column > self.width()
                            && i != 0
                            && i != n - 1
                        {
                            self.newline_indent(indent);
                            if i + 1 < n && chars[i + 1] == ' ' {
                                self.put('\\');
                            }
                        } else {
                            self.put(c);
                        }
                        spaces = true;
                    } else {
                        self.put(c);
                        spaces = false;
                    }
                }
                self.put('"');
            }
            Style::Literal => {
                self.put('|');
                let chars: Vec<char> = s.chars().collect();
                if chars.first().is_some_and(|c| *c == ' ' || is_break(*c)) {
                    self.put('2');
                }
                let n = chars.len();
                if n == 0 || !is_break(chars[n - 1]) {
                    self.put('-');
                } else if n == 1 || is_break(chars[n - 2]) {
                    self.put('+');
                }
                self.put('\n');
                let mut breaks = true;
                for &c in &chars {
                    if is_break(c) {
                        self.put('\n');
                        breaks = true;
                    } else {
                        if breaks {
                            for _ in 0..indent {
                                self.put(' ');
                            }
                            breaks = false;
                        }
                        self.put(c);
                    }
                }
                // a literal ends with its own line break; the caller must not add one
                if !self.out.ends_with('\n') {
                    self.put('\n');
                }
            }
        }
    }

    fn scalar_text(v: &Value, pretty: bool) -> Option<String> {
        Some(match v {
            Value::Nil => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i, _) => i.to_string(),
            Value::Float(f) => {
                if f.is_nan() {
                    ".nan".into()
                } else if f.is_infinite() {
                    if *f > 0.0 {
                        ".inf".into()
                    } else {
                        "-.inf".into()
                    }
                } else if !pretty && f.fract() == 0.0 && f.abs() < 1e21 {
                    // through JSON an integral float64 becomes an int
                    format!("{}", *f as i128)
                } else {
                    format_float_g(*f)
                }
            }
            _ => return None,
        })
    }

    fn end_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.put('\n');
        }
    }

    /// Emits a node that follows "key:" or "- " (or starts a document).
    /// `indent`: the indent of the enclosing collection (-1 for the document).
    fn node(&mut self, v: &Value, indent: isize, in_map_value: bool) {
        let v = jsonish(v);
        let child_scalar_indent = (if indent < 0 { 2 } else { indent + 2 }) as usize;
        match &v {
            Value::Map(m) => {
                let m = m.snapshot();
                if m.is_empty() {
                    if in_map_value || indent >= 0 {
                        self.put(' ');
                    }
                    self.puts("{}");
                    self.put('\n');
                    return;
                }
                let my_indent = if indent < 0 { 0 } else { indent as usize + 2 };
                let mut keys: Vec<&String> = m.keys().collect();
                let v3 = self.pretty;
                merge_sort(&mut keys, &|a: &&String, b: &&String| {
                    yaml_key_less(a, b, v3)
                });
                let mut first = true;
                for k in keys {
                    if first && !in_map_value && indent >= 0 {
                        // right after "- ": same line
                    } else if first && indent < 0 {
                    } else {
                        self.end_line();
                        for _ in 0..my_indent {
                            self.put(' ');
                        }
                    }
                    first = false;
                    // go-yaml writes a key that cannot be a simple key (multi-line, or longer
                    // than 128 characters) in the complex form "? key\n: value".
                    let complex = k.contains('\n') || k.chars().count() > 128;
                    if complex {
                        self.puts("? ");
                        self.scalar(k, my_indent + 2, false);
                        self.end_line();
                        for _ in 0..my_indent {
                            self.put(' ');
                        }
                    } else {
                        self.scalar(k, my_indent + 2, true);
                    }
                    self.put(':');
                    let val = jsonish(&m[k]);
                    if complex {
                        match &val {
                            Value::List(l) if !l.is_empty() => {
                                self.put(' ');
                                self.seq_nested(l, my_indent + 2);
                                continue;
                            }
                            Value::Map(mm) if !mm.is_empty() => {
                                self.put(' ');
                                self.node(&val, my_indent as isize, false);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    match &val {
                        Value::List(l) if !l.is_empty() => {
                            // indentless sequence
                            self.put('\n');
                            self.seq(
                                l,
                                if self.pretty {
                                    my_indent + 2
                                } else {
                                    my_indent
                                },
                            );
                        }
                        Value::Map(mm) if !mm.is_empty() => {
                            self.put('\n');
                            for _ in 0..my_indent + 2 {
                                self.put(' ');
                            }
                            self.node(&val, my_indent as isize, false);
                        }
                        _ => {
                            self.node(&val, my_indent as isize, true);
                        }
                    }
                }
                self.end_line();
            }
            Value::List(l) => {
                if l.is_empty() {
                    if in_map_value {
                        self.put(' ');
                    }
                    self.puts("[]\n");
                    return;
                }
                let my_indent = if indent < 0 { 0 } else { indent as usize + 2 };
                self.seq(l, my_indent);
            }
            Value::Str(s) => {
                if in_map_value {
                    self.put(' ');
                }
                self.scalar(s, child_scalar_indent, false);
                self.end_line();
            }
            other => {
                if in_map_value {
                    self.put(' ');
                }
                let t = Self::scalar_text(other, self.pretty).unwrap_or_default();
                self.puts(&t);
                self.put('\n');
            }
        }
    }

    /// A block sequence whose "- " are at column `indent`; the cursor is at a line start.
    fn seq(&mut self, l: &[Value], indent: usize) {
        for item in l {
            self.end_line();
            for _ in 0..indent {
                self.put(' ');
            }
            self.put('-');
            let item = jsonish(item);
            match &item {
                Value::List(il) if !il.is_empty() => {
                    self.put(' ');
                    // nested sequence starts on the same line
                    let mut first = true;
                    for x in il.iter() {
                        if !first {
                            self.end_line();
                            for _ in 0..indent + 2 {
                                self.put(' ');
                            }
                        } else {
                            first = false;
                        }
                        self.put('-');
                        self.seq_item(x, indent + 2);
                    }
                }
                _ => self.seq_item(&item, indent),
            }
        }
        self.end_line();
    }

    fn seq_item(&mut self, item: &Value, indent: usize) {
        let item = jsonish(item);
        match &item {
            Value::Map(m) if !m.is_empty() => {
                self.put(' ');
                self.node(&item, indent as isize, false);
            }
            Value::List(l) if !l.is_empty() => {
                self.put(' ');
                self.seq_nested(l, indent + 2);
            }
            _ => self.node(&item, indent as isize, true),
        }
    }

    fn seq_nested(&mut self, l: &[Value], indent: usize) {
        let mut first = true;
        for x in l {
            if !first {
                self.end_line();
                for _ in 0..indent {
                    self.put(' ');
                }
            }
            first = false;
            self.put('-');
            self.seq_item(x, indent);
        }
        self.end_line();
    }
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() && i - st < 2 {
            i += 1;
        }
        let g = &s[st..i];
        if g.is_empty() || (g.len() == 2 && g.as_bytes()[0] > b'5') {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// go-yaml v2's Marshal of the value after a JSON round trip (sigs.k8s.io/yaml), with the
/// trailing newline.
pub fn to_yaml(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        pretty: false,
    };
    e.node(v, -1, false);
    e.out
}

/// Helm's toYamlPretty (go-yaml v3 with a 2-space indent: sequences indented).
pub fn to_yaml_pretty(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        pretty: true,
    };
    e.node(v, -1, false);
    e.out
}

/// The parts of a manifest Helm's sorter reads (`SimpleHead`): kind, metadata.name and
/// metadata.annotations, from the first document. The document is still fully parsed (so
/// invalid YAML is an error) but nothing else is built.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Head {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub annotations: Vec<(String, String)>,
    /// The document is not a mapping (or is empty).
    pub not_a_map: bool,
}

struct HeadReceiver {
    head: Head,
    /// Path of mapping keys from the document root; None for sequence levels.
    stack: Vec<Option<String>>,
    /// Whether the next scalar at each level is a key.
    expect_key: Vec<bool>,
    /// Whether each level is a mapping.
    is_map: Vec<bool>,
    docs: usize,
    anchors: HashMap<usize, String>,
}

impl HeadReceiver {
    fn scalar(&mut self, s: String, plain: bool) {
        if self.docs > 1 {
            return;
        }
        let depth = self.stack.len();
        if depth == 0 {
            self.head.not_a_map = true;
            return;
        }
        let is_key = self.is_map[depth - 1] && self.expect_key[depth - 1];
        if is_key {
            self.stack[depth - 1] = Some(s);
            self.expect_key[depth - 1] = false;
            return;
        }
        if !self.is_map[depth - 1] {
            return;
        }
        self.expect_key[depth - 1] = true;
        // Only three paths matter: look at the path before resolving the scalar (most
        // values of a manifest are at none of them).
        let key = |i: usize| self.stack[i].as_deref().unwrap_or("");
        #[derive(PartialEq)]
        enum Slot {
            Kind,
            Name,
            Annotation,
        }
        let slot = match depth {
            1 if key(0) == "kind" => Slot::Kind,
            2 if key(0) == "metadata" && key(1) == "name" => Slot::Name,
            3 if key(0) == "metadata" && key(1) == "annotations" => Slot::Annotation,
            _ => return,
        };
        let val = if plain {
            match resolve_plain(&s, Numbers::Json) {
                Value::Str(x) => x.to_string(),
                Value::Nil => return,
                other => crate::funcs::strval(&other),
            }
        } else {
            s
        };
        match slot {
            Slot::Kind => self.head.kind = Some(val),
            Slot::Name => self.head.name = Some(val),
            Slot::Annotation => {
                let k = key(2).to_string();
                self.head.annotations.push((k, val))
            }
        }
    }
    fn open(&mut self, map: bool) {
        if self.docs > 1 {
            return;
        }
        if self.stack.is_empty() && !map {
            self.head.not_a_map = true;
        }
        if let Some(k) = self.expect_key.last_mut() {
            // a collection is a value: the next scalar at that level is a key again
            *k = true;
        }
        self.stack.push(None);
        self.expect_key.push(map);
        self.is_map.push(map);
    }
    fn close(&mut self) {
        if self.docs > 1 {
            return;
        }
        self.stack.pop();
        self.expect_key.pop();
        self.is_map.pop();
    }
}

impl MarkedEventReceiver for HeadReceiver {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        match ev {
            Event::DocumentStart => self.docs += 1,
            Event::Scalar(s, style, anchor, _) => {
                if anchor > 0 {
                    self.anchors.insert(anchor, s.clone());
                }
                self.scalar(s, style == TScalarStyle::Plain)
            }
            Event::Alias(id) => {
                let s = self.anchors.get(&id).cloned().unwrap_or_default();
                self.scalar(s, false)
            }
            Event::SequenceStart(..) => self.open(false),
            Event::MappingStart(..) => self.open(true),
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            _ => {}
        }
    }
}

mod fast_head;

/// Reads a manifest's [`Head`]: line by line when the document is plain block YAML (see
/// `fast_head`), else with the full parser.
pub fn parse_head(text: &str) -> Result<Head, String> {
    match fast_head::fast_head(text) {
        Some(h) => Ok(h),
        None => parse_head_full(text),
    }
}

/// [`parse_head`] with the full YAML parser only (for differential tests of the fast path).
#[doc(hidden)]
pub fn parse_head_full(text: &str) -> Result<Head, String> {
    let mut r = HeadReceiver {
        head: Head::default(),
        stack: Vec::new(),
        expect_key: Vec::new(),
        is_map: Vec::new(),
        docs: 0,
        anchors: HashMap::new(),
    };
    let mut p = Parser::new_from_str(text);
    p.load(&mut r, true).map_err(|e| {
        let info = e.info();
        let problem = match info.split_once(", ") {
            Some((ctx, rest)) if ctx.starts_with("while ") => rest,
            _ => info,
        };
        format!(
            "yaml: line {}: {problem}",
            e.marker().line().min(text.lines().count().max(1))
        )
    })?;
    Ok(r.head)
}
