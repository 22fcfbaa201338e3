//! The seam between the command line and the library: every command that talks to the API
//! implements [`RunCommand`] (how it prints, what its client needs, how its input is checked, and
//! what it does), and [`execute`] runs any of them the same way: input checked first (a typo never
//! needs a key or a network), then the one [`Context`] built, then the command.

use crate::context::{Context, GlobalArgs, Needs};
use crate::exit::{CliError, Exit};
use crate::print::Output;

/// One command of the `happyrobot` command line that talks to the API.
pub(crate) trait RunCommand: Sized {
    /// The command's input once checked: typed values (a `CallId`, a note), made before any key,
    /// file or network is touched.
    type Input;

    /// How the command prints on stdout; with JSON, its errors are JSON on stderr too.
    fn output(&self) -> Output;

    /// What its client needs (a rate ceiling, a dry run that needs no key).
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// Checks the input; when this fails, nothing was read or sent (exit 2).
    fn check(self) -> Result<Self::Input, CliError>;

    /// Does the command in `context`.
    async fn run(input: Self::Input, context: Context) -> Result<Exit, CliError>;
}

/// Runs `command` with the global options: checks its input, builds the context once, runs it.
/// Returns how it prints, for its errors, with what it ended with.
pub(crate) async fn execute<C: RunCommand>(
    command: C,
    global: &GlobalArgs,
) -> (Output, Result<Exit, CliError>) {
    let output = command.output();
    let needs = command.needs();
    let result = async {
        let input = command.check()?;
        let context = Context::new(global, needs).await?;
        C::run(input, context).await
    };
    (output, result.await)
}

/// The result of a command that does not run over the one [`Context`] (`mock` and `completions`
/// talk to no API; `auth` checks the key it is given with a client of its own), which prints text.
pub(crate) fn local(result: Result<Exit, CliError>) -> (Output, Result<Exit, CliError>) {
    (Output::Text, result)
}
