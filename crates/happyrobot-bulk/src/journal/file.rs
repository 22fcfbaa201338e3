//! Opening the files the engine keeps (journals, locks, the content index) so that only a regular
//! file is ever used: a FIFO, a device, a socket or a directory given as a journal is refused at
//! once, before anything is read or sent, and opening one never blocks.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` with `options` without blocking (a FIFO would otherwise wait for a writer), then
/// refuses anything that is not a regular file.
pub(crate) fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", kind_of(&meta)),
        ));
    }
    Ok(file)
}

/// What a file that is not a regular one is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = meta.file_type();
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// Syncs the directory holding `path`, so that a file just created there survives a crash.
pub(crate) fn sync_parent(path: &Path) {
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
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_opened_and_a_fifo_never_blocks() {
        let dir = happyrobot_mock::testkit::temp_dir("bulk-file").unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let started = std::time::Instant::now();
        let error = open_regular(&fifo, OpenOptions::new().read(true)).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(error.to_string().contains("FIFO"), "{error}");
        let error =
            open_regular(Path::new("/dev/null"), OpenOptions::new().read(true)).unwrap_err();
        assert!(error.to_string().contains("device"), "{error}");
        let error = open_regular(&dir, OpenOptions::new().read(true)).unwrap_err();
        assert!(error.to_string().contains("directory"), "{error}");
        let regular = dir.join("regular");
        std::fs::write(&regular, "x").unwrap();
        assert!(open_regular(&regular, OpenOptions::new().read(true)).is_ok());
    }
}
