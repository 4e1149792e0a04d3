//! Rendering a chart: the template data helm builds (`.Values`, `.Chart`, `.Release`,
//! `.Capabilities`, `.Files`, `.Template`, `.Subcharts`) and the engine's file order.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferroflux_gotemplate::{Host, Map, Object, Templates, Value};

use crate::Error;
use crate::chart::{Bytes, Chart, File};

/// What the templates see as `.Capabilities`.
#[derive(Clone, Debug)]
pub struct Capabilities {
    /// e.g. "v1.33.0"
    pub kube_version: String,
    pub api_versions: Vec<String>,
}

impl Capabilities {
    /// Helm's defaults for a kube version ("1.33.0" or "v1.33.0") plus extra API versions.
    pub fn new(kube_version: &str, extra_api_versions: &[String]) -> Capabilities {
        let kv = if kube_version.starts_with('v') {
            kube_version.to_string()
        } else {
            format!("v{kube_version}")
        };
        let mut apis: Vec<String> =
            serde_json::from_str(include_str!("apiversions.json")).unwrap_or_default();
        apis.extend(extra_api_versions.iter().cloned());
        Capabilities {
            kube_version: kv,
            api_versions: apis,
        }
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::new("v1.20.0", &[])
    }
}

struct KubeVersionObj(String);

impl KubeVersionObj {
    fn parts(&self) -> (String, String) {
        let t = self.0.trim_start_matches('v');
        let mut it = t.split('.');
        (
            it.next().unwrap_or("").to_string(),
            it.next().unwrap_or("").to_string(),
        )
    }
}

impl Object for KubeVersionObj {
    fn type_name(&self) -> String {
        "common.KubeVersion".into()
    }
    fn kind(&self) -> &'static str {
        "struct"
    }
    fn field(&self, name: &str) -> Option<Value> {
        let (maj, min) = self.parts();
        Some(match name {
            "Version" | "GitVersion" | "String" => Value::str(&self.0),
            "Major" => Value::str(maj),
            "Minor" => Value::str(min),
            _ => return None,
        })
    }
    fn fmt_v(&self) -> String {
        self.0.clone()
    }
    fn to_data(&self) -> Value {
        let (maj, min) = self.parts();
        let mut m = Map::new();
        m.insert("Version".into(), Value::str(&self.0));
        m.insert("Major".into(), Value::str(maj));
        m.insert("Minor".into(), Value::str(min));
        Value::map(m)
    }
}

struct VersionSet(Vec<String>);

impl Object for VersionSet {
    fn type_name(&self) -> String {
        "common.VersionSet".into()
    }
    fn truthy(&self) -> bool {
        !self.0.is_empty()
    }
    fn kind(&self) -> &'static str {
        "slice"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn has_method(&self, name: &str) -> bool {
        name == "Has"
    }
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if name != "Has" {
            return None;
        }
        let Some(Value::Str(s)) = args.first() else {
            return Some(Err("wrong type for value; expected string".into()));
        };
        Some(Ok(Value::Bool(self.0.iter().any(|v| **v == **s))))
    }
    fn fmt_v(&self) -> String {
        format!("[{}]", self.0.join(" "))
    }
    fn to_data(&self) -> Value {
        Value::from(self.0.iter().map(Value::str).collect::<Vec<_>>())
    }
}

struct CapsObj {
    kube: Value,
    apis: Value,
}

impl Object for CapsObj {
    fn type_name(&self) -> String {
        "*common.Capabilities".into()
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "KubeVersion" => self.kube.clone(),
            "APIVersions" => self.apis.clone(),
            "HelmVersion" => {
                let mut m = Map::new();
                m.insert("Version".into(), Value::str("v4.1.4"));
                m.insert(
                    "GitCommit".into(),
                    Value::str("05fa37973dc9e42b76e1d2883494c87174b6074f"),
                );
                m.insert("GitTreeState".into(), Value::str("clean"));
                m.insert("GoVersion".into(), Value::str("go1.25.9"));
                m.insert("KubeClientVersion".into(), Value::str("v1.35"));
                Value::map(m)
            }
            _ => return None,
        })
    }
    fn to_data(&self) -> Value {
        let mut m = Map::new();
        m.insert("KubeVersion".into(), self.kube.to_data());
        m.insert("APIVersions".into(), self.apis.to_data());
        Value::map(m)
    }
}

/// `.Files`: the chart's non-template files.
#[derive(Clone)]
pub struct FilesObj(pub Arc<BTreeMap<String, Bytes>>);

/// gobwas/glob with '/' as separator: `*` within a segment, `**` across, `?`, `[..]`, `{a,b}`.
pub fn gobwas_match(pat: &str, s: &str) -> bool {
    fn expand(p: &str) -> Vec<String> {
        if let Some(open) = p.find('{')
            && let Some(close_rel) = p[open..].find('}')
        {
            let close = open + close_rel;
            let mut out = Vec::new();
            for alt in p[open + 1..close].split(',') {
                for rest in expand(&p[close + 1..]) {
                    out.push(format!("{}{}{}", &p[..open], alt, rest));
                }
            }
            return out;
        }
        vec![p.to_string()]
    }
    fn m(p: &[char], s: &[char]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        if p[0] == '*' && p.get(1) == Some(&'*') {
            for i in 0..=s.len() {
                if m(&p[2..], &s[i..]) {
                    return true;
                }
            }
            return false;
        }
        match p[0] {
            '*' => {
                for i in 0..=s.len() {
                    if i > 0 && s[i - 1] == '/' {
                        break;
                    }
                    if m(&p[1..], &s[i..]) {
                        return true;
                    }
                }
                false
            }
            '?' => !s.is_empty() && s[0] != '/' && m(&p[1..], &s[1..]),
            '[' => crate::chart::glob_match(
                &p.iter().collect::<String>(),
                &s.iter().collect::<String>(),
            ),
            c => !s.is_empty() && s[0] == c && m(&p[1..], &s[1..]),
        }
    }
    let sc: Vec<char> = s.chars().collect();
    expand(pat).iter().any(|p| {
        let pc: Vec<char> = p.chars().collect();
        m(&pc, &sc)
    })
}

fn yaml_of_map(m: Map) -> String {
    let y = ferroflux_gotemplate::yaml::to_yaml(&Value::map(m));
    y.strip_suffix('\n').unwrap_or(&y).to_string()
}

impl Object for FilesObj {
    fn type_name(&self) -> String {
        "common.Files".into()
    }
    fn truthy(&self) -> bool {
        !self.0.is_empty()
    }
    fn kind(&self) -> &'static str {
        "map"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "AsConfig" | "AsSecrets" => self.call(name, &[]).and_then(|r| r.ok()),
            _ => None,
        }
    }
    fn has_method(&self, name: &str) -> bool {
        matches!(
            name,
            "Get" | "GetBytes" | "Glob" | "Lines" | "AsConfig" | "AsSecrets"
        )
    }
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let arg = || match args.first() {
            Some(Value::Str(s)) => Ok(s.to_string()),
            _ => Err("wrong type for value; expected string".to_string()),
        };
        Some(match name {
            "Get" => arg().map(|p| match self.0.get(&p) {
                Some(b) => Value::str(crate::utf8_lossy(b)),
                None => Value::str(""),
            }),
            "GetBytes" => arg().map(|p| {
                Value::Bytes(Arc::from(
                    self.0.get(&p).map(|b| b.as_slice()).unwrap_or_default(),
                ))
            }),
            "Lines" => arg().map(|p| match self.0.get(&p) {
                None => Value::from(Vec::<Value>::new()),
                Some(b) => {
                    let s = crate::utf8_lossy(b);
                    let s = s.strip_suffix('\n').unwrap_or(&s);
                    Value::from(s.split('\n').map(Value::str).collect::<Vec<_>>())
                }
            }),
            "Glob" => arg().map(|p| {
                let m: BTreeMap<String, Bytes> = self
                    .0
                    .iter()
                    .filter(|(k, _)| gobwas_match(&p, k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Value::Object(Arc::new(FilesObj(Arc::new(m))))
            }),
            "AsConfig" => {
                let m: Map = self
                    .0
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.rsplit('/').next().unwrap_or(k).to_string(),
                            Value::str(crate::utf8_lossy(v)),
                        )
                    })
                    .collect();
                if m.is_empty() {
                    Ok(Value::str(""))
                } else {
                    Ok(Value::str(yaml_of_map(m)))
                }
            }
            "AsSecrets" => {
                use base64::Engine;
                let m: Map = self
                    .0
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.rsplit('/').next().unwrap_or(k).to_string(),
                            Value::str(
                                base64::engine::general_purpose::STANDARD.encode(v.as_slice()),
                            ),
                        )
                    })
                    .collect();
                if m.is_empty() {
                    Ok(Value::str(""))
                } else {
                    Ok(Value::str(yaml_of_map(m)))
                }
            }
            _ => return None,
        })
    }
    fn fmt_v(&self) -> String {
        let mut s = String::from("map[");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(k);
            s.push(':');
            s.push_str(&format!("{v:?}").replace(',', ""));
        }
        s.push(']');
        s
    }
    fn to_data(&self) -> Value {
        use base64::Engine;
        Value::map(
            self.0
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::str(base64::engine::general_purpose::STANDARD.encode(v.as_slice())),
                    )
                })
                .collect(),
        )
    }
}

/// The release being rendered.
#[derive(Clone, Debug)]
pub struct ReleaseOptions {
    pub name: String,
    pub namespace: String,
    pub revision: i64,
    pub is_install: bool,
    pub is_upgrade: bool,
}

impl Default for ReleaseOptions {
    fn default() -> Self {
        ReleaseOptions {
            name: "release-name".into(),
            namespace: "default".into(),
            revision: 1,
            is_install: true,
            is_upgrade: false,
        }
    }
}

fn go_metadata(c: &Chart, is_root: bool) -> Value {
    let md = &c.metadata;
    let s = |k: &str| {
        md.get(k)
            .cloned()
            .filter(|v| !v.is_nil())
            .unwrap_or_else(|| Value::str(""))
    };
    let l = |k: &str| match md.get(k) {
        Some(v @ Value::List(_)) => v.clone(),
        _ => Value::from(Vec::<Value>::new()),
    };
    let mut m = Map::new();
    m.insert("Name".into(), s("name"));
    m.insert("Home".into(), s("home"));
    m.insert("Sources".into(), l("sources"));
    m.insert("Version".into(), s("version"));
    m.insert("Description".into(), s("description"));
    m.insert("Keywords".into(), l("keywords"));
    let maint: Vec<Value> = match md.get("maintainers") {
        Some(Value::List(ms)) => ms
            .iter()
            .map(|x| {
                let mm = x.as_map().map(|m| m.snapshot()).unwrap_or_default();
                let g = |k: &str| mm.get(k).cloned().unwrap_or_else(|| Value::str(""));
                let mut o = Map::new();
                o.insert("Name".into(), g("name"));
                o.insert("Email".into(), g("email"));
                o.insert("URL".into(), g("url"));
                Value::map(o)
            })
            .collect(),
        _ => vec![],
    };
    m.insert("Maintainers".into(), Value::from(maint));
    m.insert("Icon".into(), s("icon"));
    m.insert("APIVersion".into(), s("apiVersion"));
    m.insert("Condition".into(), s("condition"));
    m.insert("Tags".into(), s("tags"));
    m.insert("AppVersion".into(), s("appVersion"));
    m.insert(
        "Deprecated".into(),
        Value::Bool(md.get("deprecated").is_some_and(|v| v.truthy())),
    );
    m.insert(
        "Annotations".into(),
        md.get("annotations").cloned().unwrap_or_default(),
    );
    m.insert("KubeVersion".into(), s("kubeVersion"));
    let deps: Vec<Value> = c
        .dependencies_meta
        .iter()
        .map(|d| {
            let mut o = Map::new();
            o.insert("Name".into(), Value::str(&d.name));
            o.insert("Version".into(), Value::str(&d.version));
            o.insert("Repository".into(), Value::str(&d.repository));
            o.insert("Condition".into(), Value::str(&d.condition));
            o.insert(
                "Tags".into(),
                Value::from(d.tags.iter().map(Value::str).collect::<Vec<_>>()),
            );
            o.insert("Enabled".into(), Value::Bool(d.enabled));
            o.insert("ImportValues".into(), Value::from(d.import_values.clone()));
            o.insert("Alias".into(), Value::str(&d.alias));
            Value::map(o)
        })
        .collect();
    m.insert("Dependencies".into(), Value::from(deps));
    m.insert("Type".into(), s("type"));
    m.insert("IsRoot".into(), Value::Bool(is_root));
    Value::map(m)
}

struct Renderable {
    text: Arc<str>,
    vals: Value,
    base_path: String,
}

fn rec_all_tpls(
    c: &Chart,
    path: &str,
    templates: &mut BTreeMap<String, Renderable>,
    parent: &Map,
    is_root: bool,
) -> Value {
    let sub = Map::new();
    let subcharts = Value::map(sub);
    let values = if is_root {
        parent.get("Values").cloned().unwrap_or_default()
    } else {
        match parent.get("Values") {
            Some(Value::Map(pv)) => match pv.get(&c.name()) {
                Some(v @ Value::Map(_)) => v,
                _ => Value::map(Map::new()),
            },
            _ => Value::map(Map::new()),
        }
    };
    let files: BTreeMap<String, Bytes> = c
        .files
        .iter()
        .map(|f| (f.name.clone(), f.data.clone()))
        .collect();
    let mut next = Map::new();
    next.insert("Chart".into(), go_metadata(c, is_root));
    next.insert(
        "Files".into(),
        Value::Object(Arc::new(FilesObj(Arc::new(files)))),
    );
    next.insert(
        "Release".into(),
        parent.get("Release").cloned().unwrap_or_default(),
    );
    next.insert(
        "Capabilities".into(),
        parent.get("Capabilities").cloned().unwrap_or_default(),
    );
    next.insert("Values".into(), values);
    next.insert("Subcharts".into(), subcharts.clone());
    let me = if path.is_empty() {
        c.name()
    } else {
        format!("{path}/charts/{}", c.name())
    };
    for child in &c.dependencies {
        let v = rec_all_tpls(child, &me, templates, &next, false);
        if let Value::Map(sm) = &subcharts {
            sm.insert(child.name(), v);
        }
    }
    let next_v = Value::map(next);
    for t in &c.templates {
        if c.is_library() && !t.name.rsplit('/').next().unwrap_or("").starts_with('_') {
            continue;
        }
        templates.insert(
            format!("{me}/{}", t.name),
            Renderable {
                text: Arc::from(crate::utf8_lossy(&t.data)),
                vals: next_v.clone(),
                base_path: format!("{me}/templates"),
            },
        );
    }
    next_v
}

/// Helm's sortTemplates: deeper paths first, then reverse lexical order.
fn sort_templates(names: &mut [String]) {
    names.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
}

/// Renders every template of the chart (and subcharts) with the given top-level values
/// (already coalesced). Returns file name → rendered text (partials excluded).
pub fn render_templates(
    chart: &Chart,
    values: &Map,
    release: &ReleaseOptions,
    caps: &Capabilities,
    host: &mut dyn Host,
    strict: bool,
) -> Result<BTreeMap<String, String>, Error> {
    let mut rel = Map::new();
    rel.insert("Name".into(), Value::str(&release.name));
    rel.insert("Namespace".into(), Value::str(&release.namespace));
    rel.insert("IsUpgrade".into(), Value::Bool(release.is_upgrade));
    rel.insert("IsInstall".into(), Value::Bool(release.is_install));
    rel.insert("Revision".into(), Value::int(release.revision));
    rel.insert("Service".into(), Value::str("Helm"));
    let caps_v = Value::Object(Arc::new(CapsObj {
        kube: Value::Object(Arc::new(KubeVersionObj(caps.kube_version.clone()))),
        apis: Value::Object(Arc::new(VersionSet(caps.api_versions.clone()))),
    }));
    let mut top = Map::new();
    top.insert("Release".into(), Value::map(rel));
    top.insert("Capabilities".into(), caps_v);
    top.insert("Values".into(), Value::map(values.clone()));
    let mut tpls = BTreeMap::new();
    rec_all_tpls(chart, "", &mut tpls, &top, true);

    let mut names: Vec<String> = tpls.keys().cloned().collect();
    sort_templates(&mut names);
    let mut set = Templates::new();
    set.strict = strict;
    for n in &names {
        set.parse_shared(n, tpls[n].text.clone())
            .map_err(|e| Error::Render(clean_parse_error(n, &e.0)))?;
    }
    let mut out = BTreeMap::new();
    for n in &names {
        if n.rsplit('/').next().unwrap_or("").starts_with('_') {
            continue;
        }
        let r = &tpls[n];
        if let Value::Map(vm) = &r.vals {
            let mut t = Map::new();
            t.insert("Name".into(), Value::str(n));
            t.insert("BasePath".into(), Value::str(&r.base_path));
            vm.insert("Template", Value::map(t));
        }
        let text = set
            .execute(n, &r.vals, host)
            .map_err(|e| Error::Render(clean_exec_error(n, &e.0)))?;
        out.insert(n.clone(), ferroflux_gotemplate::exec::strip_no_value(text));
    }
    crate::discard(set);
    crate::discard(tpls);
    Ok(out)
}

/// Helm's cleanupParseError: "parse error at (NAME:LINE): last part of the message".
fn clean_parse_error(filename: &str, msg: &str) -> String {
    let tokens: Vec<&str> = msg.split(": ").collect();
    if tokens.len() == 1 {
        return format!("parse error in ({filename}): {msg}");
    }
    format!(
        "parse error at ({}): {}",
        tokens[1],
        tokens[tokens.len() - 1]
    )
}

/// Helm v4's reformatExecErrorMsg: `fail`/`required` messages become
/// "execution error at (LOCATION): MSG"; a chain of template errors becomes a multi-line
/// trace; anything else is left as text/template wrote it.
fn clean_exec_error(filename: &str, msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("template: ") else {
        return msg.to_string();
    };
    let Some((location, _)) = rest.split_once(": ") else {
        return format!("execution error in ({filename}): {msg}");
    };
    if let Some(m) = ferroflux_gotemplate::funcs::user_message(msg) {
        return format!("execution error at ({location}): {m}");
    }
    // The chain: each link starts with "template: ".
    let mut links = Vec::new();
    let mut cur = msg;
    loop {
        let Some(body) = cur.strip_prefix("template: ") else {
            return msg.to_string();
        };
        if body.starts_with("no template ") {
            links.push(format!("{cur}\n"));
            break;
        }
        let next = body.find(" template: ");
        let this = match next {
            Some(i) => &body[..i],
            None => body,
        };
        let link = match this.split_once(": executing \"") {
            Some((loc, after)) => {
                let Some((func, after)) = after.split_once("\" at <") else {
                    return msg.to_string();
                };
                let Some((ctx, m)) = after.split_once(">: ") else {
                    return msg.to_string();
                };
                format!("{loc}\n  executing \"{func}\" at <{ctx}>:\n    {m}\n")
            }
            None => match this.rsplit_once(": ") {
                Some((loc, m)) => format!("{loc}\n  {m}\n"),
                None => return msg.to_string(),
            },
        };
        links.push(link);
        match next {
            Some(i) => cur = &body[i + 1..],
            None => {
                // the innermost message wraps a plain function error: keep Go's text
                let m = this.rsplit_once(">: ").map(|(_, m)| m).unwrap_or(this);
                if m.starts_with("error calling ") || m.starts_with("error during tpl") {
                    return msg.to_string();
                }
                break;
            }
        }
    }
    links.concat().trim().to_string()
}

/// The templates of a file list, for callers building a chart in memory.
pub fn file(name: &str, data: &str) -> File {
    File::new(name, data.as_bytes())
}
