//! Decryption of SOPS-encrypted Kubernetes manifests with age identities, as Flux's
//! kustomize-controller does for `spec.decryption: {provider: sops, secretRef: ...}`.
//!
//! Pure: no environment, clock, file system or network. The caller reads the decryption
//! Secret (its `*.agekey` entries) and hands the text to [`parse_identities`], then calls
//! [`decrypt_object`] on each built resource.
//!
//! What is decrypted, as in Flux's `DecryptResource`:
//! - a resource with a top-level `sops` mapping that has a non-empty `mac` is decrypted as a
//!   whole (the SOPS tree walk over the object, without its `sops` key), the MAC verified;
//! - a `Secret` without one has each `data` value base64-decoded, and a value that is itself
//!   a SOPS-encrypted dotenv, YAML, JSON or binary file (a `secretGenerator` `.env`/`.yaml`/
//!   `.json` entry) is decrypted and emitted in the format named by the data key's extension.
//!
//! Flux does not verify the SOPS MAC (kustomize transformations change the plaintext of
//! built resources); [`decrypt_object`] does, as `sops --decrypt` does, and
//! [`decrypt_object_with`] with [`DecryptOptions::FLUX`] does not.
//!
//! Only age X25519 identities (`AGE-SECRET-KEY-1...`) are supported; PGP, cloud KMS and
//! Vault master keys are not.

mod emit;
mod format;
mod shamir;

use std::fmt;
use std::io::Read;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha512};

pub use format::{Format, decrypt_file, decrypt_file_with, format_for_key};

/// The default suffix of keys whose values SOPS leaves unencrypted.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The 32 bytes SOPS feeds to the MAC first when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Errors of SOPS decryption. Messages name what failed; none contains a secret value.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SopsError {
    /// The identities text has no usable identity, or a malformed one.
    #[error("{0}")]
    Identities(String),
    /// The `sops` metadata is missing or malformed.
    #[error("invalid sops metadata: {0}")]
    Metadata(String),
    /// None of the given identities can decrypt the data key.
    #[error("no age identity matches the recipients: {}", .recipients.join(", "))]
    NoMatchingIdentity {
        /// The age recipients the file was encrypted for.
        recipients: Vec<String>,
    },
    /// The data key is encrypted only for key types this crate does not support.
    #[error("cannot get sops data key: {0}")]
    DataKey(String),
    /// A value is not a well-formed `ENC[AES256_GCM,...]` string, or fails to decrypt.
    #[error("cannot decrypt value at '{path}': {reason}")]
    Value {
        /// The key path of the value, joined with ':'.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The MAC over the decrypted values does not match the one SOPS recorded.
    #[error(
        "MAC mismatch: the file was modified after encryption (expected mac '{expected}', got '{computed}')"
    )]
    MacMismatch {
        /// The MAC recorded in the file ("no MAC" when empty).
        expected: String,
        /// The MAC computed over the decrypted tree.
        computed: String,
    },
    /// The input cannot be parsed or the output emitted in the given format.
    #[error("{0}")]
    Format(String),
    /// A `Secret` data entry failed (wraps the cause with the entry's key).
    #[error("Secret field '{key}': {source}")]
    SecretField {
        /// The data key.
        key: String,
        /// The cause.
        source: Box<SopsError>,
    },
}

/// An age X25519 identity (`AGE-SECRET-KEY-1...`).
#[derive(Clone)]
pub struct Identity {
    inner: age::x25519::Identity,
    recipient: String,
}

impl Identity {
    /// The age recipient (`age1...`) of this identity.
    pub fn recipient(&self) -> &str {
        &self.recipient
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

/// Parses age identities from the text of an identity file (such as a `*.agekey` entry of
/// Flux's decryption Secret): one `AGE-SECRET-KEY-1...` per line; blank lines and lines
/// starting with `#` are ignored. At least one identity is required.
pub fn parse_identities(text: &str) -> Result<Vec<Identity>, SopsError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-PLUGIN-") {
            return Err(SopsError::Identities(format!(
                "line {}: age plugin identities are not supported",
                n + 1
            )));
        }
        if !line.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-1") {
            return Err(SopsError::Identities(format!(
                "line {}: not an age identity (expected AGE-SECRET-KEY-1...)",
                n + 1
            )));
        }
        let inner: age::x25519::Identity = line.parse().map_err(|e: &str| {
            SopsError::Identities(format!("line {}: malformed age identity: {e}", n + 1))
        })?;
        let recipient = inner.to_public().to_string();
        out.push(Identity { inner, recipient });
    }
    if out.is_empty() {
        return Err(SopsError::Identities("no age identity found".into()));
    }
    Ok(out)
}

/// Whether the object is a SOPS-encrypted resource as Flux detects one: a top-level `sops`
/// mapping with a non-empty `mac`.
pub fn is_encrypted(obj: &Value) -> bool {
    match obj.get("sops") {
        Some(Value::Mapping(m)) => match m.get("mac") {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        },
        _ => false,
    }
}

/// Whether the object opts out of decryption with the annotation
/// `kustomize.toolkit.fluxcd.io/decrypt: disabled` (case-insensitive), as Flux honours.
pub fn is_decryption_disabled(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("kustomize.toolkit.fluxcd.io/decrypt"))
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
}

/// Options of [`decrypt_object_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptOptions {
    /// Verify the SOPS MAC over the decrypted values (as `sops --decrypt` does).
    ///
    /// Flux's kustomize-controller does NOT verify it (its `checkSopsMac` is off and not
    /// configurable): kustomize transformations (namespace, labels, annotations, name
    /// prefixes) change the plaintext of built resources, so the MAC of a correctly
    /// encrypted and correctly transformed resource no longer matches. A controller that
    /// behaves as Flux uses [`DecryptOptions::FLUX`].
    pub verify_mac: bool,
}

impl DecryptOptions {
    /// As `sops --decrypt`: the MAC is verified.
    pub const STRICT: DecryptOptions = DecryptOptions { verify_mac: true };
    /// As Flux's kustomize-controller: the MAC is not verified.
    pub const FLUX: DecryptOptions = DecryptOptions { verify_mac: false };
}

impl Default for DecryptOptions {
    fn default() -> Self {
        Self::STRICT
    }
}

/// Decrypts a resource as Flux's kustomize-controller does (see the crate docs), verifying
/// the MAC (see [`DecryptOptions`]; use [`decrypt_object_with`] with
/// [`DecryptOptions::FLUX`] on kustomize-built resources). Returns the object without its
/// `sops` key and with the values typed as SOPS recorded them; an object with nothing to
/// decrypt is returned unchanged.
pub fn decrypt_object(obj: &Value, identities: &[Identity]) -> Result<Value, SopsError> {
    decrypt_object_with(obj, identities, DecryptOptions::STRICT)
}

/// [`decrypt_object`] with options.
pub fn decrypt_object_with(
    obj: &Value,
    identities: &[Identity],
    opts: DecryptOptions,
) -> Result<Value, SopsError> {
    if is_encrypted(obj) {
        let mut branches = vec![obj.clone()];
        let meta = take_metadata(&mut branches)?;
        decrypt_tree(&mut branches, &meta, identities, opts)?;
        return Ok(branches.pop().unwrap_or(Value::Null));
    }
    if obj.get("kind").and_then(Value::as_str) == Some("Secret") {
        return decrypt_secret_data(obj, identities, opts);
    }
    Ok(obj.clone())
}

fn decrypt_secret_data(
    obj: &Value,
    identities: &[Identity],
    opts: DecryptOptions,
) -> Result<Value, SopsError> {
    let Some(Value::Mapping(data)) = obj.get("data") else {
        return Ok(obj.clone());
    };
    let mut new_data = data.clone();
    let mut changed = false;
    for (k, v) in data {
        let (Some(key), Some(text)) = (k.as_str(), v.as_str()) else {
            continue;
        };
        // Like Flux: a value that is not base64 is left for the apply to report.
        let Ok(bytes) = B64.decode(text.trim()) else {
            continue;
        };
        let Some(input) = format::detect_encrypted_format(&bytes) else {
            continue;
        };
        let out = format::decrypt_file_with(&bytes, input, format_for_key(key), identities, opts)
            .map_err(|e| SopsError::SecretField {
            key: key.to_string(),
            source: Box::new(e),
        })?;
        new_data.insert(k.clone(), Value::String(B64.encode(out)));
        changed = true;
    }
    if !changed {
        return Ok(obj.clone());
    }
    let mut out = obj.clone();
    if let Value::Mapping(m) = &mut out {
        m.insert(Value::String("data".into()), Value::Mapping(new_data));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Metadata.

/// A master key of a key group: age keys are usable, the others are only named in errors.
#[derive(Debug, Clone)]
enum MasterKey {
    Age { recipient: String, enc: String },
    Other(String),
}

/// The parts of the SOPS metadata decryption needs.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    key_groups: Vec<Vec<MasterKey>>,
    shamir_threshold: usize,
    mac: String,
    last_modified: String,
    unencrypted_suffix: String,
    encrypted_suffix: String,
    unencrypted_regex: Option<regex::Regex>,
    encrypted_regex: Option<regex::Regex>,
    unencrypted_comment_regex: Option<regex::Regex>,
    encrypted_comment_regex: Option<regex::Regex>,
    mac_only_encrypted: bool,
}

/// Removes the `sops` key from every branch and parses the one of the first branch, as
/// SOPS's `ExtractMetadata` does for YAML and JSON.
pub(crate) fn take_metadata(branches: &mut [Value]) -> Result<Metadata, SopsError> {
    let mut meta = None;
    for (i, b) in branches.iter_mut().enumerate() {
        if let Value::Mapping(m) = b
            && let Some(v) = m.remove("sops")
            && i == 0
        {
            meta = Some(v);
        }
    }
    let meta = meta.ok_or_else(|| SopsError::Metadata("no sops metadata found".into()))?;
    parse_metadata(&meta)
}

fn meta_str(m: &Mapping, key: &str) -> Result<String, SopsError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(_) => Err(SopsError::Metadata(format!("'{key}' is not a string"))),
    }
}

fn meta_regex(m: &Mapping, key: &str) -> Result<Option<regex::Regex>, SopsError> {
    let s = meta_str(m, key)?;
    if s.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&s)
        .map(Some)
        .map_err(|e| SopsError::Metadata(format!("'{key}' is not a valid regular expression: {e}")))
}

fn parse_group(m: &Mapping) -> Result<Vec<MasterKey>, SopsError> {
    let mut keys = Vec::new();
    for (kind, label) in [
        ("kms", "arn"),
        ("gcp_kms", "resource_id"),
        ("hckms", "key_id"),
        ("azure_kv", "vault_url"),
        ("hc_vault", "vault_address"),
        ("pgp", "fp"),
    ] {
        if let Some(Value::Sequence(list)) = m.get(kind) {
            for k in list {
                let name = k.get(label).and_then(Value::as_str).unwrap_or("?");
                keys.push(MasterKey::Other(format!("{kind} key {name}")));
            }
        }
    }
    if let Some(Value::Sequence(list)) = m.get("age") {
        for k in list {
            let Value::Mapping(k) = k else {
                return Err(SopsError::Metadata(
                    "an 'age' entry is not a mapping".into(),
                ));
            };
            keys.push(MasterKey::Age {
                recipient: meta_str(k, "recipient")?,
                enc: meta_str(k, "enc")?,
            });
        }
    }
    Ok(keys)
}

pub(crate) fn parse_metadata(meta: &Value) -> Result<Metadata, SopsError> {
    let Value::Mapping(m) = meta else {
        return Err(SopsError::Metadata("'sops' is not a mapping".into()));
    };
    let top = parse_group(m)?;
    let key_groups = if !top.is_empty() {
        vec![top]
    } else if let Some(Value::Sequence(groups)) = m.get("key_groups") {
        let mut out = Vec::new();
        for g in groups {
            let Value::Mapping(g) = g else {
                return Err(SopsError::Metadata("a key group is not a mapping".into()));
            };
            out.push(parse_group(g)?);
        }
        out
    } else {
        return Err(SopsError::Metadata("No keys found in file".into()));
    };
    let shamir_threshold = match m.get("shamir_threshold") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(_) => {
            return Err(SopsError::Metadata(
                "'shamir_threshold' is not a number".into(),
            ));
        }
    };
    let mac_only_encrypted = match m.get("mac_only_encrypted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => parse_go_bool(s).unwrap_or(false),
        Some(_) => false,
    };
    let mut md = Metadata {
        key_groups,
        shamir_threshold,
        mac: meta_str(m, "mac")?,
        last_modified: meta_str(m, "lastmodified")?,
        unencrypted_suffix: meta_str(m, "unencrypted_suffix")?,
        encrypted_suffix: meta_str(m, "encrypted_suffix")?,
        unencrypted_regex: meta_regex(m, "unencrypted_regex")?,
        encrypted_regex: meta_regex(m, "encrypted_regex")?,
        unencrypted_comment_regex: meta_regex(m, "unencrypted_comment_regex")?,
        encrypted_comment_regex: meta_regex(m, "encrypted_comment_regex")?,
        mac_only_encrypted,
    };
    let rules = [
        !md.unencrypted_suffix.is_empty(),
        !md.encrypted_suffix.is_empty(),
        md.unencrypted_regex.is_some(),
        md.encrypted_regex.is_some(),
        md.unencrypted_comment_regex.is_some(),
        md.encrypted_comment_regex.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if rules > 1 {
        return Err(SopsError::Metadata(
            "Cannot use more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex, or unencrypted_comment_regex in the same file".into(),
        ));
    }
    if rules == 0 {
        md.unencrypted_suffix = DEFAULT_UNENCRYPTED_SUFFIX.into();
    }
    md.last_modified = normalize_rfc3339(&md.last_modified).ok_or_else(|| {
        SopsError::Metadata(format!(
            "'lastmodified' is not an RFC 3339 time: '{}'",
            md.last_modified
        ))
    })?;
    Ok(md)
}

/// Go's `time.Parse(time.RFC3339, s).Format(time.RFC3339)`: fractional seconds dropped, a
/// zero offset written `Z`. The result is the additional data of the MAC's encryption.
fn normalize_rfc3339(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !(b[10] == b'T' || b[10] == b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let zone = &s[i..];
    let zone = match zone {
        "Z" | "z" => "Z".to_string(),
        z if z.len() == 6
            && (z.starts_with('+') || z.starts_with('-'))
            && z.as_bytes()[3] == b':'
            && z[1..3].bytes().all(|c| c.is_ascii_digit())
            && z[4..6].bytes().all(|c| c.is_ascii_digit()) =>
        {
            if &z[1..3] == "00" && &z[4..6] == "00" {
                "Z".to_string()
            } else {
                z.to_string()
            }
        }
        _ => return None,
    };
    Some(format!("{}{}", &s[..19].replacen('t', "T", 1), zone))
}

// ---------------------------------------------------------------------------------------
// Data key.

fn age_decrypt(enc: &str, identities: &[Identity]) -> Result<Option<Vec<u8>>, SopsError> {
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    let decryptor = age::Decryptor::new_buffered(reader)
        .map_err(|e| SopsError::DataKey(format!("malformed age-encrypted data key: {e}")))?;
    let ids = identities.iter().map(|i| &i.inner as &dyn age::Identity);
    match decryptor.decrypt(ids) {
        Ok(mut r) => {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map_err(|e| {
                SopsError::DataKey(format!("cannot read age-decrypted data key: {e}"))
            })?;
            Ok(Some(out))
        }
        Err(age::DecryptError::NoMatchingKeys) => Ok(None),
        Err(e) => Err(SopsError::DataKey(format!(
            "cannot decrypt the data key with age: {e}"
        ))),
    }
}

fn data_key(meta: &Metadata, identities: &[Identity]) -> Result<Vec<u8>, SopsError> {
    let mut parts = Vec::new();
    let mut recipients = Vec::new();
    let mut others = Vec::new();
    let mut group_errors = Vec::new();
    for group in &meta.key_groups {
        let mut part = None;
        for key in group {
            match key {
                MasterKey::Age { recipient, enc } => {
                    recipients.push(recipient.clone());
                    match age_decrypt(enc, identities) {
                        Ok(Some(p)) => {
                            part = Some(p);
                            break;
                        }
                        Ok(None) => {}
                        Err(e) => group_errors.push(e),
                    }
                }
                MasterKey::Other(name) => others.push(name.clone()),
            }
        }
        if let Some(p) = part {
            parts.push(p);
        }
    }
    let need = if meta.key_groups.len() > 1 {
        meta.shamir_threshold.max(1)
    } else {
        1
    };
    if parts.len() >= need && !parts.is_empty() {
        if meta.key_groups.len() > 1 {
            return shamir::combine(&parts).map_err(|e| {
                SopsError::DataKey(format!("could not get data key from shamir parts: {e}"))
            });
        }
        return Ok(parts.swap_remove(0));
    }
    if let Some(e) = group_errors.into_iter().next() {
        return Err(e);
    }
    if recipients.is_empty() {
        return Err(SopsError::DataKey(format!(
            "no age keys in the file; unsupported key types: {}",
            others.join(", ")
        )));
    }
    if meta.key_groups.len() > 1 && !parts.is_empty() {
        return Err(SopsError::DataKey(format!(
            "only {} of the {} key groups required by shamir_threshold could be decrypted",
            parts.len(),
            need
        )));
    }
    Err(SopsError::NoMatchingIdentity { recipients })
}

// ---------------------------------------------------------------------------------------
// The tree walk.

/// A dotenv comment as SOPS decrypts it (additional data ":"), kept as it is when it does
/// not decrypt (an unencrypted comment).
pub(crate) fn decrypt_comment(c: &str, key: &[u8]) -> String {
    match decrypt_value(c, key, ":") {
        Ok(Value::String(s)) => s,
        _ => c.to_string(),
    }
}

/// Decrypts the branches in place, verifies the MAC and returns the data key.
pub(crate) fn decrypt_tree(
    branches: &mut [Value],
    meta: &Metadata,
    identities: &[Identity],
    opts: DecryptOptions,
) -> Result<Vec<u8>, SopsError> {
    let key = data_key(meta, identities)?;
    if key.len() != 32 {
        return Err(SopsError::DataKey(format!(
            "the data key has {} bytes, not 32",
            key.len()
        )));
    }
    let mut w = Walker {
        meta,
        key: &key,
        hash: Sha512::new(),
    };
    if meta.mac_only_encrypted {
        w.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut path = Vec::new();
    for b in branches.iter_mut() {
        w.walk(b, &mut path)?;
    }
    let computed = hex::encode_upper(w.hash.finalize());
    if !opts.verify_mac {
        return Ok(key);
    }
    let stored =
        decrypt_value(&meta.mac, &key, &meta.last_modified).map_err(|reason| SopsError::Value {
            path: "sops:mac".into(),
            reason: format!("cannot decrypt MAC: {reason}"),
        })?;
    let stored = match stored {
        Value::String(s) => s,
        other => scalar_bytes(&other)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
    };
    if stored != computed {
        return Err(SopsError::MacMismatch {
            expected: if stored.is_empty() {
                "no MAC".into()
            } else {
                stored
            },
            computed,
        });
    }
    Ok(key)
}

struct Walker<'a> {
    meta: &'a Metadata,
    key: &'a [u8],
    hash: Sha512,
}

fn key_string(k: &Value) -> Result<String, String> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Tagged(t) => key_string(&t.value),
        other => Err(format!(
            "Tree contains a non-string key: {}",
            serde_yaml::to_string(other).unwrap_or_default().trim()
        )),
    }
}

impl Walker<'_> {
    fn walk(&mut self, v: &mut Value, path: &mut Vec<String>) -> Result<(), SopsError> {
        match v {
            Value::Mapping(m) => {
                for (k, val) in m.iter_mut() {
                    let ks = key_string(k).map_err(|reason| SopsError::Value {
                        path: path.join(":"),
                        reason,
                    })?;
                    path.push(ks);
                    let r = self.walk(val, path);
                    path.pop();
                    r?;
                }
                Ok(())
            }
            Value::Sequence(s) => {
                for item in s.iter_mut() {
                    self.walk(item, path)?;
                }
                Ok(())
            }
            Value::Tagged(t) => self.walk(&mut t.value, path),
            Value::Null => Ok(()),
            leaf => self.leaf(leaf, path),
        }
    }

    fn leaf(&mut self, v: &mut Value, path: &[String]) -> Result<(), SopsError> {
        let encrypted = should_be_encrypted(self.meta, path);
        if encrypted {
            let Value::String(s) = &*v else {
                return Err(SopsError::Value {
                    path: path.join(":"),
                    reason: format!(
                        "expected an encrypted value as string, but got {}",
                        type_name(v)
                    ),
                });
            };
            let ad = format!("{}:", path.join(":"));
            *v = decrypt_value(s, self.key, &ad).map_err(|reason| SopsError::Value {
                path: path.join(":"),
                reason,
            })?;
        }
        if !self.meta.mac_only_encrypted || encrypted {
            let bytes = scalar_bytes(v).map_err(|reason| SopsError::Value {
                path: path.join(":"),
                reason,
            })?;
            self.hash.update(bytes);
        }
        Ok(())
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "mapping",
        Value::Tagged(_) => "tagged value",
    }
}

/// SOPS's `shouldBeEncrypted` for a value at `path` (map keys only; list items add nothing).
/// Comments are not part of a `serde_yaml::Value`, so the comment rules see none: with
/// `encrypted_comment_regex` nothing is encrypted, as for SOPS over JSON input.
fn should_be_encrypted(meta: &Metadata, path: &[String]) -> bool {
    let mut encrypted = true;
    if !meta.unencrypted_suffix.is_empty()
        && path.iter().any(|p| p.ends_with(&meta.unencrypted_suffix))
    {
        encrypted = false;
    }
    if !meta.encrypted_suffix.is_empty() {
        encrypted = path.iter().any(|p| p.ends_with(&meta.encrypted_suffix));
    }
    if let Some(re) = &meta.unencrypted_regex
        && path.iter().any(|p| re.is_match(p))
    {
        encrypted = false;
    }
    if let Some(re) = &meta.encrypted_regex {
        encrypted = path.iter().any(|p| re.is_match(p));
    }
    if meta.encrypted_comment_regex.is_some() {
        encrypted = false;
    }
    encrypted
}

/// SOPS's `ToBytes`: the bytes of a plaintext value fed to the MAC.
fn scalar_bytes(v: &Value) -> Result<Vec<u8>, String> {
    Ok(match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string().into_bytes()
            } else if let Some(u) = n.as_u64() {
                u.to_string().into_bytes()
            } else {
                go_format_float(n.as_f64().unwrap_or(f64::NAN)).into_bytes()
            }
        }
        Value::Tagged(t) => return scalar_bytes(&t.value),
        other => return Err(format!("cannot convert {} to bytes", type_name(other))),
    })
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
pub(crate) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]` (as SOPS's regular expression
/// does: anchored at the start, not at the end).
/// The parts of an `ENC[...]` value: data, iv, tag and type.
type EncParts<'a> = (Vec<u8>, Vec<u8>, Vec<u8>, &'a str);

fn parse_enc(s: &str) -> Result<EncParts<'_>, String> {
    const MALFORMED: &str = "the value does not match sops' data format ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]";
    let rest = s.strip_prefix("ENC[AES256_GCM,data:").ok_or(MALFORMED)?;
    let (data, rest) = rest.split_once(",iv:").ok_or(MALFORMED)?;
    let (iv, rest) = rest.split_once(",tag:").ok_or(MALFORMED)?;
    let (tag, rest) = rest.split_once(",type:").ok_or(MALFORMED)?;
    let ty = match rest.rfind(']') {
        Some(i) => &rest[..i],
        None => return Err(MALFORMED.into()),
    };
    if data.is_empty() || iv.is_empty() || tag.is_empty() || ty.is_empty() {
        return Err(MALFORMED.into());
    }
    let d = |what: &str, s: &str| {
        B64.decode(s)
            .map_err(|e| format!("error base64-decoding {what}: {e}"))
    };
    Ok((d("data", data)?, d("iv", iv)?, d("tag", tag)?, ty))
}

/// SOPS's AES-GCM `Decrypt`: an empty string stays empty; otherwise the value is decrypted
/// with the additional data and typed by its `type:`.
fn decrypt_value(s: &str, key: &[u8], additional_data: &str) -> Result<Value, String> {
    if s.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let (data, iv, tag, ty) = parse_enc(s)?;
    let mut ct = data;
    ct.extend_from_slice(&tag);
    let plain = match iv.len() {
        32 => {
            let c = AesGcm::<Aes256, U32>::new_from_slice(key).map_err(|e| e.to_string())?;
            c.decrypt(
                Nonce::<U32>::from_slice(&iv),
                Payload {
                    msg: &ct,
                    aad: additional_data.as_bytes(),
                },
            )
        }
        12 => {
            let c = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?;
            c.decrypt(
                aes_gcm::Nonce::from_slice(&iv),
                Payload {
                    msg: &ct,
                    aad: additional_data.as_bytes(),
                },
            )
        }
        n => return Err(format!("unsupported iv length {n} (expected 32 bytes)")),
    }
    .map_err(|_| {
        "could not decrypt with AES_GCM: message authentication failed (the value was modified, moved, or encrypted with another data key)".to_string()
    })?;
    let text = || String::from_utf8_lossy(&plain).into_owned();
    Ok(match ty {
        "str" | "bytes" | "time" | "comment" => Value::String(text()),
        "int" => {
            let t = text();
            Value::Number(
                t.parse::<i64>()
                    .map_err(|_| format!("decrypted value of type int is not an integer: {t:?}"))?
                    .into(),
            )
        }
        "float" => {
            let t = text();
            let f = match t.as_str() {
                "+Inf" | "Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                _ => t
                    .parse::<f64>()
                    .map_err(|_| format!("decrypted value of type float is not a number: {t:?}"))?,
            };
            Value::Number(f.into())
        }
        "bool" => Value::Bool(
            parse_go_bool(&text())
                .ok_or_else(|| "decrypted value of type bool is not a boolean".to_string())?,
        ),
        other => return Err(format!("unknown datatype: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_normalized_like_go() {
        assert_eq!(
            normalize_rfc3339("2024-05-01T10:11:12Z").as_deref(),
            Some("2024-05-01T10:11:12Z")
        );
        assert_eq!(
            normalize_rfc3339("2024-05-01T10:11:12.123456Z").as_deref(),
            Some("2024-05-01T10:11:12Z")
        );
        assert_eq!(
            normalize_rfc3339("2024-05-01T10:11:12+00:00").as_deref(),
            Some("2024-05-01T10:11:12Z")
        );
        assert_eq!(
            normalize_rfc3339("2024-05-01T10:11:12-07:00").as_deref(),
            Some("2024-05-01T10:11:12-07:00")
        );
        assert_eq!(normalize_rfc3339("yesterday"), None);
    }

    #[test]
    fn floats_formatted_like_go() {
        assert_eq!(go_format_float(1.0), "1");
        assert_eq!(go_format_float(0.1), "0.1");
        assert_eq!(go_format_float(1e21), "1000000000000000000000");
        assert_eq!(go_format_float(1e-7), "0.0000001");
        assert_eq!(go_format_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn malformed_enc_is_reported() {
        let e = decrypt_value("ENC[AES256_GCM,data:abc]", &[0; 32], "a:").unwrap_err();
        assert!(e.contains("does not match sops' data format"), "{e}");
        let e = decrypt_value(
            "ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]",
            &[0; 32],
            "a:",
        )
        .unwrap_err();
        assert!(e.contains("base64-decoding data"), "{e}");
    }

    #[test]
    fn identities_parse_with_comments() {
        let text = "# created: 2024\n# public key: age1...\nAGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n";
        let ids = parse_identities(text).unwrap();
        assert_eq!(ids.len(), 1);
        assert!(ids[0].recipient().starts_with("age1"));
        assert!(parse_identities("# nothing\n").is_err());
        assert!(parse_identities("AGE-SECRET-KEY-1XYZ").is_err());
    }
}
