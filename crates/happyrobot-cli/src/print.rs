//! How commands write to the terminal: the `--output` choice, the only functions that print, and
//! how a call is shown.
//!
//! Every write to stdout or stderr goes through [`out`] and [`err`], which ignore a failed write:
//! a closed pipe (`| head`, or a `tee` killed by the same Ctrl-C) must never make the command
//! panic, as `println!` and `eprintln!` would. The lints `print_stdout` and `print_stderr` are
//! denied in this crate so that nothing bypasses them.

use std::io::Write as _;

use clap::ValueEnum;
use happyrobot::types::{Call, MessageRole, Seconds, Transcript};

/// How a command prints its result on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Readable text.
    Text,
    /// JSON, for scripts and jq.
    Json,
}

/// Writes `text` and a newline to stdout, ignoring a closed or broken stdout.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
}

/// Writes `text` and a newline to stderr, ignoring a closed or broken stderr; a progress display
/// is cleared first and drawn again after.
pub(crate) fn err(text: &str) {
    crate::progress::around_message(|| {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr
            .write_all(text.as_bytes())
            .and_then(|()| stderr.write_all(b"\n"))
            .and_then(|()| stderr.flush());
    });
}

/// Writes bytes as received (a JSON body) to stdout, with one final newline, ignoring a closed or
/// broken stdout.
pub(crate) fn out_raw(body: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(&raw_json(body))
        .and_then(|()| stdout.flush());
}

/// Writes bytes exactly as given (a workbook) to stdout. Unlike the other writers it says when
/// that fails: a file cut short must not pass for a whole one.
pub(crate) fn out_bytes(bytes: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush())
}

/// Writes a JSON value, pretty, to stdout.
pub(crate) fn out_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => out(&text),
        Err(e) => err(&format!("error: could not encode the summary: {e}")),
    }
}

/// A field the answer may lack, as text.
pub(crate) fn shown(value: Option<&impl std::fmt::Display>) -> String {
    value.map_or_else(|| "(unknown)".to_string(), ToString::to_string)
}

/// One line about a call.
pub(crate) fn call_summary(call: &Call) -> String {
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
pub(crate) fn call_text(call: &Call) -> String {
    let mut out = call_summary(call);
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

/// A transcript as text: a heading, then one line a message in order, with its time from the start
/// of the call and who spoke; a tool call as `agent calls NAME(ARGUMENTS)` and a tool's answer as
/// `NAME answered: ...`, both cut to one short line.
pub(crate) fn transcript_text(call_id: &str, transcript: &Transcript) -> String {
    let messages = transcript.messages.as_deref().unwrap_or_default();
    let start = transcript.start_time.as_ref().and_then(Seconds::as_f64);
    let mut out = format!(
        "Transcript of call {call_id}: {} message{}{}\n",
        messages.len(),
        if messages.len() == 1 { "" } else { "s" },
        transcript
            .start_time
            .as_ref()
            .and_then(Seconds::to_unix_time)
            .map(|t| format!(", started {t}"))
            .unwrap_or_default()
    );
    for message in messages {
        let at = offset(message.start.as_ref(), start);
        let who = speaker(message.role.as_ref(), message.name.as_deref());
        let discarded = if message.discard == Some(true) {
            " (discarded)"
        } else {
            ""
        };
        let text = one_line(message.content.as_deref().unwrap_or_default(), 400);
        match message.role.as_ref() {
            Some(MessageRole::Tool) => {
                out.push_str(&format!("{at} {who} answered{discarded}: {text}\n"));
            }
            _ if !text.is_empty() || message.tool_calls.is_none() => {
                out.push_str(&format!("{at} {who}{discarded}: {text}\n"));
            }
            _ => {}
        }
        for call in message.tool_calls.as_deref().unwrap_or_default() {
            let function = call.function.as_ref();
            let name = function.and_then(|f| f.name.as_deref()).unwrap_or("a tool");
            let arguments = match function.and_then(|f| f.arguments.as_ref()) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(value) => value.to_string(),
                None => String::new(),
            };
            out.push_str(&format!(
                "{at} {who} calls {name}({})\n",
                one_line(&arguments, 200)
            ));
        }
    }
    out
}

/// `[mm:ss.s]`: a message's time from the start of the call. A time past a billion seconds is a
/// Unix time (one rendering of the API sends those): the transcript's start is taken from it.
fn offset(at: Option<&Seconds>, start: Option<f64>) -> String {
    let Some(at) = at.and_then(Seconds::as_f64) else {
        return "[  --.-]".to_string();
    };
    let seconds = match start {
        Some(start) if at > 1e9 => at - start,
        _ => at,
    }
    .max(0.0);
    // Whole tenths, then minutes and seconds: no call is long enough to overflow.
    let tenths = (seconds * 10.0).round() as u64;
    format!(
        "[{:02}:{:02}.{}]",
        tenths / 600,
        (tenths / 10) % 60,
        tenths % 10
    )
}

/// Who spoke, in the words of someone reading the call: the agent, the caller, the system or the
/// tool by its name; an unknown role as the API names it.
fn speaker(role: Option<&MessageRole>, name: Option<&str>) -> String {
    match role {
        Some(MessageRole::Assistant) => "agent".to_string(),
        Some(MessageRole::User) => "caller".to_string(),
        Some(MessageRole::System) => "system".to_string(),
        Some(MessageRole::Tool) => name.unwrap_or("tool").to_string(),
        Some(other) => other.to_string(),
        None => "(unknown)".to_string(),
    }
}

/// `text` on one line (every run of whitespace one space), cut to `max` characters with `…`.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max).collect();
    cut.push('…');
    cut
}

/// A body as printed: as received, with one final newline.
fn raw_json(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(json: serde_json::Value) -> Transcript {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_transcript_in_unix_times_is_shown_from_its_start_and_tools_compactly() {
        let older = transcript(serde_json::json!({
            "start_time": 1710320400.5,
            "messages": [
                {"role": "assistant", "content": "Acme,\n  this is Kate.", "start": 1710320401.25},
                {"role": "assistant", "tool_calls": [{"function": {"name": "find_load",
                    "arguments": {"ref": 48213}}}], "start": 1710320462.0},
                {"role": "tool", "name": "find_load", "content": "x".repeat(500), "start": "61.6"},
                {"role": "developer", "content": "Be brief.", "discard": true},
                {"content": "?"}
            ]
        }));
        let text = transcript_text("s90000000000000000000001", &older);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Transcript of call s90000000000000000000001: 5 messages, started \
             2024-03-13T09:00:00.500Z"
        );
        assert_eq!(lines[1], "[00:00.8] agent: Acme, this is Kate.");
        assert_eq!(lines[2], "[01:01.5] agent calls find_load({\"ref\":48213})");
        assert!(
            lines[3].starts_with("[01:01.6] find_load answered: xxx"),
            "{text}"
        );
        assert!(
            lines[3].ends_with("x…") && lines[3].chars().count() < 440,
            "{text}"
        );
        assert_eq!(lines[4], "[  --.-] developer (discarded): Be brief.");
        assert_eq!(lines[5], "[  --.-] (unknown): ?");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn an_empty_transcript_says_so() {
        assert_eq!(
            transcript_text(
                "65f1c0ffee0123456789abcd",
                &transcript(serde_json::json!({}))
            ),
            "Transcript of call 65f1c0ffee0123456789abcd: 0 messages\n"
        );
    }

    #[test]
    fn json_is_the_body_as_received() {
        assert_eq!(raw_json(b"{\"a\":1e400}"), b"{\"a\":1e400}\n");
        assert_eq!(raw_json(b"{}\n"), b"{}\n");
    }
}
