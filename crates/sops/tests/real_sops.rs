//! ferroflux-sops against real SOPS output: manifests encrypted by the real `sops` binary
//! (built by tests/tools/build-sops.sh from its Go module) with keys from `age-keygen`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ferroflux_sops::{
    DecryptOptions, Format, SopsError, decrypt_file, decrypt_object, decrypt_object_with,
    is_encrypted, parse_identities,
};
use serde_yaml::Value;

/// Builds (once) and returns the directory holding `sops` and `age-keygen`.
fn tools() -> &'static Path {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = root.join("target/tools");
        let status = Command::new("bash")
            .arg(root.join("tests/tools/build-sops.sh"))
            .arg(&out)
            .status()
            .expect("run tests/tools/build-sops.sh");
        assert!(status.success(), "tests/tools/build-sops.sh failed");
        out
    })
}

struct Key {
    file: PathBuf,
    text: String,
    recipient: String,
}

fn keygen(dir: &Path, name: &str) -> Key {
    let file = dir.join(name);
    let out = Command::new(tools().join("age-keygen"))
        .arg("-o")
        .arg(&file)
        .output()
        .expect("run age-keygen");
    assert!(
        out.status.success(),
        "age-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key line")
        .to_string();
    Key {
        file,
        text,
        recipient,
    }
}

/// Runs the real sops in `dir` (no .sops.yaml there) and returns its stdout.
fn sops(dir: &Path, key: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = Command::new(tools().join("sops"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_CMD")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir);
    match key {
        Some(k) => cmd.env("SOPS_AGE_KEY_FILE", k),
        None => cmd.env_remove("SOPS_AGE_KEY_FILE"),
    };
    let out = cmd.output().expect("run sops");
    assert!(
        out.status.success(),
        "sops {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Encrypts `plain` (written to `name`) with the extra sops arguments.
fn encrypt(dir: &Path, name: &str, plain: &str, recipients: &str, extra: &[&str]) -> String {
    std::fs::write(dir.join(name), plain).unwrap();
    let mut args = vec!["--encrypt", "--age", recipients];
    args.extend_from_slice(extra);
    args.push(name);
    sops(dir, None, &args)
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
  labels:
    app: db
type: Opaque
stringData:
  password: hunter2
  port: \"5432\"
  empty: \"\"
  multi: |
    line one
    line two
data:
  token: aGVsbG8gd29ybGQ=
";

#[test]
fn secret_with_encrypted_regex() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.txt");
    let enc = encrypt(
        dir.path(),
        "secret.yaml",
        SECRET,
        &k.recipient,
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    assert!(enc.contains("password: ENC[AES256_GCM,"), "{enc}");
    let obj = yaml(&enc);
    assert!(is_encrypted(&obj));
    let ids = parse_identities(&k.text).unwrap();
    let got = decrypt_object(&obj, &ids).unwrap();
    assert_eq!(got, yaml(SECRET));
    assert!(!is_encrypted(&got));
    // The same as the real sops's own decryption.
    std::fs::write(dir.path().join("enc.yaml"), &enc).unwrap();
    let dec = sops(dir.path(), Some(&k.file), &["--decrypt", "enc.yaml"]);
    assert_eq!(got, yaml(&dec));
}

const CONFIG: &str = "apiVersion: example.com/v1
kind: Settings
metadata:
  name: cfg
spec:
  replicas: 3
  ratio: 0.25
  big: 1e+21
  enabled: true
  disabled: false
  nothing: null
  name_unencrypted: visible
  servers:
    - host: a.example.com
      port: 443
      tls: true
    - host: b.example.com
      port: 8443
      tls: false
  tags: [one, two, 3]
  nested:
    deeper:
      secret: s3cr3t
";

#[test]
fn whole_file_with_types_lists_and_default_unencrypted_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.txt");
    let enc = encrypt(dir.path(), "cfg.yaml", CONFIG, &k.recipient, &[]);
    assert!(enc.contains("type:int]"), "{enc}");
    assert!(enc.contains("type:bool]"), "{enc}");
    assert!(enc.contains("type:float]"), "{enc}");
    assert!(enc.contains("name_unencrypted: visible"), "{enc}");
    let got = decrypt_object(&yaml(&enc), &parse_identities(&k.text).unwrap()).unwrap();
    assert_eq!(got, yaml(CONFIG));
    assert_eq!(got["spec"]["replicas"], Value::from(3));
    assert_eq!(got["spec"]["enabled"], Value::Bool(true));
    assert_eq!(got["spec"]["ratio"], Value::from(0.25));
}

#[test]
fn other_rules_and_mac_only_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.txt");
    let ids = parse_identities(&k.text).unwrap();
    let plain = "kind: Thing\nspec:\n  user_plain: admin\n  pass: x\n  api_enc: k\n  list:\n    - a_enc: 1\n      b: 2\n";
    for extra in [
        &["--unencrypted-suffix", "_plain"][..],
        &["--encrypted-suffix", "_enc"][..],
        &["--unencrypted-regex", "^(kind|user_plain)$"][..],
        &["--encrypted-regex", "^(spec)$", "--mac-only-encrypted"][..],
        &["--mac-only-encrypted"][..],
    ] {
        let enc = encrypt(dir.path(), "t.yaml", plain, &k.recipient, extra);
        let got =
            decrypt_object(&yaml(&enc), &ids).unwrap_or_else(|e| panic!("{extra:?}: {e}\n{enc}"));
        assert_eq!(got, yaml(plain), "{extra:?}");
    }
}

#[test]
fn two_recipients_decrypt_with_either_key() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = keygen(dir.path(), "k1.txt");
    let k2 = keygen(dir.path(), "k2.txt");
    let enc = yaml(&encrypt(
        dir.path(),
        "secret.yaml",
        SECRET,
        &format!("{},{}", k1.recipient, k2.recipient),
        &["--encrypted-regex", "^(data|stringData)$"],
    ));
    for k in [&k1, &k2] {
        let got = decrypt_object(&enc, &parse_identities(&k.text).unwrap()).unwrap();
        assert_eq!(got, yaml(SECRET));
    }
    // Both keys in one identity text (as two `*.agekey` entries concatenated).
    let both = format!("{}\n{}", k1.text, k2.text);
    let ids = parse_identities(&both).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(decrypt_object(&enc, &ids).unwrap(), yaml(SECRET));
}

#[test]
fn wrong_key_names_the_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = keygen(dir.path(), "k1.txt");
    let other = keygen(dir.path(), "other.txt");
    let enc = yaml(&encrypt(
        dir.path(),
        "secret.yaml",
        SECRET,
        &k1.recipient,
        &[],
    ));
    let err = decrypt_object(&enc, &parse_identities(&other.text).unwrap()).unwrap_err();
    assert!(
        matches!(err, SopsError::NoMatchingIdentity { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("no age identity matches the recipients: {}", k1.recipient)
    );
}

#[test]
fn tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.txt");
    let ids = parse_identities(&k.text).unwrap();
    let enc = yaml(&encrypt(
        dir.path(),
        "secret.yaml",
        SECRET,
        &k.recipient,
        &["--encrypted-regex", "^(data|stringData)$"],
    ));

    // A plaintext value changed after encryption: the MAC no longer matches.
    let mut t = enc.clone();
    t["metadata"]["labels"]["app"] = Value::from("evil");
    let err = decrypt_object(&t, &ids).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("MAC mismatch: the file was modified after encryption"),
        "{err}"
    );
    // As Flux (no MAC check): a kustomize-transformed resource still decrypts.
    let got = decrypt_object_with(&t, &ids, DecryptOptions::FLUX).unwrap();
    assert_eq!(got["metadata"]["labels"]["app"], Value::from("evil"));
    assert_eq!(got["stringData"]["password"], Value::from("hunter2"));

    // A value removed: also a MAC mismatch.
    let mut t = enc.clone();
    t["stringData"].as_mapping_mut().unwrap().remove("port");
    let err = decrypt_object(&t, &ids).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch { .. }), "{err:?}");

    // An encrypted value moved to another key fails authentication, naming the path.
    let mut t = enc.clone();
    t["stringData"]["port"] = t["stringData"]["password"].clone();
    let err = decrypt_object(&t, &ids).unwrap_err();
    assert!(
        matches!(&err, SopsError::Value { path, .. } if path == "stringData:port"),
        "{err:?}"
    );

    // A malformed ENC value names its path.
    let mut t = enc.clone();
    t["data"]["token"] = Value::from("ENC[AES256_GCM,data:oops]");
    let err = decrypt_object(&t, &ids).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot decrypt value at 'data:token'")
            && err.to_string().contains("does not match sops' data format"),
        "{err}"
    );
}

#[test]
fn json_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.txt");
    let plain = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "j"}, "stringData": {"n": 7, "f": 1.5, "b": true, "s": "x<y"}}"#;
    let enc = encrypt(
        dir.path(),
        "s.json",
        plain,
        &k.recipient,
        &["--encrypted-regex", "^stringData$"],
    );
    let obj: Value = serde_yaml::from_str(&enc).unwrap();
    let got = decrypt_object(&obj, &parse_identities(&k.text).unwrap()).unwrap();
    assert_eq!(got, yaml(plain));
}

/// Secret data entries that are themselves SOPS-encrypted files (secretGenerator sources),
/// decrypted as Flux does, compared byte for byte with `sops --decrypt` where our layout
/// is SOPS's (dotenv, JSON, binary) and as values for YAML.
#[test]
fn secret_generator_entries() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.txt");
    let ids = parse_identities(&k.text).unwrap();
    let d = dir.path();

    let env = encrypt(
        d,
        "app.env",
        "# settings\nUSER=admin\nPASSWORD=p@ss=word\nMULTI=a\\nb\n",
        &k.recipient,
        &[],
    );
    let yml = encrypt(
        d,
        "cfg.yaml",
        "db:\n  user: admin\n  port: 5432\n  hosts: [a, b]\n",
        &k.recipient,
        &[],
    );
    let json = encrypt(
        d,
        "cfg.json",
        r#"{"user": "admin", "port": 5432, "ratio": 0.5, "ok": true, "html": "<b>&</b>", "list": [1, {"x": null}], "empty": {}}"#,
        &k.recipient,
        &[],
    );
    let bin = encrypt(
        d,
        "blob.txt",
        "raw text\nwith lines\n",
        &k.recipient,
        &["--input-type", "binary"],
    );
    for (name, enc) in [
        ("e-app.env", &env),
        ("e-cfg.yaml", &yml),
        ("e-cfg.json", &json),
        ("e-blob.txt", &bin),
    ] {
        std::fs::write(d.join(name), enc).unwrap();
    }
    let secret = serde_yaml::to_value(serde_yaml::Mapping::from_iter([
        ("apiVersion".into(), "v1".into()),
        ("kind".into(), "Secret".into()),
        (
            "metadata".into(),
            yaml("{name: gen-abc123, namespace: apps}"),
        ),
        (
            "data".into(),
            Value::Mapping(serde_yaml::Mapping::from_iter([
                ("app.env".into(), B64.encode(&env).into()),
                ("cfg.yaml".into(), B64.encode(&yml).into()),
                ("cfg.json".into(), B64.encode(&json).into()),
                ("blob.txt".into(), B64.encode(&bin).into()),
                ("plain".into(), B64.encode("not encrypted").into()),
            ])),
        ),
    ]))
    .unwrap();
    assert!(!is_encrypted(&secret));
    let got = decrypt_object(&secret, &ids).unwrap();
    let entry = |key: &str| {
        String::from_utf8(B64.decode(got["data"][key].as_str().unwrap()).unwrap()).unwrap()
    };
    let real = |args: &[&str]| sops(d, Some(&k.file), args);

    assert_eq!(
        entry("app.env"),
        real(&[
            "--decrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            "e-app.env"
        ])
    );
    assert_eq!(
        entry("app.env"),
        "# settings\nUSER=admin\nPASSWORD=p@ss=word\nMULTI=a\\nb\n"
    );
    assert_eq!(
        entry("cfg.json"),
        real(&[
            "--decrypt",
            "--input-type",
            "json",
            "--output-type",
            "json",
            "e-cfg.json"
        ])
    );
    assert_eq!(
        yaml(&entry("cfg.yaml")),
        yaml(&real(&["--decrypt", "--input-type", "yaml", "e-cfg.yaml"]))
    );
    assert_eq!(entry("blob.txt"), "raw text\nwith lines\n");
    assert_eq!(entry("plain"), "not encrypted");

    // decrypt_file directly, across formats (a dotenv source emitted as YAML).
    let out = decrypt_file(env.as_bytes(), Format::Dotenv, Format::Yaml, &ids).unwrap();
    assert_eq!(
        yaml(std::str::from_utf8(&out).unwrap()),
        yaml("USER: admin\nPASSWORD: p@ss=word\nMULTI: \"a\\nb\"\n")
    );

    // A wrong key on a data entry names the entry.
    let other = keygen(d, "other.txt");
    let err = decrypt_object(&secret, &parse_identities(&other.text).unwrap()).unwrap_err();
    assert!(err.to_string().starts_with("Secret field '"), "{err}");
    assert!(
        err.to_string()
            .contains("no age identity matches the recipients"),
        "{err}"
    );
}

#[test]
fn key_groups_with_shamir() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = keygen(dir.path(), "k1.txt");
    let k2 = keygen(dir.path(), "k2.txt");
    let k3 = keygen(dir.path(), "k3.txt");
    let cfg = format!(
        "creation_rules:\n  - shamir_threshold: 2\n    encrypted_regex: ^stringData$\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n      - age: [{}]\n",
        k1.recipient, k2.recipient, k3.recipient
    );
    std::fs::write(dir.path().join(".sops.yaml"), cfg).unwrap();
    std::fs::write(dir.path().join("s.yaml"), SECRET).unwrap();
    let enc = yaml(&sops(dir.path(), None, &["--encrypt", "s.yaml"]));
    let two = parse_identities(&format!("{}\n{}", k1.text, k3.text)).unwrap();
    assert_eq!(decrypt_object(&enc, &two).unwrap(), yaml(SECRET));
    let one = parse_identities(&k2.text).unwrap();
    let err = decrypt_object(&enc, &one).unwrap_err();
    assert!(err.to_string().contains("key groups"), "{err}");
}
