//! The API keys `happyrobot auth login` stores: one JSON file, `credentials.json` in the
//! configuration directory (`$XDG_CONFIG_HOME/happyrobot/`, else `~/.config/happyrobot/`), that maps
//! each base URL to its key:
//!
//! ```json
//! {"keys": {"https://app.happyrobot.ai/api/v1": "..."}}
//! ```
//!
//! The file is created readable by its owner only (0600, in a directory created 0700) and replaced
//! atomically: a new private file beside it, written and synced, then renamed over it. A file that
//! other users can read or write is refused, as ssh refuses such a private key, with the `chmod`
//! that fixes it. No message, `Debug` included, ever holds a key.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{CliError, Exit};

/// The file's name in the configuration directory.
pub(crate) const FILE_NAME: &str = "credentials.json";

/// The most the file may hold: room for thousands of keys, and a wrong file (a device, a huge
/// log) fails at once instead of filling memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The configuration directory the environment names: `$XDG_CONFIG_HOME/happyrobot` (an absolute
/// path, as the XDG specification requires), else `$HOME/.config/happyrobot`, else on Windows
/// `%APPDATA%\happyrobot`.
pub(crate) fn config_dir_from_env() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("XDG_CONFIG_HOME").map(PathBuf::from)
        && dir.is_absolute()
    {
        return Some(dir.join("happyrobot"));
    }
    if let Some(home) = var("HOME") {
        return Some(PathBuf::from(home).join(".config").join("happyrobot"));
    }
    if cfg!(windows) {
        return var("APPDATA").map(|dir| PathBuf::from(dir).join("happyrobot"));
    }
    None
}

/// The keys of the file, by base URL (as [`happyrobot::BaseUrl::as_str`] writes it).
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Credentials {
    keys: BTreeMap<String, String>,
}

impl fmt::Debug for Credentials {
    /// The base URLs only: never a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("base_urls", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// The key stored for a base URL.
    pub(crate) fn key(&self, base_url: &str) -> Option<&str> {
        self.keys.get(base_url).map(String::as_str)
    }

    /// Stores `key` for `base_url`, replacing the one stored before.
    pub(crate) fn set(&mut self, base_url: &str, key: String) {
        self.keys.insert(base_url.to_string(), key);
    }

    /// Removes the key of `base_url`; whether there was one.
    pub(crate) fn remove(&mut self, base_url: &str) -> bool {
        self.keys.remove(base_url).is_some()
    }

    /// Every base URL with its key, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys
            .iter()
            .map(|(url, key)| (url.as_str(), key.as_str()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where the keys are kept.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    path: PathBuf,
}

impl Store {
    /// The file in the configuration directory of the environment.
    pub(crate) fn from_env() -> Result<Self, CliError> {
        config_dir_from_env().map(Self::in_dir).ok_or_else(|| {
            CliError::internal(
                "no configuration directory to keep the key in: set XDG_CONFIG_HOME or HOME",
            )
        })
    }

    /// The file in `dir`.
    pub(crate) fn in_dir(dir: PathBuf) -> Self {
        Self {
            path: dir.join(FILE_NAME),
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; no file is no keys. A file that others can read or write is refused.
    pub(crate) fn load(&self) -> Result<Credentials, CliError> {
        let path = self.path.display();
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Credentials::default());
            }
            Err(e) => {
                return Err(CliError::internal(format!(
                    "could not read the stored API keys in {path}: {e}"
                )));
            }
        };
        let meta = file.metadata().map_err(|e| {
            CliError::internal(format!("could not read the stored API keys in {path}: {e}"))
        })?;
        if !meta.is_file() {
            return Err(CliError::internal(format!(
                "{path} is not a regular file: remove it, then run happyrobot auth login again"
            )));
        }
        check_private(&self.path, &meta)?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| {
                CliError::internal(format!("could not read the stored API keys in {path}: {e}"))
            })?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(CliError::internal(format!(
                "{path} holds more than {MAX_FILE_BYTES} bytes: it is not happyrobot's credentials \
                 file; move it away, then run happyrobot auth login again"
            )));
        }
        // serde's message may quote the text it could not read, which may be a key: only where.
        serde_json::from_str(&text).map_err(|e| {
            CliError::internal(format!(
                "{path} cannot be read as happyrobot's credentials file (line {}, column {}): \
                 move it away, then run happyrobot auth login again",
                e.line(),
                e.column()
            ))
        })
    }

    /// The key stored for a base URL, if any.
    pub(crate) fn key_for(&self, base_url: &str) -> Result<Option<String>, CliError> {
        Ok(self.load()?.key(base_url).map(str::to_string))
    }

    /// Writes `credentials` in place of the file, atomically, readable by its owner only; with no
    /// key left, removes the file.
    pub(crate) fn save(&self, credentials: &Credentials) -> Result<(), CliError> {
        let path = self.path.display();
        if credentials.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(CliError::internal(format!("could not remove {path}: {e}"))),
            };
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let mut text = serde_json::to_string_pretty(credentials)
            .map_err(|e| CliError::internal(format!("could not encode the stored keys: {e}")))?;
        text.push('\n');
        let temp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        // One left by a killed run that had this process ID.
        let _ = std::fs::remove_file(&temp);
        let written =
            write_private(&temp, text.as_bytes()).and_then(|()| std::fs::rename(&temp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(CliError::internal(format!(
                "could not write the stored API keys to {path}: {e}"
            )));
        }
        // The rename is durable once the directory is; not every platform can sync one.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// Creates a new file readable and writable by its owner only, and writes `bytes` to disk.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates the configuration directory (and its parents) when missing, the last one private.
fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        CliError::internal(format!(
            "could not create the directory {} for the stored API keys: {e}",
            dir.display()
        ))
    })
}

/// Refuses a file that users other than its owner can read or write.
#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let path = path.display();
    Err(CliError::new(
        Exit::Auth,
        format!(
            "permissions {mode:04o} for {path} are too open: it holds API keys, so it must not be \
             accessible by other users, and its keys are not used. Fix it with: chmod 600 {path} \
             (and if others may have read it, replace the keys in the HappyRobot app)"
        ),
    ))
}

/// Windows has no mode bits; the file sits in the user's own profile.
#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), CliError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "happyrobot-cli-credentials-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_round_trip_and_the_last_removal_removes_the_file() {
        let dir = temp_dir("round-trip");
        let store = Store::in_dir(dir.join("happyrobot"));
        assert!(store.load().unwrap().is_empty(), "no file is no keys");
        let mut credentials = Credentials::default();
        credentials.set("https://a.example/api/v1", "hr_a".into());
        credentials.set("http://127.0.0.1:1/api/v1", "hr_b".into());
        store.save(&credentials).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.key("https://a.example/api/v1"), Some("hr_a"));
        assert_eq!(loaded.key("http://127.0.0.1:1/api/v1"), Some("hr_b"));
        let mut loaded = loaded;
        assert!(loaded.remove("https://a.example/api/v1"));
        assert!(!loaded.remove("https://a.example/api/v1"));
        assert!(loaded.remove("http://127.0.0.1:1/api/v1"));
        store.save(&loaded).unwrap();
        assert!(!store.path().exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_and_its_directory_are_private_and_an_open_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("private");
        let store = Store::in_dir(dir.join("happyrobot"));
        let mut credentials = Credentials::default();
        credentials.set("https://a.example/api/v1", "hr_secret_key".into());
        store.save(&credentials).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(&dir.join("happyrobot")), 0o700);
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = store.load().unwrap_err();
        assert_eq!(error.exit, Exit::Auth);
        assert!(error.message.contains("chmod 600"), "{}", error.message);
        assert!(!error.message.contains("hr_secret_key"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_file_is_refused_without_quoting_it_and_debug_hides_keys() {
        let dir = temp_dir("damaged");
        let store = Store::in_dir(dir.clone());
        std::fs::create_dir_all(&dir).unwrap();
        write_private(store.path(), br#"{"keys": "hr_secret_key"}"#).unwrap();
        let error = store.load().unwrap_err();
        assert_eq!(error.exit, Exit::Internal);
        assert!(
            !error.message.contains("hr_secret_key"),
            "{}",
            error.message
        );
        let mut credentials = Credentials::default();
        credentials.set("https://a.example/api/v1", "hr_secret_key".into());
        assert!(!format!("{credentials:?}").contains("hr_secret_key"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
