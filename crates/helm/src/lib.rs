//! Helm charts natively: load a chart, process its dependencies, coalesce values, validate
//! them against values.schema.json, render its templates through `ferroflux-gotemplate`,
//! separate hooks and sort manifests like Helm, and Helm's release-storage codec.
//!
//! Pure except the injected [`Host`] (randomness, clock, `lookup`).
//!
//! ```no_run
//! use ferroflux_helm::{chart, render_chart, RenderOptions};
//! let c = chart::load(std::path::Path::new("mychart")).unwrap();
//! let out = render_chart(&c, &Default::default(), &RenderOptions::default(),
//!     &mut ferroflux_gotemplate::FixedHost::default()).unwrap();
//! for m in &out.manifests { println!("{}: {}", m.name, m.kind); }
//! ```

pub mod chart;
pub mod release;
pub mod render;
pub mod schema;
pub mod sort;
pub mod values;

use std::collections::BTreeMap;

pub use chart::Chart;
pub use ferroflux_gotemplate::{FixedHost, Host, Map, Value};
pub use render::{Capabilities, ReleaseOptions};
pub use sort::{Hook, Manifest};

/// Everything that can go wrong, with Helm's wording where it matters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Values(String),
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Render(String),
    #[error("{0}")]
    Release(String),
    #[error("{0}")]
    Install(String),
}

/// How to render.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    pub release: ReleaseOptions,
    pub capabilities: Capabilities,
    /// `missingkey=error` instead of zero values.
    pub strict: bool,
}

/// The result of rendering a chart.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    /// Non-hook documents in install order.
    pub manifests: Vec<Manifest>,
    /// Hook documents in install order.
    pub hooks: Vec<Hook>,
    /// The root chart's rendered NOTES.txt.
    pub notes: String,
    /// crds/ files of the chart and its subcharts: (path, content).
    pub crds: Vec<(String, chart::Bytes)>,
    /// The final values the templates saw.
    pub values: Map,
}

impl Rendered {
    /// `release.manifest` as Helm stores it.
    pub fn manifest(&self) -> String {
        release::manifest_string(&self.manifests)
    }
}

/// User-supplied values from value files (YAML texts, later wins) and `--set` arguments.
pub fn user_values(files: &[String], sets: &[String]) -> Result<Map, Error> {
    let mut base = Map::new();
    for (i, text) in files.iter().enumerate() {
        let v = ferroflux_gotemplate::yaml::parse(text, ferroflux_gotemplate::yaml::Numbers::Json)
            .map_err(|e| Error::Values(format!("failed to parse values file {i}: {e}")))?;
        let m = match v {
            Value::Map(m) => m.snapshot(),
            Value::Nil => Map::new(),
            _ => return Err(Error::Values("values file is not a map".into())),
        };
        base = values::merge_maps(&base, &m);
    }
    for s in sets {
        values::parse_set_into(s, &mut base, false)?;
    }
    Ok(base)
}

fn validate_schemas(
    c: &Chart,
    vals: &Map,
    path: &str,
    errs: &mut Vec<String>,
) -> Result<(), Error> {
    if let Some(schema) = &c.schema {
        let sj: serde_json::Value = serde_json::from_slice(schema)
            .map_err(|e| Error::Schema(format!("{}: invalid values.schema.json: {e}", c.name())))?;
        let vj = ferroflux_gotemplate::json::to_serde(&Value::map(vals.clone()));
        let mut e = Vec::new();
        schema::validate(&sj, &sj, &vj, "", &mut e);
        if !e.is_empty() {
            let name = if path.is_empty() {
                c.name()
            } else {
                path.to_string()
            };
            errs.push(format!(
                "{name}:\n{}",
                e.iter()
                    .map(|x| format!("- {x}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    for d in &c.dependencies {
        let sub = match vals.get(&d.name()) {
            Some(Value::Map(m)) => m.snapshot(),
            _ => Map::new(),
        };
        validate_schemas(d, &sub, &d.name(), errs)?;
    }
    Ok(())
}

static SKIP_FREES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a process that exits right after rendering (the `ferroflux-helm` CLI): parsed
/// templates and intermediate trees are left to the OS instead of being freed node by node
/// (several percent of a render). Never set this in a long-running process.
pub fn skip_frees_for_exit(on: bool) {
    SKIP_FREES.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Drops `v`, unless [`skip_frees_for_exit`] was set.
pub(crate) fn discard<T>(v: T) {
    if SKIP_FREES.load(std::sync::atomic::Ordering::Relaxed) {
        std::mem::forget(v);
    } else {
        drop(v);
    }
}

/// `String::from_utf8_lossy` with the fast validation of `str::from_utf8` first (chart files
/// are nearly always valid UTF-8, and the lossy scan is several times slower).
pub(crate) fn utf8_lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// Renders a chart like `helm install` does before applying: dependencies, kubeVersion,
/// values and schema, templates, NOTES, hooks and manifests.
pub fn render_chart(
    chart: &Chart,
    user: &Map,
    opts: &RenderOptions,
    host: &mut dyn Host,
) -> Result<Rendered, Error> {
    let t = chart.chart_type();
    if !(t.is_empty() || t == "application") {
        return Err(Error::Install(format!("{t} charts are not installable")));
    }
    let mut c = chart.clone();
    values::process_dependency_enabled(&mut c, user, "")?;
    values::process_import_values(&mut c)?;
    let kv = c.kube_version();
    if !kv.is_empty() {
        let ok = ferroflux_gotemplate::semver::semver_compare(&kv, &opts.capabilities.kube_version)
            .unwrap_or(false);
        if !ok {
            return Err(Error::Install(format!(
                "chart requires kubeVersion: {kv} which is incompatible with Kubernetes {}",
                opts.capabilities.kube_version
            )));
        }
    }
    let vals = values::coalesce_values_for(&c, user)?;
    let mut errs = Vec::new();
    validate_schemas(&c, &vals, "", &mut errs)?;
    if !errs.is_empty() {
        return Err(Error::Schema(format!(
            "values don't meet the specifications of the schema(s) in the following chart(s):\n{}",
            errs.join("\n")
        )));
    }
    let mut files = render::render_templates(
        &c,
        &vals,
        &opts.release,
        &opts.capabilities,
        host,
        opts.strict,
    )?;
    let notes_key = format!("{}/templates/NOTES.txt", c.name());
    let notes = files.get(&notes_key).cloned().unwrap_or_default();
    files.retain(|k, _| !k.ends_with("NOTES.txt"));
    let (hooks, manifests) = sort::sort_manifests(&files)?;
    let crds = c.crd_objects("");
    discard(files);
    discard(c);
    Ok(Rendered {
        manifests,
        hooks,
        notes,
        crds,
        values: vals,
    })
}

/// What `helm template` prints.
pub fn template_output(r: &Rendered, include_crds: bool, skip_tests: bool) -> String {
    let mut b = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_template_output(r, include_crds, skip_tests, &mut b);
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`template_output`] written to `w` piece by piece: no copy of the whole output is made
/// (it can be megabytes of CRDs, and every fresh page costs a page fault).
pub fn write_template_output(
    r: &Rendered,
    include_crds: bool,
    skip_tests: bool,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let crds = r.crds.iter().filter(|_| include_crds);
    let docs = crds
        .map(|(name, data)| (name.as_str(), utf8_lossy(data)))
        .chain(r.manifests.iter().map(|m| {
            (
                m.name.as_str(),
                std::borrow::Cow::Borrowed(m.content.as_str()),
            )
        }))
        .chain(
            r.hooks
                .iter()
                .filter(|h| !(skip_tests && h.events.iter().any(|e| e == "test")))
                .map(|h| {
                    (
                        h.path.as_str(),
                        std::borrow::Cow::Borrowed(h.manifest.as_str()),
                    )
                }),
        );
    for (name, data) in docs {
        w.write_all(b"---\n# Source: ")?;
        w.write_all(name.as_bytes())?;
        w.write_all(b"\n")?;
        w.write_all(data.as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Convenience: file path → rendered text, for tests.
pub type RenderedFiles = BTreeMap<String, String>;
