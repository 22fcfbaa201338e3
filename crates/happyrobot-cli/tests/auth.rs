//! `happyrobot auth login`, `status` and `logout` (issue 31), run as the binary against mock servers
//! on 127.0.0.1 with a configuration home of each test's own: a good key is stored (mode 0600) and
//! then found by commands given no key; a rejected one is not stored (exit 3); the order in which
//! a key is looked for; a credentials file others can read is refused, with the `chmod` that fixes
//! it; and the key is in no output of any of these, `-vv` and `RUST_LOG=trace` included.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location, helpers included"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use happyrobot_mock::{FIRST_CALL_ID, MockServer};
use tokio::io::AsyncWriteExt as _;

/// The mock's key: distinctive, so that any output holding it is found.
const SECRET: &str = "hr_live_AUTH_SECRET_5f2c9d";
/// A key the mock rejects, kept out of every output too.
const WRONG: &str = "hr_live_WRONG_SECRET_81b7e4";

async fn mock() -> MockServer {
    MockServer::builder().api_key(SECRET).start().await.unwrap()
}

/// A configuration home of the test's own, and the credentials file in it.
fn config_home(name: &str) -> (PathBuf, PathBuf) {
    let home = common::temp_dir(name);
    let file = home.join("happyrobot").join("credentials.json");
    (home, file)
}

/// Every run of a test, so that each can be searched for the keys at the end.
#[derive(Default)]
struct Runs(Vec<common::Run>);

impl Runs {
    fn assert_no_key(&self) {
        for run in &self.0 {
            for key in [SECRET, WRONG] {
                assert!(!run.stdout.contains(key), "key on stdout: {}", run.stdout);
                assert!(!run.stderr.contains(key), "key on stderr: {}", run.stderr);
            }
        }
    }
}

/// Runs the binary with `XDG_CONFIG_HOME=home`, the extra environment `env`, and `stdin` piped in
/// when given.
async fn run_in(
    runs: &mut Runs,
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut command = common::command(args);
    command.env("XDG_CONFIG_HOME", home);
    for (name, value) in env {
        command.env(name, value);
    }
    let run = match stdin {
        None => common::run_command(command).await,
        Some(text) => {
            command.stdin(Stdio::piped());
            let mut child = command.spawn().unwrap();
            let mut pipe = child.stdin.take().unwrap();
            // A command that refuses before reading its input closes the pipe: that is its answer,
            // not the test's failure.
            if let Err(e) = pipe.write_all(text.as_bytes()).await {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
            drop(pipe);
            let output = tokio::time::timeout(common::RUN_LIMIT, child.wait_with_output())
                .await
                .unwrap()
                .unwrap();
            common::Run {
                code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
    };
    let result = (run.code, run.stdout.clone(), run.stderr.clone());
    runs.0.push(run);
    result
}

async fn login(runs: &mut Runs, home: &Path, base_url: &str, key: &str) -> (i32, String, String) {
    run_in(
        runs,
        home,
        &["--base-url", base_url, "auth", "login", "--with-token"],
        &[],
        Some(&format!("{key}\n")),
    )
    .await
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_good_key_stores_it_privately_and_later_commands_use_it() {
    let server = mock().await;
    let url = server.base_url();
    let (home, file) = config_home("auth-login");
    let mut runs = Runs::default();

    // Without a stored key, a loopback URL gets the mock's default key, which this mock rejects.
    let (code, _, stderr) = run_in(
        &mut runs,
        &home,
        &["--base-url", &url, "calls", "get", FIRST_CALL_ID],
        &[],
        None,
    )
    .await;
    assert_eq!(code, 3, "{stderr}");

    let (code, stdout, stderr) = login(&mut runs, &home, &url, SECRET).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&url), "{stdout}");
    assert!(stdout.contains(&file.display().to_string()), "{stdout}");
    let requests = server.requests();
    let checks: Vec<_> = requests.iter().filter(|r| r.status == Some(200)).collect();
    assert_eq!(checks.len(), 1, "one read checked the key: {requests:?}");
    assert_eq!(checks[0].method, "GET");
    assert!(checks[0].path.contains("/calls?"), "{}", checks[0].path);
    assert!(checks[0].path.contains("limit=1"), "{}", checks[0].path);

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(SECRET) && text.contains(&url), "{text}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&file), 0o600, "the file is its owner's only");
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["credentials.json"]);
    }

    // No key in the environment or the options: the stored one is used, and not logged.
    for args in [
        &["calls", "get", FIRST_CALL_ID][..],
        &[
            "-vv",
            "notes",
            "add",
            FIRST_CALL_ID,
            "--content",
            "stored key",
        ],
    ] {
        let mut all = vec!["--base-url", url.as_str()];
        all.extend_from_slice(args);
        let (code, _, stderr) =
            run_in(&mut runs, &home, &all, &[("RUST_LOG", "trace")], None).await;
        assert_eq!(code, 0, "{args:?}: {stderr}");
    }
    assert_eq!(server.created_note_count(), 1);
    // Through HAPPYROBOT_BASE_URL too: the key is stored for the base URL, however it is given.
    let (code, _, stderr) = run_in(
        &mut runs,
        &home,
        &["calls", "list", "--limit", "1"],
        &[("HAPPYROBOT_BASE_URL", &format!("{url}/"))],
        None,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    runs.assert_no_key();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_falls_back_to_home_without_xdg_config_home() {
    let server = mock().await;
    let url = server.base_url();
    let home = common::temp_dir("auth-home");
    let mut runs = Runs::default();
    let mut command = common::command(&["--base-url", &url, "auth", "login", "--with-token"]);
    command
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &home)
        .stdin(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(SECRET.as_bytes()).await.unwrap();
    drop(pipe);
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(home.join(".config/happyrobot/credentials.json").is_file());
    runs.0.push(common::Run {
        code: 0,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    });
    runs.assert_no_key();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_is_not_stored_and_exits_3() {
    let server = mock().await;
    let url = server.base_url();
    let (home, file) = config_home("auth-rejected");
    let mut runs = Runs::default();

    let (code, stdout, stderr) = login(&mut runs, &home, &url, WRONG).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("not stored"), "{stderr}");
    assert!(!file.exists(), "a rejected key is not stored");
    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(401)], "one read, refused");

    // A good key stored, then a rejected login for the same URL: the good one stays.
    assert_eq!(login(&mut runs, &home, &url, SECRET).await.0, 0);
    let before = std::fs::read(&file).unwrap();
    let (code, _, stderr) = login(&mut runs, &home, &url, WRONG).await;
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // Nothing to check with: an empty key, or one with a space, never reaches the API.
    let sent = server.requests().len();
    for key in ["", "   ", "hr_live_two words"] {
        let (code, _, stderr) = login(&mut runs, &home, &url, key).await;
        assert_eq!(code, 3, "{key:?}: {stderr}");
        assert!(!stderr.contains("two words"), "{stderr}");
    }
    assert_eq!(server.requests().len(), sent);
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // A server that cannot be reached checks nothing, and stores nothing: exit 6.
    let closed = "http://127.0.0.1:9/api/v1";
    let (code, _, stderr) = login(&mut runs, &home, closed, SECRET).await;
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("nothing was stored"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    runs.assert_no_key();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_with_token_needs_a_terminal_and_mock_is_refused() {
    let server = mock().await;
    let url = server.base_url();
    let (home, file) = config_home("auth-terminal");
    let mut runs = Runs::default();
    // stdin is not a terminal here (the helper gives the null device): no prompt, a usage error.
    let (code, _, stderr) = run_in(
        &mut runs,
        &home,
        &["--base-url", &url, "auth", "login"],
        &[],
        None,
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--with-token"), "{stderr}");
    for args in [
        &["--mock", "auth", "login", "--with-token"][..],
        &[
            "--base-url",
            &url,
            "--api-key",
            SECRET,
            "auth",
            "login",
            "--with-token",
        ],
        &[
            "--base-url",
            &url,
            "--api-key-file",
            "-",
            "auth",
            "login",
            "--with-token",
        ],
    ] {
        let (code, _, stderr) = run_in(&mut runs, &home, args, &[], Some(SECRET)).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
    assert!(!file.exists());
    assert!(server.requests().is_empty(), "nothing was sent");
    runs.assert_no_key();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_which_keys_work_and_logout_removes_one() {
    let good = mock().await;
    let other = MockServer::builder().api_key(WRONG).start().await.unwrap();
    let (good_url, other_url) = (good.base_url(), other.base_url());
    let (home, file) = config_home("auth-status");
    let mut runs = Runs::default();

    let (code, _, stderr) = run_in(&mut runs, &home, &["auth", "status"], &[], None).await;
    assert_eq!(code, 3, "nothing stored: {stderr}");
    assert!(stderr.contains("auth login"), "{stderr}");

    assert_eq!(login(&mut runs, &home, &good_url, SECRET).await.0, 0);
    assert_eq!(login(&mut runs, &home, &other_url, WRONG).await.0, 0);
    let (code, stdout, stderr) = run_in(&mut runs, &home, &["auth", "status"], &[], None).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "{good_url}: a key is stored, and the API accepts it"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{other_url}: a key is stored, and the API accepts it"
        )),
        "{stdout}"
    );

    // The other key stops working (the key stored for it is replaced by one its server rejects).
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(WRONG, "hr_live_REVOKED")).unwrap();
    let (code, stdout, stderr) = run_in(&mut runs, &home, &["auth", "status"], &[], None).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "{good_url}: a key is stored, and the API accepts it"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{other_url}: a key is stored, but")),
        "{stdout}"
    );
    assert!(!stdout.contains("hr_live_REVOKED"), "{stdout}");

    let (code, stdout, stderr) = run_in(
        &mut runs,
        &home,
        &["--base-url", &other_url, "auth", "logout"],
        &[],
        None,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("removed"), "{stdout}");
    let (code, stdout, _) = run_in(
        &mut runs,
        &home,
        &["--base-url", &other_url, "auth", "logout"],
        &[],
        None,
    )
    .await;
    assert_eq!(code, 0);
    assert!(stdout.contains("No key was stored"), "{stdout}");
    let (code, stdout, stderr) = run_in(&mut runs, &home, &["auth", "status"], &[], None).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(&other_url), "{stdout}");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600, "rewritten private");

    // A key in the environment is named in a note: it comes first.
    let (code, _, stderr) = run_in(
        &mut runs,
        &home,
        &["auth", "status"],
        &[("HAPPYROBOT_API_KEY", WRONG)],
        None,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("before the stored keys"), "{stderr}");

    // The last key removed, the file goes.
    let (code, _, stderr) = run_in(
        &mut runs,
        &home,
        &["--base-url", &good_url, "auth", "logout"],
        &[],
        None,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!file.exists());
    let (code, _, _) = run_in(
        &mut runs,
        &home,
        &["--base-url", &good_url, "calls", "get", FIRST_CALL_ID],
        &[],
        None,
    )
    .await;
    assert_eq!(code, 3, "logged out: the mock's default key is rejected");
    runs.assert_no_key();
}

/// `--api-key`, then `--api-key-file`, then `HAPPYROBOT_API_KEY`, then the stored key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_looked_for_in_the_documented_order() {
    let server = mock().await;
    let url = server.base_url();
    let (home, file) = config_home("auth-order");
    let good_file = home.join("good.key");
    let wrong_file = home.join("wrong.key");
    std::fs::write(&good_file, SECRET).unwrap();
    std::fs::write(&wrong_file, WRONG).unwrap();
    let (good_file, wrong_file) = (good_file.to_str().unwrap(), wrong_file.to_str().unwrap());
    let mut runs = Runs::default();
    assert_eq!(login(&mut runs, &home, &url, SECRET).await.0, 0);

    let get = ["calls", "get", FIRST_CALL_ID];
    // (options, HAPPYROBOT_API_KEY, exit): the mock accepts SECRET only, and SECRET is stored.
    let cases: [(&[&str], Option<&str>, i32); 8] = [
        (&[], None, 0),
        (&["--api-key", WRONG], None, 3),
        (&["--api-key", SECRET], Some(WRONG), 0),
        (&["--api-key-file", wrong_file], None, 3),
        (&["--api-key-file", good_file], Some(WRONG), 0),
        (&["--api-key-file", wrong_file], Some(SECRET), 3),
        (&[], Some(WRONG), 3),
        (&["--api-key", SECRET, "--api-key-file", good_file], None, 2),
    ];
    for (options, env, expected) in cases {
        let mut args = vec!["--base-url", url.as_str()];
        args.extend_from_slice(options);
        args.extend_from_slice(&get);
        let env: Vec<(&str, &str)> = env.map(|k| ("HAPPYROBOT_API_KEY", k)).into_iter().collect();
        let (code, _, stderr) = run_in(&mut runs, &home, &args, &env, None).await;
        assert_eq!(code, expected, "{options:?} with {env:?}: {stderr}");
    }

    // A stored key that the API rejects loses to the environment's.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(SECRET, WRONG)).unwrap();
    let mut args = vec!["--base-url", url.as_str()];
    args.extend_from_slice(&get);
    assert_eq!(run_in(&mut runs, &home, &args, &[], None).await.0, 3);
    let (code, _, stderr) = run_in(
        &mut runs,
        &home,
        &args,
        &[("HAPPYROBOT_API_KEY", SECRET)],
        None,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    runs.assert_no_key();
}

/// As ssh refuses a private key others can read: the command says how to fix it, and uses no key
/// of the file until then; a key given otherwise does not need the file.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_others_can_read_is_refused_with_the_fix() {
    let server = mock().await;
    let url = server.base_url();
    let (home, file) = config_home("auth-open");
    let mut runs = Runs::default();
    assert_eq!(login(&mut runs, &home, &url, SECRET).await.0, 0);
    let get = ["--base-url", url.as_str(), "calls", "get", FIRST_CALL_ID];
    let fix = format!("chmod 600 {}", file.display());
    for open in [0o644, 0o640, 0o604, 0o620] {
        set_mode(&file, open);
        let sent = server.requests().len();
        for args in [
            &get[..],
            &["auth", "status"],
            &["--base-url", &url, "auth", "logout"],
        ] {
            let (code, stdout, stderr) = run_in(&mut runs, &home, args, &[], None).await;
            assert_eq!(code, 3, "{open:o} {args:?}: {stderr}");
            assert!(stderr.contains(&fix), "{stderr}");
            assert!(stderr.contains("too open"), "{stderr}");
            assert!(stdout.is_empty(), "{stdout}");
        }
        let (code, _, stderr) = login(&mut runs, &home, &url, SECRET).await;
        assert_eq!(code, 3, "{stderr}");
        assert_eq!(server.requests().len(), sent, "no key of the file was sent");
        // A key given otherwise never reads the file.
        let (code, _, stderr) = run_in(
            &mut runs,
            &home,
            &get,
            &[("HAPPYROBOT_API_KEY", SECRET)],
            None,
        )
        .await;
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(mode(&file), open, "the file is left as it was");
    }
    set_mode(&file, 0o600);
    let (code, _, stderr) = run_in(&mut runs, &home, &get, &[], None).await;
    assert_eq!(code, 0, "fixed: {stderr}");
    runs.assert_no_key();
}

/// On a terminal, `auth login` asks for the key and the terminal does not echo it. The terminal is
/// a pseudo-terminal from util-linux's `script`; without it the test says so and passes.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_on_a_terminal_asks_without_echo() {
    use tokio::io::AsyncReadExt as _;
    if !common::have_terminal() {
        return;
    }
    let server = mock().await;
    let url = server.base_url();
    let (home, file) = config_home("auth-tty");
    let line = format!(
        "{} --base-url {url} auth login",
        env!("CARGO_BIN_EXE_happyrobot")
    );
    let mut command = tokio::process::Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .env_remove("HAPPYROBOT_API_KEY")
        .env_remove("HAPPYROBOT_BASE_URL")
        .env_remove("RUST_LOG")
        .env("XDG_CONFIG_HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    // The key is typed once the prompt is shown, and a moment later: rpassword turns echo off just
    // after printing the prompt (no person types that fast; a test could).
    tokio::time::timeout(common::RUN_LIMIT, async {
        while !String::from_utf8_lossy(&seen).contains("typing is not shown") {
            let mut buf = [0u8; 256];
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{SECRET}\n").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(common::RUN_LIMIT, stdout.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    drop(stdin);
    let status = tokio::time::timeout(common::RUN_LIMIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    seen.extend_from_slice(&rest);
    let shown = String::from_utf8_lossy(&seen).into_owned();
    assert!(status.success(), "{shown}");
    assert!(shown.contains("Logged in"), "{shown}");
    assert!(!shown.contains(SECRET), "the key was echoed: {shown}");
    assert!(
        std::fs::read_to_string(&file).unwrap().contains(SECRET),
        "stored"
    );
}
