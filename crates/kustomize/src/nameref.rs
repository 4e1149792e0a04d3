//! Name-reference fix-up: after names changed (prefix, suffix, hash),
//! rewrite the fields that refer to them (kustomize's nameReference).

use std::collections::HashMap;

use serde_yaml::Value;

use crate::fieldspec::{self, Create, NameBackRef};
use crate::kustomization::FieldSpec;
use crate::resid::{Gvk, ResId};
use crate::resource::Resource;
use crate::yaml::{self as y, scalar_str};

type R<T> = Result<T, String>;

fn rolebinding_namespaces(res: &[Resource], referrer: usize) -> R<Vec<String>> {
    let mut rb_ns: Vec<String> = Vec::new();
    if res[referrer].kind() == "RoleBinding"
        && let Some(Value::Sequence(subjects)) = y::get(&res[referrer].obj, "subjects")
    {
        for s in subjects {
            if let (Some(ns), Some(kind)) = (y::get(s, "namespace"), y::get(s, "kind"))
                && scalar_str(kind).as_deref() == Some("ServiceAccount")
            {
                match ns {
                    Value::String(n) => rb_ns.push(n.clone()),
                    _ => {
                        return Err(format!(
                            "Invalid Input: namespace is blank for resource \"{}\"",
                            res[referrer].cur_id()
                        ));
                    }
                }
            }
        }
    }
    Ok(rb_ns)
}

/// Per-resource facts computed once per fix-up run.
struct Info {
    cur: ResId,
    org: ResId,
    prev: Vec<ResId>,
    kind: String,
    name: String,
    namespace: String,
}

struct Ctx<'a> {
    res: &'a [Resource],
    infos: &'a [Info],
    by_prev_name: &'a HashMap<String, Vec<usize>>,
    referrer: usize,
    /// Whether a resource may be referenced by the referrer.
    allowed: &'a dyn Fn(usize) -> bool,
    target: Gvk,
    path: String,
    referrals: Vec<usize>,
}

impl Ctx<'_> {
    fn select(&self, old: &str, cands: &[usize], by_ns: bool) -> R<Option<usize>> {
        let res = self.res;
        let infos = self.infos;
        let referrer = &res[self.referrer];
        let mut c: Vec<usize> = cands
            .iter()
            .copied()
            .filter(|&i| infos[i].prev.iter().any(|id| id.name == old))
            .filter(|&i| {
                infos[i]
                    .prev
                    .iter()
                    .any(|id| id.gvk.is_selected(&self.target))
            })
            .collect();
        if self.path.ends_with("roleRef/name")
            && let Some(rr) = y::get(&referrer.obj, "roleRef")
        {
            let g = y::get(rr, "apiGroup").and_then(scalar_str);
            let k = y::get(rr, "kind").and_then(scalar_str);
            if let (Some(g), Some(k)) = (g, k) {
                let gvk = Gvk::new(&g, "", &k);
                c.retain(|&i| infos[i].prev.iter().any(|id| id.gvk.is_selected(&gvk)));
            }
        }
        let rid = &infos[self.referrer].cur;
        if !rid.cluster_scoped {
            c.retain(|&i| {
                let id = &infos[i].cur;
                id.cluster_scoped || infos[i].kind == "ServiceAccount" || rid.ns_equals(id)
            });
        }
        if c.len() == 1 {
            return Ok(Some(c[0]));
        }
        c.retain(|&i| res[i].prefixes_suffixes_equal(referrer, true));
        if c.len() > 1 {
            c.retain(|&i| res[i].prefixes_suffixes_equal(referrer, false));
        }
        match c.len() {
            0 => Ok(None),
            1 => Ok(Some(c[0])),
            _ => {
                let first = &infos[c[0]];
                let same = c.iter().all(|&i| {
                    infos[i].name == first.name && (!by_ns || infos[i].namespace == first.namespace)
                });
                if same {
                    Ok(Some(c[0]))
                } else {
                    let ids: Vec<String> = c.iter().map(|&i| infos[i].cur.to_string()).collect();
                    Err(format!(
                        "found multiple possible referrals: {}",
                        ids.join(", ")
                    ))
                }
            }
        }
    }

    fn candidates(&self, old: &str) -> Vec<usize> {
        self.by_prev_name
            .get(old)
            .map(|v| v.iter().copied().filter(|&i| (self.allowed)(i)).collect())
            .unwrap_or_default()
    }

    fn set_scalar(&mut self, node: &mut Value) -> R<()> {
        let old = scalar_str(node).unwrap_or_default();
        let cands = self.candidates(&old);
        if let Some(i) = self.select(&old, &cands, false)? {
            self.referrals.push(i);
            let name = self.infos[i].name.clone();
            if name != old {
                *node = Value::String(name);
            }
        }
        Ok(())
    }

    fn set_mapping(&mut self, node: &mut Value) -> R<()> {
        let Some(name_node) = y::get(node, "name") else {
            return Err("path config error; no 'name' field in node".into());
        };
        let old = scalar_str(name_node).unwrap_or_default();
        let all = self.candidates(&old);
        let cands: Vec<usize> = match y::get(node, "namespace") {
            None => all,
            Some(nsv) => {
                let ns = scalar_str(nsv).unwrap_or_default();
                // kustomize groups all candidates by namespace; only those
                // sharing the old name can be selected, so filtering the
                // name-matching ones gives the same result.
                let org_has = (0..self.infos.len())
                    .filter(|&i| (self.allowed)(i))
                    .any(|i| self.infos[i].org.effective_namespace() == ns);
                if org_has {
                    all.into_iter()
                        .filter(|&i| self.infos[i].org.effective_namespace() == ns)
                        .collect()
                } else {
                    all.into_iter()
                        .filter(|&i| self.infos[i].cur.effective_namespace() == ns)
                        .collect()
                }
            }
        };
        let Some(i) = self.select(&old, &cands, true)? else {
            return Ok(());
        };
        self.referrals.push(i);
        let (name, ns) = (self.infos[i].name.clone(), self.infos[i].namespace.clone());
        if name == old && ns.is_empty() {
            return Ok(());
        }
        if let Value::Mapping(m) = node {
            m.insert(y::key("name"), Value::String(name));
            if !ns.is_empty() {
                m.insert(y::key("namespace"), Value::String(ns));
            }
        }
        Ok(())
    }

    fn set(&mut self, node: &mut Value) -> R<()> {
        match node {
            Value::Null => Ok(()),
            Value::Mapping(_) => self.set_mapping(node),
            Value::Sequence(items) => {
                for it in items.iter_mut() {
                    match it {
                        Value::Mapping(_) => self.set_mapping(it)?,
                        Value::Sequence(_) => {}
                        _ => self.set_scalar(it)?,
                    }
                }
                Ok(())
            }
            _ => self.set_scalar(node),
        }
    }
}

/// Runs the name-reference fix-up over all resources.
pub fn fix(res: &mut [Resource], backrefs: &[NameBackRef]) -> R<()> {
    // filters per referrer, in resource order
    let infos: Vec<Info> = res
        .iter()
        .map(|r| Info {
            cur: r.cur_id(),
            org: r.org_id(),
            prev: r.prev_ids(),
            kind: r.kind(),
            name: r.name(),
            namespace: r.namespace(),
        })
        .collect();
    let mut filters: Vec<Vec<(FieldSpec, Gvk)>> = vec![Vec::new(); res.len()];
    for br in backrefs {
        for spec in &br.field_specs {
            let sg = fieldspec::fs_gvk(spec);
            for (i, inf) in infos.iter().enumerate() {
                if inf.org.gvk.is_selected(&sg) {
                    filters[i].push((spec.clone(), br.gvk()));
                }
            }
        }
    }
    let mut by_prev_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, inf) in infos.iter().enumerate() {
        let mut names: Vec<&String> = inf.prev.iter().map(|p| &p.name).collect();
        names.dedup();
        for n in names {
            let v = by_prev_name.entry(n.clone()).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
    }
    for i in 0..res.len() {
        if filters[i].is_empty() {
            continue;
        }
        let rb_ns = rolebinding_namespaces(res, i)?;
        let rid = infos[i].cur.clone();
        let allowed = |j: usize| -> bool {
            if rid.cluster_scoped {
                return true;
            }
            let id = &infos[j].cur;
            id.cluster_scoped || id.ns_equals(&rid) || rb_ns.contains(&infos[j].namespace)
        };
        let mut obj = res[i].obj.clone();
        let mut all_referrals = Vec::new();
        for (spec, target) in &filters[i] {
            let mut ctx = Ctx {
                res,
                infos: &infos,
                by_prev_name: &by_prev_name,
                referrer: i,
                allowed: &allowed,
                target: target.clone(),
                path: spec.path.clone(),
                referrals: Vec::new(),
            };
            // the spec applies to the referrer whatever its gvk
            let fs = FieldSpec {
                path: spec.path.clone(),
                create: false,
                ..Default::default()
            };
            let mut set = |n: &mut Value| ctx.set(n);
            fieldspec::apply(&mut obj, &fs, Create::No, &mut set).map_err(|e| {
                format!(
                    "updating name reference in '{}' field of '{}': {}",
                    spec.path,
                    res[i].cur_id(),
                    e
                )
            })?;
            all_referrals.extend(ctx.referrals);
        }
        let referrer_id: ResId = res[i].cur_id();
        res[i].obj = obj;
        for j in all_referrals {
            res[j].ref_by.push(referrer_id.clone());
        }
    }
    Ok(())
}
