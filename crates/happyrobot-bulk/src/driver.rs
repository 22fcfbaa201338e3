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

/// What a pass reads: an input, or lines already made (those the input no longer has, from the
/// journal).
pub(crate) enum Feed<'a> {
    Input(&'a Input, &'a ReadOptions),
    Lines(Vec<Record>),
}

/// Runs a pass over `feed`. `start` is called for each valid record, in input order; `reap` gets
/// every outcome (in the order they are known) and a job's failure as `Err` with its message.
/// Returns why the pass was cut short, if it was.
pub(crate) async fn run<T, F, G>(
    feed: Feed<'_>,
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
    let (mut receiver, reader) = spawn_reader(feed);
    let mut jobs: JoinSet<T> = JoinSet::new();
    let cut = loop {
        while let Some(done) = jobs.try_join_next() {
            reap_done(done, &mut reap);
        }
        // Room for one more job first, so that a stop while waiting is seen at once.
        make_room(&mut jobs, max_jobs, stop, &mut reap).await;
        if stop.is_cancelled() {
            break Some(Cut::Stopped);
        }
        let item = tokio::select! {
            item = receiver.recv() => item,
            () = stop.cancelled() => break Some(Cut::Stopped),
        };
        match item {
            None => break None,
            Some(Ok(Item::Valid(record))) => match start(record) {
                Start::Now(outcome) => reap(Ok(outcome)),
                Start::Job(job) => {
                    jobs.spawn(job);
                }
                Start::Send(make) => match acquire_send(sends, &mut jobs, stop, &mut reap).await {
                    Some(permit) => {
                        jobs.spawn(make(permit));
                    }
                    None => break Some(Cut::Stopped),
                },
            },
            Some(Ok(Item::Invalid(error))) => break Some(Cut::Changed(error.to_string())),
            Some(Err(e)) => break Some(Cut::Unreadable(e)),
        }
    };
    // Stop reading; let the jobs in flight finish, so that their outcomes are journaled.
    drop(receiver);
    while let Some(done) = jobs.join_next().await {
        reap_done(done, &mut reap);
    }
    let _ = reader.await;
    cut
}

/// Reads `feed` on a blocking thread into a small channel: reading stays a little ahead of the
/// jobs, never far.
fn spawn_reader(
    feed: Feed<'_>,
) -> (
    mpsc::Receiver<io::Result<Item>>,
    tokio::task::JoinHandle<()>,
) {
    let (sender, receiver) = mpsc::channel::<io::Result<Item>>(256);
    let opened = match feed {
        Feed::Input(input, options) => {
            let (input, options) = (input.clone(), options.clone());
            Box::new(move || read::open(&input, &options, false))
                as Box<dyn FnOnce() -> io::Result<read::Records> + Send>
        }
        Feed::Lines(lines) => Box::new(move || {
            Ok(Box::new(lines.into_iter().map(|r| Ok(Item::Valid(r)))) as read::Records)
        }),
    };
    let reader = tokio::task::spawn_blocking(move || match opened() {
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
    });
    (receiver, reader)
}

fn reap_done<T>(done: Result<T, tokio::task::JoinError>, reap: &mut impl FnMut(Result<T, String>)) {
    reap(done.map_err(|e| format!("a worker failed: {e}")));
}

/// Waits until fewer than `max_jobs` jobs are alive, or the stop token is cancelled.
async fn make_room<T: 'static>(
    jobs: &mut JoinSet<T>,
    max_jobs: usize,
    stop: &CancellationToken,
    reap: &mut impl FnMut(Result<T, String>),
) {
    while jobs.len() >= max_jobs {
        tokio::select! {
            done = jobs.join_next() => {
                if let Some(done) = done {
                    reap_done(done, reap);
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// A free send slot (`None`: the stop token was cancelled first). Finished jobs are reaped while
/// waiting, so that their outcomes are not held up.
async fn acquire_send<T: 'static>(
    sends: &Arc<Semaphore>,
    jobs: &mut JoinSet<T>,
    stop: &CancellationToken,
    reap: &mut impl FnMut(Result<T, String>),
) -> Option<OwnedSemaphorePermit> {
    loop {
        tokio::select! {
            permit = Arc::clone(sends).acquire_owned() => return permit.ok(),
            Some(done) = jobs.join_next(), if !jobs.is_empty() => reap_done(done, reap),
            () = stop.cancelled() => return None,
        }
    }
}
