//! `happyrobot notes add`: one note, printed as text or as the whole call in JSON.

use std::io::Write as _;

use happyrobot::types::{Call, Note};
use happyrobot::{CallId, NewNote, RetryPolicy};

use clap::Args;

use crate::GlobalArgs;
use crate::exit::{CliError, Exit};
use crate::output::Output;

/// Options of `notes add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The call's ID: 24 letters and digits.
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
}

pub(crate) async fn run(global: &GlobalArgs, args: AddArgs) -> Result<Exit, CliError> {
    // Input is checked before anything else, so that a typo never needs a key or a network.
    let call_id: CallId = args.call_id.parse().map_err(|e| CliError::from_api(&e))?;
    let mut note = NewNote::new(args.content);
    if args.flagged {
        note = note.flagged(true);
    }
    note.validate().map_err(|e| CliError::from_api(&e))?;

    // The library's default policy retries only what certainly was not applied (429, refused
    // connections), so a single add never duplicates the note.
    let retry = RetryPolicy::default().max_retries(global.max_retries);
    let connection = crate::connect::connect(global, retry).await?;
    let content = note.content().to_string();
    let call = connection
        .client
        .add_note(&call_id, note)
        .await
        .map_err(|e| CliError::from_api(&e))?;

    let text = match args.output {
        Output::Json => {
            let mut json = serde_json::to_string_pretty(&call)
                .map_err(|e| CliError::internal(format!("could not encode the call: {e}")))?;
            json.push('\n');
            json
        }
        Output::Text => render_text(&call, &content),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) is not worth an error: the note was added either way.
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(Exit::Success)
}

/// The note just added: the newest note with this text (the API returns notes oldest first).
fn added_note<'a>(call: &'a Call, content: &str) -> Option<&'a Note> {
    call.notes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .rev()
        .find(|n| n.content.as_deref() == Some(content))
}

/// The text output: the note, then one line about the call.
fn render_text(call: &Call, content: &str) -> String {
    let mut out = String::new();
    match added_note(call, content) {
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
    let notes = call.notes.as_ref().map_or(0, Vec::len);
    out.push_str(&format!(
        "Call {}: {} {} call, {}, {}, created {}, {} note{}\n",
        call.id,
        call.provider,
        call.type_,
        call.status,
        call.language,
        call.created,
        notes,
        if notes == 1 { "" } else { "s" }
    ));
    out
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
        let text = render_text(&call, "hi");
        assert_eq!(
            text,
            "Added note new to call 65f1c0ffee0123456789abcd (flagged)\n  created: \
             2025-01-01T00:00:00Z\n  | hi\nCall 65f1c0ffee0123456789abcd: Twilio Inbound call, \
             Completed, en-US, created 2024-01-01T01:01:01Z, 3 notes\n"
        );
    }

    #[test]
    fn text_copes_with_an_answer_without_the_note() {
        let text = render_text(&call(serde_json::json!(null)), "hi");
        assert!(text.starts_with("Added the note to call"), "{text}");
        assert!(text.contains("0 notes"), "{text}");
    }
}
