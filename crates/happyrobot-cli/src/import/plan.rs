//! The plan of an import: where its journal is, and the validation pass that reads the whole
//! file, checks every line and counts what the journal says about it, before anything is sent.

use std::path::{Path, PathBuf};

use super::args::Format;
use super::input::{Item, LineError, Records};
use super::journal::{JournalState, LineState};
use crate::exit::CliError;

/// How many invalid lines are printed before the rest are only counted.
pub(crate) const MAX_SHOWN_ERRORS: usize = 20;

/// The journal beside the file: `notes.csv` gets `notes.csv.journal`.
pub(crate) fn default_journal(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// What the validation pass found.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Valid lines.
    pub(crate) lines: u64,
    pub(crate) invalid: u64,
    /// The first invalid lines, to print.
    pub(crate) errors: Vec<LineError>,
    /// Valid lines the journal has as done, failed, unknown; the rest are new.
    pub(crate) done: u64,
    pub(crate) failed_before: u64,
    pub(crate) unknown_before: u64,
}

/// Reads the whole file once, checking every line and comparing it with the journal.
pub(crate) fn validate(
    path: &Path,
    format: Format,
    state: &JournalState,
    journal: &Path,
) -> Result<Plan, CliError> {
    let records = Records::open(path, format)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    let mut plan = Plan::default();
    let mut matched = 0usize;
    for item in records {
        let item =
            item.map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        match item {
            Item::Invalid(error) => {
                plan.invalid += 1;
                if plan.errors.len() < MAX_SHOWN_ERRORS {
                    plan.errors.push(error);
                }
            }
            Item::Valid(record) => {
                plan.lines += 1;
                let Some((fingerprint, line_state)) = state.get(record.line) else {
                    continue;
                };
                if fingerprint != record.fingerprint {
                    return Err(foreign_journal(journal, path, record.line));
                }
                matched += 1;
                match line_state {
                    LineState::Done => plan.done += 1,
                    LineState::Failed => plan.failed_before += 1,
                    LineState::Unknown { .. } => plan.unknown_before += 1,
                }
            }
        }
    }
    // Lines the journal knows but the file lacks: a shorter or different file.
    if plan.invalid == 0 && matched < state.len() {
        return Err(CliError::usage(format!(
            "the journal {} records {} line(s) that {} does not have: it belongs to another file. \
             Import this file with a new journal (--journal PATH), or restore the original file to resume",
            journal.display(),
            state.len() - matched,
            path.display()
        )));
    }
    Ok(plan)
}

fn foreign_journal(journal: &Path, file: &Path, line: u64) -> CliError {
    CliError::usage(format!(
        "the journal {} was written for a different file: line {line} of {} is not the line it \
         recorded (the file was edited, or this is another file). Import this file with a new \
         journal (--journal PATH), or restore the original file to resume",
        journal.display(),
        file.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::journal::{Entry, Event, JournalWriter};

    const ID: &str = "65f1c0ffee0123456789abcd";

    #[test]
    fn the_default_journal_is_beside_the_file() {
        assert_eq!(
            default_journal(Path::new("dir/notes.csv")),
            PathBuf::from("dir/notes.csv.journal")
        );
    }

    #[test]
    fn validation_counts_lines_errors_and_journaled_states() {
        let dir = crate::import::test_dir("plan");
        let file = dir.join("notes.csv");
        std::fs::write(
            &file,
            format!("call_id,content\n{ID},a\n{ID},b\nbad,c\n{ID},d\n"),
        )
        .unwrap();
        let plan = validate(&file, Format::Csv, &JournalState::default(), &dir.join("j")).unwrap();
        assert_eq!((plan.lines, plan.invalid, plan.done), (3, 1, 0));
        assert_eq!(plan.errors[0].line, 4);

        // A journal saying line 2 is done and line 3 failed.
        let journal = dir.join("notes.csv.journal");
        let writer = JournalWriter::open(&journal, &JournalState::default(), false).unwrap();
        let fp = |content: &str| crate::import::input::fingerprint(ID, content, None);
        writer.write(&Entry::line(Event::Done, 2, fp("a"))).unwrap();
        writer
            .write(&Entry::line(Event::Failed, 3, fp("b")))
            .unwrap();
        drop(writer);
        let state = JournalState::load(&journal).unwrap();
        let plan = validate(&file, Format::Csv, &state, &journal).unwrap();
        assert_eq!(
            (plan.done, plan.failed_before, plan.unknown_before),
            (1, 1, 0)
        );
    }
}
