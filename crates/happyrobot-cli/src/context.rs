//! The one context every command runs in, built once from the global options: where the key comes
//! from (`--api-key`, `--api-key-file`, `HAPPYROBOT_API_KEY`, which clap reads, then the key
//! `happyrobot auth login` stored for the base URL), the base URL (checked by the library's one
//! rule), the in-process mock of `--mock`, the retry policy of `--max-retries`, the rate ceiling of
//! `--rate`, the timeout and the extra root certificate.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use happyrobot::{BaseUrl, Client, RateControl, RetryPolicy};
use happyrobot_mock::MockServer;

use crate::exit::{CliError, Exit};

/// Options every command accepts, before or after the command name. Its `Debug` shows neither
/// the key nor the base URL (which may carry a user name and password).
#[derive(Clone, Args)]
pub(crate) struct GlobalArgs {
    /// API key; never printed. On the command line it is visible to other users of this machine
    /// (ps): prefer the environment variable or --api-key-file.
    #[arg(
        long,
        value_name = "KEY",
        global = true,
        env = happyrobot::API_KEY_ENV,
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,

    /// Read the API key from this file (- for stdin); surrounding whitespace is ignored.
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) api_key_file: Option<PathBuf>,

    // The help is an attribute, not a doc comment, because rustdoc would read its URL as markup.
    // No `conflicts_with = "mock"`: clap would count the environment variable as a conflict too;
    // `connect` refuses --base-url with --mock instead.
    #[arg(
        long,
        value_name = "URL",
        global = true,
        env = happyrobot::BASE_URL_ENV,
        hide_env_values = true,
        help = "API base URL [default: https://app.happyrobot.ai/api/v1]"
    )]
    pub(crate) base_url: Option<String>,

    /// Limit on each request, in seconds (decimals allowed) [default: 60].
    #[arg(long, value_name = "SECS", global = true, value_parser = parse_secs)]
    pub(crate) timeout: Option<Duration>,

    /// How many times a request is retried after a failure that certainly was not applied (a
    /// refused connection; updates, deletes and reads also after a timeout or a 5xx). A 429 is
    /// not counted: it waits its turn under the rate limit.
    #[arg(
        long,
        value_name = "N",
        global = true,
        default_value_t = happyrobot::RetryPolicy::default().retries(),
        value_parser = clap::value_parser!(u32).range(0..=100)
    )]
    pub(crate) max_retries: u32,

    /// The longest wait a 429's Retry-After may ask for, in seconds (decimals allowed), or a hold
    /// another command under the same key was given: a request asked to wait longer is not sent,
    /// and an import, undo or sync stops there (a re-run sends what is not done) [default: 30;
    /// 900 for import, undo and sync].
    #[arg(long, value_name = "SECS", global = true, value_parser = parse_secs)]
    pub(crate) max_retry_after: Option<Duration>,

    /// Trust this root certificate (PEM) besides the system's, for an API behind a private
    /// certificate authority (SSL_CERT_FILE and the system store are read too).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) ca_cert: Option<PathBuf>,

    /// Log requests to stderr (-vv for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Try the CLI safely on a fresh mock API in this process (127.0.0.1): 27 calls, every
    /// status. Each command gets a new one and keeps nothing (for state across commands, run
    /// happyrobot mock and give its --base-url).
    #[arg(long, global = true)]
    pub(crate) mock: bool,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |given: bool| if given { "[REDACTED]" } else { "none" };
        f.debug_struct("GlobalArgs")
            .field("api_key", &hidden(self.api_key.is_some()))
            .field("api_key_file", &self.api_key_file)
            .field("base_url", &hidden(self.base_url.is_some()))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("max_retry_after", &self.max_retry_after)
            .field("ca_cert", &self.ca_cert)
            .field("verbose", &self.verbose)
            .field("mock", &self.mock)
            .finish()
    }
}

/// How many calls the mock of `--mock` starts with: every status at least twice (Failed
/// included), created on dates over two months, so that the README's commands show something.
const TRIAL_CALLS: usize = 27;

/// What a command needs to talk to the API.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) verbose: u8,
    /// Held so that the mock keeps serving until the command ends.
    _mock: Option<MockServer>,
}

/// What differs between commands in how their client is built.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Needs {
    /// A ceiling on the request rate (`--rate`), for the bulk commands.
    pub(crate) rate: Option<f64>,
    /// Nothing will be sent (a dry run): a missing key is no error (the journal's destination is
    /// its base URL; the key only tells keys apart).
    pub(crate) dry_run: bool,
    /// A bulk run (import, undo, sync): it waits as long as a rate limit asks up to
    /// [`RUN_MAX_RETRY_AFTER`], not a single command's 30 s.
    pub(crate) run: bool,
}

/// The longest `Retry-After` a bulk run waits for unless `--max-retry-after` says otherwise: a
/// rate limit slows a run down, and a run left to itself should wait out a server that asks for
/// minutes; an ask for longer (a daily quota used up) stops it, and says when to run it again.
pub(crate) const RUN_MAX_RETRY_AFTER: Duration = Duration::from_secs(900);

/// Reads an environment variable, treating an empty value as unset.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether a value of an option that clap also reads from `env` came from the command line: clap
/// fills the option from the variable when the flag is absent, so an equal value may be either.
pub(crate) fn given_on_command_line(value: Option<&str>, env: &str) -> bool {
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
pub(crate) fn read_key_file(path: &Path) -> Result<String, CliError> {
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

/// The message for a missing key: how to set one, and how to try the CLI without one.
fn missing_key() -> CliError {
    CliError::new(
        Exit::Auth,
        format!(
            "no API key: run happyrobot auth login once (the key is in the HappyRobot app), or set \
             {} or pass --api-key-file PATH, or try the CLI against a built-in mock server: \
             happyrobot --mock notes add {} --content hi",
            happyrobot::API_KEY_ENV,
            happyrobot_mock::FIRST_CALL_ID
        ),
    )
}

/// The base URL of the options: `--base-url` (or `HAPPYROBOT_BASE_URL`, which clap reads), checked
/// by the library's rule. An empty one is a usage error, never the production API by surprise.
pub(crate) fn base_url(global: &GlobalArgs) -> Result<BaseUrl, CliError> {
    match &global.base_url {
        // clap counts a variable set to nothing as unset: that must not mean the production API.
        None if std::env::var_os(happyrobot::BASE_URL_ENV).is_some_and(|v| v.is_empty()) => {
            Err(CliError::usage(format!(
                "{} is set but empty: unset it to use the production API, or give the base URL",
                happyrobot::BASE_URL_ENV
            )))
        }
        None => Ok(BaseUrl::default()),
        // clap hands over an empty variable as an empty value, as it does `--base-url ''`.
        Some(text) if text.trim().is_empty() => Err(CliError::usage(format!(
            "the base URL is empty (--base-url '', or {} set to nothing): give one, or leave both \
             out to use the production API ({})",
            happyrobot::BASE_URL_ENV,
            happyrobot::DEFAULT_BASE_URL
        ))),
        Some(text) => BaseUrl::parse(text).map_err(|e| CliError::usage(e.to_string())),
    }
}

/// A root certificate to trust besides the platform's (`--ca-cert`).
fn ca_cert(path: &Path) -> Result<Vec<u8>, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the certificate {}: {e}",
            path.display()
        ))
    })?;
    if !meta.is_file() || meta.len() > 1024 * 1024 {
        return Err(CliError::usage(format!(
            "{} is not a certificate file (a PEM file of at most 1 MiB)",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the certificate {}: {e}",
            path.display()
        ))
    })
}

impl Context {
    /// Builds the client from the global options.
    pub(crate) async fn new(global: &GlobalArgs, needs: Needs) -> Result<Self, CliError> {
        let key = api_key(global)?;
        if global.mock
            && given_on_command_line(global.base_url.as_deref(), happyrobot::BASE_URL_ENV)
        {
            return Err(CliError::usage(
                "--mock runs its own server: drop --base-url, or drop --mock to use that URL",
            ));
        }
        let (base_url, key, mock) = if global.mock {
            let key = key.unwrap_or_else(|| happyrobot_mock::DEFAULT_API_KEY.to_string());
            let server = MockServer::builder()
                .api_key(key.clone())
                .seed_calls(TRIAL_CALLS)
                .start()
                .await
                .map_err(|e| CliError::internal(format!("could not start the mock server: {e}")))?;
            crate::print::err(&format!(
                "note: using a fresh built-in mock server at {} for this command only (nothing is \
                 kept after it); {} calls, the first {} (happyrobot --mock calls list shows them)",
                server.base_url(),
                server.call_ids().len(),
                happyrobot_mock::FIRST_CALL_ID
            ));
            (server.base_url(), key, Some(server))
        } else {
            let base_url = base_url(global)?;
            let key = match key {
                Some(key) => key,
                None => match stored_key(&base_url)? {
                    Some(key) => key,
                    // A loopback URL is a mock (`happyrobot mock` in another terminal): use its
                    // default key rather than demanding a real one, which must never be sent to a
                    // test server.
                    None if base_url.is_loopback() => happyrobot_mock::DEFAULT_API_KEY.to_string(),
                    // Nothing is sent: the key only tells keys apart in the journal.
                    None if needs.dry_run => "hr_dry_run_no_key".to_string(),
                    None => return Err(missing_key()),
                },
            };
            (base_url.as_str().to_string(), key, None)
        };
        let client = client(global, base_url, key, needs)?;
        Ok(Self {
            client,
            verbose: global.verbose,
            _mock: mock,
        })
    }
}

/// The key `happyrobot auth login` stored for the base URL, if any: the last place a key is looked
/// for. A credentials file that others can read is refused, not skipped.
fn stored_key(base_url: &BaseUrl) -> Result<Option<String>, CliError> {
    match crate::credentials::config_dir_from_env() {
        Some(dir) => crate::credentials::Store::in_dir(dir).key_for(base_url.as_str()),
        None => Ok(None),
    }
}

/// A client for `base_url` with `key`, built as the global options say (retries, timeout, extra
/// root certificate) for a command that `needs` it so, pacing itself under the server's rate
/// limit and the command's `--rate`, if any, and sharing its pace through the state directory
/// with the other commands that run under the same key.
pub(crate) fn client(
    global: &GlobalArgs,
    base_url: String,
    key: String,
    needs: Needs,
) -> Result<Client, CliError> {
    let mut control = RateControl::adaptive();
    if let Some(ceiling) = needs.rate {
        control = control.max_rate(ceiling);
    }
    let mut builder = Client::builder()
        .api_key(key)
        .base_url(base_url)
        .retry(retry_policy(global, needs))
        .rate_control(control)
        .user_agent(format!("happyrobot-cli/{}", env!("CARGO_PKG_VERSION")));
    if let Some(timeout) = global.timeout {
        builder = builder
            .timeout(timeout)
            .connect_timeout(timeout.min(happyrobot::DEFAULT_CONNECT_TIMEOUT));
    }
    if let Some(path) = &global.ca_cert {
        builder = builder.add_root_certificate_pem(ca_cert(path)?);
    }
    // Two commands at once under one key (two imports, an import and a sync) pace as one.
    if let Some(dir) = happyrobot_bulk::state_dir_from_env() {
        builder = builder.share_rate_limit(dir);
    }
    builder.build().map_err(|e| CliError::from_api(&e))
}

/// The retry policy of a command that `needs` it so: the library's, with `--max-retries`, and
/// `--max-retry-after` (or a bulk run's longer default).
fn retry_policy(global: &GlobalArgs, needs: Needs) -> RetryPolicy {
    let policy = RetryPolicy::default().max_retries(global.max_retries);
    match global.max_retry_after {
        Some(wait) => policy.max_retry_after(wait),
        None if needs.run => policy.max_retry_after(RUN_MAX_RETRY_AFTER),
        None => policy,
    }
}

/// Reads a positive number of seconds, decimals allowed.
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    // Written so that NaN is refused too.
    if secs.is_nan() || secs <= 0.0 {
        return Err("give more than 0 seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} seconds is too long"))
}

/// Reads a positive rate in requests per second, decimals allowed.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of requests per second"))?;
    let min = RateControl::MIN_RATE;
    if !(rate.is_finite() && rate >= min) {
        return Err(format!(
            "the rate must be at least {min} requests per second"
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_options_debug_shows_no_key_and_no_base_url() {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            global: GlobalArgs,
        }
        let args = [
            "happyrobot",
            "--api-key",
            "hr_live_SECRETKEY",
            "--base-url",
            "https://user:PROXYPASS@api.example.com/api/v1",
        ];
        let global = <Line as clap::Parser>::try_parse_from(args).unwrap().global;
        let shown = format!("{global:?} {global:#?}");
        assert!(
            !shown.contains("SECRETKEY") && !shown.contains("PROXYPASS"),
            "{shown}"
        );
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }

    #[test]
    fn a_bulk_run_waits_longer_for_a_rate_limit_unless_told_otherwise() {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            global: GlobalArgs,
        }
        let parse = |args: &[&str]| {
            let line = std::iter::once("happyrobot").chain(args.iter().copied());
            <Line as clap::Parser>::try_parse_from(line).unwrap().global
        };
        let cap = |args: &[&str], needs| retry_policy(&parse(args), needs).retry_after_cap();
        let run = Needs {
            run: true,
            ..Needs::default()
        };
        let library = RetryPolicy::default().retry_after_cap();
        assert_eq!(cap(&[], Needs::default()), library);
        assert_eq!(cap(&[], run), RUN_MAX_RETRY_AFTER);
        assert!(RUN_MAX_RETRY_AFTER > library);
        for needs in [Needs::default(), run] {
            let told = cap(&["--max-retry-after", "2.5"], needs);
            assert_eq!(told, Duration::from_millis(2500));
        }
    }

    #[test]
    fn timeouts_and_rates_must_be_positive() {
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("NaN").is_err());
        assert!(parse_secs("soon").is_err());
        assert_eq!(parse_secs("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_rate("2.5").unwrap(), 2.5);
        for bad in ["0", "-3", "inf", "NaN", "fast", "0.1"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
