//! Client-side rate control: one [`Controller`] shared by a [`Client`](crate::Client) and its clones,
//! which measures the rate the server grants and paces every request to stay just under it,
//! instead of sending into refusals and stopping everything after each one.
//!
//! The anchor is the AWS SDKs' adaptive retry mode (smithy-rs RFC "Implementing Adaptive Retry
//! Behavior"), a client-side token bucket that does nothing until the first throttle. This one
//! differs where that one is weak:
//! - It measures instead of guessing. A token bucket that is asked faster than it refills grants
//!   requests exactly at its rate, so when the server refuses a request (or its quota headers say
//!   none is left), the spacing of the answers it accepted just before is the rate it grants this
//!   client: its whole limit, or its share when other processes use the same limit. The pace
//!   holds just under that estimate, then probes slowly above it (concave up to the estimate,
//!   convex beyond, as TCP CUBIC), so that a limit that rises is found again; a refusal at or
//!   under the estimate means the limit moved (it dropped, or another process takes from it):
//!   the pace follows it down at once, and probes for more again within [`MOVING_PERIOD`]. A
//!   second such refusal at once, with next to nothing accepted between, means it fell farther
//!   than a measure can follow quickly: the pace halves, and probes from there within a second
//!   or so (see [`DROP_AGAIN`]).
//! - Before anything is measured (the first `429`) the pace ramps from what the server accepted
//!   in the last second of the slow start (or on average since it ended), by a quarter a request
//!   at low rates and fourfold a second at most. When a slow start still under way has seen
//!   round trips of [`SLOW_ROUND_TRIP`] or more, it starts from its last two round trips, or from
//!   the rate at which its requests in flight went (halved after a refusal, or when it joins
//!   another process's pace), if more.
//! - It reads `RateLimit-Policy` (the rate, outright: the pace stays just under it),
//!   `RateLimit-Remaining` / `X-RateLimit-Remaining` with their `-Limit` (a quota used up is cut
//!   for before the server refuses, the slow start's window grows no further than the quota left,
//!   one smaller than the requests in flight starts pacing, a quota the server reports is probed
//!   quickly, and one that falls gives the rate at which it refills, under which the pace drops
//!   before the requests in flight use up what is left, and which bounds the estimate at a cut in
//!   a hold: see [`Quotas`]; under a quota the ramp runs faster, and a quota whose limit falls
//!   says the limit fell) and `-Reset` (a quota used up for a second or more, at the earliest,
//!   holds every request until the reset).
//! - While it paces, the requests in flight are limited to the pace times the answers' measured
//!   latency, with headroom: enough to carry the pace, and no pile of requests sent at a pace that
//!   is already stale when their answers come.
//! - Before the first `429` (or a quota or policy header) it costs a few atomic operations per
//!   request: no lock and no clock after the slow start, and a look at the answer's header names
//!   one answer in [`HEADER_SAMPLE`] until a rate-limit header has been seen.
//! - Each decision is a `debug` event of the target `happyrobot::rate`; none is per request.
//! - Clients of several processes under one limit can share one [`Core`] through a file
//!   (`ClientBuilder::share_rate_limit`, feature `shared-rate`, the `lane` module): they then pace
//!   as one client, instead of each measuring a share that nothing evens out.
//!
//! The decisions are in [`Core`], which takes the time as an argument, so that they can be tested
//! (and simulated against token-bucket servers in tokio's paused time) without a clock.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "shared-rate")]
mod lane;
#[cfg(feature = "shared-rate")]
pub(crate) use lane::{Lane, file_name as lane_file};

/// Without the `shared-rate` feature no client shares its pace: there is no lane.
#[cfg(not(feature = "shared-rate"))]
#[derive(Debug)]
pub(crate) enum Lane {}

#[cfg(not(feature = "shared-rate"))]
impl Lane {
    fn with<R>(
        &mut self,
        _: &mut Option<Core>,
        _: bool,
        _: impl FnOnce(&mut Option<Core>) -> R,
    ) -> R {
        match *self {}
    }
}

/// How a [`Client`](crate::Client) paces its requests; set with
/// [`ClientBuilder::rate_control`](crate::ClientBuilder::rate_control).
///
/// The default, [`RateControl::adaptive`], does nothing until the server answers `429 Too Many
/// Requests`; from then on it spaces the requests of the client and all its clones to just under the
/// rate the server was measured to allow, and probes back up when the server allows more.
///
/// ```
/// use happyrobot::RateControl;
///
/// let learn = RateControl::adaptive();                      // the default
/// let capped = RateControl::adaptive().max_rate(5.0);       // learn, but never above 5 requests/s
/// let fixed = RateControl::off().max_rate(2.5);             // exactly 2.5 requests/s at most, no learning
/// let none = RateControl::off();                            // no pacing at all
/// # let _ = (learn, capped, fixed, none);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateControl {
    learn: bool,
    max_rate: Option<f64>,
}

impl Default for RateControl {
    fn default() -> Self {
        Self::adaptive()
    }
}

impl RateControl {
    /// The lowest ceiling [`max_rate`](Self::max_rate) takes, in requests per second (a request
    /// every five seconds), and the slowest the controller ever paces.
    pub const MIN_RATE: f64 = 0.2;

    /// Learns the server's limit from its `429` answers and rate-limit headers, and paces requests
    /// under it once the server has refused one.
    pub fn adaptive() -> Self {
        Self {
            learn: true,
            max_rate: None,
        }
    }

    /// No learning and no pacing (unless a [`max_rate`](Self::max_rate) is set): a `429` is only
    /// retried as the [`RetryPolicy`](crate::RetryPolicy) says.
    pub fn off() -> Self {
        Self {
            learn: false,
            max_rate: None,
        }
    }

    /// A ceiling the client never exceeds, in requests per second (decimals allowed), whatever it
    /// learns. It must be a positive number; [`ClientBuilder::build`](crate::ClientBuilder::build)
    /// refuses others.
    pub fn max_rate(mut self, per_second: f64) -> Self {
        self.max_rate = Some(per_second);
        self
    }

    /// The ceiling, if one is set.
    pub fn ceiling(&self) -> Option<f64> {
        self.max_rate
    }

    /// Whether the controller learns from the server's answers.
    pub fn learns(&self) -> bool {
        self.learn
    }

    /// Checks the ceiling.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.max_rate {
            Some(rate) if !(rate.is_finite() && rate >= MIN_RATE) => Err(format!(
                "the rate ceiling {rate} is not a number of requests per second of at least \
                 {MIN_RATE}"
            )),
            _ => Ok(()),
        }
    }
}

/// What the rate controller has seen and is doing: [`Client::rate_stats`](crate::Client::rate_stats).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct RateStats {
    /// Requests sent by the client and its clones.
    pub sent: u64,
    /// Of those, how many the server answered `429 Too Many Requests`.
    pub throttled: u64,
    /// The pace the client keeps now, in requests per second, when it paces.
    pub pacing: Option<f64>,
    /// The rate the server was measured (or said) to allow, in requests per second, once known.
    pub learned: Option<f64>,
    /// While pacing, how many requests may be in flight at once: the pace times the answers'
    /// measured latency, with headroom (a caller's own cap, such as `--concurrency`, still
    /// applies on top).
    pub in_flight_limit: Option<usize>,
    /// How long every request still waits because the server's quota is used up or a `429`
    /// asked for a wait of seconds (`Retry-After`), while it does.
    pub holding: Option<Duration>,
}

/// The slowest pace, in requests per second: a request every five seconds.
const MIN_RATE: f64 = RateControl::MIN_RATE;
/// The share of the granted rate (measured, or a `RateLimit-Policy`'s) the client holds at: a
/// little under it, so that jitter and the answers in flight are absorbed.
const TARGET: f64 = 0.98;
/// How fast the pace grows after the first `429`, before anything is measured: by this factor a
/// second at most...
const RAMP_PER_SEC: f64 = 4.0;
/// ...and by this factor a request at most (at low rates a second holds few requests, and each
/// one refused costs a larger share of them).
const RAMP_PER_REQUEST: f64 = 1.25;
/// At a refusal, the pace this long before the refused request went (or one request earlier,
/// if longer) counts as sustained: the new estimate is at least [`PROBE_FLOOR`] of it.
const LOOKBACK: Duration = Duration::from_millis(500);
/// At a refusal in the ramp at low rates (a quarter more a request), the estimate is at least
/// this share of the refused pace (the request before, at four fifths of it, went through).
const RAMP_REQUEST_FLOOR: f64 = 0.88;
/// At a cut, a pace the client kept counts up to this share of the rate measured (see [`used`]).
const SUSTAINED_OVER: f64 = 1.05;
/// At a refusal while probing above the estimate, or an exhausted quota, the new estimate is at
/// least this share of the pace sustained just before.
const PROBE_FLOOR: f64 = 0.98;
/// At a refusal of a pace no higher than the estimate (the limit dropped, or the estimate was
/// too high), the new estimate is the measured rate, between these shares of the refused pace
/// (the middle one when nothing was measured).
const DROP_RANGE: (f64, f64, f64) = (0.6, 0.8, 0.98);
/// A second refusal at or under the estimate soon after a cut, with at most [`AGAIN_ACCEPTED`]
/// answers to requests let through since accepted, within [`AGAIN_WITHIN`] (or the first refusal
/// after the quota's limit fell, within [`LIMIT_FELL_FOR`]): the limit fell far under the pace,
/// farther than a measure can follow (a measure needs answers, and at the new limit they come
/// slowly, each refused request costing one), and the estimate is at most this share of the
/// refused pace. (Not under a `RateLimit-Policy`, which says the rate.)
const DROP_AGAIN: f64 = 0.5;
/// See [`DROP_AGAIN`].
const AGAIN_ACCEPTED: u32 = 1;
/// See [`DROP_AGAIN`].
const AGAIN_WITHIN: Duration = Duration::from_secs(1);
/// How long the probe takes to reach its plateau from an estimate that [`DROP_AGAIN`] guessed:
/// a guess under the limit is found out quickly. (Under a reported quota the probe is as quick,
/// see [`QUOTA_PERIOD`], but for the answers' latency.)
const GUESS_PERIOD: f64 = 1.0;
/// How long a fall of the quota's limit (`RateLimit-Limit` or `X-RateLimit-Limit` lower than
/// before, and not the limit before that: a server that alternates two limits, for two
/// resources, moves nothing once it went back) counts as news for the next refusal (see
/// [`DROP_AGAIN`]).
const LIMIT_FELL_FOR: Duration = Duration::from_secs(5);
/// The shortest stretch over which a quota's fall bounds an estimate at a cut, in seconds (see
/// [`Core::within_refill`]; with [`GRANTS_KEPT`] answers kept, up to about that many a second).
const REFILL_SPAN: f64 = 1.0;
/// The longest time between two refusals of one [`Span`]. A bucket that filled up to its burst
/// between them lost what it refilled beyond, which the span does not count: it then measures
/// less than the rate, never more (down to what the client sent). The longer the gap, the likelier
/// that is, and the more a limit that rose in it is under-counted.
const SPAN_GAP: Duration = Duration::from_secs(5);
/// The fewest answers accepted over a [`Span`] for it to measure the rate: its count is right to
/// a request either way (what the bucket held at each end), a tenth of ten.
const SPAN_ACCEPTED: u32 = 10;
/// Under a reported quota the ramp runs this many times faster: its overshoot is cheap, as the
/// quota runs out, and the pace is cut, before anything is refused.
const QUOTA_RAMP: f64 = 1.5;
/// After this many periods of probing without a refusal (the pace 40 % over the estimate), the
/// limit is taken to have risen: the pace ramps from there.
const PROBE_RAMP_AFTER: f64 = 2.5;
/// How long the probe takes to reach its plateau after a refusal that says the limit moved (see
/// `Core::moving`): the shortest [`period`].
const MOVING_PERIOD: f64 = 3.0;
/// The pace holds at this share of the estimate (the plateau of the probing curve)...
const PLATEAU: f64 = 0.98;
/// ...and starts from this share of it after a cut.
const START: f64 = 0.94;
/// A round trip at least this long (the slow start's, see [`Start::round_trip`]) marks answers
/// slow enough that the slow start's window held what came back in a second (see
/// [`Start::granted`]).
const SLOW_ROUND_TRIP: Duration = Duration::from_millis(250);
/// Answers with a quota needed before its fall counts as a measure of the rate it refills at (a
/// quota is read in whole requests: over this many the error is a twentieth at most).
const QUOTA_SAMPLES: usize = 20;
/// The shortest stretch over which a quota's fall is measured, in seconds (or the answers'
/// latency, if longer).
const MIN_QUOTA_SPAN: f64 = 0.1;
/// The quota is eased before it runs out when what is left lasts less than this many of the
/// answers' latencies at the rate it falls.
const EASE_AHEAD: f64 = 2.0;
/// Accepted answers needed before their spacing counts as a measure of the granted rate.
const MIN_SAMPLES: usize = 3;
/// A pace grows to at most this many times the rate accepted in the last second.
const UNUSED_GROWTH: f64 = 2.0;
/// How many accepted answers' times are kept for that measure.
const GRANTS_KEPT: usize = 128;
/// The measure looks back over this many requests at the refused pace, or [`LOOKBACK`] if longer.
const MEASURE_REQUESTS: f64 = 6.0;
/// How long the probe takes to reach its plateau when the server's answers say how much of its
/// quota remains (see [`period`] otherwise).
const QUOTA_PERIOD: f64 = 1.0;
/// The weight of a new answer's latency in the running average.
const LATENCY_WEIGHT: f64 = 0.2;
/// In flight while pacing: the pace times the answers' latency, times this, plus one.
const IN_FLIGHT_HEADROOM: f64 = 1.5;
/// In flight while pacing, at least.
const MIN_IN_FLIGHT: usize = 2;
/// A `429` whose quota headers say it is used up for at least this long, or whose `Retry-After`
/// asks for it (at the earliest: see [`Limits::holds`]), holds every request.
const HOLD_AFTER: Duration = Duration::from_secs(1);
/// The longest `Retry-After` read as a token bucket's wait for its next token (see
/// [`Core::room_in`]).
const TOKEN_WAIT: Duration = Duration::from_secs(10);
/// The slow-start window: the first requests of a client go one at a time, then
/// [`SLOW_START_GROWTH`] more at once for every accepted answer from the second on (tripling every
/// round trip), until this many answers were accepted; then the window is gone. A service that
/// starts 32 requests at once against a server that allows two a second gets one `429`, not
/// thirty.
const SLOW_START: usize = 64;
/// After the slow start, before any rate-limit header was seen, one accepted answer in this many
/// is looked at for them (a power of two).
const HEADER_SAMPLE: u64 = 64;
const _: () = assert!(HEADER_SAMPLE.is_power_of_two());
/// How many more requests the slow-start window lets out at once for each accepted answer.
const SLOW_START_GROWTH: usize = 2;

/// The rate controller of one client and its clones.
#[derive(Debug)]
pub(crate) struct Controller {
    control: RateControl,
    /// Set once pacing starts (the first `429`, an exhausted quota or a policy in the headers, or
    /// at once with a ceiling). Until then nothing here takes a lock or reads the clock, but
    /// for the answers of the slow start (see [`Start`]).
    engaged: AtomicBool,
    /// Set once the slow start is over.
    warm: AtomicBool,
    /// Set once an answer carried a rate-limit header: from then on every answer is read.
    /// Until then they are looked for in the slow start's answers and one in [`HEADER_SAMPLE`]
    /// after it (a server that sends them sends them on every answer), so that a server that
    /// sends none costs nothing per answer.
    headers_seen: AtomicBool,
    /// The slow-start window: a permit per request in flight.
    window: Semaphore,
    sent: AtomicU64,
    accepted: AtomicU64,
    throttled: AtomicU64,
    /// Requests let through that the server never answered (no answer came, or the caller
    /// dropped them before sending): not in flight any more.
    unanswered: AtomicU64,
    /// Paced requests sent and not yet answered.
    in_flight: AtomicUsize,
    /// Told when a paced request is answered, so that a turn held back by the in-flight limit goes.
    freed: Notify,
    core: Mutex<Option<Core>>,
    /// The file through which the clients of other processes under the same limit share this
    /// pace, if this client shares it (the `lane` module, feature `shared-rate`): each decision
    /// on `core` is then taken on the shared state (but when the file cannot be used; the
    /// figures of [`Controller::stats`] are this process's latest copy).
    lane: Option<Mutex<Lane>>,
    /// What the server accepted before pacing began: where the pace starts from.
    start: Mutex<Start>,
    /// When the first request was let through (read at the slow start's first request only).
    first_sent: std::sync::OnceLock<Instant>,
    /// Paced requests wait for their turn here one at a time, first come first served, so that a
    /// change of pace applies to every request still waiting.
    turn: tokio::sync::Mutex<()>,
    /// The longest hold a request waits out (see [`NoTurn::Held`]).
    max_hold: Duration,
}

/// A request's place in the pacing, held until its answer is observed.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    /// When it was let through, if the controller was pacing then (it then counts in flight).
    sent: Option<Instant>,
    controller: &'a Controller,
    /// Its place in the slow-start window, if the window was still there.
    _window: Option<SemaphorePermit<'a>>,
    /// Whether the server answered it (set when its answer is observed).
    answered: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.controller.unanswered.fetch_add(1, Ordering::Relaxed);
        }
        if self.sent.is_some() {
            self.controller.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.controller.freed.notify_one();
        }
    }
}

/// What an answer says about the rate limit.
#[derive(Debug)]
pub(crate) enum Answer<'a> {
    /// The server accepted the request (any answer but `429`).
    Accepted(&'a HeaderMap),
    /// `429 Too Many Requests`.
    Throttled(&'a HeaderMap),
    /// No answer (a connection or transport failure): nothing to learn.
    None,
}

/// Why a request did not get its turn.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoTurn {
    /// The caller stopped the wait (its cancellation token).
    Stopped,
    /// Its turn would come after the call's deadline.
    Late,
    /// Every request is held this much longer (the server's quota is used up, or a `429` asked
    /// for a `Retry-After`), longer than the retry policy waits for one.
    Held(Duration),
}

/// What [`Controller::wait_turn`] finds at a look at the pace.
enum Slot {
    /// The request goes now (the instant its turn was taken).
    Go(Instant),
    /// Its turn comes at this instant.
    At(Instant),
    /// The requests in flight are as many as the pace needs.
    Full,
    /// Every request is held this much longer, more than the retry policy waits.
    Held(Duration),
}

impl Controller {
    /// A controller for `control`, sharing its pace through `lane` if any, that lets no request
    /// wait out a hold (see [`Limits::holds`]) longer than `max_hold`, the retry policy's
    /// [`max_retry_after`](crate::RetryPolicy::max_retry_after).
    pub(crate) fn new(control: RateControl, lane: Option<Lane>, max_hold: Duration) -> Self {
        let ceiling = control.max_rate;
        // Without learning there is nothing to protect the first requests from.
        let warm = !control.learn;
        Self {
            control,
            engaged: AtomicBool::new(ceiling.is_some()),
            warm: AtomicBool::new(warm),
            headers_seen: AtomicBool::new(false),
            window: Semaphore::new(if warm { 0 } else { 1 }),
            sent: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            freed: Notify::new(),
            core: Mutex::new(ceiling.map(|rate| Core::new(control, rate, Instant::now()))),
            // Nothing learned, nothing to share; a ceiling spaces this client's requests, which
            // a pace shared with clients without it (or with another) would not.
            lane: lane
                .filter(|_| control.learn && ceiling.is_none())
                .map(Mutex::new),
            start: Mutex::new(Start::default()),
            first_sent: std::sync::OnceLock::new(),
            turn: tokio::sync::Mutex::new(()),
            max_hold,
        }
    }

    /// Waits for this request's turn; `Err` if `stop` was cancelled first, or if the turn would
    /// come after `deadline` (nothing was sent).
    pub(crate) async fn acquire(
        &self,
        stop: Option<&CancellationToken>,
        deadline: Option<Instant>,
    ) -> Result<Ticket<'_>, NoTurn> {
        let window = if self.warm.load(Ordering::Relaxed) {
            None
        } else {
            self.join();
            let permit = until_stopped(stop, self.window.acquire()).await?.ok();
            self.first_sent.get_or_init(Instant::now);
            permit
        };
        let sent = if self.engaged.load(Ordering::Relaxed) {
            Some(until_stopped(stop, self.wait_turn(deadline)).await??)
        } else {
            None
        };
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket {
            sent,
            controller: self,
            _window: window,
            answered: false,
        })
    }

    /// Waits until the pace and the in-flight limit let the next request go, one waiter at a time;
    /// `Late` as soon as that would be after `deadline`.
    async fn wait_turn(&self, deadline: Option<Instant>) -> Result<Instant, NoTurn> {
        let _turn = self.turn.lock().await;
        loop {
            let now = Instant::now();
            let slot = self.decide(true, |core| {
                let Some(core) = core.as_mut() else {
                    return Slot::Go(now);
                };
                match core.held(now) {
                    // Held longer than a `Retry-After` the retry policy waits for: the request
                    // is not sent, as one refused with that wait would not be sent again.
                    Some(left) if left > self.max_hold => Slot::Held(left),
                    _ if self.in_flight.load(Ordering::Relaxed) >= core.in_flight_limit() => {
                        Slot::Full
                    }
                    _ => core.take(now).map_or_else(Slot::At, Slot::Go),
                }
            });
            match slot {
                Slot::Go(sent) => {
                    self.in_flight.fetch_add(1, Ordering::Relaxed);
                    return Ok(sent);
                }
                Slot::Held(left) => return Err(NoTurn::Held(left)),
                Slot::At(at) if deadline.is_some_and(|d| at > d) => return Err(NoTurn::Late),
                // Woken often enough to follow a change of pace while waiting.
                Slot::At(at) => {
                    tokio::time::sleep_until(at.min(now + Duration::from_millis(100))).await;
                }
                // Held back by the in-flight limit: no later than the deadline either.
                Slot::Full if deadline.is_some_and(|d| now >= d) => return Err(NoTurn::Late),
                Slot::Full => {
                    let _ = tokio::time::timeout(Duration::from_millis(100), self.freed.notified())
                        .await;
                }
            }
        }
    }

    /// Learns from the answer to a request let through with `ticket`.
    pub(crate) fn observe(&self, mut ticket: Ticket<'_>, answer: Answer<'_>) {
        ticket.answered = !matches!(answer, Answer::None);
        match answer {
            Answer::Accepted(headers) => {
                let accepted = self.accepted.fetch_add(1, Ordering::Relaxed) + 1;
                if !self.warm.load(Ordering::Relaxed) {
                    self.start_lock().accepted(Instant::now(), accepted);
                    if accepted as usize >= SLOW_START {
                        self.end_slow_start();
                    } else if accepted > 1 {
                        // The window grows from the second answer on: a server whose burst is a
                        // single request refuses one request of the start, not two sent at once.
                        self.window.add_permits(self.growth(headers));
                    }
                }
                if self.engaged.load(Ordering::Relaxed) {
                    let limits = Limits::read(headers);
                    self.decide(true, |core| {
                        if let Some(core) = core.as_mut() {
                            core.accepted(Instant::now(), ticket.sent, &limits);
                        }
                    });
                } else if self.control.learn && self.looks_at(accepted) && Limits::present(headers)
                {
                    self.headers_seen.store(true, Ordering::Relaxed);
                    self.engage_on(&Limits::read(headers));
                }
            }
            Answer::Throttled(headers) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                if !self.control.learn {
                    return;
                }
                let limits = Limits::read(headers);
                // A server that asks for the request again at once (`Retry-After: 0`) does not
                // say the client goes too fast: nothing to learn, nothing to pace.
                if limits.retry_now && !self.engaged.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                self.decide(true, |core| {
                    let core = self.start_pacing(core, now, "the server answered 429");
                    core.throttled(now, ticket.sent, &limits);
                });
                self.engaged.store(true, Ordering::Relaxed);
                self.end_slow_start();
            }
            Answer::None => {}
        }
    }

    /// How many more requests the slow start lets go at an accepted answer with `headers`: up
    /// to [`SLOW_START_GROWTH`], but no more than the quota the server says is left, less the
    /// requests in flight, this answer's own turn (which goes again) and the turns not taken yet:
    /// more would be refused. Not behind answers of [`SLOW_ROUND_TRIP`] or more, where the quota
    /// refills while the requests travel (at 100 a second behind 300 ms, thirty a round trip):
    /// what is left says too little there.
    fn growth(&self, headers: &HeaderMap) -> usize {
        let slow = || {
            self.start_lock()
                .round_trip(self.first_sent.get().copied())
                .is_some_and(|trip| trip >= SLOW_ROUND_TRIP)
        };
        if !Limits::present(headers) || slow() {
            return SLOW_START_GROWTH;
        }
        Limits::read(headers)
            .quota_left()
            .map_or(SLOW_START_GROWTH, |left| {
                // The requests in flight, this answer's turn, and the turns not taken yet.
                let free = u64::try_from(self.window.available_permits()).unwrap_or(u64::MAX);
                let room = left.saturating_sub(self.in_flight_now() + 1 + free);
                usize::try_from(room)
                    .unwrap_or(usize::MAX)
                    .min(SLOW_START_GROWTH)
            })
    }

    /// Starts pacing before any `429` when an accepted answer's headers say the quota is used up
    /// (the client goes as fast as the server allows) or name the rate (`RateLimit-Policy`).
    fn engage_on(&self, limits: &Limits) {
        if limits.policy.is_none() && !limits.exhausted() && !self.outruns(limits) {
            return;
        }
        let now = Instant::now();
        self.decide(true, |core| {
            let why = "the server's rate-limit headers (a policy, or a quota used up or smaller \
                       than the requests in flight) start the pacing";
            self.start_pacing(core, now, why)
                .accepted(now, None, limits);
        });
        self.engaged.store(true, Ordering::Relaxed);
        if limits.policy.is_some() {
            // The server said its rate: the pace protects it, the slow start has nothing to find.
            self.end_slow_start();
        }
    }

    /// The pacing state when this client paces (the first time, for `why`): a new one from what
    /// the server granted before (see [`Start::granted`]); or, when the client shares its pace
    /// and another process paces already, that one (and if that process started within the last
    /// second, its ramp starts from what both were granted, see [`Core::joins`]).
    fn start_pacing<'c>(
        &self,
        core: &'c mut Option<Core>,
        now: Instant,
        why: &str,
    ) -> &'c mut Core {
        // Set here, under the lock: a second answer of this client that starts pacing at once
        // finds it engaged, and does not add what it was granted a second time.
        let engaging = !self.engaged.swap(true, Ordering::Relaxed);
        match core {
            Some(shared) => {
                if engaging {
                    tracing::debug!(
                        target: "happyrobot::rate",
                        "rate limit: another process paces under this limit; taking turns from \
                         its pace"
                    );
                    shared.joins(now, self.first_guess(now, true));
                }
                shared
            }
            None => {
                let from = self.first_guess(now, false);
                tracing::debug!(
                    target: "happyrobot::rate",
                    from,
                    "rate limit: {why}; pacing from {from:.2} requests/s"
                );
                core.insert(Core::new(self.control, from, now))
            }
        }
    }

    /// Whether the `accepted`-th accepted answer is looked at for rate-limit headers before
    /// pacing begins (see `headers_seen`).
    fn looks_at(&self, accepted: u64) -> bool {
        accepted & (HEADER_SAMPLE - 1) == 0
            || self.headers_seen.load(Ordering::Relaxed)
            || !self.warm.load(Ordering::Relaxed)
    }

    /// Whether more requests are in flight than the quota has left (of a limit of more than one):
    /// the slow start would send into refusals that the quota announces.
    fn outruns(&self, limits: &Limits) -> bool {
        let in_flight = self.in_flight_now();
        limits.quota_left().is_some_and(|left| left < in_flight)
    }

    /// The requests let through and not answered yet (paced or not).
    fn in_flight_now(&self) -> u64 {
        let answered = self.accepted.load(Ordering::Relaxed)
            + self.throttled.load(Ordering::Relaxed)
            + self.unanswered.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(answered)
    }

    /// Ends the slow start: every request waiting for the window goes (paced, if pacing began).
    fn end_slow_start(&self) {
        if !self.warm.swap(true, Ordering::Relaxed) {
            self.window.close();
        }
    }

    /// Whether the controller learns from `429`s (and so paces a retried request itself).
    pub(crate) fn learns(&self) -> bool {
        self.control.learn
    }

    /// What the controller has seen and does now.
    pub(crate) fn stats(&self) -> RateStats {
        let now = Instant::now();
        let (pacing, learned, in_flight_limit, holding) = match self.lock().as_ref() {
            Some(core) => (
                Some(core.rate(now)),
                core.learned,
                Some(core.in_flight_limit()),
                core.held(now),
            ),
            None => (None, None, None, None),
        };
        RateStats {
            sent: self.sent.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            pacing,
            learned,
            in_flight_limit,
            holding,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Core>> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `decide` on the pacing state: this client's, or the one it shares with other
    /// processes (read before, written after, under the file's lock; the file is made when
    /// `create`, else only looked for).
    fn decide<R>(&self, create: bool, decide: impl FnOnce(&mut Option<Core>) -> R) -> R {
        let mut core = self.lock();
        match &self.lane {
            Some(lane) => lane
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .with(&mut core, create, decide),
            None => decide(&mut core),
        }
    }

    /// At each request of the slow start of a client that shares its pace: when another process
    /// paces under the same limit (already, or since this one started with it), this one takes
    /// its turns from that pace at once, without the rest of a slow start of its own (which would
    /// only find the limit used up). A look for a file that is not there, or a read of one
    /// (some 20 µs), for at most the slow start's requests.
    fn join(&self) {
        if self.lane.is_none() || self.engaged.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let joined = self.decide(false, |core| {
            let shared = core.is_some();
            if shared {
                self.start_pacing(core, now, "another process paces under this limit");
            }
            shared
        });
        if joined {
            self.end_slow_start();
        }
    }

    fn start_lock(&self) -> std::sync::MutexGuard<'_, Start> {
        self.start.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pace to start from when pacing begins (`joining` another process's, whose refusal
    /// started it), before anything is measured: what the server granted before (see
    /// [`Start::granted`]).
    fn first_guess(&self, now: Instant, joining: bool) -> f64 {
        self.start_lock().granted(
            now,
            self.accepted.load(Ordering::Relaxed),
            self.first_sent.get().copied(),
            self.in_flight_now(),
            !joining && self.throttled.load(Ordering::Relaxed) == 0,
        )
    }
}

/// Runs `wait` unless `stop` is cancelled first.
async fn until_stopped<T>(
    stop: Option<&CancellationToken>,
    wait: impl Future<Output = T>,
) -> Result<T, NoTurn> {
    match stop {
        Some(stop) => tokio::select! {
            value = wait => Ok(value),
            () = stop.cancelled() => Err(NoTurn::Stopped),
        },
        None => Ok(wait.await),
    }
}

/// What the server accepted before pacing began, so that the pace starts from what it granted
/// and not from a guess: the times of the slow start's accepted answers (a clock read for each of
/// at most [`SLOW_START`]), then the count and the time at its end (nothing per request after).
#[derive(Debug, Default)]
struct Start {
    times: Vec<Instant>,
    /// When the slow start ended, and how many answers had been accepted then.
    warm: Option<(Instant, u64)>,
}

impl Start {
    /// The `accepted`-th accepted answer came at `now`, in the slow start.
    fn accepted(&mut self, now: Instant, accepted: u64) {
        if self.times.len() < SLOW_START {
            self.times.push(now);
        }
        if accepted as usize >= SLOW_START {
            self.warm = Some((now, accepted));
        }
    }

    /// The rate the server granted before pacing began: the answers accepted in the last second
    /// (those of the slow start, and any since it ended), or, when the slow start ended over a
    /// second ago, those accepted since over the time since; never under what was accepted in
    /// all, up to eight (a service that idled for an hour does not start at one a second), nor
    /// under one. (A server's burst counts in full here: it costs a refusal or two, which the
    /// first cut measures away; a start at one a second would cost seconds of ramp behind slow
    /// answers, where the slow start grants little per second.) Behind answers of
    /// [`SLOW_ROUND_TRIP`] or more (see [`Start::round_trip`]; the first request went at
    /// `first_sent`), a slow start still under way held what came back over the whole second
    /// with its window, which grows threefold a round trip, and not the server: it counts its
    /// last two round trips instead when they say more, or the rate at which the `in_flight`
    /// requests went (in the last round trip), halved unless `none_refused` (once the server
    /// refused one it does not keep up with them all; a quota that runs short before any refusal
    /// says only that it may not).
    fn granted(
        &self,
        now: Instant,
        accepted: u64,
        first_sent: Option<Instant>,
        in_flight: u64,
        none_refused: bool,
    ) -> f64 {
        let second = Duration::from_secs(1);
        let rate = match self.warm {
            Some((at, then)) if now.saturating_duration_since(at) > second => {
                accepted.saturating_sub(then) as f64 / now.duration_since(at).as_secs_f64()
            }
            warm => {
                let since = warm.map_or(0, |(_, then)| accepted.saturating_sub(then));
                let within = |window: Duration| {
                    self.times
                        .iter()
                        .filter(|t| now.saturating_duration_since(**t) <= window)
                        .count() as f64
                };
                let recent = within(second) + since as f64;
                let slow = warm
                    .is_none()
                    .then(|| self.round_trip(first_sent))
                    .flatten()
                    .filter(|trip| *trip >= SLOW_ROUND_TRIP);
                match slow {
                    Some(trip) => {
                        let window = (trip * 2).min(second);
                        let sending = in_flight as f64 / trip.as_secs_f64();
                        recent
                            .max(within(window) / window.as_secs_f64())
                            .max(if none_refused { sending } else { sending / 2.0 })
                    }
                    _ => recent,
                }
            }
        };
        rate.max((accepted as f64).min(8.0)).max(1.0)
    }

    /// How long the slow start's answers take: the shorter of the first request's round trip
    /// (from `first_sent` to the first accepted answer) and the time between the first two
    /// accepted answers (the window lets one request at a time go until the second answer, so
    /// that is the second request's round trip, on a connection already open); `None` before
    /// two answers were accepted. (The first alone would count a connection's and a TLS
    /// handshake's round trips, and a first request that was never answered.)
    fn round_trip(&self, first_sent: Option<Instant>) -> Option<Duration> {
        let (first, second) = (self.times.first()?, self.times.get(1)?);
        let between = second.saturating_duration_since(*first);
        Some(first_sent.map_or(between, |sent| {
            between.min(first.saturating_duration_since(sent))
        }))
    }
}

/// The rate-limit headers of one answer, those this controller understands.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// `RateLimit-Policy: <quota>;w=<window>`, as requests per second.
    policy: Option<f64>,
    /// `RateLimit-Remaining` or `X-RateLimit-Remaining`.
    remaining: Option<u64>,
    /// `RateLimit-Limit` or `X-RateLimit-Limit` (its first number).
    limit: Option<u64>,
    /// `RateLimit-Reset` or `X-RateLimit-Reset`: how long until the quota is back, as the server
    /// says it (see [`reset_in`]).
    reset: Option<Duration>,
    /// `Retry-After: 0`: the server asks for the request again at once.
    retry_now: bool,
    /// `Retry-After`, as a wait.
    retry_after: Option<Duration>,
}

impl Limits {
    /// Whether `headers` hold any `RateLimit-*` or `X-RateLimit-*` header: one pass over the
    /// names, no lookup, no parsing (before pacing begins it runs for the slow start's answers
    /// and one in [`HEADER_SAMPLE`] after).
    fn present(headers: &HeaderMap) -> bool {
        headers.keys().any(|name| {
            let name = name.as_str().as_bytes();
            name.starts_with(b"ratelimit-") || name.starts_with(b"x-ratelimit-")
        })
    }

    /// How long every request waits, when the quota is used up until a reset (or a `429` asks
    /// for a `Retry-After`) at least [`HOLD_AFTER`] away at the earliest: a whole second is taken
    /// off for its rounding, so that a token bucket full again in 0.2 s, which reads "1" or the
    /// next whole Unix second (up to 1.9 s away by a clock that reads whole seconds), holds
    /// nothing. The wait itself goes to the time as said: waking early would only meet another
    /// refusal. (Every request, not only the refused one: a server that asks a client to come
    /// back in a minute refuses whatever it sends before then.)
    fn holds(&self) -> Option<Duration> {
        let quota = self.reset.filter(|_| self.remaining == Some(0));
        [quota, self.retry_after]
            .into_iter()
            .flatten()
            .filter(|r| r.saturating_sub(Duration::from_secs(1)) >= HOLD_AFTER)
            .max()
    }

    /// The remaining quota of a limit of more than one request, if the server says it. (A limit
    /// of one, a token bucket without burst, has none left after every request, which says
    /// nothing.)
    fn quota_left(&self) -> Option<u64> {
        self.remaining
            .filter(|_| self.limit.is_some_and(|limit| limit >= 2))
    }

    /// The quota is used up: none remains (see [`quota_left`](Self::quota_left)).
    fn exhausted(&self) -> bool {
        self.quota_left() == Some(0)
    }

    /// Reads the rate-limit headers of an answer in one pass over its headers (the IETF names
    /// win over the `X-` ones when both are there).
    pub(crate) fn read(headers: &HeaderMap) -> Self {
        // [IETF, X-] for the remaining quota, the limit and the reset.
        let mut remaining = [None, None];
        let mut limit = [None, None];
        let mut reset = [None, None];
        let mut limits = Self::default();
        for (name, value) in headers {
            let Some(text) = value.to_str().ok().map(str::trim) else {
                continue;
            };
            let number = || text.parse::<u64>().ok();
            // A header sent on several lines: its first readable line counts, as a lookup's would.
            let first = |slot: &mut Option<u64>, value: Option<u64>| *slot = slot.or(value);
            match name.as_str() {
                "ratelimit-policy" => limits.policy = limits.policy.or_else(|| parse_policy(text)),
                "ratelimit-remaining" => first(&mut remaining[0], number()),
                "x-ratelimit-remaining" => first(&mut remaining[1], number()),
                "ratelimit-limit" => first(&mut limit[0], first_number(text)),
                "x-ratelimit-limit" => first(&mut limit[1], first_number(text)),
                "ratelimit-reset" => first(&mut reset[0], number()),
                "x-ratelimit-reset" => first(&mut reset[1], number()),
                "retry-after" => {
                    limits.retry_now |= number() == Some(0);
                    limits.retry_after = limits
                        .retry_after
                        .or_else(|| crate::retry::retry_after_of(text));
                }
                _ => {}
            }
        }
        limits.remaining = remaining[0].or(remaining[1]);
        limits.limit = limit[0].or(limit[1]);
        limits.reset = reset[0].or(reset[1]).map(reset_in);
        limits
    }
}

/// The first number of a `RateLimit-Limit` (`10`, or `10, 10;w=1` in older drafts).
fn first_number(text: &str) -> Option<u64> {
    text.split([',', ';']).next()?.trim().parse().ok()
}

/// How long until the quota of a `RateLimit-Reset` / `X-RateLimit-Reset` of `value` is back, as
/// the server says it: GitHub and others send the Unix time of the reset (read against this
/// clock's fraction of a second), the IETF draft seconds. Both are whole seconds, rounded by the
/// server one way or the other: see [`Limits::holds`] for what that means.
fn reset_in(value: u64) -> Duration {
    // Whole seconds as a float: exact far beyond any clock or quota window.
    #[allow(clippy::cast_precision_loss)]
    let value = value as f64;
    let seconds = if value > 1e9 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        value - now
    } else {
        value
    };
    // A year at most: far from any overflow, and the hold itself is capped at a day.
    Duration::from_secs_f64(seconds.clamp(0.0, 366.0 * 86_400.0))
}

/// Reads the first policy of `RateLimit-Policy` (`10;w=1`, or `"default";q=10;w=1` in the draft's
/// newer form) as requests per second.
fn parse_policy(text: &str) -> Option<f64> {
    let first = text.split(',').next()?;
    let mut quota = None;
    let mut window = None;
    for (index, part) in first.split(';').map(str::trim).enumerate() {
        match part.split_once('=') {
            Some(("w", value)) => window = value.trim().parse::<f64>().ok(),
            Some(("q", value)) => quota = value.trim().parse::<f64>().ok(),
            None if index == 0 => quota = part.parse::<f64>().ok(),
            _ => {}
        }
    }
    let (quota, window) = (quota?, window?);
    (quota > 0.0 && window > 0.0 && quota.is_finite() && window.is_finite()).then(|| quota / window)
}

/// How the pace moves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// A fixed pace: a ceiling without learning.
    Fixed,
    /// After the first `429`, before anything is measured: grows by [`RAMP_PER_SEC`] from
    /// `from`, since `at`.
    Ramp { from: f64, at: Instant },
    /// The server was measured (or said) to grant `granted` requests a second at `at`: the pace
    /// holds just under it and probes upward slowly (see [`Core::rate`]).
    Hold { granted: f64, at: Instant },
}

/// When the latest accepted answers came. While a client asks faster than a token bucket refills,
/// the bucket is empty and its accepted answers come exactly at its rate; so over the stretch
/// just before a refusal (the client was then at or over the limit) their count over the time is
/// the rate the server grants this client (its share, when others use the same limit).
#[derive(Debug, Default)]
struct Grants {
    times: std::collections::VecDeque<Instant>,
}

impl Grants {
    fn add(&mut self, now: Instant) {
        if self.times.len() == GRANTS_KEPT {
            self.times.pop_front();
        }
        self.times.push_back(now);
    }

    /// The rate of the answers accepted in the `window` before `now`, from their spacing (the
    /// time from the first to the last), once [`MIN_SAMPLES`] were.
    fn rate(&self, now: Instant, window: Duration) -> Option<f64> {
        let from = now.checked_sub(window)?;
        let mut recent = self.times.iter().rev().take_while(|t| **t > from);
        let last = *recent.next()?;
        let (count, first) = recent.fold((1_usize, last), |(n, _), t| (n + 1, *t));
        let span = last.saturating_duration_since(first).as_secs_f64();
        (count >= MIN_SAMPLES && span > 0.0).then(|| (count - 1) as f64 / span)
    }
}

/// The refusals since `since`, the latest at `last`, each under [`SPAN_GAP`] after the one before,
/// and the `accepted` answers between: at each refusal a token bucket was empty (it held less
/// than a request), and between them it refilled what it let through, so `accepted` over the time
/// is the rate it refills at, to a request either way, however fast the client went (a burst
/// drained in between counts, as it refilled in between too), unless the bucket filled up to its
/// burst meanwhile: then less (see [`SPAN_GAP`]; the estimate it sets is no lower than where the
/// probe started). The rate of the answers just before
/// a refusal, by contrast, is the client's pace, and a burst the bucket saved while the client
/// held under the limit inflates it. (Measured between the answers, which come a latency after
/// the server decided: the same latency at both ends.) A span sets the estimate at a refusal of a
/// probe above the estimate: after a guess under a limit that fell (see [`DROP_AGAIN`]) the probe
/// overshot to some twice the limit, and the answers' pace said 1.4 times it. Not at a refusal
/// under the estimate: a client that shares the limit with others it does not hear of (no
/// shared pace) measures its own share there, which locks in the split; in simulation two such
/// clients fell from 0.94 of the limit to 0.83. Nor over a gap of more than [`SPAN_GAP`], where
/// a limit that rose is under-counted (a bucket full, at the old pace, loses what it refills):
/// in simulation a limit that rose from 5 to 20 a second was followed at 0.48 of it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    since: Instant,
    last: Instant,
    accepted: u32,
}

/// What the latest accepted answers said of the quota left (each took one request of it), so
/// that the rate at which a token bucket refills can be read before it refuses anything: what
/// was accepted over a stretch, less what the quota fell by, over the stretch.
#[derive(Debug, Default)]
struct Quotas {
    /// When, what was left, and of what limit.
    seen: std::collections::VecDeque<(Instant, u64, u64)>,
}

impl Quotas {
    fn add(&mut self, now: Instant, left: u64, limit: u64) {
        if self.seen.len() == GRANTS_KEPT {
            self.seen.pop_front();
        }
        self.seen.push_back((now, left, limit));
    }

    /// The rate at which the quota refills and the rate at which it falls, in requests a
    /// second, over the latest answers since it was last full (a full bucket drops what it
    /// refills) under the same limit (another limit is another quota), once [`QUOTA_SAMPLES`]
    /// answers came after the first of them, over at least `min_span` seconds (answers that come
    /// together, after a stall, measure nothing).
    fn flow(&self, min_span: f64) -> Option<(f64, f64)> {
        let below = |left: u64, limit: u64| left < limit.saturating_sub(1);
        let mut seen = self.seen.iter().rev();
        let &(last, left, limit) = seen
            .next()
            .filter(|(_, left, limit)| below(*left, *limit))?;
        let (mut first, mut was, mut taken) = (last, left, 0_u32);
        for &(at, then, _) in seen.take_while(|(_, then, of)| *of == limit && below(*then, limit)) {
            (first, was, taken) = (at, then, taken + 1);
        }
        let span = last.saturating_duration_since(first).as_secs_f64();
        if (taken as usize) < QUOTA_SAMPLES || span <= 0.0 || span < min_span {
            return None;
        }
        // Whole requests, far under 2^52: exact as floats.
        #[allow(clippy::cast_precision_loss)]
        let fell = was as f64 - left as f64;
        Some(((f64::from(taken) - fell) / span, fell / span))
    }
}

/// The pacing decisions, given the time.
#[derive(Debug)]
pub(crate) struct Core {
    ceiling: Option<f64>,
    phase: Phase,
    /// When the last request went, if one went since pacing began.
    last: Option<Instant>,
    /// No request before this instant: the server's quota is used up until then.
    not_before: Option<Instant>,
    /// The rate the server grants as far as is known: measured, or its policy.
    learned: Option<f64>,
    /// The rate of the server's `RateLimit-Policy`, if it sent one: the pace stays under it.
    policy: Option<f64>,
    /// Whether the server's answers say how much of its quota remains: then probing above the
    /// estimate is cheap (the quota runs out, and the pace is cut, before anything is refused),
    /// and goes quickly. (Under a policy what is left to find is a share of it: two processes
    /// that probe quickly contest it, and refuse a little more together, but use the limit.)
    quota: bool,
    /// Whether the last refusal while holding came at or under the estimate: the limit moved (it
    /// dropped, or another process takes from it), and what it grants now is probed for again
    /// over [`MOVING_PERIOD`] (an estimate at a stable limit is probed over up to ten seconds at
    /// low rates, where each refusal is a large share of the requests). Cleared by a refusal
    /// while probing above the estimate; soft cuts, the ramp's cut and a new policy leave it as
    /// it is. An estimate that was a little too high is refused under it too, and probed again
    /// sooner than it needs: a refusal more, once. (Requiring the rate accepted before such a
    /// refusal to be well under the refused pace spared that refusal, but lost what the flag is
    /// for: in simulation a process that joins one at the limit fell from 0.75 of the limit to
    /// 0.46, a limit that rises from 0.91 to 0.87.)
    moving: bool,
    /// Whether the estimate is a guess under a limit that fell far (see [`DROP_AGAIN`]), probed
    /// for over [`GUESS_PERIOD`].
    guessed: bool,
    /// Whether the ramp runs [`QUOTA_RAMP`] times faster under a reported quota: until it ends
    /// (at its first cut), unless another process shares the pace (two ramps that run quickly
    /// together overshoot together).
    quick_ramp: bool,
    /// The quota's limit (`RateLimit-Limit` or `X-RateLimit-Limit`) as the latest answer said,
    /// and the one before it changed to that.
    limit: Option<u64>,
    limit_before: Option<u64>,
    /// When that limit fell (see [`LIMIT_FELL_FOR`]), until a refusal's cut reads it.
    limit_fell: Option<Instant>,
    /// Answers accepted since the last cut to requests let through after it.
    accepted_since_cut: u32,
    /// The refusals (cuts) that measure the rate the server refills at (see [`Span`]), if the
    /// latest came under [`SPAN_GAP`] ago and nothing held the requests since.
    span: Option<Span>,
    /// When the pace was last cut: an answer to a request let through before then is old news.
    last_cut: Instant,
    /// When the latest answers were accepted.
    grants: Grants,
    /// The quota the latest accepted answers said was left.
    quotas: Quotas,
    /// The answers' latency, a running average in seconds, once a paced request was answered.
    latency: Option<f64>,
}

impl Core {
    pub(crate) fn new(control: RateControl, rate: f64, now: Instant) -> Self {
        let phase = match control.max_rate {
            Some(_) if !control.learn => Phase::Fixed,
            _ => Phase::Ramp {
                from: rate,
                at: now,
            },
        };
        Self {
            ceiling: control.max_rate,
            // After a `429` the server's bucket is empty: the first paced request waits a turn.
            last: (phase != Phase::Fixed).then_some(now),
            phase,
            not_before: None,
            learned: None,
            policy: None,
            quota: false,
            moving: false,
            guessed: false,
            quick_ramp: true,
            limit: None,
            limit_before: None,
            limit_fell: None,
            accepted_since_cut: 0,
            span: None,
            last_cut: now,
            grants: Grants::default(),
            quotas: Quotas::default(),
            latency: None,
        }
    }

    /// The pace at `now`, in requests per second.
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        let rate = self.curve(now);
        // A pace the client does not use (too few requests in flight to reach it) probes
        // nothing: growing it would only let a burst out later. It grows to at most twice what
        // was accepted in the last second; above the estimate, not at all while the client idles
        // (it resumes at the estimate, not at a pace grown unbounded meanwhile).
        let second = Duration::from_secs(1);
        let cap = match self.phase {
            Phase::Ramp { at, .. } => match self.idle_since(now, at) {
                Some(then) => Some(then),
                None => self.grants.rate(now, second).map(|r| r * UNUSED_GROWTH),
            },
            Phase::Hold { granted, at } if rate > granted => match self.idle_since(now, at) {
                Some(_) => Some(granted),
                None => self
                    .grants
                    .rate(now, second)
                    .map(|r| r.max(granted) * UNUSED_GROWTH),
            },
            _ => None,
        };
        self.clamp(cap.map_or(rate, |cap| rate.min(cap)))
    }

    /// The pace at the last accepted answer (or at `since`, the start of the phase, when none
    /// came since), if the client has idled since: nothing accepted for a second, or two
    /// requests' time at that pace if longer.
    fn idle_since(&self, now: Instant, since: Instant) -> Option<f64> {
        let last = self.grants.times.back().map_or(since, |t| (*t).max(since));
        let then = self.curve(last);
        let quiet = Duration::from_secs_f64((2.0 / then.max(MIN_RATE)).clamp(1.0, 10.0));
        (now.saturating_duration_since(last) > quiet).then_some(then)
    }

    /// The pace at `now` as the phase alone sets it.
    fn curve(&self, now: Instant) -> f64 {
        match self.phase {
            Phase::Fixed => f64::INFINITY,
            Phase::Ramp { from, at } => {
                let speed = if self.quota && self.quick_ramp {
                    QUOTA_RAMP
                } else {
                    1.0
                };
                ramp(
                    from,
                    now.saturating_duration_since(at).as_secs_f64() * speed,
                )
            }
            Phase::Hold { granted, at } => {
                // From START × granted to the plateau in a period, concave (quickly at first),
                // then convex beyond it, probing slowly; quiet for PROBE_RAMP_AFTER periods, the
                // server allows more now: the ramp takes over from there.
                let period = self.probe_period(granted);
                let x = now.saturating_duration_since(at).as_secs_f64() / period;
                let plateau = granted * PLATEAU;
                let probe = |x: f64| plateau * (1.0 + (1.0 - START / PLATEAU) * (x - 1.0).powi(3));
                if x <= PROBE_RAMP_AFTER {
                    probe(x)
                } else {
                    ramp(probe(PROBE_RAMP_AFTER), (x - PROBE_RAMP_AFTER) * period)
                }
            }
        }
    }

    /// How long the hold at `granted` takes to reach its plateau (see [`Core::curve`]).
    fn probe_period(&self, granted: f64) -> f64 {
        if self.quota {
            // Answers in flight are answers that do not yet say the quota ran out.
            QUOTA_PERIOD
                .max(self.latency.unwrap_or(0.0) * 10.0)
                .min(period(granted))
        } else if self.guessed {
            GUESS_PERIOD
        } else if self.moving {
            // (A reported quota is probed at least as quickly, but behind slow answers.)
            MOVING_PERIOD
        } else {
            period(granted)
        }
    }

    /// After the client idled (see [`Core::idle_since`]: a long `Retry-After`, a pause of the
    /// caller's), the phase's curve, which went on with the clock, starts again from where it
    /// was: a ramp from the pace at the last accepted answer, a probe above the estimate from its
    /// plateau. Left as it was, the first answers after the pause, too few to measure and so to
    /// cap the pace by, would let the grown curve out at once: a ramp grows fourfold a second,
    /// and after a wait of 20 s it allowed some 10¹⁰ requests a second.
    fn resume(&mut self, now: Instant) {
        if self
            .grants
            .times
            .back()
            .is_some_and(|t| now.saturating_duration_since(*t) > SPAN_GAP)
        {
            // A bucket left alone fills up: the span's count no longer adds up to its refill.
            self.span = None;
        }
        match self.phase {
            Phase::Ramp { at, .. } => {
                if let Some(then) = self.idle_since(now, at) {
                    self.phase = Phase::Ramp {
                        from: then,
                        at: now,
                    };
                }
            }
            Phase::Hold { granted, at }
                if self.curve(now) > granted && self.idle_since(now, at).is_some() =>
            {
                let plateau = Duration::from_secs_f64(self.probe_period(granted));
                self.phase = Phase::Hold {
                    granted,
                    at: now.checked_sub(plateau).unwrap_or(now),
                };
            }
            Phase::Hold { .. } | Phase::Fixed => {}
        }
    }

    /// How many paced requests may be in flight: enough to carry the pace at the measured
    /// latency, with headroom. (Processes that share a pace count their own requests against
    /// the whole pace's limit: a ceiling each, while the shared pace spaces them all.)
    pub(crate) fn in_flight_limit(&self) -> usize {
        let Some(latency) = self.latency else {
            return usize::MAX;
        };
        let carried = self.rate(Instant::now()) * latency * IN_FLIGHT_HEADROOM;
        if carried.is_finite() && carried < 1e6 {
            // A finite, positive product under a million: the cast is exact enough.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let wanted = carried.ceil() as usize + 1;
            wanted.max(MIN_IN_FLIGHT)
        } else {
            usize::MAX
        }
    }

    /// How much longer every request is held (see [`Core::hold`]), if it is.
    fn held(&self, now: Instant) -> Option<Duration> {
        self.not_before
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Lets a request go at `now` (`Ok`, with the instant), or says when it may (`Err`).
    pub(crate) fn take(&mut self, now: Instant) -> Result<Instant, Instant> {
        if let Some(until) = self.not_before {
            if until > now {
                return Err(until);
            }
            self.not_before = None;
        }
        self.resume(now);
        let interval = Duration::from_secs_f64(1.0 / self.rate(now));
        match self.last {
            Some(last) if last + interval > now => Err(last + interval),
            // A turn taken a little late (the timer wakes on the next millisecond) keeps its
            // slot, so that the pace is the pace and not a little under it.
            Some(last) if now.saturating_duration_since(last + interval) < interval => {
                self.last = Some(last + interval);
                Ok(now)
            }
            _ => {
                self.last = Some(now);
                Ok(now)
            }
        }
    }

    /// Another process under the same limit starts pacing at `now`, having been granted
    /// `granted` requests a second: a ramp begun within the last second (by the first of them to
    /// start) starts from what both were granted.
    fn joins(&mut self, now: Instant, granted: f64) {
        if let Phase::Ramp { from, at } = self.phase
            && now.saturating_duration_since(at) < Duration::from_secs(1)
        {
            let from = from + granted;
            tracing::debug!(
                target: "happyrobot::rate",
                from,
                "rate limit: another process started pacing under this limit; pacing both from \
                 {from:.2} requests/s"
            );
            self.phase = Phase::Ramp { from, at };
        }
        self.quick_ramp = false;
    }

    /// Whether a request let through at `sent` went at the pace set at the last cut.
    fn fresh(&self, sent: Option<Instant>) -> bool {
        sent.is_some_and(|sent| sent >= self.last_cut)
    }

    /// Notes the quota's limit an answer at `now` says, and whether it fell (see
    /// [`LIMIT_FELL_FOR`]).
    fn note_limit(&mut self, now: Instant, limits: &Limits) {
        let (Some(limit), Some(was)) = (limits.limit, self.limit) else {
            self.limit = limits.limit.or(self.limit);
            return;
        };
        if limit == was {
            return;
        }
        if self.limit_before == Some(limit) {
            // Back to the limit before: two quotas alternate (two resources'), and the change
            // before this one was no fall either.
            self.limit_fell = None;
        } else if limit < was {
            tracing::debug!(
                target: "happyrobot::rate",
                limit,
                was,
                "rate limit: the server's quota fell from {was} to {limit}; the rate it grants \
                 may have fallen"
            );
            self.limit_fell = Some(now);
        }
        (self.limit_before, self.limit) = (Some(was), Some(limit));
    }

    /// An accepted answer at `now` to a request let through at `sent` (`None`: before pacing).
    pub(crate) fn accepted(&mut self, now: Instant, sent: Option<Instant>, limits: &Limits) {
        self.note_limit(now, limits);
        if self.fresh(sent) {
            self.accepted_since_cut = self.accepted_since_cut.saturating_add(1);
        }
        if let Some(span) = &mut self.span {
            span.accepted = span.accepted.saturating_add(1);
        }
        if let Some(sent) = sent {
            let took = now.saturating_duration_since(sent).as_secs_f64();
            self.latency = Some(
                self.latency
                    .map_or(took, |average| average + LATENCY_WEIGHT * (took - average)),
            );
        }
        self.follow(now, limits);
        self.grants.add(now);
        self.quota |= limits.quota_left().is_some();

        if let (Some(left), Some(limit)) = (limits.quota_left(), limits.limit) {
            self.quotas.add(now, left, limit);
            if !limits.exhausted() && self.fresh(sent) {
                self.ease(now, left);
            }
        }

        // The quota is used up: the pace is at the limit; cut before the server refuses.
        if limits.exhausted()
            && self.fresh(sent)
            && let Some(sent) = sent
        {
            self.cut(now, sent, true);
        }
    }

    /// The quota, `left` of `limit`, falls so fast that the requests in flight (some
    /// [`EASE_AHEAD`] latencies' worth) would use it up: the pace holds under the rate at which it
    /// refills (see [`Quotas::flow`]) from now, before the server refuses anything.
    fn ease(&mut self, now: Instant, left: u64) {
        let latency = self.latency.unwrap_or(0.0);
        let Some((refills, falls)) = self.quotas.flow(latency.max(MIN_QUOTA_SPAN)) else {
            return;
        };
        let ahead = falls * latency * EASE_AHEAD;
        // Whole requests, far under 2^52: exact as a float.
        #[allow(clippy::cast_precision_loss)]
        let left = left as f64;
        // A quota that refills less than it falls is a window's (GitHub's 5,000 an hour falls
        // until its reset, refilling nothing), not a bucket's: it runs out, and its reset holds
        // every request (see `Limits::holds`); pacing at what it refills would crawl until then.
        if falls <= 0.0 || refills < falls || left >= ahead || self.phase == Phase::Fixed {
            return;
        }
        let granted = self.clamp(refills);
        if granted >= self.rate(now) {
            return;
        }
        tracing::debug!(
            target: "happyrobot::rate",
            refills,
            falls,
            left,
            "rate limit: the server's quota refills at about {granted:.2} requests/s and runs \
             out; pacing under it"
        );
        self.hold_under(now, granted);
    }

    /// A cut at `now` to an estimate of `granted` requests a second: the pace holds under it
    /// from now, and answers to requests let through before are old news.
    fn hold_under(&mut self, now: Instant, granted: f64) {
        self.learned = Some(granted);
        self.last_cut = now;
        self.accepted_since_cut = 0;
        self.phase = Phase::Hold { granted, at: now };
    }

    /// A `429` for a request let through at `sent` (`None`: before pacing began).
    pub(crate) fn throttled(&mut self, now: Instant, sent: Option<Instant>, limits: &Limits) {
        self.note_limit(now, limits);
        self.follow(now, limits);
        self.hold(now, limits);
        // Refusals of requests that went before the last cut say nothing about the pace since,
        // and one that asks for a retry at once (`Retry-After: 0`) is no sign of going too fast.
        if limits.retry_now || !self.fresh(sent) {
            return;
        }
        if let Some(sent) = sent {
            self.cut(now, sent, false);
            self.room_in(limits);
        }
        // A wait longer than a token bucket's (a window's reset) says nothing of a rate: what
        // was measured before it is not what the server allows, and is not reported as such.
        if limits.holds().is_some_and(|wait| wait > TOKEN_WAIT) {
            self.learned = None;
        }
    }

    /// After a cut for a `429` whose `Retry-After` holds every request (see [`Limits::holds`]) for
    /// a token bucket's wait (up to [`TOKEN_WAIT`]): the server has room for the next request
    /// then, and not much sooner, so it grants about one request per that wait, at most. (A
    /// longer wait is a window's, after which a whole quota may be back: it says nothing of a
    /// rate.)
    fn room_in(&mut self, limits: &Limits) {
        let Some(wait) = limits
            .retry_after
            .filter(|w| w.saturating_sub(Duration::from_secs(1)) >= HOLD_AFTER && *w <= TOKEN_WAIT)
        else {
            return;
        };
        // A server that says its rate, or a quota of several requests, is not read this way: the
        // wait may be its window's.
        if self.policy.is_some() || limits.limit.is_some_and(|limit| limit >= 2) {
            return;
        }
        if let Phase::Hold { granted, at } = self.phase {
            let granted = granted.min(1.0 / wait.as_secs_f64());
            self.learned = Some(granted);
            self.phase = Phase::Hold { granted, at };
        }
    }

    /// The server refused (or, `soft`, its quota ran out for) a request let through at `sent`:
    /// the granted rate is what it accepted since the last cut over the time since (see
    /// [`Grants`]), but not above the pace that was refused and not below a floor of it (few
    /// answers measure little); the pace holds under it from now.
    fn cut(&mut self, now: Instant, sent: Instant, soft: bool) {
        let refused = self.rate(sent);
        let window = LOOKBACK.max(Duration::from_secs_f64(MEASURE_REQUESTS / refused));
        let measured = self.grants.rate(now, window);
        // The pace a little before the refused request went was sustained.
        // (The answer's latency later, that is: the pace went on rising while it travelled.)
        let latency = Duration::from_secs_f64(self.latency.unwrap_or(0.0).min(10.0));
        let lookback = LOOKBACK.max(Duration::from_secs_f64(1.0 / refused)) + latency;
        let sustained = PROBE_FLOOR * self.rate(sent.checked_sub(lookback).unwrap_or(sent));
        let spanned = if soft { None } else { self.span_rate(now) };
        let granted = match self.phase {
            Phase::Fixed => return,
            // At low rates the ramp grows a quarter a request, and the request before the
            // refused one went through: the limit is within a fifth under the refused pace.
            Phase::Ramp { .. } => {
                let within = if refused < ramp_switch() {
                    refused * RAMP_REQUEST_FLOOR
                } else {
                    0.0
                };
                // The quota ran out: what was accepted is all the server granted, its burst
                // included, and no more is allowed for a pace the client kept. (A policy ends
                // the ramp: see `follow`.)
                if soft {
                    measured.map_or(sustained, |m| m.min(refused * PROBE_FLOOR))
                } else {
                    used(measured, sustained)
                }
                .max(within)
            }
            // The quota runs out under the estimate: the bucket is still filling again after the
            // last cut (or the limit dropped, which refusals will tell).
            Phase::Hold { granted, .. } if soft && refused <= granted => return,
            // The quota ran out, nothing was refused: just under the pace that used it up.
            Phase::Hold { .. } if soft => used(measured, refused * PROBE_FLOOR),
            // Refused at or under the estimate, or soon after the quota's limit fell: the limit
            // is lower than measured (it dropped).
            Phase::Hold { granted, .. } if refused <= granted || self.limit_fell_at(now) => {
                let again = self.limit_fell_at(now) || self.moving && self.again(now);
                self.moving = true;
                self.guessed = again;
                let (low, none, high) = DROP_RANGE;
                let measured =
                    measured.map_or(refused * none, |m| m.clamp(refused * low, refused * high));
                if again {
                    measured.min(refused * DROP_AGAIN)
                } else {
                    measured
                }
            }
            // Refused while probing above it: the limit is what the span measured, or at least
            // what was sustained. (A span under the estimate it probed from, less the probe's
            // start below it, is one whose bucket filled up meanwhile: see `SPAN_GAP`.)
            Phase::Hold { granted, .. } => {
                self.guessed = false;
                self.moving = false;
                spanned.map_or_else(
                    || measured.unwrap_or(sustained),
                    |spanned| spanned.max(granted * START),
                )
            }
        }
        .min(refused);
        let granted = self.within_refill(granted, refused);
        tracing::debug!(
            target: "happyrobot::rate",
            refused_pace = refused,
            measured,
            granted,
            quota_used_up = soft,
            "rate limit: the server grants about {granted:.2} requests/s; pacing under it"
        );
        if !soft {
            self.limit_fell = None;
            self.span_to(now);
        }
        self.hold_under(now, granted);
    }

    /// The rate the [`Span`] up to a refusal at `now` measured, if it did: enough answers, the
    /// last refusal recent enough.
    fn span_rate(&self, now: Instant) -> Option<f64> {
        let span = self
            .span
            .filter(|span| now.saturating_duration_since(span.last) <= SPAN_GAP)?;
        let time = now.saturating_duration_since(span.since).as_secs_f64();
        (span.accepted >= SPAN_ACCEPTED && time > 0.0).then(|| f64::from(span.accepted) / time)
    }

    /// A refusal at `now` ends the span (see [`Span`]) and goes on with it, or starts a new one:
    /// after a gap, or when the limit fell far (a guess, see [`DROP_AGAIN`]: the span measured
    /// the limit before); none while a hold is in force.
    fn span_to(&mut self, now: Instant) {
        if self.held(now).is_some() {
            // Nothing goes while the bucket fills (see `Core::hold`): no span over that.
            self.span = None;
            return;
        }
        match &mut self.span {
            Some(span) if !self.guessed && now.saturating_duration_since(span.last) <= SPAN_GAP => {
                span.last = now;
            }
            _ => {
                self.span = Some(Span {
                    since: now,
                    last: now,
                    accepted: 0,
                });
            }
        }
    }

    /// Whether the quota's limit fell recently (see [`LIMIT_FELL_FOR`]), with no policy to say
    /// the rate.
    fn limit_fell_at(&self, now: Instant) -> bool {
        self.policy.is_none()
            && self
                .limit_fell
                .is_some_and(|at| now.saturating_duration_since(at) < LIMIT_FELL_FOR)
    }

    /// Whether a refusal at or under the estimate at `now` came soon after the last cut, with
    /// next to nothing let through since accepted, and no policy to say the rate: see
    /// [`DROP_AGAIN`].
    fn again(&self, now: Instant) -> bool {
        self.policy.is_none()
            && self.accepted_since_cut <= AGAIN_ACCEPTED
            && now.saturating_duration_since(self.last_cut) < AGAIN_WITHIN
    }

    /// An estimate `granted` after a cut in a hold (a `refused` pace), no higher than the rate
    /// at which the server's quota refills as measured (see [`Quotas::flow`], over
    /// [`REFILL_SPAN`] at least), and no lower than the lowest share of [`DROP_RANGE`]: a measure
    /// of a bucket's refill that a burst does not inflate. (Not under a policy, which says the
    /// rate, nor for a quota that refills less than it falls: a window's, see [`Core::ease`].)
    fn within_refill(&self, granted: f64, refused: f64) -> f64 {
        if self.policy.is_some() || !matches!(self.phase, Phase::Hold { .. }) {
            return granted;
        }
        match self.quotas.flow(REFILL_SPAN) {
            Some((refills, falls)) if refills >= falls => {
                granted.min(refills.max(refused * DROP_RANGE.0))
            }
            _ => granted,
        }
    }

    /// Follows a `RateLimit-Policy`: the pace stays under its rate, and a new one (the first, or
    /// a changed limit) is where the pace starts again.
    fn follow(&mut self, now: Instant, limits: &Limits) {
        let Some(rate) = limits.policy else { return };
        if self.policy != Some(rate) {
            tracing::debug!(
                target: "happyrobot::rate",
                policy = rate,
                "rate limit: the server's RateLimit-Policy allows {rate:.2} requests/s"
            );
            self.policy = Some(rate);
            self.learned = Some(rate);
            if self.phase != Phase::Fixed {
                self.phase = Phase::Hold {
                    granted: rate,
                    at: now,
                };
            }
        }
    }

    /// Follows what a `429`'s headers say: a quota used up for a while longer, or a
    /// `Retry-After` of some seconds, holds every request until then, since each would be
    /// refused. A short wait (under [`HOLD_AFTER`]) is
    /// left to the pace: a token bucket's "full again in a second" is no refusal of the next
    /// request, which comes a fraction of that later.
    fn hold(&mut self, now: Instant, limits: &Limits) {
        if let Some(reset) = limits.holds() {
            // A day at most: far from any overflow of the clock, and the retry policy's cap on a
            // single wait applies to the requests themselves.
            let reset = reset.min(Duration::from_secs(86_400));
            tracing::debug!(
                target: "happyrobot::rate",
                seconds = reset.as_secs_f64(),
                "rate limit: the server's quota is used up, or it asked to wait (Retry-After); \
                 holding every request until then"
            );
            let until = now + reset;
            self.not_before = Some(self.not_before.map_or(until, |t| t.max(until)));
            // Nothing goes until then, while the bucket fills: see `Span`.
            self.span = None;
        }
    }

    fn clamp(&self, rate: f64) -> f64 {
        let rate = if rate.is_nan() { MIN_RATE } else { rate };
        let rate = self.policy.map_or(rate, |policy| rate.min(policy * TARGET));
        let rate = rate.max(MIN_RATE);
        self.ceiling.map_or(rate, |c| rate.min(c))
    }
}

/// The rate granted, given the rate `measured` from the accepted answers (if enough were) and a
/// `pace` the client kept: the pace, unless the client could not use it (too few requests in
/// flight to reach it), which counts no more than a little over what was accepted.
fn used(measured: Option<f64>, pace: f64) -> f64 {
    measured.map_or(pace, |m| m.max(pace.min(m * SUSTAINED_OVER)))
}

/// The pace from which a second holds enough requests for the ramp's per-second bound to be the
/// slower one (about 6 a second).
fn ramp_switch() -> f64 {
    RAMP_PER_SEC.ln() / RAMP_PER_REQUEST.ln()
}

/// The ramp's pace `t` seconds after it started from `from`: it grows by [`RAMP_PER_REQUEST`]
/// per request (as `dp/dt = p² ln 1.25`) while that is slower than [`RAMP_PER_SEC`], then by
/// that per second.
fn ramp(from: f64, t: f64) -> f64 {
    let per_request = RAMP_PER_REQUEST.ln();
    let switch = ramp_switch();
    if from < switch {
        let until = (1.0 / from - 1.0 / switch) / per_request;
        if t < until {
            return 1.0 / (1.0 / from - per_request * t);
        }
        return switch * RAMP_PER_SEC.powf(t - until);
    }
    from * RAMP_PER_SEC.powf(t)
}

/// How long the probe takes to reach its plateau: long enough for a few dozen requests at low
/// rates, so that probing beyond it costs a small share of them.
fn period(granted: f64) -> f64 {
    (20.0 / granted.max(MIN_RATE)).clamp(3.0, 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_limits_are_read() {
        assert_eq!(parse_policy("10;w=1"), Some(10.0));
        assert_eq!(parse_policy("100;w=60, 1000;w=3600"), Some(100.0 / 60.0));
        assert_eq!(parse_policy("\"default\";q=50;w=2"), Some(25.0));
        assert_eq!(parse_policy("10"), None);
        assert_eq!(parse_policy("x;w=0"), None);
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", "3".parse().unwrap());
        let limits = Limits::read(&headers);
        assert_eq!(limits.remaining, Some(0));
        // Three whole seconds: two at the earliest, so every request waits, the three seconds.
        assert_eq!(limits.reset, Some(Duration::from_secs(3)));
        assert_eq!(limits.holds(), Some(Duration::from_secs(3)));
        // "1": full again within a second (a token bucket), nothing to hold.
        headers.insert("x-ratelimit-reset", "1".parse().unwrap());
        assert_eq!(Limits::read(&headers).holds(), None);
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        headers.insert("x-ratelimit-reset", epoch.to_string().parse().unwrap());
        let reset = Limits::read(&headers).reset.unwrap();
        assert!(reset <= Duration::from_secs(30) && reset >= Duration::from_secs(29));
        // The next whole Unix second, up to 1.9 s away by this clock: nothing to hold.
        headers.insert(
            "x-ratelimit-reset",
            (epoch - 28).to_string().parse().unwrap(),
        );
        let limits = Limits::read(&headers);
        assert!(limits.reset.unwrap() > Duration::from_secs(1));
        assert_eq!(limits.holds(), None);
        // With quota left nothing is held, however far the reset.
        headers.insert("x-ratelimit-remaining", "3".parse().unwrap());
        headers.insert("x-ratelimit-reset", "60".parse().unwrap());
        assert_eq!(Limits::read(&headers).holds(), None);
        assert_eq!(Limits::read(&HeaderMap::new()), Limits::default());
    }

    #[test]
    fn a_retry_after_of_seconds_holds_every_request() {
        let after = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", value.parse().unwrap());
            Limits::read(&headers)
        };
        assert_eq!(after("20").holds(), Some(Duration::from_secs(20)));
        assert_eq!(after("2").holds(), Some(Duration::from_secs(2)));
        // A token bucket's next token, rounded up to a second: left to the pace.
        assert_eq!(after("1").holds(), None);
        assert!(after("0").retry_now);
        assert_eq!(after("0").holds(), None);
        // The longer of a used-up quota's reset and the Retry-After.
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "5".parse().unwrap());
        headers.insert("ratelimit-remaining", "0".parse().unwrap());
        headers.insert("ratelimit-reset", "9".parse().unwrap());
        assert_eq!(Limits::read(&headers).holds(), Some(Duration::from_secs(9)));
        // A 429 that asks for 30 s: the next request waits for it, however the pace stood.
        let (mut core, start) = held_at(10.0);
        let now = start + Duration::from_secs(3);
        core.throttled(now, Some(now), &after("30"));
        assert_eq!(core.take(now), Err(now + Duration::from_secs(30)));
        // What was measured before is not reported as what the server allows: a limit of one
        // request every 20 s is not "about 9 a second".
        assert_eq!(core.learned, None);
        // A token bucket's wait of 5 s bounds the rate to one request per 5 s.
        let (mut core, start) = held_at(10.0);
        let now = start + Duration::from_secs(3);
        core.throttled(now, Some(now), &after("5"));
        assert_eq!(core.learned, Some(0.2));
    }

    #[test]
    fn a_pace_resumes_where_it_was_after_a_long_wait() {
        // A ramp from 1 a second, then 20 s without a request (a long Retry-After): the ramp
        // went on growing fourfold a second meanwhile.
        let start = Instant::now();
        let mut core = Core::new(RateControl::adaptive(), 1.0, start);
        let mut now = start + Duration::from_secs(20);
        assert!(core.curve(now) > 1e9);
        assert_eq!(core.take(now), Ok(now));
        now += Duration::from_millis(50);
        core.accepted(
            now,
            Some(now - Duration::from_millis(50)),
            &Limits::default(),
        );
        // One answer, too few to measure: the next request still waits its turn at about 1 a
        // second (it went at once, 10¹⁰ a second, before).
        let next = core.take(now).unwrap_err();
        assert!(next >= now + Duration::from_millis(500), "{:?}", next - now);
        assert!(core.rate(now) < 2.0, "{}", core.rate(now));
        // A hold probing above its estimate resumes at its plateau, not where the probe went.
        let (mut core, start) = held_at(10.0);
        let now = start + Duration::from_secs(60);
        assert!(core.curve(now) > 100.0);
        assert_eq!(core.take(now), Ok(now));
        let after = now + Duration::from_millis(10);
        core.accepted(after, Some(now), &Limits::default());
        let rate = core.rate(after);
        assert!((9.0..=10.5).contains(&rate), "{rate}");
    }

    #[test]
    fn the_ietf_names_win_and_a_repeated_header_counts_once() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "7".parse().unwrap());
        headers.insert("ratelimit-remaining", "3".parse().unwrap());
        headers.insert("x-ratelimit-limit", "20".parse().unwrap());
        headers.append("ratelimit-policy", "10;w=1".parse().unwrap());
        headers.append("ratelimit-policy", "1000;w=1".parse().unwrap());
        headers.append("ratelimit-reset", "nonsense".parse().unwrap());
        headers.append("ratelimit-reset", "4".parse().unwrap());
        let limits = Limits::read(&headers);
        assert_eq!(limits.remaining, Some(3));
        assert_eq!(limits.limit, Some(20));
        assert_eq!(limits.policy, Some(10.0));
        assert_eq!(limits.reset, Some(Duration::from_secs(4)));
        assert!(Limits::present(&headers));
        let mut plain = HeaderMap::new();
        plain.insert("x-request-id", "r1".parse().unwrap());
        plain.insert("content-type", "application/json".parse().unwrap());
        assert!(!Limits::present(&plain));
    }

    #[test]
    fn ceilings_are_checked() {
        assert!(RateControl::adaptive().max_rate(0.5).check().is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.01] {
            assert!(
                RateControl::adaptive().max_rate(bad).check().is_err(),
                "{bad}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_slow_start_sends_no_more_than_the_quota_left() {
        let quota = |limit: u32, left: u32| {
            let mut headers = HeaderMap::new();
            headers.insert("x-ratelimit-limit", limit.to_string().parse().unwrap());
            headers.insert("x-ratelimit-remaining", left.to_string().parse().unwrap());
            headers
        };
        let in_flight_after_two = |first: HeaderMap, second: HeaderMap| async move {
            let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
            let ticket = controller.acquire(None, None).await.unwrap();
            controller.observe(ticket, Answer::Accepted(&first));
            let ticket = controller.acquire(None, None).await.unwrap();
            controller.observe(ticket, Answer::Accepted(&second));
            let mut held = Vec::new();
            while let Ok(ticket) =
                tokio::time::timeout(Duration::from_secs(1), controller.acquire(None, None)).await
            {
                held.push(ticket.unwrap());
            }
            held.len()
        };
        // Without a quota the window grows by two at the second answer: three go at once.
        assert_eq!(
            in_flight_after_two(HeaderMap::new(), HeaderMap::new()).await,
            3
        );
        // With one request of the quota left, one: two more would be refused.
        assert_eq!(in_flight_after_two(quota(3, 2), quota(3, 1)).await, 1);
        // With two left, two.
        assert_eq!(in_flight_after_two(quota(3, 2), quota(3, 2)).await, 2);
        // With plenty left, the window grows as without.
        assert_eq!(in_flight_after_two(quota(11, 10), quota(11, 9)).await, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_ceiling_spaces_requests_from_the_start() {
        let controller = Controller::new(RateControl::off().max_rate(4.0), None, Duration::MAX);
        let start = Instant::now();
        for _ in 0..9 {
            let ticket = controller.acquire(None, None).await.unwrap();
            controller.observe(ticket, Answer::Accepted(&HeaderMap::new()));
        }
        // Nine requests at 4 per second: the ninth goes two seconds after the first.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(controller.stats().pacing, Some(4.0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_requests_in_flight_carry_the_pace_at_the_measured_latency() {
        let controller = Controller::new(RateControl::off().max_rate(100.0), None, Duration::MAX);
        let ticket = controller.acquire(None, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        controller.observe(ticket, Answer::Accepted(&HeaderMap::new()));
        // 100 a second at 300 ms: 30 in flight carry it; with half again as headroom, 46.
        assert_eq!(controller.stats().in_flight_limit, Some(46));
        let mut held = Vec::new();
        for _ in 0..46 {
            held.push(controller.acquire(None, None).await.unwrap());
        }
        let start = Instant::now();
        let next = controller.acquire(None, Some(start + Duration::from_secs(5)));
        let release = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            held.pop();
        };
        let (next, ()) = tokio::join!(next, release);
        assert!(next.is_ok());
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "the 47th waited for an answer"
        );
    }

    /// One request, answered `429` without headers.
    async fn refuse(controller: &Controller) {
        let ticket = controller.acquire(None, None).await.unwrap();
        controller.observe(ticket, Answer::Throttled(&HeaderMap::new()));
    }

    /// Accepted answers of a slow start, `per_second` of them a second for `seconds`, each
    /// request answered before the next goes.
    async fn accept_for(controller: &Controller, per_second: u64, seconds: u64) {
        for _ in 0..per_second * seconds {
            let ticket = controller.acquire(None, None).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1) / u32::try_from(per_second).unwrap()).await;
            controller.observe(ticket, Answer::Accepted(&HeaderMap::new()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_longer_than_the_retry_policy_waits_is_not_waited_out() {
        let mut asks = HeaderMap::new();
        asks.insert("retry-after", "60".parse().unwrap());
        // Up to 120 s a request waits: the next one goes when the minute is over.
        let controller = Controller::new(RateControl::adaptive(), None, Duration::from_secs(120));
        let ticket = controller.acquire(None, None).await.unwrap();
        controller.observe(ticket, Answer::Throttled(&asks));
        assert!(controller.stats().holding > Some(Duration::from_secs(59)));
        let started = Instant::now();
        drop(controller.acquire(None, None).await.unwrap());
        assert!(started.elapsed() >= Duration::from_secs(60));
        // Up to 30 s: none waits, each is told at once how long the hold lasts.
        let controller = Controller::new(RateControl::adaptive(), None, Duration::from_secs(30));
        let ticket = controller.acquire(None, None).await.unwrap();
        controller.observe(ticket, Answer::Throttled(&asks));
        let started = Instant::now();
        match controller.acquire(None, None).await {
            Err(NoTurn::Held(left)) => assert!(left > Duration::from_secs(59), "{left:?}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_starts_from_what_was_accepted_in_the_last_second() {
        // Behind slow answers the slow start is still going when the first 429 comes: 30
        // accepted a second, and the pace starts there, not from a guess of a few a second.
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        accept_for(&controller, 30, 2).await;
        refuse(&controller).await;
        let pace = controller.stats().pacing.unwrap();
        assert!((29.0..=31.0).contains(&pace), "{pace}");
        // A server that refused the second request of all (a burst of one) starts the pace at
        // one a second.
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        accept_for(&controller, 1, 1).await;
        refuse(&controller).await;
        assert_eq!(controller.stats().pacing, Some(1.0));
    }

    /// A slow start behind answers of `round_trip`: rounds of one, one, three and nine requests,
    /// the last ending (with eight of its round still in flight) in a refusal, or else in an
    /// answer whose quota left is smaller than the requests in flight; the pace it starts from.
    async fn slow_start_ended(round_trip: Duration, refused: bool) -> f64 {
        slow_start_after(round_trip, round_trip, refused).await
    }

    /// [`slow_start_ended`], with a first request that took `first` (a connection opened).
    async fn slow_start_after(first: Duration, round_trip: Duration, refused: bool) -> f64 {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        for (n, round) in [1, 1, 3].into_iter().enumerate() {
            let mut tickets = Vec::new();
            for _ in 0..round {
                tickets.push(controller.acquire(None, None).await.unwrap());
            }
            tokio::time::sleep(if n == 0 { first } else { round_trip }).await;
            for ticket in tickets {
                controller.observe(ticket, Answer::Accepted(&HeaderMap::new()));
            }
        }
        let mut round = Vec::new();
        for _ in 0..9 {
            round.push(controller.acquire(None, None).await.unwrap());
        }
        tokio::time::sleep(round_trip).await;
        let last = round.pop().unwrap();
        if refused {
            controller.observe(last, Answer::Throttled(&HeaderMap::new()));
        } else {
            let mut headers = HeaderMap::new();
            headers.insert("x-ratelimit-limit", "11".parse().unwrap());
            headers.insert("x-ratelimit-remaining", "2".parse().unwrap());
            controller.observe(last, Answer::Accepted(&headers));
        }
        controller.stats().pacing.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn behind_slow_answers_pacing_starts_from_what_the_slow_start_sent() {
        // 300 ms answers: five accepted in the last second, but eight requests went in the last
        // round trip; after a refusal the pace starts from half their rate (8 / 0.3 / 2), not
        // from five.
        let pace = slow_start_ended(Duration::from_millis(300), true).await;
        assert!((13.0..=13.5).contains(&pace), "{pace}");
        // A quota that runs short before anything was refused: from their whole rate.
        let pace = slow_start_ended(Duration::from_millis(300), false).await;
        assert!((26.0..=27.0).contains(&pace), "{pace}");
        // 50 ms answers: the whole slow start fits in the second; what it was granted counts.
        // So too when the first request took 400 ms (a connection and a TLS handshake to open):
        // the answers after it are what the rounds take.
        for refused in [true, false] {
            let fast = Duration::from_millis(50);
            let pace = slow_start_ended(fast, refused).await;
            assert!((4.9..=6.1).contains(&pace), "{refused}: {pace}");
            let pace = slow_start_after(Duration::from_millis(400), fast, refused).await;
            assert!((4.9..=6.1).contains(&pace), "{refused}, slow first: {pace}");
        }
    }

    /// Decisions holding at `granted` requests a second since now (returned too).
    fn held_at(granted: f64) -> (Core, Instant) {
        let start = Instant::now();
        let mut core = Core::new(RateControl::adaptive(), granted, start);
        core.phase = Phase::Hold { granted, at: start };
        (core, start)
    }

    #[test]
    fn a_quota_that_falls_gives_the_rate_it_refills_at() {
        // 110 answers a second from a bucket that refills at 100: the quota falls by 10 a second.
        let start = Instant::now();
        let mut quotas = Quotas::default();
        let tokens = |t: f64| (10.5 - 10.0 * t).floor().max(0.0) as u64;
        for n in 0..50_u32 {
            let t = f64::from(n) / 110.0;
            quotas.add(start + Duration::from_secs_f64(t), tokens(t), 11);
        }
        let (refills, falls) = quotas.flow(0.1).unwrap();
        assert!((95.0..=105.0).contains(&refills), "{refills}");
        assert!((7.0..=13.0).contains(&falls), "{falls}");
        // Full again (a full bucket drops what it refills): nothing is measured until enough
        // answers came since.
        quotas.add(start + Duration::from_millis(500), 10, 11);
        for n in 1..=QUOTA_SAMPLES {
            assert_eq!(quotas.flow(0.1), None, "{n}");
            quotas.add(start + Duration::from_millis(500 + 9 * n as u64), 9, 11);
        }
        quotas.add(start + Duration::from_millis(500 + 9 * 21), 9, 11);
        let (refills, falls) = quotas.flow(0.1).unwrap();
        assert_eq!(falls, 0.0);
        assert!((105.0..=115.0).contains(&refills), "{refills}");
        // Too few answers, or a limit of one, measure nothing.
        let mut few = Quotas::default();
        few.add(start, 3, 11);
        few.add(start + Duration::from_millis(10), 2, 11);
        assert_eq!(few.flow(0.1), None);
        // Another limit is another quota: its samples do not count with this one's; nor do
        // answers that came together, within less than the shortest span.
        let mut mixed = Quotas::default();
        for n in 0..30_u64 {
            let of = if n < 15 { 5000 } else { 11 };
            mixed.add(start + Duration::from_millis(10 * n), 4, of);
        }
        assert_eq!(mixed.flow(0.1), None);
        let mut together = Quotas::default();
        for n in 0..30_u64 {
            together.add(start + Duration::from_micros(100 * n), 9 - n / 4, 11);
        }
        assert_eq!(together.flow(0.1), None);
        assert!(together.flow(0.0).is_some());
        // A quota beyond any count does not overflow.
        let mut huge = Quotas::default();
        huge.add(start, u64::MAX, u64::MAX);
        assert_eq!(huge.flow(0.0), None);
    }

    #[test]
    fn a_quota_that_would_run_out_behind_slow_answers_is_eased_before_any_refusal() {
        // Probing at 110 a second behind 300 ms answers, where the server refills 100: the quota
        // falls 10 a second, and the 33 requests in flight would use up what is left.
        let (mut core, start) = held_at(104.0);
        core.quota = true;
        core.latency = Some(0.3);
        core.phase = Phase::Hold {
            granted: 104.0,
            at: start.checked_sub(Duration::from_secs(2)).unwrap(),
        };
        let quota = |remaining| Limits {
            remaining: Some(remaining),
            limit: Some(11),
            ..Limits::default()
        };
        let mut eased = None;
        for n in 0..110_u32 {
            let now = start + Duration::from_secs_f64(f64::from(n) / 110.0);
            let left = (10.5 - 10.0 * now.duration_since(start).as_secs_f64()).floor() as u64;
            core.accepted(
                now,
                Some(now.checked_sub(Duration::from_millis(300)).unwrap()),
                &quota(left),
            );
            if core.rate(now) < 100.0 {
                eased = Some(left);
                break;
            }
        }
        // Eased with some of the quota left, to about the rate it refills at.
        let left = eased.expect("the pace was not eased before the quota ran out");
        assert!(left >= 1, "{left}");
        let learned = core.learned.unwrap();
        assert!((95.0..=105.0).contains(&learned), "{learned}");
        // Behind fast answers what is left lasts: nothing is eased before the quota runs out.
        let (mut fast, start) = held_at(104.0);
        fast.latency = Some(0.005);
        for n in 0..100_u32 {
            let now = start + Duration::from_secs_f64(f64::from(n) / 110.0);
            let left = (10.5 - 10.0 * now.duration_since(start).as_secs_f64()).floor() as u64;
            fast.accepted(now, Some(now), &quota(left.max(1)));
        }
        assert_eq!(fast.learned, None);
        // A window's quota, which falls by every request and refills nothing until its reset,
        // is not eased: pacing at what it refills would crawl; its reset holds every request.
        let (mut window, start) = held_at(104.0);
        window.latency = Some(0.3);
        for n in 0..100_u32 {
            let now = start + Duration::from_secs_f64(f64::from(n) / 110.0);
            let with = Limits {
                remaining: Some(u64::from(100 - n)),
                limit: Some(5000),
                ..Limits::default()
            };
            window.accepted(
                now,
                Some(now.checked_sub(Duration::from_millis(300)).unwrap()),
                &with,
            );
        }
        assert_eq!(window.learned, None);
    }

    #[test]
    fn a_quota_used_up_at_a_pace_the_client_could_not_use_is_not_taken_as_granted() {
        // Held at 100 a second under a reported quota; the answers come at 100 a second (all
        // the requests in flight can carry) while the probe's pace grows far above that.
        let (mut core, start) = held_at(100.0);
        core.quota = true;
        let quota = |remaining| Limits {
            remaining: Some(remaining),
            limit: Some(11),
            ..Limits::default()
        };
        let mut now = start;
        for _ in 0..1200 {
            now += Duration::from_millis(10);
            core.accepted(now, Some(now - Duration::from_millis(300)), &quota(5));
        }
        assert!(core.rate(now) > 150.0, "{}", core.rate(now));
        // The quota runs out: the server grants what it accepted, about 100, not the pace.
        now += Duration::from_millis(10);
        core.accepted(now, Some(now - Duration::from_millis(300)), &quota(0));
        let learned = core.learned.unwrap();
        assert!((98.0..=106.0).contains(&learned), "{learned}");
    }

    #[test]
    fn a_limit_that_moved_is_probed_again_within_seconds_at_low_rates() {
        // Held at 1.5 a second (a low estimate is probed over ten seconds: each refusal is a
        // large share of so few requests)...
        let (mut core, start) = held_at(1.5);
        let none = Limits::default();
        let mut now = start;
        let accept_until = |core: &mut Core, now: &mut Instant, until: Duration| {
            while now.duration_since(start) < until {
                *now += Duration::from_millis(700);
                core.accepted(*now, Some(*now - Duration::from_millis(5)), &none);
            }
        };
        accept_until(&mut core, &mut now, Duration::from_secs(3));
        // ...then refused under the estimate: the limit dropped, or another process takes from
        // it, and what it grants now may rise again soon.
        core.throttled(now, Some(now - Duration::from_millis(5)), &none);
        let learned = core.learned.unwrap();
        assert!(learned <= 1.5, "{learned}");
        accept_until(&mut core, &mut now, Duration::from_secs(12));
        let pace = core.rate(now);
        assert!(
            pace > learned * 1.2,
            "{pace} nine seconds after the cut to {learned}"
        );
    }

    /// The headers of a quota: `left` of `limit`.
    fn quota(left: u64, limit: u64) -> Limits {
        Limits {
            remaining: Some(left),
            limit: Some(limit),
            ..Limits::default()
        }
    }

    #[test]
    fn a_limit_that_falls_far_is_guessed_at_half_the_pace_at_the_second_refusal() {
        let ms = Duration::from_millis;
        let none = Limits::default();
        // Held at 20 a second, every answer accepted for two seconds, then refused under the
        // estimate: that may be an estimate a little too high, and the cut follows the measure.
        let refused_once = || {
            let (mut core, start) = held_at(20.0);
            let mut now = start;
            for _ in 0..40 {
                now += ms(50);
                core.accepted(now, Some(now - ms(5)), &none);
            }
            core.throttled(now, Some(now - ms(5)), &none);
            assert!(!core.guessed);
            (core, now)
        };
        let (mut core, mut now) = refused_once();
        let first = core.learned.unwrap();
        assert!(first > 15.0, "{first}");
        // Refused again at once, nothing accepted since: the limit fell far under the pace, and
        // the estimate is a guess at half of it, probed for within a second.
        now += ms(60);
        core.throttled(now, Some(now - ms(5)), &none);
        let second = core.learned.unwrap();
        assert!(second <= first * DROP_AGAIN, "{second} after {first}");
        assert!(core.guessed);
        assert_eq!(core.probe_period(second), GUESS_PERIOD);

        // A second refusal after answers were accepted since the cut is measured, not guessed.
        let (mut core, mut now) = refused_once();
        for _ in 0..8 {
            now += ms(55);
            core.accepted(now, Some(now - ms(5)), &none);
        }
        core.throttled(now, Some(now - ms(5)), &none);
        let measured = core.learned.unwrap();
        assert!(measured > 15.0, "{measured}");
        assert!(!core.guessed);
    }

    #[test]
    fn a_probe_above_a_guess_is_cut_to_what_the_span_since_the_guess_was_granted() {
        let ms = Duration::from_millis;
        let none = Limits::default();
        // Held at 10 a second, refused twice at once: the limit fell far, the estimate is a
        // guess at half the pace.
        let guessed = |answers: u64, spacing: u64| {
            let (mut core, mut now) = held_at(10.0);
            now += ms(500);
            core.throttled(now, Some(now - ms(5)), &none);
            now += ms(60);
            core.throttled(now, Some(now - ms(5)), &none);
            assert!(core.guessed);
            let guess = core.learned.unwrap();
            // The server grants what it was answered at, then a burst it saved drains: four
            // answers 25 ms apart, and the probe, grown over the guess, is refused.
            for _ in 0..answers {
                now += ms(spacing);
                core.accepted(now, Some(now - ms(5)), &none);
            }
            for _ in 0..4 {
                now += ms(25);
                core.accepted(now, Some(now - ms(5)), &none);
            }
            now += ms(25);
            assert!(core.rate(now - ms(5)) > guess);
            core.throttled(now, Some(now - ms(5)), &none);
            (guess, core.learned.unwrap(), now)
        };
        // 24 answers since the guess's refusal, 3.125 s before this one: 7.7 a second, not the
        // burst's pace just before the refusal.
        let (guess, learned, _) = guessed(20, 150);
        assert!(guess < 5.0, "{guess}");
        assert!((learned - 24.0 / 3.125).abs() < 0.01, "{learned}");
        // Over a longer gap, where a bucket may have filled up and lost what it refilled, the
        // span says nothing: the cut follows the answers' pace just before the refusal.
        let (_, learned, _) = guessed(20, 300);
        assert!(learned > 9.0, "{learned}");

        // A refusal that holds every request (a Retry-After of seconds) starts no span: the
        // bucket fills while nothing goes.
        let (mut core, mut now) = held_at(10.0);
        now += ms(500);
        core.throttled(now, Some(now - ms(5)), &none);
        assert!(core.span.is_some());
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        now += ms(500);
        core.throttled(now, Some(now - ms(5)), &Limits::read(&headers));
        assert_eq!(core.span, None);
    }

    #[test]
    fn a_quota_whose_limit_fell_is_guessed_anew_at_the_first_refusal() {
        let ms = Duration::from_millis;
        // Held at 20 a second under a quota of three, answers accepted for two seconds...
        let held = || {
            let (mut core, start) = held_at(20.0);
            let mut now = start;
            for _ in 0..40 {
                now += ms(50);
                core.accepted(now, Some(now - ms(5)), &quota(1, 3));
            }
            (core, now)
        };
        // ...then the quota is two: its limit fell, by how much no answer says, and the first
        // refusal (even of a pace over the estimate) is a guess at half the pace.
        let (mut core, mut now) = held();
        now += ms(50);
        core.accepted(now, Some(now - ms(5)), &quota(1, 2));
        assert!(core.limit_fell.is_some());
        now += ms(50);
        let refused = core.rate(now - ms(5));
        core.throttled(now, Some(now - ms(5)), &quota(0, 2));
        let learned = core.learned.unwrap();
        assert!(learned <= refused * DROP_AGAIN, "{learned} after {refused}");
        assert!(core.guessed && core.limit_fell.is_none());
        // A limit that rose, one that fell long before the refusal, and one that alternates
        // with the limit before it (two resources' quotas) say nothing of this one.
        for (limits, wait) in [
            (vec![quota(1, 5)], ms(50)),
            (vec![quota(1, 2)], LIMIT_FELL_FOR + ms(50)),
            (vec![quota(1, 2), quota(1, 3), quota(1, 2)], ms(50)),
        ] {
            let (mut core, mut now) = held();
            for limits in &limits {
                now += ms(20);
                core.accepted(now, Some(now - ms(5)), limits);
            }
            let fell = core.limit_fell;
            now += wait;
            let refused = core.rate(now - ms(5));
            core.throttled(now, Some(now - ms(5)), &limits[limits.len() - 1]);
            let learned = core.learned.unwrap();
            assert!(!core.guessed, "{limits:?} {fell:?}");
            assert!(learned > refused * 0.6, "{learned} after {refused}");
        }
        // Nor under a policy, which says the rate.
        let (mut core, mut now) = held();
        let with_policy = |limits: Limits| Limits {
            policy: Some(20.0),
            ..limits
        };
        now += ms(50);
        core.accepted(now, Some(now - ms(5)), &with_policy(quota(1, 2)));
        now += ms(50);
        core.throttled(now, Some(now - ms(5)), &with_policy(quota(0, 2)));
        assert!(!core.guessed);
    }

    #[test]
    fn the_ramp_runs_faster_under_a_quota_unless_another_process_shares_it() {
        let ms = Duration::from_millis;
        let start = Instant::now();
        let plain = Core::new(RateControl::adaptive(), 3.0, start);
        let mut roomy = Core::new(RateControl::adaptive(), 3.0, start);
        roomy.accepted(start + ms(10), Some(start), &quota(2, 3));
        let at = start + ms(600);
        assert_eq!(plain.curve(at), ramp(3.0, 0.6));
        assert_eq!(roomy.curve(at), ramp(3.0, 0.6 * QUOTA_RAMP));
        assert!(roomy.curve(at) > plain.curve(at) * 1.2);
        // Another process joins the pace: both ramp at the ramp's own speed.
        let mut shared = Core::new(RateControl::adaptive(), 3.0, start);
        shared.accepted(start + ms(10), Some(start), &quota(2, 3));
        shared.joins(start + ms(20), 3.0);
        assert!(!shared.quick_ramp);
        assert_eq!(shared.curve(at), ramp(6.0, 0.6));
    }

    #[test]
    fn a_quota_used_up_in_the_ramp_grants_no_more_than_was_accepted() {
        let ms = Duration::from_millis;
        let start = Instant::now();
        let mut core = Core::new(RateControl::adaptive(), 10.0, start);
        // Answers at 25 a second with room, then one that says the quota ran out.
        let mut now = start;
        for _ in 0..25 {
            now += ms(40);
            core.accepted(now, Some(now - ms(5)), &quota(2, 3));
        }
        now += ms(40);
        core.accepted(now, Some(now - ms(5)), &quota(0, 3));
        let learned = core.learned.unwrap();
        assert!(learned <= 25.0 + 1e-6, "{learned}");
        assert!(learned >= 24.0, "{learned}");
    }

    #[test]
    fn a_cut_in_a_hold_is_no_higher_than_the_quota_refills() {
        let ms = Duration::from_millis;
        // Probing above an estimate of 18 a second: 22 answers a second accepted from a bucket
        // that refills at 20, its quota (of 20) falling by 2 a second...
        let (mut core, start) = held_at(18.0);
        let mut now = start;
        for n in 0..60_u32 {
            now = start + Duration::from_secs_f64(f64::from(n) / 22.0);
            let left = (10.5 - 2.0 * f64::from(n) / 22.0).floor() as u64;
            core.accepted(now, Some(now - ms(5)), &quota(left, 20));
        }
        // ...then a refusal: the answers measure 22 a second, the quota's fall 20.
        now += ms(45);
        let refused = core.rate(now - ms(5));
        assert!(refused > 18.0, "{refused}");
        core.throttled(now, Some(now - ms(5)), &quota(0, 20));
        let learned = core.learned.unwrap();
        assert!((19.0..=21.0).contains(&learned), "{learned}");
        // The bound is never under the lowest share of the refused pace; not for a quota that
        // refills less than it falls (a window's), nor under a policy.
        assert_eq!(core.within_refill(30.0, 40.0), 40.0 * DROP_RANGE.0);
        let mut window = Core::new(RateControl::adaptive(), 5.0, start);
        window.phase = Phase::Hold {
            granted: 5.0,
            at: start,
        };
        for n in 0..40_u64 {
            window.quotas.add(start + ms(100 * n), 4000 - 2 * n, 5000);
        }
        assert_eq!(window.within_refill(5.0, 6.0), 5.0);
        core.policy = Some(30.0);
        assert_eq!(core.within_refill(22.0, 23.0), 22.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_idles_resumes_at_the_estimate() {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        accept_for(&controller, 10, 2).await;
        refuse(&controller).await;
        accept_for(&controller, 5, 4).await;
        refuse(&controller).await;
        let learned = controller.stats().learned.unwrap();
        // A minute without a request: the probe's curve would be far above the estimate by
        // now, and a resumed run would go out in a burst at that pace.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let pace = controller.stats().pacing.unwrap();
        assert!(pace <= learned, "{pace} after idling, {learned} learned");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_never_answered_are_not_counted_in_flight() {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        accept_for(&controller, 10, 1).await;
        // Ten requests that got no answer (a connection that failed) or were never sent.
        for n in 0..10 {
            let ticket = controller.acquire(None, None).await.unwrap();
            if n % 2 == 0 {
                controller.observe(ticket, Answer::None);
            } else {
                drop(ticket);
            }
        }
        let ticket = controller.acquire(None, None).await.unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", "10".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "2".parse().unwrap());
        // Nothing else is in flight: two left is plenty.
        controller.observe(ticket, Answer::Accepted(&headers));
        assert_eq!(controller.stats().pacing, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ramp_that_idles_does_not_grow() {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        accept_for(&controller, 4, 1).await;
        refuse(&controller).await;
        let from = controller.stats().pacing.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let pace = controller.stats().pacing.unwrap();
        assert!(pace <= from * 4.0, "{pace} after idling, from {from}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_idled_starts_pacing_from_what_it_was_accepted() {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        // The slow start (64 answers) and then some, then an hour without a request.
        accept_for(&controller, 50, 2).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        refuse(&controller).await;
        assert_eq!(controller.stats().pacing, Some(8.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_smaller_than_the_requests_in_flight_starts_pacing() {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        accept_for(&controller, 10, 1).await;
        let mut in_flight = Vec::new();
        for _ in 0..5 {
            in_flight.push(controller.acquire(None, None).await.unwrap());
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", "10".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "6".parse().unwrap());
        // Four still in flight, six left: nothing to do.
        controller.observe(in_flight.pop().unwrap(), Answer::Accepted(&headers));
        assert_eq!(controller.stats().pacing, None);
        // Three in flight, two left.
        headers.insert("x-ratelimit-remaining", "2".parse().unwrap());
        controller.observe(in_flight.pop().unwrap(), Answer::Accepted(&headers));
        assert!(controller.stats().pacing.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_headers_first_sent_after_the_slow_start_are_seen_within_a_sample() {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        for _ in 0..200 {
            let ticket = controller.acquire(None, None).await.unwrap();
            controller.observe(ticket, Answer::Accepted(&HeaderMap::new()));
        }
        assert!(
            controller.warm.load(Ordering::Relaxed),
            "the slow start is over"
        );
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-policy", "5;w=1".parse().unwrap());
        let mut answers = 0;
        while controller.stats().pacing.is_none() {
            let ticket = controller.acquire(None, None).await.unwrap();
            controller.observe(ticket, Answer::Accepted(&headers));
            answers += 1;
            assert!(answers <= HEADER_SAMPLE, "the policy was not seen");
        }
        assert_eq!(controller.stats().learned, Some(5.0));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_paced_before_the_first_429_and_a_stop_ends_a_wait() {
        let controller = Controller::new(RateControl::adaptive(), None, Duration::MAX);
        let start = Instant::now();
        for _ in 0..100 {
            let ticket = controller.acquire(None, None).await.unwrap();
            controller.observe(ticket, Answer::Accepted(&HeaderMap::new()));
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(controller.stats().pacing, None);
        let ticket = controller.acquire(None, None).await.unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-remaining", "0".parse().unwrap());
        headers.insert("ratelimit-reset", "60".parse().unwrap());
        controller.observe(ticket, Answer::Throttled(&headers));
        assert_eq!(controller.stats().throttled, 1);
        let stop = CancellationToken::new();
        let waiter = {
            let stop = stop.clone();
            async move { controller.acquire(Some(&stop), None).await.is_err() }
        };
        let stopper = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.cancel();
        };
        let (stopped, ()) = tokio::join!(waiter, stopper);
        assert!(
            stopped,
            "the exhausted quota held the request until it was stopped"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    /// The headers a simulated server sends with every answer, as the mock does.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Style {
        /// None at all.
        Plain,
        /// `X-RateLimit-Limit` (the burst), `-Remaining` and `-Reset`, no policy.
        Quota,
        /// The IETF set with `RateLimit-Policy` (the rate).
        Policy,
    }

    /// A server that allows `rate` requests per second (from `after` seconds on, the second rate)
    /// with the mock's default burst for the rate in force.
    struct Bucket {
        rates: [(f64, f64); 2],
        tokens: f64,
        at: Instant,
        start: Instant,
    }

    fn burst_of(rate: f64) -> f64 {
        (1.0 + rate / 10.0).round().max(1.0)
    }

    impl Bucket {
        fn new(rates: [(f64, f64); 2]) -> Self {
            let now = Instant::now();
            Self {
                rates,
                tokens: burst_of(rates[0].1),
                at: now,
                start: now,
            }
        }

        fn rate(&self, now: Instant) -> f64 {
            let t = now.duration_since(self.start).as_secs_f64();
            if t >= self.rates[1].0 {
                self.rates[1].1
            } else {
                self.rates[0].1
            }
        }

        /// Takes a token if there is one; the headers of the answer in `style`.
        fn admit(&mut self, now: Instant, style: Style) -> (bool, HeaderMap) {
            let rate = self.rate(now);
            let burst = burst_of(rate);
            let elapsed = now.duration_since(self.at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(burst);
            self.at = now;
            let admitted = self.tokens >= 1.0;
            if admitted {
                self.tokens -= 1.0;
            }
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: String| {
                headers.insert(name, value.parse().unwrap());
            };
            let reset = ((burst - self.tokens) / rate).ceil();
            match style {
                Style::Plain => {}
                Style::Quota => {
                    put("x-ratelimit-limit", format!("{burst}"));
                    put("x-ratelimit-remaining", format!("{}", self.tokens.floor()));
                    put("x-ratelimit-reset", format!("{reset}"));
                }
                Style::Policy => {
                    put("ratelimit-limit", format!("{burst}"));
                    put("ratelimit-remaining", format!("{}", self.tokens.floor()));
                    put("ratelimit-reset", format!("{reset}"));
                    put("ratelimit-policy", policy_of(rate));
                }
            }
            (admitted, headers)
        }
    }

    /// `RateLimit-Policy` for a rate, as the mock writes it.
    fn policy_of(rate: f64) -> String {
        let window = (1.0 / rate).ceil().max(1.0);
        format!("{};w={window}", (rate * window).round())
    }

    /// One simulated run: `clients` controllers (processes) on one server, each with `workers`
    /// tasks adding `lines` notes between them.
    #[derive(Clone, Copy, Debug)]
    struct Shape {
        /// (from second, rate): the limit, and what it changes to.
        rates: [(f64, f64); 2],
        latency: Duration,
        clients: usize,
        workers: usize,
        lines: usize,
        retry_after: bool,
        style: Style,
        /// A share of requests refused at random with `Retry-After: 0` (fault injection).
        random: f64,
        /// With two clients: the second starts this long after the first, with this many times
        /// its lines (two imports that neither start nor end together).
        apart: Option<(Duration, f64)>,
    }

    impl Shape {
        fn new(rate: f64, latency_ms: u64, workers: usize, lines: usize) -> Self {
            Self {
                rates: [(0.0, rate), (f64::INFINITY, rate)],
                latency: Duration::from_millis(latency_ms),
                clients: 1,
                workers,
                lines,
                retry_after: true,
                style: Style::Plain,
                random: 0.0,
                apart: None,
            }
        }

        /// The lines of client `n` (from 0).
        fn lines_of(&self, n: usize) -> usize {
            match self.apart {
                // A share of a line count: small, positive, exact enough.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some((_, times)) if n > 0 => (self.lines as f64 * times) as usize,
                _ => self.lines,
            }
        }

        /// The lines of all the clients.
        fn total_lines(&self) -> usize {
            (0..self.clients).map(|n| self.lines_of(n)).sum()
        }

        /// What a client that knew the limit would take: the lines beyond the burst at the rate
        /// in force.
        fn ideal(&self) -> f64 {
            let [(_, first), (switch, second)] = self.rates;
            let total = self.total_lines() as f64 - burst_of(first);
            let before = first * switch;
            if total <= before {
                total / first
            } else {
                switch + (total - before) / second
            }
        }
    }

    /// Simulates a shape in tokio's paused time: each request that gets a 429 waits a second
    /// (with `Retry-After`) or nothing (without: the controller paces it) and goes again, as the
    /// client's retries do. Returns (seconds taken, share of requests refused).
    async fn simulate(shape: Shape) -> (f64, f64) {
        use std::sync::Arc;
        let draws = Arc::new(Mutex::new(0x2545_f491_4f6c_dd1d_u64));
        let bucket = Arc::new(Mutex::new(Bucket::new(shape.rates)));
        let refused = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        let mut controllers = Vec::new();
        for client in 0..shape.clients {
            let controller = Arc::new(Controller::new(
                RateControl::adaptive(),
                None,
                Duration::MAX,
            ));
            controllers.push(Arc::clone(&controller));
            let left = Arc::new(AtomicU64::new(shape.lines_of(client) as u64));
            let late = match shape.apart {
                Some((apart, _)) if client > 0 => apart,
                _ => Duration::ZERO,
            };
            for _ in 0..shape.workers {
                let (bucket, controller, left, refused, draws) = (
                    Arc::clone(&bucket),
                    Arc::clone(&controller),
                    Arc::clone(&left),
                    Arc::clone(&refused),
                    Arc::clone(&draws),
                );
                tasks.push(tokio::spawn(async move {
                    if !late.is_zero() {
                        tokio::time::sleep(late).await;
                    }
                    while left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        loop {
                            let ticket = controller.acquire(None, None).await.unwrap();
                            // Half the latency on the way there, half back.
                            tokio::time::sleep(shape.latency / 2).await;
                            let unlucky = {
                                let mut x = draws.lock().unwrap();
                                *x ^= *x << 13;
                                *x ^= *x >> 7;
                                *x ^= *x << 17;
                                (*x % 10_000) as f64 / 10_000.0 < shape.random
                            };
                            let (admitted, mut headers) = if unlucky {
                                (false, HeaderMap::new())
                            } else {
                                bucket.lock().unwrap().admit(Instant::now(), shape.style)
                            };
                            tokio::time::sleep(shape.latency / 2).await;
                            if unlucky {
                                headers.insert("retry-after", http::HeaderValue::from_static("0"));
                            }
                            if admitted {
                                controller.observe(ticket, Answer::Accepted(&headers));
                                break;
                            }
                            refused.fetch_add(1, Ordering::Relaxed);
                            controller.observe(ticket, Answer::Throttled(&headers));
                            let wait = if shape.retry_after {
                                Duration::from_secs(1)
                            } else {
                                Duration::ZERO
                            };
                            tokio::time::sleep(wait).await;
                        }
                    }
                }));
            }
        }
        let sampler = tokio::spawn(async move {
            if std::env::var_os("RATE_TRACE").is_none() {
                return;
            }
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for c in &controllers {
                    println!("  t={:?} {:?}", start.elapsed(), c.stats());
                }
            }
        });
        for task in tasks {
            task.await.unwrap();
        }
        sampler.abort();
        let took = start.elapsed().as_secs_f64();
        let refused = refused.load(Ordering::Relaxed) as f64;
        let sent = shape.total_lines() as f64 + refused;
        (took, refused / sent)
    }

    /// Runs `shapes`, prints each, and returns those that reach less than `min_share` of the
    /// allowed rate or refuse more than `max_refused` of their requests.
    async fn run_shapes(
        shapes: impl IntoIterator<Item = Shape>,
        min_share: f64,
        max_refused: f64,
    ) -> Vec<String> {
        let mut failures = Vec::new();
        let only = std::env::var("RATE_ONLY").ok();
        for shape in shapes {
            let name = format!("{shape:?}");
            if only.as_deref().is_some_and(|o| !name.contains(o)) {
                continue;
            }
            let (took, refused) = simulate(shape).await;
            let share = shape.ideal() / took;
            let line = format!(
                "{name}: {took:.1} s (ideal {:.1}), {share:.2} of the rate, {:.1}% refused",
                shape.ideal(),
                refused * 100.0
            );
            println!("{line}");
            if share < min_share || refused > max_refused {
                failures.push(line);
            }
        }
        failures
    }

    /// Every shape with and without `Retry-After`, and with each header style.
    fn variants(shape: Shape) -> Vec<Shape> {
        let mut all = Vec::new();
        for style in [Style::Plain, Style::Quota, Style::Policy] {
            for retry_after in [true, false] {
                all.push(Shape {
                    style,
                    retry_after,
                    ..shape
                });
            }
        }
        all
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_that_are_not_about_the_rate_do_not_collapse_the_pace() {
        // No rate limit to speak of, but 5% of requests refused at random with `Retry-After: 0`
        // (the mock's fault injection): the server asks for them again at once, which is no sign
        // of going too fast, so the pace is not cut.
        let shape = Shape {
            random: 0.05,
            retry_after: false,
            ..Shape::new(1e6, 5, 8, 4000)
        };
        let (took, refused) = simulate(shape).await;
        let ideal = 4000.0 / (8.0 / 0.005);
        println!(
            "random 5% refusals: {took:.1} s for 4000 lines (ideal {ideal:.1} s), {:.1}% refused",
            refused * 100.0
        );
        assert!(took < 40.0, "the pace collapsed: {took:.1} s");
    }

    /// The grid of BENCHMARKS.md (issues 18 and 30), a minute's worth of lines at each limit:
    /// every shape reaches 0.9 of the allowed rate (0.93 to 0.99) with at most 5 % refused.
    #[tokio::test(start_paused = true)]
    async fn simulated_token_buckets_are_followed_closely() {
        let mut shapes = Vec::new();
        for rate in [2.0_f64, 10.0, 50.0] {
            for latency in [5, 50] {
                for workers in [4, 32] {
                    shapes.extend(variants(Shape::new(
                        rate,
                        latency,
                        workers,
                        (rate
                            * std::env::var("RATE_LINES_SECONDS")
                                .ok()
                                .and_then(|s| s.parse::<f64>().ok())
                                .unwrap_or(60.0)) as usize,
                    )));
                }
            }
        }
        let failures = run_shapes(shapes, 0.9, 0.05).await;
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Slow answers (100/s behind 300 ms) with 32 and 64 in flight; two processes on one limit;
    /// a limit that drops from 20/s to 5/s after 10 s, and one that rises from 5/s to 20/s. At
    /// most 5 % refused everywhere, and 0.9 of the allowed rate everywhere but behind slow
    /// answers without a policy (0.92 to 0.94: the slow start takes five round trips of 300 ms),
    /// at least 0.89 there, and for the limit that drops, without headers (0.87, as the grid's
    /// real runs read: the start finds 20/s from a guess of 3/s in some two seconds, 19 lines
    /// short when the limit drops, each of which then takes a fifth of a second; the 5/s phase
    /// runs at 0.97 of its rate), at least 0.86. A limit that rises is found by probing, some seconds later (0.91 to
    /// 0.92 without headers: a refusal under the estimate, as the first ones at 5 a second are,
    /// shortens the probe's period to three seconds).
    /// (Two real processes do worse than two controllers that start and end together here: see
    /// BENCHMARKS.md, and the test of a process that joins.)
    #[tokio::test(start_paused = true)]
    async fn slow_answers_shared_limits_and_changing_limits_are_followed() {
        let mut shapes = Vec::new();
        for workers in [32, 64] {
            shapes.extend(variants(Shape::new(100.0, 300, workers, 3000)));
        }
        shapes.extend(variants(Shape {
            clients: 2,
            ..Shape::new(20.0, 5, 32, 600)
        }));
        // As many lines as the grid's row: at 400, the 5/s phase's 40 s hide what the start costs.
        shapes.extend(variants(Shape {
            rates: [(0.0, 20.0), (10.0, 5.0)],
            ..Shape::new(20.0, 5, 32, 300)
        }));
        shapes.extend(variants(Shape {
            rates: [(0.0, 5.0), (10.0, 20.0)],
            ..Shape::new(5.0, 5, 32, 600)
        }));
        let (slow, others): (Vec<Shape>, Vec<Shape>) = shapes
            .into_iter()
            .partition(|s| s.latency >= Duration::from_millis(300) && s.style != Style::Policy);
        let (dropping, others): (Vec<Shape>, Vec<Shape>) = others
            .into_iter()
            .partition(|s| s.rates[1].1 < s.rates[0].1 && s.style == Style::Plain);
        let mut failures = run_shapes(others, 0.9, 0.05).await;
        failures.extend(run_shapes(slow, 0.89, 0.05).await);
        failures.extend(run_shapes(dropping, 0.86, 0.05).await);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Two processes on one limit that neither start nor end together: the second joins the
    /// first, already at the limit, two seconds in, with a third of its lines or three times
    /// as many. With `RateLimit-Policy` each takes its share (0.92 to 0.93 of the limit), with
    /// quota headers nearly (0.84 to 0.88 with 0.7 to 1.2 % refused; 0.85 to 0.87 with 1.0 to
    /// 1.5 % before the quota's refill bounded the cuts and the ramp ran faster under a quota,
    /// hence a bound of 0.83 here). Without headers the one that joins measures what the
    /// other leaves it, a request or so a second, indistinguishable from a limit that low; it
    /// probes for more only over ten seconds (at a limit of 2 a second each probe's refusal is
    /// a twentieth of the requests), so when it has the most to do the two use 0.45 of the
    /// limit (0.75 when it has the least, since being refused under its estimate shortens that
    /// to three). The bounds keep what is reached; BENCHMARKS.md has the real runs.
    #[tokio::test(start_paused = true)]
    async fn a_process_that_joins_one_at_the_limit_gets_a_share() {
        let mut shapes = Vec::new();
        for (lines, times) in [(300, 1.0 / 3.0), (100, 3.0)] {
            shapes.extend(variants(Shape {
                clients: 2,
                apart: Some((Duration::from_secs(2), times)),
                ..Shape::new(20.0, 5, 32, lines)
            }));
        }
        let by = |style| shapes.iter().copied().filter(move |s| s.style == style);
        let mut failures = run_shapes(by(Style::Policy), 0.9, 0.03).await;
        failures.extend(run_shapes(by(Style::Quota), 0.83, 0.05).await);
        failures.extend(run_shapes(by(Style::Plain), 0.4, 0.05).await);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// With `RateLimit-Policy` the limit is reached with at most 1 % refused, but by two
    /// processes on one limit: each probes for its share quickly (the quota tells it when the
    /// limit is reached), and together they refuse 1.2 % (at most 2 % here) while using 0.98 of
    /// the limit; probing slowly there refused 0.9 % in simulation but left a fifth of the limit
    /// unused in real runs (BENCHMARKS.md). With quota headers alone (`X-RateLimit-*`) as well
    /// (a limit that drops to a quarter refuses 0.7 %; two processes 0.8 %, at most 2 % here),
    /// but for a limit of one request, whose quota says nothing, not simulated here (the 2/s
    /// rows of BENCHMARKS.md refuse as without headers).
    #[tokio::test(start_paused = true)]
    async fn with_rate_limit_headers_almost_nothing_is_refused() {
        let both = [
            Shape::new(50.0, 50, 32, 3000),
            Shape::new(100.0, 300, 64, 3000),
            Shape {
                clients: 2,
                ..Shape::new(20.0, 5, 32, 600)
            },
            Shape {
                rates: [(0.0, 20.0), (10.0, 5.0)],
                ..Shape::new(20.0, 5, 32, 300)
            },
        ];
        // A limit of one request: its quota says nothing, its policy the rate.
        let policy_only = Shape::new(2.0, 5, 32, 120);
        let mut shapes = Vec::new();
        for (style, only) in [(Style::Policy, Some(policy_only)), (Style::Quota, None)] {
            for shape in only.into_iter().chain(both) {
                for retry_after in [true, false] {
                    shapes.push(Shape {
                        style,
                        retry_after,
                        ..shape
                    });
                }
            }
        }
        let (shared, alone): (Vec<Shape>, Vec<Shape>) =
            shapes.into_iter().partition(|s| s.clients > 1);
        let mut failures = run_shapes(alone, 0.9, 0.01).await;
        failures.extend(run_shapes(shared, 0.9, 0.02).await);
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
