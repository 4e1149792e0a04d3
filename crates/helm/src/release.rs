//! Helm's release-storage codec (Secrets driver): the Release JSON document,
//! base64(gzip(json)) encoding, the Secret's name, type and labels.
//!
//! Pure: the caller writes the Secret with its own client.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The Secret type Helm uses for releases.
pub const SECRET_TYPE: &str = "helm.sh/release.v1";
/// The key of the release in the Secret's data.
pub const SECRET_KEY: &str = "release";

/// Release statuses.
pub const STATUSES: &[&str] = &[
    "unknown",
    "deployed",
    "uninstalled",
    "superseded",
    "failed",
    "uninstalling",
    "pending-install",
    "pending-upgrade",
    "pending-rollback",
];

/// `info` of a release.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Info {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_deployed: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_deployed: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deleted: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollback_revision: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<serde_json::Value>,
}

fn is_zero(i: &i64) -> bool {
    *i == 0
}

/// A hook's last run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HookExecution {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub completed_at: String,
    #[serde(default)]
    pub phase: String,
}

/// A hook as stored in the release.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Hook {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    #[serde(default)]
    pub last_run: HookExecution,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_log_policies: Vec<String>,
}

impl From<&crate::sort::Hook> for Hook {
    fn from(h: &crate::sort::Hook) -> Self {
        Hook {
            name: h.name.clone(),
            kind: h.kind.clone(),
            path: h.path.clone(),
            manifest: h.manifest.clone(),
            events: h.events.clone(),
            last_run: HookExecution {
                phase: "Unknown".into(),
                ..Default::default()
            },
            weight: h.weight,
            delete_policies: h.delete_policies.clone(),
            output_log_policies: h.output_log_policies.clone(),
        }
    }
}

/// A Helm release document (`pkg/release/v1/release.go`). `chart` and `config` are kept as
/// JSON so that documents written by the real Helm survive a decode/encode round trip.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Release {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Info>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub apply_method: String,
}

impl Release {
    pub fn status(&self) -> &str {
        self.info
            .as_ref()
            .map(|i| i.status.as_str())
            .unwrap_or("unknown")
    }
}

/// `sh.helm.release.v1.<name>.v<version>`.
pub fn secret_name(release: &str, version: i64) -> String {
    format!("sh.helm.release.v1.{release}.v{version}")
}

/// base64(gzip(json)) with best compression: the string stored under `data.release`
/// (before the Kubernetes API's own base64 of Secret data).
pub fn encode(rel: &Release) -> Result<String, Error> {
    let json = serde_json::to_vec(rel).map_err(|e| Error::Release(e.to_string()))?;
    encode_bytes(&json)
}

/// Encodes an already-serialized release JSON.
pub fn encode_bytes(json: &[u8]) -> Result<String, Error> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(json)
        .map_err(|e| Error::Release(e.to_string()))?;
    let data = gz.finish().map_err(|e| Error::Release(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(data))
}

/// Decodes `data.release`: base64, then gunzip when the gzip magic is present, then JSON.
pub fn decode(data: &str) -> Result<Release, Error> {
    let json = decode_bytes(data)?;
    serde_json::from_slice(&json).map_err(|e| Error::Release(format!("decoding release: {e}")))
}

/// Decodes `data.release` to the JSON bytes.
pub fn decode_bytes(data: &str) -> Result<Vec<u8>, Error> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::Release(format!("decoding release: {e}")))?;
    if b.len() >= 3 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 0x08 {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&b[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Release(e.to_string()))?;
        Ok(out)
    } else {
        Ok(b)
    }
}

/// The labels of a release Secret. `created_at` is set on create, `modified_at` on update
/// (Unix seconds). Custom labels may not use the reserved names.
pub fn secret_labels(
    rel: &Release,
    created_at: Option<i64>,
    modified_at: Option<i64>,
    custom: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut l = BTreeMap::new();
    for (k, v) in custom {
        if [
            "name",
            "owner",
            "status",
            "version",
            "createdAt",
            "modifiedAt",
        ]
        .contains(&k.as_str())
        {
            return Err(Error::Release(format!(
                "user labels cannot contain reserved label: {k}"
            )));
        }
        l.insert(k.clone(), v.clone());
    }
    l.insert("name".into(), rel.name.clone());
    l.insert("owner".into(), "helm".into());
    l.insert("status".into(), rel.status().to_string());
    l.insert("version".into(), rel.version.to_string());
    if let Some(c) = created_at {
        l.insert("createdAt".into(), c.to_string());
    }
    if let Some(m) = modified_at {
        l.insert("modifiedAt".into(), m.to_string());
    }
    Ok(l)
}

/// The Secret's `data` map (values before the API's base64).
pub fn secret_data(rel: &Release) -> Result<BTreeMap<String, String>, Error> {
    let mut d = BTreeMap::new();
    d.insert(SECRET_KEY.to_string(), encode(rel)?);
    Ok(d)
}

/// `release.manifest`: `---\n# Source: <path>\n<doc>\n` per non-hook document.
pub fn manifest_string(manifests: &[crate::sort::Manifest]) -> String {
    let mut s = String::new();
    for m in manifests {
        s.push_str(&format!("---\n# Source: {}\n{}\n", m.name, m.content));
    }
    s
}

/// The `chart` object of a release (`pkg/chart/v2/chart.go` JSON): metadata, lock,
/// templates and files as base64 `data`, default values, schema. Subcharts are not
/// serialized, as in Helm.
pub fn chart_json(c: &crate::Chart) -> serde_json::Value {
    use serde_json::json;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let files = |fs: &[crate::chart::File]| -> Vec<serde_json::Value> {
        fs.iter()
            .map(|f| json!({"name": f.name, "data": b64(&f.data)}))
            .collect()
    };
    let metadata =
        ferroflux_gotemplate::json::to_serde(&ferroflux_gotemplate::Value::map(c.metadata.clone()));
    let lock = c
        .lock
        .as_ref()
        .and_then(|l| {
            ferroflux_gotemplate::yaml::parse(
                &String::from_utf8_lossy(l),
                ferroflux_gotemplate::yaml::Numbers::Json,
            )
            .ok()
        })
        .map(|v| ferroflux_gotemplate::json::to_serde(&v))
        .unwrap_or(serde_json::Value::Null);
    json!({
        "metadata": metadata,
        "lock": lock,
        "templates": files(&c.templates),
        "values": ferroflux_gotemplate::json::to_serde(&ferroflux_gotemplate::Value::map(c.values.clone())),
        "schema": c.schema.as_ref().map(|s| serde_json::Value::String(b64(s))).unwrap_or(serde_json::Value::Null),
        "files": files(&c.files),
    })
}

/// A release for an install, as `helm install` records it once deployed: revision 1,
/// status `deployed`, description "Install complete". `now` is RFC 3339 (the caller's clock).
pub fn new_install(
    name: &str,
    namespace: &str,
    chart: &crate::Chart,
    config: &ferroflux_gotemplate::Map,
    rendered: &crate::Rendered,
    now: &str,
) -> Release {
    Release {
        name: name.to_string(),
        info: Some(Info {
            first_deployed: now.to_string(),
            last_deployed: now.to_string(),
            description: "Install complete".into(),
            status: "deployed".into(),
            notes: rendered.notes.clone(),
            ..Default::default()
        }),
        chart: Some(chart_json(chart)),
        config: Some(ferroflux_gotemplate::json::to_serde(
            &ferroflux_gotemplate::Value::map(config.clone()),
        )),
        manifest: rendered.manifest(),
        hooks: rendered.hooks.iter().map(Hook::from).collect(),
        version: 1,
        namespace: namespace.to_string(),
        apply_method: "ssa".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let rel = Release {
            name: "demo".into(),
            info: Some(Info {
                status: "deployed".into(),
                description: "Install complete".into(),
                ..Default::default()
            }),
            manifest: "---\n# Source: c/templates/a.yaml\na: 1\n".into(),
            version: 1,
            namespace: "ns".into(),
            apply_method: "ssa".into(),
            ..Default::default()
        };
        let enc = encode(&rel).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&enc)
            .unwrap();
        assert_eq!(&raw[..3], &[0x1f, 0x8b, 0x08]);
        assert_eq!(decode(&enc).unwrap(), rel);
        // plain base64 JSON (no gzip) is accepted too
        let plain =
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&rel).unwrap());
        assert_eq!(decode(&plain).unwrap(), rel);
        assert_eq!(secret_name("demo", 3), "sh.helm.release.v1.demo.v3");
        let l = secret_labels(&rel, Some(10), None, &BTreeMap::new()).unwrap();
        assert_eq!(l["owner"], "helm");
        assert_eq!(l["status"], "deployed");
        assert_eq!(l["version"], "1");
        assert_eq!(l["createdAt"], "10");
    }
}
