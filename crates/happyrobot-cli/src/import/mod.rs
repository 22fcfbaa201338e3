//! `happyrobot notes import`: a file of notes, checked whole, then sent with bounded concurrency,
//! a shared pause on 429, safe retries, and a journal that makes a re-run resume without ever
//! sending a line twice by accident.
//!
//! The jobs are split by module: [`args`] (the command line), [`input`] (reading records),
//! [`plan`] (the validation pass), [`journal`], [`dispatch`] (the send pass), [`send`] (one
//! line), [`gate`] (the shared 429 pause), [`progress`] and [`summary`].

pub(crate) mod args;
mod dispatch;
mod gate;
mod input;
mod journal;
mod plan;
mod progress;
mod send;
mod summary;
mod undo;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use happyrobot::RetryPolicy;

use self::args::{Format, ImportArgs};
use self::journal::{Destination, Entry, JournalState, JournalWriter};
use self::send::Context;
use self::summary::Summary;
use crate::GlobalArgs;
use crate::exit::{CliError, Exit};
use crate::output::{self, Output};

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
    }
}

/// Counters shared with the progress display.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) processed: AtomicU64,
    pub(crate) added: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) unknown: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    /// Unknown outcomes looked up on their calls: found added, found absent (sent again once),
    /// still undecided.
    pub(crate) reconciled_found: AtomicU64,
    pub(crate) reconciled_absent: AtomicU64,
    pub(crate) reconciled_undecided: AtomicU64,
}

/// The API key the client will use, resolved as `connect` resolves it, only to hash it.
fn resolved_key(global: &GlobalArgs) -> String {
    let env = std::env::var(happyrobot::API_KEY_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let given = global.api_key.clone().filter(|k| !k.is_empty()).or(env);
    // Without a key, `connect` uses the mock's own (for --mock and loopback URLs) or refuses.
    given.unwrap_or_else(|| happyrobot_mock::DEFAULT_API_KEY.to_string())
}

/// Where a dry run would send the notes (it starts no mock and makes no client).
fn planned_base_url(global: &GlobalArgs) -> String {
    if global.mock {
        // A fresh in-process mock each time: never the destination of an earlier run.
        return "mock:in-process".to_string();
    }
    global
        .base_url
        .clone()
        .or_else(|| {
            std::env::var(happyrobot::BASE_URL_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| happyrobot::DEFAULT_BASE_URL.to_string())
}

/// The input as a regular file. Standard input (`-`) and pipes can be read only once, and an
/// import reads its input three times (hash, check, send), so they are first copied to a private
/// temporary file, removed when the import ends.
struct Input {
    path: PathBuf,
    temporary: bool,
}

impl Drop for Input {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn open_input(args: &ImportArgs) -> Result<Input, CliError> {
    let stdin = args.file.as_os_str() == "-";
    if !stdin {
        match std::fs::metadata(&args.file) {
            Ok(meta) if meta.is_file() => {
                return Ok(Input {
                    path: args.file.clone(),
                    temporary: false,
                });
            }
            Ok(meta) if meta.is_dir() => {
                return Err(CliError::usage(format!(
                    "cannot read {}: it is a directory; give the file of notes",
                    args.file.display()
                )));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(CliError::usage(format!(
                    "cannot read {}: {e}",
                    args.file.display()
                )));
            }
        }
    }
    if args.journal.is_none() {
        return Err(CliError::usage(format!(
            "{} is {}: give the journal's path with --journal PATH (use the same path to resume)",
            args.file.display(),
            if stdin {
                "standard input"
            } else {
                "not a regular file (a pipe?)"
            }
        )));
    }
    let path = std::env::temp_dir().join(format!(
        "happyrobot-import-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let input = Input {
        path,
        temporary: true,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let copy = options.open(&input.path).and_then(|mut out| {
        if stdin {
            std::io::copy(&mut std::io::stdin().lock(), &mut out)
        } else {
            std::io::copy(&mut std::fs::File::open(&args.file)?, &mut out)
        }
    });
    copy.map_err(|e| {
        CliError::internal(format!(
            "cannot copy {} to a temporary file: {e}",
            args.file.display()
        ))
    })?;
    Ok(input)
}

/// Holds the lock of every import of one content to one API (in the state directory), so that
/// the same file is not imported twice at once even with two different journals.
fn lock_content(
    content: &str,
    destination: &Destination,
) -> Result<Option<std::fs::File>, CliError> {
    let Some(dir) = plan::state_dir().map(|d| d.join("locks")) else {
        return Ok(None);
    };
    let path = dir.join(format!("{}.lock", plan::index_key(content, destination)));
    let file = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
    });
    // Without a usable state directory, the journal's own lock still guards the journal.
    let Ok(file) = file else {
        return Ok(None);
    };
    match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(Some(file)),
        Ok(false) => Err(CliError::usage(
            "another import of a file with the same content is running; nothing was sent. Wait \
             for it to finish (or stop it with Ctrl-C), then run this command again: it \
             continues where that one stopped",
        )),
        Err(_) => Ok(None),
    }
}

fn journal_error(error: journal::JournalError) -> CliError {
    match error {
        journal::JournalError::Io(..) => CliError::internal(format!(
            "{error}; nothing was sent. Check that the path can be written (its directory, its \
             permissions, the free space), then run the same command again"
        )),
        _ => CliError::usage(error.to_string()),
    }
}

pub(crate) async fn run(global: &GlobalArgs, args: ImportArgs) -> Result<Exit, CliError> {
    let format = input::detect_format(&args.file, args.format).map_err(CliError::usage)?;
    let input = {
        let args = args.clone();
        tokio::task::spawn_blocking(move || open_input(&args))
            .await
            .map_err(|e| CliError::internal(format!("reading the input failed: {e}")))??
    };
    let content = {
        let path = input.path.clone();
        tokio::task::spawn_blocking(move || plan::content_hash(&path))
            .await
            .map_err(|e| CliError::internal(format!("reading the input failed: {e}")))?
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", args.file.display())))?
    };

    // The key and URL are checked before the file is read, so that a missing key fails at once;
    // a dry run needs neither. The client never retries by itself: 429s pause every worker here.
    let connection = if args.dry_run {
        None
    } else {
        Some(crate::connect::connect(global, RetryPolicy::none()).await?)
    };
    let base_url = match &connection {
        Some(connection) => connection.client.base_url().to_string(),
        None => planned_base_url(global),
    };
    let destination = Destination {
        base_url: journal::normalize_url(&base_url),
        key_hash: journal::key_hash(&resolved_key(global)),
    };
    let (journal_path, found_by_content) = match &args.journal {
        Some(path) => (path.clone(), false),
        None => plan::find_journal(&args.file, &content, &destination),
    };
    let state = JournalState::load(&journal_path, &destination).map_err(journal_error)?;
    if args.undo {
        undo::check_journal(&state, &content, &destination, &args.file, &journal_path)?;
    }

    let plan = {
        let (path, state) = (input.path.clone(), state);
        tokio::task::spawn_blocking(move || plan::validate(&path, format, &state))
            .await
            .map_err(|e| CliError::internal(format!("the validation failed: {e}")))??
    };
    let mut errors: Vec<String> = plan.errors.iter().map(ToString::to_string).collect();
    let mut invalid = plan.invalid;
    // An undo reads a file that was imported: identical lines in it were allowed then.
    if !args.allow_duplicates && !args.undo && plan.duplicate_count > 0 {
        invalid += plan.duplicate_count;
        errors.extend(plan.duplicates.iter().map(|(line, first)| {
            format!(
                "line {line}: identical to line {first} (same call, text and flag); remove it, or \
                 pass --allow-duplicates to add it as one more note"
            )
        }));
    }
    if invalid > 0 {
        for error in errors.iter().take(plan::MAX_SHOWN_ERRORS) {
            output::err(&format!("error: {error}"));
        }
        if invalid as usize > errors.len().min(plan::MAX_SHOWN_ERRORS) {
            output::err(&format!(
                "error: ... and {} more invalid line(s)",
                invalid as usize - errors.len().min(plan::MAX_SHOWN_ERRORS)
            ));
        }
        return Err(CliError::usage(format!(
            "{} line{} of {} {} invalid; nothing was sent. Fix {} and run the command again \
             (lines already added are not sent again)",
            invalid,
            if invalid == 1 { "" } else { "s" },
            args.file.display(),
            if invalid == 1 { "is" } else { "are" },
            if invalid == 1 { "it" } else { "them" }
        )));
    }
    if args.undo {
        return run_undo(
            global,
            &args,
            Undo {
                connection,
                destination,
                journal_path,
                content,
                format,
                input: &input,
                repeated: &plan.repeated,
            },
        )
        .await;
    }
    let to_send = plan.lines
        - plan.done
        - if args.retry_unknown {
            0
        } else {
            plan.unknown_before
        };
    if args.dry_run {
        let new = plan.lines - plan.done - plan.failed_before - plan.unknown_before;
        output::err(&format!(
            "Dry run of {}: {} valid line{}; nothing was sent.\n  \
             would be sent:    {to_send} ({new} new, {} that failed before{})\n  \
             already added:    {}\n  \
             unknown outcome:  {} ({})",
            args.file.display(),
            plan.lines,
            if plan.lines == 1 { "" } else { "s" },
            plan.failed_before,
            if args.retry_unknown {
                format!(", {} with an unknown outcome", plan.unknown_before)
            } else {
                String::new()
            },
            plan.done,
            plan.unknown_before,
            match (args.no_reconcile, args.retry_unknown) {
                (true, true) => "sent again because of --retry-unknown",
                (true, false) => "not sent; --retry-unknown would send them",
                (false, true) => {
                    "looked up on their calls first; the undecided ones sent again because of \
                     --retry-unknown"
                }
                (false, false) => {
                    "looked up on their calls first; --retry-unknown would send the undecided ones"
                }
            }
        ));
        return Ok(Exit::Success);
    }
    let Some(connection) = connection else {
        return Err(CliError::internal("no connection"));
    };

    // One run at a time: the content's lock, then the journal's (taken before the journal is read
    // again, so that what it says cannot change under this run).
    let _content_lock = lock_content(&content, &destination)?;
    let (journal, state) =
        JournalWriter::open(&journal_path, &destination, args.fsync).map_err(journal_error)?;
    if found_by_content {
        output::err(&format!(
            "note: resuming the journal {} of a file with the same content",
            journal_path.display()
        ));
    }
    for line in &state.damaged {
        output::err(&format!(
            "warning: line {line} of the journal {} is damaged and was skipped (a line it \
             mentions counts as unknown)",
            journal_path.display()
        ));
    }
    if state.other_key {
        output::err(
            "note: earlier runs of this journal used another API key for this API; the lines they \
             added count as added (a note belongs to its call, whichever key added it)",
        );
    }
    if plan.orphans > 0 {
        output::err(&format!(
            "note: the journal records {} line(s) this file no longer has (edited or removed); \
             they are not sent",
            plan.orphans
        ));
    }
    let entry = Entry::run(
        &run_name(&args, &input),
        format_name(format),
        &content,
        &destination,
    );
    write_run_entry(&journal, &journal_path, &entry)?;
    plan::remember_journal(&content, &destination, &journal_path);
    let mut signals = dispatch::Signals::listen()?;
    let context = new_context(&connection, journal, global, &args);
    let stats = &context.stats;
    let mut summary = Summary {
        file: args.file.display().to_string(),
        journal: journal_path.display().to_string(),
        format: format_name(format),
        lines: plan.lines,
        ..Summary::default()
    };
    // Lines in doubt are looked up (and counted as processed) unless --no-reconcile.
    let progress_total = if args.no_reconcile || args.retry_unknown {
        to_send
    } else {
        to_send + plan.unknown_before
    };
    let progress = progress::Progress::start(
        progress_total,
        Arc::clone(stats),
        Arc::clone(&context.gate),
        global.verbose > 0,
    );
    let mut fatal = dispatch::dispatch(
        dispatch::Pass {
            args: &args,
            input: &input.path,
            format,
            state: &state,
            repeated: &plan.repeated,
        },
        &context,
        &mut summary,
        &mut signals,
    )
    .await;
    progress.finish().await;
    if fatal.is_none()
        && let Err(e) = context.journal.sync()
    {
        fatal = Some(CliError::internal(format!(
            "cannot write the journal {}: {e}",
            journal_path.display()
        )));
    }
    summary.rate_limited = stats.rate_limited.load(Ordering::Relaxed);
    summary.reconciled = summary::Reconciled::from_stats(stats);
    let exit = final_exit(&summary, fatal.as_mut());
    summary.exit_code = exit.code();
    summary.print_text();
    print_json(&args, &summary)?;
    match fatal {
        Some(error) => Err(error),
        None => Ok(exit),
    }
}

/// What `--undo` needs from the checks `run` made.
struct Undo<'a> {
    connection: Option<crate::connect::Connection>,
    destination: Destination,
    journal_path: PathBuf,
    content: String,
    format: Format,
    input: &'a Input,
    repeated: &'a std::collections::HashSet<u64>,
}

/// `--undo`, once the journal is known to record an import of this content to this API.
async fn run_undo(
    global: &GlobalArgs,
    args: &ImportArgs,
    undo: Undo<'_>,
) -> Result<Exit, CliError> {
    let Undo {
        connection,
        destination,
        journal_path,
        content,
        format,
        input,
        repeated,
    } = undo;
    if args.dry_run {
        let state =
            JournalState::load_keeping(&journal_path, &destination, true).map_err(journal_error)?;
        let (mut done, mut unknown, mut undone) = (0u64, 0u64, 0u64);
        for (_, line_state) in state.lines() {
            match line_state {
                journal::LineState::Done => done += 1,
                journal::LineState::Unknown { .. } => unknown += 1,
                journal::LineState::Undone => undone += 1,
                journal::LineState::Failed => {}
            }
        }
        output::err(&format!(
            "Dry run of the undo of {}: nothing was sent.\n  \
             would be deleted: {done}\n  \
             already deleted:  {undone}\n  \
             unknown outcome:  {unknown} (looked up on their calls first{})",
            args.file.display(),
            if args.no_reconcile {
                "; not with --no-reconcile"
            } else {
                ""
            }
        ));
        return Ok(Exit::Success);
    }
    let Some(connection) = connection else {
        return Err(CliError::internal("no connection"));
    };
    let _content_lock = lock_content(&content, &destination)?;
    let (journal, state) =
        JournalWriter::open_keeping(&journal_path, &destination, args.fsync, true)
            .map_err(journal_error)?;
    let mut entry = Entry::run(
        &run_name(args, input),
        format_name(format),
        &content,
        &destination,
    );
    entry.reason = Some("undo".to_string());
    write_run_entry(&journal, &journal_path, &entry)?;
    let mut signals = dispatch::Signals::listen()?;
    let context = new_context(&connection, journal, global, args);
    let mut summary = undo::UndoSummary::new(
        args.file.display().to_string(),
        journal_path.display().to_string(),
    );
    undo::undo(
        undo::UndoPass {
            input: &input.path,
            format,
            repeated,
            state: &state,
            reconcile: !args.no_reconcile,
            concurrency: args.concurrency,
        },
        &context,
        &mut summary,
        &mut signals,
    )
    .await;
    if let Err(e) = context.journal.sync() {
        summary.fatal_journal(CliError::internal(format!(
            "cannot write the journal {}: {e}",
            journal_path.display()
        )));
    }
    let exit = summary.exit();
    summary.exit_code = exit.code();
    output::err(&summary.render_text());
    print_json(args, &summary)?;
    match summary.take_fatal() {
        Some(mut error) => {
            error.exit = exit;
            Err(error)
        }
        None => Ok(exit),
    }
}

/// The file's name in the journal's `run` entry: its absolute path, or the name given for
/// standard input's temporary copy.
fn run_name(args: &ImportArgs, input: &Input) -> String {
    if input.temporary {
        args.file.display().to_string()
    } else {
        std::path::absolute(&args.file)
            .unwrap_or_else(|_| args.file.clone())
            .display()
            .to_string()
    }
}

/// Writes the journal's `run` entry, which comes before anything is sent.
fn write_run_entry(
    journal: &JournalWriter,
    journal_path: &std::path::Path,
    entry: &Entry,
) -> Result<(), CliError> {
    journal.write(entry).map_err(|e| {
        CliError::internal(format!(
            "cannot write the journal {}: {e}; nothing was sent",
            journal_path.display()
        ))
    })
}

/// What the workers of a run that sends share: the client, the journal, the retry policy that
/// `--max-retries` sets, and new counts.
fn new_context(
    connection: &crate::connect::Connection,
    journal: JournalWriter,
    global: &GlobalArgs,
    args: &ImportArgs,
) -> Arc<Context> {
    Arc::new(Context::new(
        connection.client.clone(),
        journal,
        RetryPolicy::default().max_retries(global.max_retries),
        args.fsync,
        Arc::new(Stats::default()),
    ))
}

/// Prints the summary as JSON on stdout, with `-o json`.
fn print_json(args: &ImportArgs, summary: &impl serde::Serialize) -> Result<(), CliError> {
    if args.output == Output::Json {
        let json = serde_json::to_string_pretty(summary)
            .map_err(|e| CliError::internal(format!("could not encode the summary: {e}")))?;
        output::out(&json);
    }
    Ok(())
}

/// The exit code of an import that got as far as sending. Unknown lines win over everything,
/// a local failure included, since they need a person to look before anything is re-sent; and
/// exit 2 ("nothing was sent") is never used once a request has gone out.
fn final_exit(summary: &Summary, fatal: Option<&mut CliError>) -> Exit {
    let exit = summary.exit();
    let Some(error) = fatal else {
        return exit;
    };
    if exit == Exit::Unknown {
        error.exit = Exit::Unknown;
    } else if error.exit == Exit::Usage && summary.sent() {
        error.exit = Exit::Internal;
    }
    error.exit
}

/// A new empty directory for one unit test.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "happyrobot-cli-unit-{name}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::summary::{LineResult, UnknownLine};

    #[test]
    fn exit_2_is_never_used_once_a_note_was_sent() {
        let stats = Stats::default();
        let mut summary = Summary::default();
        let mut error = CliError::usage("the file changed");
        assert_eq!(final_exit(&summary, Some(&mut error)), Exit::Usage);
        summary.record(LineResult::Added, &stats);
        let mut error = CliError::usage("the file changed");
        assert_eq!(final_exit(&summary, Some(&mut error)), Exit::Internal);
        assert_eq!(error.exit, Exit::Internal);
    }

    #[test]
    fn unknown_lines_are_never_hidden_by_a_local_failure() {
        let stats = Stats::default();
        let mut summary = Summary::default();
        summary.record(
            LineResult::Unknown(UnknownLine {
                line: 2,
                call_id: "c".into(),
                reason: "timeout".into(),
                earlier_run: false,
            }),
            &stats,
        );
        let mut error = CliError::internal("cannot write the journal");
        assert_eq!(final_exit(&summary, Some(&mut error)), Exit::Unknown);
        assert_eq!(error.exit, Exit::Unknown);
        assert_eq!(final_exit(&summary, None), Exit::Unknown);
    }

    #[test]
    fn note_ids_look_like_object_ids() {
        let a = happyrobot::new_note_id();
        let b = happyrobot::new_note_id();
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 24);
            assert!(
                id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
        }
    }
}
