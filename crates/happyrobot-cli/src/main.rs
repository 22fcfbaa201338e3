//! `happyrobot`: the HappyRobot command line. Adds a note to a call, or imports a file of notes
//! with a journal that makes an interrupted import safe to re-run. See README.md and `--help`.
//!
//! Each command is a module (`cmd_*`) that owns its options and implements
//! [`command::RunCommand`]: how it prints, what its client needs, how its input is checked, and
//! what it does over the one [`context::Context`], printing through [`print`]. This file
//! assembles the commands with the global options and registers each in one line of [`run`].

// Output goes through `print::out` / `print::err`, which cannot panic on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod bulk_args;
mod cmd_add;
mod cmd_auth;
mod cmd_calls;
mod cmd_change;
mod cmd_completions;
mod cmd_import;
mod cmd_sync;
mod command;
mod context;
mod credentials;
mod dry_run;
mod exit;
mod print;
mod progress;
mod signals;
mod stdin;
mod summary;
mod sync_summary;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd_add::AddArgs;
use crate::cmd_calls::CallsCommand;
use crate::cmd_import::{IMPORT_HELP, ImportArgs};
use crate::command::{execute, local};
use crate::context::GlobalArgs;
use crate::exit::{CliError, EXIT_CODES_HELP, Exit};
use crate::print::Output;

const ABOUT: &str =
    "Add, change and remove notes on HappyRobot calls: one at a time, or thousands from a file.";

/// The text after the options of `happyrobot --help`: examples, and the exit codes in short
/// (each command's `--help` says what its own mean).
const ROOT_HELP: &str = "\
Examples:
  happyrobot --mock calls list --status Failed      # try it on a built-in mock, no account needed
  happyrobot auth login                             # store your API key once
  happyrobot notes add 65f1c0ffee0123456789abcd --content \"Dock 4\" --flagged
  happyrobot calls list --status Failed --output xlsx > review.xlsx   # calls to write notes for
  happyrobot notes import review.xlsx --report      # each note once; results in review.results.xlsx
  happyrobot notes import review.xlsx --undo        # delete exactly what that import added

Exit codes: 0 success, 1 local failure, 2 invalid input or options (nothing sent),
3 authentication, 4 not found, 5 other API error, 6 network, 7 outcome unknown, 8 added but the
answer unreadable; 129, 130, 143 an import stopped by a signal. Each command's --help says more.";

/// The `happyrobot` command line.
#[derive(Debug, Parser)]
#[command(
    name = "happyrobot",
    version,
    about = ABOUT,
    after_help = ROOT_HELP,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add, update and delete notes on calls.
    #[command(subcommand)]
    Notes(NotesCommand),
    /// Read calls.
    #[command(subcommand)]
    Calls(CallsCommand),
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
    /// Make the notes on the calls match a file (a spreadsheet kept as the desired state):
    /// edited rows updated in place, new rows added, removed rows kept or pruned; --plan first.
    #[command(after_help = cmd_sync::SYNC_HELP)]
    Sync(cmd_sync::SyncArgs),
    /// Change a note's text or flag; only what is given is sent.
    #[command(after_help = EXIT_CODES_HELP)]
    Update(cmd_change::UpdateArgs),
    /// Delete a note from a call.
    #[command(after_help = EXIT_CODES_HELP)]
    Delete(cmd_change::DeleteArgs),
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

/// Runs the chosen command: each is registered in one line. Returns how it prints, for its
/// errors, with what it ended with.
async fn run(command: Command, global: &GlobalArgs) -> (Output, Result<Exit, CliError>) {
    match command {
        Command::Notes(NotesCommand::Add(args)) => execute(args, global).await,
        Command::Notes(NotesCommand::Import(args)) => execute(args, global).await,
        Command::Notes(NotesCommand::Sync(args)) => execute(args, global).await,
        Command::Notes(NotesCommand::Update(args)) => execute(args, global).await,
        Command::Notes(NotesCommand::Delete(args)) => execute(args, global).await,
        Command::Calls(CallsCommand::Get(args)) => execute(args, global).await,
        Command::Calls(CallsCommand::Transcript(args)) => execute(args, global).await,
        Command::Calls(CallsCommand::List(args)) => execute(*args, global).await,
        Command::Mock(args) => local(
            happyrobot_mock::cli::run(args)
                .await
                .map(|()| Exit::Success)
                .map_err(|e| CliError::internal(format!("the mock server failed: {e}"))),
        ),
        Command::Auth(command) => local(cmd_auth::run(global, command).await),
        Command::Completions(args) => local(cmd_completions::run(&args)),
    }
}

/// The command line: [`Cli`]'s, with `happyrobot mock --help` naming this command rather than
/// the mock's own binary.
fn command() -> clap::Command {
    use clap::CommandFactory as _;
    Cli::command().mut_subcommand("mock", |mock| {
        let help = happyrobot_mock::cli::AFTER_HELP.replace("happyrobot-mock", "happyrobot mock");
        mock.after_help(help)
    })
}

/// The command line `matches` as [`Cli`]. `happyrobot mock --api-key` shares its name with the
/// global option, which clap fills from `HAPPYROBOT_API_KEY` and hands down: the mock would take
/// the user's real key, and print it. A mock key that came from the environment is the mock's own
/// default instead; one given on the command line is the mock's, as typed.
fn cli_from(matches: &clap::ArgMatches) -> Result<Cli, clap::Error> {
    use clap::FromArgMatches as _;
    use clap::parser::ValueSource;
    let mut cli = Cli::from_arg_matches(matches)?;
    if let Command::Mock(args) = &mut cli.command
        && matches
            .subcommand_matches("mock")
            .and_then(|mock| mock.value_source("api_key"))
            != Some(ValueSource::CommandLine)
    {
        args.api_key = happyrobot_mock::DEFAULT_API_KEY.to_string();
    }
    Ok(cli)
}

fn main() -> ExitCode {
    let cli = match cli_from(&command().get_matches()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let verbose = cli.global.verbose;
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
    match runtime.block_on(run(cli.command, &cli.global)) {
        (_, Ok(exit)) => exit.into(),
        (output, Err(error)) => {
            exit::report(&error, verbose, output == Output::Json);
            error.exit.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::time::Duration;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
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
