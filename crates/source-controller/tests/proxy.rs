//! GitRepository `spec.proxySecretRef` through a real proxy (Debian's tinyproxy) to git
//! http-backend, on the real control plane: the clone goes through the proxy (its log shows
//! the git requests), wrong proxy credentials and a stopped proxy fail the object with a
//! message naming the proxy, and unusable proxy Secrets fail with Flux's messages.

mod support;

use ferroflux_api::source::GitRepository;
use ferroflux_testenv::git::GitHttpServer;
use ferroflux_testenv::proxy::TinyProxy;
use support::*;

/// A GitRepository on `url` through the proxy of Secret `proxy_secret`.
fn proxied(name: &str, url: &str, proxy_secret: &str) -> GitRepository {
    let mut v = serde_json::to_value(gitrepo(
        name,
        url,
        serde_json::json!({"branch": "main"}),
        None,
    ))
    .unwrap();
    v["spec"]["proxySecretRef"] = serde_json::json!({ "name": proxy_secret });
    serde_json::from_value(v).unwrap()
}

/// The login the tests' tinyproxy requires.
const PROXY_LOGIN: (&str, &str) = ("proxyuser", "proxypass");

/// Secrets `proxy` (the proxy's address and login) and `proxy-wrong` (a wrong password).
async fn proxy_secrets(client: &kube::Client, ns: &str, proxy: &TinyProxy) {
    let (user, password) = PROXY_LOGIN;
    secret(
        client,
        ns,
        "proxy",
        serde_json::json!({"address": proxy.url(), "username": user, "password": password}),
    )
    .await;
    secret(
        client,
        ns,
        "proxy-wrong",
        serde_json::json!({"address": proxy.url(), "username": user, "password": "nope"}),
    )
    .await;
}

/// The proxy's log lines for git requests to `repo_path` (e.g. `/app.git/info/refs`).
fn proxied_requests(proxy: &TinyProxy, base_url: &str, repo_path: &str) -> Vec<String> {
    let wanted = format!("{base_url}{repo_path}");
    proxy
        .log()
        .lines()
        .filter(|l| l.contains("Request (file descriptor") && l.contains(&wanted))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clone_through_an_authenticating_proxy_and_fail_clearly_without_it() {
    assert!(
        ferroflux_testenv::proxy::tinyproxy_binary().is_some(),
        "tinyproxy is required: apt-get install tinyproxy"
    );
    let (client, ns, api) = setup("git-proxy").await;
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "app");
    let c1 = repo.commit(&[("app.yaml", "through the proxy")], "first");
    let server = GitHttpServer::start(root.path(), None).await.unwrap();
    let mut proxy = TinyProxy::start(Some(PROXY_LOGIN)).await.unwrap();
    proxy_secrets(&client, &ns, &proxy).await;
    secret(
        &client,
        &ns,
        "proxy-noaddress",
        serde_json::json!({"username": "proxyuser"}),
    )
    .await;
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let url = server.url("app");

    // Through the proxy: the artifact is stored and the proxy logged the git requests.
    create(&api, &proxied("via-proxy", &url, "proxy")).await;
    let o = wait_for(&api, "via-proxy", "Ready via the proxy", is_ready_true).await;
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    let seen = proxied_requests(&proxy, &server.base_url, "/app.git/");
    assert!(
        seen.iter()
            .any(|l| l.contains("GET ") && l.contains("/app.git/info/refs")),
        "the proxy did not see the ref advertisement: {seen:#?}\nlog:\n{}",
        proxy.log()
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("POST ") && l.contains("/app.git/git-upload-pack")),
        "the proxy did not see the pack request: {seen:#?}"
    );

    // Wrong proxy credentials: the proxy refuses, the object says so.
    let before = proxied_requests(&proxy, &server.base_url, "/app.git/").len();
    create(&api, &proxied("wrong-creds", &url, "proxy-wrong")).await;
    let o = wait_for(
        &api,
        "wrong-creds",
        "Ready=False for wrong proxy credentials",
        is_ready_false,
    )
    .await;
    let (_, reason, msg) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{msg}");
    assert!(
        msg.starts_with(&format!(
            "failed to checkout and determine revision: unable to fetch from '{url}'"
        )) && msg.contains("spec.proxySecretRef"),
        "{msg}"
    );
    let (st, _, fetch_msg) = condition(&o, "FetchFailed").unwrap();
    assert_eq!((st.as_str(), fetch_msg.as_str()), ("True", msg.as_str()));
    assert!(
        proxied_requests(&proxy, &server.base_url, "/app.git/").len() > before,
        "the refused request did not reach the proxy"
    );

    // Without the required address: Flux's message, AuthenticationFailed.
    create(&api, &proxied("no-address", &url, "proxy-noaddress")).await;
    let o = wait_for(&api, "no-address", "Ready=False", is_ready_false).await;
    assert_eq!(
        ready(&o).unwrap(),
        (
            "False".to_string(),
            "AuthenticationFailed".to_string(),
            format!(
                "failed to configure proxy options: secret '{ns}/proxy-noaddress': key 'address' not found"
            )
        )
    );

    // A missing Secret.
    create(&api, &proxied("no-secret", &url, "absent")).await;
    let o = wait_for(&api, "no-secret", "Ready=False", is_ready_false).await;
    let (_, reason, msg) = ready(&o).unwrap();
    assert_eq!(reason, "AuthenticationFailed");
    assert_eq!(
        msg,
        format!("failed to configure proxy options: secret '{ns}/absent' not found")
    );
    assert_eq!(
        condition(&o, "FetchFailed").unwrap().1,
        "AuthenticationFailed"
    );

    // ssh:// URLs cannot go through the proxy here: refused, never bypassing it.
    let ssh_url = "ssh://git@127.0.0.1:1/app.git";
    create(&api, &proxied("over-ssh", ssh_url, "proxy")).await;
    let o = wait_for(&api, "over-ssh", "Ready=False", is_ready_false).await;
    let (_, reason, msg) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed");
    assert_eq!(
        msg,
        format!(
            "failed to checkout and determine revision: unable to fetch from '{ssh_url}': proxy: unknown scheme: http (ssh:// URLs can only be proxied through socks5)"
        )
    );

    // The proxy goes down: a new commit cannot be fetched, and the message names the proxy.
    proxy.stop();
    let c2 = repo.commit(&[("app.yaml", "after the proxy stopped")], "second");
    request_reconcile(&api, "via-proxy", "proxy-down").await;
    let o = wait_for(&api, "via-proxy", "Ready=False with the proxy down", |o| {
        is_ready_false(o)
    })
    .await;
    let (_, reason, msg) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{msg}");
    assert!(
        msg.contains(&format!("unable to fetch from '{url}'")) && msg.contains("proxy"),
        "{msg}"
    );
    // The artifact of the first commit is kept; the second was never fetched.
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    assert_ne!(c1, c2);
}

/// A SOCKS5 proxy: `ssh -D` to the test sshd, verbose so its log names every forwarded
/// connection. Stopped on drop.
struct SshSocks {
    port: u16,
    log: std::path::PathBuf,
    child: std::process::Child,
}

impl SshSocks {
    async fn start(sshd: &ferroflux_testenv::git_ssh::GitSshServer) -> SshSocks {
        let port = free_port();
        let log = sshd.dir.path().join("socks.log");
        let kh = sshd.dir.path().join("socks_known_hosts");
        std::fs::write(&kh, &sshd.known_hosts).unwrap();
        let child = std::process::Command::new("ssh")
            .args(["-v", "-N", "-F", "/dev/null", "-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .arg("-i")
            .arg(sshd.dir.path().join("client"))
            .args(["-D", &format!("127.0.0.1:{port}")])
            .args(["-p", &sshd.port.to_string()])
            .arg(format!("{}@127.0.0.1", ferroflux_testenv::git_ssh::user()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("run ssh -D");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh -D did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        SshSocks { port, log, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SshSocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_through_the_proxy_tunnel_and_http_and_ssh_through_socks5() {
    use ferroflux_testenv::git::{ServerOptions, TlsOptions};
    use ferroflux_testenv::git_ssh::GitSshServer;
    use support::pki::Pki;
    assert!(
        GitSshServer::available(),
        "openssh-server is required: apt-get install openssh-server"
    );
    let (client, ns, api) = setup("git-proxy-tls").await;
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::init(root.path(), "app");
    let c1 = repo.commit(&[("app.yaml", "tunnelled")], "first");
    let https = GitHttpServer::start_with(
        root.path(),
        ServerOptions {
            tls: Some(TlsOptions {
                cert_pem: pki.pem("server.crt").into_bytes(),
                key_pem: pki.pem("server.key").into_bytes(),
                client_ca_pem: None,
            }),
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let http = GitHttpServer::start(root.path(), None).await.unwrap();
    let proxy = TinyProxy::start(Some(PROXY_LOGIN)).await.unwrap();
    let sshd = GitSshServer::start().await;
    let socks = SshSocks::start(&sshd).await;
    secret(
        &client,
        &ns,
        "ca",
        serde_json::json!({"ca.crt": pki.pem("ca.crt")}),
    )
    .await;
    proxy_secrets(&client, &ns, &proxy).await;
    secret(
        &client,
        &ns,
        "socks",
        serde_json::json!({"address": format!("socks5://127.0.0.1:{}", socks.port)}),
    )
    .await;
    secret(
        &client,
        &ns,
        "socks-down",
        serde_json::json!({"address": format!("socks5://127.0.0.1:{}", free_port())}),
    )
    .await;
    secret(
        &client,
        &ns,
        "ssh-key",
        serde_json::json!({"identity": sshd.client_key, "known_hosts": sshd.known_hosts}),
    )
    .await;
    secret(
        &client,
        &ns,
        "ssh-wrong-host-key",
        serde_json::json!({"identity": sshd.client_key, "known_hosts": sshd.wrong_known_hosts()}),
    )
    .await;
    let _ctl = Controller::start(client.clone(), &ns, &[]).await;
    let with_ssh_key = |o: GitRepository| {
        let mut v = serde_json::to_value(o).unwrap();
        v["spec"]["secretRef"] = serde_json::json!({"name": "ssh-key"});
        serde_json::from_value::<GitRepository>(v).unwrap()
    };
    let ssh_url = sshd.url(&repo.bare);
    create(&api, &with_ssh_key(proxied("ssh-socks", &ssh_url, "socks"))).await;
    create(
        &api,
        &with_ssh_key(proxied("ssh-socks-down", &ssh_url, "socks-down")),
    )
    .await;
    let with_ca = |o: GitRepository| {
        let mut v = serde_json::to_value(o).unwrap();
        v["spec"]["secretRef"] = serde_json::json!({"name": "ca"});
        serde_json::from_value::<GitRepository>(v).unwrap()
    };
    let https_url = https.url("app");
    create(&api, &with_ca(proxied("tunnel", &https_url, "proxy"))).await;
    create(
        &api,
        &with_ca(proxied("tunnel-wrong", &https_url, "proxy-wrong")),
    )
    .await;
    create(&api, &proxied("socks", &http.url("app"), "socks")).await;

    // HTTPS: a CONNECT tunnel through the proxy, TLS to the git server inside it.
    let o = wait_for(&api, "tunnel", "Ready through the tunnel", is_ready_true).await;
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    let authority = https.base_url.trim_start_matches("https://").to_string();
    assert!(
        proxy
            .log()
            .lines()
            .any(|l| l.contains("Request (file descriptor")
                && l.contains(&format!("CONNECT {authority}"))),
        "the proxy did not tunnel to {authority}:\n{}",
        proxy.log()
    );
    let o = wait_for(&api, "tunnel-wrong", "Ready=False", is_ready_false).await;
    let (_, reason, msg) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{msg}");
    assert!(
        msg.starts_with(&format!(
            "failed to checkout and determine revision: unable to fetch from '{https_url}'"
        )) && msg.contains("refused to open a tunnel")
            && msg.contains("spec.proxySecretRef"),
        "{msg}"
    );

    // SOCKS5: the forwarder logs the connection it opened to the git server.
    let o = wait_for(&api, "socks", "Ready through SOCKS5", is_ready_true).await;
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    let git_port = http.base_url.rsplit(':').next().unwrap().to_string();
    assert!(
        socks
            .log()
            .lines()
            .any(|l| l.contains("direct-tcpip")
                && l.contains(&format!("127.0.0.1 port {git_port},"))),
        "the SOCKS5 proxy did not forward to the git server:\n{}",
        socks.log()
    );

    // ssh through SOCKS5 (a local relay for the system ssh): the forwarder connected to sshd,
    // and the host key was still checked against the Secret's known_hosts.
    let o = wait_for(
        &api,
        "ssh-socks",
        "Ready over ssh through SOCKS5",
        is_ready_true,
    )
    .await;
    assert_eq!(revision(&o), format!("main@sha1:{c1}"));
    assert!(
        socks
            .log()
            .lines()
            .any(|l| l.contains("direct-tcpip")
                && l.contains(&format!("127.0.0.1 port {},", sshd.port))),
        "the SOCKS5 proxy did not forward to sshd:\n{}",
        socks.log()
    );
    let mut v = serde_json::to_value(proxied("ssh-socks-bad-host", &ssh_url, "socks")).unwrap();
    v["spec"]["secretRef"] = serde_json::json!({"name": "ssh-wrong-host-key"});
    create(&api, &serde_json::from_value(v).unwrap()).await;
    let o = wait_for(&api, "ssh-socks-bad-host", "Ready=False", is_ready_false).await;
    let msg = ready(&o).unwrap().2;
    assert!(msg.contains("host key verification failed"), "{msg}");
    let o = wait_for(&api, "ssh-socks-down", "Ready=False", is_ready_false).await;
    let (_, reason, msg) = ready(&o).unwrap();
    assert_eq!(reason, "GitOperationFailed", "{msg}");
    assert!(
        msg.starts_with(&format!(
            "failed to checkout and determine revision: unable to fetch from '{ssh_url}'"
        )) && msg.contains("socks5 proxy '127.0.0.1:")
            && msg.contains("cannot connect"),
        "{msg}"
    );
}
