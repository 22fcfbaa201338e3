//! `happyrobot`: the HappyRobot command line. Adds a note to a call, or imports a file of notes
//! with a journal that makes an interrupted import safe to re-run. See README.md and `--help`.
//!
//! Each command is a module (`cmd_*`) that owns its options, turns them into library calls over
//! one [`context::Context`], and prints through [`print`]. This file assembles the commands with
//! the global options, asks the chosen command how it prints (for its errors), and runs it.

// Output goes through `print::out` / `print::err`, which cannot panic on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cmd_add;
mod cmd_auth;
mod cmd_calls;
mod cmd_change;
mod cmd_completions;
mod cmd_import;
mod context;
mod credentials;
mod exit;
mod print;
mod progress;
mod signals;
mod stdin;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cmd_add::AddArgs;
use crate::cmd_import::{IMPORT_HELP, ImportArgs};
use crate::exit::{CliError, EXIT_CODES_HELP, Exit};
use crate::print::Output;

const ABOUT: &str =
    "Add, change and remove notes on HappyRobot calls: one at a time, or thousands from a file.";

/// The `happyrobot` command line.
#[derive(Debug, Parser)]
#[command(
    name = "happyrobot",
    version,
    about = ABOUT,
    after_help = EXIT_CODES_HELP,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command accepts, before or after the command name.
#[derive(Debug, Clone, Args)]
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
    #[arg(long, value_name = "SECS", global = true, value_parser = context::parse_secs)]
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

    /// Trust this root certificate (PEM) besides the system's, for an API behind a private
    /// certificate authority (SSL_CERT_FILE and the system store are read too).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) ca_cert: Option<PathBuf>,

    /// Log requests to stderr (-vv for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Start a mock HappyRobot API in this process, on 127.0.0.1, and use it (try the CLI safely).
    #[arg(long, global = true)]
    pub(crate) mock: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add, update and delete notes on calls.
    #[command(subcommand)]
    Notes(NotesCommand),
    /// Read calls.
    #[command(subcommand)]
    Calls(cmd_calls::CallsCommand),
    /// Run a mock HappyRobot API in the foreground, on 127.0.0.1 (stop it with Ctrl-C).
    Mock(happyrobot_mock::cli::Args),
    /// Store an API key once (login), check it (status), or remove it (logout).
    #[command(subcommand, after_help = cmd_auth::HELP)]
    Auth(cmd_auth::AuthCommand),
    /// Print a shell completion script (see --help for where to put it).
    #[command(after_help = cmd_completions::HELP)]
    Completions(cmd_completions::Args),
}

#[derive(Debug, Subcommand)]
enum NotesCommand {
    /// Add one note to a call and print it.
    #[command(after_help = EXIT_CODES_HELP)]
    Add(AddArgs),
    /// Add the notes of a CSV, JSON Lines or spreadsheet file, resumably (or, with --undo, delete
    /// them again).
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Change a note's text or flag; only what is given is sent.
    #[command(after_help = EXIT_CODES_HELP)]
    Update(cmd_change::UpdateArgs),
    /// Delete a note from a call.
    #[command(after_help = EXIT_CODES_HELP)]
    Delete(cmd_change::DeleteArgs),
}

impl Command {
    /// How the chosen command prints: with `--output json`, its errors are JSON too.
    fn output(&self) -> Output {
        match self {
            Self::Notes(NotesCommand::Add(args)) => args.output(),
            Self::Notes(NotesCommand::Import(args)) => args.output(),
            Self::Notes(NotesCommand::Update(args)) => args.output(),
            Self::Notes(NotesCommand::Delete(args)) => args.output(),
            Self::Calls(command) => command.output(),
            Self::Mock(_) | Self::Auth(_) | Self::Completions(_) => Output::Text,
        }
    }
}

fn init_tracing(verbose: u8) {
    // RUST_LOG alone turns logging on too; -v without it picks a filter.
    if verbose == 0 && std::env::var_os("RUST_LOG").is_none_or(|v| v.is_empty()) {
        return;
    }
    let default = if verbose == 1 {
        "happyrobot=debug,happyrobot_cli=debug"
    } else {
        "debug"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

async fn run(cli: Cli) -> Result<Exit, CliError> {
    match cli.command {
        Command::Mock(args) => happyrobot_mock::cli::run(args)
            .await
            .map(|()| Exit::Success)
            .map_err(|e| CliError::internal(format!("the mock server failed: {e}"))),
        Command::Notes(NotesCommand::Add(args)) => cmd_add::run(&cli.global, args).await,
        Command::Notes(NotesCommand::Import(args)) => cmd_import::run(&cli.global, args).await,
        Command::Notes(NotesCommand::Update(args)) => cmd_change::update(&cli.global, args).await,
        Command::Notes(NotesCommand::Delete(args)) => cmd_change::delete(&cli.global, args).await,
        Command::Calls(command) => cmd_calls::run(&cli.global, command).await,
        Command::Auth(command) => cmd_auth::run(&cli.global, command).await,
        Command::Completions(args) => cmd_completions::run(&args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.global.verbose;
    let json_errors = cli.command.output() == Output::Json;
    init_tracing(verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            print::err(&format!("error: could not start the async runtime: {e}"));
            return Exit::Internal.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => exit.into(),
        Err(error) => {
            exit::report(&error, verbose, json_errors);
            error.exit.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_work_after_the_command() {
        let cli = Cli::try_parse_from([
            "happyrobot",
            "notes",
            "add",
            "65f1c0ffee0123456789abcd",
            "--content",
            "hi",
            "--api-key",
            "k",
            "--timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(cli.global.api_key.as_deref(), Some("k"));
        assert_eq!(cli.global.timeout, Some(Duration::from_millis(500)));
    }

    #[test]
    fn mock_keeps_its_own_api_key_option() {
        let cli =
            Cli::try_parse_from(["happyrobot", "mock", "--api-key", "k", "--port", "0"]).unwrap();
        let Command::Mock(args) = cli.command else {
            panic!("not the mock command");
        };
        assert_eq!(args.api_key, "k");
    }
}
