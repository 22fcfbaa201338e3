//! The send pass: reads the file again, skips what the journal says not to send, keeps at most
//! `--concurrency` lines in flight, and stops cleanly on Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::args::{Format, ImportArgs};
use super::input::{Item, Records};
use super::journal::{JournalState, LineState};
use super::send::{Context, send_line};
use super::summary::{LineResult, Summary, UnknownLine};
use crate::exit::{CliError, Exit};

/// The send pass: reads the file again, skips what the journal says not to send, and keeps at
/// most `--concurrency` lines in flight. Returns the error that stopped it early, if any.
pub(crate) async fn dispatch(
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
        crate::output::err(
            "Interrupted: waiting for the requests in flight (Ctrl-C again to quit now; they would be reported as unknown on the next run)",
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
            fsync: false,
            output: Output::Text,
        };
        let journal = dir.join("j");
        let context = context(&server, &journal);
        let mut summary = Summary {
            lines: 20,
            ..Summary::default()
        };
        let fatal = dispatch(
            &args,
            Format::Csv,
            &JournalState::default(),
            &context,
            &mut summary,
        )
        .await;
        assert!(fatal.is_none());
        assert_eq!((summary.added, summary.not_sent), (20, 0));
        assert_eq!(server.created_note_count(), 20);

        // With the journal of that run, nothing is sent again.
        let state = JournalState::load(&journal).unwrap();
        let mut again = Summary {
            lines: 20,
            ..Summary::default()
        };
        assert!(
            dispatch(&args, Format::Csv, &state, &context, &mut again)
                .await
                .is_none()
        );
        assert_eq!((again.added, again.skipped), (0, 20));
        assert_eq!(server.created_note_count(), 20);
    }
}
