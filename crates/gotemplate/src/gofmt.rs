//! Go's `fmt` printing (`%v`, `Sprint`, `Sprintf` verbs) and `strconv` float formatting.

use crate::value::{IntKind, Value};

/// Decimal digits and decimal point position: value = 0.DIGITS × 10^dp.
fn decompose(f: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        None => format!("{:e}", f.abs()),
        // a float64 has fewer than 800 significant decimal digits; more are zeros
        Some(p) => format!("{:.*e}", p.clamp(1, 800) - 1, f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return ("0".into(), 1);
    }
    (digits, exp + 1)
}

fn exp_suffix(out: &mut String, e: char, exp: i32) {
    out.push(e);
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
}

/// strconv.FormatFloat(f, 'e', prec) where prec None = shortest.
fn fmt_e(neg: bool, digits: &str, dp: i32, prec: Option<usize>, e: char) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let first = digits.chars().next().unwrap_or('0');
    out.push(first);
    let rest = &digits[1..];
    let prec = prec.unwrap_or(rest.len());
    if prec > 0 {
        out.push('.');
        let mut r: String = rest.chars().take(prec).collect();
        while r.len() < prec {
            r.push('0');
        }
        out.push_str(&r);
    }
    let exp = if digits == "0" { 0 } else { dp - 1 };
    exp_suffix(&mut out, e, exp);
    out
}

/// strconv.FormatFloat(f, 'f', prec) from decomposed digits (prec None = as many as needed).
fn fmt_f(neg: bool, digits: &str, dp: i32, prec: Option<usize>) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let d = digits.as_bytes();
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(if i < d.len() { d[i] as char } else { '0' });
        }
    } else {
        out.push('0');
    }
    let frac_len = match prec {
        Some(p) => p,
        None => (d.len() as i32 - dp).max(0) as usize,
    };
    if frac_len > 0 {
        out.push('.');
        for i in 0..frac_len {
            let j = dp + i as i32;
            out.push(if j >= 0 && (j as usize) < d.len() {
                d[j as usize] as char
            } else {
                '0'
            });
        }
    }
    out
}

fn special(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

/// strconv.FormatFloat(f, 'g', -1, 64): what `%v` prints for a float64.
pub fn format_float_g(f: f64) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let neg = f.is_sign_negative();
    let (digits, dp) = decompose(f, None);
    let exp = dp - 1;
    if digits != "0" && !(-4..6).contains(&exp) {
        fmt_e(neg, &digits, dp, None, 'e')
    } else {
        fmt_f(neg, &digits, dp, None)
    }
}

/// strconv.FormatFloat(f, 'g', prec, 64) with an explicit precision.
fn format_float_g_prec(f: f64, prec: usize, e: char) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let prec = if prec == 0 { 1 } else { prec };
    let neg = f.is_sign_negative();
    let (digits, dp) = decompose(f, Some(prec));
    let mut eprec = prec as i32;
    if eprec > digits.len() as i32 && digits.len() as i32 >= dp {
        eprec = digits.len() as i32;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        fmt_e(neg, &digits, dp, None, e)
    } else {
        fmt_f(neg, &digits, dp, None)
    }
}

/// Float formatting as encoding/json writes a float64.
pub fn format_float_json(f: f64) -> String {
    if f == f.trunc() && f.abs() < 1e21 {
        let (digits, dp) = decompose(f, None);
        return fmt_f(f < 0.0, &digits, dp, None);
    }
    let a = f.abs();
    let (digits, dp) = decompose(f, None);
    if !(1e-6..1e21).contains(&a) {
        let s = fmt_e(f < 0.0, &digits, dp, None, 'e');
        // encoding/json: e-09 -> e-9
        if let Some(pos) = s.find("e-0") {
            let mut t = s.clone();
            t.replace_range(pos..pos + 3, "e-");
            return t;
        }
        if let Some(pos) = s.find("e+0") {
            let mut t = s.clone();
            t.replace_range(pos..pos + 3, "e+");
            return t;
        }
        s
    } else {
        fmt_f(f < 0.0, &digits, dp, None)
    }
}

/// strconv.Quote.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_nonprint(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_nonprint(c: char) -> bool {
    let u = c as u32;
    (0x80..0xa0).contains(&u) || u == 0xad || (0x2028..=0x2029).contains(&u) || u == 0xfeff
}

/// `%v` of a value, as fmt.Sprint prints one operand.
pub fn sprint_v(v: &Value) -> String {
    let mut s = String::new();
    write_v(&mut s, v, false);
    s
}

fn write_v(out: &mut String, v: &Value, nested: bool) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i, _) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_g(*f)),
        Value::Str(s) => out.push_str(s),
        Value::Bytes(b) => {
            out.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&x.to_string());
            }
            out.push(']');
        }
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, x, true);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.snapshot().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_v(out, x, true);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let _ = nested;
            out.push_str(&o.fmt_v())
        }
    }
}

/// fmt.Sprint: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        write_v(&mut out, a, false);
    }
    out
}

/// fmt.Sprintln.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, a, false);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Flags {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(out: &mut String, s: &str, f: &Flags, numeric: bool) {
    let len = s.chars().count();
    let w = f.width.unwrap_or(0);
    if len >= w {
        out.push_str(s);
        return;
    }
    let n = w - len;
    if f.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', n));
    } else if f.zero && numeric {
        let (sign, rest) = if s.starts_with('-') || s.starts_with('+') || s.starts_with(' ') {
            s.split_at(1)
        } else {
            ("", s)
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', n));
        out.push_str(rest);
    } else if f.zero {
        out.extend(std::iter::repeat_n('0', n));
        out.push_str(s);
    } else {
        out.extend(std::iter::repeat_n(' ', n));
        out.push_str(s);
    }
}

fn bad_verb(verb: char, v: &Value) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", v.type_name(), sprint_v(v)),
    }
}

fn sign_int(i: i64, f: &Flags, body: String) -> String {
    if i < 0 {
        format!("-{body}")
    } else if f.plus {
        format!("+{body}")
    } else if f.space {
        format!(" {body}")
    } else {
        body
    }
}

fn fmt_int(i: i64, verb: char, f: &Flags) -> Option<String> {
    let a = i.unsigned_abs();
    let mut body = match verb {
        'd' | 'v' => a.to_string(),
        'x' => format!("{a:x}"),
        'X' => format!("{a:X}"),
        'o' | 'O' => format!("{a:o}"),
        'b' => format!("{a:b}"),
        'c' => return Some(char::from_u32(i as u32).unwrap_or('\u{FFFD}').to_string()),
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            let q = quote(&c.to_string());
            let inner = &q[1..q.len() - 1];
            let inner = if inner == "\\\"" { "\"" } else { inner };
            let inner = if c == '\'' { "\\'" } else { inner };
            return Some(format!("'{inner}'"));
        }
        'U' => return Some(format!("U+{:04X}", i)),
        _ => return None,
    };
    if let Some(p) = f.prec {
        while body.len() < p {
            body.insert(0, '0');
        }
    }
    if f.sharp {
        match verb {
            'x' => body = format!("0x{body}"),
            'X' => body = format!("0X{body}"),
            'o' => body = format!("0{body}"),
            _ => {}
        }
    }
    if verb == 'O' {
        body = format!("0o{body}");
    }
    Some(sign_int(i, f, body))
}

fn fmt_float(x: f64, verb: char, f: &Flags) -> Option<String> {
    let mut s = if let Some(s) = special(x) {
        if s == "+Inf" && !f.plus {
            "Inf".to_string()
        } else {
            s
        }
    } else {
        let neg = x.is_sign_negative();
        match verb {
            'v' | 'g' | 'G' => {
                let e = if verb == 'G' { 'E' } else { 'e' };
                match f.prec {
                    None => {
                        let s = format_float_g(x);
                        if e == 'E' { s.replace('e', "E") } else { s }
                    }
                    Some(p) => format_float_g_prec(x, p, e),
                }
            }
            'f' | 'F' => {
                let p = f.prec.unwrap_or(6);
                let mut s = format!("{:.*}", p.min(1100), x);
                s.extend(std::iter::repeat_n('0', p.saturating_sub(1100)));
                s
            }
            'e' | 'E' => {
                let p = f.prec.unwrap_or(6);
                let (digits, dp) = decompose(x, Some(p + 1));
                fmt_e(neg, &digits, dp, Some(p), verb)
            }
            _ => return None,
        }
    };
    if !s.starts_with('-') {
        if f.plus {
            s.insert(0, '+');
        } else if f.space {
            s.insert(0, ' ');
        }
    }
    Some(s)
}

fn fmt_str(s: &str, verb: char, f: &Flags) -> Option<String> {
    let s: String = match f.prec {
        Some(p) if verb != 'x' && verb != 'X' => s.chars().take(p).collect(),
        _ => s.to_string(),
    };
    Some(match verb {
        's' | 'v' => s,
        'q' => {
            if f.sharp && !s.contains('`') {
                format!("`{s}`")
            } else {
                quote(&s)
            }
        }
        'x' => s.bytes().map(|b| format!("{b:02x}")).collect(),
        'X' => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => return None,
    })
}

fn fmt_value(out: &mut String, v: &Value, verb: char, f: &Flags) {
    if verb == 'T' {
        pad(out, &v.type_name(), f, false);
        return;
    }
    let r: Option<(String, bool)> = match v {
        Value::Nil => match verb {
            'v' => Some(("<nil>".into(), false)),
            _ => None,
        },
        Value::Bool(b) => match verb {
            't' | 'v' => Some((b.to_string(), false)),
            _ => None,
        },
        Value::Int(i, _) => fmt_int(*i, verb, f).map(|s| (s, !matches!(verb, 'c' | 'q'))),
        Value::Float(x) => fmt_float(*x, verb, f).map(|s| (s, true)),
        Value::Str(s) => fmt_str(s, verb, f).map(|s| (s, false)),
        Value::Bytes(b) => match verb {
            's' | 'q' | 'x' | 'X' => {
                fmt_str(&String::from_utf8_lossy(b), verb, f).map(|s| (s, false))
            }
            'v' | 'd' => {
                let mut s = String::from("[");
                for (i, x) in b.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push_str(&x.to_string());
                }
                s.push(']');
                Some((s, false))
            }
            _ => None,
        },
        Value::List(l) => {
            let mut s = String::from("[");
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                fmt_value(&mut s, x, verb, &Flags { width: None, ..*f });
            }
            s.push(']');
            out.push_str(&s);
            return;
        }
        Value::Map(m) => {
            let mut s = String::from("map[");
            for (i, (k, x)) in m.snapshot().iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                fmt_value(&mut s, &Value::str(k), verb, &Flags { width: None, ..*f });
                s.push(':');
                fmt_value(&mut s, x, verb, &Flags { width: None, ..*f });
            }
            s.push(']');
            out.push_str(&s);
            return;
        }
        Value::Object(o) => match verb {
            'v' | 's' => Some((o.fmt_v(), false)),
            _ => None,
        },
    };
    match r {
        Some((s, numeric)) => pad(out, &s, f, numeric),
        None => out.push_str(&bad_verb(verb, v)),
    }
}

/// fmt.Sprintf with Go's verbs and flags.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut f = Flags::default();
        while i < chars.len() {
            match chars[i] {
                '-' => f.minus = true,
                '+' => f.plus = true,
                '#' => f.sharp = true,
                '0' => f.zero = !f.minus,
                ' ' => f.space = true,
                _ => break,
            }
            i += 1;
        }
        // width
        if i < chars.len() && chars[i] == '*' {
            i += 1;
            if let Some(Value::Int(w, _)) = args.get(argi) {
                if *w < 0 {
                    f.minus = true;
                }
                f.width = Some((w.unsigned_abs() as usize).min(1_000_000));
            }
            argi += 1;
        } else {
            let st = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i > st {
                f.width = chars[st..i].iter().collect::<String>().parse().ok();
                if f.width.is_none_or(|w| w > 1_000_000) {
                    out.push_str("%!(BADWIDTH)");
                    f.width = None;
                }
            }
        }
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            if i < chars.len() && chars[i] == '*' {
                i += 1;
                if let Some(Value::Int(p, _)) = args.get(argi) {
                    f.prec = Some(((*p).max(0) as usize).min(1_000_000));
                }
                argi += 1;
            } else {
                let st = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                f.prec = Some(if st == i {
                    0
                } else {
                    chars[st..i]
                        .iter()
                        .collect::<String>()
                        .parse()
                        .unwrap_or(usize::MAX)
                });
                if f.prec.is_some_and(|p| p > 1_000_000) {
                    out.push_str("%!(BADPREC)");
                    f.prec = None;
                }
            }
        }
        if f.minus {
            f.zero = false;
        }
        if i >= chars.len() {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = chars[i];
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(argi) {
            None => out.push_str(&format!("%!{verb}(MISSING)")),
            Some(v) => fmt_value(&mut out, v, verb, &f),
        }
        argi += 1;
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, a) in args[argi..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match a {
                Value::Nil => out.push_str("<nil>"),
                _ => {
                    out.push_str(&a.type_name());
                    out.push('=');
                    out.push_str(&sprint_v(a));
                }
            }
        }
        out.push(')');
    }
    out
}

/// Integer-ness of a value for fmt-ish helpers.
pub fn int_kind_name(k: IntKind) -> &'static str {
    match k {
        IntKind::Int => "int",
        IntKind::Int64 => "int64",
    }
}
