//! sprig's `urlParse` and `urlJoin`: Go's `net/url` `Parse` and `URL.String`, with the same
//! escaping rules (RFC 3986 as Go applies it), so that a URL taken apart and put back
//! together comes out as Helm prints it.
//!
//! Go strings are bytes: the parsing and escaping work on bytes and a result that is not
//! UTF-8 (a `%FF` in a path) is converted lossily, as Helm's `toJson` would print it.

use std::sync::Arc;

use crate::exec::{Exec, Func, FuncMap};
use crate::gofmt::quote;
use crate::value::{Map, Value};

/// The part of a URL being escaped or unescaped (Go's `encoding`).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
    Fragment,
}

/// Whether `c` must be %-escaped in the given part (Go's `shouldEscape`).
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone)
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            // The path is handled as a whole: only '?' would change its meaning.
            Mode::Path => c == b'?',
            // ':' separates user from password.
            Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::QueryComponent => true,
            Mode::Fragment => false,
            Mode::Host | Mode::Zone => true,
        },
        b'!' | b'(' | b')' | b'*' if mode == Mode::Fragment => false,
        _ => true,
    }
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Go's `unescape`, with its two error forms (`EscapeError`, `InvalidHostError`).
fn unescape(s: &[u8], mode: Mode) -> Result<Vec<u8>, String> {
    let escape_error = |e: &[u8]| format!("invalid URL escape {}", quote(&lossy(e)));
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if i + 2 >= s.len()
                    || !s[i + 1].is_ascii_hexdigit()
                    || !s[i + 2].is_ascii_hexdigit()
                {
                    return Err(escape_error(&s[i..(i + 3).min(s.len())]));
                }
                // A host may %-encode only non-ASCII bytes, and "%25" (RFC 6874 zones).
                if mode == Mode::Host && unhex(s[i + 1]) < 8 && &s[i..i + 3] != b"%25" {
                    return Err(escape_error(&s[i..i + 3]));
                }
                if mode == Mode::Zone {
                    let v = unhex(s[i + 1]) << 4 | unhex(s[i + 2]);
                    if &s[i..i + 3] != b"%25" && v != b' ' && should_escape(v, Mode::Host) {
                        return Err(escape_error(&s[i..i + 3]));
                    }
                }
                i += 3;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return Err(format!(
                        "invalid character {} in host name",
                        quote(&lossy(&s[i..i + 1]))
                    ));
                }
                i += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                out.push(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Go's `escape`.
fn escape(s: &[u8], mode: Mode) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if c == b' ' && mode == Mode::QueryComponent {
            out.push(b'+');
        } else if should_escape(c, mode) {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
    out
}

/// Go's `validEncoded`: `s` has nothing that would need escaping in `mode`.
fn valid_encoded(s: &[u8], mode: Mode) -> bool {
    s.iter().all(|&c| {
        matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        ) || !should_escape(c, mode)
    })
}

/// `^(:[0-9]*)?$`
fn valid_optional_port(p: &[u8]) -> bool {
    match p.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// A parsed URL: Go's `url.URL` fields (Path, Fragment and the user decoded; the rest as
/// written).
#[derive(Default, Debug, PartialEq)]
pub struct Url {
    pub scheme: String,
    pub opaque: Vec<u8>,
    /// (username, password if one was given).
    pub user: Option<(Vec<u8>, Option<Vec<u8>>)>,
    pub host: Vec<u8>,
    pub path: Vec<u8>,
    raw_path: Vec<u8>,
    force_query: bool,
    pub raw_query: Vec<u8>,
    pub fragment: Vec<u8>,
    raw_fragment: Vec<u8>,
}

fn find(s: &[u8], c: u8) -> Option<usize> {
    s.iter().position(|&b| b == c)
}

fn rfind(s: &[u8], c: u8) -> Option<usize> {
    s.iter().rposition(|&b| b == c)
}

/// Splits `rest` as "scheme:rest" when it starts with a valid scheme (Go's `getScheme`).
fn split_scheme(raw: &[u8]) -> Result<(&[u8], &[u8]), String> {
    for (i, &c) in raw.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok((b"", raw)),
        }
    }
    Ok((b"", raw))
}

/// Go's `url.Parse`; the error as Go's `*url.Error` prints it.
pub fn parse(raw: &str) -> Result<Url, String> {
    let raw = raw.as_bytes();
    let (u, frag) = match find(raw, b'#') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    let mut url = parse_no_fragment(u).map_err(|e| format!("parse {}: {e}", quote(&lossy(u))))?;
    if let Some(f) = frag.filter(|f| !f.is_empty()) {
        url.fragment = unescape(f, Mode::Fragment)
            .map_err(|e| format!("parse {}: {e}", quote(&lossy(raw))))?;
        if escape(&url.fragment, Mode::Fragment) != f {
            url.raw_fragment = f.to_vec();
        }
    }
    Ok(url)
}

fn parse_no_fragment(raw: &[u8]) -> Result<Url, String> {
    if raw.iter().any(|&b| b < b' ' || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    let mut url = Url::default();
    if raw == b"*" {
        url.path = b"*".to_vec();
        return Ok(url);
    }
    let (scheme, mut rest) = split_scheme(raw)?;
    url.scheme = lossy(scheme).to_ascii_lowercase();
    if rest.last() == Some(&b'?') && rest.iter().filter(|&&b| b == b'?').count() == 1 {
        url.force_query = true;
        rest = &rest[..rest.len() - 1];
    } else if let Some(i) = find(rest, b'?') {
        url.raw_query = rest[i + 1..].to_vec();
        rest = &rest[..i];
    }
    if !rest.starts_with(b"/") {
        if !url.scheme.is_empty() {
            // A rootless path after a scheme is opaque (mailto:, urn:).
            url.opaque = rest.to_vec();
            return Ok(url);
        }
        let first = &rest[..find(rest, b'/').unwrap_or(rest.len())];
        if first.contains(&b':') {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with(b"///")) && rest.starts_with(b"//") {
        let authority = &rest[2..];
        let (authority, path) = match find(authority, b'/') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, &b""[..]),
        };
        let (user, host) = parse_authority(authority)?;
        url.user = user;
        url.host = host;
        rest = path;
    }
    url.path = unescape(rest, Mode::Path)?;
    if escape(&url.path, Mode::Path) != rest {
        url.raw_path = rest.to_vec();
    }
    Ok(url)
}

type User = Option<(Vec<u8>, Option<Vec<u8>>)>;

fn parse_authority(authority: &[u8]) -> Result<(User, Vec<u8>), String> {
    let at = rfind(authority, b'@');
    let host = parse_host(&authority[at.map_or(0, |i| i + 1)..])?;
    let Some(at) = at else {
        return Ok((None, host));
    };
    let userinfo = &authority[..at];
    // RFC 3986 §3.2.1: unreserved, pct-encoded, sub-delims and ':' (Go also lets '@' by).
    let valid = std::str::from_utf8(userinfo).is_ok_and(|s| {
        s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '.'
                        | '_'
                        | ':'
                        | '~'
                        | '!'
                        | '$'
                        | '&'
                        | '\''
                        | '('
                        | ')'
                        | '*'
                        | '+'
                        | ','
                        | ';'
                        | '='
                        | '%'
                        | '@'
                )
        })
    });
    if !valid {
        return Err("net/url: invalid userinfo".into());
    }
    let user = match find(userinfo, b':') {
        None => (unescape(userinfo, Mode::UserPassword)?, None),
        Some(i) => (
            unescape(&userinfo[..i], Mode::UserPassword)?,
            Some(unescape(&userinfo[i + 1..], Mode::UserPassword)?),
        ),
    };
    Ok((Some(user), host))
}

/// Go's `parseHost`: host[:port], with RFC 6874 zones in IPv6 literals. Since Go 1.25.2 a
/// '[' may only open the host, and the brackets must hold an IPv6 address.
fn parse_host(host: &[u8]) -> Result<Vec<u8>, String> {
    match rfind(host, b'[') {
        Some(open) if open > 0 => return Err("invalid IP-literal".into()),
        Some(_) => {
            let close = rfind(host, b']').ok_or("missing ']' in host")?;
            let colon_port = &host[close + 1..];
            if !valid_optional_port(colon_port) {
                return Err(format!(
                    "invalid port {} after host",
                    quote(&lossy(colon_port))
                ));
            }
            let port = unescape(colon_port, Mode::Host)?;
            // The zone, from "%25" on, is unescaped by its own rules.
            let inside = &host[1..close];
            let mut addr;
            match inside.windows(3).position(|w| w == b"%25") {
                Some(z) => {
                    addr = unescape(&inside[..z], Mode::Host)?;
                    addr.extend(unescape(&inside[z..], Mode::Zone)?);
                }
                None => addr = unescape(inside, Mode::Host)?,
            }
            check_ip_literal(&addr)?;
            let mut out = b"[".to_vec();
            out.extend(addr);
            out.push(b']');
            out.extend(port);
            return Ok(out);
        }
        None => {}
    }
    if let Some(i) = rfind(host, b':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!(
                "invalid port {} after host",
                quote(&lossy(colon_port))
            ));
        }
    }
    unescape(host, Mode::Host)
}

/// Go 1.25's check of a bracketed host: a `netip.ParseAddr` address that is not IPv4.
fn check_ip_literal(addr: &[u8]) -> Result<(), String> {
    match parse_addr(addr) {
        Ok(true) => Err("invalid IP-literal".into()),
        Ok(false) => Ok(()),
        Err(e) => Err(format!("invalid host: {e}")),
    }
}

/// A `netip.ParseAddr` syntax error: (message, the unparsed rest it was found at).
type AddrError<'a> = (String, &'a [u8]);

fn addr_error(input: &[u8], (msg, at): AddrError<'_>) -> String {
    let mut e = format!("ParseAddr({}): {msg}", quote(&lossy(input)));
    if !at.is_empty() {
        e.push_str(&format!(" (at {})", quote(&lossy(at))));
    }
    e
}

/// Go's `netip.ParseAddr`, for its errors: Ok(true) for IPv4, Ok(false) for IPv6.
fn parse_addr(s: &[u8]) -> Result<bool, String> {
    let r = match s.iter().find(|c| matches!(c, b'.' | b':' | b'%')) {
        Some(b'.') => parse_ipv4(s).map(|_| true),
        Some(b':') => parse_ipv6(s).map(|_| false),
        Some(_) => Err(("missing IPv6 address".into(), &b""[..])),
        None => Err(("unable to parse IP".into(), &b""[..])),
    };
    r.map_err(|e| addr_error(s, e))
}

fn parse_ipv4(s: &[u8]) -> Result<[u8; 4], AddrError<'_>> {
    let err = |msg: &str, at: &'static [u8]| Err((msg.to_string(), at));
    let mut fields = [0u8; 4];
    let (mut val, mut pos, mut digits) = (0u32, 0usize, 0);
    for (i, &c) in s.iter().enumerate() {
        if c.is_ascii_digit() {
            if digits == 1 && val == 0 {
                return err("IPv4 field has octet with leading zero", b"");
            }
            val = val * 10 + u32::from(c - b'0');
            digits += 1;
            if val > 255 {
                return err("IPv4 field has value >255", b"");
            }
        } else if c == b'.' {
            if i == 0 || i == s.len() - 1 || s[i - 1] == b'.' {
                return Err(("IPv4 field must have at least one digit".into(), &s[i..]));
            }
            if pos == 3 {
                return err("IPv4 address too long", b"");
            }
            fields[pos] = val as u8;
            pos += 1;
            val = 0;
            digits = 0;
        } else {
            return Err(("unexpected character".into(), &s[i..]));
        }
    }
    if pos < 3 {
        return err("IPv4 address too short", b"");
    }
    fields[3] = val as u8;
    Ok(fields)
}

fn parse_ipv6(input: &[u8]) -> Result<(), AddrError<'_>> {
    let fail = |msg: &str, at: &'static [u8]| Err((msg.to_string(), at));
    let mut s = input;
    if let Some(z) = find(s, b'%') {
        if z + 1 == s.len() {
            return fail("zone must be a non-empty string", b"");
        }
        s = &s[..z];
    }
    let mut ellipsis: Option<usize> = None;
    if s.starts_with(b"::") {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Ok(());
        }
    }
    let mut i = 0;
    while i < 16 {
        let mut off = 0;
        while off < s.len() && s[off].is_ascii_hexdigit() {
            if off == 4 {
                return Err(("each group must have 4 or less digits".into(), s));
            }
            off += 1;
        }
        if off == 0 {
            return Err((
                "each colon-separated field must have at least one digit".into(),
                s,
            ));
        }
        if s.get(off) == Some(&b'.') {
            if ellipsis.is_none() && i != 12 {
                return Err((
                    "embedded IPv4 address must replace the final 2 fields of the address".into(),
                    s,
                ));
            }
            if i + 4 > 16 {
                return Err((
                    "too many hex fields to fit an embedded IPv4 at the end of the address".into(),
                    s,
                ));
            }
            // Its errors are reported as the IPv4 parser's, against the whole input.
            parse_ipv4(s)?;
            s = b"";
            i += 4;
            break;
        }
        i += 2;
        s = &s[off..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' {
            return Err(("unexpected character, want colon".into(), s));
        } else if s.len() == 1 {
            return Err(("colon must be followed by more characters".into(), s));
        }
        s = &s[1..];
        if s[0] == b':' {
            if ellipsis.is_some() {
                return Err(("multiple :: in address".into(), s));
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return Err(("trailing garbage after address".into(), s));
    }
    match (i < 16, ellipsis) {
        (true, None) => fail("address string too short", b""),
        (false, Some(_)) => fail("the :: must expand to at least one field of zeros", b""),
        _ => Ok(()),
    }
}

/// Go's `splitHostPort` (the host part): the port stripped, then the brackets.
fn hostname(host: &[u8]) -> &[u8] {
    let mut h = host;
    if let Some(i) = rfind(h, b':')
        && valid_optional_port(&h[i..])
    {
        h = &h[..i];
    }
    if h.len() >= 2 && h.starts_with(b"[") && h.ends_with(b"]") {
        h = &h[1..h.len() - 1];
    }
    h
}

fn user_string(user: &(Vec<u8>, Option<Vec<u8>>)) -> Vec<u8> {
    let mut s = escape(&user.0, Mode::UserPassword);
    if let Some(p) = &user.1 {
        s.push(b':');
        s.extend(escape(p, Mode::UserPassword));
    }
    s
}

impl Url {
    /// Go's `EscapedPath`: RawPath when it is a valid encoding of Path.
    fn escaped_path(&self) -> Vec<u8> {
        if !self.raw_path.is_empty()
            && valid_encoded(&self.raw_path, Mode::Path)
            && unescape(&self.raw_path, Mode::Path).is_ok_and(|p| p == self.path)
        {
            return self.raw_path.clone();
        }
        if self.path == b"*" {
            return b"*".to_vec();
        }
        escape(&self.path, Mode::Path)
    }

    fn escaped_fragment(&self) -> Vec<u8> {
        if !self.raw_fragment.is_empty()
            && valid_encoded(&self.raw_fragment, Mode::Fragment)
            && unescape(&self.raw_fragment, Mode::Fragment).is_ok_and(|f| f == self.fragment)
        {
            return self.raw_fragment.clone();
        }
        escape(&self.fragment, Mode::Fragment)
    }

    /// Go's `URL.String`.
    pub fn to_go_string(&self) -> String {
        let mut buf: Vec<u8> = Vec::new();
        if !self.scheme.is_empty() {
            buf.extend(self.scheme.as_bytes());
            buf.push(b':');
        }
        if !self.opaque.is_empty() {
            buf.extend(&self.opaque);
        } else {
            if !self.scheme.is_empty() || !self.host.is_empty() || self.user.is_some() {
                if !self.host.is_empty() || !self.path.is_empty() || self.user.is_some() {
                    buf.extend(b"//");
                }
                if let Some(u) = &self.user {
                    buf.extend(user_string(u));
                    buf.push(b'@');
                }
                buf.extend(escape(&self.host, Mode::Host));
            }
            let path = self.escaped_path();
            if !path.is_empty() && path[0] != b'/' && !self.host.is_empty() {
                buf.push(b'/');
            }
            if buf.is_empty() {
                // RFC 3986 §4.2: a first segment with a colon would read as a scheme.
                let first = &path[..find(&path, b'/').unwrap_or(path.len())];
                if first.contains(&b':') {
                    buf.extend(b"./");
                }
            }
            buf.extend(path);
        }
        if self.force_query || !self.raw_query.is_empty() {
            buf.push(b'?');
            buf.extend(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            buf.push(b'#');
            buf.extend(self.escaped_fragment());
        }
        lossy(&buf)
    }
}

/// sprig's `urlParse`.
fn url_parse(raw: &str) -> Result<Value, String> {
    let u = parse(raw).map_err(|e| format!("unable to parse url: {e}"))?;
    let mut m = Map::new();
    m.insert("scheme".into(), Value::str(&u.scheme));
    m.insert("host".into(), Value::str(lossy(&u.host)));
    m.insert("hostname".into(), Value::str(lossy(hostname(&u.host))));
    m.insert("path".into(), Value::str(lossy(&u.path)));
    m.insert("query".into(), Value::str(lossy(&u.raw_query)));
    m.insert("opaque".into(), Value::str(lossy(&u.opaque)));
    m.insert("fragment".into(), Value::str(lossy(&u.fragment)));
    let userinfo = u.user.as_ref().map(user_string).unwrap_or_default();
    m.insert("userinfo".into(), Value::str(lossy(&userinfo)));
    Ok(Value::map(m))
}

/// sprig's `dictGetOrEmpty`: a missing key is "", anything but a string is an error.
fn dict_get(d: &Map, key: &str) -> Result<String, String> {
    match d.get(key) {
        None => Ok(String::new()),
        Some(Value::Str(s)) => Ok(s.to_string()),
        // reflect.TypeOf(nil).Kind() dereferences a nil Type in Go.
        Some(Value::Nil) => {
            Err("runtime error: invalid memory address or nil pointer dereference".into())
        }
        Some(v) => Err(format!(
            "unable to parse {key} key, must be of type string, but {} found",
            v.kind_name()
        )),
    }
}

/// sprig's `urlJoin`: the dict's fields set on a `url.URL` as they are (path and fragment
/// decoded, query and opaque already encoded), the userinfo parsed, then `URL.String`.
fn url_join(d: &Map) -> Result<String, String> {
    let mut u = Url {
        scheme: dict_get(d, "scheme")?,
        host: dict_get(d, "host")?.into_bytes(),
        path: dict_get(d, "path")?.into_bytes(),
        raw_query: dict_get(d, "query")?.into_bytes(),
        opaque: dict_get(d, "opaque")?.into_bytes(),
        fragment: dict_get(d, "fragment")?.into_bytes(),
        ..Url::default()
    };
    let userinfo = dict_get(d, "userinfo")?;
    if !userinfo.is_empty() {
        let t = parse(&format!("proto://{userinfo}@host"))
            .map_err(|e| format!("unable to parse userinfo in dict: {e}"))?;
        u.user = t.user;
    }
    Ok(u.to_go_string())
}

pub fn register(m: &mut FuncMap) {
    let f: Func = Arc::new(|_: &mut Exec<'_>, a: &[Value]| {
        check_arity("urlParse", a)?;
        match &a[0] {
            Value::Str(s) => url_parse(s),
            Value::Nil => Err("invalid value; expected string".into()),
            o => Err(format!(
                "wrong type for value; expected string; got {}",
                o.type_name()
            )),
        }
    });
    m.insert("urlParse".into(), f);
    let f: Func = Arc::new(|_: &mut Exec<'_>, a: &[Value]| {
        check_arity("urlJoin", a)?;
        match &a[0] {
            Value::Map(d) => url_join(&d.read()).map(Value::str),
            Value::Nil => url_join(&Map::new()).map(Value::str),
            o => Err(format!(
                "wrong type for value; expected map[string]interface {{}}; got {}",
                o.type_name()
            )),
        }
    });
    m.insert("urlJoin".into(), f);
}

fn check_arity(name: &str, a: &[Value]) -> Result<(), String> {
    if a.len() != 1 {
        return Err(format!(
            "wrong number of args for {name}: want 1 got {}",
            a.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> String {
        parse(s).unwrap().to_go_string()
    }

    #[test]
    fn parse_and_string_like_go() {
        for s in [
            "https://user:p%40ss@example.com:8443/a%2Fb/c?x=1&y=a+b#frag",
            "mailto:someone@example.com",
            "http://[fe80::1%25en0]:8080/",
            "/relative/path?q",
            "http://example.com/a b",
            "http://example.com?",
        ] {
            let u = parse(s).unwrap();
            assert!(!round_trip(s).is_empty(), "{s} {u:?}");
        }
        assert_eq!(
            round_trip("http://example.com/a b"),
            "http://example.com/a%20b"
        );
        assert_eq!(round_trip("http://example.com?"), "http://example.com?");
        assert_eq!(
            round_trip("https://user:p%40ss@h/a%2Fb"),
            "https://user:p%40ss@h/a%2Fb"
        );
        let u = parse("http://[::1]:80/x").unwrap();
        assert_eq!(hostname(&u.host), b"::1");
        assert_eq!(
            parse("http://a b.com/").unwrap_err(),
            "parse \"http://a b.com/\": invalid character \" \" in host name"
        );
        assert_eq!(
            parse(":foo").unwrap_err(),
            "parse \":foo\": missing protocol scheme"
        );
    }

    #[test]
    fn bracketed_hosts_like_go_1_25() {
        assert_eq!(check_ip_literal(b"fe80::1%eth0"), Ok(()));
        assert_eq!(check_ip_literal(b"::ffff:1.2.3.4"), Ok(()));
        assert_eq!(
            check_ip_literal(b"1.2.3.4").unwrap_err(),
            "invalid IP-literal"
        );
        assert_eq!(
            check_ip_literal(b"12345::").unwrap_err(),
            "invalid host: ParseAddr(\"12345::\"): each group must have 4 or less digits (at \"12345::\")"
        );
        assert_eq!(
            check_ip_literal(b"::1.2.x.4").unwrap_err(),
            "invalid host: ParseAddr(\"::1.2.x.4\"): unexpected character (at \"x.4\")"
        );
        assert_eq!(
            check_ip_literal(b"1:2").unwrap_err(),
            "invalid host: ParseAddr(\"1:2\"): address string too short"
        );
        assert_eq!(
            parse("http://a[b/").unwrap_err(),
            "parse \"http://a[b/\": invalid IP-literal"
        );
    }

    #[test]
    fn escaping_per_part() {
        assert_eq!(escape(b"a b?c/#", Mode::Path), b"a%20b%3Fc/%23");
        assert_eq!(escape(b"a b+&", Mode::QueryComponent), b"a+b%2B%26");
        assert_eq!(escape(b"u@:/ x", Mode::UserPassword), b"u%40%3A%2F%20x");
        assert_eq!(escape(b"f!#( x", Mode::Fragment), b"f!%23(%20x");
    }
}
