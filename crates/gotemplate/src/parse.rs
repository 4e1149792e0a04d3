//! Lexer and parser for Go's text/template language.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A parse error, formatted as Go formats it: `template: NAME:LINE: MSG`.
#[derive(Debug, Clone)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One parsed template: its name, the file it was parsed from, and its body.
#[derive(Debug)]
pub struct Tree {
    pub name: String,
    pub parse_name: String,
    pub text: Arc<str>,
    pub root: Vec<Node>,
}

impl Tree {
    /// Line (1-based) and column (0-based byte) of a position, as Go's ErrorContext computes it.
    pub fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.text.len());
        let before = &self.text[..pos];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - i - 1,
            None => pos,
        };
        (line, col)
    }
}

/// A node of a template body. The large variants are boxed: a chart's templates have
/// hundreds of thousands of nodes, mostly text, and every node is as big as the largest
/// variant.
#[derive(Debug, Clone)]
pub enum Node {
    /// Text between actions: the byte range `start..end` of the tree's `text`.
    Text(usize, usize),
    Action(Box<Pipe>),
    If(Box<Branch>),
    Range(Box<Branch>),
    With(Box<Branch>),
    Template(Box<TemplateCall>),
    Break(usize),
    Continue(usize),
}

/// `{{template "name" pipeline}}` (and the call a `block` makes).
#[derive(Debug, Clone)]
pub struct TemplateCall {
    pub pos: usize,
    pub name: String,
    pub pipe: Option<Pipe>,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Num {
    Int(i64),
    Float(f64),
}

#[derive(Debug, Clone)]
pub enum Arg {
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    Variable {
        pos: usize,
        name: String,
        idents: Vec<String>,
    },
    Identifier {
        pos: usize,
        name: String,
    },
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number {
        pos: usize,
        text: String,
        num: Num,
    },
    Str {
        pos: usize,
        /// The literal as written, when it is not simply `"value"` (raw or escaped).
        quoted: Option<Box<str>>,
        /// Shared, so that evaluating the literal allocates nothing.
        value: Arc<str>,
    },
    Pipe(Box<Pipe>),
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Dot(pos)
            | Arg::Nil(pos)
            | Arg::Bool(pos, _)
            | Arg::Number { pos, .. }
            | Arg::Str { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable { name, idents, .. } => {
                f.write_str(name)?;
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Identifier { name, .. } => f.write_str(name),
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number { text, .. } => f.write_str(text),
            Arg::Str { quoted, value, .. } => match quoted {
                Some(q) => f.write_str(q),
                None => write!(f, "\"{value}\""),
            },
            Arg::Pipe(p) => write!(f, "({p})"),
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(_) = **node {
                    write!(f, "{node}")?;
                } else {
                    write!(f, "{node}")?;
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- lexer

/// A token: text it carries is borrowed from the template source (lexing allocates only
/// the token vector).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    /// Text between actions: a byte range of the source.
    Text(usize, usize),
    LeftDelim,
    RightDelim,
    Space,
    Field(&'a str),
    Variable(&'a str),
    Ident(&'a str),
    /// A quoted string as written (its escapes were checked by the lexer).
    Str(&'a str),
    Char(&'a str, i64),
    Number(&'a str),
    Bool(bool),
    Nil,
    Dot,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Keyword(&'static str),
    Eof,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    pos: usize,
}

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

/// A token as the lexer stores it: positions instead of slices, 16 bytes instead of 40. A
/// long template has tens of thousands of tokens, and the vector holding them was the largest
/// allocation of a chart's render.
#[derive(Clone, Copy)]
struct Packed {
    pos: u32,
    a: u32,
    b: u32,
    kind: Kind,
}

/// What a [`Packed`] token is ([`Tok`]'s variants without their payloads).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Field,
    Variable,
    Ident,
    Str,
    Char,
    Number,
    Bool,
    Nil,
    Dot,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Keyword,
    Eof,
}

impl Packed {
    /// Packs `tok` found at `pos` of `src` (all positions fit: [`Lexer::lex`] refuses texts
    /// of 4 GiB and more).
    fn pack(src: &str, tok: Tok<'_>, pos: usize) -> Packed {
        let off = |s: &str| (s.as_ptr() as usize - src.as_ptr() as usize) as u32;
        let range = |s: &str| (off(s), off(s) + s.len() as u32);
        let ((a, b), kind) = match tok {
            Tok::Text(a, b) => ((a as u32, b as u32), Kind::Text),
            Tok::LeftDelim => ((0, 0), Kind::LeftDelim),
            Tok::RightDelim => ((0, 0), Kind::RightDelim),
            Tok::Space => ((0, 0), Kind::Space),
            Tok::Field(f) => (range(f), Kind::Field),
            Tok::Variable(v) => (range(v), Kind::Variable),
            Tok::Ident(i) => (range(i), Kind::Ident),
            Tok::Str(q) => (range(q), Kind::Str),
            // The literal starts at the token's position; its end and its value are kept.
            Tok::Char(q, v) => ((off(q) + q.len() as u32, v as u32), Kind::Char),
            Tok::Number(n) => (range(n), Kind::Number),
            Tok::Bool(v) => ((u32::from(v), 0), Kind::Bool),
            Tok::Nil => ((0, 0), Kind::Nil),
            Tok::Dot => ((0, 0), Kind::Dot),
            Tok::Pipe => ((0, 0), Kind::Pipe),
            Tok::LParen => ((0, 0), Kind::LParen),
            Tok::RParen => ((0, 0), Kind::RParen),
            Tok::Comma => ((0, 0), Kind::Comma),
            Tok::Declare => ((0, 0), Kind::Declare),
            Tok::Assign => ((0, 0), Kind::Assign),
            Tok::Keyword(k) => (
                (KEYWORDS.iter().position(|w| *w == k).unwrap_or(0) as u32, 0),
                Kind::Keyword,
            ),
            Tok::Eof => ((0, 0), Kind::Eof),
        };
        Packed {
            pos: pos as u32,
            a,
            b,
            kind,
        }
    }

    fn unpack<'a>(self, src: &'a str) -> Token<'a> {
        let text = || {
            src.get(self.a as usize..self.b as usize)
                .unwrap_or_default()
        };
        let tok = match self.kind {
            Kind::Text => Tok::Text(self.a as usize, self.b as usize),
            Kind::LeftDelim => Tok::LeftDelim,
            Kind::RightDelim => Tok::RightDelim,
            Kind::Space => Tok::Space,
            Kind::Field => Tok::Field(text()),
            Kind::Variable => Tok::Variable(text()),
            Kind::Ident => Tok::Ident(text()),
            Kind::Str => Tok::Str(text()),
            Kind::Char => Tok::Char(
                src.get(self.pos as usize..self.a as usize)
                    .unwrap_or_default(),
                i64::from(self.b),
            ),
            Kind::Number => Tok::Number(text()),
            Kind::Bool => Tok::Bool(self.a != 0),
            Kind::Nil => Tok::Nil,
            Kind::Dot => Tok::Dot,
            Kind::Pipe => Tok::Pipe,
            Kind::LParen => Tok::LParen,
            Kind::RParen => Tok::RParen,
            Kind::Comma => Tok::Comma,
            Kind::Declare => Tok::Declare,
            Kind::Assign => Tok::Assign,
            Kind::Keyword => Tok::Keyword(KEYWORDS.get(self.a as usize).copied().unwrap_or("")),
            Kind::Eof => Tok::Eof,
        };
        Token {
            tok,
            pos: self.pos as usize,
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    toks: Vec<Packed>,
    paren: i32,
}

fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\r' || c == b'\n'
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The end of the run of `is_alnum` characters from byte `e` (ASCII bytes without decoding).
fn scan_alnum(src: &str, mut e: usize) -> usize {
    let b = src.as_bytes();
    loop {
        match b.get(e) {
            Some(&c) if c.is_ascii_alphanumeric() || c == b'_' => e += 1,
            Some(&c) if !c.is_ascii() => match src[e..].chars().next() {
                Some(ch) if is_alnum(ch) => e += ch.len_utf8(),
                _ => return e,
            },
            _ => return e,
        }
    }
}

/// The first "{{" at or after `from` (a SIMD search, much faster than `str::find` over
/// long text runs).
fn find_open(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        let j = i + memchr::memchr(b'{', &b[i..])?;
        if b.get(j + 1) == Some(&b'{') {
            return Some(j);
        }
        i = j + 1;
    }
    None
}

/// The token of a text run `text`, a slice of `src`.
fn text_tok<'a>(src: &str, text: &str) -> Tok<'a> {
    let start = text.as_ptr() as usize - src.as_ptr() as usize;
    Tok::Text(start, start + text.len())
}

impl<'a> Lexer<'a> {
    fn lex(src: &'a str) -> Result<Vec<Packed>, (usize, String)> {
        if u32::try_from(src.len()).is_err() {
            return Err((0, "template text of 4 GiB or more".into()));
        }
        let mut l = Lexer {
            src,
            b: src.as_bytes(),
            pos: 0,
            // A guess from typical charts (a token per six to twelve bytes): fewer regrowths
            // of the vector, each a copy into fresh pages; capacity that is never written
            // costs no memory.
            toks: Vec::with_capacity(src.len() / 6 + 4),
            paren: 0,
        };
        let mut trim_next = false;
        loop {
            let start = l.pos;
            let next = find_open(l.b, start);
            let end = next.unwrap_or(src.len());
            let mut text = &src[start..end];
            if trim_next {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            let Some(open) = next else {
                if !text.is_empty() {
                    l.push(text_tok(src, text), start);
                }
                l.push(Tok::Eof, src.len());
                return Ok(l.toks);
            };
            // left trim marker "{{- "
            let mut p = open + 2;
            let trim_left =
                l.b.get(p) == Some(&b'-') && l.b.get(p + 1).is_some_and(|c| is_space(*c));
            if trim_left {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
                p += 2;
            }
            if !text.is_empty() {
                l.push(text_tok(src, text), start);
            }
            // comment
            let mut q = p;
            while trim_left && q < l.b.len() && is_space(l.b[q]) {
                q += 1;
            }
            if src[q..].starts_with("/*") {
                let Some(close) = src[q + 2..].find("*/") else {
                    return Err((open, "unclosed comment".into()));
                };
                let mut r = q + 2 + close + 2;
                // optional right trim
                let mut rt = false;
                let mut s = r;
                while s < l.b.len() && is_space(l.b[s]) {
                    s += 1;
                }
                if s > r && src[s..].starts_with("-}}") {
                    rt = true;
                    r = s + 1;
                }
                if !src[r..].starts_with("}}") {
                    return Err((open, "comment ends before closing delimiter".into()));
                }
                l.pos = r + 2;
                trim_next = rt;
                continue;
            }
            l.push(Tok::LeftDelim, open);
            l.pos = p;
            l.paren = 0;
            trim_next = l.lex_inside()?;
        }
    }

    fn push(&mut self, tok: Tok<'a>, pos: usize) {
        self.toks.push(Packed::pack(self.src, tok, pos));
    }

    /// Lexes inside an action up to and including the right delimiter. Returns whether it
    /// had a right trim marker.
    fn lex_inside(&mut self) -> Result<bool, (usize, String)> {
        loop {
            let start = self.pos;
            // right delimiter, possibly with trim marker
            if self.b.get(start).is_some_and(|c| is_space(*c))
                && self.b[start + 1..].starts_with(b"-}}")
            {
                self.push(Tok::Space, start);
                self.push(Tok::RightDelim, start + 2);
                self.pos = start + 4;
                return Ok(true);
            }
            if self.b[start..].starts_with(b"}}") {
                if self.paren > 0 {
                    return Err((start, "unclosed left paren".into()));
                }
                self.push(Tok::RightDelim, start);
                self.pos = start + 2;
                return Ok(false);
            }
            let c = match self.b.get(start) {
                Some(&c) if c.is_ascii() => c as char,
                Some(_) => self.src[start..].chars().next().unwrap_or_default(),
                None => return Err((start, "unclosed action".into())),
            };
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let mut e = start;
                    while e < self.b.len() && is_space(self.b[e]) {
                        // stop before " -}}"
                        if self.src[e..].len() >= 4
                            && self.b[e + 1] == b'-'
                            && self.src[e + 2..].starts_with("}}")
                        {
                            break;
                        }
                        e += 1;
                    }
                    if e == start {
                        e = start + 1;
                    }
                    self.push(Tok::Space, start);
                    self.pos = e;
                }
                '=' => {
                    self.push(Tok::Assign, start);
                    self.pos += 1;
                }
                ':' => {
                    if self.b.get(start + 1) != Some(&b'=') {
                        return Err((start, "expected :=".into()));
                    }
                    self.push(Tok::Declare, start);
                    self.pos += 2;
                }
                '|' => {
                    self.push(Tok::Pipe, start);
                    self.pos += 1;
                }
                ',' => {
                    self.push(Tok::Comma, start);
                    self.pos += 1;
                }
                '(' => {
                    self.paren += 1;
                    self.push(Tok::LParen, start);
                    self.pos += 1;
                }
                ')' => {
                    self.paren -= 1;
                    if self.paren < 0 {
                        return Err((start, "unexpected right paren".into()));
                    }
                    self.push(Tok::RParen, start);
                    self.pos += 1;
                }
                '"' => {
                    let mut e = start + 1;
                    loop {
                        match self.b.get(e) {
                            None | Some(b'\n') => {
                                return Err((start, "unterminated quoted string".into()));
                            }
                            Some(b'\\') => e += 2,
                            Some(b'"') => break,
                            _ => e += 1,
                        }
                    }
                    let quoted = &self.src[start..=e];
                    // Only escapes can be malformed: check them now (the parser unquotes
                    // again), so a bad string is still a lexing error.
                    if quoted.contains('\\') {
                        unquote(quoted).map_err(|m| (start, m))?;
                    }
                    self.push(Tok::Str(quoted), start);
                    self.pos = e + 1;
                }
                '`' => {
                    let Some(close) = self.src[start + 1..].find('`') else {
                        return Err((start, "unterminated raw quoted string".into()));
                    };
                    let e = start + 1 + close;
                    self.push(Tok::Str(&self.src[start..=e]), start);
                    self.pos = e + 1;
                }
                '\'' => {
                    let mut e = start + 1;
                    loop {
                        match self.b.get(e) {
                            None | Some(b'\n') => {
                                return Err((start, "unterminated character constant".into()));
                            }
                            Some(b'\\') => e += 2,
                            Some(b'\'') => break,
                            _ => e += 1,
                        }
                    }
                    let quoted = &self.src[start..=e];
                    let inner = &quoted[1..quoted.len() - 1];
                    let v = unquote(&format!("\"{}\"", inner.replace("\\'", "'")))
                        .map_err(|m| (start, m))?;
                    let mut cs = v.chars();
                    let (Some(ch), None) = (cs.next(), cs.next()) else {
                        return Err((start, format!("malformed character constant: {quoted}")));
                    };
                    self.push(Tok::Char(quoted, ch as i64), start);
                    self.pos = e + 1;
                }
                '$' => {
                    let e = scan_alnum(self.src, start + 1);
                    self.push(Tok::Variable(&self.src[start..e]), start);
                    self.pos = e;
                }
                '.' => {
                    let nc = self.src[start + 1..].chars().next();
                    if nc.is_some_and(|c| c.is_ascii_digit()) {
                        self.lex_number(start)?;
                    } else if nc.is_some_and(is_alnum) {
                        let e = scan_alnum(self.src, start + 1);
                        self.push(Tok::Field(&self.src[start + 1..e]), start);
                        self.pos = e;
                    } else {
                        self.push(Tok::Dot, start);
                        self.pos += 1;
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number(start)?,
                c if is_alnum(c) => {
                    let e = scan_alnum(self.src, start);
                    let word = &self.src[start..e];
                    let tok = match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(w),
                        },
                    };
                    self.push(tok, start);
                    self.pos = e;
                }
                c if c.is_ascii_graphic() => {
                    return Err((start, format!("unexpected {:?} in operand", c.to_string())));
                }
                c => return Err((start, format!("unrecognized character in action: {c:?}"))),
            }
        }
    }

    fn lex_number(&mut self, start: usize) -> Result<(), (usize, String)> {
        let mut e = start;
        if matches!(self.b.get(e), Some(b'+') | Some(b'-')) {
            e += 1;
        }
        let mut digits = "0123456789_";
        if self.b.get(e) == Some(&b'0') {
            match self.b.get(e + 1) {
                Some(b'x') | Some(b'X') => {
                    e += 2;
                    digits = "0123456789abcdefABCDEF_";
                }
                Some(b'o') | Some(b'O') => {
                    e += 2;
                    digits = "01234567_";
                }
                Some(b'b') | Some(b'B') => {
                    e += 2;
                    digits = "01_";
                }
                _ => {}
            }
        }
        let acc = |e: &mut usize, set: &str, b: &[u8]| {
            while *e < b.len() && set.as_bytes().contains(&b[*e]) {
                *e += 1;
            }
        };
        acc(&mut e, digits, self.b);
        if self.b.get(e) == Some(&b'.') {
            e += 1;
            acc(&mut e, digits, self.b);
        }
        if digits.len() == 11 && matches!(self.b.get(e), Some(b'e') | Some(b'E')) {
            e += 1;
            if matches!(self.b.get(e), Some(b'+') | Some(b'-')) {
                e += 1;
            }
            acc(&mut e, "0123456789_", self.b);
        }
        if digits.len() == 23 && matches!(self.b.get(e), Some(b'p') | Some(b'P')) {
            e += 1;
            if matches!(self.b.get(e), Some(b'+') | Some(b'-')) {
                e += 1;
            }
            acc(&mut e, "0123456789_", self.b);
        }
        if self.b.get(e).is_some_and(|c| c.is_ascii_alphanumeric()) {
            let mut f = e;
            while f < self.b.len() && self.b[f].is_ascii_alphanumeric() {
                f += 1;
            }
            return Err((
                start,
                format!("bad number syntax: {:?}", &self.src[start..f]),
            ));
        }
        let text = &self.src[start..e];
        if text == "+" || text == "-" {
            return Err((start, format!("bad number syntax: {text:?}")));
        }
        self.push(Tok::Number(text), start);
        self.pos = e;
        Ok(())
    }
}

/// strconv.Unquote for a double-quoted Go string.
pub fn unquote(q: &str) -> Result<String, String> {
    // The lexer only hands over whole literals; other callers (fromToml) may not.
    if q.len() < 2 || !q.starts_with('"') || !q.ends_with('"') {
        return Err(format!("invalid syntax: {q}"));
    }
    let inner = &q[1..q.len() - 1];
    let mut out = String::new();
    let mut it = inner.chars().peekable();
    let bad = || format!("invalid syntax: {q}");
    let mut bytes: Vec<u8> = Vec::new();
    let flush = |bytes: &mut Vec<u8>, out: &mut String| {
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(bytes));
            bytes.clear();
        }
    };
    while let Some(c) = it.next() {
        if c != '\\' {
            flush(&mut bytes, &mut out);
            out.push(c);
            continue;
        }
        let Some(e) = it.next() else {
            return Err(bad());
        };
        let hex =
            |it: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Result<u32, String> {
                let s: String = it.take(n).collect();
                if s.len() != n {
                    return Err(bad());
                }
                u32::from_str_radix(&s, 16).map_err(|_| bad())
            };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => {
                bytes.push(hex(&mut it, 2)? as u8);
                continue;
            }
            'u' => out.push(char::from_u32(hex(&mut it, 4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(&mut it, 8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let s: String = std::iter::once(e).chain(it.by_ref().take(2)).collect();
                bytes.push(u32::from_str_radix(&s, 8).map_err(|_| bad())? as u8);
                continue;
            }
            _ => return Err(bad()),
        }
        flush(&mut bytes, &mut out);
    }
    flush(&mut bytes, &mut out);
    Ok(out)
}

fn parse_number(text: &str) -> Result<Num, String> {
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains('.') || h.contains('p') {
            None
        } else {
            i128::from_str_radix(h, 16).ok()
        }
    } else if let Some(o) = lower.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.chars().all(|c| c.is_ascii_digit())
    {
        i128::from_str_radix(&lower[1..], 8).ok()
    } else if lower.chars().all(|c| c.is_ascii_digit()) {
        lower.parse::<i128>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        let i = if neg { -i } else { i };
        if i > i64::MAX as i128 || i < i64::MIN as i128 {
            return Err(format!("integer overflow: {text:?}"));
        }
        return Ok(Num::Int(i as i64));
    }
    if let Some(h) = lower.strip_prefix("0x") {
        // hexadecimal float: 0x1.8p3
        let bad = || format!("illegal number syntax: {text:?}");
        let (mant, exp) = h.split_once('p').unwrap_or((h, "0"));
        let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
        let mut f = 0f64;
        for c in ip.chars() {
            f = f * 16.0 + c.to_digit(16).ok_or_else(bad)? as f64;
        }
        let mut scale = 1.0 / 16.0;
        for c in fp.chars() {
            f += c.to_digit(16).ok_or_else(bad)? as f64 * scale;
            scale /= 16.0;
        }
        let e: i32 = exp.parse().map_err(|_| bad())?;
        let f = f * 2f64.powi(e);
        return Ok(Num::Float(if neg { -f } else { f }));
    }
    let f: f64 = lower
        .parse()
        .map_err(|_| format!("illegal number syntax: {text:?}"))?;
    Ok(Num::Float(if neg { -f } else { f }))
}

// ---------------------------------------------------------------- parser

/// Parses `text` (from file `name`) into trees: the template itself under `name` and one per
/// `define`/`block`. `has_func` tells which function names exist.
pub fn parse(
    name: &str,
    text_arc: Arc<str>,
    has_func: &dyn Fn(&str) -> bool,
) -> Result<HashMap<String, Arc<Tree>>, ParseError> {
    let text: &str = &text_arc;
    let toks = match Lexer::lex(text) {
        Ok(t) => t,
        Err((pos, msg)) => {
            let line = 1 + text[..pos.min(text.len())].matches('\n').count();
            return Err(ParseError(format!("template: {name}:{line}: {msg}")));
        }
    };
    let mut p = Parser {
        name,
        text,
        toks,
        i: 0,
        defs: Vec::new(),
        vars: vec!["$"],
        has_func,
        range_depth: 0,
        node_stack: Vec::new(),
        cmd_stack: Vec::new(),
        arg_stack: Vec::new(),
    };
    let (root, _) = p.item_list(&[]).map_err(ParseError)?;
    let mut out: HashMap<String, Arc<Tree>> = HashMap::new();
    for (dname, body, dpos) in std::mem::take(&mut p.defs) {
        let t = Tree {
            name: dname.clone(),
            parse_name: name.to_string(),
            text: text_arc.clone(),
            root: body,
        };
        // A later definition replaces an earlier one unless either is empty; two non-empty
        // definitions in one text are an error.
        if let Some(old) = out.get(&dname) {
            if is_empty_tree(&t.root, text) {
                continue;
            }
            if !is_empty_tree(&old.root, text) {
                let line = 1 + text[..dpos.min(text.len())].matches('\n').count();
                return Err(ParseError(format!(
                    "template: {name}:{line}: template: multiple definition of template {dname:?}"
                )));
            }
        }
        out.insert(dname, Arc::new(t));
    }
    if !(out.contains_key(name) && is_empty_tree(&root, text)) {
        let main = Tree {
            name: name.to_string(),
            parse_name: name.to_string(),
            text: text_arc.clone(),
            root,
        };
        out.insert(name.to_string(), Arc::new(main));
    }
    Ok(out)
}

/// Go's parse.IsEmptyTree: only whitespace text (`text`: the source the nodes index).
pub fn is_empty_tree(nodes: &[Node], text: &str) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text(a, b) => text.get(*a..*b).is_none_or(|t| t.trim().is_empty()),
        _ => false,
    })
}

/// The value of a string token: raw strings as written, quoted ones unquoted (the lexer
/// has already checked their escapes).
fn str_value(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    if quoted.starts_with('`') || !inner.contains('\\') {
        inner.to_string()
    } else {
        unquote(quoted).unwrap_or_default()
    }
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
    toks: Vec<Packed>,
    i: usize,
    defs: Vec<(String, Vec<Node>, usize)>,
    /// Variables in scope (names borrowed from the source).
    vars: Vec<&'a str>,
    has_func: &'a dyn Fn(&str) -> bool,
    range_depth: usize,
    /// Nodes, commands and arguments of the lists being parsed, innermost last: each list
    /// is moved out into a vector of exactly its length when it ends (pushing into a fresh
    /// vector would leave most of them with room for four or more).
    node_stack: Vec<Node>,
    cmd_stack: Vec<Command>,
    arg_stack: Vec<Arg>,
}

enum End {
    Done,
    Else(usize),
    Eof,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, pos: usize, msg: impl fmt::Display) -> Result<T, String> {
        let line = 1 + self.text[..pos.min(self.text.len())].matches('\n').count();
        Err(format!("template: {}:{}: {}", self.name, line, msg))
    }

    fn peek(&self) -> Token<'a> {
        self.toks[self.i.min(self.toks.len() - 1)].unpack(self.text)
    }
    fn next(&mut self) -> Token<'a> {
        let t = self.peek();
        self.i += 1;
        t
    }
    fn next_non_space(&mut self) -> Token<'a> {
        loop {
            let t = self.next();
            if t.tok != Tok::Space {
                return t;
            }
        }
    }
    fn peek_non_space(&mut self) -> Token<'a> {
        let save = self.i;
        let t = self.next_non_space();
        self.i = save;
        t
    }

    /// Parses nodes until `{{end}}`, `{{else}}` or EOF. `ctx` names the enclosing block.
    fn item_list(&mut self, ctx: &[&str]) -> Result<(Vec<Node>, End), String> {
        let base = self.node_stack.len();
        loop {
            let t = self.next();
            match t.tok {
                Tok::Eof => {
                    if !ctx.is_empty() {
                        return self.err(t.pos, "unexpected EOF");
                    }
                    return Ok((self.node_stack.drain(base..).collect(), End::Eof));
                }
                Tok::Text(a, b) => self.node_stack.push(Node::Text(a, b)),
                Tok::LeftDelim => {
                    let kw = self.peek_non_space();
                    match kw.tok {
                        Tok::Keyword("end") => {
                            self.next_non_space();
                            self.expect_right("end")?;
                            if ctx.is_empty() {
                                return self.err(kw.pos, "unexpected {{end}}");
                            }
                            return Ok((self.node_stack.drain(base..).collect(), End::Done));
                        }
                        Tok::Keyword("else") => {
                            self.next_non_space();
                            if ctx.is_empty() {
                                return self.err(kw.pos, "unexpected {{else}}");
                            }
                            let nodes = self.node_stack.drain(base..).collect();
                            return Ok((nodes, End::Else(kw.pos)));
                        }
                        _ => {
                            if let Some(n) = self.action()? {
                                self.node_stack.push(n);
                            }
                        }
                    }
                }
                other => return self.err(t.pos, format!("unexpected {other:?}")),
            }
        }
    }

    fn expect_right(&mut self, ctx: &str) -> Result<(), String> {
        let t = self.next_non_space();
        if t.tok != Tok::RightDelim {
            return self.err(t.pos, format!("unexpected {} in {}", tok_desc(&t.tok), ctx));
        }
        Ok(())
    }

    fn action(&mut self) -> Result<Option<Node>, String> {
        let t = self.peek_non_space();
        match t.tok {
            Tok::Keyword("block") => {
                self.next_non_space();
                self.template_control(true).map(Some)
            }
            Tok::Keyword("break") | Tok::Keyword("continue") => {
                self.next_non_space();
                let kw = if t.tok == Tok::Keyword("break") {
                    "break"
                } else {
                    "continue"
                };
                if self.range_depth == 0 {
                    return self.err(t.pos, format!("{{{{{kw}}}}} outside {{{{range}}}}"));
                }
                self.expect_right(kw)?;
                Ok(Some(if kw == "break" {
                    Node::Break(t.pos)
                } else {
                    Node::Continue(t.pos)
                }))
            }
            Tok::Keyword("define") => {
                self.next_non_space();
                self.define()?;
                Ok(None)
            }
            Tok::Keyword("if") => {
                self.next_non_space();
                self.branch("if", t.pos)
                    .map(|b| Some(Node::If(Box::new(b))))
            }
            Tok::Keyword("range") => {
                self.next_non_space();
                self.range_depth += 1;
                let r = self.branch("range", t.pos);
                self.range_depth -= 1;
                r.map(|b| Some(Node::Range(Box::new(b))))
            }
            Tok::Keyword("with") => {
                self.next_non_space();
                self.branch("with", t.pos)
                    .map(|b| Some(Node::With(Box::new(b))))
            }
            Tok::Keyword("template") => {
                self.next_non_space();
                self.template_control(false).map(Some)
            }
            Tok::Keyword(k) => self.err(t.pos, format!("unexpected {k}")),
            _ => {
                let pipe = self.pipeline("command", true)?;
                Ok(Some(Node::Action(Box::new(pipe))))
            }
        }
    }

    fn define(&mut self) -> Result<(), String> {
        let t = self.next_non_space();
        let Tok::Str(q) = t.tok else {
            return self.err(t.pos, "name of defined template must be a string");
        };
        let name = str_value(q);
        self.expect_right("define clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$"]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let (body, end) = self.item_list(&["define"])?;
        self.vars = saved_vars;
        self.range_depth = saved_range;
        if let End::Else(pos) = end {
            return self.err(pos, "unexpected {{else}} in define clause");
        }
        self.defs.push((name, body, t.pos));
        Ok(())
    }

    fn template_control(&mut self, block: bool) -> Result<Node, String> {
        let ctx = if block {
            "block clause"
        } else {
            "template clause"
        };
        let t = self.next_non_space();
        let Tok::Str(q) = t.tok else {
            return self.err(t.pos, format!("unexpected {} in {}", tok_desc(&t.tok), ctx));
        };
        let name = str_value(q);
        let nt = self.peek_non_space();
        let pipe = if nt.tok != Tok::RightDelim {
            Some(self.pipeline(ctx, false)?)
        } else {
            self.next_non_space();
            None
        };
        if block {
            let saved_vars = std::mem::replace(&mut self.vars, vec!["$"]);
            let (body, end) = self.item_list(&["block"])?;
            self.vars = saved_vars;
            if let End::Else(pos) = end {
                return self.err(pos, "unexpected {{else}}");
            }
            self.defs.push((name.clone(), body, t.pos));
        }
        Ok(Node::Template(Box::new(TemplateCall {
            pos: t.pos,
            name,
            pipe,
        })))
    }

    fn branch(&mut self, kind: &str, pos: usize) -> Result<Branch, String> {
        let mark = self.vars.len();
        let pipe = self.pipeline(kind, false)?;
        let (list, end) = self.item_list(&[kind])?;
        let mut else_list = None;
        if let End::Else(epos) = end {
            // "else if" / "else with" chaining
            let nt = self.peek_non_space();
            let chained = matches!(
                (&nt.tok, kind),
                (Tok::Keyword("if"), "if") | (Tok::Keyword("with"), "with")
            );
            if chained {
                self.next_non_space();
                let inner = self.branch(kind, epos)?;
                else_list = Some(vec![if kind == "if" {
                    Node::If(Box::new(inner))
                } else {
                    Node::With(Box::new(inner))
                }]);
            } else {
                self.expect_right("else")?;
                let (l, end2) = self.item_list(&[kind])?;
                if let End::Else(p2) = end2 {
                    return self.err(p2, "expected end; found {{else}}");
                }
                else_list = Some(l);
            }
        }
        self.vars.truncate(mark);
        Ok(Branch {
            pos,
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, ctx: &str, _top: bool) -> Result<Pipe, String> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // declarations
        let save = self.i;
        let t = self.next_non_space();
        if let Tok::Variable(v) = &t.tok {
            let t2 = self.next_non_space();
            match t2.tok {
                Tok::Declare | Tok::Assign => {
                    pipe.is_assign = t2.tok == Tok::Assign;
                    pipe.decl.push(v.to_string());
                    if t2.tok == Tok::Declare {
                        self.vars.push(v);
                    } else if !self.vars.contains(v) {
                        return self.err(t.pos, format!("undefined variable \"{v}\""));
                    }
                }
                Tok::Comma if ctx == "range" => {
                    let t3 = self.next_non_space();
                    let Tok::Variable(v2) = t3.tok else {
                        return self.err(t3.pos, "range can only initialize variables");
                    };
                    let t4 = self.next_non_space();
                    if t4.tok != Tok::Declare && t4.tok != Tok::Assign {
                        return self.err(t4.pos, "range can only initialize variables");
                    }
                    pipe.is_assign = t4.tok == Tok::Assign;
                    pipe.decl.push(v.to_string());
                    pipe.decl.push(v2.to_string());
                    if !pipe.is_assign {
                        self.vars.push(v);
                        self.vars.push(v2);
                    }
                }
                _ => self.i = save,
            }
        } else {
            self.i = save;
        }
        let base = self.cmd_stack.len();
        loop {
            let t = self.next_non_space();
            match t.tok {
                Tok::RightDelim => {
                    if self.cmd_stack.len() == base {
                        return self.err(t.pos, format!("missing value for {ctx}"));
                    }
                    break;
                }
                Tok::RParen => {
                    return self.err(t.pos, format!("unexpected right paren in {ctx}"));
                }
                _ => {
                    self.i -= 1;
                    let cmd = self.command()?;
                    self.cmd_stack.push(cmd);
                }
            }
        }
        pipe.cmds = self.cmd_stack.drain(base..).collect();
        self.check_pipeline(&pipe)?;
        Ok(pipe)
    }

    fn check_pipeline(&self, pipe: &Pipe) -> Result<(), String> {
        for c in pipe.cmds.iter().skip(1) {
            match c.args.first() {
                Some(Arg::Bool(..))
                | Some(Arg::Dot(_))
                | Some(Arg::Nil(_))
                | Some(Arg::Number { .. })
                | Some(Arg::Str { .. }) => {
                    return self.err(
                        c.pos,
                        format!("non executable command in pipeline stage {}", 2),
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Command, String> {
        let start = self.peek_non_space();
        let base = self.arg_stack.len();
        loop {
            // skip spaces
            while self.peek().tok == Tok::Space {
                self.i += 1;
            }
            let op = self.operand()?;
            if let Some(op) = op {
                self.arg_stack.push(op);
            }
            let t = self.peek();
            match t.tok {
                Tok::Space => {
                    self.i += 1;
                    continue;
                }
                Tok::RightDelim | Tok::RParen => break,
                Tok::Pipe => {
                    self.i += 1;
                    break;
                }
                _ => return self.err(t.pos, format!("unexpected {} in operand", tok_desc(&t.tok))),
            }
        }
        if self.arg_stack.len() == base {
            return self.err(start.pos, "empty command");
        }
        Ok(Command {
            pos: start.pos,
            args: self.arg_stack.drain(base..).collect(),
        })
    }

    fn operand(&mut self) -> Result<Option<Arg>, String> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if let Tok::Field(_) = self.peek().tok {
            // Go positions a chained field at its first chained field
            let pos = self.peek().pos;
            let mut fields = Vec::new();
            while let Tok::Field(f) = self.peek().tok {
                fields.push(f.to_string());
                self.i += 1;
            }
            let node = match node {
                Arg::Field { mut idents, .. } => {
                    idents.extend(fields);
                    Arg::Field { pos, idents }
                }
                Arg::Variable {
                    name, mut idents, ..
                } => {
                    idents.extend(fields);
                    Arg::Variable { pos, name, idents }
                }
                Arg::Bool(p, _)
                | Arg::Str { pos: p, .. }
                | Arg::Number { pos: p, .. }
                | Arg::Nil(p)
                | Arg::Dot(p) => {
                    return self.err(p, format!("unexpected . after term {:?}", node.to_string()));
                }
                other => Arg::Chain {
                    pos,
                    node: Box::new(other),
                    fields,
                },
            };
            return Ok(Some(node));
        }
        Ok(Some(node))
    }

    fn term(&mut self) -> Result<Option<Arg>, String> {
        let t = self.next_non_space();
        Ok(Some(match t.tok {
            Tok::Ident(name) => {
                if !(self.has_func)(name) {
                    return self.err(t.pos, format!("function {name:?} not defined"));
                }
                Arg::Identifier {
                    pos: t.pos,
                    name: name.to_string(),
                }
            }
            Tok::Dot => Arg::Dot(t.pos),
            Tok::Nil => Arg::Nil(t.pos),
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return self.err(t.pos, format!("undefined variable \"{v}\""));
                }
                Arg::Variable {
                    pos: t.pos,
                    name: v.to_string(),
                    idents: Vec::new(),
                }
            }
            Tok::Field(f) => Arg::Field {
                pos: t.pos,
                idents: vec![f.to_string()],
            },
            Tok::Bool(b) => Arg::Bool(t.pos, b),
            Tok::Char(text, v) => Arg::Number {
                pos: t.pos,
                text: text.to_string(),
                num: Num::Int(v),
            },
            Tok::Number(text) => {
                let num = match parse_number(text) {
                    Ok(n) => n,
                    Err(e) => return self.err(t.pos, e),
                };
                Arg::Number {
                    pos: t.pos,
                    text: text.to_string(),
                    num,
                }
            }
            Tok::LParen => {
                let pipe = self.pipeline_paren()?;
                Arg::Pipe(Box::new(pipe))
            }
            Tok::Str(quoted) => {
                let value = str_value(quoted);
                let plain = quoted.starts_with('"')
                    && !quoted.contains('\\')
                    && quoted.len() == value.len() + 2;
                Arg::Str {
                    pos: t.pos,
                    quoted: (!plain).then(|| quoted.into()),
                    value: Arc::from(value),
                }
            }
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        }))
    }

    fn pipeline_paren(&mut self) -> Result<Pipe, String> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        let save = self.i;
        let t = self.next_non_space();
        if let Tok::Variable(v) = &t.tok {
            let t2 = self.next_non_space();
            match t2.tok {
                Tok::Declare | Tok::Assign => {
                    pipe.is_assign = t2.tok == Tok::Assign;
                    pipe.decl.push(v.to_string());
                    if t2.tok == Tok::Declare {
                        self.vars.push(v);
                    }
                }
                _ => self.i = save,
            }
        } else {
            self.i = save;
        }
        let base = self.cmd_stack.len();
        loop {
            let t = self.next_non_space();
            match t.tok {
                Tok::RParen => {
                    if self.cmd_stack.len() == base {
                        return self.err(t.pos, "missing value for parenthesized pipeline");
                    }
                    break;
                }
                Tok::RightDelim | Tok::Eof => return self.err(t.pos, "unclosed left paren"),
                _ => {
                    self.i -= 1;
                    let cmd = self.command()?;
                    self.cmd_stack.push(cmd);
                }
            }
        }
        pipe.cmds = self.cmd_stack.drain(base..).collect();
        self.check_pipeline(&pipe)?;
        Ok(pipe)
    }
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Text(..) => "text".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Space => "space".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Variable(v) => format!("<{v}>"),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Str(q) => format!("<{q}>"),
        Tok::Char(q, _) => format!("<{q}>"),
        Tok::Number(n) => format!("<{n}>"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Nil => "<nil>".into(),
        Tok::Dot => "<.>".into(),
        Tok::Pipe => "<|>".into(),
        Tok::LParen => "<(>".into(),
        Tok::RParen => "<)>".into(),
        Tok::Comma => "<,>".into(),
        Tok::Declare => "<:=>".into(),
        Tok::Assign => "<=>".into(),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::Eof => "EOF".into(),
    }
}
