//! GitRepository `spec.verify` with SSH signatures (keys made by ssh-keygen, commits and
//! tags signed by git with `gpg.format=ssh`) and with expired OpenPGP keys (made by gpg with
//! a faked clock), on the real control plane and git http-backend.

mod support;

use ferroflux_api::source::GitRepository;
use ferroflux_testenv::git::GitHttpServer;
use kube::api::Api;
use support::signing::{Gpg, SshSigner, key_id};
use support::*;

/// A GitRepository verifying with Secret `keys` in `mode`.
fn verified(
    name: &str,
    url: &str,
    reference: serde_json::Value,
    keys: &str,
    mode: &str,
) -> GitRepository {
    let mut v = serde_json::to_value(gitrepo(name, url, reference, None)).unwrap();
    v["spec"]["verify"] = serde_json::json!({"mode": mode, "secretRef": {"name": keys}});
    serde_json::from_value(v).unwrap()
}

/// Waits for Ready=False and checks SourceVerified=False and Ready carry `reason`, `message`.
async fn expect_rejected(api: &Api<GitRepository>, name: &str, reason: &str, message: &str) {
    let o = wait_for(api, name, "Ready=False", is_ready_false).await;
    let want = Some(("False".to_string(), reason.to_string(), message.to_string()));
    assert_eq!(condition(&o, "SourceVerified"), want, "{name}");
    assert_eq!(ready(&o), want, "{name}");
    assert!(o.status.as_ref().unwrap().artifact.is_none(), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_signed_commits_and_tags() {
    let (client, ns, api) = setup("git-verify-ssh").await;
    let ssh = SshSigner::new();
    let trusted = ssh.gen_key("trusted", "ed25519");
    let trusted_rsa = ssh.gen_key("trusted-rsa", "rsa");
    let trusted_ecdsa = ssh.gen_key("trusted-ecdsa", "ecdsa");
    let stranger = ssh.gen_key("stranger", "ed25519");
    let (fp, fp_rsa, fp_ecdsa) = (
        ssh.fingerprint(&trusted),
        ssh.fingerprint(&trusted_rsa),
        ssh.fingerprint(&trusted_ecdsa),
    );
    // Several keys in one value, authorized_keys style, with a comment and a blank line.
    let authorized = format!(
        "# release signers\n{}\n{}",
        ssh.public_key(&trusted).trim(),
        ssh.public_key(&trusted_rsa)
    );
    secret(
        &client,
        &ns,
        "ssh-keys",
        serde_json::json!({"team.sshpub": authorized, "ci.sshpub": ssh.public_key(&trusted_ecdsa)}),
    )
    .await;
    // PGP and SSH keys in one Secret, as Flux allows.
    let gpg = Gpg::new();
    let pgp_key = gpg.gen_key("Trusted <trusted@example.com>");
    secret(
        &client,
        &ns,
        "mixed-keys",
        serde_json::json!({"pgp.asc": gpg.export(&pgp_key), "dev.sshpub": ssh.public_key(&trusted)}),
    )
    .await;
    secret(
        &client,
        &ns,
        "pgp-only",
        serde_json::json!({"pgp.asc": gpg.export(&pgp_key)}),
    )
    .await;
    secret(
        &client,
        &ns,
        "bad-ssh",
        serde_json::json!({"broken.sshpub": "ssh-ed25519 not-base64!"}),
    )
    .await;

    let root = tempfile::tempdir().unwrap();
    let signed = Repo::init(root.path(), "signed");
    let c1 = ssh.commit(&signed, Some(&trusted), &[("a.yaml", "one")], "signed");
    let t1 = ssh.tag(&signed, "v1.0.0", &trusted);
    let by_rsa = Repo::init(root.path(), "rsa");
    let cr = ssh.commit(&by_rsa, Some(&trusted_rsa), &[("a.yaml", "r")], "rsa");
    let by_ecdsa = Repo::init(root.path(), "ecdsa");
    let ce = ssh.commit(&by_ecdsa, Some(&trusted_ecdsa), &[("a.yaml", "e")], "ecdsa");
    let other = Repo::init(root.path(), "other");
    let co = ssh.commit(&other, Some(&stranger), &[("a.yaml", "o")], "stranger");
    let ts = ssh.tag(&other, "v2.0.0", &stranger);
    let unsigned = Repo::init(root.path(), "unsigned");
    let cu = ssh.commit(&unsigned, None, &[("a.yaml", "u")], "unsigned");
    let pgp_signed = Repo::init(root.path(), "pgp");
    let cp = gpg.commit(&pgp_signed, Some(&pgp_key), &[("a.yaml", "p")], "pgp");

    let server = GitHttpServer::start(root.path(), None).await.unwrap();
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let main = serde_json::json!({"branch": "main"});
    let cases = [
        ("head", "signed", main.clone(), "ssh-keys", "HEAD"),
        (
            "tag-and-head",
            "signed",
            serde_json::json!({"tag": "v1.0.0"}),
            "ssh-keys",
            "TagAndHEAD",
        ),
        ("rsa", "rsa", main.clone(), "ssh-keys", "HEAD"),
        ("ecdsa", "ecdsa", main.clone(), "ssh-keys", "HEAD"),
        ("mixed-ssh", "signed", main.clone(), "mixed-keys", "HEAD"),
        ("mixed-pgp", "pgp", main.clone(), "mixed-keys", "HEAD"),
        ("stranger", "other", main.clone(), "ssh-keys", "HEAD"),
        (
            "stranger-tag",
            "other",
            serde_json::json!({"tag": "v2.0.0"}),
            "ssh-keys",
            "Tag",
        ),
        ("unsigned", "unsigned", main.clone(), "ssh-keys", "HEAD"),
        ("no-ssh-keys", "signed", main.clone(), "pgp-only", "HEAD"),
        ("bad-key", "signed", main.clone(), "bad-ssh", "HEAD"),
    ];
    for (name, repo, r, keys, mode) in &cases {
        create(
            &api,
            &verified(name, &server.url(repo), r.clone(), keys, mode),
        )
        .await;
    }

    let verified_with = |what: &str, id: &str, key: &str| {
        format!("verified signature of\n\t- {what} '{id}' with key '{key}'")
    };
    for (name, commit, key) in [
        ("head", &c1, &fp),
        ("rsa", &cr, &fp_rsa),
        ("ecdsa", &ce, &fp_ecdsa),
        ("mixed-ssh", &c1, &fp),
    ] {
        let o = wait_for(&api, name, "Ready=True", is_ready_true).await;
        assert_eq!(
            condition(&o, "SourceVerified"),
            Some((
                "True".into(),
                "Succeeded".into(),
                verified_with("commit", commit, key)
            )),
            "{name}"
        );
    }
    assert!(fp.starts_with("SHA256:"), "{fp}");
    let o = wait_for(&api, "mixed-pgp", "Ready=True", is_ready_true).await;
    assert_eq!(
        condition(&o, "SourceVerified").unwrap().2,
        verified_with("commit", &cp, &key_id(&pgp_key))
    );
    let o = wait_for(&api, "tag-and-head", "Ready=True", is_ready_true).await;
    assert_eq!(
        condition(&o, "SourceVerified").unwrap().2,
        format!(
            "verified signature of\n\t- tag 'v1.0.0@{t1}' with key '{fp}'\n\t- commit '{c1}' with key '{fp}'"
        )
    );

    expect_rejected(
        &api,
        "stranger",
        "InvalidCommitSignature",
        &format!(
            "signature verification of commit '{co}' failed: unable to verify Git commit SSH signature: unable to verify payload with any of the given authorized keys: no matching key\npublic key does not match"
        ),
    )
    .await;
    expect_rejected(
        &api,
        "stranger-tag",
        "InvalidTagSignature",
        &format!(
            "signature verification of tag 'v2.0.0@{ts}' failed: unable to verify Git tag SSH signature: unable to verify payload with any of the given authorized keys: no matching key\npublic key does not match"
        ),
    )
    .await;
    expect_rejected(
        &api,
        "unsigned",
        "InvalidCommitSignature",
        &format!(
            "signature verification of commit '{cu}' failed: unsupported signature type: empty"
        ),
    )
    .await;
    expect_rejected(
        &api,
        "no-ssh-keys",
        "InvalidCommitSignature",
        &format!(
            "signature verification of commit '{c1}' failed: SSH signature detected but no SSH public keys found in secret (keys with .sshpub suffix)"
        ),
    )
    .await;
    let o = wait_for(&api, "bad-key", "Ready=False", is_ready_false).await;
    let (_, reason, msg) = condition(&o, "SourceVerified").unwrap();
    assert_eq!(reason, "InvalidCommitSignature");
    assert!(
        msg.starts_with(&format!(
            "signature verification of commit '{c1}' failed: unable to verify Git commit SSH signature: unable to parse authorized keys: unable to parse authorized key: "
        )),
        "{msg}"
    );

    // Trusting the stranger's key too makes its commit pass.
    secret(
        &client,
        &ns,
        "ssh-keys",
        serde_json::json!({"team.sshpub": authorized, "stranger.sshpub": ssh.public_key(&stranger)}),
    )
    .await;
    request_reconcile(&api, "stranger", "trust").await;
    let o = wait_for(&api, "stranger", "Ready=True", is_ready_true).await;
    assert_eq!(
        condition(&o, "SourceVerified").unwrap().2,
        verified_with("commit", &co, &ssh.fingerprint(&stranger))
    );
}

/// Seconds since the epoch, `days` days ago.
fn days_ago(days: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - days * 86_400
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_pgp_keys_are_rejected() {
    let (client, ns, api) = setup("git-verify-expired").await;
    let root = tempfile::tempdir().unwrap();
    let mut gpg = Gpg::new();

    // Made and used three days ago, valid for one day: expired now.
    gpg.at(Some(&days_ago(3).to_string()));
    let expired = gpg.gen_key_expiring("Expired <expired@example.com>", "1d");
    let by_expired = Repo::init(root.path(), "expired");
    let ce = gpg.commit(
        &by_expired,
        Some(&expired),
        &[("a.yaml", "e")],
        "by an expired key",
    );
    // A primary key that never expires with a signing subkey that expired.
    let parent = gpg.gen_key_expiring("Parent <parent@example.com>", "never");
    let subkey = gpg.add_signing_subkey(&parent, "1d");
    let by_subkey = Repo::init(root.path(), "subkey");
    let cs = gpg.commit(
        &by_subkey,
        Some(&format!("{subkey}!")),
        &[("a.yaml", "s")],
        "by an expired subkey",
    );
    // Valid for a year from now: still good.
    gpg.at(None);
    let valid = gpg.gen_key_expiring("Valid <valid@example.com>", "1y");
    let by_valid = Repo::init(root.path(), "valid");
    let cv = gpg.commit(
        &by_valid,
        Some(&valid),
        &[("a.yaml", "v")],
        "by a valid key",
    );
    secret(
        &client,
        &ns,
        "keys",
        serde_json::json!({
            "expired.asc": gpg.export(&expired),
            "parent.asc": gpg.export(&parent),
            "valid.asc": gpg.export(&valid),
        }),
    )
    .await;

    let server = GitHttpServer::start(root.path(), None).await.unwrap();
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let main = serde_json::json!({"branch": "main"});
    for (name, repo) in [
        ("expired", "expired"),
        ("subkey", "subkey"),
        ("valid", "valid"),
    ] {
        create(
            &api,
            &verified(name, &server.url(repo), main.clone(), "keys", "HEAD"),
        )
        .await;
    }

    let o = wait_for(&api, "valid", "Ready=True", is_ready_true).await;
    assert_eq!(
        condition(&o, "SourceVerified").unwrap().2,
        format!(
            "verified signature of\n\t- commit '{cv}' with key '{}'",
            key_id(&valid)
        )
    );
    // Flux's message ("no matching key"), then why the signer was not trusted.
    for (name, commit, why) in [
        (
            "expired",
            &ce,
            format!("key '{}' expired on ", key_id(&expired)),
        ),
        (
            "subkey",
            &cs,
            format!(
                "key '{}' has a signing subkey that expired on ",
                key_id(&parent)
            ),
        ),
    ] {
        let o = wait_for(&api, name, "Ready=False", is_ready_false).await;
        let (status, reason, msg) = condition(&o, "SourceVerified").unwrap();
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "InvalidCommitSignature")
        );
        let prefix = format!(
            "signature verification of commit '{commit}' failed: unable to verify Git commit: unable to verify payload with any of the given key rings: no matching key: {why}"
        );
        assert!(msg.starts_with(&prefix), "{name}: {msg}\nwanted: {prefix}");
        assert_eq!(ready(&o).unwrap().2, msg);
        assert!(o.status.as_ref().unwrap().artifact.is_none());
    }
}
