//! GitRepository `spec.verify` (OpenPGP signatures made by the real gpg), `spec.include`,
//! and HTTPS authentication (bearer token, custom CA, client certificate) against git
//! http-backend over TLS, on the real control plane.

mod support;

use std::path::Path;

use ferroflux_api::source::GitRepository;
use ferroflux_testenv::git::{GitHttpServer, ServerOptions, TlsOptions};
use kube::api::{Patch, PatchParams};
use support::pki::Pki;
use support::signing::{Gpg, key_id};
use support::*;

fn artifact_files(o: &GitRepository) -> Vec<(String, String)> {
    let a = o.status.as_ref().unwrap().artifact.as_ref().unwrap();
    let bytes = curl(&a.url).1;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.tar.gz");
    std::fs::write(&f, bytes).unwrap();
    let out = std::process::Command::new("tar")
        .args([
            "-xzf",
            f.to_str().unwrap(),
            "-C",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_file(&f).unwrap();
    let mut files = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    walk(dir.path(), dir.path(), &mut files);
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_signed_commits_and_tags_and_reject_others() {
    let (client, ns, api) = setup("git-verify").await;
    let gpg = Gpg::new();
    let trusted = gpg.gen_key("Trusted <trusted@example.com>");
    let stranger = gpg.gen_key("Stranger <stranger@example.com>");
    let (tid, sid) = (key_id(&trusted), key_id(&stranger));
    secret(
        &client,
        &ns,
        "keys",
        serde_json::json!({"trusted.asc": gpg.export(&trusted)}),
    )
    .await;

    let root = tempfile::tempdir().unwrap();
    let signed = Repo::init(root.path(), "signed");
    let c1 = gpg.commit(&signed, Some(&trusted), &[("a.yaml", "one")], "signed");
    let tag_signed = gpg.tag(&signed, "v1.0.0", Some(&trusted));
    let tag_plain = gpg.tag(&signed, "v0.9.0", None);
    let unsigned = Repo::init(root.path(), "unsigned");
    let cu = gpg.commit(&unsigned, None, &[("a.yaml", "u")], "unsigned");
    let other = Repo::init(root.path(), "other");
    let co = gpg.commit(&other, Some(&stranger), &[("a.yaml", "o")], "by a stranger");
    // Signed while valid, revoked since: the exported key carries the revocation.
    let revoked = gpg.gen_key("Revoked <revoked@example.com>");
    let by_revoked = Repo::init(root.path(), "revoked");
    let cr = gpg.commit(
        &by_revoked,
        Some(&revoked),
        &[("a.yaml", "r")],
        "by a revoked key",
    );
    secret(
        &client,
        &ns,
        "before-revocation",
        serde_json::json!({"key.asc": gpg.export(&revoked)}),
    )
    .await;
    gpg.revoke(&revoked);
    secret(
        &client,
        &ns,
        "revoked-keys",
        serde_json::json!({"revoked.asc": gpg.export(&revoked)}),
    )
    .await;

    let server = GitHttpServer::start(root.path(), None)
        .await
        .expect("start the git server");
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let verify = |mode: Option<&str>| {
        let mut v = serde_json::json!({"secretRef": {"name": "keys"}});
        if let Some(m) = mode {
            v["mode"] = serde_json::json!(m);
        }
        serde_json::json!({ "verify": v })
    };
    let main = serde_json::json!({"branch": "main"});
    let cases = [
        (
            "head",
            server.url("signed"),
            main.clone(),
            verify(Some("HEAD")),
        ),
        (
            "default-mode",
            server.url("signed"),
            main.clone(),
            verify(None),
        ),
        (
            "tag-and-head",
            server.url("signed"),
            serde_json::json!({"tag": "v1.0.0"}),
            verify(Some("TagAndHEAD")),
        ),
        (
            "tag-unsigned",
            server.url("signed"),
            serde_json::json!({"tag": "v0.9.0"}),
            verify(Some("Tag")),
        ),
        (
            "tag-on-branch",
            server.url("signed"),
            main.clone(),
            verify(Some("Tag")),
        ),
        (
            "unsigned",
            server.url("unsigned"),
            main.clone(),
            verify(None),
        ),
        ("stranger", server.url("other"), main.clone(), verify(None)),
        (
            "revoked",
            server.url("revoked"),
            main.clone(),
            serde_json::json!({"verify": {"secretRef": {"name": "revoked-keys"}}}),
        ),
        (
            "before-revocation",
            server.url("revoked"),
            main.clone(),
            serde_json::json!({"verify": {"secretRef": {"name": "before-revocation"}}}),
        ),
        (
            "later",
            server.url("other"),
            main.clone(),
            serde_json::json!({}),
        ),
    ];
    for (name, url, r, extra) in &cases {
        create(&api, &gitrepo_with(name, url, r.clone(), extra.clone())).await;
    }

    // Signed commit, HEAD mode (explicit and the CRD default).
    for name in ["head", "default-mode"] {
        let o = wait_for(&api, name, "Ready=True", is_ready_true).await;
        assert_eq!(revision(&o), format!("main@sha1:{c1}"));
        assert_eq!(
            condition(&o, "SourceVerified"),
            Some((
                "True".into(),
                "Succeeded".into(),
                format!("verified signature of\n\t- commit '{c1}' with key '{tid}'")
            )),
            "{name}"
        );
        assert_eq!(
            o.status
                .as_ref()
                .unwrap()
                .source_verification_mode
                .as_deref(),
            Some("HEAD")
        );
    }
    // The revoked key's commit verifies with the key as exported before the revocation.
    let o = wait_for(&api, "before-revocation", "Ready=True", is_ready_true).await;
    assert_eq!(
        condition(&o, "SourceVerified").unwrap().2,
        format!(
            "verified signature of\n\t- commit '{cr}' with key '{}'",
            key_id(&revoked)
        )
    );
    // Signed tag and commit.
    let o = wait_for(&api, "tag-and-head", "Ready=True", is_ready_true).await;
    assert_eq!(revision(&o), format!("v1.0.0@sha1:{c1}"));
    assert_eq!(
        condition(&o, "SourceVerified").unwrap().2,
        format!(
            "verified signature of\n\t- tag 'v1.0.0@{tag_signed}' with key '{tid}'\n\t- commit '{c1}' with key '{tid}'"
        )
    );
    assert_eq!(
        o.status
            .as_ref()
            .unwrap()
            .source_verification_mode
            .as_deref(),
        Some("TagAndHEAD")
    );

    // Failures: SourceVerified=False, Ready=False with the same reason, no artifact.
    let failures = [
        (
            "tag-unsigned",
            "InvalidGitObject",
            format!("cannot verify signature of tag 'v0.9.0@{tag_plain}' since it is not signed"),
        ),
        (
            "tag-on-branch",
            "InvalidVerificationMode",
            "cannot verify tag object's signature if a tag reference is not specified".to_string(),
        ),
        (
            "unsigned",
            "InvalidCommitSignature",
            format!(
                "signature verification of commit '{cu}' failed: unsupported signature type: empty"
            ),
        ),
        (
            "stranger",
            "InvalidCommitSignature",
            format!(
                "signature verification of commit '{co}' failed: unable to verify Git commit: unable to verify payload with any of the given key rings: no matching key"
            ),
        ),
        (
            "revoked",
            "InvalidCommitSignature",
            format!(
                "signature verification of commit '{cr}' failed: unable to verify Git commit: unable to verify payload with any of the given key rings: no matching key"
            ),
        ),
    ];
    for (name, reason, message) in &failures {
        let o = wait_for(&api, name, "Ready=False", is_ready_false).await;
        assert_eq!(
            condition(&o, "SourceVerified"),
            Some(("False".into(), reason.to_string(), message.clone())),
            "{name}"
        );
        assert_eq!(
            ready(&o),
            Some(("False".into(), reason.to_string(), message.clone())),
            "{name}"
        );
        assert!(o.status.as_ref().unwrap().artifact.is_none(), "{name}");
    }
    let o = api.get("tag-on-branch").await.unwrap();
    assert_eq!(condition(&o, "Stalled").unwrap().0, "True");

    assert_ne!(tid, sid);

    // Verification added to an object whose artifact is current: the unchanged commit is
    // verified anyway, and rejected; the existing artifact stays.
    let o = wait_for(&api, "later", "Ready=True", is_ready_true).await;
    let before = o.status.as_ref().unwrap().artifact.clone().unwrap();
    assert!(condition(&o, "SourceVerified").is_none());
    api.patch(
        "later",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "spec": verify(None) })),
    )
    .await
    .unwrap();
    let o = wait_for(&api, "later", "Ready=False", is_ready_false).await;
    let (_, reason, message) = ready(&o).unwrap();
    assert_eq!(reason, "InvalidCommitSignature");
    assert!(message.contains("no matching key"), "{message}");
    assert_eq!(o.status.as_ref().unwrap().artifact.as_ref(), Some(&before));
    // Trusting the stranger's key too makes it pass without a new artifact.
    secret(
        &client,
        &ns,
        "keys",
        serde_json::json!({"trusted.asc": gpg.export(&trusted), "stranger.asc": gpg.export(&stranger)}),
    )
    .await;
    request_reconcile(&api, "later", "trust").await;
    let o = wait_for(&api, "later", "Ready=True", is_ready_true).await;
    assert_eq!(
        condition(&o, "SourceVerified").unwrap().2,
        format!("verified signature of\n\t- commit '{co}' with key '{sid}'")
    );
    assert_eq!(
        o.status.as_ref().unwrap().artifact.as_ref().unwrap().digest,
        before.digest
    );

    // An unsigned commit on a verified branch: rejected, the verified artifact stays.
    let c2 = gpg.commit(&signed, None, &[("a.yaml", "two")], "not signed");
    request_reconcile(&api, "head", "r1").await;
    let o = wait_for(&api, "head", "Ready=False", |o| {
        is_ready_false(o)
            && o.status
                .as_ref()
                .unwrap()
                .last_handled_reconcile_at
                .as_deref()
                == Some("r1")
    })
    .await;
    assert_eq!(
        ready(&o).unwrap().2,
        format!(
            "signature verification of commit '{c2}' failed: unsupported signature type: empty"
        )
    );
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    assert_eq!(condition(&o, "SourceVerified").unwrap().0, "False");

    // Verification removed: the new commit lands and the condition is gone.
    api.patch(
        "head",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"verify": null}})),
    )
    .await
    .unwrap();
    let o = wait_for(&api, "head", "new revision", |o| {
        is_ready_true(o) && revision(o) == format!("main@sha1:{c2}")
    })
    .await;
    assert!(condition(&o, "SourceVerified").is_none());
    assert!(
        o.status
            .as_ref()
            .unwrap()
            .source_verification_mode
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn include_copies_artifacts_waits_for_them_and_follows_their_changes() {
    let (client, ns, api) = setup("git-include").await;
    let root = tempfile::tempdir().unwrap();
    let lib = Repo::init(root.path(), "lib");
    let l1 = lib.commit(&[("lib.yaml", "lib v1"), ("sub/x.yaml", "x v1")], "lib");
    let app = Repo::init(root.path(), "app");
    app.commit(&[("app.yaml", "app")], "app");
    let server = GitHttpServer::start(root.path(), None)
        .await
        .expect("start the git server");
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let main = serde_json::json!({"branch": "main"});
    let includes = serde_json::json!({"include": [
        {"repository": {"name": "lib"}},
        {"repository": {"name": "lib"}, "fromPath": "sub", "toPath": "vendor/sub"},
    ]});
    create(
        &api,
        &gitrepo_with("app", &server.url("app"), main.clone(), includes),
    )
    .await;

    // The included repository does not exist yet.
    let o = wait_for(&api, "app", "Ready=False", is_ready_false).await;
    let want = (
        "True".to_string(),
        "NotFound".to_string(),
        "could not get resource for include 'lib': gitrepositories.source.toolkit.fluxcd.io \"lib\" not found".to_string(),
    );
    assert_eq!(condition(&o, "IncludeUnavailable"), Some(want.clone()));
    assert_eq!(ready(&o), Some(("False".into(), want.1, want.2)));
    assert!(o.status.as_ref().unwrap().artifact.is_none());

    // It exists but has no artifact (its branch is missing).
    create(
        &api,
        &gitrepo(
            "lib",
            &server.url("lib"),
            serde_json::json!({"branch": "nope"}),
            None,
        ),
    )
    .await;
    let o = wait_for(&api, "app", "NoArtifact", |o| {
        ready(o).is_some_and(|(s, r, _)| s == "False" && r == "NoArtifact")
    })
    .await;
    assert_eq!(
        condition(&o, "IncludeUnavailable"),
        Some((
            "True".into(),
            "NoArtifact".into(),
            "no artifact available for include 'lib'".into()
        ))
    );

    // The include gets an artifact: the includer follows without being asked.
    api.patch(
        "lib",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"ref": {"branch": "main"}}})),
    )
    .await
    .unwrap();
    let o = wait_for(&api, "app", "Ready=True", is_ready_true).await;
    assert!(condition(&o, "IncludeUnavailable").is_none());
    assert_eq!(
        artifact_files(&o),
        [
            ("app.yaml".to_string(), "app".to_string()),
            ("lib/lib.yaml".into(), "lib v1".into()),
            ("lib/sub/x.yaml".into(), "x v1".into()),
            ("vendor/sub/x.yaml".into(), "x v1".into()),
        ]
    );
    let st = o.status.as_ref().unwrap();
    let included = st.included_artifacts.as_ref().unwrap();
    assert_eq!(included.len(), 2);
    assert!(
        included
            .iter()
            .all(|a| a.revision == format!("main@sha1:{l1}"))
    );
    let lib_obj = api.get("lib").await.unwrap();
    assert_eq!(
        included[0].digest,
        lib_obj.status.unwrap().artifact.unwrap().digest
    );
    let first = st.artifact.clone().unwrap();

    // A new commit in the included repository makes a new artifact of the includer.
    let l2 = lib.commit(&[("lib.yaml", "lib v2")], "lib two");
    request_reconcile(&api, "lib", "l2").await;
    let o = wait_for(&api, "app", "new include", |o| {
        is_ready_true(o)
            && o.status
                .as_ref()
                .and_then(|s| s.included_artifacts.as_ref())
                .is_some_and(|i| i[0].revision == format!("main@sha1:{l2}"))
    })
    .await;
    let art = o.status.as_ref().unwrap().artifact.clone().unwrap();
    assert_eq!(art.revision, first.revision, "same commit of the includer");
    assert_ne!(art.digest, first.digest, "new content");
    assert!(artifact_files(&o).contains(&("lib/lib.yaml".to_string(), "lib v2".to_string())));
    assert_ne!(
        o.status
            .as_ref()
            .unwrap()
            .last_handled_reconcile_at
            .as_deref(),
        Some("l2"),
        "the includer was not asked, the watch brought it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_bearer_token_custom_ca_and_client_certificate() {
    let (client, ns, api) = setup("git-https").await;
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "r");
    let c1 = repo.commit(&[("a.yaml", "over https")], "a");
    let tls = TlsOptions {
        cert_pem: pki.pem("server.crt").into_bytes(),
        key_pem: pki.pem("server.key").into_bytes(),
        client_ca_pem: None,
    };
    let bearer = GitHttpServer::start_with(
        root.path(),
        ServerOptions {
            bearer_token: Some("t0ken".into()),
            tls: Some(tls.clone()),
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("start the https git server");
    assert!(bearer.base_url.starts_with("https://"));
    let mtls = GitHttpServer::start_with(
        root.path(),
        ServerOptions {
            tls: Some(TlsOptions {
                client_ca_pem: Some(pki.pem("ca.crt").into_bytes()),
                ..tls
            }),
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .expect("start the mTLS git server");

    let ca = pki.pem("ca.crt");
    let secrets = [
        (
            "ca-bearer",
            serde_json::json!({"ca.crt": ca, "bearerToken": "t0ken"}),
        ),
        ("no-ca", serde_json::json!({"bearerToken": "t0ken"})),
        (
            "bad-token",
            serde_json::json!({"ca.crt": ca, "bearerToken": "wrong"}),
        ),
        (
            "client-cert",
            serde_json::json!({"ca.crt": ca, "tls.crt": pki.pem("client.crt"), "tls.key": pki.pem("client.key")}),
        ),
        ("no-client-cert", serde_json::json!({"ca.crt": ca})),
        (
            "half-pair",
            serde_json::json!({"ca.crt": ca, "tls.crt": pki.pem("client.crt")}),
        ),
    ];
    for (name, data) in &secrets {
        secret(&client, &ns, name, data.clone()).await;
    }
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let main = serde_json::json!({"branch": "main"});
    for (name, server) in [
        ("ca-bearer", &bearer),
        ("no-ca", &bearer),
        ("bad-token", &bearer),
        ("client-cert", &mtls),
        ("no-client-cert", &mtls),
        ("half-pair", &mtls),
    ] {
        create(
            &api,
            &gitrepo(name, &server.url("r"), main.clone(), Some(name)),
        )
        .await;
    }

    for name in ["ca-bearer", "client-cert"] {
        let o = wait_for(&api, name, "Ready=True", is_ready_true).await;
        assert_eq!(revision(&o), format!("main@sha1:{c1}"), "{name}");
        assert!(
            artifact_files(&o).contains(&("a.yaml".to_string(), "over https".to_string())),
            "{name}"
        );
    }

    let failed = |name: &'static str| {
        let api = api.clone();
        async move {
            let o = wait_for(&api, name, "Ready=False", is_ready_false).await;
            assert_eq!(condition(&o, "FetchFailed").unwrap().0, "True", "{name}");
            assert!(o.status.as_ref().unwrap().artifact.is_none(), "{name}");
            ready(&o).unwrap()
        }
    };
    // The server's certificate is signed by a CA the client was not given.
    let (_, reason, message) = failed("no-ca").await;
    assert_eq!(reason, "GitOperationFailed", "{message}");
    assert!(
        message.starts_with(&format!(
            "failed to checkout and determine revision: unable to fetch from '{}'",
            bearer.url("r")
        )),
        "{message}"
    );
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    // A wrong token is refused by the server.
    let (_, reason, message) = failed("bad-token").await;
    assert_eq!(reason, "GitOperationFailed", "{message}");
    assert_eq!(
        message,
        format!(
            "failed to checkout and determine revision: unable to fetch from '{}': authentication required or credentials rejected by the remote (check spec.secretRef): the server answered 401 Unauthorized",
            bearer.url("r")
        )
    );
    // No client certificate: the TLS handshake is refused.
    let (_, reason, message) = failed("no-client-cert").await;
    assert_eq!(reason, "GitOperationFailed", "{message}");
    assert!(message.contains(&mtls.url("r")), "{message}");
    // A certificate without its key cannot be used at all.
    let (_, reason, message) = failed("half-pair").await;
    assert_eq!(reason, "AuthenticationFailed", "{message}");
    assert_eq!(
        message,
        format!("invalid secret '{ns}/half-pair': 'tls.crt' and 'tls.key' must both be set")
    );
}
