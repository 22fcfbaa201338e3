//! The send pass: reads the file again, skips what the journal says not to send, keeps at most
//! `--concurrency` lines in flight, and stops cleanly on SIGINT, SIGTERM or SIGHUP.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::args::{Format, ImportArgs};
use super::input::{Item, Occurrences, Records};
use super::journal::{JournalState, LineState};
use super::send::{Context, reconcile_line, send_line};
use super::summary::{LineResult, Summary, UnknownLine};
use crate::exit::{CliError, Exit};

/// The signals that stop an import: the first lets the lines in flight finish, a second one
/// ends the process at once.
pub(crate) struct Signals {
    #[cfg(unix)]
    streams: Vec<(tokio::signal::unix::Signal, Exit)>,
}

impl Signals {
    /// Starts listening (before any line is sent, so that none of them kills the process
    /// outright).
    pub(crate) fn listen() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut streams = Vec::new();
            for (kind, exit) in [
                (SignalKind::interrupt(), Exit::Interrupted),
                (SignalKind::terminate(), Exit::Terminated),
                (SignalKind::hangup(), Exit::HangUp),
            ] {
                let stream = signal(kind)
                    .map_err(|e| CliError::internal(format!("cannot listen for signals: {e}")))?;
                streams.push((stream, exit));
            }
            Ok(Self { streams })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next signal, and says which exit code it calls for.
    pub(crate) async fn next(&mut self) -> Exit {
        #[cfg(unix)]
        {
            let waits = self.streams.iter_mut().map(|(stream, exit)| {
                let exit = *exit;
                Box::pin(async move {
                    stream.recv().await;
                    exit
                })
            });
            futures_select_all(waits).await
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Exit::Interrupted
        }
    }
}

/// The first of several futures to finish (three signal streams: no need for a crate).
async fn futures_select_all<F>(futures: impl Iterator<Item = std::pin::Pin<Box<F>>>) -> Exit
where
    F: std::future::Future<Output = Exit>,
{
    let mut futures: Vec<_> = futures.collect();
    std::future::poll_fn(move |cx| {
        for future in &mut futures {
            if let std::task::Poll::Ready(exit) = future.as_mut().poll(cx) {
                return std::task::Poll::Ready(exit);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// What the send pass reads: the options, the input, and what the journal and the check found.
pub(crate) struct Pass<'a> {
    pub(crate) args: &'a ImportArgs,
    /// The input as a regular file (a copy of standard input or a pipe).
    pub(crate) input: &'a std::path::Path,
    pub(crate) format: Format,
    pub(crate) state: &'a JournalState,
    /// The fingerprints of lines that occur more than once.
    pub(crate) repeated: &'a HashSet<u64>,
}

/// The send pass: reads the file again, skips what the journal says not to send, and keeps at
/// most `--concurrency` lines in flight. Returns the error that stopped it early, if any.
pub(crate) async fn dispatch(
    pass: Pass<'_>,
    context: &Arc<Context>,
    summary: &mut Summary,
    signals: &mut Signals,
) -> Option<CliError> {
    let Pass {
        args,
        input,
        format,
        state,
        repeated,
    } = pass;
    // The file is read on a blocking thread into a small channel: memory stays flat whatever
    // the file's size, and reading ahead stops when the workers are busy.
    let (sender, mut receiver) = mpsc::channel::<std::io::Result<Item>>(256);
    let reader = {
        let file = input.to_path_buf();
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
    // Lookups of unknown outcomes: mostly waiting (the settle delay between two looks), so more
    // of them run at once than sends.
    let lookups = Arc::new(Semaphore::new(usize::from(args.concurrency).max(16)));
    let mut tasks: JoinSet<LineResult> = JoinSet::new();
    let mut fatal: Option<CliError> = None;
    let mut occurrences = Occurrences::new(repeated);
    let changed = |what: String| {
        CliError::usage(format!(
            "{} changed while it was being imported ({what}); the import stopped. Run the same \
             command again: the lines already added are not sent again",
            args.file.display()
        ))
    };
    loop {
        while let Some(done) = tasks.try_join_next() {
            reap(done, summary, context, &mut fatal);
        }
        if context.is_stopped() || fatal.is_some() {
            break;
        }
        let item = tokio::select! {
            exit = signals.next() => {
                interrupted_by(summary, context, exit);
                break;
            }
            item = receiver.recv() => item,
        };
        let mut record = match item {
            None => break,
            Some(Ok(Item::Valid(record))) => record,
            Some(Ok(Item::Invalid(error))) => {
                fatal = Some(changed(error.to_string()));
                break;
            }
            Some(Err(e)) => {
                fatal = Some(CliError::usage(format!(
                    "cannot read {}: {e}; the import stopped. Run the same command again: the \
                     lines already added are not sent again",
                    args.file.display()
                )));
                break;
            }
        };
        let key = occurrences.key(&mut record);
        match state.get(key) {
            Some(LineState::Done) => {
                summary.skipped += 1;
                continue;
            }
            Some(LineState::Unknown { interrupted }) => {
                let reason = if interrupted {
                    "an earlier run stopped while it was being sent"
                } else {
                    "an earlier run could not tell whether it was added"
                };
                // The note ID it was sent with, to look it up on the call.
                let note_id = state
                    .note(key)
                    .and_then(|n| n.note_id.clone())
                    .filter(|_| !args.no_reconcile);
                if let Some(note_id) = note_id {
                    let permit = tokio::select! {
                        exit = signals.next() => {
                            interrupted_by(summary, context, exit);
                            break;
                        }
                        permit = Arc::clone(&lookups).acquire_owned() => permit,
                    };
                    let Ok(permit) = permit else {
                        break;
                    };
                    let context = Arc::clone(context);
                    let semaphore = Arc::clone(&semaphore);
                    let retry_unknown = args.retry_unknown;
                    tasks.spawn(async move {
                        let result =
                            reconcile_line(&context, &record, &note_id, true, reason).await;
                        drop(permit);
                        match result {
                            // Undecided: sent again only when asked, as without reconciliation.
                            LineResult::Unknown(_) if retry_unknown && !context.is_stopped() => {
                                let Ok(_permit) = semaphore.acquire_owned().await else {
                                    return LineResult::NotSent;
                                };
                                send_line(&context, &record).await.0
                            }
                            other => other,
                        }
                    });
                    continue;
                }
                if !args.retry_unknown {
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
            }
            _ => {}
        }
        let permit = tokio::select! {
            exit = signals.next() => {
                interrupted_by(summary, context, exit);
                break;
            }
            permit = Arc::clone(&semaphore).acquire_owned() => permit,
        };
        let Ok(permit) = permit else {
            break;
        };
        let context = Arc::clone(context);
        let lookups = Arc::clone(&lookups);
        let reconcile = !args.no_reconcile;
        tasks.spawn(async move {
            let (result, note_id) = send_line(&context, &record).await;
            // The send's slot is freed before looking up: a lookup waits a few seconds.
            drop(permit);
            match result {
                LineResult::Unknown(line) if reconcile => {
                    let Ok(_permit) = lookups.acquire_owned().await else {
                        return LineResult::Unknown(line);
                    };
                    reconcile_line(&context, &record, &note_id, false, &line.reason).await
                }
                other => other,
            }
        });
    }
    // Stop reading; let the lines in flight finish, so that their outcomes are journaled. A
    // signal now stops the rest; a second one ends the process at once.
    drop(receiver);
    let mut announced = false;
    loop {
        if summary.signal.is_some() && !announced {
            announced = true;
            crate::output::err(
                "Interrupted: waiting for the requests in flight (interrupt again to quit now; \
                 they would be reported as unknown on the next run)",
            );
        }
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(done) => reap(done, summary, context, &mut fatal),
                None => break,
            },
            exit = signals.next() => {
                if summary.signal.is_some() {
                    crate::output::err("Interrupted again: quitting now");
                    std::process::exit(i32::from(exit.code()));
                }
                interrupted_by(summary, context, exit);
            }
        }
    }
    let _ = reader.await;
    // Every valid line is added, skipped, failed, unknown, or else was not sent.
    summary.not_sent = summary
        .lines
        .saturating_sub(summary.added + summary.skipped + summary.failed + summary.unknown);
    // Lines left over with nothing to explain them: the file got shorter while it was read.
    if summary.not_sent > 0 && fatal.is_none() && !context.is_stopped() {
        fatal = Some(changed(format!(
            "it ended {} line(s) early",
            summary.not_sent
        )));
    }
    fatal
}

/// The first signal: no new line is sent, and lines waiting out a pause give up.
fn interrupted_by(summary: &mut Summary, context: &Context, exit: Exit) {
    summary.interrupted = true;
    summary.signal.get_or_insert(exit);
    context.stop();
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
            context.stop();
            fatal.get_or_insert(CliError::internal(format!("a worker failed: {e}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::send::tests::context;
    use crate::output::Output;
    use happyrobot_mock::{FIRST_CALL_ID, MockServer};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_line_not_done_is_sent_once() {
        let server = MockServer::start().await.unwrap();
        let dir = crate::import::test_dir("dispatch");
        let file = dir.join("notes.csv");
        let mut text = String::from("call_id,content\n");
        for n in 0..20 {
            text.push_str(&format!("{FIRST_CALL_ID},note {n}\n"));
        }
        std::fs::write(&file, text).unwrap();
        let args = ImportArgs {
            file: file.clone(),
            format: None,
            concurrency: 4,
            journal: None,
            dry_run: false,
            retry_unknown: false,
            no_reconcile: false,
            undo: false,
            allow_duplicates: false,
            fsync: false,
            output: Output::Text,
        };
        let journal = dir.join("j");
        let context = context(&server, &journal);
        let mut summary = Summary {
            lines: 20,
            ..Summary::default()
        };
        let mut signals = Signals::listen().unwrap();
        let fatal = dispatch(
            Pass {
                args: &args,
                input: &file,
                format: Format::Csv,
                state: &JournalState::default(),
                repeated: &HashSet::new(),
            },
            &context,
            &mut summary,
            &mut signals,
        )
        .await;
        assert!(fatal.is_none());
        assert_eq!((summary.added, summary.not_sent), (20, 0));
        assert_eq!(server.created_note_count(), 20);

        // With the journal of that run, nothing is sent again.
        let state = JournalState::load(&journal, &crate::import::send::tests::destination(&server))
            .unwrap();
        let mut again = Summary {
            lines: 20,
            ..Summary::default()
        };
        assert!(
            dispatch(
                Pass {
                    args: &args,
                    input: &file,
                    format: Format::Csv,
                    state: &state,
                    repeated: &HashSet::new(),
                },
                &context,
                &mut again,
                &mut signals
            )
            .await
            .is_none()
        );
        assert_eq!((again.added, again.skipped), (0, 20));
        assert_eq!(server.created_note_count(), 20);
    }
}
