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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use happyrobot::RetryPolicy;

use self::args::{Format, ImportArgs};
use self::gate::Gate;
use self::journal::{Entry, JournalState, JournalWriter};
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
}

pub(crate) async fn run(global: &GlobalArgs, args: ImportArgs) -> Result<Exit, CliError> {
    let format = input::detect_format(&args.file, args.format).map_err(CliError::usage)?;
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| plan::default_journal(&args.file));
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
        tokio::task::spawn_blocking(move || plan::validate(&file, format, &state, &journal))
            .await
            .map_err(|e| CliError::internal(format!("the validation failed: {e}")))??
    };
    if plan.invalid > 0 {
        for error in &plan.errors {
            output::err(&format!("error: {error}"));
        }
        if plan.invalid as usize > plan.errors.len() {
            output::err(&format!(
                "error: ... and {} more invalid line(s)",
                plan.invalid as usize - plan.errors.len()
            ));
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
            if args.retry_unknown {
                "sent again because of --retry-unknown"
            } else {
                "not sent; --retry-unknown would send them"
            }
        ));
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
        max_retries: global.max_retries,
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
    let fatal = dispatch::dispatch(&args, format, &state, &context, &mut summary).await;
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
        output::out(&json);
    }
    match fatal {
        Some(error) => Err(error),
        None => Ok(exit),
    }
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
