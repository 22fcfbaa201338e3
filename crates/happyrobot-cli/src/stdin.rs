//! An input that can be read only once (standard input, a pipe) is copied first to a private
//! temporary file, removed when the command ends: the engine reads its input several times (its
//! hash, the check, the send).

use std::path::{Path, PathBuf};

use crate::exit::CliError;

/// The input as a regular file.
pub(crate) struct Input {
    pub(crate) path: PathBuf,
    /// Whether `path` is a temporary copy (of standard input or a pipe).
    pub(crate) copied: bool,
}

impl Drop for Input {
    fn drop(&mut self) {
        if self.copied {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `file` itself when it is a regular file, else a copy of it; `journal_given` says whether the
/// copy's journal has a path (it has no file to sit beside).
pub(crate) fn regular(file: &Path, journal_given: bool) -> Result<Input, CliError> {
    let stdin = file.as_os_str() == "-";
    if !stdin {
        match std::fs::metadata(file) {
            Ok(meta) if meta.is_file() => {
                return Ok(Input {
                    path: file.to_path_buf(),
                    copied: false,
                });
            }
            Ok(meta) if meta.is_dir() => {
                return Err(CliError::usage(format!(
                    "cannot read {}: it is a directory; give the file of notes",
                    file.display()
                )));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(CliError::usage(format!(
                    "cannot read {}: {e}",
                    file.display()
                )));
            }
        }
    }
    if !journal_given {
        return Err(CliError::usage(format!(
            "{} is {}: give the journal's path with --journal PATH (use the same path to resume)",
            file.display(),
            if stdin {
                "standard input"
            } else {
                "not a regular file (a pipe?)"
            }
        )));
    }
    let random = happyrobot::new_note_id();
    let input = Input {
        path: std::env::temp_dir()
            .join(format!("happyrobot-import-{}-{random}", std::process::id())),
        copied: true,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let copy = options.open(&input.path).and_then(|mut out| {
        if stdin {
            std::io::copy(&mut std::io::stdin().lock(), &mut out)
        } else {
            std::io::copy(&mut std::fs::File::open(file)?, &mut out)
        }
    });
    copy.map_err(|e| {
        CliError::internal(format!(
            "cannot copy {} to a temporary file: {e}",
            file.display()
        ))
    })?;
    Ok(input)
}
