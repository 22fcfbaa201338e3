//! Faults the mock can inject, and the plan that decides which request gets which.
//!
//! A test scripts faults for the next requests with [`MockServer::inject`](crate::MockServer::inject)
//! or at a seeded random rate with [`MockServer::inject_rate`](crate::MockServer::inject_rate). The
//! command line writes the same faults as text, parsed by [`Fault::from_str`].

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Something going wrong on purpose, so that a client's error handling and retries can be tested.
///
/// Faults apply to requests for any of the mock's five operations (list calls; get a call; add,
/// update or delete a note) that pass the path, method and key checks: a request to an unknown path, with a
/// wrong method or with a bad key gets its usual error and does not use up a fault, and so does a
/// request refused by the [rate limit](crate::RateLimit). [`Fault::Delay`], [`Fault::InvalidJson`]
/// and [`Fault::SaveThenDrop`] carry the operation out (the note is added, changed or deleted),
/// [`Fault::LateApply`] carries it out later; every other fault replaces the normal handling, so
/// the operation is not carried out.
///
/// As text (the command line's `--fault`, [`Fault::from_str`] and [`Fault`]'s `Display`):
///
/// | text | fault |
/// |---|---|
/// | `429` or `429:retry-after=SECS` | [`Fault::RateLimited`] (1 second when not given) |
/// | `500`, `502`, `503`, any other `4xx`/`5xx` code | [`Fault::Status`] |
/// | `delay:250ms`, `delay:2s`, `delay:250` (milliseconds) | [`Fault::Delay`] |
/// | `invalid-json` | [`Fault::InvalidJson`] |
/// | `close-before-response` (or `close`) | [`Fault::CloseBeforeResponse`] |
/// | `save-then-drop` | [`Fault::SaveThenDrop`] |
/// | `note-not-found` | [`Fault::NoteNotFound`] |
/// | `late-apply:answer=504,after=3s,apply=5s`, `late-apply:answer=drop,after=1s,apply=2s` | [`Fault::LateApply`] (`answer` may be left out: `504`) |
///
/// ```
/// use std::time::Duration;
/// use happyrobot_mock::{Fault, LateAnswer};
///
/// assert_eq!("429:retry-after=2".parse(), Ok(Fault::RateLimited { retry_after_secs: 2 }));
/// assert_eq!("503".parse(), Ok(Fault::Status(503)));
/// assert_eq!("delay:250ms".parse(), Ok(Fault::Delay(Duration::from_millis(250))));
/// assert_eq!(Fault::SaveThenDrop.to_string(), "save-then-drop");
/// assert_eq!(
///     "late-apply:answer=504,after=3s,apply=5s".parse(),
///     Ok(Fault::LateApply {
///         answer_after: Duration::from_secs(3),
///         answer: LateAnswer::Status(504),
///         apply_after: Duration::from_secs(5),
///     })
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// Answer `429 Too Many Requests` with a `Retry-After` header of this many seconds and a JSON
    /// error body. Nothing is changed.
    RateLimited {
        /// The value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Answer with this status (meant for `500`, `502` and `503`) and a JSON error body. Nothing is
    /// changed. A code outside `400..=599` is answered as `500`.
    Status(u16),
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Handle the request normally (so the note is added, changed or deleted), then answer `200`
    /// with `content-type: application/json` and a body cut short, which is not valid JSON. A `200`
    /// means the server acted, so a truthful client reports the change as made.
    InvalidJson,
    /// Read the request, then close the connection without any response. Nothing is changed.
    CloseBeforeResponse,
    /// Handle the request normally (so the note is added, changed or deleted), then close the
    /// connection without sending the response: the case in which a client's retry of an add adds
    /// the same note twice, and a retried delete finds the note already gone.
    SaveThenDrop,
    /// Answer `404` with the API's body for a note the call does not have (`"error": "Note Not
    /// Found"`), whatever the request: a server that contradicts itself, saying a note it holds
    /// is gone. Nothing is changed.
    NoteNotFound,
    /// A gateway in front of the API gives up while the backend goes on: `answer_after` after the
    /// request arrived, the client gets `answer` (a gateway's `504` page, or a closed connection),
    /// and `apply_after` after the request arrived the backend carries the request out all the same
    /// (the note is added, changed or deleted), in the background, whether or not the answer has
    /// gone and whether or not the client is still there.
    ///
    /// Both times are measured from the request's arrival (when the mock had read its head), not
    /// from each other, so `apply_after` may be shorter than `answer_after` (the change is made
    /// while the gateway still waits) or longer (it is made after the client was told it failed,
    /// the case that fools a client into sending the same note again). The
    /// [latency](crate::MockServerBuilder::latency) is not added to either: the gateway keeps its
    /// own time. The late operation is checked and carried out as any request would be at that
    /// moment: a body that is not a valid note, or a note that is gone by then, changes nothing,
    /// and with [`refuse_repeated_note_ids`](crate::MockServerBuilder::refuse_repeated_note_ids) a
    /// note whose id is on the call by then is not added again. A server that is shut down first
    /// applies nothing.
    LateApply {
        /// How long after the request arrived the client gets `answer`.
        answer_after: Duration,
        /// What the client gets.
        answer: LateAnswer,
        /// How long after the request arrived the request is carried out.
        apply_after: Duration,
    },
}

/// What the client of a [`Fault::LateApply`] gets from the gateway that gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LateAnswer {
    /// This status (meant for `504`, also `502` or `503`) with the gateway's own HTML page as the
    /// body, `content-type: text/html`, as nginx sends it: not the API's JSON, since the API never
    /// answered. A code outside `400..=599` is answered as `504`.
    Status(u16),
    /// The connection closed without any response.
    Drop,
}

impl fmt::Display for LateAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "{code}"),
            Self::Drop => f.write_str("drop"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimited { retry_after_secs } => {
                write!(f, "429:retry-after={retry_after_secs}")
            }
            Self::Status(code) => write!(f, "{code}"),
            Self::Delay(duration) => write!(f, "delay:{}ms", duration.as_millis()),
            Self::InvalidJson => f.write_str("invalid-json"),
            Self::CloseBeforeResponse => f.write_str("close-before-response"),
            Self::SaveThenDrop => f.write_str("save-then-drop"),
            Self::NoteNotFound => f.write_str("note-not-found"),
            Self::LateApply {
                answer_after,
                answer,
                apply_after,
            } => write!(
                f,
                "late-apply:answer={answer},after={},apply={}",
                DurationText(*answer_after),
                DurationText(*apply_after)
            ),
        }
    }
}

/// Why a text is not a [`Fault`]; the message lists the accepted forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFaultError {
    text: String,
}

impl fmt::Display for ParseFaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a fault: use 429[:retry-after=SECS], 500, 502, 503 (any 4xx/5xx code), \
             delay:DURATION (250ms, 2s), invalid-json, close-before-response, save-then-drop \
             or late-apply:answer=504|drop,after=DURATION,apply=DURATION",
            self.text
        )
    }
}

impl std::error::Error for ParseFaultError {}

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseFaultError {
            text: text.to_string(),
        };
        let trimmed = text.trim();
        let (head, option) = match trimmed.split_once(':') {
            Some((head, option)) => (head, Some(option)),
            None => (trimmed, None),
        };
        match (head.to_ascii_lowercase().as_str(), option) {
            ("invalid-json", None) => Ok(Self::InvalidJson),
            ("close" | "close-before-response", None) => Ok(Self::CloseBeforeResponse),
            ("save-then-drop", None) => Ok(Self::SaveThenDrop),
            ("note-not-found", None) => Ok(Self::NoteNotFound),
            ("late-apply", Some(options)) => parse_late_apply(options).ok_or_else(error),
            ("delay", Some(duration)) => {
                parse_duration(duration).map(Self::Delay).ok_or_else(error)
            }
            ("429", None) => Ok(Self::RateLimited {
                retry_after_secs: 1,
            }),
            ("429", Some(option)) => {
                let (name, value) = option.split_once('=').ok_or_else(error)?;
                if !name.trim().eq_ignore_ascii_case("retry-after") {
                    return Err(error());
                }
                let retry_after_secs = value.trim().parse().map_err(|_| error())?;
                Ok(Self::RateLimited { retry_after_secs })
            }
            (code, None) => match code.parse::<u16>() {
                Ok(code @ 400..=599) => Ok(Self::Status(code)),
                _ => Err(error()),
            },
            _ => Err(error()),
        }
    }
}

/// Reads the options of `late-apply:answer=504,after=3s,apply=5s`: in any order, `after` and
/// `apply` required, `answer` (`504` when left out) a `4xx`/`5xx` code or `drop`, none twice.
fn parse_late_apply(options: &str) -> Option<Fault> {
    let (mut answer, mut answer_after, mut apply_after) = (None, None, None);
    for option in options.split(',') {
        let (name, value) = option.split_once('=')?;
        let value = value.trim();
        let slot_was_empty = match name.trim().to_ascii_lowercase().as_str() {
            "answer" => answer.replace(parse_late_answer(value)?).is_none(),
            "after" => answer_after.replace(parse_duration(value)?).is_none(),
            "apply" => apply_after.replace(parse_duration(value)?).is_none(),
            _ => return None,
        };
        if !slot_was_empty {
            return None;
        }
    }
    Some(Fault::LateApply {
        answer_after: answer_after?,
        answer: answer.unwrap_or(LateAnswer::Status(504)),
        apply_after: apply_after?,
    })
}

fn parse_late_answer(text: &str) -> Option<LateAnswer> {
    if text.eq_ignore_ascii_case("drop") {
        return Some(LateAnswer::Drop);
    }
    match text.parse::<u16>() {
        Ok(code @ 400..=599) => Some(LateAnswer::Status(code)),
        _ => None,
    }
}

/// A duration as text that [`parse_duration`] reads back exactly: `3s`, `250ms`, or nanoseconds
/// (`1500ns`) when it is not a whole number of milliseconds.
struct DurationText(Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.0;
        if duration.subsec_nanos() == 0 {
            write!(f, "{}s", duration.as_secs())
        } else if duration.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", duration.as_millis())
        } else {
            write!(f, "{}ns", duration.as_nanos())
        }
    }
}

/// Reads `250ms`, `2s`, `1500us`, `800ns` or a bare number of milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Some(millis) = text.strip_suffix("ms") {
        return millis.trim().parse().ok().map(Duration::from_millis);
    }
    if let Some(micros) = text.strip_suffix("us") {
        return micros.trim().parse().ok().map(Duration::from_micros);
    }
    if let Some(nanos) = text.strip_suffix("ns") {
        let nanos: u128 = nanos.trim().parse().ok()?;
        // Duration::from_nanos takes a u64; longer spans are built from seconds and the rest.
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        let rest = u32::try_from(nanos % 1_000_000_000).ok()?;
        return Some(Duration::new(secs, rest));
    }
    if let Some(secs) = text.strip_suffix('s') {
        let secs: f64 = secs.trim().parse().ok()?;
        return Duration::try_from_secs_f64(secs).ok();
    }
    text.parse().ok().map(Duration::from_millis)
}

/// SplitMix64: a tiny, well-mixed PRNG, so that a rate fault with a given seed hits the same
/// requests on every run without pulling in a random-number crate.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)` with 53 random bits, the precision of an `f64`.
    fn next_f64(&mut self) -> f64 {
        // The shift keeps 53 bits, which an f64 holds exactly, so the cast loses nothing.
        #[allow(clippy::cast_precision_loss)]
        let value = (self.next_u64() >> 11) as f64;
        value / (1u64 << 53) as f64
    }
}

#[derive(Clone, Debug)]
struct RateRule {
    fault: Fault,
    probability: f64,
    rng: SplitMix64,
}

/// Which fault, if any, the next request gets: scripted faults first, in order, then rate rules.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    scripted: VecDeque<Fault>,
    rates: Vec<RateRule>,
}

impl FaultPlan {
    pub(crate) fn inject(&mut self, fault: Fault, count: usize) {
        self.scripted.extend(std::iter::repeat_n(fault, count));
    }

    pub(crate) fn inject_rate(&mut self, fault: Fault, probability: f64, seed: u64) {
        // NaN would make every comparison false; treating it as 0 keeps the rule harmless.
        let probability = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        self.rates.push(RateRule {
            fault,
            probability,
            rng: SplitMix64(seed),
        });
    }

    pub(crate) fn clear(&mut self) {
        self.scripted.clear();
        self.rates.clear();
    }

    pub(crate) fn remaining_scripted(&self) -> usize {
        self.scripted.len()
    }

    /// Draws the fault for one request. Every rate rule draws a number for every request that gets
    /// no scripted fault, even after an earlier rule hit, so each rule's sequence depends only on its
    /// seed and on how many requests came.
    pub(crate) fn next(&mut self) -> Option<Fault> {
        if let Some(fault) = self.scripted.pop_front() {
            return Some(fault);
        }
        let mut chosen = None;
        for rule in &mut self.rates {
            let hit = rule.rng.next_f64() < rule.probability;
            if hit && chosen.is_none() {
                chosen = Some(rule.fault.clone());
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for fault in [
            Fault::RateLimited {
                retry_after_secs: 7,
            },
            Fault::Status(502),
            Fault::Delay(Duration::from_millis(1500)),
            Fault::InvalidJson,
            Fault::CloseBeforeResponse,
            Fault::SaveThenDrop,
            Fault::LateApply {
                answer_after: Duration::from_secs(3),
                answer: LateAnswer::Status(504),
                apply_after: Duration::from_secs(5),
            },
            Fault::LateApply {
                answer_after: Duration::from_millis(1250),
                answer: LateAnswer::Drop,
                apply_after: Duration::new(2, 1),
            },
            Fault::LateApply {
                answer_after: Duration::ZERO,
                answer: LateAnswer::Status(502),
                apply_after: Duration::MAX,
            },
        ] {
            assert_eq!(fault.to_string().parse(), Ok(fault.clone()), "{fault}");
        }
        assert_eq!(
            Fault::LateApply {
                answer_after: Duration::from_secs(3),
                answer: LateAnswer::Status(504),
                apply_after: Duration::from_secs(5),
            }
            .to_string(),
            "late-apply:answer=504,after=3s,apply=5s"
        );
        assert_eq!(
            "late-apply:answer=drop,after=1s,apply=2s".parse(),
            Ok(Fault::LateApply {
                answer_after: Duration::from_secs(1),
                answer: LateAnswer::Drop,
                apply_after: Duration::from_secs(2),
            })
        );
        // Any order, spaces and case; `answer` defaults to 504.
        assert_eq!(
            "Late-Apply: apply = 250ms , AFTER=0.5s".parse(),
            Ok(Fault::LateApply {
                answer_after: Duration::from_millis(500),
                answer: LateAnswer::Status(504),
                apply_after: Duration::from_millis(250),
            })
        );
        assert_eq!(
            "429".parse(),
            Ok(Fault::RateLimited {
                retry_after_secs: 1
            })
        );
        assert_eq!("close".parse(), Ok(Fault::CloseBeforeResponse));
        assert_eq!("delay:2s".parse(), Ok(Fault::Delay(Duration::from_secs(2))));
        assert_eq!(
            "delay:40".parse(),
            Ok(Fault::Delay(Duration::from_millis(40)))
        );
        for bad in [
            "200",
            "600",
            "teapot",
            "429:wait=3",
            "delay",
            "delay:soon",
            "invalid-json:1",
            "late-apply",
            "late-apply:",
            "late-apply:after=1s",
            "late-apply:apply=1s",
            "late-apply:answer=200,after=1s,apply=2s",
            "late-apply:answer=gone,after=1s,apply=2s",
            "late-apply:after=1s,apply=2s,after=3s",
            "late-apply:after=1s,apply=2s,wait=3s",
            "late-apply:after=1s,apply=soon",
            "late-apply:after=1s;apply=2s",
        ] {
            let err = bad.parse::<Fault>().unwrap_err();
            assert!(err.to_string().contains("save-then-drop"), "{err}");
            assert!(err.to_string().contains("late-apply"), "{err}");
        }
    }

    #[test]
    fn scripted_faults_come_first_and_in_order() {
        let mut plan = FaultPlan::default();
        plan.inject(Fault::Status(500), 2);
        plan.inject(Fault::InvalidJson, 1);
        plan.inject_rate(Fault::Status(503), 1.0, 1);
        assert_eq!(plan.remaining_scripted(), 3);
        assert_eq!(plan.next(), Some(Fault::Status(500)));
        assert_eq!(plan.next(), Some(Fault::Status(500)));
        assert_eq!(plan.next(), Some(Fault::InvalidJson));
        assert_eq!(plan.next(), Some(Fault::Status(503)));
        plan.clear();
        assert_eq!(plan.next(), None);
    }

    #[test]
    fn rates_follow_the_seed_and_the_probability() {
        let draw = |seed| {
            let mut plan = FaultPlan::default();
            plan.inject_rate(Fault::Status(500), 0.3, seed);
            (0..1000).map(|_| plan.next().is_some()).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
        let hits = draw(42).iter().filter(|hit| **hit).count();
        assert!(
            (230..370).contains(&hits),
            "{hits} hits out of 1000 at p=0.3"
        );
    }
}
