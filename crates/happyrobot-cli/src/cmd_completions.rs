//! `happyrobot completions <SHELL>`: prints a completion script for the shell on stdout, generated
//! by clap_complete from the same command definition the binary parses with, so it never falls
//! out of step with the options.

use clap::{CommandFactory as _, ValueEnum};

use crate::exit::{CliError, Exit};

/// Where each shell looks for the script, shown after `happyrobot completions --help`.
pub(crate) const HELP: &str = "\
Install:
  bash        happyrobot completions bash > ~/.local/share/bash-completion/completions/happyrobot
  zsh         happyrobot completions zsh > ~/.zfunc/_happyrobot
              (and fpath+=(~/.zfunc) before compinit in ~/.zshrc)
  fish        happyrobot completions fish > ~/.config/fish/completions/happyrobot.fish
  powershell  happyrobot completions powershell >> $PROFILE";

/// The shells a script can be printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
}

/// Options of `completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell to print the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub(crate) shell: Shell,
}

/// Prints the script on stdout.
pub(crate) fn run(args: &Args) -> Result<Exit, CliError> {
    use std::io::Write as _;

    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::Cli::command(), "happyrobot", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::internal(format!("could not write the completion script: {e}")))?;
    Ok(Exit::Success)
}
