//! `happyrobot notes import`: a file of notes, checked whole, then sent with bounded concurrency,
//! a shared pause on 429, safe retries, and a journal that makes a re-run resume without ever
//! sending a line twice by accident.

mod gate;
mod input;
mod journal;
mod progress;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use happyrobot::{Client, RetryAction, RetryPolicy, RetryReason};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use self::gate::Gate;
use self::input::{Item, LineError, Record, Records};
use self::journal::{Entry, Event, JournalState, JournalWriter, LineState};
use crate::exit::{self, CliError, Exit};
use crate::{Format, GlobalArgs, ImportArgs, Output};

/// How many invalid lines are printed before the rest are only counted.
const MAX_SHOWN_ERRORS: usize = 20;
/// How many failed or unknown lines the summary keeps in memory (the journal has them all).
const MAX_LISTED: usize = 1000;
/// How many of them the text summary prints.
const MAX_PRINTED: usize = 20;

/// The journal beside the file: `notes.csv` gets `notes.csv.journal`.
fn default_journal(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
    }
}

/// What the validation pass found.
#[derive(Debug, Default)]
struct Plan {
    /// Valid lines.
    lines: u64,
    invalid: u64,
    /// The first invalid lines, to print.
    errors: Vec<LineError>,
    /// Valid lines the journal has as done, failed, unknown; the rest are new.
    done: u64,
    failed_before: u64,
    unknown_before: u64,
}

/// Reads the whole file once, checking every line and comparing it with the journal.
fn validate(
    path: &Path,
    format: Format,
    state: &JournalState,
    journal: &Path,
) -> Result<Plan, CliError> {
    let records = Records::open(path, format)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    let mut plan = Plan::default();
    let mut matched = 0usize;
    for item in records {
        let item =
            item.map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        match item {
            Item::Invalid(error) => {
                plan.invalid += 1;
                if plan.errors.len() < MAX_SHOWN_ERRORS {
                    plan.errors.push(error);
                }
            }
            Item::Valid(record) => {
                plan.lines += 1;
                let Some((fingerprint, line_state)) = state.get(record.line) else {
                    continue;
                };
                if fingerprint != record.fingerprint {
                    return Err(foreign_journal(journal, path, record.line));
                }
                matched += 1;
                match line_state {
                    LineState::Done => plan.done += 1,
                    LineState::Failed => plan.failed_before += 1,
                    LineState::Unknown { .. } => plan.unknown_before += 1,
                }
            }
        }
    }
    // Lines the journal knows but the file lacks: a shorter or different file.
    if plan.invalid == 0 && matched < state.len() {
        return Err(CliError::usage(format!(
            "the journal {} records {} line(s) that {} does not have: it belongs to another file. \
             Import this file with a new journal (--journal PATH), or restore the original file to resume",
            journal.display(),
            state.len() - matched,
            path.display()
        )));
    }
    Ok(plan)
}

fn foreign_journal(journal: &Path, file: &Path, line: u64) -> CliError {
    CliError::usage(format!(
        "the journal {} was written for a different file: line {line} of {} is not the line it \
         recorded (the file was edited, or this is another file). Import this file with a new \
         journal (--journal PATH), or restore the original file to resume",
        journal.display(),
        file.display()
    ))
}

/// Counters shared with the progress display.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) processed: AtomicU64,
    pub(crate) added: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) unknown: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
}

/// What the workers share.
struct Context {
    client: Client,
    journal: JournalWriter,
    gate: Arc<Gate>,
    /// The retry policy asked after each failure (the client itself is told not to retry, so that
    /// a 429 pauses every worker through the gate).
    retry: RetryPolicy,
    fsync: bool,
    stats: Arc<Stats>,
    /// Set when no further line should be sent (the key was rejected, the journal failed).
    stop: AtomicBool,
}

impl Context {
    /// Writes a journal entry. With fsync each write waits for the disk, so it is moved off the
    /// async worker threads' hot path; without, it is a plain write to the OS, in microseconds.
    fn write(&self, entry: &Entry) -> std::io::Result<()> {
        if self.fsync {
            tokio::task::block_in_place(|| self.journal.write(entry))
        } else {
            self.journal.write(entry)
        }
    }
}

/// Lists up to [`MAX_PRINTED`] of `count` lines (line number, call, reason) in file order, and says
/// how many more the journal holds.
fn list_lines<'a>(
    out: &mut Vec<String>,
    count: usize,
    listed: impl Iterator<Item = (u64, &'a str, &'a str)>,
) {
    let mut listed: Vec<_> = listed.collect();
    listed.sort_by_key(|(line, _, _)| *line);
    for (line, call_id, reason) in listed.iter().take(MAX_PRINTED) {
        out.push(format!("    line {line} (call {call_id}): {reason}"));
    }
    if count > MAX_PRINTED {
        out.push(format!(
            "    ... and {} more (see the journal)",
            count - MAX_PRINTED
        ));
    }
}

/// A failed line, for the summary.
#[derive(Debug, Clone, Serialize)]
struct FailedLine {
    line: u64,
    call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    exit_code: u8,
    reason: String,
}

/// A line whose outcome is unknown, for the summary.
#[derive(Debug, Clone, Serialize)]
struct UnknownLine {
    line: u64,
    call_id: String,
    reason: String,
    /// Whether it became unknown in an earlier run (and was not sent again in this one).
    earlier_run: bool,
}

/// What became of one line.
enum LineResult {
    Added,
    Failed(FailedLine, Exit),
    Unknown(UnknownLine),
    /// Not sent, because the import stopped first (journaled as failed, so a re-run sends it).
    NotSent,
    /// The journal could not be written before sending: the line was not sent.
    JournalFailed(CliError),
}

/// The outcome of the whole import.
#[derive(Debug, Default, Serialize)]
struct Summary {
    file: String,
    journal: String,
    format: &'static str,
    /// Valid lines in the file.
    lines: u64,
    added: u64,
    /// Lines an earlier run had already added.
    skipped: u64,
    failed: u64,
    unknown: u64,
    /// Lines not sent because the import stopped early.
    not_sent: u64,
    rate_limited: u64,
    interrupted: bool,
    exit_code: u8,
    failed_lines: Vec<FailedLine>,
    unknown_lines: Vec<UnknownLine>,
    #[serde(skip)]
    worst_failure: Option<Exit>,
    #[serde(skip)]
    auth_rejected: bool,
}

impl Summary {
    fn record(&mut self, result: LineResult, stats: &Stats) -> Option<CliError> {
        stats.processed.fetch_add(1, Ordering::Relaxed);
        match result {
            LineResult::Added => {
                self.added += 1;
                stats.added.fetch_add(1, Ordering::Relaxed);
            }
            LineResult::Failed(line, exit) => {
                self.failed += 1;
                stats.failed.fetch_add(1, Ordering::Relaxed);
                if exit == Exit::Auth {
                    self.auth_rejected = true;
                }
                self.worst_failure = self.worst_failure.max(Some(exit));
                if self.failed_lines.len() < MAX_LISTED {
                    self.failed_lines.push(line);
                }
            }
            LineResult::Unknown(line) => self.unknown(line, stats),
            LineResult::NotSent => {}
            LineResult::JournalFailed(error) => return Some(error),
        }
        None
    }

    fn unknown(&mut self, line: UnknownLine, stats: &Stats) {
        self.unknown += 1;
        stats.unknown.fetch_add(1, Ordering::Relaxed);
        if self.unknown_lines.len() < MAX_LISTED {
            self.unknown_lines.push(line);
        }
    }

    /// The exit code: unknown outcomes first (they need a person to look), then a rejected key,
    /// an interruption, and the worst failure.
    fn exit(&self) -> Exit {
        if self.unknown > 0 {
            Exit::Unknown
        } else if self.auth_rejected {
            Exit::Auth
        } else if self.interrupted {
            Exit::Interrupted
        } else {
            self.worst_failure.unwrap_or(Exit::Success)
        }
    }

    fn print_text(&self) {
        let mut err = std::io::stderr().lock();
        let mut lines = vec![format!(
            "Import of {} ({}): {} line{}",
            self.file,
            self.format,
            self.lines,
            if self.lines == 1 { "" } else { "s" }
        )];
        lines.push(format!("  added:    {}", self.added));
        lines.push(format!(
            "  skipped:  {} (already added by an earlier run)",
            self.skipped
        ));
        lines.push(format!("  failed:   {}", self.failed));
        list_lines(
            &mut lines,
            self.failed as usize,
            self.failed_lines
                .iter()
                .map(|f| (f.line, f.call_id.as_str(), f.reason.as_str())),
        );
        lines.push(format!("  unknown:  {}", self.unknown));
        list_lines(
            &mut lines,
            self.unknown as usize,
            self.unknown_lines
                .iter()
                .map(|u| (u.line, u.call_id.as_str(), u.reason.as_str())),
        );
        if self.unknown > 0 {
            lines.push(
                "  These notes may have been added: check the calls, then run the same command \
                 with --retry-unknown to send them again if they are missing."
                    .to_string(),
            );
        }
        if self.not_sent > 0 {
            lines.push(format!(
                "  not sent: {} (the import stopped early; run the same command to continue)",
                self.not_sent
            ));
        }
        if self.rate_limited > 0 {
            lines.push(format!(
                "  rate limited {} time{} (all requests paused as the API asked)",
                self.rate_limited,
                if self.rate_limited == 1 { "" } else { "s" }
            ));
        }
        if self.interrupted {
            lines.push("  interrupted: run the same command to continue".to_string());
        }
        if self.failed > 0 {
            lines.push(
                "  Failed lines were certainly not added; a re-run sends them again.".to_string(),
            );
        }
        lines.push(format!("Journal: {}", self.journal));
        let _ = writeln!(err, "{}", lines.join("\n"));
    }
}

/// Sends one line, retrying only what certainly was not applied, and journals it before and after.
async fn send_line(context: Arc<Context>, record: Record) -> LineResult {
    let call_id = record.call_id.to_string();
    let mut start = Entry::line(Event::Start, record.line, record.fingerprint);
    start.call_id = Some(call_id.clone());
    if let Err(e) = context.write(&start) {
        context.stop.store(true, Ordering::Relaxed);
        return LineResult::JournalFailed(CliError::internal(format!(
            "cannot write the journal: {e}; the import stopped (line {} was not sent)",
            record.line
        )));
    }
    let mut retries = 0;
    let (event, result) = loop {
        context.gate.wait().await;
        if context.stop.load(Ordering::Relaxed) {
            let entry = Entry {
                reason: Some("not sent: the import stopped".to_string()),
                ..Entry::line(Event::Failed, record.line, record.fingerprint)
            };
            break (entry, LineResult::NotSent);
        }
        let error = match context
            .client
            .add_note(&record.call_id, record.note.clone())
            .await
        {
            Ok(call) => {
                let note_id = call
                    .notes
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .find_map(|n| {
                        (n.content.as_deref() == Some(record.note.content()))
                            .then(|| n.id.clone())
                            .flatten()
                    });
                break (
                    Entry {
                        note_id,
                        ..Entry::line(Event::Done, record.line, record.fingerprint)
                    },
                    LineResult::Added,
                );
            }
            Err(error) => error,
        };
        if error.note_was_added() {
            tracing::warn!(line = record.line, error = %error, "note added, answer unreadable");
            break (
                Entry {
                    reason: Some(error.to_string()),
                    ..Entry::line(Event::Done, record.line, record.fingerprint)
                },
                LineResult::Added,
            );
        }
        // The library's one retry decision: the same rules, caps and backoff as a single add.
        if let RetryAction::Retry { after, reason } = context.retry.decide(&error, retries) {
            if reason == RetryReason::RateLimited {
                context.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    line = record.line,
                    wait_ms = after.as_millis() as u64,
                    "rate limited; pausing every request"
                );
                context.gate.pause(after);
            } else {
                tracing::info!(line = record.line, wait_ms = after.as_millis() as u64, reason = reason.as_str(), error = %error, "retrying");
                tokio::time::sleep(after).await;
            }
            retries += 1;
            continue;
        }
        let reason = error.to_string();
        let status = error.status().map(|s| s.as_u16());
        let code = exit::exit_for(&error);
        if exit::outcome_unknown(&error) {
            break (
                Entry {
                    status,
                    reason: Some(reason.clone()),
                    call_id: Some(call_id.clone()),
                    ..Entry::line(Event::Unknown, record.line, record.fingerprint)
                },
                LineResult::Unknown(UnknownLine {
                    line: record.line,
                    call_id,
                    reason,
                    earlier_run: false,
                }),
            );
        }
        if code == Exit::Auth {
            // Every other line would be rejected the same way: stop sending.
            context.stop.store(true, Ordering::Relaxed);
        }
        break (
            Entry {
                status,
                exit: Some(code.code()),
                reason: Some(reason.clone()),
                ..Entry::line(Event::Failed, record.line, record.fingerprint)
            },
            LineResult::Failed(
                FailedLine {
                    line: record.line,
                    call_id,
                    status,
                    exit_code: code.code(),
                    reason,
                },
                code,
            ),
        );
    };
    if let Err(e) = context.write(&event) {
        // The line stays "started" in the journal, so a re-run reports it as unknown: safe.
        context.stop.store(true, Ordering::Relaxed);
        tracing::error!(error = %e, "cannot write the journal");
        return LineResult::JournalFailed(CliError::internal(format!(
            "cannot write the journal: {e}; the import stopped (line {} is recorded as in flight)",
            record.line
        )));
    }
    result
}

pub(crate) async fn run(global: &GlobalArgs, args: ImportArgs) -> Result<Exit, CliError> {
    let format = input::detect_format(&args.file, args.format).map_err(CliError::usage)?;
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&args.file));
    if !args.file.is_file() {
        return Err(CliError::usage(format!(
            "cannot read {}: no such file",
            args.file.display()
        )));
    }
    let state = JournalState::load(&journal_path).map_err(|e| match e {
        journal::JournalError::Io(..) => CliError::internal(e.to_string()),
        journal::JournalError::Corrupt { .. } => CliError::usage(e.to_string()),
    })?;

    // The key and URL are checked before the file is read, so that a missing key fails at once;
    // a dry run needs neither. The client never retries by itself: 429s pause every worker here.
    let connection = if args.dry_run {
        None
    } else {
        Some(crate::connect::connect(global, RetryPolicy::none()).await?)
    };

    let state = Arc::new(state);
    let plan = {
        let (file, state, journal) = (args.file.clone(), Arc::clone(&state), journal_path.clone());
        tokio::task::spawn_blocking(move || validate(&file, format, &state, &journal))
            .await
            .map_err(|e| CliError::internal(format!("the validation failed: {e}")))??
    };
    if plan.invalid > 0 {
        let mut err = std::io::stderr().lock();
        for error in &plan.errors {
            let _ = writeln!(err, "error: {error}");
        }
        if plan.invalid as usize > plan.errors.len() {
            let _ = writeln!(
                err,
                "error: ... and {} more invalid line(s)",
                plan.invalid as usize - plan.errors.len()
            );
        }
        return Err(CliError::usage(format!(
            "{} line{} of {} {} invalid; nothing was sent. Fix {} and run the command again",
            plan.invalid,
            if plan.invalid == 1 { "" } else { "s" },
            args.file.display(),
            if plan.invalid == 1 { "is" } else { "are" },
            if plan.invalid == 1 { "it" } else { "them" }
        )));
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
        eprintln!(
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
            if args.retry_unknown {
                "sent again because of --retry-unknown"
            } else {
                "not sent; --retry-unknown would send them"
            }
        );
        return Ok(Exit::Success);
    }
    let Some(connection) = connection else {
        return Err(CliError::internal("no connection"));
    };

    let journal = JournalWriter::open(&journal_path, &state, args.fsync).map_err(|e| {
        CliError::internal(format!(
            "cannot write the journal {}: {e}",
            journal_path.display()
        ))
    })?;
    journal
        .write(&Entry::run(&args.file, format_name(format)))
        .map_err(|e| {
            CliError::internal(format!(
                "cannot write the journal {}: {e}",
                journal_path.display()
            ))
        })?;
    let stats = Arc::new(Stats::default());
    let context = Arc::new(Context {
        client: connection.client.clone(),
        journal,
        gate: Arc::new(Gate::default()),
        retry: RetryPolicy::default().max_retries(global.max_retries),
        fsync: args.fsync,
        stats: Arc::clone(&stats),
        stop: AtomicBool::new(false),
    });
    let mut summary = Summary {
        file: args.file.display().to_string(),
        journal: journal_path.display().to_string(),
        format: format_name(format),
        lines: plan.lines,
        ..Summary::default()
    };
    let progress = progress::Progress::start(
        to_send,
        Arc::clone(&stats),
        Arc::clone(&context.gate),
        global.verbose > 0,
    );
    let fatal = dispatch(&args, format, &state, &context, &mut summary).await;
    progress.finish().await;
    summary.rate_limited = stats.rate_limited.load(Ordering::Relaxed);
    let exit = summary.exit();
    summary.exit_code = match &fatal {
        Some(error) => error.exit.code(),
        None => exit.code(),
    };
    summary.print_text();
    if args.output == Output::Json {
        let json = serde_json::to_string_pretty(&summary)
            .map_err(|e| CliError::internal(format!("could not encode the summary: {e}")))?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}").and_then(|()| out.flush());
    }
    match fatal {
        Some(error) => Err(error),
        None => Ok(exit),
    }
}

/// The send pass: reads the file again, skips what the journal says not to send, and keeps at
/// most `--concurrency` lines in flight. Returns the error that stopped it early, if any.
async fn dispatch(
    args: &ImportArgs,
    format: Format,
    state: &JournalState,
    context: &Arc<Context>,
    summary: &mut Summary,
) -> Option<CliError> {
    // The file is read on a blocking thread into a small channel: memory stays flat whatever
    // the file's size, and reading ahead stops when the workers are busy.
    let (sender, mut receiver) = mpsc::channel::<std::io::Result<Item>>(256);
    let reader = {
        let file = args.file.clone();
        tokio::task::spawn_blocking(move || match Records::open(&file, format) {
            Ok(records) => {
                for item in records {
                    if sender.blocking_send(item).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = sender.blocking_send(Err(e));
            }
        })
    };
    let semaphore = Arc::new(Semaphore::new(usize::from(args.concurrency)));
    let mut tasks: JoinSet<LineResult> = JoinSet::new();
    let mut fatal: Option<CliError> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        while let Some(done) = tasks.try_join_next() {
            reap(done, summary, context, &mut fatal);
        }
        if context.stop.load(Ordering::Relaxed) || fatal.is_some() {
            break;
        }
        let item = tokio::select! {
            _ = &mut ctrl_c => {
                interrupted(summary);
                break;
            }
            item = receiver.recv() => item,
        };
        let record = match item {
            None => break,
            Some(Ok(Item::Valid(record))) => record,
            Some(Ok(Item::Invalid(error))) => {
                fatal = Some(CliError::usage(format!(
                    "{} changed while it was being imported ({error}); the import stopped",
                    args.file.display()
                )));
                break;
            }
            Some(Err(e)) => {
                fatal = Some(CliError::usage(format!(
                    "cannot read {}: {e}",
                    args.file.display()
                )));
                break;
            }
        };
        match state.get(record.line) {
            Some((fingerprint, _)) if fingerprint != record.fingerprint => {
                fatal = Some(CliError::usage(format!(
                    "{} changed while it was being imported (line {}); the import stopped",
                    args.file.display(),
                    record.line
                )));
                break;
            }
            Some((_, LineState::Done)) => {
                summary.skipped += 1;
                continue;
            }
            Some((_, LineState::Unknown { interrupted })) if !args.retry_unknown => {
                let reason = if interrupted {
                    "an earlier run stopped while it was being sent"
                } else {
                    "an earlier run could not tell whether it was added"
                };
                summary.unknown(
                    UnknownLine {
                        line: record.line,
                        call_id: record.call_id.to_string(),
                        reason: reason.to_string(),
                        earlier_run: true,
                    },
                    &context.stats,
                );
                continue;
            }
            _ => {}
        }
        let permit = tokio::select! {
            _ = &mut ctrl_c => {
                interrupted(summary);
                break;
            }
            permit = Arc::clone(&semaphore).acquire_owned() => permit,
        };
        let Ok(permit) = permit else {
            break;
        };
        let context = Arc::clone(context);
        tasks.spawn(async move {
            let result = send_line(context, record).await;
            drop(permit);
            result
        });
    }
    // Stop reading; let the lines in flight finish, so that their outcomes are journaled.
    drop(receiver);
    if summary.interrupted {
        eprintln!(
            "Interrupted: waiting for the requests in flight (Ctrl-C again to quit now; they would be reported as unknown on the next run)"
        );
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(Exit::Interrupted.code()));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        reap(done, summary, context, &mut fatal);
    }
    let _ = reader.await;
    // Every valid line is added, skipped, failed, unknown, or else was not sent.
    summary.not_sent = summary
        .lines
        .saturating_sub(summary.added + summary.skipped + summary.failed + summary.unknown);
    fatal
}

fn interrupted(summary: &mut Summary) {
    summary.interrupted = true;
}

fn reap(
    done: Result<LineResult, tokio::task::JoinError>,
    summary: &mut Summary,
    context: &Context,
    fatal: &mut Option<CliError>,
) {
    match done {
        Ok(result) => {
            if let Some(error) = summary.record(result, &context.stats) {
                fatal.get_or_insert(error);
            }
        }
        Err(e) => {
            context.stop.store(true, Ordering::Relaxed);
            fatal.get_or_insert(CliError::internal(format!("a worker failed: {e}")));
        }
    }
}
