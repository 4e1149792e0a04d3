//! The simple builtin transformers: namespace, name prefix/suffix, labels,
//! annotations, images, replicas, the name hash, and the output sort.

use serde_yaml::{Mapping, Value};

use crate::fieldspec::{self, Create, fs_gvk};
use crate::kustomization::{FieldSpec, Image, LegacySortOptions, Replica};
use crate::resid::{Gvk, ResId};
use crate::resource::Resource;
use crate::yaml::{self as y, scalar_str};

type R<T> = Result<T, String>;

fn set_scalar(node: &mut Value, v: &str) {
    *node = Value::String(v.to_string());
}

// ------------------------------------------------------------- namespace

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectMode {
    DefaultOnly,
    AllServiceAccounts,
    None,
}

pub fn namespace(
    res: &mut [Resource],
    ns: &str,
    fss: &[FieldSpec],
    mode: SubjectMode,
    unset_only: bool,
) -> R<()> {
    if ns.is_empty() {
        return Ok(());
    }
    for r in res.iter_mut() {
        if r.is_empty_obj() {
            continue;
        }
        r.store_previous_id();
        let av = r.api_version();
        let gvk = r.gvk();
        let mut setter = |node: &mut Value| -> R<()> {
            if unset_only
                && let Some(s) = scalar_str(node)
                && !s.is_empty()
            {
                return Ok(());
            }
            set_scalar(node, ns);
            Ok(())
        };
        let mut fss: Vec<FieldSpec> = fss
            .iter()
            .filter(|f| f.path != "metadata/namespace" && (av == "v1" || f.path != "metadata/name"))
            .cloned()
            .collect();
        if !gvk.is_cluster_scoped() {
            let meta = FieldSpec {
                path: "metadata/namespace".into(),
                create: true,
                ..Default::default()
            };
            fieldspec::apply(&mut r.obj, &meta, Create::Scalar, &mut setter)?;
        }
        if gvk.kind == "RoleBinding" || gvk.kind == "ClusterRoleBinding" {
            fss.retain(|f| {
                !((f.kind == "RoleBinding" || f.kind == "ClusterRoleBinding")
                    && f.path == "subjects/namespace")
            });
            if mode != SubjectMode::None
                && let Some(Value::Sequence(subjects)) = y::get_mut(&mut r.obj, "subjects")
            {
                for s in subjects.iter_mut() {
                    let hit = match mode {
                        SubjectMode::DefaultOnly => y::get_str(s, &["name"]) == "default",
                        SubjectMode::AllServiceAccounts => {
                            y::get_str(s, &["kind"]) == "ServiceAccount"
                        }
                        SubjectMode::None => false,
                    };
                    if hit && let Value::Mapping(m) = s {
                        let cur = m.get("namespace").and_then(scalar_str);
                        if !(unset_only && cur.is_some_and(|c| !c.is_empty())) {
                            m.insert(y::key("namespace"), Value::String(ns.into()));
                        }
                    }
                }
            }
        }
        for fs in &fss {
            fieldspec::apply(&mut r.obj, fs, Create::Scalar, &mut setter)
                .map_err(|e| format!("namespace transformation failed: {e}"))?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for r in res.iter().filter(|r| !r.is_empty_obj()) {
        let id = r.cur_id();
        if !seen.insert((
            id.gvk.clone(),
            id.name.clone(),
            id.effective_namespace().to_string(),
        )) {
            return Err(format!(
                "namespace transformation produces ID conflict: {id}"
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------ prefix / suffix

pub fn prefix_suffix(
    res: &mut [Resource],
    value: &str,
    fss: &[FieldSpec],
    is_prefix: bool,
) -> R<()> {
    let skip = [
        Gvk::new("", "", "CustomResourceDefinition"),
        Gvk::new("apiregistration.k8s.io", "", "APIService"),
        Gvk::new("", "", "Namespace"),
    ];
    for r in res.iter_mut() {
        let id = r.org_id();
        if skip.iter().any(|s| id.gvk.is_selected(s)) {
            continue;
        }
        for fs in fss {
            if !id.gvk.is_selected(&fs_gvk(fs)) {
                continue;
            }
            if fs.path == "metadata/name" && !value.is_empty() {
                if is_prefix {
                    r.prefixes.push(value.to_string());
                } else {
                    r.suffixes.push(value.to_string());
                }
                r.store_previous_id();
            }
            let mut setter = |node: &mut Value| -> R<()> {
                let cur = scalar_str(node).unwrap_or_default();
                let new = if is_prefix {
                    format!("{value}{cur}")
                } else {
                    format!("{cur}{value}")
                };
                set_scalar(node, &new);
                Ok(())
            };
            fieldspec::apply(&mut r.obj, fs, Create::Scalar, &mut setter)?;
        }
    }
    Ok(())
}

// ------------------------------------------------- labels / annotations

/// Sets each key/value in the maps the field specs address (creating them
/// where the spec says so).
pub fn set_entries(res: &mut [Resource], pairs: &[(String, String)], fss: &[FieldSpec]) -> R<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut pairs = pairs.to_vec();
    pairs.sort();
    for r in res.iter_mut() {
        for (k, v) in &pairs {
            for fs in fss {
                let mut setter = |node: &mut Value| -> R<()> {
                    match node {
                        Value::Mapping(m) => {
                            m.insert(y::key(k), Value::String(v.clone()));
                            Ok(())
                        }
                        Value::Null => {
                            let mut m = Mapping::new();
                            m.insert(y::key(k), Value::String(v.clone()));
                            *node = Value::Mapping(m);
                            Ok(())
                        }
                        _ => Err("wrong node kind: expected MappingNode".into()),
                    }
                };
                fieldspec::apply(&mut r.obj, fs, Create::Map, &mut setter)?;
            }
        }
    }
    Ok(())
}

// --------------------------------------------------------------- images

pub fn image_matches(s: &str, name: &str) -> bool {
    let pat = format!(
        "^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$",
        name
    );
    regex::Regex::new(&pat).is_ok_and(|re| re.is_match(s))
}

pub fn split_image(image: &str) -> (String, String, String) {
    let (search, slash) = match image.find('/') {
        Some(i) if i > 0 => (&image[i..], i),
        _ => (image, 0),
    };
    let id = search.find('@');
    let ic = search.find(':');
    match (id, ic) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (Some(d), c) if c.is_none() || d < c.unwrap_or(usize::MAX) => {
            let d = d + slash;
            (
                image[..d].to_string(),
                String::new(),
                image[d + 1..].to_string(),
            )
        }
        (Some(d), Some(c)) => {
            let (d, c) = (d + slash, c + slash);
            (
                image[..c].to_string(),
                image[c + 1..d].to_string(),
                image[d + 1..].to_string(),
            )
        }
        (None, Some(c)) => {
            let c = c + slash;
            (
                image[..c].to_string(),
                image[c + 1..].to_string(),
                String::new(),
            )
        }
        _ => (image.to_string(), String::new(), String::new()),
    }
}

fn update_image(node: &mut Value, img: &Image) -> R<()> {
    let value = match &*node {
        Value::String(s) => s.clone(),
        Value::Null => return Ok(()),
        Value::Mapping(_) | Value::Sequence(_) => {
            return Err("wrong node kind: expected ScalarNode".into());
        }
        other => scalar_str(other).unwrap_or_default(),
    };
    if !image_matches(&value, &img.name) {
        return Ok(());
    }
    let (mut name, mut tag, mut digest) = split_image(&value);
    if !img.new_name.is_empty() {
        name = img.new_name.clone();
    }
    let new_tag = &img.new_tag.0;
    if !new_tag.is_empty() && !img.digest.is_empty() {
        tag = new_tag.clone();
        digest = img.digest.clone();
    } else if !new_tag.is_empty() {
        tag = new_tag.clone();
        digest.clear();
    } else if !img.digest.is_empty() {
        tag.clear();
        digest = img.digest.clone();
    } else if !img.tag_suffix.is_empty() {
        tag.push_str(&img.tag_suffix);
        digest.clear();
    }
    if !tag.is_empty() {
        name = format!("{name}:{tag}");
    }
    if !digest.is_empty() {
        name = format!("{name}@{digest}");
    }
    *node = Value::String(name);
    Ok(())
}

fn legacy_image_walk(node: &mut Value, img: &Image) -> R<()> {
    match node {
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                legacy_image_walk(v, img)?;
                let key = scalar_str(k).unwrap_or_default();
                if (key == "containers" || key == "initContainers")
                    && let Value::Sequence(items) = v
                {
                    for it in items.iter_mut() {
                        if let Some(imgnode) = y::get_mut(it, "image") {
                            update_image(imgnode, img)?;
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for it in items.iter_mut() {
                legacy_image_walk(it, img)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub fn images(res: &mut [Resource], img: &Image, fss: &[FieldSpec]) -> R<()> {
    for r in res.iter_mut() {
        if r.kind() == "CustomResourceDefinition" {
            continue;
        }
        legacy_image_walk(&mut r.obj, img)?;
        for fs in fss {
            let mut setter = |node: &mut Value| update_image(node, img);
            fieldspec::apply(&mut r.obj, fs, Create::No, &mut setter)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------- replicas

pub fn replicas(res: &mut [Resource], rep: &Replica, fss: &[FieldSpec]) -> R<()> {
    let mut found = false;
    for fs in fss {
        let g = fs_gvk(fs);
        for r in res.iter_mut() {
            if r.is_empty_obj() {
                continue;
            }
            if !r
                .all_ids()
                .iter()
                .any(|id| id.name == rep.name && id.gvk.is_selected(&g))
            {
                continue;
            }
            found = true;
            let mut setter = |node: &mut Value| -> R<()> {
                *node = Value::Number(rep.count.into());
                Ok(())
            };
            fieldspec::apply(&mut r.obj, fs, Create::Scalar, &mut setter)?;
        }
    }
    if !found {
        let gvks: Vec<String> = fss.iter().map(|f| fs_gvk(f).to_string()).collect();
        return Err(format!(
            "resource with name {} does not match a config with the following GVK [{}]",
            rep.name,
            gvks.join(" ")
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------ sort

const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn gvk_sort_string(g: &Gvk) -> String {
    let gg = if g.group.is_empty() { "~G" } else { &g.group };
    let v = if g.version.is_empty() {
        "~V"
    } else {
        &g.version
    };
    let k = if g.kind.is_empty() { "~K" } else { &g.kind };
    format!("{gg}_{v}_{k}")
}

fn id_sort_string(id: &ResId) -> String {
    let ns = if id.namespace.is_empty() {
        "~X"
    } else {
        &id.namespace
    };
    let nm = if id.name.is_empty() { "~N" } else { &id.name };
    format!("{}|{}|{}", id.gvk, ns, nm)
}

pub fn legacy_sort(res: &mut [Resource], opts: Option<&LegacySortOptions>) {
    let (first, last): (Vec<String>, Vec<String>) = match opts {
        Some(o) => (o.order_first.clone(), o.order_last.clone()),
        None => (
            ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
            ORDER_LAST.iter().map(|s| s.to_string()).collect(),
        ),
    };
    let order = |k: &str| -> i64 {
        if let Some(i) = first.iter().position(|x| x == k) {
            return -(first.len() as i64) + i as i64;
        }
        if let Some(i) = last.iter().position(|x| x == k) {
            return 1 + i as i64;
        }
        0
    };
    let mut keyed: Vec<(ResId, String, usize)> = res
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r.cur_id();
            let s = id_sort_string(&id);
            (id, s, i)
        })
        .collect();
    keyed.sort_by(|(ia, sa_id, _), (ib, sb_id, _)| {
        if ia.gvk != ib.gvk {
            let (oa, ob) = (order(&ia.gvk.kind), order(&ib.gvk.kind));
            if oa != ob {
                return oa.cmp(&ob);
            }
            let (sa, sb) = (gvk_sort_string(&ia.gvk), gvk_sort_string(&ib.gvk));
            if ia.gvk.kind == "Namespace"
                && ib.gvk.kind == "Namespace"
                && (ia.gvk.group.is_empty() || ib.gvk.group.is_empty())
            {
                return sb.cmp(&sa);
            }
            return sa.cmp(&sb);
        }
        sa_id.cmp(sb_id)
    });
    let mut taken: Vec<Option<Resource>> =
        res.iter_mut().map(|r| Some(std::mem::take(r))).collect();
    for (slot, (_, _, i)) in res.iter_mut().zip(keyed) {
        *slot = taken[i].take().unwrap_or_default();
    }
}
