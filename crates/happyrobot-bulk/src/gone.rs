//! The proof that a call the API says does not exist was deleted (in the app), and its notes with
//! it, rather than an API in trouble saying so: one place for an import's undo and a sync's prune.
//!
//! A gateway that answers in JSON, a key that cannot see the calls, or an outage says that of
//! every call; a pool with a bad node, or a backend that fails now and then, says it of calls that
//! exist, in turns or at random. So a call counts gone only when the API, asked again, says it
//! does not exist, and says so again in every round of the proof, each after a random pause and
//! after the API showed this key another call, once or twice (at random). A backend that answers
//! `404` for calls that exist at random, at any rate p, passes it for such a call (the first
//! `404` and eleven reads) with a chance of p^12 * (1 - p)^5 at most, under 0.004 %; one that
//! does so in turns meets the gone call's two reads in a row, or a random count of requests
//! between them; one that answers `404` for every call never passes it.

use std::collections::HashSet;
use std::time::Duration;

use happyrobot::{CancellationToken, Client, Control};

/// How many rounds the proof has.
const PROOF_ROUNDS: u32 = 5;

/// Those of `calls` (which an answer said do not exist) that the proof counts gone; none when
/// the API shows no other call. `witnesses` gives the calls to try as the other call, in order
/// (asked once, when a call is still said not to exist); `at_once`, how many calls are read at a
/// time.
pub(crate) async fn confirmed<W: IntoIterator<Item = String>>(
    client: &Client,
    stop: &CancellationToken,
    at_once: usize,
    calls: &HashSet<String>,
    witnesses: impl Fn() -> W,
) -> HashSet<String> {
    let read = Reader {
        client,
        stop,
        at_once,
    };
    let mut gone = read.still_gone(calls).await;
    let mut witness: Option<String> = None;
    for _ in 0..PROOF_ROUNDS {
        if gone.is_empty() || stop.is_cancelled() {
            return HashSet::new();
        }
        tokio::time::sleep(Duration::from_millis(50 + random() % 201)).await;
        for _ in 0..1 + random() % 2 {
            let shown = match &witness {
                Some(call) => read.shows(call).await == Some(true),
                None => {
                    witness = read.first_shown(witnesses(), calls).await;
                    witness.is_some()
                }
            };
            if !shown {
                return HashSet::new();
            }
        }
        gone = read.still_gone(&gone).await;
        gone = read.still_gone(&gone).await;
    }
    gone
}

/// Reads calls for the proof.
struct Reader<'a> {
    client: &'a Client,
    stop: &'a CancellationToken,
    at_once: usize,
}

impl Reader<'_> {
    /// Those of `calls` that the API, read now, says do not exist.
    async fn still_gone(&self, calls: &HashSet<String>) -> HashSet<String> {
        let mut reads = tokio::task::JoinSet::new();
        let mut gone = HashSet::new();
        let mut take = |read: Result<Option<String>, tokio::task::JoinError>| {
            if let Ok(Some(call)) = read {
                gone.insert(call);
            }
        };
        for call in calls {
            let Ok(id) = call.parse::<happyrobot::CallId>() else {
                continue;
            };
            if reads.len() >= self.at_once.max(1)
                && let Some(read) = reads.join_next().await
            {
                take(read);
            }
            let (client, stop, call) = (self.client.clone(), self.stop.clone(), call.clone());
            reads.spawn(async move {
                let control = Control::new().stop(&stop).deadline(Duration::MAX);
                let read = client.get_call_with(&id, &control).await;
                read.err()
                    .is_some_and(|e| e.is_call_not_found())
                    .then_some(call)
            });
        }
        while let Some(read) = reads.join_next().await {
            take(read);
        }
        gone
    }

    /// The first of `candidates` not in `gone` that the API, read now, shows; `None` when one
    /// answers otherwise than with the call or a `404` saying it does not exist.
    async fn first_shown(
        &self,
        candidates: impl IntoIterator<Item = String>,
        gone: &HashSet<String>,
    ) -> Option<String> {
        for call in candidates.into_iter().filter(|call| !gone.contains(call)) {
            match self.shows(&call).await {
                Some(false) => {}
                Some(true) => return Some(call),
                None => return None,
            }
        }
        None
    }

    /// Whether the API, read now, shows `call`: `None` when it answers otherwise than with the
    /// call or a `404` saying it does not exist.
    async fn shows(&self, call: &str) -> Option<bool> {
        let Ok(id) = call.parse::<happyrobot::CallId>() else {
            return Some(false);
        };
        let control = Control::new().stop(self.stop).deadline(Duration::MAX);
        match self.client.get_call_with(&id, &control).await {
            Ok(_) => Some(true),
            Err(e) if e.is_call_not_found() => Some(false),
            Err(_) => None,
        }
    }
}

/// 64 random bits, different each time (not for secrets).
fn random() -> u64 {
    use std::hash::BuildHasher as _;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}
