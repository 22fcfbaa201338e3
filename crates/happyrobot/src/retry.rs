//! [`RetryPolicy`] and its one typed decision, [`RetryAction`]: whether a failed request is sent
//! again, after how long, and why (or why not).
//!
//! The API has no idempotency keys, so sending a note twice adds it twice. The default policy
//! therefore retries an add only after failures where the server certainly did not act; updates
//! and deletes, which are idempotent, may also be retried when the outcome is unknown. The client
//! and the CLI's import both ask [`RetryPolicy::decide`], so they cannot disagree.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, RETRY_AFTER};

use crate::error::Operation;
use crate::{Error, ErrorKind};

/// The least time left worth an attempt: a retry whose wait leaves less before the deadline is
/// not made.
pub(crate) const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// How many times a call was sent again so far: after failures other than `429`, and after `429`s
/// (counted apart: a rate limit slows a call down, only the deadline or the policy's own cap on
/// them ends it).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tries {
    pub(crate) retries: u32,
    pub(crate) throttled: u32,
}

impl Tries {
    /// The number of the next attempt, from 1.
    pub(crate) fn attempt(self) -> u32 {
        self.retries + self.throttled + 1
    }

    /// Counts a retry after `error`.
    pub(crate) fn count(&mut self, error: &Error) {
        if error.is_rate_limited() {
            self.throttled += 1;
        } else {
            self.retries += 1;
        }
    }
}

/// What the retry executor does after a failed attempt ([`RetryPolicy::next`]).
pub(crate) enum Next {
    /// Send the request again after waiting `after`.
    Retry {
        after: Duration,
        reason: RetryReason,
    },
    /// Give up, for this reason.
    Stop(StopReason),
    /// A retry is allowed, but waiting `0` for it would pass the call's deadline.
    Late(Duration),
}

/// Whether the server's `Retry-After` asks for a longer wait than `cap`: the one test of it, for
/// the policy's decision and the error's message.
pub(crate) fn retry_after_too_long(wait: Option<Duration>, cap: Duration) -> bool {
    wait.is_some_and(|wait| wait > cap)
}

/// The shortest wait after a `429` that came without `Retry-After`.
const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// When to retry a failed request.
///
/// The default retries only when the server certainly did not act: no connection could be made
/// (at most twice), or it answered `429 Too Many Requests` (as often as the deadline allows: a rate
/// limit slows a call down, it does not fail it). It waits with exponential backoff and full jitter
/// (base 0.5 s, cap 8 s), or for the server's `Retry-After` when that is at most 30 s (a longer
/// wait fails at once, and the error says how long the server asked for). After a `429` without
/// `Retry-After` the [`RateControl`](crate::RateControl) paces the retry (without it, the wait is
/// at least 1 s). Idempotent requests (updates, deletes, reads) are also retried after a timeout, a
/// broken connection, or a 500, 502, 503 or 504. A proxy that refuses the credentials or the
/// tunnel, and a certificate that is not trusted, are never retried: no retry can fix them.
///
/// ```
/// use std::time::Duration;
/// use happyrobot::RetryPolicy;
///
/// let patient = RetryPolicy::default().max_retries(5).max_retry_after(Duration::from_secs(120));
/// let never = RetryPolicy::none();
/// # let _ = (patient, never);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    max_rate_limited: u32,
    base_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
    retry_outcome_unknown: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            max_rate_limited: u32::MAX,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            retry_outcome_unknown: false,
        }
    }
}

/// What to do after a failed attempt: the one decision [`RetryPolicy::decide`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAction {
    /// Send the request again after waiting `after`.
    Retry {
        /// How long to wait first.
        after: Duration,
        /// Why a retry is safe and useful.
        reason: RetryReason,
    },
    /// Give up and return the error.
    Stop {
        /// Why not.
        reason: StopReason,
    },
}

/// Why a request is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryReason {
    /// No connection could be made, so nothing was sent.
    NotSent,
    /// The API answered 429.
    RateLimited,
    /// The outcome is unknown but the request is idempotent (an update or a delete).
    Idempotent,
    /// The outcome is unknown and the policy was told to retry anyway
    /// ([`RetryPolicy::retry_outcome_unknown`]): this may duplicate a note.
    OutcomeUnknownByPolicy,
}

/// Why a failed request is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// Sending again would not help (bad input, 4xx) or could duplicate the note (unknown outcome).
    NotRetryable,
    /// The server acted on the request; only its answer was lost.
    AlreadyApplied,
    /// The policy's retries are used up.
    RetriesExhausted,
    /// The server asked to wait longer than the policy allows; [`Error::retry_after`] says how long.
    RetryAfterTooLong,
    /// The wait would pass the client's overall deadline for this call.
    DeadlineReached,
}

impl RetryReason {
    /// A short phrase for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotSent => "connection failed before the request was sent",
            Self::RateLimited => "rate limited (429)",
            Self::Idempotent => "outcome unknown, and the request is idempotent",
            Self::OutcomeUnknownByPolicy => {
                "outcome unknown, retried by policy (may duplicate the note)"
            }
        }
    }
}

impl RetryPolicy {
    /// Never retry, not even after a `429`.
    pub fn none() -> Self {
        Self::default().max_retries(0).max_rate_limited_retries(0)
    }

    /// The default policy, but also retrying failures after which **the note may already have been
    /// added**: timeouts and broken connections after sending, and 500, 502, 503 and 504 answers.
    ///
    /// This can add the same note twice. Use it only where a duplicate note is better than a missing
    /// one.
    pub fn retry_outcome_unknown() -> Self {
        Self {
            retry_outcome_unknown: true,
            ..Self::default()
        }
    }

    /// How many times a request is sent again after a failure other than a `429` (0 turns those
    /// retries off).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// How many times a request is sent again after `429 Too Many Requests`; default: as often as
    /// the deadline allows.
    pub fn max_rate_limited_retries(mut self, retries: u32) -> Self {
        self.max_rate_limited = retries;
        self
    }

    /// The backoff before the first retry; it doubles for each further one, up to
    /// [`max_delay`](Self::max_delay), and a random part of it is waited (full jitter).
    pub fn base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self
    }

    /// The longest backoff between two tries.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The longest `Retry-After` the client waits for; a server asking for longer gets an error at once.
    pub fn max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after;
        self
    }

    /// Whether failures with an unknown outcome are retried (see [`RetryPolicy::retry_outcome_unknown`]).
    pub fn retries_outcome_unknown(&self) -> bool {
        self.retry_outcome_unknown
    }

    /// The most retries after failures other than `429`.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The most retries after `429`s.
    pub fn rate_limited_retries(&self) -> u32 {
        self.max_rate_limited
    }

    /// The longest `Retry-After` honoured.
    pub fn retry_after_cap(&self) -> Duration {
        self.max_retry_after
    }

    /// Whether an add of a note that failed with `error` is sent again, after what wait and why.
    /// `retries_done` counts the retries of the same kind so far: after `429`s for a `429`, after
    /// other failures for the others.
    pub fn decide(&self, error: &Error, retries_done: u32) -> RetryAction {
        self.decide_for_operation(error, retries_done, Operation::AddNote)
    }

    /// [`decide`](Self::decide) for a request that is idempotent (`true`: an update, a delete, a
    /// read) or not (an add). Prefer [`decide_for_operation`](Self::decide_for_operation), which
    /// knows which operations are which.
    pub fn decide_for(&self, error: &Error, retries_done: u32, idempotent: bool) -> RetryAction {
        let stop = |reason| RetryAction::Stop { reason };
        if error.note_was_added() {
            return stop(StopReason::AlreadyApplied);
        }
        // A request the rate limit holds longer than the policy waits (see
        // `Error::retry_after_too_long`), refused or never sent: as a 429 asking for that wait.
        if error.retry_after_too_long() && error.outcome() != crate::Outcome::Unknown {
            return stop(StopReason::RetryAfterTooLong);
        }
        let reason = if error.is_retryable() && error.kind() == ErrorKind::Connect {
            RetryReason::NotSent
        } else if error.is_rate_limited() {
            if retry_after_too_long(error.retry_after(), self.max_retry_after) {
                return stop(StopReason::RetryAfterTooLong);
            }
            RetryReason::RateLimited
        } else if retryable_unknown(error) {
            if idempotent {
                RetryReason::Idempotent
            } else if self.retry_outcome_unknown {
                RetryReason::OutcomeUnknownByPolicy
            } else {
                return stop(StopReason::NotRetryable);
            }
        } else {
            return stop(StopReason::NotRetryable);
        };
        let most = match reason {
            RetryReason::RateLimited => self.max_rate_limited,
            _ => self.max_retries,
        };
        if retries_done >= most {
            return stop(StopReason::RetriesExhausted);
        }
        let after = match (reason, error.retry_after()) {
            (RetryReason::RateLimited, Some(wait)) => wait,
            (RetryReason::RateLimited, None) => self.rate_limit_backoff(retries_done),
            _ => self.backoff(retries_done),
        };
        RetryAction::Retry { after, reason }
    }

    /// Whether a request of `operation` that failed with `error` is sent again, after what wait
    /// and why: the one decision the client's retry executor asks after every attempt. Reads,
    /// updates and deletes may be retried when their outcome is unknown; an add only when the
    /// server certainly did not act (or by [`RetryPolicy::retry_outcome_unknown`]).
    pub fn decide_for_operation(
        &self,
        error: &Error,
        retries_done: u32,
        operation: Operation,
    ) -> RetryAction {
        self.decide_for(error, retries_done, operation.idempotent())
    }

    /// What the retry executor does next, with what it knows besides the error: the retries of
    /// each kind so far, whether the client's rate control paces a retried request itself (then a
    /// `429` without `Retry-After` waits only for its turn), and the time `left` before the
    /// call's deadline (a wait that would pass it is [`Next::Late`]).
    pub(crate) fn next(
        &self,
        error: &Error,
        tries: Tries,
        operation: Operation,
        paced: bool,
        left: Duration,
    ) -> Next {
        let done = if error.is_rate_limited() {
            tries.throttled
        } else {
            tries.retries
        };
        let (after, reason) = match self.decide_for_operation(error, done, operation) {
            RetryAction::Retry { after, reason } => (after, reason),
            RetryAction::Stop { reason } => return Next::Stop(reason),
        };
        let after = if reason == RetryReason::RateLimited && error.retry_after().is_none() && paced
        {
            Duration::ZERO
        } else {
            after
        };
        if after.saturating_add(MIN_ATTEMPT) > left {
            return Next::Late(after);
        }
        Next::Retry { after, reason }
    }

    /// The exponential backoff for this retry, before jitter.
    fn exponential(&self, retries_done: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(retries_done.min(30)))
            .min(self.max_delay)
    }

    /// Full jitter: a uniformly random wait between zero and the exponential backoff for this retry.
    fn backoff(&self, retries_done: u32) -> Duration {
        jitter(Duration::ZERO, self.exponential(retries_done))
    }

    /// After a 429 that did not say how long to wait: at least a second, with jitter above it, so
    /// that clients told to slow down do slow down and do not come back all at once.
    fn rate_limit_backoff(&self, retries_done: u32) -> Duration {
        let upper = self
            .exponential(retries_done)
            .max(MIN_RATE_LIMIT_WAIT.saturating_mul(2));
        jitter(MIN_RATE_LIMIT_WAIT, upper)
    }
}

/// A uniformly random wait in `[low, high]`.
fn jitter(low: Duration, high: Duration) -> Duration {
    let low_ns = u64::try_from(low.as_nanos()).unwrap_or(u64::MAX);
    let high_ns = u64::try_from(high.as_nanos())
        .unwrap_or(u64::MAX)
        .max(low_ns);
    let span = high_ns - low_ns;
    let offset = match span.checked_add(1) {
        Some(choices) => random_u64() % choices,
        None => random_u64(),
    };
    Duration::from_nanos(low_ns + offset)
}

/// 64 random bits, different on every call, for jitter and note IDs; not for secrets.
///
/// The standard library's `RandomState` is seeded from the operating system's randomness once per
/// thread and then moves to fresh keys on every `new()`; hashing a process-wide counter with it
/// gives well-mixed values without a random-number crate in every user's build (issue 14's crate
/// budget).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Failures whose outcome is unknown and that may be retried when that is safe or wanted: timeouts
/// and broken connections after sending, and the 5xx answers that usually mean a passing fault.
fn retryable_unknown(error: &Error) -> bool {
    match error.kind() {
        ErrorKind::Timeout | ErrorKind::Network => true,
        ErrorKind::Api => error
            .status()
            .is_some_and(|s| matches!(s.as_u16(), 500 | 502 | 503 | 504)),
        _ => false,
    }
}

/// Reads `Retry-After` as seconds or as an HTTP date. A number too large for any clock becomes the
/// longest possible wait, never a panic; a date in the past is no wait.
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_of(headers.get(RETRY_AFTER)?.to_str().ok()?)
}

/// Reads the text of a `Retry-After` header, as [`parse_retry_after`] says.
pub(crate) fn retry_after_of(text: &str) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            text.parse::<u64>()
                .map_or(Duration::MAX, Duration::from_secs),
        );
    }
    let when = parse_http_date(text)?;
    // In whole seconds since the epoch, never as `SystemTime` arithmetic: chrono reads years up to
    // 262142, past what `SystemTime` holds on some platforms (adding to it there panics).
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
    let ahead = when.saturating_sub(now);
    Some(u64::try_from(ahead).map_or(Duration::ZERO, Duration::from_secs))
}

/// Reads an HTTP date in the three forms RFC 9110 section 5.6.7 says a recipient must accept: the
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), which RFC 2822 parsing covers, and the obsolete
/// RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`) forms.
///
/// Returns seconds since the Unix epoch (negative before it).
fn parse_http_date(text: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDateTime};
    if let Ok(when) = DateTime::parse_from_rfc2822(text) {
        return Some(when.timestamp());
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn api(status: u16, retry_after: Option<u64>) -> Error {
        Error::answered(
            Operation::AddNote,
            StatusCode::from_u16(status).unwrap(),
            None,
            false,
            None,
        )
        .with_retry_after(
            retry_after.map(Duration::from_secs),
            Duration::from_secs(30),
        )
    }

    fn retries(action: RetryAction) -> bool {
        matches!(action, RetryAction::Retry { .. })
    }

    #[test]
    fn the_operation_decides_whether_an_unknown_outcome_is_retried() {
        let policy = RetryPolicy::default();
        let timeout = || Error::timeout(Operation::AddNote, "t".into());
        for op in [
            Operation::GetCall,
            Operation::GetTranscript,
            Operation::ListCalls,
            Operation::UpdateNote,
            Operation::DeleteNote,
        ] {
            assert!(
                retries(policy.decide_for_operation(&timeout(), 0, op)),
                "{op:?}"
            );
            assert!(
                retries(policy.decide_for_operation(&api(503, None), 0, op)),
                "{op:?}"
            );
        }
        assert_eq!(
            policy.decide_for_operation(&timeout(), 0, Operation::AddNote),
            RetryAction::Stop {
                reason: StopReason::NotRetryable
            }
        );
    }

    #[test]
    fn the_executor_s_next_step_knows_the_pace_and_the_deadline() {
        let policy = RetryPolicy::default();
        let plenty = Duration::from_secs(60);
        let tries = Tries::default();
        // A 429 without Retry-After: no wait of its own when the rate control paces the retry.
        let paced = policy.next(&api(429, None), tries, Operation::AddNote, true, plenty);
        assert!(matches!(paced, Next::Retry { after, .. } if after.is_zero()));
        let unpaced = policy.next(&api(429, None), tries, Operation::AddNote, false, plenty);
        assert!(matches!(unpaced, Next::Retry { after, .. } if after >= MIN_RATE_LIMIT_WAIT));
        // Retry-After is waited for, unless the deadline comes first.
        let asked = api(429, Some(5));
        assert!(matches!(
            policy.next(&asked, tries, Operation::AddNote, true, plenty),
            Next::Retry { after, .. } if after == Duration::from_secs(5)
        ));
        assert!(matches!(
            policy.next(&asked, tries, Operation::AddNote, true, Duration::from_secs(5)),
            Next::Late(after) if after == Duration::from_secs(5)
        ));
        // Too long a Retry-After is the policy's refusal, decided in one place.
        assert!(matches!(
            policy.next(&api(429, Some(31)), tries, Operation::AddNote, true, plenty),
            Next::Stop(StopReason::RetryAfterTooLong)
        ));
        assert!(api(429, Some(31)).retry_after_too_long());
        // 429s and other failures are counted apart.
        let spent = Tries {
            retries: 2,
            throttled: 0,
        };
        assert!(matches!(
            policy.next(&api(429, None), spent, Operation::GetCall, true, plenty),
            Next::Retry { .. }
        ));
        assert!(matches!(
            policy.next(&api(503, None), spent, Operation::GetCall, true, plenty),
            Next::Stop(StopReason::RetriesExhausted)
        ));
    }

    #[test]
    fn default_retries_429_but_not_5xx() {
        let policy = RetryPolicy::default();
        assert!(retries(policy.decide(&api(429, None), 0)));
        for status in [500, 502, 503, 504, 400, 401, 404] {
            assert_eq!(
                policy.decide(&api(status, None), 0),
                RetryAction::Stop {
                    reason: StopReason::NotRetryable
                },
                "{status}"
            );
        }
        // A rate limit is retried as long as the deadline allows, unless the policy caps it.
        assert!(retries(policy.decide(&api(429, None), 100)));
        assert_eq!(
            policy
                .clone()
                .max_rate_limited_retries(2)
                .decide(&api(429, None), 2),
            RetryAction::Stop {
                reason: StopReason::RetriesExhausted
            }
        );
    }

    #[test]
    fn idempotent_requests_retry_unknown_outcomes() {
        let policy = RetryPolicy::default();
        for status in [500, 502, 503, 504] {
            assert!(retries(policy.decide_for(&api(status, None), 0, true)));
        }
        assert!(!retries(policy.decide_for(&api(501, None), 0, true)));
        assert!(!retries(policy.decide_for(&api(400, None), 0, true)));
    }

    #[test]
    fn opt_in_retries_5xx() {
        let policy = RetryPolicy::retry_outcome_unknown();
        for status in [500, 502, 503, 504] {
            let action = policy.decide(&api(status, None), 0);
            assert!(
                matches!(
                    action,
                    RetryAction::Retry {
                        reason: RetryReason::OutcomeUnknownByPolicy,
                        ..
                    }
                ),
                "{status}"
            );
        }
        assert!(!retries(policy.decide(&api(501, None), 0)));
    }

    #[test]
    fn none_never_retries() {
        assert!(!retries(RetryPolicy::none().decide(&api(429, None), 0)));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let action = RetryPolicy::default().decide(&api(429, Some(3)), 0);
        assert_eq!(
            action,
            RetryAction::Retry {
                after: Duration::from_secs(3),
                reason: RetryReason::RateLimited
            }
        );
        let error = api(429, Some(31));
        assert!(error.retry_after_too_long());
        assert!(error.to_string().contains("31 s"), "{error}");
        assert_eq!(
            RetryPolicy::default().decide(&error, 0),
            RetryAction::Stop {
                reason: StopReason::RetryAfterTooLong
            }
        );
    }

    #[test]
    fn a_request_held_longer_than_the_cap_is_not_retried() {
        let cap = Duration::from_secs(30);
        let held = Error::held(Operation::UpdateNote, None, Duration::from_secs(600), cap);
        assert!(held.retry_after_too_long() && !held.is_retryable());
        assert_eq!(held.outcome(), crate::Outcome::NotApplied);
        assert_eq!(held.category(), crate::Category::Api);
        assert!(held.to_string().contains("600 s more"), "{held}");
        for op in [
            Operation::UpdateNote,
            Operation::AddNote,
            Operation::GetCall,
        ] {
            assert_eq!(
                RetryPolicy::default().decide_for_operation(&held, 0, op),
                RetryAction::Stop {
                    reason: StopReason::RetryAfterTooLong
                }
            );
        }
    }

    #[test]
    fn a_429_without_retry_after_waits_at_least_a_second() {
        let policy = RetryPolicy::default().base_delay(Duration::from_millis(1));
        let waits: Vec<Duration> = (0..50)
            .map(|_| match policy.decide(&api(429, None), 0) {
                RetryAction::Retry { after, .. } => after,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(
            waits.iter().all(|w| *w >= Duration::from_secs(1)),
            "{waits:?}"
        );
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 1, "jittered");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy = RetryPolicy::default().max_retries(100);
        for retry in 0..40 {
            let cap = Duration::from_millis(500)
                .saturating_mul(1 << retry.min(20))
                .min(Duration::from_secs(8));
            assert!(policy.backoff(retry) <= cap);
        }
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| policy.backoff(3)).collect();
        assert!(samples.len() > 1, "jitter varies the wait");
    }

    #[test]
    fn parses_retry_after_forms_and_absurd_values() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));
        // Formatted by another crate than the parser's (chrono), so that a shared mistake shows.
        let imf_fixdate = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, imf_fixdate.parse().unwrap());
        let wait = parse_retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "-5".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "99999999999999999999999999".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::MAX));
        headers.insert(RETRY_AFTER, u64::MAX.to_string().parse().unwrap());
        assert_eq!(
            parse_retry_after(&headers),
            Some(Duration::from_secs(u64::MAX))
        );
        headers.insert(
            RETRY_AFTER,
            "Fri, 31 Dec 9999 23:59:59 GMT".parse().unwrap(),
        );
        assert!(parse_retry_after(&headers).unwrap() > Duration::from_secs(86_400 * 365 * 7000));
        // A year no `SystemTime` holds on some platforms: a long wait, never a panic.
        headers.insert(
            RETRY_AFTER,
            "Sat, 01 Jan 40000 00:00:00 GMT".parse().unwrap(),
        );
        assert!(parse_retry_after(&headers).unwrap() > Duration::from_secs(86_400 * 365 * 37_000));
        // A date long past is no wait.
        headers.insert(
            RETRY_AFTER,
            "Mon, 01 Jan 1900 00:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn reads_the_three_http_date_forms_alike() {
        // RFC 9110 section 5.6.7's example instant, 784111777 seconds after the epoch.
        let expected = 784_111_777;
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(text), Some(expected), "{text}");
        }
        for text in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn random_values_differ_and_jitter_stays_in_its_bounds() {
        let values: std::collections::BTreeSet<u64> = (0..1000).map(|_| random_u64()).collect();
        assert_eq!(values.len(), 1000, "no repeats in 1,000 draws");
        // Both halves of the range are reached: the values are spread, not clustered.
        assert!(values.iter().any(|v| *v < u64::MAX / 2));
        assert!(values.iter().any(|v| *v > u64::MAX / 2));
        let (low, high) = (Duration::from_millis(10), Duration::from_millis(20));
        for _ in 0..1000 {
            let wait = jitter(low, high);
            assert!(wait >= low && wait <= high, "{wait:?}");
        }
        assert_eq!(jitter(high, high), high);
        assert!(jitter(Duration::ZERO, Duration::MAX) <= Duration::MAX);
    }
}
