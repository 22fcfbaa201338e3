//! How commands write to the terminal: the `--output` choice, the only functions that print, and
//! how a call is shown.
//!
//! Every write to stdout or stderr goes through [`out`] and [`err`], which ignore a failed write:
//! a closed pipe (`| head`, or a `tee` killed by the same Ctrl-C) must never make the command
//! panic, as `println!` and `eprintln!` would. The lints `print_stdout` and `print_stderr` are
//! denied in this crate so that nothing bypasses them.

use std::io::Write as _;

use clap::ValueEnum;
use happyrobot::types::Call;

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

/// Writes `text` and a newline to stderr, ignoring a closed or broken stderr.
pub(crate) fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.write_all(b"\n"))
        .and_then(|()| stderr.flush());
}

/// Writes bytes as received (a JSON body) to stdout, with one final newline, ignoring a closed or
/// broken stdout.
pub(crate) fn out_raw(body: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(&raw_json(body))
        .and_then(|()| stdout.flush());
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

    #[test]
    fn json_is_the_body_as_received() {
        assert_eq!(raw_json(b"{\"a\":1e400}"), b"{\"a\":1e400}\n");
        assert_eq!(raw_json(b"{}\n"), b"{}\n");
    }
}
