//! Golden files of every command's `--help`: the command line is a contract, so any change to it
//! shows up as a snapshot diff to review.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location, helpers included"
)]

mod common;

async fn help(args: &[&str]) -> String {
    let run = common::run(args).await;
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    assert!(run.stderr.is_empty(), "{args:?}: {}", run.stderr);
    run.stdout
}

#[tokio::test]
async fn root_help() {
    let text = help(&["--help"]).await;
    let codes = text.split("Exit codes:").nth(1).expect("the exit codes");
    for code in 0..=8 {
        assert!(
            codes.contains(&format!(" {code} ")) || codes.contains(&format!("\n{code} ")),
            "exit code {code} is documented"
        );
    }
    assert!(text.contains("Examples:\n  happyrobot --mock calls list"));
    insta::assert_snapshot!("happyrobot_help", text);
}

#[tokio::test]
async fn notes_help() {
    insta::assert_snapshot!("notes_help", help(&["notes", "--help"]).await);
}

#[tokio::test]
async fn notes_add_help() {
    insta::assert_snapshot!("notes_add_help", help(&["notes", "add", "--help"]).await);
}

#[tokio::test]
async fn notes_import_help() {
    insta::assert_snapshot!(
        "notes_import_help",
        help(&["notes", "import", "--help"]).await
    );
}

#[tokio::test]
async fn notes_update_and_delete_help() {
    insta::assert_snapshot!(
        "notes_update_help",
        help(&["notes", "update", "--help"]).await
    );
    insta::assert_snapshot!(
        "notes_delete_help",
        help(&["notes", "delete", "--help"]).await
    );
}

#[tokio::test]
async fn calls_get_help() {
    insta::assert_snapshot!("calls_get_help", help(&["calls", "get", "--help"]).await);
}

#[tokio::test]
async fn calls_transcript_help() {
    insta::assert_snapshot!(
        "calls_transcript_help",
        help(&["calls", "transcript", "--help"]).await
    );
    insta::assert_snapshot!("calls_help", help(&["calls", "--help"]).await);
}

#[tokio::test]
async fn calls_list_help() {
    insta::assert_snapshot!("calls_list_help", help(&["calls", "list", "--help"]).await);
}

#[tokio::test]
async fn mock_help() {
    insta::assert_snapshot!("mock_help", help(&["mock", "--help"]).await);
}

#[tokio::test]
async fn auth_help() {
    insta::assert_snapshot!("auth_help", help(&["auth", "--help"]).await);
    insta::assert_snapshot!("auth_login_help", help(&["auth", "login", "--help"]).await);
}

#[tokio::test]
async fn no_command_shows_usage_and_exits_2() {
    let run = common::run(&[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("Usage: happyrobot"), "{}", run.stderr);
}

#[tokio::test]
async fn usage_errors_exit_2() {
    for args in [
        &["notes", "add"][..],
        &["notes", "add", "65f1c0ffee0123456789abcd"],
        &[
            "notes",
            "add",
            "65f1c0ffee0123456789abcd",
            "--content",
            "x",
            "--bogus",
        ],
        &["notes", "import", "f.csv", "--concurrency", "0"],
        &[
            "--timeout",
            "0",
            "notes",
            "add",
            "65f1c0ffee0123456789abcd",
            "--content",
            "x",
        ],
        &[
            "--mock",
            "--base-url",
            "http://127.0.0.1:1/api/v1",
            "notes",
            "add",
            "x",
            "--content",
            "x",
        ],
    ] {
        let run = common::run(args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn notes_sync_help() {
    insta::assert_snapshot!("notes_sync_help", help(&["notes", "sync", "--help"]).await);
}
