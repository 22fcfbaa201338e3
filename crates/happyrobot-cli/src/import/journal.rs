//! The import journal: JSON lines appended as the import goes, so that a re-run knows what was
//! done, what certainly failed, and what may or may not have been applied.
//!
//! Each line is one entry. `run` opens every run and records where the notes went (the API's
//! base URL and a keyed hash of the API key, never the key) and a hash of the file's content.
//! Then, per line of the input file, `start` is written (and flushed to the OS) right before its
//! request is sent, with the note ID the client chose for it, and one of `done`, `failed` or
//! `unknown` after its outcome is known. Reconciliation (looking a note up on its call) writes
//! `done`, a new `start` (the line sent again, with the same note ID) or `unknown`; `--undo`
//! writes `undone` for each note it deleted or found gone. Entries carry the input line number and a fingerprint of
//! the line (call ID, text, flag), never the note's text.
//!
//! A line is known by its fingerprint (and, for identical lines sent on purpose, by which
//! occurrence it is), not by its line number: an edited file resumes, its fixed lines are sent
//! and its unchanged lines are not. What a journal says counts only for the base URL it was
//! written against: a trial run against a mock or a staging server never marks a line done for
//! the real API.
//!
//! The last entry of a line decides its state. A `start` with nothing after it means the run
//! stopped (was killed) while the request was in flight: its outcome is unknown.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The journal format's version, written in every `run` entry. Version 1 did not record the
/// destination.
pub(crate) const VERSION: u32 = 2;

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
    /// `--undo` deleted the note (or found it already gone): the line counts as not added.
    Undone,
}

/// Where the notes of a run went: the API's base URL and a keyed hash of the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    /// The base URL, normalised (lower-case scheme and host, no trailing slash).
    pub(crate) base_url: String,
    /// [`key_hash`] of the API key.
    pub(crate) key_hash: String,
}

/// The domain-separation context of the API key's hash. Fixed, so that the same key always
/// gives the same hash, and specific, so that the hash is useless for anything else.
const KEY_CONTEXT: &str = "happyrobot-cli 2026-11 import journal: API key fingerprint v1";

/// A keyed BLAKE3 hash of the API key (128 bits, hex): tells two keys apart without recording
/// either.
pub(crate) fn key_hash(api_key: &str) -> String {
    let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
    hasher.update(api_key.as_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// The base URL as the journal records and compares it.
pub(crate) fn normalize_url(base_url: &str) -> String {
    let trimmed = base_url.trim();
    let text = match url::Url::parse(trimmed) {
        Ok(url) => url.to_string(),
        Err(_) => trimmed.to_string(),
    };
    text.trim_end_matches('/').to_string()
}

/// What identifies one line of a file to the journal: its fingerprint, and which occurrence of
/// that fingerprint it is (0 unless identical lines are sent with `--allow-duplicates`).
pub(crate) type LineKey = (u64, u32);

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) event: Event,
    /// The input line, for every event but `run` (for people reading the journal; lines are
    /// matched by fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) line: Option<u64>,
    /// The fingerprint of the input line, 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fp: Option<String>,
    /// Which occurrence of this fingerprint in the file (absent for the first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) n: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) call_id: Option<String>,
    /// On `start`: the ID the client gave the note; on `done`: the note's ID in the answer.
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
    /// On `run`: the input file, its format, the journal version, the content hash and the
    /// destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,
    /// The keyed hash of the API key (see [`key_hash`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub(crate) at: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Entry {
    fn empty(event: Event) -> Self {
        Self {
            event,
            line: None,
            fp: None,
            n: 0,
            call_id: None,
            note_id: None,
            status: None,
            exit: None,
            reason: None,
            file: None,
            format: None,
            version: None,
            content: None,
            base_url: None,
            key: None,
            at: now(),
        }
    }

    /// An entry about one input line.
    pub(crate) fn line(event: Event, line: u64, key: LineKey) -> Self {
        Self {
            line: Some(line),
            fp: Some(format_fingerprint(key.0)),
            n: key.1,
            ..Self::empty(event)
        }
    }

    /// The entry that opens a run.
    pub(crate) fn run(file: &str, format: &str, content: &str, destination: &Destination) -> Self {
        Self {
            file: Some(file.to_string()),
            format: Some(format.to_string()),
            version: Some(VERSION),
            content: Some(content.to_string()),
            base_url: Some(destination.base_url.clone()),
            key: Some(destination.key_hash.clone()),
            ..Self::empty(Event::Run)
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
    /// Maybe added: looked up on its call (reconciled), or sent again only with
    /// `--retry-unknown`. `interrupted` when the run stopped while the request was in flight (a
    /// `start` with no outcome).
    Unknown { interrupted: bool },
    /// Added, then deleted by `--undo`: not on the API any more, so an import sends it again.
    Undone,
}

/// Which note a line was sent as: what reconciliation looks up and `--undo` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoteRef {
    /// The input line of the last entry that named it.
    pub(crate) line: u64,
    pub(crate) call_id: String,
    /// The ID the client gave the note (on `start`), or the one the answer showed (on `done`).
    pub(crate) note_id: Option<String>,
}

/// Why a journal cannot be used.
#[derive(Debug)]
pub(crate) enum JournalError {
    Io(PathBuf, io::Error),
    /// Another import holds the journal's lock.
    Locked(PathBuf),
    /// Written by a version that did not record the destination, or by a newer one.
    Version {
        path: PathBuf,
        version: u32,
    },
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(path, e) => write!(f, "cannot use the journal {}: {e}", path.display()),
            Self::Locked(path) => write!(
                f,
                "another import is running with the journal {}; nothing was sent. Wait for it to \
                 finish (or stop it with Ctrl-C), then run this command again: it continues \
                 where that one stopped",
                path.display()
            ),
            Self::Version { path, version } if *version > VERSION => write!(
                f,
                "the journal {} was written by a newer version of happyrobot (journal version \
                 {version}); nothing was sent. Run the import with that version",
                path.display()
            ),
            Self::Version { path, version } => write!(
                f,
                "the journal {} was written by an earlier version of happyrobot (journal version \
                 {version}), which did not record which API it was for; nothing was sent. Finish \
                 the import with that version, or check on the calls which notes exist and \
                 import only the missing ones",
                path.display()
            ),
        }
    }
}

/// What a journal says about one destination, one small entry per line it mentions.
#[derive(Debug, Default)]
pub(crate) struct JournalState {
    lines: HashMap<LineKey, LineState>,
    /// The note of every line whose state is unknown, and with `keep_done_notes` of every line
    /// that is done: kept only for those, so that memory follows the lines in doubt (an import)
    /// or the lines added (an undo), not the whole journal.
    notes: HashMap<LineKey, NoteRef>,
    keep_done_notes: bool,
    /// The content hashes of the files imported into this destination.
    pub(crate) contents: BTreeSet<String>,
    /// The other base URLs the journal records, whose entries are ignored.
    pub(crate) other_destinations: BTreeSet<String>,
    /// Whether earlier runs to this base URL used another API key.
    pub(crate) other_key: bool,
    /// Journal lines that could not be read and were skipped (their numbers).
    pub(crate) damaged: Vec<u64>,
    /// The length of the complete entries, when the last one was cut short by a kill mid-write.
    truncate_to: Option<u64>,
    /// Whether the last entry is complete but lacks its newline.
    needs_newline: bool,
}

/// Takes `"name":"<hex>"` out of a damaged entry, if it is there whole.
fn salvage_hex(text: &str, name: &str) -> Option<u64> {
    let start = text.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let hex = text.get(start..start + 16)?;
    u64::from_str_radix(hex, 16).ok()
}

impl JournalState {
    /// Reads a journal for `destination`; an absent file is an empty journal.
    pub(crate) fn load(path: &Path, destination: &Destination) -> Result<Self, JournalError> {
        Self::load_keeping(path, destination, false)
    }

    /// [`JournalState::load`], keeping the notes of done lines too when `keep_done_notes` (for
    /// `--undo`).
    pub(crate) fn load_keeping(
        path: &Path,
        destination: &Destination,
        keep_done_notes: bool,
    ) -> Result<Self, JournalError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(JournalError::Io(path.to_path_buf(), e)),
        };
        if !is_regular(&file) {
            return Ok(Self::default());
        }
        Self::read(BufReader::new(file), path, destination, keep_done_notes)
    }

    fn read(
        mut reader: impl BufRead,
        path: &Path,
        destination: &Destination,
        keep_done_notes: bool,
    ) -> Result<Self, JournalError> {
        let mut state = Self {
            keep_done_notes,
            ..Self::default()
        };
        let mut buffer = Vec::new();
        let mut offset = 0u64;
        let mut number = 0u64;
        // Whether the entries being read belong to `destination` (set by each `run`).
        let mut ours = false;
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
            let text = String::from_utf8_lossy(&buffer);
            let parsed = if text.trim().is_empty() {
                Ok(None)
            } else {
                serde_json::from_str::<Entry>(&text).map(Some)
            };
            match parsed {
                Ok(Some(entry)) if entry.event == Event::Run => {
                    let version = entry.version.unwrap_or(1);
                    if version != VERSION {
                        return Err(JournalError::Version {
                            path: path.to_path_buf(),
                            version,
                        });
                    }
                    let url = entry.base_url.as_deref().map(normalize_url);
                    ours = url.as_deref() == Some(destination.base_url.as_str());
                    if ours {
                        if entry.key.as_deref() != Some(destination.key_hash.as_str()) {
                            state.other_key = true;
                        }
                        state.contents.extend(entry.content);
                    } else if let Some(url) = url {
                        state.other_destinations.insert(url);
                    }
                    state.needs_newline = !complete;
                }
                Ok(Some(entry)) => {
                    if ours {
                        state.apply(&entry);
                    }
                    state.needs_newline = !complete;
                }
                Ok(None) => state.needs_newline = !complete,
                // A cut-off last entry is what a kill in the middle of a write leaves. Its request
                // was never sent (entries are written before sending), so it is dropped.
                Err(_) if !complete => {
                    state.truncate_to = Some(offset);
                    return Ok(state);
                }
                // Damage in the middle (a disk error, an edit): skipped and reported. If it names
                // a line, that line may have been in flight, so it counts as unknown unless a
                // later entry says otherwise: a damaged entry never makes a line be sent again.
                Err(_) => {
                    state.damaged.push(number);
                    if ours && let Some(fp) = salvage_hex(&text, "fp") {
                        let key = (fp, 0);
                        if !matches!(state.lines.get(&key), Some(LineState::Done)) {
                            state
                                .lines
                                .insert(key, LineState::Unknown { interrupted: true });
                            // Which note it was is not known for sure any more: never looked up.
                            state.notes.remove(&key);
                        }
                    }
                }
            }
            offset += read as u64;
        }
    }

    fn apply(&mut self, entry: &Entry) {
        let new_state = match entry.event {
            Event::Run => return,
            Event::Start => LineState::Unknown { interrupted: true },
            Event::Done => LineState::Done,
            Event::Failed => LineState::Failed,
            Event::Unknown => LineState::Unknown { interrupted: false },
            Event::Undone => LineState::Undone,
        };
        let Some(fp) = entry
            .fp
            .as_deref()
            .and_then(|fp| u64::from_str_radix(fp, 16).ok())
        else {
            return;
        };
        let key = (fp, entry.n);
        self.lines.insert(key, new_state);
        let keep = match new_state {
            LineState::Unknown { .. } => true,
            LineState::Done => self.keep_done_notes,
            LineState::Failed | LineState::Undone => false,
        };
        if !keep {
            self.notes.remove(&key);
            return;
        }
        let line = entry.line.unwrap_or_default();
        match self.notes.get_mut(&key) {
            // A later entry names the note more precisely (the ID in the answer); a `start`
            // always begins a new attempt, with the ID it is sent with.
            Some(note) if entry.event != Event::Start => {
                note.line = line;
                if let Some(id) = &entry.note_id {
                    note.note_id = Some(id.clone());
                }
                if let Some(call) = &entry.call_id {
                    note.call_id.clone_from(call);
                }
            }
            _ => {
                if let Some(call_id) = entry.call_id.clone() {
                    self.notes.insert(
                        key,
                        NoteRef {
                            line,
                            call_id,
                            note_id: entry.note_id.clone(),
                        },
                    );
                } else {
                    self.notes.remove(&key);
                }
            }
        }
    }

    /// The note a line was sent as, for a line whose outcome is unknown (and, loaded for an
    /// undo, for a line that is done).
    pub(crate) fn note(&self, key: LineKey) -> Option<&NoteRef> {
        self.notes.get(&key)
    }

    /// Every line the journal mentions for this destination, with its state, in no order.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (LineKey, LineState)> + '_ {
        self.lines.iter().map(|(key, state)| (*key, *state))
    }

    /// The state of a line, if the journal mentions it for this destination.
    pub(crate) fn get(&self, key: LineKey) -> Option<LineState> {
        self.lines.get(&key).copied()
    }

    /// How many lines the journal mentions for this destination.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }
}

/// Appends entries to the journal, each written whole and flushed to the OS at once. It holds
/// the journal's lock until dropped, so that no other import uses it meanwhile.
#[derive(Debug)]
pub(crate) struct JournalWriter {
    file: Mutex<File>,
    fsync: bool,
}

impl JournalWriter {
    /// Opens (or creates, readable by its owner only) the journal, takes its lock, and reads it
    /// for `destination`, first repairing the damage a kill in the middle of a write can leave.
    /// Refused at once if another import holds the lock.
    pub(crate) fn open(
        path: &Path,
        destination: &Destination,
        fsync: bool,
    ) -> Result<(Self, JournalState), JournalError> {
        Self::open_keeping(path, destination, fsync, false)
    }

    /// [`JournalWriter::open`], keeping the notes of done lines too when `keep_done_notes` (for
    /// `--undo`).
    pub(crate) fn open_keeping(
        path: &Path,
        destination: &Destination,
        fsync: bool,
        keep_done_notes: bool,
    ) -> Result<(Self, JournalState), JournalError> {
        let io_error = |e| JournalError::Io(path.to_path_buf(), e);
        let existed = path.exists();
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io_error)?;
        match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => return Err(JournalError::Locked(path.to_path_buf())),
            Err(e) => return Err(io_error(e)),
        }
        if !existed {
            // A new journal's directory entry is made durable once, so that a crash right after
            // cannot lose the whole journal.
            file.sync_all().map_err(io_error)?;
            sync_parent(path).map_err(io_error)?;
        }
        // A device (such as /dev/full in a test of a full disk) has nothing to read back.
        let state = if is_regular(&file) {
            file.rewind().map_err(io_error)?;
            JournalState::read(BufReader::new(&file), path, destination, keep_done_notes)?
        } else {
            JournalState::default()
        };
        if let Some(length) = state.truncate_to {
            file.set_len(length).map_err(io_error)?;
        } else if state.needs_newline {
            file.write_all(b"\n").map_err(io_error)?;
        }
        Ok((
            Self {
                file: Mutex::new(file),
                fsync,
            },
            state,
        ))
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

    /// Syncs everything written to disk (at the end of a run, whatever `fsync` says).
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync_data()
    }
}

fn is_regular(file: &File) -> bool {
    file.metadata().is_ok_and(|m| m.is_file())
}

/// Syncs the directory holding `path`, so that a file just created there survives a crash.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        // Some filesystems cannot sync a directory; that only weakens the guarantee.
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        crate::import::test_dir("journal").join(name)
    }

    fn here() -> Destination {
        Destination {
            base_url: "http://127.0.0.1:1/api/v1".into(),
            key_hash: key_hash("k"),
        }
    }

    fn open(path: &Path) -> (JournalWriter, JournalState) {
        JournalWriter::open(path, &here(), false).unwrap()
    }

    fn line(event: Event, line: u64, fp: u64) -> Entry {
        Entry::line(event, line, (fp, 0))
    }

    fn run_entry(destination: &Destination) -> Entry {
        Entry::run("notes.csv", "csv", "c0ffee", destination)
    }

    #[test]
    fn the_last_entry_of_a_line_decides_and_a_lone_start_is_unknown() {
        let path = temp_path("j.journal");
        let (writer, _) = open(&path);
        writer.write(&run_entry(&here())).unwrap();
        for (event, n) in [
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
            writer.write(&line(event, n, n * 100)).unwrap();
        }
        drop(writer);
        let state = JournalState::load(&path, &here()).unwrap();
        assert_eq!(state.len(), 5);
        assert_eq!(state.get((200, 0)), Some(LineState::Done));
        assert_eq!(state.get((300, 0)), Some(LineState::Failed));
        assert_eq!(
            state.get((400, 0)),
            Some(LineState::Unknown { interrupted: false })
        );
        assert_eq!(
            state.get((500, 0)),
            Some(LineState::Unknown { interrupted: true })
        );
        assert_eq!(state.get((600, 0)), Some(LineState::Done));
        assert_eq!(state.get((700, 0)), None);
        assert_eq!(state.get((200, 1)), None, "another occurrence");
        assert!(state.contents.contains("c0ffee"));
    }

    fn with_note(event: Event, n: u64, fp: u64, note_id: Option<&str>) -> Entry {
        Entry {
            call_id: Some("65f1c0ffee0123456789abcd".into()),
            note_id: note_id.map(String::from),
            ..line(event, n, fp)
        }
    }

    #[test]
    fn the_note_of_a_line_in_doubt_is_kept_and_of_a_done_line_only_for_an_undo() {
        let path = temp_path("notes.journal");
        let (writer, _) = open(&path);
        writer.write(&run_entry(&here())).unwrap();
        for entry in [
            with_note(Event::Start, 2, 1, Some("aaaaaaaaaaaaaaaaaaaaaaaa")),
            with_note(Event::Unknown, 2, 1, Some("aaaaaaaaaaaaaaaaaaaaaaaa")),
            with_note(Event::Start, 3, 2, Some("bbbbbbbbbbbbbbbbbbbbbbbb")),
            // The answer showed another ID (a server that assigns its own): that one counts.
            with_note(Event::Done, 3, 2, Some("cccccccccccccccccccccccc")),
            with_note(Event::Start, 4, 3, Some("dddddddddddddddddddddddd")),
            with_note(Event::Done, 4, 3, None),
            with_note(Event::Undone, 4, 3, Some("dddddddddddddddddddddddd")),
            with_note(Event::Start, 5, 4, Some("eeeeeeeeeeeeeeeeeeeeeeee")),
            with_note(Event::Failed, 5, 4, None),
        ] {
            writer.write(&entry).unwrap();
        }
        drop(writer);
        let import = JournalState::load(&path, &here()).unwrap();
        assert_eq!(
            import.note((1, 0)).unwrap().note_id.as_deref(),
            Some("aaaaaaaaaaaaaaaaaaaaaaaa")
        );
        assert_eq!(import.note((2, 0)), None, "done: not kept for an import");
        let undo = JournalState::load_keeping(&path, &here(), true).unwrap();
        let done = undo.note((2, 0)).unwrap();
        assert_eq!(done.note_id.as_deref(), Some("cccccccccccccccccccccccc"));
        assert_eq!(done.call_id, "65f1c0ffee0123456789abcd");
        assert_eq!(done.line, 3);
        assert_eq!(undo.get((3, 0)), Some(LineState::Undone));
        assert_eq!(undo.note((3, 0)), None);
        assert_eq!(
            undo.note((4, 0)),
            None,
            "failed: nothing to look up or delete"
        );
    }

    #[test]
    fn entries_for_another_destination_do_not_count() {
        let path = temp_path("dest.journal");
        let mock = Destination {
            base_url: "http://127.0.0.1:9/api/v1".into(),
            key_hash: key_hash("k"),
        };
        let (writer, _) = JournalWriter::open(&path, &mock, false).unwrap();
        writer.write(&run_entry(&mock)).unwrap();
        writer.write(&line(Event::Done, 2, 1)).unwrap();
        let rotated = Destination {
            key_hash: key_hash("other key"),
            ..here()
        };
        writer.write(&run_entry(&rotated)).unwrap();
        writer.write(&line(Event::Done, 3, 2)).unwrap();
        drop(writer);
        let state = JournalState::load(&path, &here()).unwrap();
        assert_eq!(state.get((1, 0)), None, "done on the mock only");
        assert_eq!(state.get((2, 0)), Some(LineState::Done));
        assert!(state.other_key);
        assert!(state.other_destinations.contains(&mock.base_url));
        let state = JournalState::load(&path, &mock).unwrap();
        assert_eq!(state.get((1, 0)), Some(LineState::Done));
        assert_eq!(state.get((2, 0)), None);
    }

    #[test]
    fn urls_are_compared_normalised_and_keys_only_by_hash() {
        assert_eq!(
            normalize_url(" HTTPS://App.HappyRobot.ai/api/v1/ "),
            "https://app.happyrobot.ai/api/v1"
        );
        let hash = key_hash("hr_secret_key");
        assert_eq!(hash.len(), 32);
        assert!(!hash.contains("secret"));
        assert_eq!(hash, key_hash("hr_secret_key"));
        assert_ne!(hash, key_hash("hr_secret_kez"));
    }

    #[test]
    fn a_missing_journal_is_empty() {
        let state = JournalState::load(&temp_path("absent.journal"), &here()).unwrap();
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn an_entry_cut_by_a_kill_is_dropped_and_the_file_repaired() {
        let path = temp_path("cut.journal");
        let run = serde_json::to_string(&run_entry(&here())).unwrap();
        let done = serde_json::to_string(&line(Event::Done, 2, 7)).unwrap();
        std::fs::write(&path, format!("{run}\n{done}\n{{\"event\":\"start\",\"li")).unwrap();
        let (writer, state) = open(&path);
        assert_eq!(state.get((7, 0)), Some(LineState::Done));
        assert_eq!(state.len(), 1);
        writer.write(&line(Event::Start, 3, 9)).unwrap();
        drop(writer);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        let state = JournalState::load(&path, &here()).unwrap();
        assert_eq!(
            state.get((9, 0)),
            Some(LineState::Unknown { interrupted: true })
        );
    }

    #[test]
    fn a_complete_entry_without_its_newline_is_kept() {
        let path = temp_path("nonl.journal");
        let run = serde_json::to_string(&run_entry(&here())).unwrap();
        let start = serde_json::to_string(&line(Event::Start, 4, 1)).unwrap();
        std::fs::write(&path, format!("{run}\n{start}")).unwrap();
        let (writer, state) = JournalWriter::open(&path, &here(), true).unwrap();
        assert_eq!(
            state.get((1, 0)),
            Some(LineState::Unknown { interrupted: true })
        );
        writer.write(&line(Event::Unknown, 4, 1)).unwrap();
        drop(writer);
        let state = JournalState::load(&path, &here()).unwrap();
        assert_eq!(
            state.get((1, 0)),
            Some(LineState::Unknown { interrupted: false })
        );
    }

    #[test]
    fn damage_in_the_middle_is_reported_and_skipped_never_resent() {
        let path = temp_path("bad.journal");
        let run = serde_json::to_string(&run_entry(&here())).unwrap();
        let done = serde_json::to_string(&line(Event::Done, 2, 7)).unwrap();
        let start = serde_json::to_string(&line(Event::Start, 3, 8)).unwrap();
        // Line 3 is garbage, line 4 a start cut in its middle but followed by more entries.
        std::fs::write(
            &path,
            format!(
                "{run}\n{done}\nnot json\n{}\n{done}\n",
                &start[..start.len() - 8]
            ),
        )
        .unwrap();
        let state = JournalState::load(&path, &here()).unwrap();
        assert_eq!(state.damaged, [3, 4]);
        assert_eq!(state.get((7, 0)), Some(LineState::Done));
        assert_eq!(
            state.get((8, 0)),
            Some(LineState::Unknown { interrupted: true }),
            "the damaged start still protects its line"
        );
    }

    #[test]
    fn old_and_newer_journals_are_refused_with_what_to_do() {
        let path = temp_path("v1.journal");
        std::fs::write(
            &path,
            "{\"event\":\"run\",\"file\":\"a.csv\",\"version\":1,\"at\":0}\n",
        )
        .unwrap();
        let error = JournalState::load(&path, &here()).unwrap_err().to_string();
        assert!(error.contains("earlier version"), "{error}");
        assert!(error.contains("nothing was sent"), "{error}");
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
        let path = temp_path("locked.journal");
        let (first, _) = open(&path);
        let error = JournalWriter::open(&path, &here(), false).unwrap_err();
        assert!(matches!(error, JournalError::Locked(_)), "{error}");
        assert!(error.to_string().contains("another import"));
        drop(first);
        assert!(JournalWriter::open(&path, &here(), false).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_new_journal_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = temp_path("mode.journal");
        drop(open(&path));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn entries_never_hold_the_note_text() {
        let entry = line(Event::Start, 2, 0xabc);
        let json = serde_json::to_string(&entry).unwrap();
        assert!(
            json.starts_with("{\"event\":\"start\",\"line\":2,\"fp\":\"0000000000000abc\""),
            "{json}"
        );
    }
}
