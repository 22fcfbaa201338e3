//! Settings and input the command refuses before anything is sent (issue 20): an empty base URL,
//! one with credentials (never echoed) or control characters, an unbounded `--max-retries`, a
//! JSON Lines key given twice, a journal that is not a regular file; and what it accepts: an
//! call ID by the documented rule, sent as typed (upper case included), and `[::ffff:127.0.0.1]` as
//! loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod common;

use std::time::{Duration, Instant};

use happyrobot_mock::MockServer;

const CALL_ID: &str = "65f1c0ffee0123456789abcd";

fn csv(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("notes.csv");
    std::fs::write(
        &file,
        format!("call_id,content\n{CALL_ID},one\n{CALL_ID},two\n"),
    )
    .unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_base_url_is_a_usage_error_not_the_production_api() {
    let dir = common::temp_dir("empty-url");
    let file = csv(&dir);
    let file = file.to_str().unwrap();
    for args in [
        &["notes", "add", CALL_ID, "--content", "hi"][..],
        &["notes", "import", file][..],
        &["calls", "get", CALL_ID][..],
    ] {
        let mut flag = vec!["--base-url", "", "--api-key", "hr_key"];
        flag.extend_from_slice(args);
        let run = common::run(&flag).await;
        assert_eq!(run.code, 2, "--base-url '': {}", run.stderr);
        assert!(run.stderr.contains("empty"), "{}", run.stderr);

        let mut env = common::command(&[&["--api-key", "hr_key"][..], args].concat());
        env.env("HAPPYROBOT_BASE_URL", "");
        let run = common::run_command(env).await;
        assert_eq!(run.code, 2, "HAPPYROBOT_BASE_URL='': {}", run.stderr);
        assert!(run.stderr.contains("HAPPYROBOT_BASE_URL"), "{}", run.stderr);
    }
}

/// A base URL with a password is refused by every command, the dry runs too, and the password is
/// never printed; so is one with a CR/LF inside (not stripped and sent to another path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_with_credentials_or_control_characters_is_refused_everywhere() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("credentials-url");
    let file = csv(&dir);
    let file = file.to_str().unwrap();
    let addr = server.addr();
    let with_password = format!("http://user:PASSWORD-x9@{addr}/api/v1");
    let with_crlf = format!("http://{addr}/api/v1\r\n/calls");
    let commands: [&[&str]; 5] = [
        &["notes", "add", CALL_ID, "--content", "hi"],
        &["notes", "import", file],
        &["notes", "import", file, "--dry-run"],
        &["notes", "import", file, "--undo", "--dry-run"],
        &["calls", "get", CALL_ID],
    ];
    for url in [&with_password, &with_crlf] {
        for args in commands {
            let mut all = vec!["--base-url", url.as_str(), "--api-key", server.api_key()];
            all.extend_from_slice(args);
            let run = common::run(&all).await;
            assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
            let shown = format!("{}{}", run.stdout, run.stderr);
            assert!(!shown.contains("PASSWORD-x9"), "{args:?}: {shown}");
        }
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_mapped_loopback_address_is_loopback() {
    let server = MockServer::start().await.unwrap();
    let url = format!("http://[::ffff:127.0.0.1]:{}/api/v1", server.addr().port());
    let run = common::run(&[
        "--base-url",
        &url,
        "--api-key",
        server.api_key(),
        "notes",
        "add",
        CALL_ID,
        "--content",
        "mapped",
    ])
    .await;
    // The mock listens on 127.0.0.1; an IPv4-mapped address reaches it only on a host whose IPv6
    // stack maps it, so a refused connection (exit 6) is accepted, but never the refusal of an
    // `http` URL that is not loopback (exit 2).
    assert_ne!(run.code, 2, "{}", run.stderr);
    if run.code == 0 {
        assert_eq!(
            common::counts_by_content(&server, CALL_ID).get("mapped"),
            Some(&1)
        );
    }
}

/// A call ID is sent exactly as typed: the mock, which compares IDs as text, answers 404 for the
/// upper-case form of its call, and the message adds that call IDs are usually lower-case hex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_id_is_sent_as_typed_and_a_404_for_an_unusual_one_carries_the_hint() {
    let server = MockServer::start().await.unwrap();
    let upper = CALL_ID.to_ascii_uppercase();
    for args in [
        vec!["notes", "add", upper.as_str(), "--content", "upper case"],
        vec!["calls", "get", upper.as_str()],
        vec!["calls", "transcript", "s90000000000000000000001"],
    ] {
        let run = common::run_against(&server, &args).await;
        assert_eq!(run.code, 4, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("call IDs are usually 24 lower-case hexadecimal digits"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            format!("/api/v1/calls/{upper}/notes"),
            format!("/api/v1/calls/{upper}"),
            "/api/v1/calls/s90000000000000000000001/transcript".to_string(),
        ]
    );
    assert_eq!(
        common::counts_by_content(&server, CALL_ID).get("upper case"),
        None,
        "no note was added"
    );
    // Characters that could change the path, and other lengths, are refused before anything.
    for bad in [
        "s9000000000000000000000/",
        "s9000000000000000000000?",
        "s900000000000000000000%2",
        "s90000000000000000000001x",
    ] {
        let run = common::run_against(&server, &["calls", "transcript", bad]).await;
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("24 characters"), "{}", run.stderr);
    }
    assert_eq!(server.requests().len(), 3, "nothing more was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retries_is_bounded() {
    let server = MockServer::start().await.unwrap();
    for n in ["101", "4294967295", "-1"] {
        let run =
            common::run_against(&server, &["--max-retries", n, "calls", "get", CALL_ID]).await;
        assert_eq!(run.code, 2, "{n}: {}", run.stderr);
    }
    let run =
        common::run_against(&server, &["--max-retries", "100", "calls", "get", CALL_ID]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.requests().len(), 1, "only the last one was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_lines_key_given_twice_is_refused_with_its_line() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("jsonl-twice");
    let file = dir.join("notes.jsonl");
    std::fs::write(
        &file,
        format!(
            "{{\"call_id\":\"{CALL_ID}\",\"content\":\"fine\"}}\n\
             {{\"call_id\":\"{CALL_ID}\",\"content\":\"first\",\"content\":\"second\"}}\n"
        ),
    )
    .unwrap();
    let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    assert!(run.stderr.contains("content"), "{}", run.stderr);
    assert!(server.requests().is_empty(), "nothing was sent");
}

/// A journal that is a FIFO, a device or a directory is refused within a second, before anything
/// is read or sent, dry runs included (a FIFO once blocked `open` forever).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_is_not_a_regular_file_is_refused_at_once() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("special-journal");
    let file = csv(&dir);
    let fifo = dir.join("journal.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let devnull = dir.join("journal.devnull");
    std::os::unix::fs::symlink("/dev/null", &devnull).unwrap();
    for journal in [&fifo, &devnull, &dir] {
        for extra in [&[][..], &["--dry-run"][..]] {
            let mut args = vec![
                "notes",
                "import",
                file.to_str().unwrap(),
                "--journal",
                journal.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let started = Instant::now();
            let run = common::run_against(&server, &args).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{journal:?}: {:?}",
                started.elapsed()
            );
            assert_eq!(run.code, 2, "{journal:?} {extra:?}: {}", run.stderr);
            assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
        }
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}
