//! The build: kustomize's KustTarget, accumulating resources through the
//! kustomization tree and running generators and transformers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::fieldspec::{self, TransformerConfig};
use crate::fs::{FileSystem, clean};
use crate::generators;
use crate::kustomization::{
    FieldSpec, GeneratorArgs, GeneratorOptions, Image, Kustomization, Patch, Replica, Selector,
    SortOptions, Var,
};
use crate::nameref;
use crate::openapi::{Schemas, Table};
use crate::patch;
use crate::replacements;
use crate::resource::{ORIGIN_ANNOTATION, Resource, TRANSFORMATIONS_ANNOTATION};
use crate::transforms::{self, SubjectMode};
use crate::vars;
use crate::yaml::{self as y, scalar_str};

const MAX_DEPTH: usize = 64;
const KUST_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

// ----------------------------------------------------------------- origin

#[derive(Debug, Clone, Default, PartialEq)]
struct Origin {
    path: String,
    configured_in: String,
    configured_by: Option<(String, String, String, String)>,
}

impl Origin {
    fn append(&self, p: &str) -> Origin {
        let mut o = self.clone();
        o.path = if o.path.is_empty() {
            clean(Path::new(p)).to_string_lossy().into_owned()
        } else {
            clean(&Path::new(&o.path).join(p))
                .to_string_lossy()
                .into_owned()
        };
        o
    }
    fn to_mapping(&self) -> Value {
        let mut m = Mapping::new();
        if !self.path.is_empty() {
            m.insert(y::key("path"), y::key(&self.path));
        }
        if !self.configured_in.is_empty() {
            m.insert(y::key("configuredIn"), y::key(&self.configured_in));
        }
        if let Some((av, k, n, ns)) = &self.configured_by {
            let mut b = Mapping::new();
            if !av.is_empty() {
                b.insert(y::key("apiVersion"), y::key(av));
            }
            if !k.is_empty() {
                b.insert(y::key("kind"), y::key(k));
            }
            if !n.is_empty() {
                b.insert(y::key("name"), y::key(n));
            }
            if !ns.is_empty() {
                b.insert(y::key("namespace"), y::key(ns));
            }
            m.insert(y::key("configuredBy"), Value::Mapping(b));
        }
        Value::Mapping(m)
    }
    fn render(&self) -> String {
        y::to_yaml_string(&self.to_mapping())
    }
}

fn set_origin_if_absent(r: &mut Resource, o: &Origin) {
    if r.annotation(ORIGIN_ANNOTATION).is_none() {
        r.set_annotation(ORIGIN_ANNOTATION, &o.render());
    }
}

fn add_transformation(res: &mut [Resource], o: &Origin) {
    for r in res.iter_mut() {
        if r.annotation(ORIGIN_ANNOTATION).is_none() {
            r.set_annotation(ORIGIN_ANNOTATION, &o.render());
        } else {
            let mut list: Vec<Value> = r
                .annotation(TRANSFORMATIONS_ANNOTATION)
                .and_then(|t| serde_yaml::from_str::<Vec<Value>>(&t).ok())
                .unwrap_or_default();
            list.push(o.to_mapping());
            r.set_annotation(
                TRANSFORMATIONS_ANNOTATION,
                &y::to_yaml_string(&Value::Sequence(list)),
            );
        }
    }
}

// ------------------------------------------------------------ accumulator

type IdKey = (crate::resid::Gvk, String, String);

#[derive(Debug, Default, Clone)]
struct Acc {
    res: Vec<Resource>,
    config: TransformerConfig,
    vars: Vec<Var>,
    /// Current ids of `res`, kept while resources are only appended.
    ids: Option<std::collections::HashSet<IdKey>>,
}

fn id_key(id: &crate::resid::ResId) -> IdKey {
    (
        id.gvk.clone(),
        id.name.clone(),
        id.effective_namespace().to_string(),
    )
}

impl Acc {
    fn append(&mut self, r: Resource) -> Result<()> {
        self.ids = None;
        let id = r.cur_id();
        if self.res.iter().any(|o| o.cur_id().equals(&id)) {
            return Err(Error::DuplicateId(id.to_string()));
        }
        self.res.push(r);
        Ok(())
    }
    fn append_all(&mut self, rs: Vec<Resource>) -> Result<()> {
        let mut seen = match self.ids.take() {
            Some(s) => s,
            None => self.res.iter().map(|r| id_key(&r.cur_id())).collect(),
        };
        for r in rs {
            let id = r.cur_id();
            if !seen.insert(id_key(&id)) {
                return Err(Error::DuplicateId(id.to_string()));
            }
            self.res.push(r);
        }
        self.ids = Some(seen);
        Ok(())
    }
    /// kustomize's appendReplaceOrMerge, for generated resources.
    fn absorb(&mut self, mut r: Resource) -> Result<()> {
        self.ids = None;
        let id = r.cur_id();
        let matches: Vec<usize> = self
            .res
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.is_empty_obj() && o.all_ids().iter().any(|x| id.equals(x)))
            .map(|(i, _)| i)
            .collect();
        let behavior = r.behavior.clone().unwrap_or_else(|| "create".into());
        match matches.len() {
            0 => {
                if behavior == "merge" || behavior == "replace" {
                    return Err(Error::other(format!(
                        "id {id} does not exist; cannot merge or replace"
                    )));
                }
                self.append(r)
            }
            1 => {
                let i = matches[0];
                let old = self.res[i].clone();
                match behavior.as_str() {
                    "replace" => r.copy_merge_metadata_from(&old),
                    "merge" => {
                        let orig = old.annotation(ORIGIN_ANNOTATION);
                        r.copy_merge_metadata_from(&old);
                        for field in ["data", "binaryData"] {
                            let mut merged = Mapping::new();
                            for src in [&old.obj, &r.obj] {
                                if let Some(Value::Mapping(m)) = y::get(src, field) {
                                    for (k, v) in m {
                                        merged.insert(k.clone(), v.clone());
                                    }
                                }
                            }
                            if !merged.is_empty() {
                                y::set_path(&mut r.obj, &[field], Value::Mapping(merged));
                            }
                        }
                        if let Some(o) = orig {
                            r.set_annotation(ORIGIN_ANNOTATION, &o);
                        }
                    }
                    _ => {
                        return Err(Error::other(format!(
                            "id {id} exists; behavior must be merge or replace"
                        )));
                    }
                }
                self.res[i] = r;
                Ok(())
            }
            _ => Err(Error::other(format!(
                "found multiple objects that could accept merge of {id}"
            ))),
        }
    }
    fn merge(&mut self, other: Acc) -> Result<()> {
        self.append_all(other.res)?;
        self.config.merge(&other.config).map_err(Error::other)?;
        vars::merge_var_set(&mut self.vars, &other.vars).map_err(Error::other)
    }
    fn drop_empties(&mut self) {
        self.res.retain(|r| !r.is_empty_obj());
    }
}

// ---------------------------------------------------------------- builder

pub struct Builder<'a> {
    fs: &'a dyn FileSystem,
    stack: Vec<PathBuf>,
}

struct Target {
    root: PathBuf,
    k: Kustomization,
    kust_file: String,
    origin: Option<Origin>,
    schemas: Schemas,
}

fn is_remote(p: &str) -> bool {
    p.contains("://")
        || p.starts_with("git@")
        || p.starts_with("github.com/")
        || p.starts_with("gitlab.com/")
        || p.starts_with("bitbucket.org/")
        || p.contains("?ref=")
        || p.contains(".git//")
}

/// Parses resource documents (expanding `*List` kinds) and validates them.
pub fn parse_resources(text: &str, file: &Path) -> Result<Vec<Resource>> {
    let docs = y::parse_docs(text).map_err(|msg| Error::MalformedYaml {
        file: file.to_path_buf(),
        msg,
    })?;
    let mut out = Vec::new();
    let mut queue: std::collections::VecDeque<Value> = docs.into();
    while let Some(d) = queue.pop_front() {
        if !d.is_mapping() {
            return Err(Error::InvalidResource {
                file: file.to_path_buf(),
                msg: format!("expected a YAML mapping, got {}", y::inline(&d)),
            });
        }
        if matches!(&d, Value::Mapping(m) if m.is_empty()) {
            continue;
        }
        let kind = y::get_str(&d, &["kind"]);
        if kind.is_empty() {
            return Err(Error::InvalidResource {
                file: file.to_path_buf(),
                msg: "missing kind in object".into(),
            });
        }
        if kind.ends_with("List") {
            match y::get(&d, "items") {
                None => {}
                Some(Value::Null) => continue,
                Some(Value::Sequence(items)) => {
                    for it in items.iter().rev() {
                        queue.push_front(it.clone());
                    }
                    continue;
                }
                Some(_) => {
                    return Err(Error::InvalidResource {
                        file: file.to_path_buf(),
                        msg: format!("expected array in {kind}/items"),
                    });
                }
            }
        }
        if y::get_str(&d, &["metadata", "name"]).is_empty() && !kind.ends_with("List") {
            return Err(Error::InvalidResource {
                file: file.to_path_buf(),
                msg: format!("missing metadata.name in object of kind {kind}"),
            });
        }
        if has_nil_in_list(&d) {
            return Err(Error::InvalidResource {
                file: file.to_path_buf(),
                msg: "empty item in a list".into(),
            });
        }
        out.push(Resource::new(d));
    }
    Ok(out)
}

fn has_nil_in_list(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => m.values().any(has_nil_in_list),
        Value::Sequence(s) => s.iter().any(|x| x.is_null() || has_nil_in_list(x)),
        _ => false,
    }
}

impl<'a> Builder<'a> {
    pub fn new(fs: &'a dyn FileSystem) -> Self {
        Builder {
            fs,
            stack: Vec::new(),
        }
    }

    fn read(&self, root: &Path, rel: &str) -> Result<(PathBuf, Vec<u8>)> {
        let abs = clean(&root.join(rel));
        if !abs.starts_with(root) {
            return Err(Error::OutsideRoot {
                path: abs,
                root: root.to_path_buf(),
            });
        }
        let data = self
            .fs
            .read_file(&abs)
            .map_err(|e| Error::MissingResource {
                root: root.to_path_buf(),
                path: rel.to_string(),
                msg: e.to_string(),
            })?;
        Ok((abs, data))
    }

    fn read_text(&self, root: &Path, rel: &str) -> Result<(PathBuf, String)> {
        let (p, d) = self.read(root, rel)?;
        let s = String::from_utf8(d).map_err(|_| Error::MalformedYaml {
            file: p.clone(),
            msg: "not valid UTF-8".into(),
        })?;
        Ok((p, s))
    }

    fn load_target(&self, root: &Path, parent: Option<&Target>) -> Result<Target> {
        let mut found = Vec::new();
        for f in KUST_FILES {
            let p = root.join(f);
            if self.fs.is_file(&p) {
                found.push((*f, p));
            }
        }
        let (name, path) = match found.len() {
            0 => return Err(Error::MissingKustomization(root.to_path_buf())),
            1 => found.remove(0),
            _ => return Err(Error::MultipleKustomizations(root.to_path_buf())),
        };
        let text = String::from_utf8(self.fs.read_file(&path).map_err(|e| {
            Error::InvalidKustomization {
                file: path.clone(),
                msg: e.to_string(),
            }
        })?)
        .map_err(|_| Error::InvalidKustomization {
            file: path.clone(),
            msg: "not valid UTF-8".into(),
        })?;
        let mut k = Kustomization::parse(&text).map_err(|msg| Error::InvalidKustomization {
            file: path.clone(),
            msg,
        })?;
        let mut schemas = parent.map(|p| p.schemas.clone()).unwrap_or_default();
        if let Some(p) = k.openapi.get("path") {
            let (file, text) = self.read_text(root, p)?;
            let doc: serde_json::Value = if file.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).map_err(|e| Error::Field {
                    file: path.clone(),
                    field: "openapi.path".into(),
                    msg: e.to_string(),
                })?
            } else {
                serde_yaml::from_str(&text).map_err(|e| Error::Field {
                    file: path.clone(),
                    field: "openapi.path".into(),
                    msg: e.to_string(),
                })?
            };
            schemas.custom = Some(Arc::new(Table::from_swagger(&doc)));
        }
        if let Some(p) = parent {
            k.build_metadata = p.k.build_metadata.clone();
        }
        let origin = if k.build_metadata.is_empty() {
            None
        } else {
            Some(parent.and_then(|p| p.origin.clone()).unwrap_or_default())
        };
        Ok(Target {
            root: root.to_path_buf(),
            k,
            kust_file: name.to_string(),
            origin,
            schemas,
        })
    }

    /// Builds the kustomization at `dir` (absolute).
    pub fn build(&mut self, dir: &Path, sort: bool) -> Result<Vec<Resource>> {
        let root = clean(dir);
        if !self.fs.is_dir(&root) {
            return Err(Error::MissingKustomization(root));
        }
        let t = self.load_target(&root, None)?;
        self.stack.push(root.clone());
        let mut acc = self.accumulate_target(&t, Acc::default())?;
        // hash suffixes
        for r in acc.res.iter_mut() {
            if r.needs_hash {
                let h = generators::hash(&r.obj);
                r.store_previous_id();
                let n = format!("{}-{}", r.name(), h);
                r.set_name(&n);
            }
        }
        nameref::fix(&mut acc.res, &acc.config.name_reference)
            .map_err(|e| Error::transform("name references", e))?;
        let var_refs = acc.config.var_reference.clone();
        vars::resolve(&mut acc.res, &acc.vars, &var_refs)
            .map_err(|e| Error::transform("vars", e))?;
        acc.res.retain(|r| {
            let lc = r.annotation("config.kubernetes.io/local-config");
            lc.is_none() || lc.as_deref() == Some("false")
        });
        if sort {
            match &t.k.sort_options {
                Some(so) => apply_sort_options(&mut acc.res, so)?,
                None => transforms::legacy_sort(&mut acc.res, None),
            }
        }
        if t.k.build_metadata.iter().any(|b| b == "managedByLabel") {
            transforms::set_entries(
                &mut acc.res,
                &[(
                    "app.kubernetes.io/managed-by".to_string(),
                    "kustomize-v5.7.1".to_string(),
                )],
                &[FieldSpec {
                    path: "metadata/labels".into(),
                    create: true,
                    ..Default::default()
                }],
            )
            .map_err(|e| Error::transform("managedByLabel", e))?;
        }
        let keep_origin = t.k.build_metadata.iter().any(|b| b == "originAnnotations");
        let keep_tr =
            t.k.build_metadata
                .iter()
                .any(|b| b == "transformerAnnotations");
        for r in acc.res.iter_mut() {
            if !keep_origin {
                r.remove_annotation(ORIGIN_ANNOTATION);
            }
            if !keep_tr {
                r.remove_annotation(TRANSFORMATIONS_ANNOTATION);
            }
            // kustomize rewrites the annotations (as strings) when it drops
            // its build annotations
            if let Some(Value::Mapping(m)) = y::get_path(&r.obj, &["metadata", "annotations"])
                && !m.is_empty()
            {
                let sm: Mapping = m
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(scalar_str(v).unwrap_or_default())))
                    .collect();
                y::set_path(&mut r.obj, &["metadata", "annotations"], Value::Mapping(sm));
            }
            for a in [
                "config.kubernetes.io/path",
                "config.kubernetes.io/index",
                "internal.config.kubernetes.io/path",
                "internal.config.kubernetes.io/index",
                "internal.config.kubernetes.io/id",
                "internal.config.kubernetes.io/seqindent",
                "config.k8s.io/id",
                "internal.config.kubernetes.io/annotations-migration-resource-id",
            ] {
                r.remove_annotation(a);
            }
        }
        Ok(acc.res)
    }

    fn accumulate_target(&mut self, t: &Target, acc: Acc) -> Result<Acc> {
        let mut acc = acc;
        self.accumulate_resources(t, &mut acc, &t.k.resources)?;
        // transformer configurations
        // Custom configurations come first and the defaults are merged into
        // them, so a custom spec shadows a default one for the same path
        // (what kustomize v5.7.1 does, observably).
        let mut cfg = TransformerConfig::default();
        if !t.k.configurations.is_empty() {
            for c in &t.k.configurations {
                let (file, text) = self.read_text(&t.root, c)?;
                let tc = TransformerConfig::parse(&text).map_err(|msg| Error::Field {
                    file,
                    field: "configurations".into(),
                    msg,
                })?;
                cfg.merge(&tc).map_err(Error::other)?;
            }
        }
        cfg.merge(&TransformerConfig::default_config())
            .map_err(Error::other)?;
        acc.config.merge(&cfg).map_err(Error::other)?;
        for c in &t.k.crds {
            let (file, text) = self.read_text(&t.root, c)?;
            let tc = crate::crds::config_from_crds(&text).map_err(|msg| Error::Field {
                file,
                field: "crds".into(),
                msg,
            })?;
            acc.config.merge(&tc).map_err(Error::other)?;
        }
        self.run_generators(t, &mut acc)?;
        for c in &t.k.components {
            acc = self.accumulate_dir(t, acc, c, true)?;
        }
        self.run_transformers(t, &mut acc)?;
        if !t.k.validators.is_empty() {
            return Err(Error::Unsupported(
                "validators (plugins) are not supported".into(),
            ));
        }
        let incoming = t.k.vars.clone();
        vars::merge_vars(&mut acc.res, &mut acc.vars, &incoming).map_err(|e| Error::Field {
            file: t.root.join(&t.kust_file),
            field: "vars".into(),
            msg: e,
        })?;
        Ok(acc)
    }

    fn accumulate_resources(&mut self, t: &Target, acc: &mut Acc, paths: &[String]) -> Result<()> {
        for p in paths {
            let abs = clean(&t.root.join(p));
            if self.fs.is_file(&abs) {
                let (file, text) = self.read_text(&t.root, p)?;
                let mut rs = parse_resources(&text, &file)?;
                if let Some(o) = &t.origin {
                    let o = o.append(p);
                    for r in rs.iter_mut() {
                        r.set_annotation(ORIGIN_ANNOTATION, &o.render());
                    }
                }
                acc.append_all(rs).map_err(|e| match e {
                    Error::DuplicateId(id) => Error::Other(format!(
                        "merging resources from '{p}': may not add resource with an already registered id: {id}"
                    )),
                    e => e,
                })?;
            } else if self.fs.is_dir(&abs) {
                let taken = std::mem::take(acc);
                *acc = self.accumulate_dir(t, taken, p, false)?;
            } else if is_remote(p) {
                return Err(Error::Unsupported(format!(
                    "{}: remote resource '{p}' is not supported (ferroflux builds local directories only, like flux with --no-remote-bases)",
                    t.root.join(&t.kust_file).display()
                )));
            } else {
                return Err(Error::MissingResource {
                    root: t.root.clone(),
                    path: p.clone(),
                    msg: "no such file or directory".into(),
                });
            }
        }
        Ok(())
    }

    fn accumulate_dir(&mut self, t: &Target, acc: Acc, p: &str, component: bool) -> Result<Acc> {
        let abs = clean(&t.root.join(p));
        if !self.fs.is_dir(&abs) {
            return Err(Error::MissingResource {
                root: t.root.clone(),
                path: p.to_string(),
                msg: "not a directory".into(),
            });
        }
        for s in &self.stack {
            if s.starts_with(&abs) {
                return Err(Error::Cycle(abs));
            }
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::TooDeep(MAX_DEPTH));
        }
        let mut sub = self.load_target(&abs, Some(t))?;
        if let Some(o) = &t.origin {
            sub.origin = Some(o.append(p));
        }
        if component && sub.k.kind != "Component" {
            return Err(Error::other(format!(
                "expected kind 'Component' for path '{}' but got '{}'",
                abs.display(),
                sub.k.kind
            )));
        }
        if !component && sub.k.kind == "Component" {
            return Err(Error::other(format!(
                "expected kind != 'Component' for path '{}'",
                abs.display()
            )));
        }
        self.stack.push(abs.clone());
        let r = if component {
            self.accumulate_target(&sub, acc)
        } else {
            self.accumulate_target(&sub, Acc::default())
                .and_then(|sub_acc| {
                    let mut acc = acc;
                    acc.merge(sub_acc)?;
                    Ok(acc)
                })
        };
        self.stack.pop();
        r
    }

    fn generator_origin(t: &Target, kind: &str) -> Option<Origin> {
        t.origin.as_ref().map(|o| Origin {
            path: String::new(),
            configured_in: clean(&Path::new(&o.path).join(&t.kust_file))
                .to_string_lossy()
                .into_owned(),
            configured_by: Some(("builtin".into(), kind.into(), String::new(), String::new())),
        })
    }

    fn run_generators(&mut self, t: &Target, acc: &mut Acc) -> Result<()> {
        acc.ids = None;
        let mut gens: Vec<(Resource, Option<Origin>)> = Vec::new();
        let gopts = t.k.generator_options.as_ref();
        for (secret, list) in [
            (false, &t.k.config_map_generator),
            (true, &t.k.secret_generator),
        ] {
            let kind = if secret {
                "SecretGenerator"
            } else {
                "ConfigMapGenerator"
            };
            for args in list {
                let opts = generators::merge_options(args.options.as_ref(), gopts);
                let r = self.generate(t, args, opts.as_ref(), secret)?;
                gens.push((r, Self::generator_origin(t, kind)));
            }
        }
        // generators configured as plugins
        if !t.k.generators.is_empty() {
            let configs = self.plugin_configs(t, &t.k.generators)?;
            for c in configs {
                for r in self.run_generator_plugin(t, &c)? {
                    let o = c
                        .annotation(ORIGIN_ANNOTATION)
                        .and_then(|_| t.origin.as_ref().map(|_| plugin_origin(&c)));
                    gens.push((r, o));
                }
            }
        }
        for (mut r, o) in gens {
            if let Some(o) = o {
                set_origin_if_absent(&mut r, &o);
            }
            acc.absorb(r)?;
        }
        Ok(())
    }

    fn generate(
        &self,
        t: &Target,
        args: &GeneratorArgs,
        opts: Option<&GeneratorOptions>,
        secret: bool,
    ) -> Result<Resource> {
        let mut load = |p: &str| -> Result<Vec<u8>> { self.read(&t.root, p).map(|(_, d)| d) };
        let pairs = generators::load_pairs(args, &mut load)?;
        generators::generate(args, opts, secret, pairs).map_err(|msg| Error::Field {
            file: t.root.join(&t.kust_file),
            field: if secret {
                "secretGenerator"
            } else {
                "configMapGenerator"
            }
            .into(),
            msg,
        })
    }

    /// The plugin configuration objects named by `generators:`/`transformers:`.
    fn plugin_configs(&mut self, t: &Target, entries: &[String]) -> Result<Vec<Resource>> {
        let mut tmp = Acc::default();
        let mut paths = Vec::new();
        for e in entries {
            match parse_resources(e, &t.root.join(&t.kust_file)) {
                Ok(rs) if !rs.is_empty() && e.contains('\n') => {
                    let mut rs = rs;
                    if let Some(o) = &t.origin {
                        let o = o.append(&t.kust_file);
                        for r in rs.iter_mut() {
                            r.set_annotation(ORIGIN_ANNOTATION, &o.render());
                        }
                    }
                    tmp.append_all(rs)?;
                }
                _ => paths.push(e.clone()),
            }
        }
        self.accumulate_resources(t, &mut tmp, &paths)?;
        Ok(tmp.res)
    }

    fn run_generator_plugin(&mut self, t: &Target, c: &Resource) -> Result<Vec<Resource>> {
        check_builtin(c)?;
        let kind = c.kind();
        let cfg = &c.obj;
        match kind.as_str() {
            "ConfigMapGenerator" | "SecretGenerator" => {
                let mut args: GeneratorArgs =
                    plugin_config(cfg, &["apiVersion", "kind", "metadata"])?;
                if args.name.is_empty() {
                    args.name = c.name();
                }
                if args.namespace.is_empty() {
                    args.namespace = c.namespace();
                }
                if !args.env.is_empty() {
                    let e = std::mem::take(&mut args.env);
                    args.envs.push(e);
                }
                let opts = args.options.clone();
                Ok(vec![self.generate(
                    t,
                    &args,
                    opts.as_ref(),
                    kind == "SecretGenerator",
                )?])
            }
            "IAMPolicyGenerator" => {
                let mut cfg = cfg.clone();
                crate::kustomization::normalize_keys(&mut cfg, 0);
                let cloud = y::get_str(&cfg, &["cloud"]);
                if cloud != "gke" {
                    return Err(Error::other(format!(
                        "cloud provider {cloud} not supported yet"
                    )));
                }
                let sa_name = y::get_str(&cfg, &["serviceAccount", "name"]);
                let project = y::get_str(&cfg, &["serviceAccount", "projectId"]);
                let k8s_name = y::get_str(&cfg, &["kubernetesService", "name"]);
                let k8s_ns = y::get_str(&cfg, &["kubernetesService", "namespace"]);
                let mut obj = Value::Mapping(Mapping::new());
                y::set_path(&mut obj, &["apiVersion"], y::key("v1"));
                y::set_path(&mut obj, &["kind"], y::key("ServiceAccount"));
                y::set_path(
                    &mut obj,
                    &["metadata", "annotations", "iam.gke.io/gcp-service-account"],
                    Value::String(format!("{sa_name}@{project}.iam.gserviceaccount.com")),
                );
                y::set_path(&mut obj, &["metadata", "name"], y::key(&k8s_name));
                if !k8s_ns.is_empty() {
                    y::set_path(&mut obj, &["metadata", "namespace"], y::key(&k8s_ns));
                }
                Ok(vec![Resource::new(obj)])
            }
            other => Err(Error::Unsupported(format!(
                "generator plugin kind '{other}' is not supported"
            ))),
        }
    }

    fn run_transformers(&mut self, t: &Target, acc: &mut Acc) -> Result<()> {
        acc.ids = None;
        let k = &t.k;
        let tc = acc.config.clone();
        let kfile = t.root.join(&t.kust_file);
        let ferr = |field: &str, msg: String| Error::Field {
            file: kfile.clone(),
            field: field.into(),
            msg,
        };
        let mut list: Vec<(Tr, &str)> = Vec::new();
        if !k.patches_strategic_merge.is_empty() {
            list.push((
                Tr::Psm(k.patches_strategic_merge.clone(), String::new()),
                "PatchStrategicMergeTransformer",
            ));
        }
        for p in &k.patches {
            list.push((Tr::Patch(p.clone()), "PatchTransformer"));
        }
        if !k.namespace.is_empty() {
            list.push((
                Tr::Namespace(
                    k.namespace.clone(),
                    tc.name_space.clone(),
                    SubjectMode::DefaultOnly,
                    false,
                ),
                "NamespaceTransformer",
            ));
        }
        if !k.name_prefix.is_empty() {
            list.push((
                Tr::Prefix(k.name_prefix.clone(), tc.name_prefix.clone()),
                "PrefixTransformer",
            ));
        }
        if !k.name_suffix.is_empty() {
            list.push((
                Tr::Suffix(k.name_suffix.clone(), tc.name_suffix.clone()),
                "SuffixTransformer",
            ));
        }
        if !k.labels.is_empty() || !k.common_labels.is_empty() {
            for l in &k.labels {
                let mut fss: Vec<FieldSpec> = l.fields.clone();
                fieldspec::merge_all(&mut fss, &tc.labels).map_err(|e| ferr("labels", e))?;
                if l.include_selectors {
                    fieldspec::merge_all(&mut fss, &tc.common_labels)
                        .map_err(|e| ferr("labels", e))?;
                } else {
                    if l.include_templates {
                        fieldspec::merge_all(&mut fss, &tc.template_labels)
                            .map_err(|e| ferr("labels", e))?;
                    }
                    fieldspec::merge_one(
                        &mut fss,
                        FieldSpec {
                            path: "metadata/labels".into(),
                            create: true,
                            ..Default::default()
                        },
                    )
                    .map_err(|e| ferr("labels", e))?;
                }
                let pairs = l
                    .pairs
                    .iter()
                    .map(|(a, b)| (a.clone(), b.0.clone()))
                    .collect();
                list.push((Tr::Entries(pairs, fss), "LabelTransformer"));
            }
            let pairs = k
                .common_labels
                .iter()
                .map(|(a, b)| (a.clone(), b.0.clone()))
                .collect();
            list.push((
                Tr::Entries(pairs, tc.common_labels.clone()),
                "LabelTransformer",
            ));
        }
        if !k.common_annotations.is_empty() {
            let pairs = k
                .common_annotations
                .iter()
                .map(|(a, b)| (a.clone(), b.0.clone()))
                .collect();
            list.push((
                Tr::Entries(pairs, tc.common_annotations.clone()),
                "AnnotationsTransformer",
            ));
        }
        for p in &k.patches_json6902 {
            list.push((
                Tr::Json6902(p.target.clone(), p.path.clone(), p.patch.clone()),
                "PatchJson6902Transformer",
            ));
        }
        for r in &k.replicas {
            list.push((
                Tr::Replicas(r.clone(), tc.replicas.clone()),
                "ReplicaCountTransformer",
            ));
        }
        for i in &k.images {
            list.push((
                Tr::Image(i.clone(), tc.images.clone()),
                "ImageTagTransformer",
            ));
        }
        if !k.replacements.is_empty() {
            let mut reps = Vec::new();
            for r in &k.replacements {
                reps.extend(self.load_replacement(t, r)?);
            }
            list.push((Tr::Replacements(reps), "ReplacementTransformer"));
        }
        for (tr, kind) in list {
            self.apply(t, acc, &tr).map_err(|e| match e {
                Error::Transform { .. }
                | Error::MissingResource { .. }
                | Error::OutsideRoot { .. } => e,
                other => ferr(kind, other.to_string()),
            })?;
            if let Some(o) = Self::generator_origin(t, kind) {
                add_transformation(&mut acc.res, &o);
            }
            acc.drop_empties();
        }
        if !k.transformers.is_empty() {
            let configs = self.plugin_configs(t, &k.transformers)?;
            for c in configs {
                let tr = self.transformer_from_config(t, &c)?;
                self.apply(t, acc, &tr)?;
                if t.origin.is_some() && c.annotation(ORIGIN_ANNOTATION).is_some() {
                    add_transformation(&mut acc.res, &plugin_origin(&c));
                }
                acc.drop_empties();
            }
        }
        Ok(())
    }

    fn load_replacement(&self, t: &Target, r: &Value) -> Result<Vec<Value>> {
        if let Some(p) = y::get(r, "path").and_then(scalar_str) {
            let (file, text) = self.read_text(&t.root, &p)?;
            let docs = y::parse_docs(&text).map_err(|msg| Error::MalformedYaml { file, msg })?;
            let mut out = Vec::new();
            for d in docs {
                match d {
                    Value::Sequence(items) => out.extend(items),
                    other => out.push(other),
                }
            }
            return Ok(out);
        }
        Ok(vec![r.clone()])
    }

    fn transformer_from_config(&mut self, t: &Target, c: &Resource) -> Result<Tr> {
        check_builtin(c)?;
        let mut normalized = c.obj.clone();
        crate::kustomization::normalize_keys(&mut normalized, 0);
        let cfg = &normalized;
        let kind = c.kind();
        let std = ["apiVersion", "kind", "metadata"];
        let fss = |v: &Value| -> Result<Vec<FieldSpec>> {
            match y::get(v, "fieldSpecs") {
                Some(f) => serde_yaml::from_value(f.clone())
                    .map_err(|e| Error::other(format!("{kind}: fieldSpecs: {e}"))),
                None => Ok(vec![]),
            }
        };
        let strmap = |v: Option<&Value>| -> Vec<(String, String)> {
            match v {
                Some(Value::Mapping(m)) => m
                    .iter()
                    .map(|(a, b)| {
                        (
                            scalar_str(a).unwrap_or_default(),
                            scalar_str(b).unwrap_or_default(),
                        )
                    })
                    .collect(),
                _ => vec![],
            }
        };
        let field = |k: &str| y::get(cfg, k).and_then(scalar_str).unwrap_or_default();
        let tr = match kind.as_str() {
            "LabelTransformer" => Tr::Entries(strmap(y::get(cfg, "labels")), fss(cfg)?),
            "AnnotationsTransformer" => Tr::Entries(strmap(y::get(cfg, "annotations")), fss(cfg)?),
            "PrefixTransformer" | "PrefixSuffixTransformer"
                if !field("prefix").is_empty() || kind == "PrefixTransformer" =>
            {
                Tr::Prefix(field("prefix"), fss(cfg)?)
            }
            "SuffixTransformer" | "PrefixSuffixTransformer" => {
                Tr::Suffix(field("suffix"), fss(cfg)?)
            }
            "NamespaceTransformer" => {
                let ns = y::get_str(cfg, &["metadata", "namespace"]);
                let mode = match field("setRoleBindingSubjects").as_str() {
                    "" | "defaultOnly" => SubjectMode::DefaultOnly,
                    "allServiceAccounts" => SubjectMode::AllServiceAccounts,
                    "none" => SubjectMode::None,
                    other => {
                        return Err(Error::other(format!(
                            "invalid value \"{other}\" for setRoleBindingSubjects: must be one of \"defaultOnly\", \"none\" or \"allServiceAccounts\""
                        )));
                    }
                };
                let unset = y::get(cfg, "unsetOnly")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                Tr::Namespace(ns, fss(cfg)?, mode, unset)
            }
            "ImageTagTransformer" => {
                let img: Image = match y::get(cfg, "imageTag") {
                    Some(v) => serde_yaml::from_value(v.clone())
                        .map_err(|e| Error::other(format!("ImageTagTransformer: {e}")))?,
                    None => Image::default(),
                };
                Tr::Image(img, fss(cfg)?)
            }
            "ReplicaCountTransformer" => {
                let r: Replica = match y::get(cfg, "replica") {
                    Some(v) => serde_yaml::from_value(v.clone())
                        .map_err(|e| Error::other(format!("ReplicaCountTransformer: {e}")))?,
                    None => Replica::default(),
                };
                Tr::Replicas(r, fss(cfg)?)
            }
            "PatchTransformer" => {
                let p: Patch = plugin_config(cfg, &std)?;
                Tr::Patch(p)
            }
            "PatchStrategicMergeTransformer" => {
                let paths: Vec<String> = match y::get(cfg, "paths") {
                    Some(Value::Sequence(s)) => s.iter().filter_map(scalar_str).collect(),
                    _ => vec![],
                };
                let patches = field("patches");
                if paths.is_empty() && patches.is_empty() {
                    return Err(Error::other("empty file path and empty patch content"));
                }
                Tr::Psm(paths, patches)
            }
            "PatchJson6902Transformer" => {
                let target: Option<Selector> = match y::get(cfg, "target") {
                    Some(v) => Some(
                        serde_yaml::from_value(v.clone())
                            .map_err(|e| Error::other(format!("PatchJson6902Transformer: {e}")))?,
                    ),
                    None => None,
                };
                Tr::Json6902(target, field("path"), field("jsonOp"))
            }
            "ReplacementTransformer" => {
                let mut reps = Vec::new();
                if let Some(Value::Sequence(rs)) = y::get(cfg, "replacements") {
                    for r in rs {
                        reps.extend(self.load_replacement(t, r)?);
                    }
                }
                Tr::Replacements(reps)
            }
            "SortOrderTransformer" => {
                // kustomize cannot load it as a transformer either
                return Err(Error::Unsupported(
                    "unable to load builtin SortOrderTransformer (use sortOptions in the kustomization)".into(),
                ));
            }
            "HashTransformer" => Tr::Hash,
            "ValueAddTransformer" => {
                let mut value = field("value").trim().to_string();
                if value.is_empty() {
                    value = t
                        .root
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                }
                let mut targets =
                    crate::valueadd::targets_from(y::get(cfg, "targets")).map_err(Error::other)?;
                let tfp = field("targetFilePath");
                if !tfp.is_empty() {
                    let (_, text) = self.read_text(&t.root, &tfp)?;
                    let v: Value = serde_yaml::from_str(&text).map_err(Error::other)?;
                    targets.extend(
                        crate::valueadd::targets_from(y::get(&v, "targets"))
                            .map_err(Error::other)?,
                    );
                }
                Tr::ValueAdd(value, targets)
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "transformer plugin kind '{other}' is not supported"
                )));
            }
        };
        Ok(tr)
    }

    fn apply(&mut self, t: &Target, acc: &mut Acc, tr: &Tr) -> Result<()> {
        let res = &mut acc.res;
        fn e(ctx: &'static str) -> impl Fn(String) -> Error {
            move |m: String| Error::transform(ctx, m)
        }
        match tr {
            Tr::Namespace(ns, fss, mode, unset) => {
                transforms::namespace(res, ns, fss, *mode, *unset).map_err(e("namespace"))
            }
            Tr::Prefix(p, fss) => {
                transforms::prefix_suffix(res, p, fss, true).map_err(e("namePrefix"))
            }
            Tr::Suffix(s, fss) => {
                transforms::prefix_suffix(res, s, fss, false).map_err(e("nameSuffix"))
            }
            Tr::Entries(pairs, fss) => {
                transforms::set_entries(res, pairs, fss).map_err(e("labels/annotations"))
            }
            Tr::Image(img, fss) => transforms::images(res, img, fss).map_err(e("images")),
            Tr::Replicas(r, fss) => transforms::replicas(res, r, fss).map_err(e("replicas")),
            Tr::Replacements(reps) => replacements::apply(res, reps).map_err(e("replacements")),
            Tr::Hash => {
                for r in res.iter_mut() {
                    if r.needs_hash {
                        let h = generators::hash(&r.obj);
                        r.store_previous_id();
                        let n = format!("{}-{}", r.name(), h);
                        r.set_name(&n);
                        r.needs_hash = false;
                    }
                }
                Ok(())
            }
            Tr::ValueAdd(value, targets) => {
                crate::valueadd::apply(res, value, targets).map_err(e("ValueAddTransformer"))
            }
            Tr::Psm(paths, inline) => {
                let mut patches = Vec::new();
                for p in paths {
                    let inline_rs = if p.contains('\n') || p.trim_start().starts_with('{') {
                        parse_resources(p, &t.root.join(&t.kust_file)).ok()
                    } else {
                        None
                    };
                    match inline_rs {
                        Some(rs) => patches.extend(rs),
                        None => {
                            let (file, text) = self.read_text(&t.root, p)?;
                            patches.extend(parse_resources(&text, &file)?);
                        }
                    }
                }
                if !inline.is_empty() {
                    patches.extend(parse_resources(inline, &t.root.join(&t.kust_file))?);
                }
                if patches.is_empty() {
                    return Err(Error::other(format!(
                        "patch appears to be empty; files={paths:?}, Patch={inline}"
                    )));
                }
                for p in patches {
                    let id = p.org_id();
                    let matches: Vec<usize> = res
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| {
                            !r.is_empty_obj() && r.all_ids().iter().any(|x| id.equals(x))
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if matches.len() != 1 {
                        return Err(Error::transform(
                            "patchesStrategicMerge",
                            format!(
                                "{} matches for Id {id}; failed to find unique target for patch {id}",
                                if matches.is_empty() { "no" } else { "multiple" }
                            ),
                        ));
                    }
                    patch::apply_sm_patch(&mut res[matches[0]], &p, &t.schemas)
                        .map_err(e("patchesStrategicMerge"))?;
                }
                Ok(())
            }
            Tr::Patch(p) => self.apply_patch(t, res, p),
            Tr::Json6902(target, path, op) => {
                let text = if !path.is_empty() {
                    self.read_text(&t.root, path)?.1
                } else {
                    op.clone()
                };
                let target = target
                    .clone()
                    .ok_or_else(|| Error::other("must specify a target for JSON patch"))?;
                let ops = patch::parse_json_patch(&text).map_err(e("patchesJson6902"))?;
                let sel = patch::select(res, &target).map_err(e("patchesJson6902"))?;
                for i in sel {
                    res[i].store_previous_id();
                    patch::apply_json_patch(&mut res[i].obj, &ops).map_err(e("patchesJson6902"))?;
                }
                Ok(())
            }
        }
    }

    fn apply_patch(&mut self, t: &Target, res: &mut [Resource], p: &Patch) -> Result<()> {
        let text = p.patch.trim().to_string();
        let (text, source) = match (text.is_empty(), p.path.is_empty()) {
            (true, true) => return Err(Error::other("must specify one of patch and path")),
            (false, false) => {
                return Err(Error::other("patch and path can't be set at the same time"));
            }
            (false, true) => (text.clone(), format!("[patch: {text:?}]")),
            (true, false) => (
                self.read_text(&t.root, &p.path)?.1,
                format!("[path: {:?}]", p.path),
            ),
        };
        let sm = parse_resources(&text, &t.root.join(&t.kust_file));
        let json = patch::parse_json_patch(&text);
        let sm_ok = matches!(&sm, Ok(v) if !v.is_empty());
        if sm_ok && matches!(&json, Ok(v) if !v.is_empty()) {
            return Err(Error::other(format!(
                "illegally qualifies as both an SM and JSON patch: {source}"
            )));
        }
        if sm_ok {
            let mut patches = sm.unwrap_or_default();
            for pp in patches.iter_mut() {
                pp.allow_name_change = p.options.get("allowNameChange").copied().unwrap_or(false);
                pp.allow_kind_change = p.options.get("allowKindChange").copied().unwrap_or(false);
            }
            if let Some(target) = &p.target {
                if patches.len() > 1 {
                    return Err(Error::other(format!(
                        "Multiple Strategic-Merge Patches in one `patches` entry is not allowed to set `patches.target` field: {source}"
                    )));
                }
                let sel = patch::select(res, target).map_err(|m| Error::transform("patches", m))?;
                for i in sel {
                    patch::apply_sm_patch(&mut res[i], &patches[0], &t.schemas)
                        .map_err(|m| Error::transform("patches", m))?;
                }
                return Ok(());
            }
            for pp in &patches {
                let id = pp.org_id();
                let matches: Vec<usize> = res
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !r.is_empty_obj() && r.all_ids().iter().any(|x| id.equals(x)))
                    .map(|(i, _)| i)
                    .collect();
                if matches.len() != 1 {
                    return Err(Error::transform(
                        "patches",
                        format!(
                            "no resource matches strategic merge patch \"{id}\": {} matches for Id {id}; failed to find unique target for patch {id}",
                            if matches.is_empty() { "no" } else { "multiple" }
                        ),
                    ));
                }
                patch::apply_sm_patch(&mut res[matches[0]], pp, &t.schemas)
                    .map_err(|m| Error::transform("patches", m))?;
            }
            return Ok(());
        }
        let ops = match json {
            Ok(o) => o,
            Err(_) => {
                if let Err(e) = sm {
                    return Err(Error::other(format!(
                        "unable to parse SM or JSON patch from {source}: {e}"
                    )));
                }
                return Err(Error::other(format!(
                    "unable to parse SM or JSON patch from {source}"
                )));
            }
        };
        let Some(target) = &p.target else {
            return Err(Error::other(format!(
                "must specify a target for JSON patch {source}"
            )));
        };
        let sel = patch::select(res, target).map_err(|m| Error::transform("patches", m))?;
        for i in sel {
            res[i].store_previous_id();
            patch::apply_json_patch(&mut res[i].obj, &ops)
                .map_err(|m| Error::transform("patches", m))?;
        }
        Ok(())
    }
}

fn plugin_origin(c: &Resource) -> Origin {
    let path = c
        .annotation(ORIGIN_ANNOTATION)
        .and_then(|a| serde_yaml::from_str::<Value>(&a).ok())
        .map(|v| y::get_str(&v, &["path"]))
        .unwrap_or_default();
    Origin {
        path: String::new(),
        configured_in: path,
        configured_by: Some((c.api_version(), c.kind(), c.name(), c.namespace())),
    }
}

fn check_builtin(c: &Resource) -> Result<()> {
    let g = c.gvk();
    if !(g.group.is_empty() && g.version == "builtin") {
        return Err(Error::Unsupported(format!(
            "plugin {}/{} ({}) is not a builtin plugin; exec, container, starlark and Go plugins are not supported",
            c.api_version(),
            c.kind(),
            c.name()
        )));
    }
    Ok(())
}

fn plugin_config<T: serde::de::DeserializeOwned>(cfg: &Value, drop: &[&str]) -> Result<T> {
    let mut m = match cfg {
        Value::Mapping(m) => m.clone(),
        _ => Mapping::new(),
    };
    for d in drop {
        m.remove(*d);
    }
    let mut v = Value::Mapping(m);
    crate::kustomization::normalize_keys(&mut v, 0);
    let Value::Mapping(m) = v else {
        return Err(Error::other("plugin config must be a mapping"));
    };
    serde_yaml::from_value(Value::Mapping(m))
        .map_err(|e| Error::other(format!("plugin config: {e}")))
}

fn apply_sort_options(res: &mut [Resource], so: &SortOptions) -> Result<()> {
    match so.order.as_str() {
        "legacy" => {
            transforms::legacy_sort(res, so.legacy_sort_options.as_ref());
            Ok(())
        }
        "fifo" | "" => {
            if so.legacy_sort_options.is_some() {
                return Err(Error::other(format!(
                    "the field 'sortOptions.legacySortOptions' is set but the selected sort order is '{}', not 'legacy'",
                    so.order
                )));
            }
            if so.order.is_empty() {
                return Err(Error::other(
                    "the field 'sortOptions.order' must be one of [fifo, legacy]",
                ));
            }
            Ok(())
        }
        _ => Err(Error::other(
            "the field 'sortOptions.order' must be one of [fifo, legacy]",
        )),
    }
}

enum Tr {
    Namespace(String, Vec<FieldSpec>, SubjectMode, bool),
    Prefix(String, Vec<FieldSpec>),
    Suffix(String, Vec<FieldSpec>),
    Entries(Vec<(String, String)>, Vec<FieldSpec>),
    Image(Image, Vec<FieldSpec>),
    Replicas(Replica, Vec<FieldSpec>),
    Replacements(Vec<Value>),
    Psm(Vec<String>, String),
    Patch(Patch),
    Json6902(Option<Selector>, String, String),
    Hash,
    ValueAdd(String, Vec<crate::valueadd::Target>),
}
