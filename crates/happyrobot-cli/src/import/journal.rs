//! The import journal: JSON lines appended as the import goes, so that a re-run knows what was
//! done, what certainly failed, and what may or may not have been applied.
//!
//! Each line is one entry. `run` opens every run; then, per line of the input file, `start` is
//! written (and flushed to the OS) before its request is sent, and one of `done`, `failed` or
//! `unknown` after its outcome is known. Entries carry the input line number and a fingerprint of
//! the line (call ID, text, flag), never the note's text.
//!
//! The last entry of a line decides its state. A `start` with nothing after it means the run
//! stopped (was killed) while the request was in flight: its outcome is unknown.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The journal format's version, written in every `run` entry.
pub(crate) const VERSION: u32 = 1;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Event {
    /// A run began.
    Run,
    /// The line is about to be sent.
    Start,
    /// The note was added.
    Done,
    /// The note was certainly not added.
    Failed,
    /// The note may or may not have been added.
    Unknown,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) event: Event,
    /// The input line, for every event but `run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) line: Option<u64>,
    /// The fingerprint of the input line, 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) call_id: Option<String>,
    /// The note's id, on `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note_id: Option<String>,
    /// The HTTP status of the failure, when there was an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// The exit code this failure maps to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit: Option<u8>,
    /// Why the line failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// On `run`: the input file, its format, and the journal version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u32>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub(crate) at: u64,
}

impl Entry {
    /// An entry about one input line.
    pub(crate) fn line(event: Event, line: u64, fingerprint: u64) -> Self {
        Self {
            event,
            line: Some(line),
            fp: Some(format_fingerprint(fingerprint)),
            call_id: None,
            note_id: None,
            status: None,
            exit: None,
            reason: None,
            file: None,
            format: None,
            version: None,
            at: now(),
        }
    }

    /// The entry that opens a run.
    pub(crate) fn run(file: &Path, format: &str) -> Self {
        Self {
            event: Event::Run,
            line: None,
            fp: None,
            call_id: None,
            note_id: None,
            status: None,
            exit: None,
            reason: None,
            file: Some(file.display().to_string()),
            format: Some(format.to_string()),
            version: Some(VERSION),
            at: now(),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn format_fingerprint(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

/// Where a line stands according to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineState {
    /// Added: never sent again.
    Done,
    /// Certainly not added: sent again on a re-run.
    Failed,
    /// Maybe added: sent again only with `--retry-unknown`. `interrupted` when the run stopped
    /// while the request was in flight (a `start` with no outcome).
    Unknown { interrupted: bool },
}

/// Why a journal cannot be used.
#[derive(Debug)]
pub(crate) enum JournalError {
    Io(PathBuf, io::Error),
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(path, e) => write!(f, "cannot read the journal {}: {e}", path.display()),
            Self::Corrupt { path, line, reason } => write!(
                f,
                "the journal {} is damaged at its line {line} ({reason}); it is not a journal of \
                 this tool, or was edited: move it away and pass --journal with a new path \
                 (lines it records as done would then be sent again)",
                path.display()
            ),
        }
    }
}

/// What a journal says, one small entry per input line it mentions.
#[derive(Debug, Default)]
pub(crate) struct JournalState {
    lines: HashMap<u64, (u64, LineState)>,
    /// The length of the complete entries, when the last one was cut short by a kill mid-write.
    truncate_to: Option<u64>,
    /// Whether the last entry is complete but lacks its newline.
    needs_newline: bool,
}

impl JournalState {
    /// Reads a journal; an absent file is an empty journal.
    pub(crate) fn load(path: &Path) -> Result<Self, JournalError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(JournalError::Io(path.to_path_buf(), e)),
        };
        Self::read(BufReader::new(file), path)
    }

    fn read(mut reader: impl BufRead, path: &Path) -> Result<Self, JournalError> {
        let mut state = Self::default();
        let mut buffer = Vec::new();
        let mut offset = 0u64;
        let mut number = 0u64;
        loop {
            buffer.clear();
            let read = reader
                .read_until(b'\n', &mut buffer)
                .map_err(|e| JournalError::Io(path.to_path_buf(), e))?;
            if read == 0 {
                return Ok(state);
            }
            number += 1;
            let complete = buffer.last() == Some(&b'\n');
            let parsed = std::str::from_utf8(&buffer)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    if text.trim().is_empty() {
                        Ok(None)
                    } else {
                        serde_json::from_str::<Entry>(text)
                            .map(Some)
                            .map_err(|e| e.to_string())
                    }
                });
            match parsed {
                Ok(entry) => {
                    if let Some(entry) = entry {
                        state
                            .apply(&entry)
                            .map_err(|reason| JournalError::Corrupt {
                                path: path.to_path_buf(),
                                line: number,
                                reason,
                            })?;
                    }
                    state.needs_newline = !complete;
                }
                // A cut-off last entry is what a kill in the middle of a write leaves. Its request
                // was never sent (entries are written before sending), so it is dropped.
                Err(_) if !complete => {
                    state.truncate_to = Some(offset);
                    return Ok(state);
                }
                Err(reason) => {
                    return Err(JournalError::Corrupt {
                        path: path.to_path_buf(),
                        line: number,
                        reason,
                    });
                }
            }
            offset += read as u64;
        }
    }

    fn apply(&mut self, entry: &Entry) -> Result<(), String> {
        let new_state = match entry.event {
            Event::Run => {
                return match entry.version {
                    Some(version) if version > VERSION => Err(format!(
                        "written by a newer version of this tool (journal version {version})"
                    )),
                    _ => Ok(()),
                };
            }
            Event::Start => LineState::Unknown { interrupted: true },
            Event::Done => LineState::Done,
            Event::Failed => LineState::Failed,
            Event::Unknown => LineState::Unknown { interrupted: false },
        };
        let line = entry.line.ok_or("an entry without a line number")?;
        let fp = entry
            .fp
            .as_deref()
            .and_then(|fp| u64::from_str_radix(fp, 16).ok())
            .ok_or("an entry without a valid fingerprint")?;
        match self.lines.get(&line) {
            Some((old, _)) if *old != fp => Err(format!(
                "input line {line} appears with two different fingerprints"
            )),
            _ => {
                self.lines.insert(line, (fp, new_state));
                Ok(())
            }
        }
    }

    /// The fingerprint and state of an input line, if the journal mentions it.
    pub(crate) fn get(&self, line: u64) -> Option<(u64, LineState)> {
        self.lines.get(&line).copied()
    }

    /// How many input lines the journal mentions.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }
}

/// Appends entries to the journal, each written whole and flushed to the OS at once.
#[derive(Debug)]
pub(crate) struct JournalWriter {
    file: Mutex<File>,
    fsync: bool,
}

impl JournalWriter {
    /// Opens (or creates) the journal for appending, first repairing the damage a kill in the
    /// middle of a write can leave, as `state` found it.
    pub(crate) fn open(path: &Path, state: &JournalState, fsync: bool) -> io::Result<Self> {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        if let Some(length) = state.truncate_to {
            file.set_len(length)?;
        } else if state.needs_newline {
            file.write_all(b"\n")?;
        }
        Ok(Self {
            file: Mutex::new(file),
            fsync,
        })
    }

    /// Writes one entry. When this returns `Ok`, the entry survives the process being killed
    /// (and, with fsync, the machine losing power).
    pub(crate) fn write(&self, entry: &Entry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write of the whole line: a `File` has no user-space buffer, so the line is in the
        // kernel once this returns, which is what surviving SIGKILL needs.
        file.write_all(&line)?;
        file.flush()?;
        if self.fsync {
            file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "happyrobot-cli-journal-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn the_last_entry_of_a_line_decides_and_a_lone_start_is_unknown() {
        let path = temp_path("j.journal");
        let writer = JournalWriter::open(&path, &JournalState::default(), false).unwrap();
        writer
            .write(&Entry::run(Path::new("notes.csv"), "csv"))
            .unwrap();
        for (event, line) in [
            (Event::Start, 2),
            (Event::Done, 2),
            (Event::Start, 3),
            (Event::Failed, 3),
            (Event::Start, 4),
            (Event::Unknown, 4),
            (Event::Start, 5),
            (Event::Start, 6),
            (Event::Failed, 6),
            (Event::Start, 6),
            (Event::Done, 6),
        ] {
            writer.write(&Entry::line(event, line, line * 100)).unwrap();
        }
        drop(writer);
        let state = JournalState::load(&path).unwrap();
        assert_eq!(state.len(), 5);
        assert_eq!(state.get(2), Some((200, LineState::Done)));
        assert_eq!(state.get(3), Some((300, LineState::Failed)));
        assert_eq!(
            state.get(4),
            Some((400, LineState::Unknown { interrupted: false }))
        );
        assert_eq!(
            state.get(5),
            Some((500, LineState::Unknown { interrupted: true }))
        );
        assert_eq!(state.get(6), Some((600, LineState::Done)));
        assert_eq!(state.get(7), None);
    }

    #[test]
    fn a_missing_journal_is_empty() {
        let state = JournalState::load(&temp_path("absent.journal")).unwrap();
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn an_entry_cut_by_a_kill_is_dropped_and_the_file_repaired() {
        let path = temp_path("cut.journal");
        let done = serde_json::to_string(&Entry::line(Event::Done, 2, 7)).unwrap();
        std::fs::write(&path, format!("{done}\n{{\"event\":\"start\",\"li")).unwrap();
        let state = JournalState::load(&path).unwrap();
        assert_eq!(state.get(2), Some((7, LineState::Done)));
        assert_eq!(state.len(), 1);
        let writer = JournalWriter::open(&path, &state, false).unwrap();
        writer.write(&Entry::line(Event::Start, 3, 9)).unwrap();
        drop(writer);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let state = JournalState::load(&path).unwrap();
        assert_eq!(
            state.get(3),
            Some((9, LineState::Unknown { interrupted: true }))
        );
    }

    #[test]
    fn a_complete_entry_without_its_newline_is_kept() {
        let path = temp_path("nonl.journal");
        let start = serde_json::to_string(&Entry::line(Event::Start, 4, 1)).unwrap();
        std::fs::write(&path, &start).unwrap();
        let state = JournalState::load(&path).unwrap();
        assert_eq!(
            state.get(4),
            Some((1, LineState::Unknown { interrupted: true }))
        );
        let writer = JournalWriter::open(&path, &state, true).unwrap();
        writer.write(&Entry::line(Event::Unknown, 4, 1)).unwrap();
        drop(writer);
        let state = JournalState::load(&path).unwrap();
        assert_eq!(
            state.get(4),
            Some((1, LineState::Unknown { interrupted: false }))
        );
    }

    #[test]
    fn damage_in_the_middle_is_refused_with_its_line() {
        let path = temp_path("bad.journal");
        let done = serde_json::to_string(&Entry::line(Event::Done, 2, 7)).unwrap();
        std::fs::write(&path, format!("{done}\nnot json\n{done}\n")).unwrap();
        let error = JournalState::load(&path).unwrap_err().to_string();
        assert!(error.contains("damaged at its line 2"), "{error}");
        std::fs::write(
            &path,
            format!(
                "{done}\n{}\n",
                serde_json::to_string(&Entry::line(Event::Done, 2, 8)).unwrap()
            ),
        )
        .unwrap();
        let error = JournalState::load(&path).unwrap_err().to_string();
        assert!(error.contains("two different fingerprints"), "{error}");
    }

    #[test]
    fn entries_never_hold_the_note_text() {
        let entry = Entry::line(Event::Start, 2, 0xabc);
        let json = serde_json::to_string(&entry).unwrap();
        assert!(
            json.starts_with("{\"event\":\"start\",\"line\":2,\"fp\":\"0000000000000abc\""),
            "{json}"
        );
    }
}
