//! Where a journal is, when the caller did not say: beside the input (`<FILE>.journal`), else the
//! journal of an input with the same rows imported to the same API, found through an index in the
//! state directory (so that a renamed, copied or symlinked file, or the same rows saved in another
//! format, resumes instead of sending everything again), else a new `<FILE>.journal`; a journal the
//! index names that is gone is told ([`Located::Gone`]), never silently replaced. The state
//! directory also holds the locks that keep two runs of one input on one API apart, whatever their
//! journals.
//!
//! The state directory is `$HAPPYROBOT_STATE_DIR`, else `$XDG_STATE_HOME/happyrobot`, else
//! `~/.local/state/happyrobot`. It holds `journals/<KEY>` (the path of the journal last used for an
//! input and a base URL) and `locks/<KEY>.lock` (held while such a run goes, removed when it ends),
//! where `<KEY>` is [`index_key`] of the input's identity: a hash of its rows, or, as releases up to
//! 0.1 wrote it, of a file's bytes.

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

/// Where the journal of a file is, when none is given.
pub(crate) enum Located {
    /// Beside the file (there or not yet).
    Beside(PathBuf),
    /// The journal of an input with the same rows, found through the state directory's index.
    ByContent(PathBuf),
    /// The index names a journal for these rows that is gone: the notes it recorded cannot be
    /// told apart from new ones. `beside` is where a new journal would go.
    Gone { expected: PathBuf, beside: PathBuf },
}

/// The journal to use for `file` when none is given. `identities` are the input's identities,
/// the current one first ([`index_key`] of each is looked up in the index).
pub(crate) fn find(
    file: &Path,
    identities: &[&str],
    destination: &Destination,
    state_dir: Option<&Path>,
) -> Located {
    let beside = beside(file);
    if beside.exists() {
        return Located::Beside(beside);
    }
    let Some(dir) = state_dir else {
        return Located::Beside(beside);
    };
    for identity in identities {
        let Some(journal) = indexed(dir, identity, destination) else {
            continue;
        };
        match std::fs::symlink_metadata(&journal) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Located::Gone {
                    expected: journal,
                    beside,
                };
            }
            Err(_) => continue,
            Ok(_) => {}
        }
        // Only a journal that imported these very rows to this very API is adopted.
        let adopted = JournalState::load(&journal, destination, Keep::default())
            .is_ok_and(|s| identities.iter().any(|i| s.contents.contains(*i)));
        if adopted {
            return Located::ByContent(journal);
        }
    }
    Located::Beside(beside)
}

/// The journal the index names for inputs of `identity` to `destination`, if any.
fn indexed(dir: &Path, identity: &str, destination: &Destination) -> Option<PathBuf> {
    let entry = dir.join("journals").join(index_key(identity, destination));
    let file = super::file::open_regular(&entry, OpenOptions::new().read(true)).ok()?;
    let text = std::io::read_to_string(std::io::Read::take(file, 64 * 1024)).ok()?;
    let text = text.trim_end_matches('\n');
    (!text.is_empty()).then(|| PathBuf::from(text))
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

/// The lock of every run of one content to one API, so that the same input is not imported twice
/// at once even with two different journals. Its file is removed when the run ends (dropped),
/// while the lock is still held, so that lock files do not pile up in the state directory.
#[derive(Debug)]
pub(crate) struct ContentLock {
    file: File,
    path: PathBuf,
}

/// How many times a lock whose file was removed under it is taken again before giving up.
const LOCK_TRIES: usize = 16;

/// Takes the lock of every run of one content to one API.
///
/// A run that ends removes its lock file while holding the lock; another process may have opened
/// that file just before and take the lock once it is released, on a file no longer in the
/// directory. So the lock counts only when the path still names the file locked: otherwise the
/// file is opened again.
pub(crate) fn lock_content(
    content: &str,
    destination: &Destination,
    state_dir: Option<&Path>,
) -> Result<ContentLock, Unlocked> {
    let dir = state_dir.ok_or(Unlocked::Unavailable)?.join("locks");
    let path = dir.join(format!("{}.lock", index_key(content, destination)));
    for _ in 0..LOCK_TRIES {
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        let file = std::fs::create_dir_all(&dir)
            .and_then(|()| super::file::open_regular(&path, &mut options))
            .map_err(|_| Unlocked::Unavailable)?;
        match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => return Err(Unlocked::Busy),
            Err(_) => return Err(Unlocked::Unavailable),
        }
        if names_file(&path, &file) {
            return Ok(ContentLock { file, path });
        }
    }
    Err(Unlocked::Unavailable)
}

/// Whether `path` still names the open `file` (the same device and inode).
#[cfg(unix)]
fn names_file(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
}

/// Elsewhere lock files are not removed, so the path always names the file locked.
#[cfg(not(unix))]
fn names_file(_path: &Path, _file: &File) -> bool {
    true
}

impl Drop for ContentLock {
    fn drop(&mut self) {
        // Removed while the lock is held (the file is closed, and the lock released, after this).
        #[cfg(unix)]
        if names_file(&self.path, &self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
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
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_content_lock_refuses_a_second_run_and_leaves_no_file_when_released() {
        let dir = std::env::temp_dir().join(format!("happyrobot-bulk-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let destination = Destination::new("http://127.0.0.1:1", "key");
        let first = lock_content("abc", &destination, Some(&dir)).ok().unwrap();
        assert!(first.path.exists());
        assert!(matches!(
            lock_content("abc", &destination, Some(&dir)),
            Err(Unlocked::Busy)
        ));
        // Another content is not held up.
        let other = lock_content("xyz", &destination, Some(&dir)).ok().unwrap();
        drop(other);
        drop(first);
        let left: Vec<_> = std::fs::read_dir(dir.join("locks")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        let again = lock_content("abc", &destination, Some(&dir)).ok().unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_taken_on_a_file_removed_under_it_is_taken_again_on_the_new_file() {
        let dir =
            std::env::temp_dir().join(format!("happyrobot-bulk-relock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let destination = Destination::new("http://127.0.0.1:1", "key");
        let first = lock_content("abc", &destination, Some(&dir)).ok().unwrap();
        // A second process opened the file before the first run ended...
        let stale = File::open(&first.path).unwrap();
        let path = first.path.clone();
        drop(first);
        // ...and locks it after: it holds a lock on a file no longer in the directory.
        assert!(fs4::fs_std::FileExt::try_lock_exclusive(&stale).unwrap());
        assert!(!names_file(&path, &stale));
        // The next run therefore locks a new file, which a third one must respect.
        let second = lock_content("abc", &destination, Some(&dir)).ok().unwrap();
        assert!(names_file(&path, &second.file));
        assert!(matches!(
            lock_content("abc", &destination, Some(&dir)),
            Err(Unlocked::Busy)
        ));
        drop(second);
        drop(stale);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_is_found_by_the_byte_hash_the_last_release_indexed_it_by_and_a_lost_journal_is_told()
    {
        use crate::journal::{Entry, Event, JournalWriter, VERSION};
        let dir = crate::journal::tests::temp_path("legacy");
        std::fs::create_dir_all(&dir).unwrap();
        let (file, state) = (dir.join("notes.csv"), dir.join("state"));
        std::fs::write(&file, "call_id,content\n").unwrap();
        let destination = Destination::new("http://127.0.0.1:1/api/v1", "k");
        // A journal elsewhere, whose run entry and index entry name the input by its bytes.
        let journal = std::path::absolute(dir.join("elsewhere.journal")).unwrap();
        let (writer, _) =
            JournalWriter::open(&journal, &destination, false, Keep::default()).unwrap();
        writer
            .write(&Entry {
                event: Some(Event::Run),
                version: Some(VERSION),
                content: Some("bytes".into()),
                base_url: Some(destination.base_url.clone()),
                key: Some(destination.key_hash.clone()),
                ..Entry::default()
            })
            .unwrap();
        drop(writer);
        remember("bytes", &destination, &journal, Some(&state));
        let found = find(&file, &["rows", "bytes"], &destination, Some(&state));
        assert!(matches!(&found, Located::ByContent(p) if *p == journal));
        // Not known by that identity: the journal beside the file.
        let found = find(&file, &["rows"], &destination, Some(&state));
        assert!(matches!(&found, Located::Beside(p) if *p == beside(&file)));
        // Gone: told, with the path the index names.
        std::fs::remove_file(&journal).unwrap();
        let found = find(&file, &["rows", "bytes"], &destination, Some(&state));
        assert!(matches!(&found, Located::Gone { expected, .. } if *expected == journal));
    }

    #[test]
    fn the_default_journal_is_beside_the_file() {
        assert_eq!(
            beside(Path::new("dir/notes.csv")),
            PathBuf::from("dir/notes.csv.journal")
        );
    }
}
