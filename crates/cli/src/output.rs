//! What the CLI prints: Flux's logger symbols (colour only on a terminal), tables,
//! a spinner (only on a terminal), YAML exports and Go-style durations.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether stderr is a terminal that accepts colours (and `NO_COLOR` is unset).
pub fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn paint(symbol: &str, code: &str) -> String {
    if colours() {
        format!("\x1b[{code}m{symbol}\x1b[0m")
    } else {
        symbol.to_string()
    }
}

/// `► message` (an action starts).
pub fn action(msg: impl AsRef<str>) {
    eprintln!("{} {}", paint("►", "34"), msg.as_ref());
}
/// `✔ message`.
pub fn success(msg: impl AsRef<str>) {
    eprintln!("{} {}", paint("✔", "32"), msg.as_ref());
}
/// `✗ message`.
pub fn failure(msg: impl AsRef<str>) {
    eprintln!("{} {}", paint("✗", "31"), msg.as_ref());
}
/// `◎ message` (waiting).
pub fn waiting(msg: impl AsRef<str>) {
    eprintln!("{} {}", paint("◎", "33"), msg.as_ref());
}
/// `✚ message` (generating).
pub fn generate(msg: impl AsRef<str>) {
    eprintln!("{} {}", paint("✚", "36"), msg.as_ref());
}
/// `⚠️ message`.
pub fn warning(msg: impl AsRef<str>) {
    eprintln!("{} {}", paint("⚠️", "33"), msg.as_ref());
}

/// A spinner on stderr while a wait runs; on a non-terminal it prints the `◎` line only.
pub struct Spinner {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner with `msg`.
    pub fn start(msg: impl Into<String>) -> Spinner {
        let msg = msg.into();
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            waiting(&msg);
            return Spinner { stop, handle: None };
        }
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            let mut i = 0;
            while !flag.load(Ordering::Relaxed) {
                let mut err = std::io::stderr();
                let _ = write!(err, "\r{} {msg}", paint(FRAMES[i % FRAMES.len()], "33"));
                let _ = err.flush();
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            waiting(&msg);
        });
        Spinner {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Flux's table: upper-case headers, left-aligned columns padded to their width,
/// separated by a tab (tablewriter with `SetTablePadding("\t")`).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header
        .len()
        .max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0usize; cols];
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header)
        .filter(|h| !h.is_empty())
        .chain(rows.iter())
    {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count()));
                line.push('\t');
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Shortens every 40–128 character hex string to its first 8 characters (Flux's `TruncateHex`).
pub fn truncate_hex(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        if is_hex(bytes[i]) && (i == 0 || !is_word(bytes[i - 1])) {
            let mut j = i;
            while j < bytes.len() && is_hex(bytes[j]) {
                j += 1;
            }
            let len = j - i;
            if (40..=128).contains(&len) && (j == bytes.len() || !is_word(bytes[j])) {
                out.push_str(&s[i..i + 8]);
                i = j;
                continue;
            }
            out.push_str(&s[i..j]);
            i = j;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Parses a Go duration (`30s`, `5m`, `1h30m`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?}: use a Go duration such as 30s, 5m or 1h30m");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * unit;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way Go's `time.Duration.String` does (`1m0s`, `30s`, `1h0m0s`).
pub fn format_duration(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return "0s".into();
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let frac = d.subsec_millis();
    let s_part = if frac > 0 {
        let f = format!("{:03}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    } else {
        format!("{s}s")
    };
    if secs == 0 {
        return format!("{frac}ms");
    }
    if h > 0 {
        format!("{h}h{m}m{s_part}")
    } else if m > 0 {
        format!("{m}m{s_part}")
    } else {
        s_part
    }
}

/// A clap value parser for Go durations.
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// YAML of a value as Flux prints it (sigs.k8s.io/yaml over go-yaml v2): keys sorted at
/// every level, sequences at their parent's indentation, strings quoted only when go-yaml
/// would read them back as something else, multi-line strings as literal blocks.
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    match value {
        serde_json::Value::Object(m) if !m.is_empty() => emit_map(m, 0, &mut out),
        serde_json::Value::Array(a) if !a.is_empty() => emit_seq(a, 0, &mut out),
        v => {
            out.push_str(&scalar(v, 0));
            out.push('\n');
        }
    }
    out
}

fn emit_map(m: &serde_json::Map<String, serde_json::Value>, indent: usize, out: &mut String) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&yaml_string(k, indent));
        out.push(':');
        emit_value(&m[k], indent, out, false);
    }
}

fn emit_seq(a: &[serde_json::Value], indent: usize, out: &mut String) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => emit_map(m, indent + 2, out),
            serde_json::Value::Array(s) if !s.is_empty() => emit_seq(s, indent + 2, out),
            v => {
                out.push_str(&scalar(v, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// After `key:` — a nested block on the next lines, or ` scalar`.
fn emit_value(v: &serde_json::Value, indent: usize, out: &mut String, _in_seq: bool) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(m, indent + 2, out);
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit_seq(a, indent, out);
        }
        v => {
            out.push(' ');
            out.push_str(&scalar(v, indent));
            out.push('\n');
        }
    }
}

fn scalar(v: &serde_json::Value, indent: usize) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => yaml_string(s, indent),
        serde_json::Value::Object(_) => "{}".into(),
        serde_json::Value::Array(_) => "[]".into(),
    }
}

/// Whether go-yaml v2 would resolve the plain scalar to something other than a string.
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: [&str; 28] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
        ".inf", ".nan",
    ];
    if SPECIAL.contains(&s) || matches!(s, "-.inf" | "+.inf" | ".Inf" | ".INF" | ".NaN" | ".NAN") {
        return true;
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '_');
    // Integers: decimal, 0x, 0o, 0b, sexagesimal (1:20).
    if digits(body)
        || body
            .strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit() || c == '_'))
        || body
            .strip_prefix("0b")
            .is_some_and(|b| !b.is_empty() && b.chars().all(|c| c == '0' || c == '1' || c == '_'))
        || (body.contains(':') && body.split(':').all(digits))
    {
        return true;
    }
    // Floats: 1.5, .5, 1e3, 1.5e-3.
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() || digits(a))
                && (b.is_empty() || digits(b))
                && !(a.is_empty() && b.is_empty())
        }
        None => digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    if mantissa_ok && exp_ok && (mantissa.contains('.') || exp.is_some()) {
        return true;
    }
    // Timestamps (2001-12-14...).
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
}

/// Whether the YAML emitter allows the plain style for `s`.
fn plain_allowed(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // `-`, `?`, `:` may start a plain scalar when followed by a non-space.
        let second = s.chars().nth(1);
        if !("-?:".contains(first) && second.is_some_and(|c| c != ' ')) {
            return false;
        }
    }
    !(s.starts_with(' ')
        || s.ends_with(' ')
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.contains(['\t', '\r'])
        || s.chars().any(|c| c.is_control()))
}

fn yaml_string(s: &str, indent: usize) -> String {
    if s.contains('\n') {
        let chomp = if s.ends_with('\n') { "" } else { "-" };
        let pad = " ".repeat(indent + 2);
        let mut out = format!("|{chomp}");
        for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
                out.push_str(line);
            }
        }
        return out;
    }
    if s.is_empty() || resolves_to_non_string(s) {
        return format!("{s:?}");
    }
    if !plain_allowed(s) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    s.to_string()
}

/// One exported document as `flux export` and `flux create --export` print it:
/// `---` then the YAML without trailing blank lines.
pub fn export_doc(value: &serde_json::Value) -> String {
    format!("---\n{}\n", to_yaml(value).trim())
}

/// Asks the user `question [y/N]` on the terminal; false when stdin is not a terminal.
pub fn confirm(question: &str) -> bool {
    eprint!("{question}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_like_go() {
        assert_eq!(format_duration(parse_duration("1m").unwrap()), "1m0s");
        assert_eq!(format_duration(parse_duration("30s").unwrap()), "30s");
        assert_eq!(format_duration(parse_duration("5m").unwrap()), "5m0s");
        assert_eq!(format_duration(parse_duration("1h").unwrap()), "1h0m0s");
        assert_eq!(format_duration(parse_duration("1h30m").unwrap()), "1h30m0s");
        assert_eq!(format_duration(parse_duration("1.5s").unwrap()), "1.5s");
        assert_eq!(format_duration(parse_duration("500ms").unwrap()), "500ms");
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn hex_is_truncated_like_flux() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            truncate_hex(&format!("main@sha1:{sha}")),
            "main@sha1:01234567"
        );
        assert_eq!(truncate_hex("v1.0.0"), "v1.0.0");
        assert_eq!(truncate_hex(&format!("x{sha}")), format!("x{sha}"));
    }

    #[test]
    fn yaml_like_go_yaml_v2() {
        let v = serde_json::json!({
            "spec": {"interval": "30s", "version": ">=6.0.0", "num": "1.0", "b": "true", "e": "",
                     "list": [{"name": "a", "ns": "b"}, "x"], "ignore": "a\nb", "prune": false, "count": 2},
            "apiVersion": "v1",
        });
        assert_eq!(
            to_yaml(&v),
            "apiVersion: v1\nspec:\n  b: \"true\"\n  count: 2\n  e: \"\"\n  ignore: |-\n    a\n    b\n  interval: 30s\n  list:\n  - name: a\n    ns: b\n  - x\n  num: \"1.0\"\n  prune: false\n  version: '>=6.0.0'\n"
        );
    }

    #[test]
    fn tables_pad_and_tab() {
        let t = table(
            &["Name", "Ready"],
            &[
                vec!["a".into(), "True".into()],
                vec!["long-name".into(), "False".into()],
            ],
        );
        assert_eq!(t, "NAME     \tREADY\na        \tTrue\nlong-name\tFalse\n");
    }
}
