//! sprig's crypto functions, whose outputs are random, checked from outside: certificates and
//! keys are read back with `openssl` (subject, issuer, validity, SANs, key usage, CA flag,
//! key sizes, chains; DSA keys with OpenSSL's key check and a signature; RSA-1024/1536 and
//! P-224 keys made by openssl and handed to the `WithKey` functions), bcrypt hashes with libxcrypt (Python's `crypt`), and AES ciphertexts
//! and certificates are exchanged with the real helm (`target/oracle/helm`, installed by
//! `tests/oracles/install.sh` when missing): it decrypts ours and signs with our CA, and we
//! sign with its CA.
//!
//! The deterministic parts (derivePassword, decryptAES of helm's ciphertexts, the PEM forms
//! of given keys, error messages) are in the golden table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferroflux_gotemplate::Value;
use ferroflux_gotemplate::yaml::{self, Numbers};
use ferroflux_helm::chart::{File, load_files};
use ferroflux_helm::{Capabilities, ReleaseOptions, RenderOptions};

const CHART_YAML: &str = "apiVersion: v2\nname: crypto\nversion: 0.1.0\n";

/// 2023-11-14T22:13:20Z.
const FIXED_NOW: (i64, u32) = (1_700_000_000, 0);

fn real_now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (d.as_secs() as i64, d.subsec_nanos())
}

/// The `out` map of `out: {{ <expr> | toJson }}` (a dict of strings), rendered by us.
fn render(expr: &str, values: &str, now: (i64, u32)) -> HashMap<String, String> {
    let files = vec![
        File {
            name: "Chart.yaml".into(),
            data: CHART_YAML.as_bytes().to_vec().into(),
        },
        File {
            name: "values.yaml".into(),
            data: values.as_bytes().to_vec().into(),
        },
        File {
            name: "templates/out.yaml".into(),
            data: format!("out: {expr}\n").into_bytes().into(),
        },
    ];
    let c = load_files(files).unwrap();
    let opts = RenderOptions {
        release: ReleaseOptions {
            name: "g".into(),
            namespace: "demo".into(),
            ..Default::default()
        },
        capabilities: Capabilities::new("1.33.0", &[]),
        strict: false,
    };
    let mut host = ferroflux_gotemplate::FixedHost::new(7);
    host.now = now;
    let r = ferroflux_helm::render_chart(&c, &Default::default(), &opts, &mut host)
        .unwrap_or_else(|e| panic!("render {expr}: {e}"));
    out_map(&ferroflux_helm::template_output(&r, false, false))
}

fn out_map(manifest: &str) -> HashMap<String, String> {
    let docs = yaml::parse_all(manifest, Numbers::Native).unwrap();
    let doc = docs.into_iter().find(|d| !d.is_nil()).expect("a document");
    let Some(Value::Map(m)) = doc.as_map().and_then(|m| m.get("out")) else {
        panic!("out is not a map: {manifest}");
    };
    m.snapshot()
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real helm (as `ferroflux_testenv::oracle` finds it, installing it when missing).
fn helm_bin() -> PathBuf {
    let dir = std::env::var_os("FERROFLUX_ORACLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/oracle"));
    if !dir.join("helm").exists() {
        let st = Command::new("bash")
            .arg(workspace_root().join("tests/oracles/install.sh"))
            .arg(&dir)
            .status()
            .expect("run tests/oracles/install.sh");
        assert!(st.success(), "tests/oracles/install.sh failed");
    }
    dir.join("helm")
}

/// The same chart rendered by the real `helm template`.
fn helm_render(expr: &str, values: &str) -> HashMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), CHART_YAML).unwrap();
    std::fs::write(chart.join("values.yaml"), values).unwrap();
    std::fs::write(chart.join("templates/out.yaml"), format!("out: {expr}\n")).unwrap();
    let home = dir.path().join("home");
    let out = Command::new(helm_bin())
        .env("HELM_CACHE_HOME", &home)
        .env("HELM_CONFIG_HOME", &home)
        .env("HELM_DATA_HOME", &home)
        .args(["template", "g"])
        .arg(&chart)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_map(&String::from_utf8(out.stdout).unwrap())
}

/// A YAML values file with these strings.
fn values(kv: &[(&str, &str)]) -> String {
    kv.iter()
        .map(|(k, v)| format!("{k}: {}\n", serde_json::to_string(v).unwrap()))
        .collect()
}

struct Pems(tempfile::TempDir);

impl Pems {
    fn new(m: &HashMap<String, String>) -> Pems {
        let d = tempfile::tempdir().unwrap();
        for (k, v) in m {
            std::fs::write(d.path().join(format!("{k}.pem")), v).unwrap();
        }
        Pems(d)
    }
    fn path(&self, name: &str) -> String {
        self.0
            .path()
            .join(format!("{name}.pem"))
            .to_string_lossy()
            .into_owned()
    }
    /// `openssl ARGS` with `@name` replaced by that PEM's path; stdout, or panics.
    fn openssl(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_openssl(args);
        assert!(ok, "openssl {args:?}: {out}");
        out
    }
    fn try_openssl(&self, args: &[&str]) -> (bool, String) {
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.strip_prefix('@') {
                Some(n) => self.path(n),
                None => a.to_string(),
            })
            .collect();
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .expect("run openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
    fn text(&self, cert: &str) -> String {
        self.openssl(&["x509", "-noout", "-text", "-in", &format!("@{cert}")])
    }
    /// The public key of a certificate and of a private key, which must be the same.
    fn assert_key_matches(&self, cert: &str, key: &str) {
        let a = self.openssl(&["x509", "-noout", "-pubkey", "-in", &format!("@{cert}")]);
        let b = self.openssl(&["pkey", "-pubout", "-in", &format!("@{key}")]);
        assert_eq!(a, b, "{cert} is not for {key}");
    }
    fn verify(&self, ca: &str, cert: &str, check_time: bool) {
        let ca = format!("@{ca}");
        let cert = format!("@{cert}");
        let mut args = vec!["verify"];
        if !check_time {
            args.push("-no_check_time");
        }
        args.extend(["-CAfile", &ca, &cert]);
        let out = self.openssl(&args);
        assert!(out.trim_end().ends_with(": OK"), "{out}");
    }
}

/// The value after `label` in `openssl x509 -text` output (the rest of that line, or the
/// next line when the label ends its line).
fn field(text: &str, label: &str) -> String {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(i) = l.find(label) {
            let rest = l[i + label.len()..].trim();
            if rest.is_empty() || rest == "critical" {
                return lines.next().unwrap_or_default().trim().to_string();
            }
            return rest.to_string();
        }
    }
    panic!("no {label:?} in\n{text}");
}

fn has(text: &str, needle: &str) {
    assert!(text.contains(needle), "no {needle:?} in\n{text}");
}

const CERTS: &str = r#"{{ $ca := genCA "ferro-ca" 365 }}
{{- $leaf := genSignedCert "leaf.example" (list "10.0.0.1" "::1" "::ffff:1.2.3.4") (list "a.example" "b.example") 30 $ca }}
{{- $self := genSelfSignedCert "*.self" nil (list "s.example") 10000 }}
{{- $ecca := genCAWithKey "ec-ca" 10 (genPrivateKey "ecdsa") }}
{{- $edleaf := genSignedCertWithKey "" (list "192.168.0.1") nil 5 $ecca (genPrivateKey "ed25519") }}
{{- $rsaself := genSelfSignedCertWithKey "rsa4096" nil nil 1 (genPrivateKey "rsa") }}
{{- dict "ca" $ca.Cert "caKey" $ca.Key "leaf" $leaf.Cert "leafKey" $leaf.Key "self" $self.Cert "selfKey" $self.Key "ecca" $ecca.Cert "eccaKey" $ecca.Key "edleaf" $edleaf.Cert "edleafKey" $edleaf.Key "rsaself" $rsaself.Cert "rsaselfKey" $rsaself.Key | toJson }}"#;

#[test]
fn certificates_read_back_with_openssl() {
    let out = render(CERTS, "", FIXED_NOW);
    let p = Pems::new(&out);

    // genCA: RSA 2048, self-issued, CA, certSign, validity from the host's clock.
    let ca = p.text("ca");
    assert_eq!(field(&ca, "Subject:"), "CN = ferro-ca");
    assert_eq!(field(&ca, "Issuer:"), "CN = ferro-ca");
    assert_eq!(field(&ca, "Not Before:"), "Nov 14 22:13:20 2023 GMT");
    assert_eq!(field(&ca, "Not After :"), "Nov 13 22:13:20 2024 GMT");
    assert_eq!(field(&ca, "Version:"), "3 (0x2)");
    has(&ca, "Public-Key: (2048 bit)");
    has(&ca, "Signature Algorithm: sha256WithRSAEncryption");
    has(
        &ca,
        "X509v3 Basic Constraints: critical\n                CA:TRUE",
    );
    has(
        &ca,
        "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment, Certificate Sign",
    );
    has(
        &ca,
        "X509v3 Extended Key Usage: \n                TLS Web Server Authentication, TLS Web Client Authentication",
    );
    let ski = field(&ca, "X509v3 Subject Key Identifier:");
    assert_eq!(ski.len(), 20 * 3 - 1, "{ski}");
    assert!(!ca.contains("Authority Key Identifier"), "{ca}");
    assert!(!ca.contains("Subject Alternative Name"), "{ca}");
    // The serial number: 128 random bits at most.
    let serial = p.openssl(&["x509", "-noout", "-serial", "-in", "@ca"]);
    let serial = serial.trim().trim_start_matches("serial=");
    assert!(serial.len() <= 32, "{serial}");
    p.assert_key_matches("ca", "caKey");
    assert!(out["caKey"].starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    p.openssl(&["rsa", "-check", "-noout", "-in", "@caKey"]);

    // genSignedCert: issued by the CA, SANs in Go's order, AKI = the CA's SKI, not a CA.
    let leaf = p.text("leaf");
    assert_eq!(field(&leaf, "Subject:"), "CN = leaf.example");
    assert_eq!(field(&leaf, "Issuer:"), "CN = ferro-ca");
    assert_eq!(field(&leaf, "Not Before:"), "Nov 14 22:13:20 2023 GMT");
    assert_eq!(field(&leaf, "Not After :"), "Dec 14 22:13:20 2023 GMT");
    has(&leaf, "Public-Key: (2048 bit)");
    has(
        &leaf,
        "X509v3 Basic Constraints: critical\n                CA:FALSE",
    );
    has(
        &leaf,
        "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment\n",
    );
    assert_eq!(
        field(&leaf, "X509v3 Subject Alternative Name:"),
        "DNS:a.example, DNS:b.example, IP Address:10.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:1.2.3.4"
    );
    assert_eq!(field(&leaf, "X509v3 Authority Key Identifier:"), ski);
    assert!(!leaf.contains("Subject Key Identifier"), "{leaf}");
    p.verify("ca", "leaf", false);
    p.assert_key_matches("leaf", "leafKey");

    // genSelfSignedCert: a CN that is not a PrintableString, and a NotAfter past 2049,
    // which is a GeneralizedTime.
    let selfc = p.text("self");
    assert_eq!(field(&selfc, "Subject:"), "CN = *.self");
    assert_eq!(field(&selfc, "Issuer:"), "CN = *.self");
    assert_eq!(field(&selfc, "Not After :"), "Apr  1 22:13:20 2051 GMT");
    assert_eq!(
        field(&selfc, "X509v3 Subject Alternative Name:"),
        "DNS:s.example"
    );
    let asn1 = p.openssl(&["asn1parse", "-in", "@self"]);
    has(&asn1, "UTF8STRING        :*.self");
    has(&asn1, "UTCTIME           :231114221320Z");
    has(&asn1, "GENERALIZEDTIME   :20510401221320Z");
    p.verify("self", "self", false);
    p.assert_key_matches("self", "selfKey");

    // An ECDSA CA (from genPrivateKey) signing an Ed25519 leaf with an empty subject,
    // whose SAN extension is then critical.
    let ecca = p.text("ecca");
    has(&ecca, "ASN1 OID: prime256v1");
    has(&ecca, "Signature Algorithm: ecdsa-with-SHA256");
    has(&ecca, "CA:TRUE");
    assert!(out["eccaKey"].starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    p.assert_key_matches("ecca", "eccaKey");
    let ed = p.text("edleaf");
    assert_eq!(field(&ed, "Issuer:"), "CN = ec-ca");
    let subject = p.openssl(&["x509", "-noout", "-subject", "-in", "@edleaf"]);
    assert_eq!(subject.trim(), "subject=");
    has(&ed, "Public Key Algorithm: ED25519");
    has(&ed, "Signature Algorithm: ecdsa-with-SHA256");
    has(
        &ed,
        "X509v3 Subject Alternative Name: critical\n                IP Address:192.168.0.1",
    );
    assert_eq!(field(&ed, "Not After :"), "Nov 19 22:13:20 2023 GMT");
    assert!(out["edleafKey"].starts_with("-----BEGIN PRIVATE KEY-----\n"));
    p.verify("ecca", "edleaf", false);
    p.assert_key_matches("edleaf", "edleafKey");

    // genPrivateKey "rsa" is RSA 4096, and a WithKey certificate keeps the given key.
    let rsa = p.text("rsaself");
    has(&rsa, "Public-Key: (4096 bit)");
    p.assert_key_matches("rsaself", "rsaselfKey");
    p.verify("rsaself", "rsaself", false);
}

#[test]
fn private_keys_read_back_with_openssl() {
    let out = render(
        r#"{{ dict "rsa" (genPrivateKey "rsa") "default" (genPrivateKey "") "ecdsa" (genPrivateKey "ecdsa") "ed25519" (genPrivateKey "ed25519") | toJson }}"#,
        "",
        FIXED_NOW,
    );
    let p = Pems::new(&out);
    for k in ["rsa", "default"] {
        assert!(out[k].starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let t = p.openssl(&["rsa", "-check", "-noout", "-text", "-in", &format!("@{k}")]);
        has(&t, "Private-Key: (4096 bit, 2 primes)");
        has(&t, "RSA key ok");
    }
    assert!(out["ecdsa"].starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    let t = p.openssl(&["ec", "-check", "-noout", "-text", "-in", "@ecdsa"]);
    has(&t, "ASN1 OID: prime256v1");
    has(&t, "EC Key valid.");
    assert!(out["ed25519"].starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let t = p.openssl(&["pkey", "-noout", "-text", "-in", "@ed25519"]);
    has(&t, "ED25519 Private-Key:");
    // Two keys are never the same.
    let again = render(
        r#"{{ dict "ecdsa" (genPrivateKey "ecdsa") | toJson }}"#,
        "",
        FIXED_NOW,
    );
    assert_ne!(again["ecdsa"], out["ecdsa"]);
}

#[test]
fn htpasswd_verifies_with_libxcrypt() {
    let out = render(
        r#"{{ dict "h" (htpasswd "admin" "s3cret pässword") "b" (bcrypt "other") | toJson }}"#,
        "",
        FIXED_NOW,
    );
    let (user, hash) = out["h"].split_once(':').unwrap();
    assert_eq!(user, "admin");
    assert!(hash.starts_with("$2a$10$") && hash.len() == 60, "{hash}");
    assert!(out["b"].starts_with("$2a$10$") && out["b"].len() == 60);
    // libxcrypt's bcrypt through Python's crypt module (present up to Python 3.12).
    let check = |pw: &str, hash: &str| {
        Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-c",
                "import crypt, sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
                pw,
                hash,
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match check("s3cret pässword", hash) {
        Some(r) => {
            assert_eq!(r, "True", "libxcrypt rejects {hash}");
            assert_eq!(check("s3cret password", hash).as_deref(), Some("False"));
            assert_eq!(check("other", &out["b"]).as_deref(), Some("True"));
        }
        None => eprintln!("python3's crypt module is not available: libxcrypt check skipped"),
    }
}

#[test]
fn real_helm_decrypts_our_aes() {
    let texts = [
        "hello world",
        "exactly16bytes!!",
        "ü日本 and a text longer than one block of sixteen bytes",
    ];
    for password in ["k", "a-password-longer-than-thirty-two-bytes-is-cut"] {
        let expr = format!(
            "{{{{ dict {} | toJson }}}}",
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| format!("\"t{i}\" (encryptAES {password:?} {t:?})"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let ours = render(&expr, "", FIXED_NOW);
        let vals: Vec<(String, String)> =
            ours.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let vals: Vec<(&str, &str)> = vals.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let back = helm_render(
            &format!(
                "{{{{ dict {} | toJson }}}}",
                (0..texts.len())
                    .map(|i| format!("\"t{i}\" (decryptAES {password:?} .Values.t{i})"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            &values(&vals),
        );
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(back[&format!("t{i}")], *t, "password {password:?}");
        }
    }
}

#[test]
fn certificates_cross_sign_with_real_helm() {
    let now = real_now();
    // helm signs a leaf with our CA...
    let ours = render(
        r#"{{ $ca := genCA "our-ca" 3 }}{{ dict "ca" $ca.Cert "key" $ca.Key | toJson }}"#,
        "",
        now,
    );
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let theirs = helm_render(
        r#"{{ $ca := buildCustomCert .Values.c .Values.k }}{{ $l := genSignedCert "by-helm" nil (list "h.example") 2 $ca }}{{ dict "leaf" $l.Cert | toJson }}"#,
        &values(&[("c", &b64(&ours["ca"])), ("k", &b64(&ours["key"]))]),
    );
    // ...and we sign one with helm's CA.
    let helm_ca = helm_render(
        r#"{{ $ca := genCAWithKey "helm-ca" 3 (genPrivateKey "ecdsa") }}{{ dict "ca" $ca.Cert "key" $ca.Key | toJson }}"#,
        "",
    );
    let ours_leaf = render(
        r#"{{ $ca := buildCustomCert .Values.c .Values.k }}{{ $l := genSignedCert "by-us" (list "127.0.0.1") nil 2 $ca }}{{ dict "leaf" $l.Cert | toJson }}"#,
        &values(&[("c", &b64(&helm_ca["ca"])), ("k", &b64(&helm_ca["key"]))]),
        now,
    );
    let p = Pems::new(&HashMap::from([
        ("our_ca".to_string(), ours["ca"].clone()),
        ("helm_leaf".to_string(), theirs["leaf"].clone()),
        ("helm_ca".to_string(), helm_ca["ca"].clone()),
        ("our_leaf".to_string(), ours_leaf["leaf"].clone()),
    ]));
    p.verify("our_ca", "helm_leaf", true);
    p.verify("helm_ca", "our_leaf", true);
    let t = p.text("our_leaf");
    assert_eq!(field(&t, "Issuer:"), "CN = helm-ca");
    has(&t, "Signature Algorithm: ecdsa-with-SHA256");
    assert_eq!(
        field(&t, "X509v3 Authority Key Identifier:"),
        field(&p.text("helm_ca"), "X509v3 Subject Key Identifier:")
    );
    // A leaf is not a CA: neither verifies anything signed by the other's leaf key.
    let (ok, _) = p.try_openssl(&["verify", "-CAfile", "@helm_ca", "@helm_leaf"]);
    assert!(!ok);
}

/// Keys made by openssl that aws-lc-rs will not sign with, which Go (and so we) take: RSA
/// of 1024 and 1536 bits (PKCS #1 and PKCS #8) and P-224 (SEC 1 and PKCS #8).
fn small_and_p224_keys() -> String {
    let keygen = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let keys = [
        (
            "rsa1024",
            keygen(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
            ]),
        ),
        ("rsa1536", keygen(&["genrsa", "-traditional", "1536"])),
        (
            "p224",
            keygen(&["ecparam", "-name", "secp224r1", "-genkey", "-noout"]),
        ),
        (
            "p224p8",
            keygen(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-224",
            ]),
        ),
    ];
    assert!(keys[0].1.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(keys[1].1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(keys[2].1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let kv: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    values(&kv)
}

const SMALL_KEY_CERTS: &str = r#"{{ $p224ca := genCAWithKey "p224-ca" 10 .Values.p224 }}
{{- $rsaleaf := genSignedCertWithKey "rsa1024-leaf" (list "10.1.1.1") (list "r.example") 5 $p224ca .Values.rsa1024 }}
{{- $rsaca := genCAWithKey "rsa1536-ca" 10 .Values.rsa1536 }}
{{- $p224leaf := genSignedCertWithKey "p224-leaf" nil (list "p.example") 5 $rsaca .Values.p224p8 }}
{{- $self := genSelfSignedCertWithKey "self1024" nil nil 1 .Values.rsa1024 }}
{{- $gen := genSignedCert "generated" nil nil 1 $p224ca }}
{{- dict "p224ca" $p224ca.Cert "p224caKey" $p224ca.Key "rsaleaf" $rsaleaf.Cert "rsaleafKey" $rsaleaf.Key "rsaca" $rsaca.Cert "rsacaKey" $rsaca.Key "p224leaf" $p224leaf.Cert "p224leafKey" $p224leaf.Key "self" $self.Cert "selfKey" $self.Key "gen" $gen.Cert | toJson }}"#;

#[test]
fn small_rsa_and_p224_keys_certify_with_openssl() {
    let vals = small_and_p224_keys();
    let out = render(SMALL_KEY_CERTS, &vals, FIXED_NOW);
    let p = Pems::new(&out);

    // A P-224 CA signs with ECDSA over SHA-256, as Go does for P-224.
    let ca = p.text("p224ca");
    has(&ca, "ASN1 OID: secp224r1");
    has(&ca, "Public-Key: (224 bit)");
    has(&ca, "Signature Algorithm: ecdsa-with-SHA256");
    has(&ca, "CA:TRUE");
    p.verify("p224ca", "p224ca", false);
    p.assert_key_matches("p224ca", "p224caKey");
    assert!(out["p224caKey"].starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    p.openssl(&["ec", "-check", "-noout", "-in", "@p224caKey"]);

    // ...over an RSA-1024 leaf (the key given as PKCS #8, returned as PKCS #1) and a
    // generated RSA-2048 one.
    let leaf = p.text("rsaleaf");
    has(&leaf, "Public-Key: (1024 bit)");
    has(&leaf, "Signature Algorithm: ecdsa-with-SHA256");
    assert_eq!(
        field(&leaf, "X509v3 Subject Alternative Name:"),
        "DNS:r.example, IP Address:10.1.1.1"
    );
    assert_eq!(
        field(&leaf, "X509v3 Authority Key Identifier:"),
        field(&ca, "X509v3 Subject Key Identifier:")
    );
    p.verify("p224ca", "rsaleaf", false);
    p.assert_key_matches("rsaleaf", "rsaleafKey");
    assert!(out["rsaleafKey"].starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    p.openssl(&["rsa", "-check", "-noout", "-in", "@rsaleafKey"]);
    p.verify("p224ca", "gen", false);
    has(&p.text("gen"), "Public-Key: (2048 bit)");

    // An RSA-1536 CA signs a P-224 leaf (the key given as PKCS #8).
    let rsaca = p.text("rsaca");
    has(&rsaca, "Public-Key: (1536 bit)");
    has(&rsaca, "Signature Algorithm: sha256WithRSAEncryption");
    p.verify("rsaca", "rsaca", false);
    let pleaf = p.text("p224leaf");
    has(&pleaf, "ASN1 OID: secp224r1");
    has(&pleaf, "Signature Algorithm: sha256WithRSAEncryption");
    p.verify("rsaca", "p224leaf", false);
    p.assert_key_matches("p224leaf", "p224leafKey");

    // A self-signed RSA-1024 certificate.
    has(&p.text("self"), "Public-Key: (1024 bit)");
    p.verify("self", "self", false);
    p.assert_key_matches("self", "selfKey");

    // A certificate signed by one CA does not verify under another.
    let (ok, _) = p.try_openssl(&["verify", "-no_check_time", "-CAfile", "@rsaca", "@rsaleaf"]);
    assert!(!ok);
}

#[test]
fn small_rsa_and_p224_cas_cross_sign_with_real_helm() {
    let now = real_now();
    let vals = small_and_p224_keys();
    let ours = render(
        r#"{{ $a := genCAWithKey "our-p224-ca" 3 .Values.p224 }}{{ $b := genCAWithKey "our-rsa1024-ca" 3 .Values.rsa1024 }}{{ dict "p224" $a.Cert "p224Key" $a.Key "rsa" $b.Cert "rsaKey" $b.Key | toJson }}"#,
        &vals,
        now,
    );
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    // helm signs leaves with our CAs...
    let theirs = helm_render(
        r#"{{ $a := buildCustomCert .Values.c1 .Values.k1 }}{{ $b := buildCustomCert .Values.c2 .Values.k2 }}{{ dict "l1" (genSignedCert "by-helm-1" nil nil 2 $a).Cert "l2" (genSignedCert "by-helm-2" nil nil 2 $b).Cert | toJson }}"#,
        &values(&[
            ("c1", &b64(&ours["p224"])),
            ("k1", &b64(&ours["p224Key"])),
            ("c2", &b64(&ours["rsa"])),
            ("k2", &b64(&ours["rsaKey"])),
        ]),
    );
    // ...and we sign with helm's P-224 CA.
    let helm_ca = helm_render(
        r#"{{ $ca := genCAWithKey "helm-p224-ca" 3 .Values.p224p8 }}{{ dict "ca" $ca.Cert "key" $ca.Key | toJson }}"#,
        &vals,
    );
    let ours_leaf = render(
        r#"{{ $ca := buildCustomCert .Values.c .Values.k }}{{ dict "leaf" (genSignedCertWithKey "by-us" nil nil 2 $ca .Values.rsa1536).Cert | toJson }}"#,
        &format!(
            "{vals}{}",
            values(&[("c", &b64(&helm_ca["ca"])), ("k", &b64(&helm_ca["key"]))])
        ),
        now,
    );
    let p = Pems::new(&HashMap::from([
        ("our_p224".to_string(), ours["p224"].clone()),
        ("our_rsa".to_string(), ours["rsa"].clone()),
        ("helm_l1".to_string(), theirs["l1"].clone()),
        ("helm_l2".to_string(), theirs["l2"].clone()),
        ("helm_ca".to_string(), helm_ca["ca"].clone()),
        ("our_leaf".to_string(), ours_leaf["leaf"].clone()),
    ]));
    p.verify("our_p224", "helm_l1", true);
    p.verify("our_rsa", "helm_l2", true);
    p.verify("helm_ca", "our_leaf", true);
    let t = p.text("our_leaf");
    assert_eq!(field(&t, "Issuer:"), "CN = helm-p224-ca");
    has(&t, "Public-Key: (1536 bit)");
    has(&t, "Signature Algorithm: ecdsa-with-SHA256");
}

#[test]
fn dsa_private_keys_read_back_with_openssl() {
    let out = render(
        r#"{{ dict "a" (genPrivateKey "dsa") "b" (genPrivateKey "dsa") | toJson }}"#,
        "",
        FIXED_NOW,
    );
    assert_ne!(out["a"], out["b"], "two keys are never the same");
    let p = Pems::new(&out);
    for k in ["a", "b"] {
        assert!(out[k].starts_with("-----BEGIN DSA PRIVATE KEY-----\n"));
        // The domain parameters, the public and the private value, and that they belong
        // together (OpenSSL's full key check).
        let check = p.openssl(&["pkey", "-check", "-noout", "-in", &format!("@{k}")]);
        has(&check, "Key is valid");
        let t = p.openssl(&["dsa", "-noout", "-text", "-in", &format!("@{k}")]);
        has(&t, "Private-Key: (2048 bit)");
        // sprig's DSAKeyFormat: version 0, then P (2048 bits), Q (256 bits), G, Y, X.
        let asn1 = p.openssl(&["asn1parse", "-in", &format!("@{k}")]);
        let ints: Vec<&str> = asn1
            .lines()
            .filter_map(|l| l.split("INTEGER           :").nth(1))
            .collect();
        assert_eq!(ints.len(), 6, "{asn1}");
        assert_eq!(ints[0], "00");
        assert_eq!(ints[1].len(), 512, "P is 2048 bits: {}", ints[1]);
        assert_eq!(ints[2].len(), 64, "Q is 256 bits: {}", ints[2]);
    }
    // The key signs, and its public half verifies the signature.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sig = dir.path().join("sig");
    let public = dir.path().join("pub.pem");
    std::fs::write(&data, b"signed with a sprig DSA key").unwrap();
    let s = |p: &Path| p.to_string_lossy().into_owned();
    p.openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        "@a",
        "-out",
        &s(&sig),
        &s(&data),
    ]);
    p.openssl(&["pkey", "-in", "@a", "-pubout", "-out", &s(&public)]);
    let v = p.openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &s(&public),
        "-signature",
        &s(&sig),
        &s(&data),
    ]);
    has(&v, "Verified OK");
    let (ok, _) = p.try_openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &s(&public),
        "-signature",
        &s(&sig),
        "@b",
    ]);
    assert!(!ok, "the signature is not good for other data");
}

/// An RSA key over aws-lc-rs's 8192-bit limit (Go has none): the 8704-bit key of the golden
/// table's `sprig_withKey_rsa_8704` case (generating one takes minutes).
#[test]
fn rsa_keys_over_8192_bits_certify_with_openssl() {
    let path = workspace_root().join("crates/gotemplate/tests/golden/golden.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sprig_withKey_rsa_8704")
        .expect("the golden case sprig_withKey_rsa_8704");
    let vals = case["values"].as_str().unwrap();
    let out = render(
        r#"{{ $ca := genCAWithKey "big-ca" 1 .Values.rsa8704 }}{{ $leaf := genSignedCert "leaf" nil nil 1 $ca }}{{ dict "ca" $ca.Cert "key" $ca.Key "leaf" $leaf.Cert | toJson }}"#,
        vals,
        FIXED_NOW,
    );
    let p = Pems::new(&out);
    let t = p.text("ca");
    has(&t, "Public-Key: (8704 bit)");
    has(&t, "Signature Algorithm: sha256WithRSAEncryption");
    p.verify("ca", "ca", false);
    p.verify("ca", "leaf", false);
    p.assert_key_matches("ca", "key");
}
