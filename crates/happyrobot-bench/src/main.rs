//! `happyrobot-bench`: the client side of the benchmarks that `cargo xtask bench` runs against the mock
//! server. It sends notes with the SDK and with the raw alternatives a user could write instead, and
//! prints one JSON object of results on stdout.
//!
//! - `throughput`: requests per second of `Client::add_note` and of a plain `reqwest::Client` decoding
//!   into `serde_json::Value`, interleaved (A B B A ...) so that machine noise hits both alike;
//! - `loop`: N requests of one kind, sequentially, on a single thread: run under
//!   `valgrind --tool=callgrind` to count the client's instructions per request;
//! - `rate`: N adds from N tasks on one `Client` (at most C in flight), against a rate-limited
//!   server: how long they took, how many requests the client sent and how many were refused.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use happyrobot::types::Call;
use happyrobot::{CallId, Client, NewNote, RetryPolicy};

const USAGE: &str = "usage:
  happyrobot-bench throughput <BASE_URL> <API_KEY> <CALL_IDS_FILE> <REQUESTS> <CONCURRENCY> <ROUNDS>
  happyrobot-bench loop <sdk|typed|typed-timeout|value|bytes> <BASE_URL> <API_KEY> <CALL_IDS_FILE> <REQUESTS>
  happyrobot-bench rate <BASE_URL> <API_KEY> <CALL_IDS_FILE> <ADDS> <CONCURRENCY>";

/// The note every benchmark request sends.
const CONTENT: &str = "Benchmark note: driver confirmed pickup at dock 4.";

#[derive(serde::Serialize)]
struct NoteBody<'a> {
    content: &'a str,
    flagged: bool,
}

/// Where to send, and to which calls (round-robin, so that no call grows large).
struct Target {
    base_url: String,
    api_key: String,
    call_ids: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `happyrobot::Client::add_note`.
    Sdk,
    /// reqwest, decoding the body into the same generated `Call` type.
    Typed,
    /// As `Typed`, with the SDK's default timeouts (connect 10 s, whole request 60 s) set on the
    /// reqwest client: separates what the timeout timer costs from the rest of the SDK.
    TypedTimeout,
    /// reqwest, decoding into `serde_json::Value`.
    Value,
    /// reqwest, reading the body's bytes without decoding.
    Bytes,
}

struct Runner {
    target: Arc<Target>,
    sdk: Client,
    raw: reqwest::Client,
    raw_with_timeouts: reqwest::Client,
    note: NewNote,
}

impl Runner {
    fn new(target: Target) -> Result<Self, String> {
        let sdk = Client::builder()
            .api_key(&target.api_key)
            .base_url(&target.base_url)
            .retry(RetryPolicy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            target: Arc::new(target),
            sdk,
            raw: reqwest::Client::new(),
            raw_with_timeouts: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
            note: NewNote::new(CONTENT).flagged(false),
        })
    }

    /// One request of `kind` to the `n`th call (round-robin).
    async fn one(&self, kind: Kind, n: usize) -> Result<usize, String> {
        let ids = &self.target.call_ids;
        let id = &ids[n % ids.len()];
        if kind == Kind::Sdk {
            let call_id: CallId = id.parse().map_err(|e: happyrobot::Error| e.to_string())?;
            let call = self
                .sdk
                .add_note(&call_id, self.note.clone())
                .await
                .map_err(|e| e.to_string())?;
            return Ok(call.notes.as_ref().map_or(0, Vec::len));
        }
        let raw = if kind == Kind::TypedTimeout {
            &self.raw_with_timeouts
        } else {
            &self.raw
        };
        let response = raw
            .post(format!("{}/calls/{id}/notes", self.target.base_url))
            .header("authorization", format!("Bearer {}", self.target.api_key))
            // Serialized per request, as the SDK does and as a user's own client would.
            .json(&NoteBody {
                content: CONTENT,
                flagged: false,
            })
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        match kind {
            Kind::Typed | Kind::TypedTimeout => {
                let call: Call = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                Ok(call.notes.map_or(0, |n| n.len()))
            }
            Kind::Value => {
                let call: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                Ok(call["notes"].as_array().map_or(0, Vec::len))
            }
            _ => Ok(bytes.len()),
        }
    }

    /// `count` requests of `kind`, spread over `concurrency` tasks; returns the wall time.
    async fn batch(
        self: &Arc<Self>,
        kind: Kind,
        start: usize,
        count: usize,
        concurrency: usize,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        if concurrency <= 1 {
            for n in start..start + count {
                self.one(kind, n).await?;
            }
            return Ok(started.elapsed());
        }
        let mut tasks = Vec::with_capacity(concurrency);
        for worker in 0..concurrency {
            let runner = Arc::clone(self);
            tasks.push(tokio::spawn(async move {
                let mut n = start + worker;
                while n < start + count {
                    runner.one(kind, n).await?;
                    n += concurrency;
                }
                Ok::<(), String>(())
            }));
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok(started.elapsed())
    }
}

fn read_target(base_url: &str, api_key: &str, ids_file: &str) -> Result<Target, String> {
    let text = std::fs::read_to_string(ids_file).map_err(|e| format!("{ids_file}: {e}"))?;
    let call_ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if call_ids.is_empty() {
        return Err(format!("{ids_file} lists no call ids"));
    }
    Ok(Target {
        base_url: base_url.to_string(),
        api_key: api_key.to_string(),
        call_ids,
    })
}

fn number(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number\n{USAGE}"))
}

async fn throughput(
    target: Target,
    requests: usize,
    concurrency: usize,
    rounds: usize,
) -> Result<(), String> {
    let runner = Arc::new(Runner::new(target)?);
    let per_round = (requests / rounds.max(1)).max(1);
    // Warm both paths up (connections, allocator) before measuring.
    runner.batch(Kind::Sdk, 0, 200, concurrency).await?;
    runner.batch(Kind::Value, 200, 200, concurrency).await?;
    let (mut sdk, mut raw) = (Duration::ZERO, Duration::ZERO);
    let mut offset = 400;
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // A B, then B A: neither side always runs first.
        let order = if round % 2 == 0 {
            [Kind::Sdk, Kind::Value]
        } else {
            [Kind::Value, Kind::Sdk]
        };
        let mut times = [Duration::ZERO; 2];
        for kind in order {
            let took = runner.batch(kind, offset, per_round, concurrency).await?;
            offset += per_round;
            times[usize::from(kind == Kind::Value)] = took;
        }
        sdk += times[0];
        raw += times[1];
        ratios.push(times[1].as_secs_f64() / times[0].as_secs_f64());
    }
    let total = (per_round * rounds) as f64;
    let sdk_rps = total / sdk.as_secs_f64();
    let raw_rps = total / raw.as_secs_f64();
    let result = serde_json::json!({
        "concurrency": concurrency,
        "requests_each": per_round * rounds,
        "rounds": rounds,
        "sdk_rps": sdk_rps,
        "raw_value_rps": raw_rps,
        "ratio": sdk_rps / raw_rps,
        "round_ratios": ratios,
    });
    println!("{result}");
    Ok(())
}

/// `adds` notes from as many tasks on one default `Client` (rate control on, as users get it), at
/// most `concurrency` in flight: the library row of the rate-limit grid. With
/// `HAPPYROBOT_STATE_DIR` set, the client shares its pace there with other processes
/// (`ClientBuilder::share_rate_limit`), as the `happyrobot` command does.
async fn rate(target: Target, adds: usize, concurrency: usize) -> Result<(), String> {
    let mut builder = Client::builder()
        .api_key(target.api_key.as_str())
        .base_url(&target.base_url);
    if let Some(dir) = std::env::var_os("HAPPYROBOT_STATE_DIR") {
        builder = builder.share_rate_limit(dir);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let ids = Arc::new(target.call_ids);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..adds {
        let (client, slots, ids) = (client.clone(), slots.clone(), ids.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.ok()?;
            let id = CallId::new(&ids[n % ids.len()]).ok()?;
            client.add_note(&id, NewNote::new(CONTENT)).await.err()
        });
    }
    let mut failed = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Some(error) = done.map_err(|e| e.to_string())? {
            failed.push(error.to_string());
        }
    }
    let stats = client.rate_stats();
    let result = serde_json::json!({
        "adds": adds,
        "concurrency": concurrency,
        "seconds": started.elapsed().as_secs_f64(),
        "sent": stats.sent,
        "refused": stats.throttled,
        "failed": failed.len(),
        "first_failure": failed.first(),
    });
    println!("{result}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["throughput", base, key, ids, requests, concurrency, rounds] => (|| {
            let target = read_target(base, key, ids)?;
            let (requests, concurrency, rounds) =
                (number(requests)?, number(concurrency)?, number(rounds)?);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(throughput(target, requests, concurrency, rounds))
        })(),
        ["loop", kind, base, key, ids, requests] => (|| {
            let kind = match *kind {
                "sdk" => Kind::Sdk,
                "typed" => Kind::Typed,
                "typed-timeout" => Kind::TypedTimeout,
                "value" => Kind::Value,
                "bytes" => Kind::Bytes,
                other => return Err(format!("unknown kind {other:?}\n{USAGE}")),
            };
            let target = read_target(base, key, ids)?;
            let requests = number(requests)?;
            // One thread: under callgrind, the count is then the client's work and nothing else's.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let runner = Arc::new(Runner::new(target)?);
                runner.batch(kind, 0, requests, 1).await.map(drop)
            })
        })(),
        ["rate", base, key, ids, adds, concurrency] => (|| {
            let target = read_target(base, key, ids)?;
            let (adds, concurrency) = (number(adds)?, number(concurrency)?);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(rate(target, adds, concurrency))
        })(),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
