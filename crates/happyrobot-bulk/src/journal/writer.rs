//! Appending to a journal: each entry written whole, with its place and checksum, and flushed to
//! the OS at once, under the journal's lock, which keeps every other run off it meanwhile.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::entry::{Entry, now};
use super::state::{JournalState, Keep};
use super::{Destination, JournalError};

/// Appends entries to the journal. It holds the journal's lock until dropped.
#[derive(Debug)]
pub(crate) struct JournalWriter {
    file: Mutex<Writing>,
    path: PathBuf,
    fsync: bool,
    dest: String,
    salt: String,
}

#[derive(Debug)]
struct Writing {
    file: File,
    /// The place of the last entry written.
    seq: u64,
    /// The place of this run's `run` entry, once written.
    run: Option<u64>,
}

impl JournalWriter {
    /// Opens (or creates, readable by its owner only) the journal, takes its lock, and reads it
    /// for `destination`, first repairing the damage a kill in the middle of a write can leave.
    /// Refused at once if another run holds the lock, or if the path is not a regular file.
    pub(crate) fn open(
        path: &Path,
        destination: &Destination,
        fsync: bool,
        keep: Keep,
    ) -> Result<(Self, JournalState), JournalError> {
        let io_error = |e| JournalError::Io(path.to_path_buf(), e);
        let existed = path.exists();
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = super::file::open_regular(path, &mut options).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidInput {
                JournalError::NotRegular(path.to_path_buf(), e)
            } else {
                io_error(e)
            }
        })?;
        match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => return Err(JournalError::Locked(path.to_path_buf())),
            Err(e) => return Err(io_error(e)),
        }
        if !existed {
            // A new journal's directory entry is made durable once, so that a crash right after
            // cannot lose the whole journal.
            file.sync_all().map_err(io_error)?;
            super::file::sync_parent(path);
        }
        file.rewind().map_err(io_error)?;
        let state = JournalState::read_file(&file, path, destination, keep)?;
        if let Some(length) = state.truncate_to {
            file.set_len(length).map_err(io_error)?;
        } else if state.needs_newline {
            file.write_all(b"\n").map_err(io_error)?;
        }
        let writer = Self {
            file: Mutex::new(Writing {
                file,
                seq: state.max_seq,
                run: None,
            }),
            path: path.to_path_buf(),
            fsync,
            dest: destination.id(),
            salt: state.salt(),
        };
        Ok((writer, state))
    }

    /// The journal's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What its entries call the destination (see `Destination::id`).
    pub(crate) fn dest(&self) -> &str {
        &self.dest
    }

    /// The salt the note IDs of this run are derived from.
    pub(crate) fn salt(&self) -> &str {
        &self.salt
    }

    /// Writes one entry, with its place, destination, salt, time and checksum. When this returns
    /// `Ok`, the entry survives the process being killed (and, with fsync, the machine losing
    /// power).
    pub(crate) fn write(&self, entry: &Entry) -> io::Result<()> {
        let mut writing = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut entry = entry.clone();
        let seq = writing.seq + 1;
        entry.seq = Some(seq);
        if entry.event == Some(super::Event::Run) {
            writing.run = Some(seq);
        } else {
            entry.r = writing.run;
        }
        entry.dest = Some(self.dest.clone());
        entry.j = Some(self.salt.clone());
        if entry.at == 0 {
            entry.at = now();
        }
        let mut line = entry.encode().map_err(io::Error::other)?;
        line.push(b'\n');
        // One write of the whole line: a `File` has no user-space buffer, so the line is in the
        // kernel once this returns, which is what surviving SIGKILL needs.
        writing.file.write_all(&line)?;
        writing.file.flush()?;
        if self.fsync {
            writing.file.sync_data()?;
        }
        writing.seq += 1;
        Ok(())
    }

    /// Syncs everything written to disk (at the end of a run, whatever `fsync` says).
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file
            .sync_data()
    }

    /// Whether every entry waits for the disk.
    pub(crate) fn fsyncs(&self) -> bool {
        self.fsync
    }
}
