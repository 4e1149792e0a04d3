//! The ValueAddTransformer builtin plugin: set (or insert into a path-like
//! value) a value at a field of selected resources.

use serde_yaml::Value;

use crate::kustomization::{FieldSpec, Selector};
use crate::patch;
use crate::resource::Resource;
use crate::transforms::{self, SubjectMode};
use crate::yaml::{self as y, scalar_str};

type R<T> = Result<T, String>;

pub struct Target {
    pub selector: Option<Selector>,
    pub field_path: String,
    pub file_path_position: i64,
}

pub fn targets_from(v: Option<&Value>) -> R<Vec<Target>> {
    let mut out = Vec::new();
    if let Some(Value::Sequence(ts)) = v {
        for t in ts {
            let selector = match y::get(t, "selector") {
                Some(s) => Some(serde_yaml::from_value(s.clone()).map_err(|e| e.to_string())?),
                None => None,
            };
            out.push(Target {
                selector,
                field_path: y::get(t, "fieldPath")
                    .and_then(scalar_str)
                    .unwrap_or_default(),
                file_path_position: y::get(t, "filePathPosition")
                    .and_then(|x| x.as_i64())
                    .unwrap_or(0),
            });
        }
    }
    Ok(out)
}

fn insert_path_part(path: &str, pos: i64, part: &str) -> String {
    if part.is_empty() {
        return path.to_string();
    }
    let mut parts: Vec<String> = if path.is_empty() {
        vec![]
    } else {
        path.split('/').map(String::from).collect()
    };
    let mut pos = pos.clamp(0, parts.len() as i64) as usize;
    if !parts.is_empty() && parts[0].is_empty() && pos < parts.len() {
        pos += 1;
    }
    parts.insert(pos.min(parts.len()), part.to_string());
    parts.join("/")
}

pub fn apply(res: &mut [Resource], value: &str, targets: &[Target]) -> R<()> {
    if targets.is_empty() {
        return Err("must specify at least one target".into());
    }
    for t in targets {
        if t.field_path.is_empty() {
            return Err("fieldPath cannot be empty".into());
        }
        if t.file_path_position < 0 {
            return Err(format!(
                "value of FilePathPosition ({}) cannot be negative",
                t.file_path_position
            ));
        }
        let idx: Vec<usize> = match &t.selector {
            None => (0..res.len()).collect(),
            Some(s) => patch::select(res, s)?,
        };
        for i in idx {
            if t.field_path == "metadata/namespace" {
                transforms::namespace(
                    std::slice::from_mut(&mut res[i]),
                    value,
                    &[] as &[FieldSpec],
                    SubjectMode::DefaultOnly,
                    false,
                )?;
                continue;
            }
            let mut fields: Vec<String> = Vec::new();
            for f in t.field_path.split('/') {
                if let Some(last) = fields.last_mut().filter(|l| l.ends_with('\\')) {
                    last.pop();
                    last.push('/');
                    last.push_str(f);
                } else {
                    fields.push(f.to_string());
                }
            }
            let refs: Vec<&str> = fields.iter().map(|s| s.as_str()).collect();
            let cur = y::get_path(&res[i].obj, &refs).cloned();
            if matches!(cur, Some(Value::Mapping(_)) | Some(Value::Sequence(_))) {
                return Err("wrong node kind: expected ScalarNode".into());
            }
            let cur = cur.and_then(|c| scalar_str(&c)).unwrap_or_default();
            let new = if t.file_path_position > 0 {
                insert_path_part(&cur, t.file_path_position - 1, value)
            } else {
                value.to_string()
            };
            y::set_path(&mut res[i].obj, &refs, Value::String(new));
        }
    }
    Ok(())
}
