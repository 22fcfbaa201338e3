//! The rate limit and the latency seen from a real HTTP client: how many requests the token bucket
//! lets through over time, its `429`s and headers, and answers that take as long as they are told.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test helper is a test failure with a location, which is what we want"
)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use happyrobot_mock::{FIRST_CALL_ID, Fault, MockServer, RateLimit, RateLimitHeaders};
use serde_json::{Value, json};
use tokio::time::Instant;

use common::client;

fn notes_url(server: &MockServer) -> String {
    format!("{}/calls/{FIRST_CALL_ID}/notes", server.base_url())
}

async fn post(client: &reqwest::Client, server: &MockServer) -> reqwest::Response {
    client
        .post(notes_url(server))
        .bearer_auth(server.api_key())
        .json(&json!({ "content": "paced" }))
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

fn number(response: &reqwest::Response, name: &str) -> u64 {
    header(response, name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .parse()
        .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Checks a `429` of the bucket: a JSON error body that names the rate.
async fn assert_throttled(response: reqwest::Response, rate: &str) {
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Too Many Requests");
    assert_eq!(
        body["message"],
        format!("rate limit exceeded: {rate} requests per second")
    );
}

/// 40 requests from 8 concurrent tasks, one every 50 ms in all (20 a second, twice the rate), over
/// about 2 s: the bucket of 10 a second with room for 2 lets about `2 + 10 * elapsed` through, and
/// answers every other one `429` with a `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_lets_its_burst_and_its_rate_through() {
    const TASKS: u32 = 8;
    const PER_TASK: u32 = 5;
    const GAP: Duration = Duration::from_millis(50);
    let server = MockServer::builder()
        .rate_limit(RateLimit::per_second(10.0).burst(2))
        .start()
        .await
        .unwrap();
    let client = client();
    // A first connection per task before the clock starts, so that connecting costs no token.
    let url = format!("{}/elsewhere", server.base_url());
    let warm: Vec<_> = (0..TASKS)
        .map(|_| client.get(&url).bearer_auth(server.api_key()).send())
        .collect();
    for response in futures_join(warm).await {
        assert_eq!(response.unwrap().status(), 404);
    }

    let start = Instant::now() + Duration::from_millis(100);
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (client, server) = (client.clone(), std::sync::Arc::clone(&server));
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for round in 0..PER_TASK {
                tokio::time::sleep_until(start + GAP * (round * TASKS + task)).await;
                let sent = Instant::now();
                let response = post(&client, &server).await;
                let done = Instant::now();
                let status = response.status().as_u16();
                let retry_after = header(&response, "retry-after").map(str::to_string);
                if status == 429 {
                    assert_throttled(response, "10").await;
                } else {
                    assert_eq!(status, 200);
                }
                results.push((sent, done, status, retry_after));
            }
            results
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.unwrap());
    }
    assert_eq!(results.len(), 40);
    let first_sent = results.iter().map(|r| r.0).min().unwrap();
    let last_sent = results.iter().map(|r| r.0).max().unwrap();
    let last_done = results.iter().map(|r| r.1).max().unwrap();
    let passed = results.iter().filter(|r| r.2 == 200).count();
    let refused = results.iter().filter(|r| r.2 == 429).count();
    assert_eq!(passed + refused, 40);
    for (_, _, status, retry_after) in &results {
        if *status == 429 {
            // Never more than 0.1 s to the next token at 10 a second: rounded up, 1 s.
            assert_eq!(retry_after.as_deref(), Some("1"));
        } else {
            assert_eq!(retry_after, &None);
        }
    }

    // Over the time between the first and the last request the bucket can hand out at most its
    // burst and what it refilled; the requests come faster than that, so the bucket is never
    // full for long and almost none of its tokens go unused.
    let span = (last_sent - first_sent).as_secs_f64();
    let expected = 2.0 + 10.0 * span;
    let most = 2.0 + 10.0 * (last_done - first_sent).as_secs_f64();
    eprintln!(
        "rate limit 10/s burst 2: {passed} of 40 passed, {refused} refused, over {span:.3} s \
         (expected about {expected:.1}, at most {most:.1})"
    );
    let passed = passed as f64;
    assert!(passed <= most + 1e-9, "{passed} passed, at most {most:.2}");
    assert!(
        passed >= expected - 3.0,
        "{passed} passed, expected about {expected:.2}"
    );
    assert_eq!(server.rate_limited_count(), refused);
    assert_eq!(server.created_note_count(), results.len() - refused);
    let logged_429 = server
        .requests()
        .iter()
        .filter(|r| r.status == Some(429))
        .inspect(|r| assert_eq!(r.fault, None))
        .count();
    assert_eq!(logged_429, refused);
}

/// Joins futures without a futures crate: each is spawned on the runtime.
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

/// Requests rejected before the bucket (unknown path, bad key) take no token and carry no headers;
/// a request the bucket refuses draws no fault, so the fault waits for the next one let through.
#[tokio::test]
async fn only_requests_that_pass_the_checks_take_tokens_and_refused_ones_draw_no_fault() {
    let server = MockServer::builder()
        .rate_limit(
            RateLimit::per_second(0.2)
                .burst(1)
                .headers(RateLimitHeaders::Ietf),
        )
        .start()
        .await
        .unwrap();
    let client = client();
    server.inject(Fault::Status(503), 2);
    let first = post(&client, &server).await;
    assert_eq!(first.status(), 503);
    assert_eq!(number(&first, "ratelimit-remaining"), 0);
    assert_eq!(server.pending_faults(), 1);

    let refused = post(&client, &server).await;
    assert_eq!(number(&refused, "ratelimit-remaining"), 0);
    assert_throttled(refused, "0.2").await;
    assert_eq!(server.pending_faults(), 1, "a refused request drew a fault");

    let wrong_key = client
        .post(notes_url(&server))
        .bearer_auth("not-the-key")
        .json(&json!({ "content": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
    assert!(header(&wrong_key, "ratelimit-remaining").is_none());
    let elsewhere = client
        .get(format!("{}/calls/", server.base_url()))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    assert!(header(&elsewhere, "ratelimit-limit").is_none());
    assert_eq!(server.rate_limited_count(), 1);
    assert_eq!(server.created_note_count(), 0);
    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(429), Some(401), Some(404)]);
    assert_eq!(server.requests()[1].fault, None);
}

/// `ietf` headers: the limit is the burst, the remaining count goes down with every answer
/// (errors too), and the reset is the seconds until the bucket is full again.
#[tokio::test]
async fn ietf_headers_count_down_and_say_when_the_bucket_is_full() {
    // 0.2 a second: slow enough that a loaded machine refills no whole token during the test.
    let server = MockServer::builder()
        .rate_limit(
            RateLimit::per_second(0.2)
                .burst(3)
                .headers(RateLimitHeaders::Ietf),
        )
        .start()
        .await
        .unwrap();
    let client = client();
    let ok = post(&client, &server).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(number(&ok, "ratelimit-limit"), 3);
    assert_eq!(number(&ok, "ratelimit-remaining"), 2);
    // One token short of full at 0.2 a second: 5 s, less what refilled since.
    assert_eq!(number(&ok, "ratelimit-reset"), 5);
    assert!(header(&ok, "x-ratelimit-limit").is_none());

    // An error answer takes a token and says so too.
    let unknown_call = client
        .get(format!(
            "{}/calls/000000000000000000000000",
            server.base_url()
        ))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_call.status(), 404);
    assert_eq!(number(&unknown_call, "ratelimit-remaining"), 1);
    assert!((9..=10).contains(&number(&unknown_call, "ratelimit-reset")));

    let last = post(&client, &server).await;
    assert_eq!(last.status(), 200);
    assert_eq!(number(&last, "ratelimit-remaining"), 0);
    let full_in = number(&last, "ratelimit-reset");
    assert!((14..=15).contains(&full_in), "{full_in}");

    let refused = post(&client, &server).await;
    assert_eq!(number(&refused, "ratelimit-limit"), 3);
    assert_eq!(number(&refused, "ratelimit-remaining"), 0);
    assert!((14..=15).contains(&number(&refused, "ratelimit-reset")));
    // A token in a little under 5 s: rounded up.
    assert_eq!(number(&refused, "retry-after"), 5);
    assert_throttled(refused, "0.2").await;
}

/// `x` headers: the same counts, with the reset as the Unix time at which the bucket is full.
#[tokio::test]
async fn x_headers_give_the_reset_as_a_unix_time() {
    let server = MockServer::builder()
        .rate_limit(
            RateLimit::per_second(0.2)
                .burst(2)
                .headers(RateLimitHeaders::X),
        )
        .start()
        .await
        .unwrap();
    let client = client();
    let before = unix_now();
    let ok = post(&client, &server).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(number(&ok, "x-ratelimit-limit"), 2);
    assert_eq!(number(&ok, "x-ratelimit-remaining"), 1);
    let reset = number(&ok, "x-ratelimit-reset");
    assert!(
        (before + 4..=unix_now() + 6).contains(&reset),
        "{reset} against {before}"
    );
    assert!(header(&ok, "ratelimit-reset").is_none());

    post(&client, &server).await;
    let refused = post(&client, &server).await;
    assert_eq!(number(&refused, "x-ratelimit-remaining"), 0);
    let reset = number(&refused, "x-ratelimit-reset");
    assert!(
        (before + 9..=unix_now() + 11).contains(&reset),
        "{reset} against {before}"
    );
    assert_eq!(number(&refused, "retry-after"), 5);
    assert_throttled(refused, "0.2").await;
}

#[tokio::test]
async fn retry_after_can_be_left_out() {
    let server = MockServer::builder()
        .rate_limit(RateLimit::per_second(0.2).burst(1).retry_after(false))
        .start()
        .await
        .unwrap();
    let client = client();
    let ok = post(&client, &server).await;
    assert_eq!(ok.status(), 200);
    assert!(header(&ok, "ratelimit-limit").is_none() && header(&ok, "x-ratelimit-limit").is_none());
    let refused = post(&client, &server).await;
    assert!(header(&refused, "retry-after").is_none());
    assert_throttled(refused, "0.2").await;
    assert_eq!(server.rate_limited_count(), 1);
}

/// Without a rate limit nothing is ever refused or counted, and no answer carries the headers.
#[tokio::test]
async fn the_default_server_has_no_rate_limit() {
    let server = MockServer::start().await.unwrap();
    let client = client();
    for _ in 0..30 {
        let response = post(&client, &server).await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "ratelimit-limit").is_none());
        assert!(header(&response, "x-ratelimit-limit").is_none());
        assert!(header(&response, "retry-after").is_none());
    }
    assert_eq!(server.rate_limited_count(), 0);
}

/// Every answer waits for the latency, errors too; requests wait side by side; and the operation is
/// carried out before the wait, so its change shows while its answer is still on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_every_answer_after_the_operation() {
    const LATENCY: Duration = Duration::from_millis(500);
    let server = std::sync::Arc::new(
        MockServer::builder()
            .latency(LATENCY)
            .start()
            .await
            .unwrap(),
    );
    let client = client();

    let started = Instant::now();
    let adding = {
        let (client, server) = (client.clone(), std::sync::Arc::clone(&server));
        tokio::spawn(async move { post(&client, &server).await.status() })
    };
    // Half-way through the wait the note is there, and the answer has not come yet.
    tokio::time::sleep(LATENCY / 2).await;
    assert_eq!(server.created_note_count(), 1);
    assert!(!adding.is_finished());
    assert_eq!(adding.await.unwrap(), 200);
    let elapsed = started.elapsed();
    assert!(elapsed >= LATENCY, "{elapsed:?}");
    assert_eq!(server.requests()[0].status, Some(200));

    // An error answer waits as long.
    let started = Instant::now();
    let wrong_key = client
        .get(format!("{}/calls/{FIRST_CALL_ID}", server.base_url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
    assert!(started.elapsed() >= LATENCY);

    // Eight at once take about one latency, not eight.
    let started = Instant::now();
    let many: Vec<_> = (0..8)
        .map(|_| {
            let (client, server) = (client.clone(), std::sync::Arc::clone(&server));
            async move { post(&client, &server).await.status() }
        })
        .collect();
    let statuses = futures_join(many).await;
    let elapsed = started.elapsed();
    eprintln!("latency 500 ms: 8 concurrent adds answered in {elapsed:?}");
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert!(elapsed >= LATENCY, "{elapsed:?}");
    assert!(
        elapsed < LATENCY * 4,
        "{elapsed:?}: the waits were not side by side"
    );
    assert_eq!(server.created_note_count(), 9);
}

/// The latency adds to a delay fault, and also holds back a dropped connection.
#[tokio::test]
async fn latency_adds_to_a_delay_and_holds_back_a_drop() {
    let server = MockServer::builder()
        .latency(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let client = client();
    server.inject(Fault::Delay(Duration::from_millis(300)), 1);
    let started = Instant::now();
    assert_eq!(post(&client, &server).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(600));

    server.inject(Fault::CloseBeforeResponse, 1);
    let started = Instant::now();
    let dropped = client
        .post(notes_url(&server))
        .bearer_auth(server.api_key())
        .json(&json!({ "content": "x" }))
        .send()
        .await;
    assert!(dropped.is_err());
    assert!(started.elapsed() >= Duration::from_millis(300));
}
