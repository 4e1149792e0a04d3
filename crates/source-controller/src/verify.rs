//! `spec.verify` of a GitRepository: OpenPGP or SSH signatures of the HEAD commit and/or the
//! tag, checked against the public keys of a Secret. The keys are read the way Flux reads them:
//! every data value is an armored key ring, except values under keys ending in `.sshpub`,
//! which are SSH public keys in `authorized_keys` format (git's `gpg.format=ssh` signatures,
//! sshsig with namespace `git`).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::{Duration, SystemTime};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::Signature;
use pgp::types::{KeyDetails, Tag};

use crate::git::SignedObject;

/// Secret data keys with this suffix hold SSH public keys, not PGP key rings.
pub const SSH_KEY_SUFFIX: &str = ".sshpub";
/// The suffix Flux documents for PGP key rings (any other key is read as one too).
pub const PGP_KEY_SUFFIX: &str = ".asc";

/// Condition reasons of `SourceVerified` (source-controller's own strings).
pub mod reasons {
    /// The commit signature did not verify.
    pub const INVALID_COMMIT_SIGNATURE: &str = "InvalidCommitSignature";
    /// The tag signature did not verify.
    pub const INVALID_TAG_SIGNATURE: &str = "InvalidTagSignature";
    /// The tag is not signed (or lightweight).
    pub const INVALID_GIT_OBJECT: &str = "InvalidGitObject";
    /// Tag verification asked for a reference that is not a tag.
    pub const INVALID_VERIFICATION_MODE: &str = "InvalidVerificationMode";
    /// The key Secret cannot be read.
    pub const VERIFICATION_ERROR: &str = "VerificationError";
}

/// The trusted keys of a verification Secret.
#[derive(Debug, Default, Clone)]
pub struct TrustedKeys {
    /// Armored PGP key rings, one per Secret value.
    pub key_rings: Vec<Vec<u8>>,
    /// SSH authorized keys (`*.sshpub`).
    pub ssh_keys: Vec<Vec<u8>>,
}

impl TrustedKeys {
    /// Sorts the Secret's data into key rings and SSH keys.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> TrustedKeys {
        let mut keys = TrustedKeys::default();
        for (k, v) in data {
            if k.ends_with(SSH_KEY_SUFFIX) {
                keys.ssh_keys.push(v.clone());
            } else {
                keys.key_rings.push(v.clone());
            }
        }
        keys
    }
}

/// Flux's name for the kind of signature (`openpgp`, `ssh`, `x509`, `empty`, `unknown`).
pub fn signature_type(signature: &str) -> &'static str {
    let s = signature.trim();
    if s.starts_with("-----BEGIN PGP SIGNATURE-----") {
        "openpgp"
    } else if s.starts_with("-----BEGIN SSH SIGNATURE-----") {
        "ssh"
    } else if s.starts_with("-----BEGIN SIGNED MESSAGE-----") {
        "x509"
    } else if signature.is_empty() {
        "empty"
    } else {
        "unknown"
    }
}

/// Verifies a commit's or tag's signature (`what` is "commit" or "tag", as in the messages);
/// returns the key ID (16 upper-case hex digits of the primary key) that verified it.
pub fn verify_object(what: &str, obj: &SignedObject, keys: &TrustedKeys) -> Result<String, String> {
    match signature_type(&obj.signature) {
        "openpgp" => {
            if keys.key_rings.is_empty() {
                return Err(format!(
                    "PGP signature detected but no PGP public keys found in secret (keys with {PGP_KEY_SUFFIX} suffix)"
                ));
            }
            verify_pgp(&obj.signature, &obj.payload, &keys.key_rings)
                .map_err(|e| format!("unable to verify Git {what}: {e}"))
        }
        "ssh" => {
            if keys.ssh_keys.is_empty() {
                return Err(format!(
                    "SSH signature detected but no SSH public keys found in secret (keys with {SSH_KEY_SUFFIX} suffix)"
                ));
            }
            verify_ssh(&obj.signature, &obj.payload, &keys.ssh_keys)
                .map_err(|e| format!("unable to verify Git {what} SSH signature: {e}"))
        }
        other => Err(format!("unsupported signature type: {other}")),
    }
}

/// Whether the key carries a valid revocation signature made by itself. A revoked key
/// verifies nothing (as in go-crypto, which Flux uses).
fn revoked(key: &SignedPublicKey) -> bool {
    key.details
        .revocation_signatures
        .iter()
        .any(|s| s.verify_key(&key.primary_key).is_ok())
}

fn key_id_hex(id: &pgp::types::KeyId) -> String {
    id.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// The trimmed signature, or Flux's error when it or the payload is empty (both kinds of
/// signature check these first).
fn signature_and_payload<'s>(signature: &'s str, payload: &[u8]) -> Result<&'s str, String> {
    let signature = signature.trim();
    if signature.is_empty() {
        return Err("unable to verify payload: signature is empty".into());
    }
    if payload.is_empty() {
        return Err("unable to verify payload: payload is empty".into());
    }
    Ok(signature)
}

/// Verifies an armored detached signature over `payload` with any key of any key ring.
pub fn verify_pgp(
    signature: &str,
    payload: &[u8],
    key_rings: &[Vec<u8>],
) -> Result<String, String> {
    let signature = signature_and_payload(signature, payload)?;
    let (sig, _) = DetachedSignature::from_armor_single(Cursor::new(signature.as_bytes()))
        .map_err(|e| format!("unable to verify payload: cannot parse the signature: {e}"))?;
    let now = SystemTime::now();
    let mut read_error = None;
    let mut attempted = false;
    // A key that made the signature but is not valid now (Flux's go-crypto refuses those
    // too, and reports "no matching key"); named in the error so the user knows why.
    let mut invalid_signer = None;
    for ring in key_rings {
        let keys = match SignedPublicKey::from_armor_many(Cursor::new(ring.as_slice())) {
            Ok((keys, _)) => keys,
            Err(e) => {
                read_error.get_or_insert_with(|| format!("unable to read armored key ring: {e}"));
                continue;
            }
        };
        for key in keys {
            let key = match key {
                Ok(k) => k,
                Err(e) => {
                    read_error
                        .get_or_insert_with(|| format!("unable to read armored key ring: {e}"));
                    continue;
                }
            };
            attempted = true;
            if revoked(&key) {
                continue;
            }
            let id = key_id_hex(&key.primary_key.legacy_key_id());
            let signer = if sig.verify(&key.primary_key, payload).is_ok() {
                Some(None)
            } else {
                key.public_subkeys
                    .iter()
                    .find(|sub| {
                        sub.verify_bindings(&key.primary_key).is_ok()
                            && sig.verify(&sub.key, payload).is_ok()
                    })
                    .map(Some)
            };
            let Some(subkey) = signer else {
                continue;
            };
            match validity_problem(&key, subkey, &sig.signature, now) {
                None => return Ok(id),
                Some(problem) => {
                    invalid_signer.get_or_insert(format!("key '{id}' {problem}"));
                }
            }
        }
    }
    match (read_error, invalid_signer) {
        (Some(e), None) if !attempted => Err(e),
        (_, Some(why)) => Err(format!(
            "unable to verify payload with any of the given key rings: no matching key: {why}"
        )),
        _ => {
            Err("unable to verify payload with any of the given key rings: no matching key".into())
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// The latest valid self-signature of the primary key, preferring the primary User ID
/// (go-crypto's `PrimarySelfSignature`), else the latest direct-key signature.
fn primary_self_signature(key: &SignedPublicKey) -> Option<&Signature> {
    let created = |s: &Signature| s.created().map(SystemTime::from);
    key.details
        .users
        .iter()
        .flat_map(|u| {
            u.signatures.iter().filter(move |s| {
                s.verify_certification(&key.primary_key, Tag::UserId, &u.id)
                    .is_ok()
            })
        })
        .max_by_key(|s| (s.is_primary(), created(s)))
        .or_else(|| {
            key.details
                .direct_signatures
                .iter()
                .filter(|s| s.verify_key(&key.primary_key).is_ok())
                .max_by_key(|s| created(s))
        })
}

/// A lifetime subpacket's value; zero means none, as absent does.
fn lifetime(d: Option<pgp::types::Duration>) -> Option<Duration> {
    d.map(Duration::from).filter(|d| !d.is_zero())
}

/// When a key created at `created` with the lifetime of `sig` expires (`None`: never).
fn key_expiry(created: SystemTime, sig: &Signature) -> Option<SystemTime> {
    lifetime(sig.key_expiration_time()).map(|d| created + d)
}

/// Why a signature made by `key` (or its `subkey`) must not be trusted at `now`, with
/// go-crypto's rules (`checkSignatureDetails`, which Flux's verification runs): the primary
/// key or signing subkey is not valid yet or has expired according to its latest
/// self-signature, or the signature, that self-signature or the subkey binding has expired.
/// Revocations are handled by the caller.
fn validity_problem(
    key: &SignedPublicKey,
    subkey: Option<&SignedPublicSubKey>,
    sig: &Signature,
    now: SystemTime,
) -> Option<String> {
    let self_sig = primary_self_signature(key);
    let primary_created: SystemTime = key.primary_key.created_at().into();
    if primary_created > now {
        return Some(format!(
            "is not valid yet (created {})",
            rfc3339(primary_created)
        ));
    }
    if let Some(exp) = self_sig.and_then(|s| key_expiry(primary_created, s))
        && now > exp
    {
        return Some(format!("expired on {}", rfc3339(exp)));
    }
    let mut sigs: Vec<(&str, &Signature)> = vec![("signature", sig)];
    if let Some(s) = self_sig {
        sigs.push(("self-signature", s));
    }
    if let Some(sub) = subkey {
        let binding = sub
            .signatures
            .iter()
            .filter(|s| s.verify_subkey_binding(&key.primary_key, &sub.key).is_ok())
            .max_by_key(|s| s.created().map(SystemTime::from));
        let sub_created: SystemTime = sub.key.created_at().into();
        if sub_created > now {
            return Some(format!(
                "has a signing subkey that is not valid yet (created {})",
                rfc3339(sub_created)
            ));
        }
        if let Some(exp) = binding.and_then(|b| key_expiry(sub_created, b))
            && now > exp
        {
            return Some(format!(
                "has a signing subkey that expired on {}",
                rfc3339(exp)
            ));
        }
        if let Some(b) = binding {
            sigs.push(("subkey binding signature", b));
        }
    }
    for (what, s) in sigs {
        let Some(created) = s.created().map(SystemTime::from) else {
            continue;
        };
        if created > now {
            return Some(format!(
                "made a {what} dated in the future ({})",
                rfc3339(created)
            ));
        }
        if let Some(expiry) = lifetime(s.signature_expiration_time()).map(|d| created + d)
            && now > expiry
        {
            return Some(format!("made a {what} that expired on {}", rfc3339(expiry)));
        }
    }
    None
}

/// Verifies an armored SSH signature (sshsig, namespace `git`) over `payload` with any key of
/// any authorized_keys text (Flux's `VerifySSHSignature`); returns the SHA256 fingerprint of
/// the key that verified it.
pub fn verify_ssh(
    signature: &str,
    payload: &[u8],
    authorized_keys: &[Vec<u8>],
) -> Result<String, String> {
    let signature = signature_and_payload(signature, payload)?;
    if signature_type(signature) != "ssh" {
        return Err(format!(
            "unable to verify SSH signature, detected signature format: {}: signature format mismatch",
            signature_type(signature)
        ));
    }
    let sig = ssh_key::SshSig::from_pem(signature)
        .map_err(|e| format!("unable to unarmor SSH signature: {e}"))?;
    let mut parse_error = None;
    let mut attempted = false;
    let mut failures: Vec<String> = Vec::new();
    for text in authorized_keys {
        let keys = match parse_authorized_keys(&String::from_utf8_lossy(text)) {
            Ok(k) => k,
            Err(e) => {
                parse_error.get_or_insert(format!("unable to parse authorized keys: {e}"));
                continue;
            }
        };
        attempted = true;
        for key in keys {
            let failure = if key.key_data() != sig.public_key() {
                "public key does not match".to_string()
            } else if sig.namespace() != SSH_SIGNATURE_NAMESPACE {
                "namespace does not match".to_string()
            } else {
                match key.verify(SSH_SIGNATURE_NAMESPACE, payload, &sig) {
                    Ok(()) => return Ok(key.fingerprint(ssh_key::HashAlg::Sha256).to_string()),
                    Err(e) => format!("ssh: signature did not verify: {e}"),
                }
            };
            if !failures.contains(&failure) {
                failures.push(failure);
            }
        }
    }
    match parse_error {
        Some(e) if !attempted => Err(e),
        _ => {
            // Flux joins the causes with newlines (Go's errors.Join).
            let mut msg = String::from(
                "unable to verify payload with any of the given authorized keys: no matching key",
            );
            for f in failures {
                msg.push('\n');
                msg.push_str(&f);
            }
            Err(msg)
        }
    }
}

/// The namespace git signs commits and tags in.
pub const SSH_SIGNATURE_NAMESPACE: &str = "git";

/// The public keys of an authorized_keys text; blank and `#` lines are skipped and any other
/// line that is not a key fails the whole text (as Flux's `ParseAuthorizedKeys` does).
fn parse_authorized_keys(text: &str) -> Result<Vec<ssh_key::PublicKey>, String> {
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = line
            .parse::<ssh_key::authorized_keys::Entry>()
            .map_err(|e| format!("unable to parse authorized key: {e}"))?;
        keys.push(entry.public_key().clone());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_types() {
        assert_eq!(signature_type(""), "empty");
        assert_eq!(
            signature_type("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----"),
            "openpgp"
        );
        assert_eq!(signature_type("-----BEGIN SSH SIGNATURE-----"), "ssh");
        assert_eq!(signature_type("garbage"), "unknown");
    }

    #[test]
    fn unsigned_and_keyless_objects_fail_with_flux_messages() {
        let keys = TrustedKeys::from_secret_data(&BTreeMap::from([(
            "author.sshpub".to_string(),
            b"ssh-ed25519 AAAA".to_vec(),
        )]));
        assert_eq!(keys.ssh_keys.len(), 1);
        let unsigned = SignedObject {
            signature: String::new(),
            payload: b"tree x\n".to_vec(),
        };
        assert_eq!(
            verify_object("commit", &unsigned, &keys).unwrap_err(),
            "unsupported signature type: empty"
        );
        let signed = SignedObject {
            signature: "-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----".into(),
            payload: b"tree x\n".to_vec(),
        };
        assert_eq!(
            verify_object("commit", &signed, &keys).unwrap_err(),
            "PGP signature detected but no PGP public keys found in secret (keys with .asc suffix)"
        );
    }
}
