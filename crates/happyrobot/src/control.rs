//! [`Control`]: what a caller that drives many requests (a bulk import, a queue consumer) adds to one
//! call of a client method: a cancellation token that ends its waits, an [`AttemptObserver`] told
//! before each attempt and each retry, and its own deadline.
//!
//! The client's one retry executor honours it for every method, so that code built on the client
//! (the `happyrobot-bulk` engine among it) never needs a retry loop of its own: it journals an
//! attempt in `before_attempt`, records "certainly not added, will be retried" in `before_retry`,
//! and stops the whole batch by cancelling one token.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Error, Operation};

/// One attempt of a request, as an [`AttemptObserver`] is told of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// Which attempt of the request, from 1.
    pub number: u32,
    /// Which operation the request is.
    pub operation: Operation,
}

/// Told about each attempt of one call of a client method; see [`Control::observer`].
///
/// Both methods run on the task making the call, between attempts; they should be quick (a write
/// to a file is fine). Returning [`ControlFlow::Break`] ends the call at once with an error of kind
/// [`ErrorKind::Stopped`](crate::ErrorKind::Stopped): nothing more is sent.
pub trait AttemptObserver: Send + Sync {
    /// Before `attempt` is sent.
    fn before_attempt(&self, attempt: &Attempt) -> ControlFlow<()> {
        let _ = attempt;
        ControlFlow::Continue(())
    }

    /// After `attempt` failed with `error`, before the client waits `wait` and tries again. The
    /// retry policy decided that sending again is safe: for an add, the note was certainly not
    /// added by that attempt.
    fn before_retry(&self, attempt: &Attempt, error: &Error, wait: Duration) -> ControlFlow<()> {
        let _ = (attempt, error, wait);
        ControlFlow::Continue(())
    }

    /// A step of [`Client::add_note_settled`](crate::Client::add_note_settled) settling an add
    /// whose outcome is unknown: before it looks for the note, when it found it, and before it
    /// sends the note once more ([`Client::settle_add`](crate::Client::settle_add) tells the last
    /// one too). For telling a person what is going on (the look can take seconds).
    fn settle_step(&self, step: &SettleStep<'_>) {
        let _ = step;
    }
}

/// What [`AttemptObserver::settle_step`] is told while
/// [`Client::add_note_settled`](crate::Client::add_note_settled) settles an add whose outcome is
/// unknown.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SettleStep<'a> {
    /// The add failed with `error`, whose outcome is unknown: the note is about to be looked for on
    /// its call by the ID it was sent with ([`Error::note_id`]).
    Looking {
        /// The add's error.
        error: &'a Error,
    },
    /// The note is on the call under `note_id`: it was added.
    Found {
        /// The ID it is on the call under.
        note_id: &'a str,
    },
    /// The note is certainly not on the call: it is about to be sent once more, under `resend_id`.
    SendingAgain {
        /// The new ID it is sent with.
        resend_id: &'a str,
    },
}

/// How one call of a client method is carried out, beyond the client's settings: give it to the
/// `*_with` methods ([`Client::add_note_with`](crate::Client::add_note_with), ...).
///
/// ```
/// use std::time::Duration;
/// use happyrobot::Control;
/// use happyrobot::CancellationToken;
///
/// let stop = CancellationToken::new();
/// let control = Control::new().stop(&stop).deadline(Duration::from_secs(600));
/// // ... client.add_note_with(&call_id, note, &control).await ...
/// stop.cancel(); // every wait of every call given `control` ends: nothing more is sent
/// # let _ = control;
/// ```
#[derive(Clone, Copy, Default)]
pub struct Control<'a> {
    pub(crate) stop: Option<&'a CancellationToken>,
    pub(crate) observer: Option<&'a dyn AttemptObserver>,
    pub(crate) deadline: Option<Duration>,
}

impl std::fmt::Debug for Control<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("stop", &self.stop.map(CancellationToken::is_cancelled))
            .field("observer", &self.observer.is_some())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl<'a> Control<'a> {
    /// Nothing beyond the client's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the call's waits (for its turn under the rate limit, or before a retry) when `token`
    /// is cancelled, with an error of kind [`ErrorKind::Stopped`](crate::ErrorKind::Stopped). A
    /// request already sent is not cut off: its answer is awaited, so that what it did is known.
    pub fn stop(mut self, token: &'a CancellationToken) -> Self {
        self.stop = Some(token);
        self
    }

    /// Tells `observer` about each attempt and each retry.
    pub fn observer(mut self, observer: &'a dyn AttemptObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The limit on this call, every retry and wait included, instead of the client's
    /// [`deadline`](crate::ClientBuilder::deadline). A bulk job that must never fail a line
    /// because of a rate limit gives a long one; `Duration::MAX` means none.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Whether the stop token was cancelled.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_some_and(CancellationToken::is_cancelled)
    }

    pub(crate) fn before_attempt(&self, attempt: &Attempt) -> ControlFlow<()> {
        self.observer
            .map_or(ControlFlow::Continue(()), |o| o.before_attempt(attempt))
    }

    pub(crate) fn settle_step(&self, step: &SettleStep<'_>) {
        if let Some(observer) = self.observer {
            observer.settle_step(step);
        }
    }

    pub(crate) fn before_retry(
        &self,
        attempt: &Attempt,
        error: &Error,
        wait: Duration,
    ) -> ControlFlow<()> {
        self.observer.map_or(ControlFlow::Continue(()), |o| {
            o.before_retry(attempt, error, wait)
        })
    }
}

/// A [`Control`] that owns its handles (a clone of the stop token, the observer in an [`Arc`]), for
/// what outlives a borrow: a [`CallStream`](crate::CallStream) fetching pages as it is consumed
/// ([`Client::list_calls_with`](crate::Client::list_calls_with)), or a task spawned with it.
/// [`as_control`](Self::as_control) lends it as a `Control` to any `*_with` method.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use happyrobot::{AttemptObserver, CancellationToken, OwnedControl};
///
/// struct Quiet;
/// impl AttemptObserver for Quiet {}
///
/// let stop = CancellationToken::new();
/// let owned = OwnedControl::new()
///     .stop(stop.clone())
///     .observer(Arc::new(Quiet))
///     .deadline(Duration::from_secs(60));
/// let control = owned.as_control(); // for client.get_call_with(&id, &control), ...
/// # let _ = control;
/// ```
#[derive(Clone, Default)]
pub struct OwnedControl {
    stop: Option<CancellationToken>,
    observer: Option<Arc<dyn AttemptObserver>>,
    deadline: Option<Duration>,
}

impl std::fmt::Debug for OwnedControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_control().fmt(f)
    }
}

impl OwnedControl {
    /// Nothing beyond the client's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// As [`Control::stop`]; keep a clone of the token to cancel it with.
    pub fn stop(mut self, token: CancellationToken) -> Self {
        self.stop = Some(token);
        self
    }

    /// As [`Control::observer`].
    pub fn observer(mut self, observer: Arc<dyn AttemptObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// As [`Control::deadline`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The same, as a [`Control`] for one call of a `*_with` method.
    pub fn as_control(&self) -> Control<'_> {
        Control {
            stop: self.stop.as_ref(),
            observer: self.observer.as_deref(),
            deadline: self.deadline,
        }
    }
}
