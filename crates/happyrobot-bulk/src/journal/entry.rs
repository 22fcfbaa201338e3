//! One journal entry: its fields, how it is written (JSON with a checksum of its own), and how a
//! line of the file is read back: a whole entry, an entry of the format before (version 2, no
//! checksum), or damage, of which whatever can still be read is salvaged.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::record::LineKey;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// An undo deleted the note (or found it already gone): the line counts as not added.
    Undone,
    /// A copy of the line's note (a late first attempt) was deleted; the line stays as it was.
    Removed,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The entry's place in the journal, from 1, across every run (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<u64>,
    pub(crate) event: Option<Event>,
    /// The place of the `run` entry of the run that wrote it (version 3): so that a damaged or
    /// missing `run` entry is known to be one, and no line's entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) r: Option<u64>,
    /// The destination it is about: a hash of the API's base URL (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dest: Option<String>,
    /// The journal's salt, from which the note IDs it sends are derived (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) j: Option<String>,
    /// The input line (for people reading the journal; lines are matched by fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) line: Option<u64>,
    /// The fingerprint of the input line, 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fp: Option<String>,
    /// Which occurrence of this fingerprint in the input (absent for the first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) n: u32,
    /// Which send of the line this is, from 0: its note ID is derived from it (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) call_id: Option<String>,
    /// On `start`: the ID the note is sent with; on `done`: the note's ID on the call; on
    /// `removed`: the copy deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note_id: Option<String>,
    /// On `unknown`: how long the attempt took to fail, in milliseconds (how long a late apply
    /// may still come after it is reckoned from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) took: Option<u64>,
    /// The HTTP status of the failure, when there was an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// What kind of failure (`absent` for a note looked up and not found: its ID is never sent
    /// again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    /// Why the line failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// On `run`: the input, its format, the journal version, the content hash, the destination.
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
    /// The keyed hash of the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub(crate) at: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Entry {
    /// An entry about one input line.
    pub(crate) fn line(event: Event, line: u64, key: LineKey) -> Self {
        Self {
            event: Some(event),
            line: Some(line),
            fp: Some(format!("{:016x}", key.0)),
            n: key.1,
            ..Self::default()
        }
    }

    /// The entry's line key, if its fingerprint reads.
    pub(crate) fn key(&self) -> Option<LineKey> {
        let fp = u64::from_str_radix(self.fp.as_deref()?, 16).ok()?;
        Some((fp, self.n))
    }

    /// Writes the entry as one line of JSON (without the newline), with its checksum last:
    /// `{...,"crc":"<8 hex>"}`.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut json = serde_json::to_vec(self)?;
        let crc = checksum(&json);
        // `to_vec` of a struct always ends with its closing brace.
        json.pop();
        json.extend_from_slice(b",\"crc\":\"");
        json.extend_from_slice(crc.as_bytes());
        json.extend_from_slice(b"\"}");
        Ok(json)
    }
}

/// The checksum of an entry's JSON without its checksum: 32 bits of BLAKE3, hex.
fn checksum(json: &[u8]) -> String {
    blake3::hash(json).to_hex()[..8].to_string()
}

/// What one line of a journal file is.
#[derive(Debug, PartialEq)]
pub(crate) enum Read {
    /// Blank.
    Blank,
    /// A whole entry with a checksum that matches (version 3).
    Checked(Entry),
    /// An entry without a checksum, as version 2 wrote them.
    Unchecked(Entry),
    /// Not an entry, or one whose checksum does not match: what could still be read.
    Damaged(Salvage),
}

/// What a damaged line still says, each part only when it is there whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Salvage {
    pub(crate) seq: Option<u64>,
    pub(crate) event: Option<String>,
    pub(crate) dest: Option<String>,
    pub(crate) fp: Option<u64>,
}

/// The suffix every version 3 entry ends with, before the checksum's 8 hex digits and `"}`.
const CRC_KEY: &[u8] = b",\"crc\":\"";

/// Reads one line of a journal file (without its newline).
pub(crate) fn read(bytes: &[u8]) -> Read {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Read::Blank;
    }
    let raw = trimmed.as_bytes();
    // `...,"crc":"xxxxxxxx"}`: 8 hex digits, a quote and the brace after the key.
    let tail = CRC_KEY.len() + 10;
    if raw.len() > tail
        && raw.ends_with(b"\"}")
        && &raw[raw.len() - tail..raw.len() - 10] == CRC_KEY
    {
        let crc = &raw[raw.len() - 10..raw.len() - 2];
        let mut body = raw[..raw.len() - tail].to_vec();
        body.push(b'}');
        if checksum(&body).as_bytes() == crc
            && let Ok(entry) = serde_json::from_slice::<Entry>(&body)
        {
            return Read::Checked(entry);
        }
        return Read::Damaged(salvage(trimmed));
    }
    match serde_json::from_str::<Entry>(trimmed) {
        // Version 2 entries never had these: one that does lost its checksum to damage.
        Ok(entry)
            if entry.seq.is_none()
                && entry.dest.is_none()
                && entry.j.is_none()
                && entry.event.is_some()
                && !damaged_v2_run(&entry) =>
        {
            Read::Unchecked(entry)
        }
        _ => Read::Damaged(salvage(trimmed)),
    }
}

/// A `run` entry without a version but with a destination: version 2 always wrote both, and
/// version 1 neither, so this is damage, not an old journal.
fn damaged_v2_run(entry: &Entry) -> bool {
    entry.event == Some(Event::Run) && entry.version.is_none() && entry.base_url.is_some()
}

/// Takes out of a damaged line what is still there whole.
fn salvage(text: &str) -> Salvage {
    let string = |name: &str| -> Option<String> {
        let key = format!("\"{name}\":\"");
        let start = text.find(&key)? + key.len();
        let end = text[start..].find('"')? + start;
        Some(text[start..end].to_string())
    };
    let number = |name: &str| -> Option<u64> {
        let key = format!("\"{name}\":");
        let start = text.find(&key)? + key.len();
        let digits: String = text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        // A number cut short by the damage is not trusted: it must be followed by a comma.
        let after = text[start + digits.len()..].chars().next();
        (after == Some(',') && !digits.is_empty())
            .then(|| digits.parse().ok())
            .flatten()
    };
    Salvage {
        seq: number("seq"),
        event: string("event"),
        dest: string("dest").filter(|d| d.len() == 16),
        fp: string("fp")
            .filter(|f| f.len() == 16)
            .and_then(|f| u64::from_str_radix(&f, 16).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's example journal is one this version reads whole: each line's checksum holds.
    #[test]
    fn the_readme_example_entries_are_checked_entries() {
        let readme = include_str!("../../README.md");
        let lines: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("{\"seq\":"))
            .collect();
        assert_eq!(
            lines.len(),
            3,
            "the README shows a run, a start and a done entry"
        );
        for line in lines {
            let raw = line.as_bytes();
            let mut body = raw[..raw.len() - CRC_KEY.len() - 10].to_vec();
            body.push(b'}');
            assert!(
                matches!(read(raw), Read::Checked(_)),
                "{line}\nits checksum is {}",
                checksum(&body)
            );
        }
    }

    #[test]
    fn entries_carry_their_own_checksum_and_never_the_note_text() {
        let mut entry = Entry::line(Event::Start, 2, (0xabc, 0));
        entry.seq = Some(7);
        entry.k = Some(0);
        let line = entry.encode().unwrap();
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(
            text.starts_with(
                "{\"seq\":7,\"event\":\"start\",\"line\":2,\"fp\":\"0000000000000abc\""
            ),
            "{text}"
        );
        assert!(
            text.ends_with("\"}") && text.contains(",\"crc\":\""),
            "{text}"
        );
        assert_eq!(read(&line), Read::Checked(entry.clone()));
        // Any change to the entry is caught by its checksum.
        let changed = text.replace("\"start\"", "\"done\"");
        assert!(matches!(read(changed.as_bytes()), Read::Damaged(_)));
        let salvaged = match read(changed.as_bytes()) {
            Read::Damaged(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(salvaged.seq, Some(7));
        assert_eq!(salvaged.fp, Some(0xabc));
    }

    #[test]
    fn version_2_entries_are_read_and_damage_is_told_apart() {
        let v2 = r#"{"event":"done","line":3,"fp":"0000000000000001","at":5}"#;
        assert!(matches!(read(v2.as_bytes()), Read::Unchecked(_)));
        assert_eq!(read(b"   "), Read::Blank);
        assert!(matches!(read(b"garbage"), Read::Damaged(_)));
        // A v3 entry whose checksum was cut off is damage, not a v2 entry.
        let cut =
            r#"{"seq":3,"event":"done","dest":"0123456789abcdef","fp":"0000000000000001","at":5}"#;
        assert!(matches!(read(cut.as_bytes()), Read::Damaged(_)));
        // A v2 run entry that lost its version is damage, not a version 1 journal.
        let run = r#"{"event":"run","base_url":"http://x","at":1}"#;
        assert!(matches!(read(run.as_bytes()), Read::Damaged(_)));
        let v1 = r#"{"event":"run","file":"a.csv","at":1}"#;
        assert!(matches!(read(v1.as_bytes()), Read::Unchecked(_)));
    }

    #[test]
    fn salvage_trusts_only_whole_values() {
        let s = salvage(
            r#"{"seq":12,"event":"start","dest":"0123456789abcdef","fp":"00000000000000ff","n":1"#,
        );
        assert_eq!(s.seq, Some(12));
        assert_eq!(s.event.as_deref(), Some("start"));
        assert_eq!(s.fp, Some(0xff));
        let cut = salvage(r#"{"seq":1"#);
        assert_eq!(
            cut.seq, None,
            "a number the damage may have cut is not trusted"
        );
        assert_eq!(salvage(r#"{"fp":"00ff"#).fp, None);
    }
}
