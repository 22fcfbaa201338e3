//! The plan of an import: which file and journal, and the validation pass that reads the whole
//! file, checks every line, finds identical lines and counts what the journal says about each,
//! before anything is sent.
//!
//! Where the journal is: `--journal PATH`, else `<FILE>.journal` beside the file if it exists,
//! else the journal of a file with the same content imported to the same API (found through an
//! index in the state directory, so that a renamed, copied or symlinked file resumes instead of
//! sending everything again), else a new `<FILE>.journal`. The state directory is
//! `$HAPPYROBOT_STATE_DIR`, else `$XDG_STATE_HOME/happyrobot`, else `~/.local/state/happyrobot`;
//! it holds `journals/<KEY>` (the path of the journal last used for that content and base URL)
//! and `locks/<KEY>.lock` (held while a file with that content is imported to that base URL),
//! where `<KEY>` is [`index_key`].

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use super::args::Format;
use super::input::{Item, LineError, Records};
use super::journal::{Destination, JournalState, LineState};
use crate::exit::CliError;

/// How many invalid lines are printed before the rest are only counted.
pub(crate) const MAX_SHOWN_ERRORS: usize = 20;

/// The journal beside the file: `notes.csv` gets `notes.csv.journal`.
pub(crate) fn default_journal(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// A BLAKE3 hash of the file's bytes (128 bits, hex), read as a stream.
pub(crate) fn content_hash(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

/// Where the index of journals by content and the content locks live, if anywhere.
pub(crate) fn state_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HAPPYROBOT_STATE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return Some(PathBuf::from(dir).join("happyrobot"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".local/state/happyrobot"))
}

/// The name of a content's entries in the state directory, for one base URL: imports of the
/// same file to two different APIs neither share a journal nor block each other.
pub(crate) fn index_key(content: &str, destination: &Destination) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(content.as_bytes());
    hasher.update(&[0xff]);
    hasher.update(destination.base_url.as_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// The journal to use when none is given, and whether it was found by the file's content.
pub(crate) fn find_journal(
    file: &Path,
    content: &str,
    destination: &Destination,
) -> (PathBuf, bool) {
    let beside = default_journal(file);
    if beside.exists() {
        return (beside, false);
    }
    let indexed = state_dir()
        .and_then(|dir| {
            let entry = dir.join("journals").join(index_key(content, destination));
            std::fs::read_to_string(entry).ok()
        })
        .map(|text| PathBuf::from(text.trim_end_matches('\n')));
    if let Some(journal) = indexed
        && journal.is_file()
        // Only a journal that imported this very content to this very API is adopted.
        && JournalState::load(&journal, destination).is_ok_and(|s| s.contents.contains(content))
    {
        return (journal, true);
    }
    (beside, false)
}

/// Records `journal` as the journal of files with this content (best effort: without the index
/// a renamed file starts a new journal, which the message then explains).
pub(crate) fn remember_journal(content: &str, destination: &Destination, journal: &Path) {
    let Some(dir) = state_dir().map(|d| d.join("journals")) else {
        return;
    };
    let Ok(absolute) = std::path::absolute(journal) else {
        return;
    };
    let result = std::fs::create_dir_all(&dir).and_then(|()| {
        let key = index_key(content, destination);
        let temp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        std::fs::write(&temp, absolute.as_os_str().as_encoded_bytes())?;
        std::fs::rename(&temp, dir.join(key))
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record the journal in the state directory");
    }
}

/// What the validation pass found.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Valid lines.
    pub(crate) lines: u64,
    pub(crate) invalid: u64,
    /// The first invalid lines, to print.
    pub(crate) errors: Vec<LineError>,
    /// The first lines identical to an earlier one (same call, text and flag), as (line, earlier
    /// line), in file order.
    pub(crate) duplicates: Vec<(u64, u64)>,
    pub(crate) duplicate_count: u64,
    /// The fingerprints that occur more than once.
    pub(crate) repeated: HashSet<u64>,
    /// Valid lines the journal has as done, failed, unknown; the rest are new.
    pub(crate) done: u64,
    pub(crate) failed_before: u64,
    pub(crate) unknown_before: u64,
    /// Lines this destination's journal records that the file no longer has (edited or removed).
    pub(crate) orphans: u64,
}

/// Reads the whole file once, checking every line, finding identical lines, and counting what
/// the journal says about each. Memory: 8 bytes per valid line (a million-line file: 8 MB); when
/// identical lines exist, a second pass finds their line numbers.
pub(crate) fn validate(
    path: &Path,
    format: Format,
    state: &JournalState,
) -> Result<Plan, CliError> {
    let read_error = |e: io::Error| CliError::usage(format!("cannot read {}: {e}", path.display()));
    let records = Records::open(path, format).map_err(read_error)?;
    let mut plan = Plan::default();
    let mut fingerprints: Vec<u64> = Vec::new();
    for item in records {
        match item.map_err(read_error)? {
            Item::Invalid(error) => {
                plan.invalid += 1;
                if plan.errors.len() < MAX_SHOWN_ERRORS {
                    plan.errors.push(error);
                }
            }
            Item::Valid(record) => {
                plan.lines += 1;
                fingerprints.push(record.fingerprint);
            }
        }
    }
    // Sorted, identical lines are neighbours; the k-th copy of a line is its occurrence k in the
    // journal (which copy is which does not matter for counting).
    fingerprints.sort_unstable();
    let mut matched = 0usize;
    let mut previous: Option<(u64, u32)> = None;
    for &fingerprint in &fingerprints {
        let occurrence = match previous {
            Some((fp, n)) if fp == fingerprint => {
                plan.repeated.insert(fingerprint);
                plan.duplicate_count += 1;
                n + 1
            }
            _ => 0,
        };
        previous = Some((fingerprint, occurrence));
        let Some(line_state) = state.get((fingerprint, occurrence)) else {
            continue;
        };
        matched += 1;
        match line_state {
            LineState::Done => plan.done += 1,
            LineState::Failed => plan.failed_before += 1,
            LineState::Unknown { .. } => plan.unknown_before += 1,
            // Deleted by an undo: sent again like a new line.
            LineState::Undone => {}
        }
    }
    drop(fingerprints);
    plan.orphans = (state.len() - matched.min(state.len())) as u64;
    if !plan.repeated.is_empty() {
        let mut first: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
        for item in Records::open(path, format).map_err(read_error)? {
            let Item::Valid(record) = item.map_err(read_error)? else {
                continue;
            };
            if !plan.repeated.contains(&record.fingerprint) {
                continue;
            }
            match first.get(&record.fingerprint) {
                Some(&line) => {
                    if plan.duplicates.len() < MAX_SHOWN_ERRORS {
                        plan.duplicates.push((record.line, line));
                    }
                }
                None => {
                    first.insert(record.fingerprint, record.line);
                }
            }
        }
    }
    Ok(plan)
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
    fn validation_counts_lines_errors_duplicates_and_journaled_states() {
        let dir = crate::import::test_dir("plan");
        let file = dir.join("notes.csv");
        std::fs::write(
            &file,
            format!("call_id,content\n{ID},a\n{ID},b\nbad,c\n{ID},d\n{ID},a\n"),
        )
        .unwrap();
        let plan = validate(&file, Format::Csv, &JournalState::default()).unwrap();
        assert_eq!((plan.lines, plan.invalid, plan.done), (4, 1, 0));
        assert_eq!(plan.errors[0].line, 4);
        assert_eq!(plan.duplicates, [(6, 2)]);
        let fp = |content: &str| crate::import::input::fingerprint(ID, content, None);
        assert!(plan.repeated.contains(&fp("a")));

        // A journal saying the first "a" is done, "b" failed, and an old line "z" was added.
        let destination = Destination {
            base_url: "http://127.0.0.1:1/api/v1".into(),
            key_hash: crate::import::journal::key_hash("k"),
        };
        let journal = dir.join("notes.csv.journal");
        let (writer, _) = JournalWriter::open(&journal, &destination, false).unwrap();
        writer
            .write(&Entry::run("notes.csv", "csv", "c", &destination))
            .unwrap();
        writer
            .write(&Entry::line(Event::Done, 2, (fp("a"), 0)))
            .unwrap();
        writer
            .write(&Entry::line(Event::Failed, 3, (fp("b"), 0)))
            .unwrap();
        writer
            .write(&Entry::line(Event::Done, 9, (fp("z"), 0)))
            .unwrap();
        drop(writer);
        let state = JournalState::load(&journal, &destination).unwrap();
        let plan = validate(&file, Format::Csv, &state).unwrap();
        assert_eq!(
            (plan.done, plan.failed_before, plan.unknown_before),
            (1, 1, 0)
        );
        assert_eq!(plan.orphans, 1);
    }

    #[test]
    fn the_content_hash_follows_the_bytes_not_the_name() {
        let dir = crate::import::test_dir("hash");
        std::fs::write(dir.join("a.csv"), "x").unwrap();
        std::fs::write(dir.join("b.csv"), "x").unwrap();
        std::fs::write(dir.join("c.csv"), "y").unwrap();
        let hash = |name: &str| content_hash(&dir.join(name)).unwrap();
        assert_eq!(hash("a.csv"), hash("b.csv"));
        assert_ne!(hash("a.csv"), hash("c.csv"));
        assert_eq!(hash("a.csv").len(), 32);
    }
}
