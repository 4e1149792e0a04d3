//! sprig's cryptographic functions (sprig v3.3.0 `crypto.go`, the version Helm v4 ships):
//! `genPrivateKey`, `genCA`, `genSelfSignedCert`, `genSignedCert` and their `WithKey`
//! forms, `buildCustomCert`, `bcrypt`, `htpasswd`, `derivePassword`, `encryptAES` and
//! `decryptAES`.
//!
//! Unlike the rest of the engine, key material, certificate serial numbers, bcrypt salts and
//! AES IVs never come from [`crate::Host`] (whose generator may be a seeded, predictable
//! one): they come from the system's CSPRNG, through aws-lc-rs or (for the RustCrypto
//! crates below) straight from the OS. The clock (a certificate's NotBefore) does come from
//! the host.
//!
//! Certificates are built as Go's `x509.CreateCertificate` builds them for sprig's templates,
//! field for field and extension for extension, so that a certificate differs from Helm's
//! only in its random parts (key, serial, signature) and its times.
//!
//! aws-lc-rs does most of the work. What it cannot do, pure-Rust RustCrypto crates do: DSA
//! parameter and key generation (`genPrivateKey "dsa"`), and, for keys handed to a `WithKey`
//! function, RSA keys outside 2048..=8192 bits and P-224 keys. As in Go, RSA keys under
//! 1024 bits are accepted as subject keys but refuse to sign, and a DSA key can be parsed but
//! neither sign nor be certified (Go's x509 supports neither), each with Go's error.

use std::sync::Arc;

use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine;

use crate::exec::{Exec, FuncMap};
use crate::gofmt::sprint_v;
use crate::value::{Map, Object, Value};

type Res = Result<Value, String>;

// ---------------------------------------------------------------- randomness

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "crypto/rand: failed to read random data")?;
    Ok(b)
}

/// Random bytes straight from the OS, for what needs no key material: aws-lc's generator
/// seeds itself on first use with CPU-jitter entropy, which costs tens of milliseconds — a
/// certificate serial number alone should not pay that.
fn os_random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| "crypto/rand: failed to read random data")?;
    Ok(b)
}

// ---------------------------------------------------------------- DER writing

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    cons(SEQUENCE, parts)
}

/// A non-negative INTEGER from its big-endian magnitude.
fn uint(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let m = &magnitude[skip..];
    let mut c = Vec::with_capacity(m.len() + 1);
    if m.first().is_none_or(|b| b & 0x80 != 0) {
        c.push(0);
    }
    c.extend_from_slice(m);
    tlv(INTEGER, &c)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(bytes.len() + 1);
    c.push(0);
    c.extend_from_slice(bytes);
    tlv(BIT_STRING, &c)
}

// Object identifiers, as the content octets of their DER encoding.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_P224: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x21];
/// The DigestInfo prefix of a PKCS #1 v1.5 SHA-256 signature (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
const OID_AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

// ---------------------------------------------------------------- DER reading

/// One TLV read from the front of `input`: (tag, content, whole element, rest).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, String> {
    let err = || "asn1: syntax error: data truncated".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(err)?;
    if tag & 0x1f == 0x1f {
        return Err("asn1: structure error: tags don't match".into());
    }
    let (&l0, mut rest) = rest.split_first().ok_or_else(err)?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("asn1: syntax error: invalid length".into());
        }
        let mut l = 0usize;
        for b in &rest[..n] {
            l = (l << 8) | *b as usize;
        }
        rest = &rest[n..];
        l
    };
    if rest.len() < len {
        return Err(err());
    }
    let header = input.len() - rest.len();
    Ok((tag, &rest[..len], &input[..header + len], &rest[len..]))
}

/// The content of the element at the front of `input`, which must have tag `tag`.
fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (t, c, _, rest) = read_tlv(input)?;
    if t != tag {
        return Err("asn1: structure error: tags don't match".into());
    }
    Ok((c, rest))
}

// ---------------------------------------------------------------- PEM

/// Go's `pem.EncodeToMemory` for a block without headers.
fn pem_encode(kind: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {kind}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {kind}-----\n"));
    out
}

/// Go's `pem.Decode`: the first well-formed block, as (type, bytes).
fn pem_decode(data: &str) -> Option<(String, Vec<u8>)> {
    let mut rest = data;
    loop {
        let start = rest.find("-----BEGIN ")?;
        // The BEGIN line must start a line.
        if start > 0 && !rest[..start].ends_with('\n') {
            rest = &rest[start + 11..];
            continue;
        }
        let after = &rest[start + 11..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let line = after[..line_end].trim_end_matches([' ', '\t', '\r']);
        let next = &after[line_end..];
        let Some(kind) = line.strip_suffix("-----") else {
            rest = next;
            continue;
        };
        let end_marker = format!("-----END {kind}-----");
        let Some(end) = next.find(&format!("\n{end_marker}")) else {
            rest = next;
            continue;
        };
        let body = &next[..end];
        // Headers ("Key: value" lines before an empty line) are skipped.
        let body = match body.find("\n\n").or_else(|| body.find("\r\n\r\n")) {
            Some(i) if body[..i].contains(':') => &body[i..],
            _ => body,
        };
        let clean: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(clean) {
            Ok(b) => return Some((kind.to_string(), b)),
            Err(_) => {
                rest = &next[end + 1..];
                continue;
            }
        }
    }
}

// ---------------------------------------------------------------- base64 as Go decodes it

/// Go's `base64.StdEncoding.DecodeString`, with its error messages.
fn go_b64_decode(s: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let val = |c: u8| ALPHABET.iter().position(|x| *x == c).map(|p| p as u32);
    let src = s.as_bytes();
    let corrupt = |i: usize| Err(format!("illegal base64 data at input byte {i}"));
    let is_nl = |c: u8| c == b'\n' || c == b'\r';
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let mut dbuf = [0u32; 4];
        let mut dlen = 4;
        let mut j = 0;
        let mut end = false;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return corrupt(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = val(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if is_nl(c) {
                continue;
            }
            if c != b'=' {
                return corrupt(si - 1);
            }
            match j {
                0 | 1 => return corrupt(si - 1),
                2 => {
                    while si < src.len() && is_nl(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return corrupt(src.len());
                    }
                    if src[si] != b'=' {
                        return corrupt(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && is_nl(src[si]) {
                si += 1;
            }
            if si < src.len() {
                return corrupt(si);
            }
            dlen = j;
            end = true;
            break;
        }
        let v = (dbuf[0] << 18) | (dbuf[1] << 12) | (dbuf[2] << 6) | dbuf[3];
        let b = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&b[..dlen - 1]);
        if end {
            return Ok(out);
        }
    }
}

// ---------------------------------------------------------------- keys

#[derive(Clone, Copy, PartialEq)]
enum Curve {
    P224,
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_oid(oid: &[u8]) -> Result<Curve, String> {
        match oid {
            OID_P256 => Ok(Curve::P256),
            OID_P384 => Ok(Curve::P384),
            OID_P521 => Ok(Curve::P521),
            OID_P224 => Ok(Curve::P224),
            _ => Err("x509: unknown elliptic curve".into()),
        }
    }
    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P224 => OID_P224,
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
        }
    }
    /// aws-lc-rs's algorithm for the curve; None for P-224, which it does not sign with.
    fn alg(self) -> Option<&'static signature::EcdsaSigningAlgorithm> {
        match self {
            Curve::P224 => None,
            Curve::P256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            Curve::P384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
            Curve::P521 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
        }
    }
    /// The signature algorithm Go picks for a key on this curve.
    fn sig_oid(self) -> &'static [u8] {
        match self {
            Curve::P224 | Curve::P256 => OID_ECDSA_SHA256,
            Curve::P384 => OID_ECDSA_SHA384,
            Curve::P521 => OID_ECDSA_SHA512,
        }
    }
}

enum PrivKey {
    Rsa(RsaKeyPair),
    /// An RSA key of a size aws-lc-rs refuses (under 2048 or over 8192 bits).
    RsaOther(Box<rsa::RsaPrivateKey>),
    Ec(EcdsaKeyPair, Curve),
    P224(p224::SecretKey),
    Ed25519(Ed25519KeyPair),
    /// A DSA key (its DER): sprig parses it, Go's x509 neither signs with it nor certifies
    /// it, so [`create_certificate`] refuses it before any of the methods below are used.
    Dsa(Vec<u8>),
}

/// The parts of an unencrypted PKCS#8 `PrivateKeyInfo`: (algorithm OID, algorithm
/// parameters, private key octets).
type Pkcs8Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn pkcs8_parts(der: &[u8]) -> Result<Pkcs8Parts<'_>, String> {
    let (body, _) = expect(der, SEQUENCE)?;
    let (_version, rest) = expect(body, INTEGER)?;
    let (alg, rest) = expect(rest, SEQUENCE)?;
    let (oid, params) = expect(alg, OID)?;
    let (key, _) = expect(rest, OCTET_STRING)?;
    Ok((oid, params, key))
}

/// An RSA key aws-lc-rs refused, in the form the `rsa` crate reads (PKCS #1 or PKCS #8):
/// aws-lc-rs takes 2048 to 8192-bit keys only, Go any size (it refuses to sign with fewer than
/// 1024 bits, not to parse).
fn rsa_fallback(
    e: aws_lc_rs::error::KeyRejected,
    der: &[u8],
    parse: fn(&[u8]) -> Option<rsa::RsaPrivateKey>,
) -> Result<PrivKey, String> {
    match e.to_string().as_str() {
        "TooSmall" | "TooLarge" => parse(der)
            .map(|k| PrivKey::RsaOther(Box::new(k)))
            .ok_or_else(|| "x509: invalid RSA private key".to_string()),
        other => Err(format!("x509: invalid RSA private key: {other}")),
    }
}

fn rsa_from_pkcs1(der: &[u8]) -> Option<rsa::RsaPrivateKey> {
    rsa::pkcs1::DecodeRsaPrivateKey::from_pkcs1_der(der).ok()
}

fn rsa_from_pkcs8(der: &[u8]) -> Option<rsa::RsaPrivateKey> {
    rsa::pkcs8::DecodePrivateKey::from_pkcs8_der(der).ok()
}

/// Go's `SignPKCS1v15` refuses keys under 1024 bits (crypto/rsa's minimum key size).
fn go_rsa_size_check(bits: usize) -> Result<(), String> {
    if bits < 1024 {
        return Err(format!(
            "crypto/rsa: {bits}-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)"
        ));
    }
    Ok(())
}

/// sprig's `DSAKeyFormat`: SEQUENCE { version, P, Q, G, Y, X } of INTEGERs.
fn parse_dsa(der: &[u8]) -> Result<PrivKey, String> {
    let (mut body, _) = expect(der, SEQUENCE)?;
    for _ in 0..6 {
        if body.is_empty() {
            return Err("asn1: syntax error: sequence truncated".into());
        }
        let (_, rest) = expect(body, INTEGER)?;
        body = rest;
    }
    Ok(PrivKey::Dsa(der.to_vec()))
}

/// `genPrivateKey "dsa"`: Go's `dsa.GenerateParameters(L2048N256)` and `dsa.GenerateKey`,
/// PEM-encoded as sprig's `DSAKeyFormat` (which OpenSSL reads as a traditional DSA key).
fn generate_dsa() -> String {
    let mut rng = rand_core::OsRng;
    let components = dsa::Components::generate(&mut rng, dsa::KeySize::DSA_2048_256);
    let key = dsa::SigningKey::generate(&mut rng, components);
    let public = key.verifying_key();
    let c = public.components();
    let int = |n: &dsa::BigUint| uint(&n.to_bytes_be());
    let der = seq(&[
        &uint(&[]),
        &int(c.p()),
        &int(c.q()),
        &int(c.g()),
        &int(public.y()),
        &int(key.x()),
    ]);
    pem_encode("DSA PRIVATE KEY", &der)
}

impl PrivKey {
    fn generate_rsa(size: KeySize) -> Result<PrivKey, String> {
        RsaKeyPair::generate(size)
            .map(PrivKey::Rsa)
            .map_err(|_| "crypto/rsa: key generation failed".to_string())
    }

    /// sprig's `parsePrivateKeyPEM`.
    fn parse_pem(pem: &str) -> Result<PrivKey, String> {
        let (kind, der) = pem_decode(pem).ok_or("no PEM data in input")?;
        if kind == "PRIVATE KEY" {
            return Self::parse_pkcs8(&der).map_err(|e| format!("decoding PEM as PKCS#8: {e}"));
        }
        let Some(alg) = kind.strip_suffix(" PRIVATE KEY") else {
            return Err(format!("no private key data in PEM block of type {kind}"));
        };
        match alg {
            "RSA" => RsaKeyPair::from_der(&der)
                .map(PrivKey::Rsa)
                .or_else(|e| rsa_fallback(e, &der, rsa_from_pkcs1))
                .map_err(|e| format!("parsing RSA private key from PEM: {e}")),
            "EC" => Self::parse_sec1(&der, None)
                .map_err(|e| format!("parsing EC private key from PEM: {e}")),
            "DSA" => parse_dsa(&der).map_err(|e| format!("parsing DSA private key from PEM: {e}")),
            _ => Err(format!("invalid private key type {kind}")),
        }
    }

    fn parse_pkcs8(der: &[u8]) -> Result<PrivKey, String> {
        let (oid, params, key) = pkcs8_parts(der).map_err(|e| format!("x509: {e}"))?;
        match oid {
            OID_RSA => RsaKeyPair::from_pkcs8(der)
                .map(PrivKey::Rsa)
                .or_else(|e| rsa_fallback(e, der, rsa_from_pkcs8))
                .map_err(|e| {
                    format!("x509: failed to parse RSA private key embedded in PKCS#8: {e}")
                }),
            OID_EC => {
                let (curve, _) = expect(params, OID).map_err(|e| format!("x509: {e}"))?;
                let curve = Curve::from_oid(curve)?;
                Self::parse_sec1(key, Some(curve)).map_err(|e| {
                    format!("x509: failed to parse EC private key embedded in PKCS#8: {e}")
                })
            }
            OID_ED25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(PrivKey::Ed25519)
                .map_err(|e| format!("x509: invalid Ed25519 private key: {e}")),
            _ => Err("x509: PKCS#8 wrapping contained private key with unknown algorithm".into()),
        }
    }

    /// An RFC 5915 / SEC 1 `ECPrivateKey`; `curve` when the PKCS#8 wrapper named it.
    fn parse_sec1(der: &[u8], curve: Option<Curve>) -> Result<PrivKey, String> {
        let (body, _) = expect(der, SEQUENCE).map_err(|e| format!("x509: {e}"))?;
        let (_version, rest) = expect(body, INTEGER).map_err(|e| format!("x509: {e}"))?;
        let (_key, mut rest) = expect(rest, OCTET_STRING).map_err(|e| format!("x509: {e}"))?;
        let mut named = None;
        while !rest.is_empty() {
            let (tag, c, _, r) = read_tlv(rest).map_err(|e| format!("x509: {e}"))?;
            if tag == 0xa0 {
                let (oid, _) = expect(c, OID).map_err(|e| format!("x509: {e}"))?;
                named = Some(Curve::from_oid(oid)?);
            }
            rest = r;
        }
        let curve = named.or(curve).ok_or("x509: unknown elliptic curve")?;
        let Some(alg) = curve.alg() else {
            // P-224: Go pads a short private key to the order's size and refuses a longer one.
            let (_, rest) = expect(body, INTEGER).map_err(|e| format!("x509: {e}"))?;
            let (key, _) = expect(rest, OCTET_STRING).map_err(|e| format!("x509: {e}"))?;
            if key.len() > 28 {
                return Err("x509: invalid private key length".into());
            }
            let mut padded = [0u8; 28];
            padded[28 - key.len()..].copy_from_slice(key);
            return p224::SecretKey::from_bytes(&padded.into())
                .map(PrivKey::P224)
                .map_err(|_| "x509: invalid elliptic curve private key value".to_string());
        };
        EcdsaKeyPair::from_private_key_der(alg, der)
            .map(|k| PrivKey::Ec(k, curve))
            .map_err(|e| format!("x509: invalid elliptic curve private key value: {e}"))
    }

    /// sprig's `pemBlockForKey`: PKCS#1 for RSA, SEC 1 for ECDSA, PKCS#8 for Ed25519.
    fn to_pem(&self) -> Result<String, String> {
        let fail = |_| "x509: failed to marshal private key".to_string();
        Ok(match self {
            PrivKey::Rsa(k) => {
                let p8: Pkcs8V1Der<'static> = k.as_der().map_err(fail)?;
                let (_, _, pkcs1) = pkcs8_parts(p8.as_ref())?;
                pem_encode("RSA PRIVATE KEY", pkcs1)
            }
            PrivKey::RsaOther(k) => {
                let der = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(k.as_ref())
                    .map_err(|_| "x509: failed to marshal private key".to_string())?;
                pem_encode("RSA PRIVATE KEY", der.as_bytes())
            }
            PrivKey::Ec(k, _) => {
                let der = k.private_key().as_der().map_err(fail)?;
                pem_encode("EC PRIVATE KEY", der.as_ref())
            }
            PrivKey::P224(k) => {
                // Go's MarshalECPrivateKey: version 1, the scalar, [0] curve, [1] public point.
                let der = seq(&[
                    &uint(&[1]),
                    &tlv(OCTET_STRING, &k.to_bytes()),
                    &cons(0xa0, &[&tlv(OID, OID_P224)]),
                    &cons(0xa1, &[&bit_string(&self.public_key_bytes())]),
                ]);
                pem_encode("EC PRIVATE KEY", &der)
            }
            PrivKey::Ed25519(k) => {
                let p8: Pkcs8V1Der<'static> = k.as_der().map_err(fail)?;
                pem_encode("PRIVATE KEY", p8.as_ref())
            }
            PrivKey::Dsa(der) => pem_encode("DSA PRIVATE KEY", der),
        })
    }

    /// The subjectPublicKey bits, as Go's `marshalPublicKey` gives them.
    fn public_key_bytes(&self) -> Vec<u8> {
        match self {
            PrivKey::Rsa(k) => k.public_key().as_ref().to_vec(),
            PrivKey::RsaOther(k) => {
                use rsa::traits::PublicKeyParts;
                seq(&[&uint(&k.n().to_bytes_be()), &uint(&k.e().to_bytes_be())])
            }
            PrivKey::Ec(k, _) => k.public_key().as_ref().to_vec(),
            PrivKey::P224(k) => {
                use p224::elliptic_curve::sec1::ToEncodedPoint;
                k.public_key().to_encoded_point(false).as_bytes().to_vec()
            }
            PrivKey::Ed25519(k) => k.public_key().as_ref().to_vec(),
            PrivKey::Dsa(_) => Vec::new(),
        }
    }

    /// The SubjectPublicKeyInfo.
    fn spki(&self) -> Vec<u8> {
        let alg = match self {
            PrivKey::Rsa(_) | PrivKey::RsaOther(_) => seq(&[&tlv(OID, OID_RSA), &tlv(NULL, &[])]),
            PrivKey::Ec(_, c) => seq(&[&tlv(OID, OID_EC), &tlv(OID, c.oid())]),
            PrivKey::P224(_) => seq(&[&tlv(OID, OID_EC), &tlv(OID, OID_P224)]),
            PrivKey::Ed25519(_) => seq(&[&tlv(OID, OID_ED25519)]),
            PrivKey::Dsa(_) => return Vec::new(),
        };
        seq(&[&alg, &bit_string(&self.public_key_bytes())])
    }

    /// The AlgorithmIdentifier of the signatures this key makes (Go's defaults).
    fn sig_alg(&self) -> Vec<u8> {
        match self {
            PrivKey::Rsa(_) | PrivKey::RsaOther(_) => {
                seq(&[&tlv(OID, OID_SHA256_RSA), &tlv(NULL, &[])])
            }
            PrivKey::Ec(_, c) => seq(&[&tlv(OID, c.sig_oid())]),
            PrivKey::P224(_) => seq(&[&tlv(OID, OID_ECDSA_SHA256)]),
            PrivKey::Ed25519(_) => seq(&[&tlv(OID, OID_ED25519)]),
            PrivKey::Dsa(_) => Vec::new(),
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let fail = |_| "x509: signing failed".to_string();
        match self {
            PrivKey::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(fail)?;
                Ok(sig)
            }
            PrivKey::RsaOther(k) => {
                use rsa::traits::PublicKeyParts;
                go_rsa_size_check(k.n().bits())?;
                let padding = rsa::Pkcs1v15Sign {
                    hash_len: Some(32),
                    prefix: SHA256_DIGEST_INFO.into(),
                };
                k.sign_with_rng(&mut rand_core::OsRng, padding, &sha256(msg))
                    .map_err(|_| "x509: signing failed".to_string())
            }
            PrivKey::Ec(k, _) => Ok(k.sign(&rng, msg).map_err(fail)?.as_ref().to_vec()),
            PrivKey::P224(k) => {
                use p224::ecdsa::signature::hazmat::PrehashSigner;
                // ECDSA over the SHA-256 digest, truncated to the order's 224 bits as Go does.
                let sig: p224::ecdsa::Signature = p224::ecdsa::SigningKey::from(k)
                    .sign_prehash(&sha256(msg))
                    .map_err(|_| "x509: signing failed".to_string())?;
                let (r, s) = sig.split_bytes();
                Ok(seq(&[&uint(&r), &uint(&s)]))
            }
            PrivKey::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            PrivKey::Dsa(_) => {
                Err("x509: certificate private key does not implement crypto.Signer".into())
            }
        }
    }
}

fn sha256(msg: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg)
        .as_ref()
        .to_vec()
}

/// sprig's `genPrivateKey`.
fn generate_private_key(typ: &str) -> Result<String, String> {
    let key = match typ {
        "" | "rsa" => PrivKey::generate_rsa(KeySize::Rsa4096),
        "dsa" => return Ok(generate_dsa()),
        "ecdsa" => EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            .map(|k| PrivKey::Ec(k, Curve::P256))
            .map_err(|_| "key generation failed".to_string()),
        "ed25519" => Ed25519KeyPair::generate()
            .map(PrivKey::Ed25519)
            .map_err(|_| "key generation failed".to_string()),
        _ => return Ok(format!("Unknown type {typ}")),
    };
    match key.and_then(|k| k.to_pem()) {
        Ok(p) => Ok(p),
        Err(e) => Ok(format!("failed to generate private key: {e}")),
    }
}

// ---------------------------------------------------------------- certificates

/// sprig's `certificate` struct.
pub struct Certificate {
    pub cert: String,
    pub key: String,
}

impl Object for Certificate {
    fn type_name(&self) -> String {
        "sprig.certificate".into()
    }
    fn kind(&self) -> &'static str {
        "struct"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Cert" => Some(Value::str(&self.cert)),
            "Key" => Some(Value::str(&self.key)),
            _ => None,
        }
    }
    fn fmt_v(&self) -> String {
        format!("{{{} {}}}", self.cert, self.key)
    }
    fn to_data(&self) -> Value {
        let mut m = Map::new();
        m.insert("Cert".into(), Value::str(&self.cert));
        m.insert("Key".into(), Value::str(&self.key));
        Value::map(m)
    }
}

fn cert_value(cert: String, key: String) -> Value {
    Value::Object(Arc::new(Certificate { cert, key }))
}

type MakeCert = Box<dyn FnOnce() -> Result<Certificate, String> + Send>;

/// A `certificate` made on first use: charts often write `{{ $ca := genCA ... }}` before
/// checking whether they need it, and a 2048-bit RSA key costs tens of milliseconds. What
/// depends on the template (names, validity from the host clock) is fixed when it is
/// called; only the key and the signature (random anyway) are deferred.
struct LazyCertificate {
    make: std::sync::Mutex<Option<MakeCert>>,
    made: std::sync::OnceLock<Certificate>,
}

impl LazyCertificate {
    fn get(&self) -> &Certificate {
        self.made.get_or_init(|| {
            let make = self.make.lock().ok().and_then(|mut m| m.take());
            // Key generation and signing with a fresh key do not fail in practice; should
            // they, the fields are empty rather than the process aborting.
            match make.map(|f| f()) {
                Some(Ok(c)) => c,
                _ => Certificate {
                    cert: String::new(),
                    key: String::new(),
                },
            }
        })
    }
}

impl Object for LazyCertificate {
    fn type_name(&self) -> String {
        "sprig.certificate".into()
    }
    fn kind(&self) -> &'static str {
        "struct"
    }
    fn field(&self, name: &str) -> Option<Value> {
        self.get().field(name)
    }
    fn fmt_v(&self) -> String {
        self.get().fmt_v()
    }
    fn to_data(&self) -> Value {
        self.get().to_data()
    }
}

/// The parts of a parsed (signer) certificate that signing with it needs.
struct ParsedCert {
    subject: Vec<u8>,
    spki: Vec<u8>,
    subject_key_id: Vec<u8>,
}

fn parse_certificate(der: &[u8]) -> Result<ParsedCert, String> {
    let e = |e: String| format!("x509: malformed certificate: {e}");
    let (cert, _) = expect(der, SEQUENCE).map_err(e)?;
    let (tbs, rest) = expect(cert, SEQUENCE).map_err(e)?;
    let (_sig_alg, rest) = expect(rest, SEQUENCE).map_err(e)?;
    expect(rest, BIT_STRING).map_err(e)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = read_tlv(rest).map_err(e)?.3;
    }
    let (_serial, r) = expect(rest, INTEGER).map_err(e)?;
    let (_alg, r) = expect(r, SEQUENCE).map_err(e)?;
    let (_issuer, r) = expect(r, SEQUENCE).map_err(e)?;
    let (_validity, r) = expect(r, SEQUENCE).map_err(e)?;
    let (_, _, subject, r) = read_tlv(r).map_err(e)?;
    let (_, _, spki, mut r) = read_tlv(r).map_err(e)?;
    let mut ski = Vec::new();
    while !r.is_empty() {
        let (tag, c, _, next) = read_tlv(r).map_err(e)?;
        if tag == 0xa3 {
            let (mut exts, _) = expect(c, SEQUENCE).map_err(e)?;
            while !exts.is_empty() {
                let (ext, next) = expect(exts, SEQUENCE).map_err(e)?;
                let (oid, mut v) = expect(ext, OID).map_err(e)?;
                if v.first() == Some(&BOOLEAN) {
                    v = read_tlv(v).map_err(e)?.3;
                }
                let (value, _) = expect(v, OCTET_STRING).map_err(e)?;
                if oid == OID_SUBJECT_KEY_ID {
                    ski = expect(value, OCTET_STRING).map_err(e)?.0.to_vec();
                }
                exts = next;
            }
        }
        r = next;
    }
    Ok(ParsedCert {
        subject: subject.to_vec(),
        spki: spki.to_vec(),
        subject_key_id: ski,
    })
}

/// sprig's `getBaseCertTemplate` (plus IsCA and the CA's key usage).
struct Template {
    serial: [u8; 16],
    cn: String,
    ips: Vec<Vec<u8>>,
    dns: Vec<String>,
    not_before: (i64, u32),
    not_after: (i64, u32),
    key_usage: u16,
    is_ca: bool,
}

const KU_DIGITAL_SIGNATURE: u16 = 1;
const KU_KEY_ENCIPHERMENT: u16 = 1 << 2;
const KU_CERT_SIGN: u16 = 1 << 5;

/// A Go `[]interface{}` parameter (nil is an empty slice).
fn iface_list(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::List(l) => Ok(l.to_vec()),
        o => Err(format!(
            "wrong type for value; expected []interface {{}}; got {}",
            o.type_name()
        )),
    }
}

/// Go's `net.ParseIP` then `To4`: 4 bytes for IPv4 (and IPv4-mapped IPv6), else 16.
fn parse_ip(s: &str) -> Option<Vec<u8>> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some(v4.octets().to_vec()),
        std::net::IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        }),
    }
}

fn base_template(
    now: (i64, u32),
    cn: String,
    ips: &[Value],
    dns: &[Value],
    days: i64,
) -> Result<Template, String> {
    let mut ip_bytes = Vec::new();
    for ip in ips {
        let Value::Str(s) = ip else {
            return Err(format!(
                "error parsing ip: {} is not a string",
                sprint_v(ip)
            ));
        };
        ip_bytes.push(parse_ip(s).ok_or_else(|| format!("error parsing ip: {s}"))?);
    }
    let mut names = Vec::new();
    for d in dns {
        let Value::Str(s) = d else {
            return Err(format!(
                "error processing alternate dns name: {} is not a string",
                sprint_v(d)
            ));
        };
        names.push(s.to_string());
    }
    // time.Now().Add(time.Hour * 24 * time.Duration(daysValid)): Duration arithmetic wraps.
    let d = 86_400_000_000_000i64.wrapping_mul(days) as i128;
    let total = now.0 as i128 * 1_000_000_000 + now.1 as i128 + d;
    let not_after = (
        total.div_euclid(1_000_000_000) as i64,
        total.rem_euclid(1_000_000_000) as u32,
    );
    Ok(Template {
        serial: os_random::<16>()?,
        cn,
        ips: ip_bytes,
        dns: names,
        not_before: now,
        not_after,
        key_usage: KU_KEY_ENCIPHERMENT | KU_DIGITAL_SIGNATURE,
        is_ca: false,
    })
}

/// Go's `pkix.Name{CommonName: cn}` marshalled: PrintableString when every byte allows it.
fn subject_name(cn: &str) -> Vec<u8> {
    if cn.is_empty() {
        return seq(&[]);
    }
    let printable = cn.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || (b'\''..=b')').contains(&b)
            || (b'+'..=b'/').contains(&b)
            || matches!(b, b' ' | b':' | b'=' | b'?')
    });
    let tag = if printable {
        PRINTABLE_STRING
    } else {
        UTF8_STRING
    };
    let atv = seq(&[&tlv(OID, OID_CN), &tlv(tag, cn.as_bytes())]);
    seq(&[&cons(SET, &[&atv])])
}

/// A validity time as Go's asn1 marshals it: UTCTime for 1950..2049, else GeneralizedTime.
fn asn1_time(t: (i64, u32)) -> Result<Vec<u8>, String> {
    let days = t.0.div_euclid(86_400);
    let secs = t.0.rem_euclid(86_400);
    let (y, mo, d) = crate::dates::civil(days);
    let hms = format!("{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
    if (1950..2050).contains(&y) {
        Ok(tlv(
            UTC_TIME,
            format!("{:02}{mo:02}{d:02}{hms}", y % 100).as_bytes(),
        ))
    } else if (0..=9999).contains(&y) {
        Ok(tlv(
            GENERALIZED_TIME,
            format!("{y:04}{mo:02}{d:02}{hms}").as_bytes(),
        ))
    } else {
        Err("asn1: cannot represent time as GeneralizedTime".into())
    }
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        seq(&[
            &tlv(OID, oid),
            &tlv(BOOLEAN, &[0xff]),
            &tlv(OCTET_STRING, value),
        ])
    } else {
        seq(&[&tlv(OID, oid), &tlv(OCTET_STRING, value)])
    }
}

/// Go's `marshalKeyUsage`: the bits reversed into a BIT STRING without trailing zeros.
fn key_usage_ext(ku: u16) -> Vec<u8> {
    let a = [(ku as u8).reverse_bits(), ((ku >> 8) as u8).reverse_bits()];
    let bytes = if a[1] != 0 { &a[..] } else { &a[..1] };
    let last = bytes[bytes.len() - 1];
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    let mut c = vec![unused];
    c.extend_from_slice(bytes);
    extension(OID_KEY_USAGE, true, &tlv(BIT_STRING, &c))
}

/// Go's `x509.CreateCertificate` for sprig's templates. `parent` is None when self-signed.
fn create_certificate(
    t: &Template,
    subject_key: &PrivKey,
    parent: Option<&ParsedCert>,
    signer: &PrivKey,
) -> Result<Vec<u8>, String> {
    let subject = subject_name(&t.cn);
    let issuer = parent.map(|p| p.subject.clone()).unwrap_or(subject.clone());
    // Go's CreateCertificate checks the signer, then the subject's public key, then the parent.
    if matches!(signer, PrivKey::Dsa(_)) {
        return Err("x509: certificate private key does not implement crypto.Signer".into());
    }
    if matches!(subject_key, PrivKey::Dsa(_)) {
        return Err("x509: unsupported public key type: *dsa.PublicKey".into());
    }
    let public_key_bytes = subject_key.public_key_bytes();
    if let Some(p) = parent
        && p.spki != signer.spki()
    {
        return Err("x509: provided PrivateKey doesn't match parent's PublicKey".into());
    }
    let subject_key_id = if t.is_ca {
        let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public_key_bytes);
        h.as_ref()[..20].to_vec()
    } else {
        Vec::new()
    };
    let authority_key_id = match parent {
        Some(p) if issuer != subject && !p.subject_key_id.is_empty() => p.subject_key_id.clone(),
        _ => Vec::new(),
    };
    let mut exts: Vec<Vec<u8>> = Vec::new();
    exts.push(key_usage_ext(t.key_usage));
    exts.push(extension(
        OID_EXT_KEY_USAGE,
        false,
        &seq(&[&tlv(OID, OID_SERVER_AUTH), &tlv(OID, OID_CLIENT_AUTH)]),
    ));
    let bc = if t.is_ca {
        seq(&[&tlv(BOOLEAN, &[0xff])])
    } else {
        seq(&[])
    };
    exts.push(extension(OID_BASIC_CONSTRAINTS, true, &bc));
    if !subject_key_id.is_empty() {
        exts.push(extension(
            OID_SUBJECT_KEY_ID,
            false,
            &tlv(OCTET_STRING, &subject_key_id),
        ));
    }
    if !authority_key_id.is_empty() {
        exts.push(extension(
            OID_AUTHORITY_KEY_ID,
            false,
            &seq(&[&tlv(0x80, &authority_key_id)]),
        ));
    }
    if !t.dns.is_empty() || !t.ips.is_empty() {
        let mut names = Vec::new();
        for n in &t.dns {
            if !n.is_ascii() {
                return Err(format!("x509: {n:?} cannot be encoded as an IA5String"));
            }
            names.push(tlv(0x82, n.as_bytes()));
        }
        for ip in &t.ips {
            names.push(tlv(0x87, ip));
        }
        let parts: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
        exts.push(extension(OID_SAN, t.cn.is_empty(), &seq(&parts)));
    }
    let ext_parts: Vec<&[u8]> = exts.iter().map(|e| e.as_slice()).collect();
    let sig_alg = signer.sig_alg();
    let tbs = seq(&[
        &cons(0xa0, &[&uint(&[2])]),
        &uint(&t.serial),
        &sig_alg,
        &issuer,
        &seq(&[&asn1_time(t.not_before)?, &asn1_time(t.not_after)?]),
        &subject,
        &subject_key.spki(),
        &cons(0xa3, &[&seq(&ext_parts)]),
    ]);
    let sig = signer.sign(&tbs)?;
    Ok(seq(&[&tbs, &sig_alg, &bit_string(&sig)]))
}

/// sprig's `getCertAndKey`.
fn cert_and_key(
    t: &Template,
    subject_key: &PrivKey,
    parent: Option<&ParsedCert>,
    signer: &PrivKey,
) -> Res {
    let c = cert_and_key_parts(t, subject_key, parent, signer)?;
    Ok(Value::Object(Arc::new(c)))
}

fn cert_and_key_parts(
    t: &Template,
    subject_key: &PrivKey,
    parent: Option<&ParsedCert>,
    signer: &PrivKey,
) -> Result<Certificate, String> {
    let der = create_certificate(t, subject_key, parent, signer)
        .map_err(|e| format!("error creating certificate: {e}"))?;
    let key = subject_key
        .to_pem()
        .map_err(|e| format!("error pem-encoding key: {e}"))?;
    Ok(Certificate {
        cert: pem_encode("CERTIFICATE", &der),
        key,
    })
}

fn new_cert_key() -> Result<PrivKey, String> {
    PrivKey::generate_rsa(KeySize::Rsa2048).map_err(|e| format!("error generating rsa key: {e}"))
}

fn ca_template(ex: &mut Exec<'_>, cn: String, days: i64) -> Result<Template, String> {
    let mut t = base_template(ex.host.now(), cn, &[], &[], days)?;
    t.key_usage = KU_KEY_ENCIPHERMENT | KU_DIGITAL_SIGNATURE | KU_CERT_SIGN;
    t.is_ca = true;
    Ok(t)
}

fn gen_ca(ex: &mut Exec<'_>, cn: String, days: i64, key: PrivKey) -> Res {
    let t = ca_template(ex, cn, days)?;
    cert_and_key(&t, &key, None, &key)
}

/// `genCA`: its key generated (and the certificate signed) on first use.
fn gen_ca_lazy(ex: &mut Exec<'_>, cn: String, days: i64) -> Res {
    let t = ca_template(ex, cn, days)?;
    let make: MakeCert = Box::new(move || {
        let key = new_cert_key()?;
        cert_and_key_parts(&t, &key, None, &key)
    });
    Ok(Value::Object(Arc::new(LazyCertificate {
        make: std::sync::Mutex::new(Some(make)),
        made: std::sync::OnceLock::new(),
    })))
}

fn gen_self_signed(
    ex: &mut Exec<'_>,
    cn: String,
    ips: &Value,
    dns: &Value,
    days: i64,
    key: PrivKey,
) -> Res {
    let t = base_template(
        ex.host.now(),
        cn,
        &iface_list(ips)?,
        &iface_list(dns)?,
        days,
    )?;
    cert_and_key(&t, &key, None, &key)
}

/// A `certificate` parameter: the object genCA and friends return.
fn certificate_arg(v: &Value) -> Result<(String, String), String> {
    match v {
        Value::Object(o) if o.type_name() == "sprig.certificate" => {
            let get = |f: &str| match o.field(f) {
                Some(Value::Str(s)) => s.to_string(),
                _ => String::new(),
            };
            Ok((get("Cert"), get("Key")))
        }
        Value::Nil => Err("invalid value; expected sprig.certificate".into()),
        o => Err(format!(
            "wrong type for value; expected sprig.certificate; got {}",
            o.type_name()
        )),
    }
}

fn gen_signed(
    ex: &mut Exec<'_>,
    cn: String,
    ips: &Value,
    dns: &Value,
    days: i64,
    ca: (String, String),
    key: PrivKey,
) -> Res {
    let ips = iface_list(ips)?;
    let dns = iface_list(dns)?;
    let (_, der) = pem_decode(&ca.0).ok_or("unable to decode certificate")?;
    let signer_cert = parse_certificate(&der)
        .map_err(|e| format!("error parsing certificate: decodedSignerCert.Bytes: {e}"))?;
    let signer_key =
        PrivKey::parse_pem(&ca.1).map_err(|e| format!("error parsing private key: {e}"))?;
    let t = base_template(ex.host.now(), cn, &ips, &dns, days)?;
    cert_and_key(&t, &key, Some(&signer_cert), &signer_key)
}

fn build_custom_cert(b64cert: &str, b64key: &str) -> Res {
    let cert = go_b64_decode(b64cert).map_err(|_| "unable to decode base64 certificate")?;
    let key = go_b64_decode(b64key).map_err(|_| "unable to decode base64 private key")?;
    let cert = String::from_utf8_lossy(&cert).into_owned();
    let key = String::from_utf8_lossy(&key).into_owned();
    let (_, der) = pem_decode(&cert).ok_or("unable to decode certificate")?;
    parse_certificate(&der)
        .map_err(|e| format!("error parsing certificate: decodedCert.Bytes: {e}"))?;
    PrivKey::parse_pem(&key).map_err(|e| format!("error parsing private key: {e}"))?;
    Ok(cert_value(cert, key))
}

// ---------------------------------------------------------------- passwords

/// sprig's `bcrypt` (x/crypto/bcrypt at the default cost, 10, as `$2a$`).
fn bcrypt_hash(input: &str) -> String {
    if input.len() > 72 {
        return "failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes"
            .into();
    }
    let salt = match random::<16>() {
        Ok(s) => s,
        Err(e) => return format!("failed to encrypt string with bcrypt: {e}"),
    };
    match bcrypt::hash_with_salt(input, 10, salt) {
        Ok(h) => h.format_for_version(bcrypt::Version::TwoA),
        Err(e) => format!("failed to encrypt string with bcrypt: {e}"),
    }
}

fn htpasswd(user: &str, pass: &str) -> String {
    if user.contains(':') {
        return format!("invalid username: {user}");
    }
    format!("{user}:{}", bcrypt_hash(pass))
}

const MASTER_PASSWORD_SEED: &str = "com.lyndir.masterpassword";

fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn template_characters(c: u8) -> &'static [u8] {
    match c {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// sprig's `derivePassword`: the Master Password algorithm (scrypt, then HMAC-SHA256).
fn derive_password(counter: u32, kind: &str, password: &str, user: &str, site: &str) -> String {
    let Some(templates) = password_templates(kind) else {
        return format!("cannot find password template {kind}");
    };
    let mut salt = MASTER_PASSWORD_SEED.as_bytes().to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(user.as_bytes());
    let mut key = [0u8; 64];
    let params = match scrypt::Params::new(15, 8, 2, 64) {
        Ok(p) => p,
        Err(e) => return format!("failed to derive password: {e}"),
    };
    if let Err(e) = scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key) {
        return format!("failed to derive password: {e}");
    }
    let mut msg = MASTER_PASSWORD_SEED.as_bytes().to_vec();
    msg.extend_from_slice(&(site.len() as u32).to_be_bytes());
    msg.extend_from_slice(site.as_bytes());
    msg.extend_from_slice(&counter.to_be_bytes());
    let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let seed = aws_lc_rs::hmac::sign(&hkey, &msg);
    let seed = seed.as_ref();
    let template = templates[seed[0] as usize % templates.len()].as_bytes();
    template
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let chars = template_characters(*c);
            chars[seed[i + 1] as usize % chars.len()] as char
        })
        .collect()
}

// ---------------------------------------------------------------- AES

fn aes_key(password: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let p = password.as_bytes();
    let n = p.len().min(32);
    key[..n].copy_from_slice(&p[..n]);
    key
}

/// sprig's `encryptAES`: AES-256-CBC, the password zero-padded or cut to 32 bytes as the
/// key, PKCS#7 padding, a random IV in front, standard base64.
fn encrypt_aes(password: &str, text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    let fail = |_| "crypto/aes: encryption failed".to_string();
    let key = UnboundCipherKey::new(&AES_256, &aes_key(password)).map_err(fail)?;
    let key = EncryptingKey::cbc(key).map_err(fail)?;
    let mut buf = text.as_bytes().to_vec();
    let pad = 16 - buf.len() % 16;
    buf.extend(std::iter::repeat_n(pad as u8, pad));
    let ctx = key.encrypt(&mut buf).map_err(fail)?;
    let DecryptionContext::Iv128(iv) = ctx else {
        return Err("crypto/aes: unexpected IV".into());
    };
    let mut out = iv.as_ref().to_vec();
    out.extend_from_slice(&buf);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// sprig's `decryptAES`, with Go's runtime panics (which text/template turns into errors)
/// for inputs its unchecked slicing cannot take; the padding is not verified.
fn decrypt_aes(password: &str, crypt64: &str) -> Result<String, String> {
    if crypt64.is_empty() {
        return Ok(String::new());
    }
    let crypt = go_b64_decode(crypt64)?;
    if crypt.len() < 16 {
        return Err(format!(
            "runtime error: slice bounds out of range [:16] with capacity {}",
            crypt.len()
        ));
    }
    let (iv, body) = crypt.split_at(16);
    if body.len() % 16 != 0 {
        return Err("crypto/cipher: input not full blocks".into());
    }
    if body.is_empty() {
        return Err("runtime error: index out of range [-1]".into());
    }
    let fail = |_| "crypto/aes: decryption failed".to_string();
    let key = UnboundCipherKey::new(&AES_256, &aes_key(password)).map_err(fail)?;
    let key = DecryptingKey::cbc(key).map_err(fail)?;
    let mut buf = body.to_vec();
    let iv: [u8; 16] = iv
        .try_into()
        .map_err(|_| "crypto/aes: bad IV".to_string())?;
    let plain = key
        .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
        .map_err(fail)?;
    let n = plain.len() as i64 - plain[plain.len() - 1] as i64;
    if n < 0 {
        return Err(format!("runtime error: slice bounds out of range [:{n}]"));
    }
    Ok(String::from_utf8_lossy(&plain[..n as usize]).into_owned())
}

// ---------------------------------------------------------------- registration

fn reg(
    m: &mut FuncMap,
    name: &str,
    f: impl Fn(&mut Exec<'_>, &[Value]) -> Res + Send + Sync + 'static,
) {
    m.insert(name.to_string(), Arc::new(f));
}

fn arity(name: &str, a: &[Value], n: usize) -> Result<(), String> {
    if a.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

fn s(a: &[Value], i: usize) -> Result<String, String> {
    match a.get(i) {
        Some(Value::Str(s)) => Ok(s.to_string()),
        Some(Value::Nil) | None => Err("invalid value; expected string".into()),
        Some(o) => Err(format!(
            "wrong type for value; expected string; got {}",
            o.type_name()
        )),
    }
}

fn int(a: &[Value], i: usize, ty: &str) -> Result<i64, String> {
    match a.get(i) {
        Some(Value::Int(x, _)) => Ok(*x),
        Some(Value::Float(f)) => Ok(*f as i64),
        Some(Value::Nil) | None => Err(format!("invalid value; expected {ty}")),
        Some(o) => Err(format!(
            "wrong type for value; expected {ty}; got {}",
            o.type_name()
        )),
    }
}

fn key_arg(a: &[Value], i: usize) -> Result<PrivKey, String> {
    PrivKey::parse_pem(&s(a, i)?).map_err(|e| format!("parsing private key: {e}"))
}

pub fn register(m: &mut FuncMap) {
    reg(m, "genPrivateKey", |_, a| {
        arity("genPrivateKey", a, 1)?;
        Ok(Value::str(generate_private_key(&s(a, 0)?)?))
    });
    reg(m, "genCA", |ex, a| {
        arity("genCA", a, 2)?;
        let (cn, days) = (s(a, 0)?, int(a, 1, "int")?);
        gen_ca_lazy(ex, cn, days)
    });
    reg(m, "genCAWithKey", |ex, a| {
        arity("genCAWithKey", a, 3)?;
        let (cn, days) = (s(a, 0)?, int(a, 1, "int")?);
        gen_ca(ex, cn, days, key_arg(a, 2)?)
    });
    reg(m, "genSelfSignedCert", |ex, a| {
        arity("genSelfSignedCert", a, 4)?;
        let (cn, days) = (s(a, 0)?, int(a, 3, "int")?);
        iface_list(&a[1])?;
        iface_list(&a[2])?;
        gen_self_signed(ex, cn, &a[1], &a[2], days, new_cert_key()?)
    });
    reg(m, "genSelfSignedCertWithKey", |ex, a| {
        arity("genSelfSignedCertWithKey", a, 5)?;
        let (cn, days) = (s(a, 0)?, int(a, 3, "int")?);
        iface_list(&a[1])?;
        iface_list(&a[2])?;
        let key = key_arg(a, 4)?;
        gen_self_signed(ex, cn, &a[1], &a[2], days, key)
    });
    reg(m, "genSignedCert", |ex, a| {
        arity("genSignedCert", a, 5)?;
        let (cn, days) = (s(a, 0)?, int(a, 3, "int")?);
        iface_list(&a[1])?;
        iface_list(&a[2])?;
        let ca = certificate_arg(&a[4])?;
        gen_signed(ex, cn, &a[1], &a[2], days, ca, new_cert_key()?)
    });
    reg(m, "genSignedCertWithKey", |ex, a| {
        arity("genSignedCertWithKey", a, 6)?;
        let (cn, days) = (s(a, 0)?, int(a, 3, "int")?);
        iface_list(&a[1])?;
        iface_list(&a[2])?;
        let ca = certificate_arg(&a[4])?;
        let key = key_arg(a, 5)?;
        gen_signed(ex, cn, &a[1], &a[2], days, ca, key)
    });
    reg(m, "buildCustomCert", |_, a| {
        arity("buildCustomCert", a, 2)?;
        build_custom_cert(&s(a, 0)?, &s(a, 1)?)
    });
    reg(m, "bcrypt", |_, a| {
        arity("bcrypt", a, 1)?;
        Ok(Value::str(bcrypt_hash(&s(a, 0)?)))
    });
    reg(m, "htpasswd", |_, a| {
        arity("htpasswd", a, 2)?;
        Ok(Value::str(htpasswd(&s(a, 0)?, &s(a, 1)?)))
    });
    reg(m, "derivePassword", |_, a| {
        arity("derivePassword", a, 5)?;
        let c = int(a, 0, "uint32")?;
        let c = u32::try_from(c).map_err(|_| format!("{c} overflows uint32"))?;
        Ok(Value::str(derive_password(
            c,
            &s(a, 1)?,
            &s(a, 2)?,
            &s(a, 3)?,
            &s(a, 4)?,
        )))
    });
    reg(m, "encryptAES", |_, a| {
        arity("encryptAES", a, 2)?;
        Ok(Value::str(encrypt_aes(&s(a, 0)?, &s(a, 1)?)?))
    });
    reg(m, "decryptAES", |_, a| {
        arity("decryptAES", a, 2)?;
        Ok(Value::str(decrypt_aes(&s(a, 0)?, &s(a, 1)?)?))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_base64_errors() {
        assert_eq!(go_b64_decode("YWJ=").unwrap(), b"ab");
        assert_eq!(go_b64_decode("YWJj\nZA==").unwrap(), b"abcd");
        assert_eq!(
            go_b64_decode("YW Jj").unwrap_err(),
            "illegal base64 data at input byte 2"
        );
        assert_eq!(
            go_b64_decode("YWJjZA").unwrap_err(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            go_b64_decode("YWJjZA=").unwrap_err(),
            "illegal base64 data at input byte 7"
        );
        assert_eq!(
            go_b64_decode("YWJjZGVmZ2hpamtsbW5vcHF").unwrap_err(),
            "illegal base64 data at input byte 20"
        );
    }

    #[test]
    fn key_usage_bits() {
        // digitalSignature|keyEncipherment: 03 02 05 a0; with keyCertSign: 03 02 02 a4.
        assert!(key_usage_ext(5).ends_with(&[0x04, 0x04, 0x03, 0x02, 0x05, 0xa0]));
        assert!(key_usage_ext(0x25).ends_with(&[0x04, 0x04, 0x03, 0x02, 0x02, 0xa4]));
    }

    #[test]
    fn aes_round_trip() {
        for text in [
            "x",
            "exactly16bytes!!",
            "ü日本 and more than one block of text",
        ] {
            let c = encrypt_aes("k", text).unwrap();
            assert_eq!(decrypt_aes("k", &c).unwrap(), text);
        }
        assert_eq!(encrypt_aes("k", "").unwrap(), "");
    }

    #[test]
    fn bcrypt_verifies() {
        let h = bcrypt_hash("s3cret");
        assert!(h.starts_with("$2a$10$") && h.len() == 60, "{h}");
        assert!(bcrypt::verify("s3cret", &h).unwrap());
        assert!(!bcrypt::verify("s3cre", &h).unwrap());
        assert_ne!(bcrypt_hash("s3cret"), h, "a new salt each time");
        let line = htpasswd("u", "p");
        assert!(bcrypt::verify("p", line.strip_prefix("u:").unwrap()).unwrap());
    }

    #[test]
    fn aes_errors_like_go() {
        assert_eq!(
            decrypt_aes("k", "YWJj").unwrap_err(),
            "runtime error: slice bounds out of range [:16] with capacity 3"
        );
        assert_eq!(
            decrypt_aes("k", "YWJjZGVmZ2hpamtsbW5vcA==").unwrap_err(),
            "runtime error: index out of range [-1]"
        );
        // Go's decryptAES of helm's "hello world" under the key "secretkey".
        let c = "Xm/MPbKqFxtqTOAvzNbzrkYG8b4WRoc9x+aZ0QAeqco=";
        assert_eq!(decrypt_aes("secretkey", c).unwrap(), "hello world");
        assert_eq!(
            decrypt_aes("wrong", c).unwrap_err(),
            "runtime error: slice bounds out of range [:-65]"
        );
    }

    #[test]
    fn pem_round_trip() {
        let p = pem_encode("X Y", &[1u8; 100]);
        assert_eq!(
            pem_decode(&format!("junk\n{p}")).unwrap(),
            ("X Y".into(), vec![1u8; 100])
        );
    }
}
