//! What the dry run of `notes import` shows beside its counts: which column feeds the call ID, the
//! text and the flag, which columns are not read, and the first lines as they will be sent, so
//! that no column is left out unseen.

use happyrobot_bulk::{ColumnMapping, Plan, PreviewLine};

use crate::print;

/// How many characters of a note's text a preview line shows.
const SHOWN_TEXT: usize = 60;

/// The columns and the first lines of `plan`; `content` is the `--content` text, if given.
pub(crate) fn details(plan: &Plan, content: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(columns) = &plan.columns {
        text.push_str(&mapping(columns, content));
    }
    if !plan.preview.is_empty() {
        text.push_str(&format!(
            "\n  first line{}, as sent:",
            if plan.preview.len() == 1 { "" } else { "s" }
        ));
        let sheet = plan.columns.as_ref().is_some_and(|c| c.sheet.is_some());
        for line in &plan.preview {
            text.push_str(&preview(line, sheet));
        }
    }
    text
}

/// `  columns: ...` and, when there are any, `  not read: ...`.
fn mapping(columns: &ColumnMapping, content: Option<&str>) -> String {
    let quoted = |name: &str| format!("{name:?}");
    let text = match (&columns.content, content) {
        (Some(column), _) => format!("text from {}", quoted(column)),
        (None, Some(given)) => format!("text {} (--content)", quoted(given)),
        (None, None) => "no text".to_string(),
    };
    let flag = columns.flagged.as_deref().map_or_else(
        || "no flag column".to_string(),
        |column| format!("flag from {}", quoted(column)),
    );
    let sheet = columns
        .sheet
        .as_deref()
        .map(|sheet| format!(" (sheet {})", quoted(sheet)))
        .unwrap_or_default();
    let mut shown = format!(
        "\n  columns:          call ID from {}, {text}, {flag}{sheet}",
        quoted(&columns.call_id)
    );
    if !columns.ignored.is_empty() {
        let names: Vec<String> = columns.ignored.iter().map(|n| quoted(n)).collect();
        shown.push_str(&format!(
            "\n  not read:         {} (kept in a --report file)",
            names.join(", ")
        ));
    }
    shown
}

/// One line as it will be sent: where it is, the call, the flag, the text.
fn preview(line: &PreviewLine, sheet: bool) -> String {
    let note = line.record.note();
    let flag = match note.is_flagged() {
        Some(true) => "flagged",
        Some(false) => "not flagged",
        None => "no flag",
    };
    let mut content: String = note.content().chars().take(SHOWN_TEXT).collect();
    if note.content().chars().count() > SHOWN_TEXT {
        content.push('…');
    }
    format!(
        "\n    {} {:<5} {}  {flag:<11}  {content:?}",
        if sheet { "row" } else { "line" },
        line.line,
        line.record.call_id()
    )
}

/// Prints the details of a dry run, if there are any.
pub(crate) fn print(plan: &Plan, content: Option<&str>) {
    let details = details(plan, content);
    if let Some(details) = details.strip_prefix('\n') {
        print::err(details);
    }
}
