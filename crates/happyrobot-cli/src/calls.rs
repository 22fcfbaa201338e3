//! `happyrobot calls get`: one call and its notes, as text or as the JSON the server sent.

use clap::{Args, Subcommand};
use happyrobot::types::Call;
use happyrobot::{CallId, RetryPolicy};

use crate::GlobalArgs;
use crate::exit::{CliError, EXIT_CODES_HELP, Exit};
use crate::output::{self, Output};

/// The `calls` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum CallsCommand {
    /// Show a call and its notes.
    #[command(after_help = EXIT_CODES_HELP)]
    Get(GetArgs),
}

/// Options of `calls get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The call's ID: 24 letters and digits.
    #[arg(value_name = "CALL_ID")]
    pub(crate) call_id: String,

    /// text: the call and its notes; json: the whole call as the server sent it.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

pub(crate) async fn run(global: &GlobalArgs, command: CallsCommand) -> Result<Exit, CliError> {
    match command {
        CallsCommand::Get(args) => get(global, args).await,
    }
}

async fn get(global: &GlobalArgs, args: GetArgs) -> Result<Exit, CliError> {
    let call_id: CallId = args.call_id.parse().map_err(|e| CliError::from_api(&e))?;
    let retry = RetryPolicy::default().max_retries(global.max_retries);
    let connection = crate::connect::connect(global, retry).await?;
    let call = connection
        .client
        .get_call(&call_id)
        .await
        .map_err(|e| CliError::from_api(&e))?;
    match args.output {
        Output::Json => output::out_raw(call.raw_body()),
        Output::Text => output::out(render(&call).trim_end()),
    }
    Ok(Exit::Success)
}

/// A field the answer may lack, as text.
pub(crate) fn shown(value: Option<&impl std::fmt::Display>) -> String {
    value.map_or_else(|| "(unknown)".to_string(), ToString::to_string)
}

/// One line about a call.
pub(crate) fn summary(call: &Call) -> String {
    let notes = call.notes.as_ref().map_or(0, Vec::len);
    format!(
        "Call {}: {} {} call, {}, {}, created {}, {} note{}",
        call.id,
        shown(call.provider.as_ref()),
        shown(call.type_.as_ref()),
        shown(call.status.as_ref()),
        shown(call.language.as_ref()),
        shown(call.created.as_ref()),
        notes,
        if notes == 1 { "" } else { "s" }
    )
}

/// The call's line, then each note: its ID, flag, date and text.
pub(crate) fn render(call: &Call) -> String {
    let mut out = summary(call);
    out.push('\n');
    for note in call.notes.as_deref().unwrap_or_default() {
        out.push_str(&format!(
            "  note {}{}, created {}\n",
            note.id.as_deref().unwrap_or("(no id)"),
            if note.flagged == Some(true) {
                " (flagged)"
            } else {
                ""
            },
            shown(note.created_at.as_ref()),
        ));
        for line in note.content.as_deref().unwrap_or_default().lines() {
            out.push_str(&format!("    | {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_call_and_its_notes() {
        let call: Call = serde_json::from_value(serde_json::json!({
            "id": "65f1c0ffee0123456789abcd",
            "status": "Completed",
            "notes": [
                {"id": "a", "content": "one\ntwo", "flagged": true},
                {"content": "three"}
            ]
        }))
        .unwrap();
        assert_eq!(
            render(&call),
            "Call 65f1c0ffee0123456789abcd: (unknown) (unknown) call, Completed, (unknown), \
             created (unknown), 2 notes\n  note a (flagged), created (unknown)\n    | one\n    \
             | two\n  note (no id), created (unknown)\n    | three\n"
        );
    }
}
