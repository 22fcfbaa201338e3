//! `happyrobot notes add`: one note, printed as text or as the whole call in JSON.

use happyrobot::types::Call;
use happyrobot::{AttemptObserver, CallId, Control, NewNote, SettleStep};

use clap::Args;

use crate::command::RunCommand;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::print::{self, Output};

/// Options of `notes add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The call's ID: 24 characters (letters, digits, - or _), sent as typed.
    #[arg(value_name = "CALL_ID")]
    pub(crate) call_id: String,

    /// The note's text.
    #[arg(long, short = 'c', value_name = "TEXT")]
    pub(crate) content: String,

    /// Flag the note for attention.
    #[arg(long)]
    pub(crate) flagged: bool,

    /// text: the note and a summary of the call; json: the whole updated call.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,

    /// When the outcome is unknown, do not look for the note on the call (nor send it again):
    /// exit 7 at once.
    #[arg(long)]
    pub(crate) no_reconcile: bool,
}

/// `notes add`'s input, checked: the call, and the note with the ID chosen for it.
pub(crate) struct Checked {
    call_id: CallId,
    note: NewNote,
    note_id: String,
    output: Output,
    no_reconcile: bool,
}

impl RunCommand for AddArgs {
    type Input = Checked;

    fn output(&self) -> Output {
        self.output
    }

    fn check(self) -> Result<Checked, CliError> {
        let call_id: CallId = self.call_id.parse()?;
        // The note's ID is chosen here, so that the answer shows which note is the new one.
        let note_id = happyrobot::NoteId::generate().into_string();
        let mut note = NewNote::new(self.content).id(note_id.clone());
        if self.flagged {
            note = note.flagged(true);
        }
        note.validate()?;
        Ok(Checked {
            call_id,
            note,
            note_id,
            output: self.output,
            no_reconcile: self.no_reconcile,
        })
    }

    async fn run(input: Checked, context: Context) -> Result<Exit, CliError> {
        let Checked {
            call_id,
            note,
            note_id,
            output,
            no_reconcile,
        } = input;
        let client = &context.client;
        let (call, shown_id) = if no_reconcile {
            (client.add_note(&call_id, note.clone()).await?, note_id)
        } else {
            settle(client, &call_id, &note, &note_id).await?
        };
        // A closed stdout (`| head`) is not worth an error: the note was added either way, and
        // the print helper ignores it.
        match output {
            // The body exactly as the server sent it: members this version does not know, big
            // numbers and nesting all reach the reader unchanged.
            Output::Json => print::out_raw(call.raw_body()),
            Output::Text => print::out_raw(&render_text(&call, &shown_id, note.content())),
        }
        Ok(Exit::Success)
    }
}

/// Adds the note; after an add whose outcome is unknown, the library settles it
/// ([`happyrobot::Client::add_note_settled`]: it looks the note up, and sends it once more, under a
/// new ID, only when it is certainly absent), and this says what it does on stderr. Found or sent
/// again, the call is shown as after a success; undecided, the add's error stands (exit 7) with
/// what was found.
async fn settle(
    client: &happyrobot::Client,
    call_id: &CallId,
    note: &NewNote,
    note_id: &str,
) -> Result<(happyrobot::Response<Call>, String), CliError> {
    let narrator = Narrator { call_id, note_id };
    let control = Control::new().observer(&narrator);
    match client
        .add_note_settled(call_id, note.clone(), &control)
        .await
    {
        Ok(added) => {
            let shown = added.note_id.unwrap_or_else(|| note_id.to_string());
            Ok((added.call, shown))
        }
        Err(error) => match (error.unsettled(), error.unsettled_add()) {
            (Some(why), Some(add)) => {
                let mut failure = CliError::from_api(add);
                failure.message.push_str(&format!(
                    " Looking for note {note_id} on the call did not settle it: {}. Check with \
                     `happyrobot calls get {call_id}` before sending it again.",
                    crate::exit::in_cli_words(&why.reason())
                ));
                Err(failure)
            }
            _ => Err(error.into()),
        },
    }
}

/// Tells the person at the terminal what settling an unknown add does, as it does it.
struct Narrator<'a> {
    call_id: &'a CallId,
    note_id: &'a str,
}

impl AttemptObserver for Narrator<'_> {
    fn settle_step(&self, step: &SettleStep<'_>) {
        let (call_id, note_id) = (self.call_id, self.note_id);
        match step {
            SettleStep::Looking { error } => print::err(&format!(
                "note: {error}\nnote: looking for note {note_id} on call {call_id} to find out \
                 whether it was added (a gateway may have given up while the API went on: absent \
                 is decided only once that can no longer be)"
            )),
            SettleStep::Found { .. } => print::err(&format!(
                "note: note {note_id} is on the call: it was added"
            )),
            SettleStep::SendingAgain { resend_id } => print::err(&format!(
                "note: note {note_id} is not on the call: it was not added; sending it again, \
                 once, as note {resend_id} (a new ID, so that a late first copy could be told apart)"
            )),
            _ => {}
        }
    }
}

/// The text output: the note, then one line about the call.
fn render_text(call: &Call, note_id: &str, content: &str) -> Vec<u8> {
    let mut out = String::new();
    match happyrobot::added_note(call, Some(note_id), content) {
        Some(note) => {
            out.push_str(&format!(
                "Added note {} to call {}{}\n",
                note.id.as_deref().unwrap_or("(no id)"),
                call.id,
                if note.flagged == Some(true) {
                    " (flagged)"
                } else {
                    ""
                }
            ));
            out.push_str(&format!(
                "  created: {}\n",
                note.created_at
                    .as_ref()
                    .map_or_else(|| "(unknown)".to_string(), ToString::to_string)
            ));
            for line in content.lines() {
                out.push_str(&format!("  | {line}\n"));
            }
        }
        // The API answered success, so the note exists, even if it does not show in the answer.
        None => out.push_str(&format!(
            "Added the note to call {} (the answer does not show it)\n",
            call.id
        )),
    }
    out.push_str(&print::call_summary(call));
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(notes: serde_json::Value) -> Call {
        serde_json::from_value(serde_json::json!({
            "id": "65f1c0ffee0123456789abcd",
            "organization_id": "65f1c0ffee0123456789ab00",
            "type": "Inbound",
            "status": "Completed",
            "provider": "Twilio",
            "metadata": {},
            "use_case": {},
            "agent": {},
            "language": "en-US",
            "created": "2024-01-01T01:01:01Z",
            "viewed_by": [],
            "notes": notes,
        }))
        .unwrap()
    }

    #[test]
    fn text_shows_the_newest_matching_note_and_the_call() {
        let call = call(serde_json::json!([
            {"id": "old", "content": "hi", "flagged": false},
            {"id": "other", "content": "bye"},
            {"id": "new", "content": "hi", "flagged": true, "created_at": "2025-01-01T00:00:00Z"},
        ]));
        let text = String::from_utf8(render_text(&call, "nope", "hi")).unwrap();
        assert_eq!(
            text,
            "Added note new to call 65f1c0ffee0123456789abcd (flagged)\n  created: \
             2025-01-01T00:00:00Z\n  | hi\nCall 65f1c0ffee0123456789abcd: Twilio Inbound call, \
             Completed, en-US, created 2024-01-01T01:01:01Z, 3 notes\n"
        );
    }

    #[test]
    fn text_finds_the_note_by_its_id_first() {
        let call = call(serde_json::json!([
            {"id": "mine", "content": "hi"},
            {"id": "later", "content": "hi"},
        ]));
        let text = String::from_utf8(render_text(&call, "mine", "hi")).unwrap();
        assert!(text.starts_with("Added note mine "), "{text}");
    }

    #[test]
    fn text_copes_with_a_call_that_has_only_an_id() {
        let call: Call = serde_json::from_str(r#"{"id": "65f1c0ffee0123456789abcd"}"#).unwrap();
        let text = String::from_utf8(render_text(&call, "x", "hi")).unwrap();
        assert!(text.contains("(unknown) (unknown) call"), "{text}");
    }

    #[test]
    fn text_copes_with_an_answer_without_the_note() {
        let text =
            String::from_utf8(render_text(&call(serde_json::json!(null)), "x", "hi")).unwrap();
        assert!(text.starts_with("Added the note to call"), "{text}");
        assert!(text.contains("0 notes"), "{text}");
    }
}
