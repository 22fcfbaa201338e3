//! The signals that stop a bulk run: the first (SIGINT, SIGTERM or SIGHUP) cancels the run's token,
//! so that no new line is sent and the requests in flight finish; a second ends the process at
//! once. The engine never sees a signal: it sees its token cancelled.

use std::sync::{Arc, OnceLock};

use happyrobot::CancellationToken;
use tokio::task::JoinHandle;

use crate::exit::{CliError, Exit};

/// Listens for signals on behalf of one run until dropped.
pub(crate) struct Watch {
    first: Arc<OnceLock<Exit>>,
    task: JoinHandle<()>,
}

impl Watch {
    /// Starts listening (before any line is sent, so that no signal kills the process outright):
    /// the first signal cancels `token` and prints `first_words`.
    pub(crate) fn start(
        token: CancellationToken,
        first_words: &'static str,
    ) -> Result<Self, CliError> {
        let mut signals = Signals::listen()?;
        let first = Arc::new(OnceLock::new());
        let seen = Arc::clone(&first);
        let task = tokio::spawn(async move {
            let exit = signals.next().await;
            let _ = seen.set(exit);
            token.cancel();
            crate::print::err(first_words);
            let again = signals.next().await;
            crate::print::err("Interrupted again: quitting now");
            std::process::exit(i32::from(again.code()));
        });
        Ok(Self { first, task })
    }

    /// The exit code of the first signal, if one came.
    pub(crate) fn signal(&self) -> Option<Exit> {
        self.first.get().copied()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The three signal streams.
struct Signals {
    #[cfg(unix)]
    streams: Vec<(tokio::signal::unix::Signal, Exit)>,
}

impl Signals {
    fn listen() -> Result<Self, CliError> {
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
    async fn next(&mut self) -> Exit {
        #[cfg(unix)]
        {
            let streams = &mut self.streams;
            std::future::poll_fn(|cx| {
                for (stream, exit) in streams.iter_mut() {
                    if stream.poll_recv(cx).is_ready() {
                        return std::task::Poll::Ready(*exit);
                    }
                }
                std::task::Poll::Pending
            })
            .await
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Exit::Interrupted
        }
    }
}
