//! The journal: JSON lines appended as a run goes, so that a re-run knows what was done, what
//! certainly failed, and what may or may not have been applied. The format is in the crate's
//! README ("The journal").

mod entry;
pub(crate) mod file;
mod ids;
pub(crate) mod locate;
mod state;
mod writer;

use std::io;
use std::path::PathBuf;

pub(crate) use self::entry::{Entry, Event, now};
pub(crate) use self::ids::note_id;
pub(crate) use self::state::{JournalState, Keep, LineState, Standing};
pub(crate) use self::writer::JournalWriter;

/// The journal format's version, written in every `run` entry. Version 1 did not record the
/// destination; version 2's entries depended on the `run` entry before them; version 3's stand on
/// their own.
pub(crate) const VERSION: u32 = 3;

/// Where the notes of a run go: the API's base URL and a keyed hash of the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    /// The base URL, normalised (lower-case scheme and host, no trailing slash).
    pub(crate) base_url: String,
    /// [`key_hash`] of the API key.
    pub(crate) key_hash: String,
}

impl Destination {
    pub(crate) fn new(base_url: &str, api_key: &str) -> Self {
        Self {
            base_url: normalize_url(base_url),
            key_hash: key_hash(api_key),
        }
    }

    /// What version 3 entries call the destination: 64 bits of a hash of the base URL (the key is
    /// left out: a rotated key keeps its progress, since a note belongs to its call whichever key
    /// added it).
    pub(crate) fn id(&self) -> String {
        blake3::hash(self.base_url.as_bytes()).to_hex()[..16].to_string()
    }
}

/// The domain-separation context of the API key's hash. Fixed, so that the same key always gives
/// the same hash (journals of earlier releases hold it), and specific, so that the hash is useless
/// for anything else.
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

/// The call and the input line each of `keys` was recorded with, read from the journal at `path`
/// (for lines the input no longer has: their call is nowhere else). Damaged entries are skipped.
pub(crate) fn calls_of(
    path: &std::path::Path,
    keys: &std::collections::HashSet<crate::record::LineKey>,
) -> io::Result<std::collections::HashMap<crate::record::LineKey, (String, u64)>> {
    use std::io::BufRead as _;
    let mut found = std::collections::HashMap::new();
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    for line in reader.split(b'\n') {
        let entry = match entry::read(&line?) {
            entry::Read::Checked(entry) | entry::Read::Unchecked(entry) => entry,
            _ => continue,
        };
        if let (Some(key), Some(call)) = (entry.key(), &entry.call_id)
            && keys.contains(&key)
        {
            found.insert(key, (call.clone(), entry.line.unwrap_or(0)));
        }
    }
    Ok(found)
}

/// Up to `max` calls the entries of destination `dest` in the journal at `path` name (the last
/// named first), other than those in `except`. Damaged entries, and those of version 2 (which do
/// not say their destination), are skipped.
pub(crate) fn other_calls(
    path: &std::path::Path,
    dest: &str,
    except: &std::collections::HashSet<String>,
    max: usize,
) -> io::Result<Vec<String>> {
    use std::io::BufRead as _;
    // The latest calls are the likeliest still there.
    let mut latest: Vec<String> = Vec::new();
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    for line in reader.split(b'\n') {
        let entry = match entry::read(&line?) {
            entry::Read::Checked(entry) | entry::Read::Unchecked(entry) => entry,
            _ => continue,
        };
        if let Some(call) = entry.call_id
            && entry.dest.as_deref() == Some(dest)
            && !except.contains(&call)
        {
            latest.retain(|c| *c != call);
            latest.push(call);
            if latest.len() > max {
                latest.remove(0);
            }
        }
    }
    latest.reverse();
    Ok(latest)
}

/// Why a journal cannot be used.
#[derive(Debug)]
pub(crate) enum JournalError {
    Io(PathBuf, io::Error),
    /// Another run holds the journal's lock.
    Locked(PathBuf),
    /// Written by a version that did not record the destination, or by a newer one.
    Version {
        path: PathBuf,
        version: u32,
    },
    /// Not a regular file (a FIFO, a device, a directory...).
    NotRegular(PathBuf, io::Error),
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
            Self::NotRegular(path, e) => write!(
                f,
                "the journal {} cannot be used: {e}; nothing was sent. Give the path of a \
                 regular file (or of none yet: it is created)",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests;
