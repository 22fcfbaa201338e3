//! The command behind what stands between users and the API (issue 19), all of it real servers on
//! 127.0.0.1 written for these tests: a CONNECT proxy that wants a password (or refuses the tunnel),
//! a TLS front with a certificate of a private authority for `happyrobot.test` that passes the
//! decrypted requests on to the mock, and the mock's gateway that answers `504` while the backend
//! goes on and adds the note later.
//!
//! The base URL is `https://happyrobot.test/api/v1`: not loopback, so the client goes through the
//! proxy of `HTTPS_PROXY`, which sends every tunnel to the TLS front whatever host it names (no
//! name is ever resolved).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Run, run_command};
use happyrobot_mock::{Fault, LateAnswer, MockServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CALL_ID: &str = "65f1c0ffee0123456789abcd";
const REMOTE: &str = "https://happyrobot.test/api/v1";
const PROXY_USER: &str = "corp";
const PROXY_PASSWORD: &str = "s3cret-pw";
/// `corp:s3cret-pw` in base64, as `Proxy-Authorization: Basic` carries it.
const PROXY_CREDENTIALS: &str = "Y29ycDpzM2NyZXQtcHc=";

/// What the proxy does with a CONNECT.
#[derive(Clone, Copy)]
enum Proxy {
    /// Asks for `corp:s3cret-pw` (407 without it), then tunnels.
    Password,
    /// Refuses every tunnel with 403, as a proxy whose policy forbids the host.
    Refuse,
}

/// A CONNECT proxy on 127.0.0.1 that tunnels to `target`; returns its port and a count of the
/// CONNECT requests it received.
async fn proxy(mode: Proxy, target: SocketAddr) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connects = Arc::new(AtomicUsize::new(0));
    let counted = connects.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let _ = serve_proxy(client, mode, target, &counted).await;
            });
        }
    });
    (port, connects)
}

/// One connection to the proxy: its CONNECT, then the tunnel or a refusal.
async fn serve_proxy(
    mut client: TcpStream,
    mode: Proxy,
    target: SocketAddr,
    connects: &AtomicUsize,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("connect ") {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    connects.fetch_add(1, Ordering::SeqCst);
    let authorized = head.lines().any(|line| {
        line.strip_prefix("proxy-authorization:").is_some_and(|v| {
            v.trim() == format!("basic {}", PROXY_CREDENTIALS.to_ascii_lowercase())
        })
    });
    let refusal: &[u8] = match mode {
        Proxy::Refuse => b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Proxy::Password if !authorized => {
            b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"corp\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        }
        Proxy::Password => b"",
    };
    if !refusal.is_empty() {
        client.write_all(refusal).await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(target).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// A TLS front for `happyrobot.test` (HTTP/1.1) that passes every decrypted connection on to
/// `upstream`, as a load balancer terminating TLS does; returns its address and its certificate
/// (PEM), which is its own authority: trusted only when given with `--ca-cert`.
async fn tls_front(upstream: SocketAddr) -> (SocketAddr, String) {
    let happyrobot_mock::testkit::SelfSigned { cert_pem, acceptor } =
        happyrobot_mock::testkit::self_signed("happyrobot.test", &[b"http/1.1"]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, cert_pem)
}

/// The mock behind the TLS front behind a proxy: what a user behind a corporate proxy reaches.
struct Remote {
    server: MockServer,
    proxy_port: u16,
    connects: Arc<AtomicUsize>,
    ca: PathBuf,
    dir: PathBuf,
}

async fn remote(mode: Proxy, name: &str) -> Remote {
    let server = MockServer::start().await.unwrap();
    let (front, cert_pem) = tls_front(server.addr()).await;
    let (proxy_port, connects) = proxy(mode, front).await;
    let dir = common::temp_dir(name);
    let ca = dir.join("private-ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    Remote {
        server,
        proxy_port,
        connects,
        ca,
        dir,
    }
}

impl Remote {
    /// The proxy's URL with these credentials.
    fn proxy_url(&self, password: &str) -> String {
        format!(
            "http://{PROXY_USER}:{password}@127.0.0.1:{}",
            self.proxy_port
        )
    }

    /// Runs the binary against `https://happyrobot.test` through the proxy, with `password`.
    async fn run(&self, password: &str, args: &[&str]) -> Run {
        let mut all = vec!["--base-url", REMOTE, "--api-key", self.server.api_key()];
        all.extend_from_slice(args);
        let mut command = common::command(&all);
        let proxy = self.proxy_url(password);
        for name in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
            command.env(name, &proxy);
        }
        for name in ["NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"] {
            command.env_remove(name);
        }
        run_command(command).await
    }

    fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }

    fn csv(&self, lines: usize) -> PathBuf {
        write_csv(&self.dir, lines)
    }

    /// Neither the proxy's password (nor its user with it) nor the API key was printed.
    fn assert_no_secret(&self, run: &Run) {
        let shown = format!("{}{}", run.stdout, run.stderr);
        for secret in [
            PROXY_PASSWORD,
            "wrong-pw",
            PROXY_CREDENTIALS,
            self.server.api_key(),
        ] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        assert!(!shown.contains(&format!("{PROXY_USER}:")), "{shown}");
    }
}

fn write_csv(dir: &Path, lines: usize) -> PathBuf {
    let path = dir.join("notes.csv");
    let mut text = String::from("call_id,content\n");
    for n in 1..=lines {
        text.push_str(&format!("{CALL_ID},through the proxy {n}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_password_proxy_and_a_private_authority_each_note_goes_once() {
    let remote = remote(Proxy::Password, "proxy-ok").await;
    let ca = remote.ca.to_str().unwrap();
    let file = remote.csv(20);
    let run = remote
        .run(
            PROXY_PASSWORD,
            &["--ca-cert", ca, "notes", "import", file.to_str().unwrap()],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let counts = common::counts_by_content(&remote.server, CALL_ID);
    assert_eq!(counts.len(), 20, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(remote.connects() >= 1);
    let run = remote
        .run(PROXY_PASSWORD, &["--ca-cert", ca, "calls", "get", CALL_ID])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    remote.assert_no_secret(&run);
}

/// A wrong password is one failed login at the proxy, not one per line and retry: the import
/// stops at the first 407 (exit 3), names the proxy's host and port, and never its credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_proxy_password_stops_at_the_first_407() {
    let remote = remote(Proxy::Password, "proxy-407").await;
    let ca = remote.ca.to_str().unwrap();
    let file = remote.csv(30);
    let file = file.to_str().unwrap();
    let run = remote
        .run(
            "wrong-pw",
            &[
                "--ca-cert",
                ca,
                "notes",
                "import",
                file,
                "--concurrency",
                "1",
            ],
        )
        .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(remote.connects(), 1, "one login attempt: {}", run.stderr);
    let port = format!("127.0.0.1:{}", remote.proxy_port);
    assert!(run.stderr.contains(&port), "{}", run.stderr);
    assert!(run.stderr.contains("407"), "{}", run.stderr);
    remote.assert_no_secret(&run);
    assert!(
        remote.server.requests().is_empty(),
        "nothing reached the API"
    );

    // With requests side by side, at most the ones already on their way meet the 407.
    let run = remote
        .run(
            "wrong-pw",
            &[
                "--ca-cert",
                ca,
                "notes",
                "import",
                file,
                "--concurrency",
                "4",
            ],
        )
        .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(remote.connects() <= 1 + 4, "{}", remote.connects());
    remote.assert_no_secret(&run);

    let before = remote.connects();
    let run = remote
        .run(
            "wrong-pw",
            &["--ca-cert", ca, "notes", "add", CALL_ID, "--content", "hi"],
        )
        .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(remote.connects(), before + 1, "never retried");
    assert!(run.stderr.contains(&port), "{}", run.stderr);
    remote.assert_no_secret(&run);
    assert!(
        remote.server.requests().is_empty(),
        "nothing reached the API"
    );
}

/// A certificate of an authority the client does not know fails the same way on every attempt:
/// it is not retried, and the message says how to trust a private authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_not_retried_and_the_message_says_how_to_trust_one() {
    let remote = remote(Proxy::Password, "proxy-cert").await;
    let run = remote
        .run(
            PROXY_PASSWORD,
            &[
                "notes",
                "add",
                CALL_ID,
                "--content",
                "hi",
                "--max-retries",
                "5",
            ],
        )
        .await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(remote.connects(), 1, "never retried: {}", run.stderr);
    for hint in ["--ca-cert", "SSL_CERT_FILE"] {
        assert!(run.stderr.contains(hint), "{hint}: {}", run.stderr);
    }
    remote.assert_no_secret(&run);

    // An import stops at it too: every other line would fail the same way.
    let file = remote.csv(10);
    let run = remote
        .run(
            PROXY_PASSWORD,
            &[
                "notes",
                "import",
                file.to_str().unwrap(),
                "--concurrency",
                "1",
            ],
        )
        .await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(remote.connects(), 2, "{}", run.stderr);
    assert!(
        remote.server.requests().is_empty(),
        "nothing reached the API"
    );
}

/// A proxy that refuses the tunnel is named as the one that refused, not reported as a vague
/// tunnel error, and it is not asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_refuses_the_tunnel_is_named() {
    let remote = remote(Proxy::Refuse, "proxy-403").await;
    let ca = remote.ca.to_str().unwrap();
    let run = remote
        .run(
            PROXY_PASSWORD,
            &["--ca-cert", ca, "notes", "add", CALL_ID, "--content", "hi"],
        )
        .await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(remote.connects(), 1, "never retried: {}", run.stderr);
    let port = format!("127.0.0.1:{}", remote.proxy_port);
    assert!(run.stderr.contains(&port), "{}", run.stderr);
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
    assert!(!run.stderr.contains("unsuccessful"), "{}", run.stderr);
    remote.assert_no_secret(&run);
}

/// Issue 19's late duplicate: the gateway answers 504 after 1.5 s, the backend adds the note at
/// 3.5 s. A look 2 s after the answer (3.5 s) could miss it and send the note again; the client
/// waits for three times the attempt's 1.5 s instead, finds the note, and says what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_add_behind_a_gateway_that_gives_up_adds_the_note_once() {
    let server = MockServer::start().await.unwrap();
    server.inject(
        Fault::LateApply {
            answer_after: Duration::from_millis(1500),
            answer: LateAnswer::Status(504),
            apply_after: Duration::from_millis(3500),
        },
        1,
    );
    let run = common::run_against(
        &server,
        &["notes", "add", CALL_ID, "--content", "behind the gateway"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let who = format!("the server at {} answered 504", server.addr());
    assert!(run.stderr.contains(&who), "{}", run.stderr);
    assert!(run.stderr.contains("not the API itself"), "{}", run.stderr);
    // Long after any late apply, the call holds the note once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = common::counts_by_content(&server, CALL_ID);
    assert_eq!(counts.get("behind the gateway"), Some(&1), "{counts:?}");
    let adds = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(adds, 1, "the note was found, not sent again");
}

/// With `-vv`, each attempt's span shows its own fields once, not the earlier attempts' as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_logs_show_one_set_of_fields_per_attempt() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Status(503), 2);
    let run = common::run_against(&server, &["calls", "get", CALL_ID, "-vv"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let attempts: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.contains("attempt="))
        .collect();
    assert!(!attempts.is_empty(), "{}", run.stderr);
    for line in &attempts {
        assert_eq!(line.matches("attempt=").count(), 1, "{line}");
    }
    for n in 1..=3 {
        let field = format!("attempt={n}");
        assert!(
            attempts.iter().any(|line| line.contains(&field)),
            "{field}: {}",
            run.stderr
        );
    }
}
