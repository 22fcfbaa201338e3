//! `happyrobot notes update` and `happyrobot notes delete`: change or remove one note, and print
//! the call after the change.

use clap::Args;
use happyrobot::{CallId, NoteChanges, NoteId};

use crate::command::RunCommand;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::print::{self, Output};

/// Options of `notes update`.
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The call's ID: 24 characters (letters, digits, - or _), sent as typed.
    #[arg(value_name = "CALL_ID")]
    pub(crate) call_id: String,

    /// The note's ID, as `calls get` shows it.
    #[arg(value_name = "NOTE_ID")]
    pub(crate) note_id: String,

    /// The note's new text.
    #[arg(long, short = 'c', value_name = "TEXT")]
    pub(crate) content: Option<String>,

    /// Flag the note for attention.
    #[arg(long, conflicts_with = "unflagged")]
    pub(crate) flagged: bool,

    /// Remove the note's flag.
    #[arg(long)]
    pub(crate) unflagged: bool,

    /// text: the call and its notes; json: the whole call as the server sent it.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// Options of `notes delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The call's ID: 24 characters (letters, digits, - or _), sent as typed.
    #[arg(value_name = "CALL_ID")]
    pub(crate) call_id: String,

    /// The note's ID, as `calls get` shows it.
    #[arg(value_name = "NOTE_ID")]
    pub(crate) note_id: String,

    /// text: the call and its notes; json: the whole call as the server sent it.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// The call and note IDs, checked before anything else.
fn ids(call_id: &str, note_id: &str) -> Result<(CallId, NoteId), CliError> {
    Ok((call_id.parse()?, note_id.parse()?))
}

impl RunCommand for UpdateArgs {
    type Input = (CallId, NoteId, NoteChanges, Output);

    fn output(&self) -> Output {
        self.output
    }

    fn check(self) -> Result<Self::Input, CliError> {
        let (call_id, note_id) = ids(&self.call_id, &self.note_id)?;
        let mut changes = NoteChanges::new();
        if let Some(content) = self.content {
            changes = changes.content(content);
        }
        if self.flagged || self.unflagged {
            changes = changes.flagged(self.flagged);
        }
        changes.validate()?;
        Ok((call_id, note_id, changes, self.output))
    }

    async fn run(input: Self::Input, context: Context) -> Result<Exit, CliError> {
        let (call_id, note_id, changes, output) = input;
        // An update is idempotent: the library's default policy may retry it after an unknown
        // outcome.
        let call = context
            .client
            .update_note(&call_id, &note_id, changes)
            .await?;
        print(&call, output, &format!("Updated note {note_id}"));
        Ok(Exit::Success)
    }
}

impl RunCommand for DeleteArgs {
    type Input = (CallId, NoteId, Output);

    fn output(&self) -> Output {
        self.output
    }

    fn check(self) -> Result<Self::Input, CliError> {
        let (call_id, note_id) = ids(&self.call_id, &self.note_id)?;
        Ok((call_id, note_id, self.output))
    }

    async fn run(input: Self::Input, context: Context) -> Result<Exit, CliError> {
        let (call_id, note_id, output) = input;
        let call = context.client.delete_note(&call_id, &note_id).await?;
        print(&call, output, &format!("Deleted note {note_id}"));
        Ok(Exit::Success)
    }
}

fn print(call: &happyrobot::Response<happyrobot::types::Call>, output: Output, done: &str) {
    match output {
        Output::Json => print::out_raw(call.raw_body()),
        Output::Text => {
            print::out(&format!("{done} of call {}", call.id));
            print::out(print::call_text(call).trim_end());
        }
    }
}
