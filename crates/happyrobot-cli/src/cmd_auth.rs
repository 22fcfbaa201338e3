//! `happyrobot auth login`, `auth status` and `auth logout`: an API key given once, checked with one
//! read, and stored for its base URL in the user's configuration directory (see [`credentials`]),
//! where every command finds it when no `--api-key`, `--api-key-file` or `HAPPYROBOT_API_KEY`
//! gives one. The key is never printed, logged or put in a message.
//!
//! [`credentials`]: crate::credentials

use std::io::IsTerminal as _;

use clap::{Args, Subcommand};
use happyrobot::{ApiKey, BaseUrl, CallFilter};

use crate::GlobalArgs;
use crate::context;
use crate::credentials::Store;
use crate::exit::{CliError, Exit};
use crate::print;

/// Shown after `happyrobot auth --help`.
pub(crate) const HELP: &str = "\
Keys are stored in $XDG_CONFIG_HOME/happyrobot/credentials.json (else
~/.config/happyrobot/credentials.json), readable by you only, one per base URL. Every command
looks for the key in this order: --api-key, --api-key-file, HAPPYROBOT_API_KEY, the key stored
for its base URL.

Examples:
  happyrobot auth login                                  # asks for the key; typing is not shown
  pass show happyrobot | happyrobot auth login --with-token
  happyrobot --base-url https://eu.example.com/api/v1 auth login
  happyrobot auth status
  happyrobot auth logout";

/// Shown after `happyrobot auth login --help`.
pub(crate) const LOGIN_HELP: &str = "\
The key is checked with one read (GET /calls, one call) against the base URL and stored only if
the API accepts it; asked for on a terminal, it is not echoed.

Exit codes:
  0  the key is stored
  1  the credentials file cannot be read or written (the message says why)
  2  usage error: no terminal to ask on and no --with-token, --mock, --api-key; nothing stored
  3  no key was given, the API rejected it (401/403), or the credentials file is open to other
     users (the message gives the chmod); nothing stored
  5  another answer of the API (a 5xx, for instance); nothing stored
  6  the API could not be reached; nothing stored";

/// The subcommands of `auth`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuthCommand {
    /// Check an API key with one read and store it for the base URL (--base-url, else the
    /// production API).
    #[command(after_help = LOGIN_HELP)]
    Login(LoginArgs),
    /// For each base URL with a stored key, whether the API accepts it (the key is never shown).
    Status,
    /// Remove the key stored for the base URL.
    Logout,
}

/// Options of `auth login`.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// Read the key from standard input (for scripts) instead of asking for it on the terminal.
    #[arg(long)]
    pub(crate) with_token: bool,
}

pub(crate) async fn run(global: &GlobalArgs, command: AuthCommand) -> Result<Exit, CliError> {
    if global.mock {
        return Err(CliError::usage(
            "--mock starts a new server each time: there is no key of it to store; give the mock's \
             --base-url instead (happyrobot mock prints it)",
        ));
    }
    match command {
        AuthCommand::Login(args) => login(global, &args).await,
        AuthCommand::Status => status(global).await,
        AuthCommand::Logout => logout(global),
    }
}

/// Asks for the key (or reads it from stdin), checks it, stores it.
async fn login(global: &GlobalArgs, args: &LoginArgs) -> Result<Exit, CliError> {
    if global.api_key_file.is_some()
        || context::given_on_command_line(global.api_key.as_deref(), happyrobot::API_KEY_ENV)
    {
        return Err(CliError::usage(
            "auth login reads the key from the terminal, or from standard input with --with-token: \
             drop --api-key and --api-key-file",
        ));
    }
    let base_url = context::base_url(global)?;
    let store = Store::from_env()?;
    // A file that cannot be used is refused before the key is asked for.
    let mut credentials = store.load()?;
    let key = if args.with_token {
        context::read_key_file(std::path::Path::new("-"))?
    } else if std::io::stdin().is_terminal() {
        prompt(&base_url)?
    } else {
        return Err(CliError::usage(
            "standard input is not a terminal, so the key cannot be asked for: pipe it in with \
             --with-token (happyrobot auth login --with-token < FILE)",
        ));
    };
    ApiKey::new(key.as_str()).map_err(|e| CliError::from_api(&e))?;
    if let Err(mut rejected) = check(global, &base_url, &key).await? {
        rejected.message.push_str("; the key was not stored");
        return Err(rejected);
    }
    credentials.set(base_url.as_str(), key);
    store.save(&credentials)?;
    print::out(&format!(
        "Logged in to {}: the API accepted the key, stored in {} (readable by you only).",
        base_url.as_str(),
        store.path().display()
    ));
    if global.api_key.is_some() {
        print::err(&format!(
            "note: {} is set, and commands use it before the stored key",
            happyrobot::API_KEY_ENV
        ));
    }
    Ok(Exit::Success)
}

/// Asks for the key on the terminal, without echoing it.
fn prompt(base_url: &BaseUrl) -> Result<String, CliError> {
    let key = rpassword::prompt_password(format!(
        "API key for {} (from the HappyRobot app; typing is not shown): ",
        base_url.as_str()
    ))
    .map_err(|e| CliError::internal(format!("could not read the key from the terminal: {e}")))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::new(
            Exit::Auth,
            "no key was entered: nothing stored",
        ));
    }
    Ok(key.to_string())
}

/// One read of the API with the key (`GET /calls`, one call): `Ok(Ok(()))` when it was accepted,
/// `Ok(Err(error))` when the API (or a proxy) refused the key, `Err` when it could not be told.
async fn check(
    global: &GlobalArgs,
    base_url: &BaseUrl,
    key: &str,
) -> Result<Result<(), CliError>, CliError> {
    let client = context::client(
        global,
        base_url.as_str().to_string(),
        key.to_string(),
        context::Needs::default(),
    )?;
    match client
        .list_calls_page(&CallFilter::new().page_size(1), 0)
        .await
    {
        Ok(_) => Ok(Ok(())),
        Err(e) => {
            let refused = e.is_unauthorized() || e.is_proxy_auth_required();
            let mut error = CliError::from_api(&e);
            if refused {
                error.exit = Exit::Auth;
                error.message = format!("{} refused the key: {}", base_url.as_str(), error.message);
                Ok(Err(error))
            } else {
                error.message = format!(
                    "could not check the key with {}, so nothing was stored or changed: {}",
                    base_url.as_str(),
                    error.message
                );
                Err(error)
            }
        }
    }
}

/// Each stored base URL, and whether the API accepts its key.
async fn status(global: &GlobalArgs) -> Result<Exit, CliError> {
    let store = Store::from_env()?;
    let credentials = store.load()?;
    if credentials.is_empty() {
        return Err(CliError::new(
            Exit::Auth,
            format!(
                "no API key is stored (in {}): run happyrobot auth login",
                store.path().display()
            ),
        ));
    }
    print::out(&format!("Keys stored in {}:", store.path().display()));
    let mut worst = Exit::Success;
    for (url, key) in credentials.iter() {
        let line = match BaseUrl::parse(url) {
            Err(e) => {
                worst = worst.max(Exit::Usage);
                format!("  {url}: a key is stored, but the base URL is refused ({e})")
            }
            Ok(base_url) => match check(global, &base_url, key).await {
                Ok(Ok(())) => format!("  {url}: a key is stored, and the API accepts it"),
                Ok(Err(rejected)) => {
                    worst = worst.max(Exit::Auth);
                    format!(
                        "  {url}: a key is stored, but {} (log in again: happyrobot --base-url \
                         {url} auth login)",
                        rejected.message
                    )
                }
                Err(error) => {
                    worst = worst.max(error.exit);
                    format!(
                        "  {url}: a key is stored; whether the API accepts it is unknown: {}",
                        error.message
                    )
                }
            },
        };
        print::out(&line);
    }
    if global.api_key.is_some() || global.api_key_file.is_some() {
        print::err(
            "note: a key is given by --api-key, --api-key-file or HAPPYROBOT_API_KEY, and commands \
             use it before the stored keys",
        );
    }
    Ok(worst)
}

/// Removes the key of the base URL.
fn logout(global: &GlobalArgs) -> Result<Exit, CliError> {
    let base_url = context::base_url(global)?;
    let store = Store::from_env()?;
    let mut credentials = store.load()?;
    if !credentials.remove(base_url.as_str()) {
        print::out(&format!(
            "No key was stored for {}: nothing to remove.",
            base_url.as_str()
        ));
        return Ok(Exit::Success);
    }
    store.save(&credentials)?;
    print::out(&format!(
        "Logged out of {}: its stored key is removed.",
        base_url.as_str()
    ));
    Ok(Exit::Success)
}
