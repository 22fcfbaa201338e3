//! `happyrobot notes update` and `happyrobot notes delete`: change or remove one note, and print
//! the call after the change.

use clap::Args;
use happyrobot::{CallId, NoteChanges, NoteId};

use crate::GlobalArgs;
use crate::context::{Context, Needs};
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
    let call_id: CallId = call_id.parse().map_err(|e| CliError::from_api(&e))?;
    let note_id: NoteId = note_id.parse().map_err(|e| CliError::from_api(&e))?;
    Ok((call_id, note_id))
}

pub(crate) async fn update(global: &GlobalArgs, args: UpdateArgs) -> Result<Exit, CliError> {
    let (call_id, note_id) = ids(&args.call_id, &args.note_id)?;
    let mut changes = NoteChanges::new();
    if let Some(content) = args.content {
        changes = changes.content(content);
    }
    if args.flagged || args.unflagged {
        changes = changes.flagged(args.flagged);
    }
    changes.validate().map_err(|e| CliError::from_api(&e))?;
    // An update is idempotent: the library's default policy may retry it after an unknown outcome.
    let context = Context::new(global, Needs::default()).await?;
    let call = context
        .client
        .update_note(&call_id, &note_id, changes)
        .await
        .map_err(|e| CliError::from_api(&e))?;
    print(&call, args.output, &format!("Updated note {note_id}"));
    Ok(Exit::Success)
}

pub(crate) async fn delete(global: &GlobalArgs, args: DeleteArgs) -> Result<Exit, CliError> {
    let (call_id, note_id) = ids(&args.call_id, &args.note_id)?;
    let context = Context::new(global, Needs::default()).await?;
    let call = context
        .client
        .delete_note(&call_id, &note_id)
        .await
        .map_err(|e| CliError::from_api(&e))?;
    print(&call, args.output, &format!("Deleted note {note_id}"));
    Ok(Exit::Success)
}

impl UpdateArgs {
    /// How the command prints.
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

impl DeleteArgs {
    /// How the command prints.
    pub(crate) fn output(&self) -> Output {
        self.output
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
