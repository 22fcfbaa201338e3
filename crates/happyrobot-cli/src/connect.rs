//! Turns the global options into a [`happyrobot::Client`]: where the key and base URL come from
//! (`--api-key-file`, `--api-key` or `HAPPYROBOT_API_KEY`, which clap reads), and the in-process mock
//! server of `--mock`.

use std::io::Read as _;
use std::net::IpAddr;
use std::path::Path;

use happyrobot::{Client, RetryPolicy};
use happyrobot_mock::MockServer;

use crate::GlobalArgs;
use crate::exit::{CliError, Exit};

/// A client, and the mock server it talks to when `--mock` was given (kept alive with it).
pub(crate) struct Connection {
    pub(crate) client: Client,
    /// Held so that the mock keeps serving until the command ends.
    _mock: Option<MockServer>,
}

/// Reads an environment variable, treating an empty value as unset.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether a value of an option that clap also reads from `env` came from the command line: clap
/// fills the option from the variable when the flag is absent, so an equal value may be either.
fn given_on_command_line(value: Option<&str>, env: &str) -> bool {
    value.is_some_and(|v| !v.trim().is_empty() && env_var(env).as_deref() != Some(v))
}

/// The API key from the options, if any: `--api-key-file` first (it beats the environment
/// variable), else `--api-key` or `HAPPYROBOT_API_KEY`. Errors never hold the key.
fn api_key(global: &GlobalArgs) -> Result<Option<String>, CliError> {
    let Some(path) = &global.api_key_file else {
        return Ok(global.api_key.clone().filter(|k| !k.trim().is_empty()));
    };
    if given_on_command_line(global.api_key.as_deref(), happyrobot::API_KEY_ENV) {
        return Err(CliError::usage(
            "both --api-key and --api-key-file were given: give the key once (--api-key-file keeps \
             it out of the process list)",
        ));
    }
    read_key_file(path).map(Some)
}

/// The most a key file may hold: far more than any key, little enough that a wrong path such as
/// `/dev/zero` fails at once instead of filling memory.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads a key from a file, or from stdin for `-`; surrounding whitespace (the final newline of
/// `echo`) is dropped.
fn read_key_file(path: &Path) -> Result<String, CliError> {
    let (name, reader): (String, Box<dyn std::io::Read>) = if path.as_os_str() == "-" {
        ("stdin".to_string(), Box::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            CliError::usage(format!(
                "could not read the API key file {}: {e}",
                path.display()
            ))
        })?;
        (path.display().to_string(), Box::new(file))
    };
    let mut text = String::new();
    reader
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| CliError::usage(format!("could not read the API key from {name}: {e}")))?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(CliError::usage(format!(
            "{name} holds more than {MAX_KEY_FILE_BYTES} bytes: it is not an API key file"
        )));
    }
    let key = text.trim();
    if key.is_empty() {
        return Err(CliError::new(
            Exit::Auth,
            format!("the API key file {name} is empty: put the key from the HappyRobot app in it"),
        ));
    }
    Ok(key.to_string())
}

/// Whether `url` points at this machine, where a mock server (and not the real API) listens.
fn is_loopback(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url.trim()) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The message for a missing key: how to set one, and how to try the CLI without one.
fn missing_key() -> CliError {
    CliError::new(
        Exit::Auth,
        format!(
            "no API key: set {} or pass --api-key-file PATH (the key is in the HappyRobot app), \
             or try the CLI against a built-in mock server: happyrobot --mock notes add {} --content hi",
            happyrobot::API_KEY_ENV,
            happyrobot_mock::FIRST_CALL_ID
        ),
    )
}

/// Builds the client from the global options, with the given retry policy.
pub(crate) async fn connect(
    global: &GlobalArgs,
    retry: RetryPolicy,
) -> Result<Connection, CliError> {
    let key = api_key(global)?;
    if global.mock && given_on_command_line(global.base_url.as_deref(), happyrobot::BASE_URL_ENV) {
        return Err(CliError::usage(
            "--mock runs its own server: drop --base-url, or drop --mock to use that URL",
        ));
    }
    let (base_url, key, mock) = if global.mock {
        let key = key.unwrap_or_else(|| happyrobot_mock::DEFAULT_API_KEY.to_string());
        let server = MockServer::builder()
            .api_key(key.clone())
            .start()
            .await
            .map_err(|e| CliError::internal(format!("could not start the mock server: {e}")))?;
        crate::output::err(&format!(
            "note: using the built-in mock server at {} (its calls: {})",
            server.base_url(),
            server.call_ids().join(", ")
        ));
        (server.base_url(), key, Some(server))
    } else {
        let base_url = global
            .base_url
            .clone()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| happyrobot::DEFAULT_BASE_URL.to_string());
        let key = match key {
            Some(key) => key,
            // A loopback URL is a mock (`happyrobot mock` in another terminal): use its default
            // key rather than demanding a real one, which must never be sent to a test server.
            None if is_loopback(&base_url) => happyrobot_mock::DEFAULT_API_KEY.to_string(),
            None => return Err(missing_key()),
        };
        (base_url, key, None)
    };
    let mut builder = Client::builder()
        .api_key(key)
        .base_url(base_url)
        .retry(retry)
        .user_agent(format!("happyrobot-cli/{}", env!("CARGO_PKG_VERSION")));
    if let Some(timeout) = global.timeout {
        builder = builder
            .timeout(timeout)
            .connect_timeout(timeout.min(happyrobot::DEFAULT_CONNECT_TIMEOUT));
    }
    let client = builder.build().map_err(|e| CliError::from_api(&e))?;
    Ok(Connection {
        client,
        _mock: mock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised() {
        for url in [
            "http://127.0.0.1:8080/api/v1",
            "http://localhost/api/v1",
            "http://[::1]:1/api/v1",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://app.happyrobot.ai/api/v1",
            "http://10.0.0.1/",
            "nonsense",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn a_huge_key_file_is_refused_without_reading_it_all() {
        let error = read_key_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(error.exit, Exit::Usage);
        assert!(
            error.message.contains("not an API key file"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_missing_key_message_says_what_to_do() {
        let error = missing_key();
        assert_eq!(error.exit, Exit::Auth);
        assert!(error.message.contains("HAPPYROBOT_API_KEY"));
        assert!(error.message.contains("--mock"));
    }
}
