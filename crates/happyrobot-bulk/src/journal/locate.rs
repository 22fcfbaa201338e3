//! Where a journal is, when the caller did not say: beside the input (`<FILE>.journal`), else the
//! journal of an input with the same content imported to the same API, found through an index in
//! the state directory (so that a renamed, copied or symlinked file resumes instead of sending
//! everything again), else a new `<FILE>.journal`. The state directory also holds the locks that
//! keep two runs of one content on one API apart, whatever their journals.
//!
//! The state directory is `$HAPPYROBOT_STATE_DIR`, else `$XDG_STATE_HOME/happyrobot`, else
//! `~/.local/state/happyrobot`. It holds `journals/<KEY>` (the path of the journal last used for a
//! content and a base URL) and `locks/<KEY>.lock` (held while such an import runs), where `<KEY>`
//! is [`index_key`].

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::Destination;
use super::state::{JournalState, Keep};

/// The journal beside a file: `notes.csv` gets `notes.csv.journal`.
pub(crate) fn beside(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// The state directory the environment names, if any.
pub fn state_dir_from_env() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HAPPYROBOT_STATE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return Some(PathBuf::from(dir).join("happyrobot"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".local/state/happyrobot"))
}

/// The name of a content's entries in the state directory, for one base URL: imports of the same
/// file to two different APIs neither share a journal nor block each other.
pub(crate) fn index_key(content: &str, destination: &Destination) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(content.as_bytes());
    hasher.update(&[0xff]);
    hasher.update(destination.base_url.as_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// The journal to use for `file` when none is given, and whether it was found by its content.
pub(crate) fn find(
    file: &Path,
    content: &str,
    destination: &Destination,
    state_dir: Option<&Path>,
) -> (PathBuf, bool) {
    let beside = beside(file);
    if beside.exists() {
        return (beside, false);
    }
    let indexed = state_dir
        .and_then(|dir| {
            let entry = dir.join("journals").join(index_key(content, destination));
            let file = super::file::open_regular(&entry, OpenOptions::new().read(true)).ok()?;
            std::io::read_to_string(std::io::Read::take(file, 64 * 1024)).ok()
        })
        .map(|text| PathBuf::from(text.trim_end_matches('\n')));
    if let Some(journal) = indexed
        && journal.is_file()
        // Only a journal that imported this very content to this very API is adopted.
        && JournalState::load(&journal, destination, Keep::default())
            .is_ok_and(|s| s.contents.contains(content))
    {
        return (journal, true);
    }
    (beside, false)
}

/// Records `journal` as the journal of inputs with this content (best effort: without the index
/// a renamed file starts a new journal beside it).
pub(crate) fn remember(
    content: &str,
    destination: &Destination,
    journal: &Path,
    state_dir: Option<&Path>,
) {
    let Some(dir) = state_dir.map(|d| d.join("journals")) else {
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

/// Why the content lock is not held.
pub(crate) enum Unlocked {
    /// Another run of the same content to the same API holds it.
    Busy,
    /// There is no usable state directory (the journal's own lock still guards the journal).
    Unavailable,
}

/// Takes the lock of every run of one content to one API, so that the same input is not imported
/// twice at once even with two different journals. The lock goes with the file handle.
pub(crate) fn lock_content(
    content: &str,
    destination: &Destination,
    state_dir: Option<&Path>,
) -> Result<File, Unlocked> {
    let dir = state_dir.ok_or(Unlocked::Unavailable)?.join("locks");
    let path = dir.join(format!("{}.lock", index_key(content, destination)));
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    let file = std::fs::create_dir_all(&dir)
        .and_then(|()| super::file::open_regular(&path, &mut options))
        .map_err(|_| Unlocked::Unavailable)?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(Unlocked::Busy),
        Err(_) => Err(Unlocked::Unavailable),
    }
}

/// A BLAKE3 hash of a file's bytes (128 bits, hex), read as a stream.
pub(crate) fn content_hash(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_journal_is_beside_the_file() {
        assert_eq!(
            beside(Path::new("dir/notes.csv")),
            PathBuf::from("dir/notes.csv.journal")
        );
    }
}
