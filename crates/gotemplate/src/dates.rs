//! sprig's date functions over an injected clock (UTC only).

use std::sync::Arc;

use crate::exec::{Func, FuncMap};
use crate::value::{IntKind, Object, Value};

/// A point in time (UTC).
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's time.Format for UTC.
pub fn format(t: &Time, layout: &str) -> String {
    let days = t.secs.div_euclid(86_400);
    let sod = t.secs.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let wd = (days + 4).rem_euclid(7) as usize;
    let mut out = String::new();
    let mut rest = layout;
    let toks: &[&str] = &[
        "January", "Monday", "2006", "-07:00", "-0700", "Z07:00", "Z0700", "MST", "Jan", "Mon",
        "002", "01", "02", "_2", "03", "04", "05", "06", "15", "PM", "pm", "1", "2", "3", "4", "5",
        "-07",
    ];
    while !rest.is_empty() {
        if let Some(frac) = rest.strip_prefix(".000").or(None) {
            let _ = frac;
        }
        if rest.starts_with(".0")
            || rest.starts_with(".9")
            || rest.starts_with(",0")
            || rest.starts_with(",9")
        {
            let c = rest.as_bytes()[1];
            let n = rest[1..].bytes().take_while(|b| *b == c).count();
            if !rest[1 + n..].starts_with(|ch: char| ch.is_ascii_digit()) {
                let digits = format!("{:09}", t.nanos);
                let mut f = digits[..n.min(9)].to_string();
                if c == b'9' {
                    f = f.trim_end_matches('0').to_string();
                    if !f.is_empty() {
                        out.push('.');
                    }
                } else {
                    out.push('.');
                }
                out.push_str(&f);
                rest = &rest[1 + n..];
                continue;
            }
        }
        let Some(tok) = toks.iter().find(|t| rest.starts_with(**t)) else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
        out.push_str(&match *tok {
            "January" => MONTHS[mo as usize - 1].to_string(),
            "Jan" => MONTHS[mo as usize - 1][..3].to_string(),
            "Monday" => DAYS[wd].to_string(),
            "Mon" => DAYS[wd][..3].to_string(),
            "2006" => format!("{y:04}"),
            "06" => format!("{:02}", y % 100),
            "01" => format!("{mo:02}"),
            "1" => mo.to_string(),
            "02" => format!("{d:02}"),
            "_2" => format!("{d:>2}"),
            "2" => d.to_string(),
            "002" => format!("{:03}", days - days_from_civil(y, 1, 1) + 1),
            "15" => format!("{h:02}"),
            "03" => format!("{h12:02}"),
            "3" => h12.to_string(),
            "04" => format!("{mi:02}"),
            "4" => mi.to_string(),
            "05" => format!("{s:02}"),
            "5" => s.to_string(),
            "PM" => (if h >= 12 { "PM" } else { "AM" }).to_string(),
            "pm" => (if h >= 12 { "pm" } else { "am" }).to_string(),
            "MST" => "UTC".to_string(),
            "Z07:00" | "Z0700" => "Z".to_string(),
            "-07:00" => "+00:00".to_string(),
            "-0700" => "+0000".to_string(),
            "-07" => "+00".to_string(),
            _ => String::new(),
        });
        rest = &rest[tok.len()..];
    }
    out
}

impl Object for Time {
    fn type_name(&self) -> String {
        "time.Time".into()
    }
    fn kind(&self) -> &'static str {
        "struct"
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Unix" => Value::Int(self.secs, IntKind::Int64),
            "UnixNano" => Value::Int(
                self.secs
                    .wrapping_mul(1_000_000_000)
                    .wrapping_add(self.nanos as i64),
                IntKind::Int64,
            ),
            "Nanosecond" => Value::int(self.nanos as i64),
            "Year" => Value::int(civil(self.secs.div_euclid(86_400)).0),
            "String" => Value::str(self.fmt_v()),
            _ => return None,
        })
    }
    fn has_method(&self, name: &str) -> bool {
        matches!(name, "Format" | "Add")
    }
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        match name {
            "Format" => Some(Ok(Value::str(format(
                self,
                args.first().and_then(|v| v.as_str()).unwrap_or(""),
            )))),
            _ => None,
        }
    }
    fn fmt_v(&self) -> String {
        format(self, "2006-01-02 15:04:05.999999999 -0700 MST")
    }
    fn to_data(&self) -> Value {
        Value::str(format(self, "2006-01-02T15:04:05.999999999Z07:00"))
    }
}

fn as_time(v: &Value, now: (i64, u32)) -> Time {
    match v {
        Value::Int(i, _) => Time { secs: *i, nanos: 0 },
        Value::Float(f) => Time {
            secs: *f as i64,
            nanos: 0,
        },
        Value::Object(o) => match (o.field("Unix"), o.field("Nanosecond")) {
            (Some(Value::Int(s, _)), Some(Value::Int(n, _))) => Time {
                secs: s,
                nanos: n as u32,
            },
            _ => Time {
                secs: now.0,
                nanos: now.1,
            },
        },
        _ => Time {
            secs: now.0,
            nanos: now.1,
        },
    }
}

/// Go duration string (time.Duration.String) of seconds.
pub fn duration_string(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let neg = secs < 0;
    let mut s = secs.unsigned_abs();
    let h = s / 3600;
    s %= 3600;
    let m = s / 60;
    s %= 60;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

pub fn register(m: &mut FuncMap) {
    m.insert(
        "now".into(),
        Arc::new(|ex, _| {
            let (s, n) = ex.host.now();
            Ok(Value::Object(Arc::new(Time { secs: s, nanos: n })))
        }),
    );
    let date: Func = Arc::new(|ex, a| {
        let layout = a.first().and_then(|v| v.as_str()).unwrap_or("").to_string();
        let t = as_time(a.get(1).unwrap_or(&Value::Nil), ex.host.now());
        Ok(Value::str(format(&t, &layout)))
    });
    m.insert("date".into(), date.clone());
    m.insert("dateInZone".into(), date);
    m.insert(
        "htmlDate".into(),
        Arc::new(|ex, a| {
            Ok(Value::str(format(
                &as_time(a.first().unwrap_or(&Value::Nil), ex.host.now()),
                "2006-01-02",
            )))
        }),
    );
    m.insert(
        "htmlDateInZone".into(),
        Arc::new(|ex, a| {
            Ok(Value::str(format(
                &as_time(a.first().unwrap_or(&Value::Nil), ex.host.now()),
                "2006-01-02",
            )))
        }),
    );
    m.insert(
        "unixEpoch".into(),
        Arc::new(|ex, a| {
            Ok(Value::str(
                as_time(a.first().unwrap_or(&Value::Nil), ex.host.now())
                    .secs
                    .to_string(),
            ))
        }),
    );
    m.insert(
        "ago".into(),
        Arc::new(|ex, a| {
            let now = ex.host.now();
            let t = as_time(a.first().unwrap_or(&Value::Nil), now);
            Ok(Value::str(duration_string(now.0.saturating_sub(t.secs))))
        }),
    );
    m.insert(
        "duration".into(),
        Arc::new(|_, a| {
            Ok(Value::str(duration_string(
                // sprig's duration reads only an int64 or a decimal string
                match a.first() {
                    Some(Value::Int(i, IntKind::Int64)) => *i,
                    Some(Value::Str(s)) => s.parse().unwrap_or(0),
                    _ => 0,
                },
            )))
        }),
    );
    let to_date: Func = Arc::new(|_, a| {
        let s = a.get(1).and_then(|v| v.as_str()).unwrap_or("");
        // Only the common layouts: dates with optional time
        let p: Vec<i64> = s
            .split(|c: char| !c.is_ascii_digit())
            .filter(|x| !x.is_empty())
            .filter_map(|x| x.parse().ok())
            .collect();
        let ok = p.len() >= 3
            && (0..=9999).contains(&p[0])
            && (1..=12).contains(&p[1])
            && (1..=31).contains(&p[2])
            && p.iter().skip(3).take(3).all(|x| (0..=60).contains(x));
        if !ok {
            return Err(format!("parsing time {s:?}: cannot parse"));
        }
        let days = days_from_civil(p[0], p[1] as u32, p[2] as u32);
        let secs = days * 86_400
            + p.get(3).unwrap_or(&0) * 3600
            + p.get(4).unwrap_or(&0) * 60
            + p.get(5).unwrap_or(&0);
        Ok(Value::Object(Arc::new(Time { secs, nanos: 0 })))
    });
    m.insert("toDate".into(), to_date.clone());
    m.insert("mustToDate".into(), to_date);
    let modify: Func = Arc::new(|ex, a| {
        let d = a.first().and_then(|v| v.as_str()).unwrap_or("");
        let t = as_time(a.get(1).unwrap_or(&Value::Nil), ex.host.now());
        let secs = parse_duration(d).ok_or_else(|| format!("time: invalid duration {d:?}"))?;
        Ok(Value::Object(Arc::new(Time {
            secs: t.secs.saturating_add(secs),
            nanos: t.nanos,
        })))
    });
    m.insert("dateModify".into(), modify.clone());
    m.insert("mustDateModify".into(), modify);
    m.insert(
        "durationRound".into(),
        Arc::new(|_, a| {
            let secs = match a.first() {
                Some(Value::Str(s)) => parse_duration(s).unwrap_or(0),
                Some(v) => crate::funcs::to_i64(v) / 1_000_000_000,
                None => 0,
            };
            let u = secs.unsigned_abs();
            let r = if u >= 31_104_000 {
                format!("{}y", u / 31_104_000)
            } else if u >= 2_592_000 {
                format!("{}mo", u / 2_592_000)
            } else if u >= 86_400 {
                format!("{}d", u / 86_400)
            } else if u >= 3600 {
                format!("{}h", u / 3600)
            } else if u >= 60 {
                format!("{}m", u / 60)
            } else {
                format!("{u}s")
            };
            Ok(Value::str(r))
        }),
    );
}

/// time.ParseDuration to whole seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}
