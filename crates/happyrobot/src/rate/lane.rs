//! One pace for the clients of several processes on one machine that use the same limit (the
//! same base URL and API key): [`ClientBuilder::share_rate_limit`](crate::ClientBuilder::share_rate_limit).
//!
//! Each process measuring its own share, without headers, cannot tell a starved process from one
//! alone at a low limit: a process that joins another already at the limit measures the one
//! request a second left to it, and probes for more over tens of seconds. Sharing the controller's
//! state instead makes the processes one controller: a joiner starts at the pace already found
//! and takes its turns from it, a refusal of either cuts the one pace, and when one process ends,
//! the others' turns come as often as the pace allows at once.
//!
//! The state ([`Core`]) lives in a small file, read and written under an exclusive lock around
//! each decision of a client that paces (its turns and the answers it learns from), and looked
//! for at each request of a client's slow start. That is a few tens of microseconds a decision
//! when no other process holds the lock; a lock held longer than [`LOCK_WAIT`] (a process stopped
//! while it holds it) leaves this process deciding on its own state for [`SKIP`]. A client with a
//! ceiling (`max_rate`) does not share: its spacing is its own. The times in the file are Unix
//! microseconds, read against the monotonic clock through a pair of readings taken at each
//! decision; a time read as later than now is taken as now (clocks that disagree after a suspend
//! or a step of the wall clock then cost a turn, not a stall). A state left for [`FRESH`] is not
//! taken up: each process then starts from its own answers, as without sharing. Anything that goes
//! wrong with the file (a directory that cannot be made, a file cut short, one written by another
//! version, which has a name of its own) leaves the process on its own state, as without sharing:
//! the file only ever makes the pace better informed. What it holds is followed, a hold of the
//! server's included: a process that starts (within [`FRESH`]) under a hold another was given
//! waits it out, or, if the hold is longer than its retry policy waits, its requests fail at once,
//! not sent.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Core, GRANTS_KEPT, Grants, Phase, Quotas, Span};

/// The file format; a file of another version is not read (and is replaced).
const VERSION: u32 = 1;

/// How long a state left by every process still counts: longer than any pause of a running
/// import between two requests, shorter than the time until a run of the next day.
const FRESH: Duration = Duration::from_secs(10);

/// How long a process waits for another to let go of the file before it decides on its own.
const LOCK_WAIT: Duration = Duration::from_millis(20);

/// How long a process decides on its own after the lock was held longer than [`LOCK_WAIT`].
const SKIP: Duration = Duration::from_secs(1);

/// The latest a hold read from the file may last (as [`Core::hold`] caps its own).
const HOLD_MAX: Duration = Duration::from_secs(86_400);

/// The file's name for a base URL and an API key: a hash of both (the key itself is never written
/// anywhere, and the hash is derived for this use only), and the format's version, so that two
/// versions of this crate do not overwrite each other's state.
pub(crate) fn file_name(base_url: &str, api_key: &str) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("happyrobot-rs rate lane 2026-12-07 v1");
    hasher.update(base_url.as_bytes());
    hasher.update(&[0]);
    hasher.update(api_key.as_bytes());
    let hash = hasher.finalize();
    let hex = hash.to_hex();
    format!("rate-v{VERSION}-{}.json", &hex[..32])
}

/// The shared state's file.
#[derive(Debug)]
pub(crate) struct Lane {
    path: PathBuf,
    file: Option<File>,
    /// The reads and writes buffer.
    buffer: Vec<u8>,
    /// Set when the file cannot be opened: the process goes on alone, and says so once.
    failed: bool,
    /// Until when the process decides on its own, after the lock was held too long.
    alone_until: Option<std::time::Instant>,
}

impl Lane {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            buffer: Vec::new(),
            failed: false,
            alone_until: None,
        }
    }

    /// Runs `decide` on the shared state, when there is one fresh (it then replaces `core`), and
    /// writes what it leaves back, all under the file's lock; on `core` alone when the file cannot
    /// be used. The file is made when `create` (the caller paces, or starts to), else only looked
    /// for.
    pub(crate) fn with<R>(
        &mut self,
        core: &mut Option<Core>,
        create: bool,
        decide: impl FnOnce(&mut Option<Core>) -> R,
    ) -> R {
        if self
            .alone_until
            .is_some_and(|until| std::time::Instant::now() < until)
        {
            return decide(core);
        }
        self.open(create || core.is_some());
        let Some(file) = self.file.as_ref() else {
            return decide(core);
        };
        let Some(_locked) = Locked::take(file) else {
            self.alone_until = Some(std::time::Instant::now() + SKIP);
            tracing::debug!(
                target: "happyrobot::rate",
                path = %self.path.display(),
                "rate limit: another process holds the shared pace's file; deciding alone for a \
                 second"
            );
            return decide(core);
        };
        let anchor = (Instant::now(), unix_micros());
        if let Some(shared) = read(file, &mut self.buffer).filter(|s| s.fresh(anchor.1)) {
            let ceiling = core.as_ref().and_then(|c| c.ceiling);
            if let Some(shared) = shared.into_core(anchor, ceiling) {
                *core = Some(shared);
            }
        }
        let decided = decide(core);
        if let Some(core) = core.as_ref() {
            let snapshot = Snapshot::of(core, anchor);
            if write(file, &snapshot, &mut self.buffer).is_err() {
                tracing::debug!(
                    target: "happyrobot::rate",
                    path = %self.path.display(),
                    "rate limit: could not write the shared pace; going on with this process's own"
                );
            }
        }
        decided
    }

    /// Opens the file (making it when `create`) if it is not open, or if the one open is no
    /// longer the one at its path (deleted, or replaced); never again after it failed.
    fn open(&mut self, create: bool) {
        if self
            .file
            .as_ref()
            .is_some_and(|file| !at_path(file, &self.path))
        {
            self.file = None;
        }
        if self.file.is_none() && !self.failed {
            match open(&self.path, create) {
                Ok(file) => self.file = Some(file),
                Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.failed = true;
                    tracing::debug!(
                        target: "happyrobot::rate",
                        path = %self.path.display(),
                        error = %e,
                        "rate limit: cannot use the file of the shared pace; this process paces \
                         on its own"
                    );
                }
            }
        }
    }
}

/// Whether `file` is the file at `path` (on Unix; elsewhere a file is not replaced while open).
fn at_path(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// The file's lock, let go when dropped (however the decision ends).
struct Locked<'f>(&'f File);

impl<'f> Locked<'f> {
    /// Takes the lock, waiting at most [`LOCK_WAIT`] (a process stopped while it holds the lock
    /// must not stop the others).
    fn take(file: &'f File) -> Option<Self> {
        let start = std::time::Instant::now();
        loop {
            match fs4::fs_std::FileExt::try_lock_exclusive(file) {
                Ok(true) => return Some(Self(file)),
                Ok(false) if start.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                _ => return None,
            }
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = fs4::fs_std::FileExt::unlock(self.0);
    }
}

fn open(path: &Path, create: bool) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|_| create) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(create)
        .truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn read(mut file: &File, buffer: &mut Vec<u8>) -> Option<Snapshot> {
    buffer.clear();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_end(buffer).ok()?;
    serde_json::from_slice::<Snapshot>(buffer)
        .ok()
        .filter(|s| s.version == VERSION)
}

fn write(mut file: &File, snapshot: &Snapshot, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    buffer.clear();
    serde_json::to_writer(&mut *buffer, snapshot).map_err(std::io::Error::other)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(buffer)?;
    file.set_len(buffer.len() as u64)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// An instant as Unix microseconds, through `anchor`.
fn to_unix((instant, unix): (Instant, u64), at: Instant) -> u64 {
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if at >= instant {
        unix.saturating_add(micros(at - instant))
    } else {
        unix.saturating_sub(micros(instant - at))
    }
}

/// Unix microseconds as an instant of this process, through `anchor` (an instant the monotonic
/// clock cannot represent is taken as the anchor's).
fn to_instant((instant, unix): (Instant, u64), micros: u64) -> Instant {
    if micros >= unix {
        instant
            .checked_add(Duration::from_micros(micros - unix))
            .unwrap_or(instant)
    } else {
        instant
            .checked_sub(Duration::from_micros(unix - micros))
            .unwrap_or(instant)
    }
}

/// [`Core`] as the file holds it: every field but the ceiling (each process keeps its own), the
/// times as Unix microseconds.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    /// When a process last wrote it.
    updated: u64,
    /// The phase: `None` for a fixed pace (never shared), else the ramp's start or the estimate,
    /// whether it holds, and since when.
    phase: Option<(bool, f64, u64)>,
    last: Option<u64>,
    not_before: Option<u64>,
    learned: Option<f64>,
    policy: Option<f64>,
    quota: bool,
    moving: bool,
    last_cut: u64,
    grants: Vec<u64>,
    /// When, what was left, and of what limit; absent from the files of earlier versions.
    #[serde(default)]
    quota_samples: Vec<(u64, u64, u64)>,
    /// See `Core`; absent from the files of earlier versions (then as before them: no guess, the
    /// ramp at its own speed, no limit seen).
    #[serde(default)]
    guessed: bool,
    #[serde(default)]
    quick_ramp: bool,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    limit_before: Option<u64>,
    #[serde(default)]
    limit_fell: Option<u64>,
    #[serde(default)]
    accepted_since_cut: u32,
    /// The span's start, its latest refusal and its answers accepted; absent from the files of
    /// earlier versions (then none).
    #[serde(default)]
    span: Option<(u64, u64, u32)>,
    latency: Option<f64>,
}

impl Snapshot {
    fn of(core: &Core, anchor: (Instant, u64)) -> Self {
        let unix = |at: Instant| to_unix(anchor, at);
        let phase = match core.phase {
            Phase::Fixed => None,
            Phase::Ramp { from, at } => Some((false, from, unix(at))),
            Phase::Hold { granted, at } => Some((true, granted, unix(at))),
        };
        Self {
            version: VERSION,
            updated: anchor.1,
            phase,
            last: core.last.map(unix),
            not_before: core.not_before.map(unix),
            learned: core.learned,
            policy: core.policy,
            quota: core.quota,
            moving: core.moving,
            last_cut: unix(core.last_cut),
            grants: core.grants.times.iter().map(|t| unix(*t)).collect(),
            quota_samples: core
                .quotas
                .seen
                .iter()
                .map(|(t, left, limit)| (unix(*t), *left, *limit))
                .collect(),
            guessed: core.guessed,
            quick_ramp: core.quick_ramp,
            limit: core.limit,
            limit_before: core.limit_before,
            limit_fell: core.limit_fell.map(unix),
            accepted_since_cut: core.accepted_since_cut,
            span: core
                .span
                .map(|span| (unix(span.since), unix(span.last), span.accepted)),
            latency: core.latency,
        }
    }

    fn fresh(&self, now: u64) -> bool {
        now.abs_diff(self.updated) <= u64::try_from(FRESH.as_micros()).unwrap_or(u64::MAX)
    }

    /// The state as this process's [`Core`], with its own `ceiling`; `None` for a state that a
    /// process could not have written (a fixed pace, a rate that is not a positive number). Every
    /// time but the hold's is in the past when written: one read as later than now (the clocks
    /// disagree) is taken as now, and a hold lasts a day at most.
    fn into_core(self, anchor: (Instant, u64), ceiling: Option<f64>) -> Option<Core> {
        let instant = |micros: u64| to_instant(anchor, micros).min(anchor.0);
        let until = |micros: u64| to_instant(anchor, micros).min(anchor.0 + HOLD_MAX);
        let positive = |rate: f64| rate.is_finite() && rate > 0.0;
        let (holds, rate, at) = self.phase.filter(|(_, rate, _)| positive(*rate))?;
        let phase = if holds {
            Phase::Hold {
                granted: rate,
                at: instant(at),
            }
        } else {
            Phase::Ramp {
                from: rate,
                at: instant(at),
            }
        };
        let mut grants = Grants::default();
        for at in self.grants.into_iter().rev().take(GRANTS_KEPT).rev() {
            grants.add(instant(at));
        }
        let mut quotas = Quotas::default();
        for (at, left, limit) in self.quota_samples.into_iter().rev().take(GRANTS_KEPT).rev() {
            quotas.add(instant(at), left, limit);
        }
        Some(Core {
            ceiling,
            phase,
            last: self.last.map(instant),
            not_before: self.not_before.map(until),
            learned: self.learned.filter(|r| positive(*r)),
            policy: self.policy.filter(|r| positive(*r)),
            quota: self.quota,
            moving: self.moving,
            guessed: self.guessed,
            quick_ramp: self.quick_ramp,
            limit: self.limit,
            limit_before: self.limit_before,
            limit_fell: self.limit_fell.map(instant),
            accepted_since_cut: self.accepted_since_cut,
            span: self.span.map(|(since, last, accepted)| Span {
                since: instant(since),
                last: instant(last),
                accepted,
            }),
            last_cut: instant(self.last_cut),
            grants,
            quotas,
            latency: self.latency.filter(|l| l.is_finite() && *l >= 0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RateControl;

    #[test]
    fn the_file_name_hides_the_key_and_tells_limits_apart() {
        let name = file_name("https://api.example/v1", "secret-key-123");
        assert!(!name.contains("secret"), "{name}");
        assert_eq!(name, file_name("https://api.example/v1", "secret-key-123"));
        assert_ne!(name, file_name("https://api.example/v1", "another-key"));
        assert_ne!(
            name,
            file_name("https://other.example/v1", "secret-key-123")
        );
    }

    #[test]
    fn a_state_goes_through_the_file_unchanged_but_for_the_ceiling() {
        let now = Instant::now();
        let mut core = Core::new(RateControl::adaptive(), 4.0, now);
        for n in 0..5 {
            core.grants.add(now + Duration::from_millis(100 * n));
        }
        core.phase = Phase::Hold {
            granted: 9.5,
            at: now + Duration::from_millis(250),
        };
        core.learned = Some(9.5);
        core.moving = true;
        core.latency = Some(0.3);
        core.quotas.add(now + Duration::from_millis(400), 7, 11);
        (
            core.guessed,
            core.quick_ramp,
            core.limit,
            core.accepted_since_cut,
        ) = (true, false, Some(11), 3);
        (core.limit_before, core.limit_fell) = (Some(12), Some(now + Duration::from_millis(300)));
        core.span = Some(super::Span {
            since: now + Duration::from_millis(100),
            last: now + Duration::from_millis(200),
            accepted: 17,
        });
        let anchor = (now + Duration::from_secs(1), unix_micros());
        let text = serde_json::to_vec(&Snapshot::of(&core, anchor)).unwrap();
        let read: Snapshot = serde_json::from_slice(&text).unwrap();
        let back = read.into_core(anchor, Some(7.0)).unwrap();
        assert_eq!(back.phase, core.phase);
        assert_eq!(back.grants.times, core.grants.times);
        assert_eq!(back.quotas.seen, core.quotas.seen);
        assert_eq!(
            (back.learned, back.moving, back.latency, back.ceiling),
            (Some(9.5), true, Some(0.3), Some(7.0))
        );
        assert_eq!(back.last_cut, core.last_cut);
        assert_eq!(
            (
                back.guessed,
                back.quick_ramp,
                back.limit,
                back.accepted_since_cut
            ),
            (true, false, Some(11), 3)
        );
        assert_eq!(
            (back.limit_before, back.limit_fell),
            (core.limit_before, core.limit_fell)
        );
        assert_eq!(back.span, core.span);
        // A file of an earlier version, without them: no guess, the ramp at its own speed.
        let mut old = serde_json::to_value(Snapshot::of(&core, anchor)).unwrap();
        for field in [
            "guessed",
            "quick_ramp",
            "limit",
            "limit_before",
            "limit_fell",
            "accepted_since_cut",
            "span",
        ] {
            old.as_object_mut().unwrap().remove(field);
        }
        let old: Snapshot = serde_json::from_value(old).unwrap();
        let back = old.into_core(anchor, None).unwrap();
        assert_eq!(
            (
                back.guessed,
                back.quick_ramp,
                back.limit,
                back.accepted_since_cut
            ),
            (false, false, None, 0)
        );
        assert_eq!((back.limit_before, back.limit_fell), (None, None));
        assert_eq!(back.span, None);
    }

    #[test]
    fn times_from_a_clock_ahead_are_read_as_now_and_a_hold_as_a_day_at_most() {
        let now = Instant::now();
        let mut core = Core::new(RateControl::adaptive(), 4.0, now);
        core.grants.add(now);
        core.not_before = Some(now + Duration::from_secs(3 * 86_400));
        // Written by a process whose wall clock is an hour ahead of this one's.
        let snapshot = Snapshot::of(&core, (now, unix_micros() + 3_600_000_000));
        let anchor = (Instant::now(), unix_micros());
        let back = snapshot.into_core(anchor, None).unwrap();
        assert!(back.last.unwrap() <= anchor.0 && back.last_cut <= anchor.0);
        assert!(back.grants.times.iter().all(|t| *t <= anchor.0));
        assert!(matches!(back.phase, Phase::Ramp { at, .. } if at <= anchor.0));
        assert!(back.not_before.unwrap() <= anchor.0 + HOLD_MAX);
    }

    #[test]
    fn two_lanes_on_one_file_are_one_pace_and_a_stale_or_broken_file_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("happyrobot-lane-{}", std::process::id()));
        let path = dir.join(file_name("http://127.0.0.1:1", "k"));
        let (mut first, mut second) = (Lane::new(path.clone()), Lane::new(path.clone()));
        let (mut mine, mut theirs) = (None, None);
        // A client that is not pacing finds nothing, and makes no file.
        assert!(!second.with(&mut theirs, false, |core| core.is_some()));
        assert!(!path.exists());
        // (Times in the file are in the past: a later one is read as now.)
        let now = Instant::now() - Duration::from_secs(2);
        first.with(&mut mine, true, |core| {
            let core = core.get_or_insert_with(|| Core::new(RateControl::adaptive(), 5.0, now));
            core.phase = Phase::Hold {
                granted: 5.0,
                at: now,
            };
        });
        // The second process had no state: it takes the first's, and its turns count for both.
        let joined = second.with(&mut theirs, false, |core| core.is_some());
        assert!(joined);
        let at = Instant::now();
        let turn = second.with(&mut theirs, true, |core| core.as_mut().map(|c| c.take(at)));
        assert_eq!(turn, Some(Ok(at)));
        let next = first.with(&mut mine, true, |core| core.as_mut().map(|c| c.take(at)));
        assert!(matches!(next, Some(Err(later)) if later > at), "{next:?}");

        // A file cut short is not read: each goes on with its own state.
        std::fs::write(&path, b"{\"version\":1,").unwrap();
        let mut alone = None;
        assert!(!Lane::new(path.clone()).with(&mut alone, false, |core| core.is_some()));
        // A state left longer than FRESH is not taken up either.
        let mut old = Snapshot::of(mine.as_ref().unwrap(), (Instant::now(), unix_micros()));
        old.updated -= u64::try_from(FRESH.as_micros()).unwrap() + 1_000_000;
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(!Lane::new(path.clone()).with(&mut alone, false, |core| core.is_some()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
