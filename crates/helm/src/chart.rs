//! Loading a chart from a directory or a `.tgz`, as helm's `pkg/chart/v2/loader` does.

use std::io::Read;
use std::path::Path;

use ferroflux_gotemplate::yaml::{self, Numbers};
use ferroflux_gotemplate::{Map, Value};

use crate::Error;

/// File contents, shared: a chart is cloned for rendering, its files are handed to the
/// templates as `.Files` and its CRDs to the output, all without copying the bytes.
pub type Bytes = std::sync::Arc<Vec<u8>>;

/// A file of a chart: path relative to the chart root, and its bytes.
#[derive(Clone, Debug)]
pub struct File {
    pub name: String,
    pub data: Bytes,
}

impl File {
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> File {
        File {
            name: name.into(),
            data: Bytes::new(data.into()),
        }
    }
}

/// A dependency entry of Chart.yaml (or requirements.yaml).
#[derive(Clone, Debug, Default)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub condition: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub import_values: Vec<Value>,
    pub alias: String,
}

/// A loaded chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Chart.yaml as data (field names as in the file).
    pub metadata: Map,
    pub dependencies_meta: Vec<Dependency>,
    /// Raw Chart.yaml.
    pub chart_yaml: Bytes,
    pub lock: Option<Bytes>,
    pub templates: Vec<File>,
    /// Everything else (including crds/), as `.Files` sees it.
    pub files: Vec<File>,
    /// values.yaml, read as Helm reads values (numbers are float64).
    pub values: Map,
    pub raw_values: Bytes,
    pub schema: Option<Bytes>,
    /// Subcharts from charts/.
    pub dependencies: Vec<Chart>,
    /// Path of this chart from the root, e.g. `parent/charts/sub` (set while rendering).
    pub parent_path: String,
}

fn md_str(m: &Map, k: &str) -> String {
    match m.get(k) {
        Some(Value::Str(s)) => s.to_string(),
        Some(Value::Nil) | None => String::new(),
        Some(v) => ferroflux_gotemplate::funcs::strval(v),
    }
}

impl Chart {
    pub fn name(&self) -> String {
        md_str(&self.metadata, "name")
    }
    pub fn version(&self) -> String {
        md_str(&self.metadata, "version")
    }
    pub fn api_version(&self) -> String {
        md_str(&self.metadata, "apiVersion")
    }
    pub fn kube_version(&self) -> String {
        md_str(&self.metadata, "kubeVersion")
    }
    pub fn chart_type(&self) -> String {
        md_str(&self.metadata, "type")
    }
    pub fn is_library(&self) -> bool {
        self.chart_type() == "library"
    }
    pub fn app_version(&self) -> String {
        md_str(&self.metadata, "appVersion")
    }
    /// The files under crds/ of this chart and its subcharts (`CRDObjects`), with the path
    /// helm prints.
    pub fn crd_objects(&self, prefix: &str) -> Vec<(String, Bytes)> {
        let me = if prefix.is_empty() {
            self.name()
        } else {
            format!("{prefix}/charts/{}", self.name())
        };
        let mut out = Vec::new();
        for f in &self.files {
            let lower = f.name.to_ascii_lowercase();
            if f.name.starts_with("crds/")
                && (lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json"))
            {
                out.push((format!("{me}/{}", f.name), f.data.clone()));
            }
        }
        for d in &self.dependencies {
            out.extend(d.crd_objects(&me));
        }
        out
    }
}

/// Loads a chart from a directory or a `.tgz` file.
pub fn load(path: &Path) -> Result<Chart, Error> {
    if path.is_dir() {
        load_dir(path)
    } else {
        let data =
            std::fs::read(path).map_err(|e| Error::Load(format!("{}: {e}", path.display())))?;
        load_archive(&data)
    }
}

/// Loads a chart directory, honouring .helmignore.
pub fn load_dir(dir: &Path) -> Result<Chart, Error> {
    let rules = match std::fs::read_to_string(dir.join(".helmignore")) {
        Ok(t) => IgnoreRules::parse(&t),
        Err(_) => IgnoreRules::default(),
    };
    let mut files = Vec::new();
    walk(dir, "", &rules, &mut files)?;
    load_files(files)
}

fn walk(base: &Path, rel: &str, rules: &IgnoreRules, out: &mut Vec<File>) -> Result<(), Error> {
    let dir = if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| Error::Load(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rp = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        // The directory listing already says what an entry is; only a symlink (which Helm
        // follows) needs a stat of its own.
        let ft = e.file_type().map_err(|e| Error::Load(e.to_string()))?;
        let is_dir = if ft.is_symlink() {
            std::fs::metadata(e.path())
                .map_err(|e| Error::Load(e.to_string()))?
                .is_dir()
        } else {
            ft.is_dir()
        };
        if is_dir {
            if rules.ignore(&rp, true) {
                continue;
            }
            walk(base, &rp, rules, out)?;
        } else {
            if rules.ignore(&rp, false) {
                continue;
            }
            let data = std::fs::read(e.path()).map_err(|e| Error::Load(e.to_string()))?;
            out.push(File::new(rp, data));
        }
    }
    Ok(())
}

/// Loads a chart from gzipped tar bytes (the top directory is stripped).
pub fn load_archive(data: &[u8]) -> Result<Chart, Error> {
    let gz = flate2::read::GzDecoder::new(data);
    let mut ar = tar::Archive::new(gz);
    let mut files = Vec::new();
    for entry in ar.entries().map_err(|e| Error::Load(e.to_string()))? {
        let mut entry = entry.map_err(|e| Error::Load(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let p = entry
            .path()
            .map_err(|e| Error::Load(e.to_string()))?
            .to_string_lossy()
            .replace('\\', "/");
        let Some((_, rest)) = p.split_once('/') else {
            continue;
        };
        let mut buf = Vec::new();
        entry
            .read_to_end(&mut buf)
            .map_err(|e| Error::Load(e.to_string()))?;
        files.push(File::new(rest, buf));
    }
    load_files(files)
}

fn parse_deps(v: Option<&Value>) -> Vec<Dependency> {
    let Some(Value::List(l)) = v else {
        return vec![];
    };
    l.iter()
        .filter_map(|d| d.as_map())
        .map(|d| {
            let m = d.snapshot();
            Dependency {
                name: md_str(&m, "name"),
                version: md_str(&m, "version"),
                repository: md_str(&m, "repository"),
                condition: md_str(&m, "condition"),
                tags: match m.get("tags") {
                    Some(Value::List(t)) => {
                        t.iter().map(ferroflux_gotemplate::funcs::strval).collect()
                    }
                    _ => vec![],
                },
                enabled: true,
                import_values: match m.get("import-values") {
                    Some(Value::List(t)) => t.to_vec(),
                    _ => vec![],
                },
                alias: md_str(&m, "alias"),
            }
        })
        .collect()
}

/// Builds a chart from its files (`loader.LoadFiles`).
pub fn load_files(files: Vec<File>) -> Result<Chart, Error> {
    let mut c = Chart {
        metadata: Map::new(),
        dependencies_meta: vec![],
        chart_yaml: Bytes::default(),
        lock: None,
        templates: vec![],
        files: vec![],
        values: Map::new(),
        raw_values: Bytes::default(),
        schema: None,
        dependencies: vec![],
        parent_path: String::new(),
    };
    let mut subcharts: Vec<(String, Vec<File>)> = Vec::new();
    let mut requirements: Option<Value> = None;
    let mut has_chart_yaml = false;
    for f in files {
        let name = f.name.clone();
        if name == "Chart.yaml" {
            has_chart_yaml = true;
            let text = crate::utf8_lossy(&f.data);
            let v = yaml::parse(&text, Numbers::Json)
                .map_err(|e| Error::Load(format!("cannot load Chart.yaml: {e}")))?;
            c.metadata = v.as_map().map(|m| m.snapshot()).unwrap_or_default();
            c.chart_yaml = f.data;
        } else if name == "requirements.yaml" {
            let text = crate::utf8_lossy(&f.data);
            requirements = yaml::parse(&text, Numbers::Json).ok();
            c.files.push(f);
        } else if name == "Chart.lock" || name == "requirements.lock" {
            c.lock = Some(f.data.clone());
            if name == "requirements.lock" {
                c.files.push(f);
            }
        } else if name == "values.yaml" {
            let text = crate::utf8_lossy(&f.data);
            let v = yaml::parse(&text, Numbers::Json)
                .map_err(|e| Error::Load(format!("cannot load values.yaml: {e}")))?;
            c.values = match v {
                Value::Map(m) => m.snapshot(),
                Value::Nil => Map::new(),
                _ => return Err(Error::Load("cannot load values.yaml: not a map".into())),
            };
            c.raw_values = f.data;
        } else if name == "values.schema.json" {
            c.schema = Some(f.data);
        } else if name.starts_with("templates/") {
            c.templates.push(f);
        } else if let Some(rest) = name.strip_prefix("charts/") {
            if name.ends_with(".prov") {
                c.files.push(f);
                continue;
            }
            let cname = rest.split('/').next().unwrap_or("").to_string();
            let f2 = File {
                name: rest.to_string(),
                data: f.data,
            };
            match subcharts.iter_mut().find(|(n, _)| *n == cname) {
                Some((_, v)) => v.push(f2),
                None => subcharts.push((cname, vec![f2])),
            }
        } else {
            c.files.push(f);
        }
    }
    if !has_chart_yaml {
        return Err(Error::Load("Chart.yaml file is missing".into()));
    }
    if c.api_version().is_empty() {
        return Err(Error::Load(
            "validation: chart.metadata.apiVersion is required".into(),
        ));
    }
    if c.name().is_empty() {
        return Err(Error::Load(
            "validation: chart.metadata.name is required".into(),
        ));
    }
    if c.version().is_empty() {
        return Err(Error::Load(
            "validation: chart.metadata.version is required".into(),
        ));
    }
    c.dependencies_meta = if c.api_version() == "v1" {
        parse_deps(
            requirements
                .as_ref()
                .and_then(|r| r.as_map())
                .and_then(|m| m.get("dependencies"))
                .as_ref(),
        )
    } else {
        parse_deps(c.metadata.get("dependencies"))
    };
    for (n, files) in subcharts {
        if n.starts_with('.') || n.starts_with('_') {
            continue;
        }
        let sc = if n.ends_with(".tgz") {
            let Some(f) = files.iter().find(|f| f.name == n) else {
                continue;
            };
            load_archive(&f.data).map_err(|e| {
                Error::Load(format!("error unpacking subchart {n} in {}: {e}", c.name()))
            })?
        } else {
            let buff: Vec<File> = files
                .into_iter()
                .filter_map(|f| {
                    f.name.split_once('/').map(|(_, r)| File {
                        name: r.to_string(),
                        data: f.data,
                    })
                })
                .collect();
            if buff.is_empty() {
                continue;
            }
            load_files(buff).map_err(|e| {
                Error::Load(format!("error unpacking subchart {n} in {}: {e}", c.name()))
            })?
        };
        c.dependencies.push(sc);
    }
    Ok(c)
}

// ---------------------------------------------------------------- .helmignore

#[derive(Default)]
struct IgnoreRules {
    patterns: Vec<(String, bool, bool)>, // pattern, negate, dir only
}

impl IgnoreRules {
    fn parse(text: &str) -> Self {
        let mut r = IgnoreRules::default();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l == "!" || l == "/" {
                continue;
            }
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, l),
            };
            let (dir, p) = match p.strip_suffix('/') {
                Some(p) => (true, p),
                None => (false, p),
            };
            let p = p.strip_prefix('/').unwrap_or(p);
            r.patterns.push((p.to_string(), neg, dir));
        }
        r
    }

    fn ignore(&self, path: &str, is_dir: bool) -> bool {
        // helm always skips templates/.* hidden files
        if !is_dir
            && let Some(rest) = path.strip_prefix("templates/")
            && rest
                .rsplit('/')
                .next()
                .is_some_and(|b| b.starts_with('.') && b.len() > 1)
        {
            return true;
        }
        if path == "." || path.is_empty() {
            return false;
        }
        for (p, neg, dir) in &self.patterns {
            if *dir && !is_dir {
                continue;
            }
            let matched = if p.contains('/') {
                glob_match(p, path)
            } else {
                glob_match(p, path.rsplit('/').next().unwrap_or(path))
            };
            let matched = if *neg { !matched } else { matched };
            if matched {
                return true;
            }
        }
        false
    }
}

/// filepath.Match: `*` and `?` do not cross `/`; character classes.
pub fn glob_match(pat: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        if p.is_empty() {
            return s.is_empty();
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
            '[' => {
                if s.is_empty() {
                    return false;
                }
                let Some(end) = p.iter().position(|c| *c == ']') else {
                    return false;
                };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('^') | Some('!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut found = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        if class[i] <= s[0] && s[0] <= class[i + 2] {
                            found = true;
                        }
                        i += 3;
                    } else {
                        if class[i] == s[0] {
                            found = true;
                        }
                        i += 1;
                    }
                }
                found != neg && m(&p[end + 1..], &s[1..])
            }
            '\\' if p.len() > 1 => !s.is_empty() && s[0] == p[1] && m(&p[2..], &s[1..]),
            c => !s.is_empty() && s[0] == c && m(&p[1..], &s[1..]),
        }
    }
    // Fast paths for the common .helmignore shapes: a literal name, and "*" + literal
    // suffix ("*" stops at '/').
    let is_meta = |c: char| matches!(c, '*' | '?' | '[' | '\\');
    if !pat.contains(is_meta) {
        return pat == s;
    }
    if let Some(suffix) = pat.strip_prefix('*')
        && !suffix.contains(is_meta)
    {
        return s.ends_with(suffix) && !s[..s.len() - suffix.len()].contains('/');
    }
    let p: Vec<char> = pat.chars().collect();
    let s: Vec<char> = s.chars().collect();
    m(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Helm's loader follows symlinks, to files and to directories alike.
    #[test]
    fn chart_directory_follows_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("extra")).unwrap();
        std::fs::write(outside.path().join("extra/cm.yaml"), "kind: ConfigMap\n").unwrap();
        std::fs::write(outside.path().join("svc.yaml"), "kind: Service\n").unwrap();

        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        std::fs::write(
            c.join("Chart.yaml"),
            "apiVersion: v2\nname: s\nversion: 0.1.0\n",
        )
        .unwrap();
        std::fs::create_dir(c.join("templates")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("extra"), c.join("templates/extra"))
            .unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("svc.yaml"),
            c.join("templates/svc.yaml"),
        )
        .unwrap();

        let chart = load(c).unwrap();
        let mut names: Vec<&str> = chart.templates.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["templates/extra/cm.yaml", "templates/svc.yaml"]);
        let cm = chart
            .templates
            .iter()
            .find(|f| f.name.ends_with("cm.yaml"))
            .unwrap();
        assert_eq!(&*cm.data, b"kind: ConfigMap\n");
    }
}
