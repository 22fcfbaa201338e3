//! The one pass driver of imports and undos: it reads the input again on a blocking thread (memory
//! stays flat, and reading ahead stops when the workers are busy), hands each line to the caller's
//! `start`, which either settles it at once or returns a job, keeps a bounded number of jobs
//! alive, stops taking lines when the stop token is cancelled, and drains the jobs in flight, so
//! that every request sent has its outcome journaled and counted.

use std::future::Future;
use std::io;
use std::sync::Arc;

use happyrobot::CancellationToken;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::ReadOptions;
use crate::read::{self, Input, Item};
use crate::record::Record;

/// What `start` does with a line.
pub(crate) enum Start<T, F, G> {
    /// Its outcome is known without a request.
    Now(T),
    /// A job finds it out.
    Job(F),
    /// A job that sends: it is made once one of the `sends` slots is free, with that slot, so
    /// that lines are sent in input order.
    Send(G),
}

/// Why the pass ended before the input did.
pub(crate) enum Cut {
    /// The stop token was cancelled.
    Stopped,
    /// A line that was valid in the validation pass no longer is: the input changed.
    Changed(String),
    /// The input could not be read again.
    Unreadable(io::Error),
}

/// Runs a pass over `input`. `start` is called for each valid record, in input order; `reap` gets
/// every outcome (in the order they are known) and a job's failure as `Err` with its message.
/// Returns why the pass was cut short, if it was.
pub(crate) async fn run<T, F, G>(
    input: &Input,
    options: &ReadOptions,
    (max_jobs, sends): (usize, &Arc<Semaphore>),
    stop: &CancellationToken,
    mut start: impl FnMut(Record) -> Start<T, F, G>,
    mut reap: impl FnMut(Result<T, String>),
) -> Option<Cut>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
    G: FnOnce(OwnedSemaphorePermit) -> F,
{
    // A small channel: reading stays a little ahead of the jobs, never far.
    let (sender, mut receiver) = mpsc::channel::<io::Result<Item>>(256);
    let reader = {
        let (input, options) = (input.clone(), options.clone());
        tokio::task::spawn_blocking(move || match read::open(&input, &options, false) {
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
    let mut jobs: JoinSet<T> = JoinSet::new();
    let settle = |done: Result<T, tokio::task::JoinError>,
                  reap: &mut dyn FnMut(Result<T, String>)| {
        reap(done.map_err(|e| format!("a worker failed: {e}")));
    };
    let mut cut = None;
    loop {
        while let Some(done) = jobs.try_join_next() {
            settle(done, &mut reap);
        }
        if stop.is_cancelled() {
            cut = Some(Cut::Stopped);
            break;
        }
        // Room for one more job first, so that a stop while waiting is seen at once.
        while jobs.len() >= max_jobs {
            tokio::select! {
                done = jobs.join_next() => {
                    if let Some(done) = done {
                        settle(done, &mut reap);
                    }
                }
                () = stop.cancelled() => break,
            }
        }
        if stop.is_cancelled() {
            cut = Some(Cut::Stopped);
            break;
        }
        let item = tokio::select! {
            item = receiver.recv() => item,
            () = stop.cancelled() => {
                cut = Some(Cut::Stopped);
                break;
            }
        };
        match item {
            None => break,
            Some(Ok(Item::Valid(record))) => match start(record) {
                Start::Now(outcome) => reap(Ok(outcome)),
                Start::Job(job) => {
                    jobs.spawn(job);
                }
                Start::Send(make) => {
                    // Finished jobs are reaped while waiting, so that their outcomes are not held up.
                    let permit = loop {
                        tokio::select! {
                            permit = Arc::clone(sends).acquire_owned() => break permit.ok(),
                            Some(done) = jobs.join_next(), if !jobs.is_empty() => settle(done, &mut reap),
                            () = stop.cancelled() => break None,
                        }
                    };
                    let Some(permit) = permit else {
                        cut = Some(Cut::Stopped);
                        break;
                    };
                    jobs.spawn(make(permit));
                }
            },
            Some(Ok(Item::Invalid(error))) => {
                cut = Some(Cut::Changed(error.to_string()));
                break;
            }
            Some(Err(e)) => {
                cut = Some(Cut::Unreadable(e));
                break;
            }
        }
    }
    // Stop reading; let the jobs in flight finish, so that their outcomes are journaled.
    drop(receiver);
    while let Some(done) = jobs.join_next().await {
        settle(done, &mut reap);
    }
    let _ = reader.await;
    cut
}
