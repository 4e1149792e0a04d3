//! `spec.verify` of a GitRepository: OpenPGP signatures of the HEAD commit and/or the tag,
//! checked against the public keys of a Secret. The keys are read the way Flux reads them:
//! every data value is an armored key ring, except values under keys ending in `.sshpub`
//! (SSH authorized keys, which this controller cannot check yet).

use std::collections::BTreeMap;
use std::io::Cursor;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

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
        "ssh" => Err("unsupported signature type: ssh (SSH signatures are not verified by this controller; sign with an OpenPGP key)".to_string()),
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

/// Verifies an armored detached signature over `payload` with any key of any key ring.
pub fn verify_pgp(
    signature: &str,
    payload: &[u8],
    key_rings: &[Vec<u8>],
) -> Result<String, String> {
    let signature = signature.trim();
    if signature.is_empty() {
        return Err("unable to verify payload: signature is empty".into());
    }
    if payload.is_empty() {
        return Err("unable to verify payload: payload is empty".into());
    }
    let (sig, _) = DetachedSignature::from_armor_single(Cursor::new(signature.as_bytes()))
        .map_err(|e| format!("unable to verify payload: cannot parse the signature: {e}"))?;
    let mut read_error = None;
    let mut attempted = false;
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
            if sig.verify(&key.primary_key, payload).is_ok() {
                return Ok(key_id_hex(&key.primary_key.legacy_key_id()));
            }
            for sub in &key.public_subkeys {
                if sub.verify_bindings(&key.primary_key).is_ok()
                    && sig.verify(&sub.key, payload).is_ok()
                {
                    return Ok(key_id_hex(&key.primary_key.legacy_key_id()));
                }
            }
        }
    }
    match read_error {
        Some(e) if !attempted => Err(e),
        _ => {
            Err("unable to verify payload with any of the given key rings: no matching key".into())
        }
    }
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
