//! `Client::list_calls` and `Client::list_calls_page` against real HTTP servers on 127.0.0.1: the
//! mock (5,000 seeded calls in pages of 7, calls added during the walk, every filter, faults), and
//! small servers that page badly (a count that grows, a page size lowered silently, a call repeated
//! across pages, pages that never end, the older answer, numbers as strings).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use happyrobot::types::{Call, CallStatus, CallType, SortOrder};
use happyrobot::{
    Attempt, AttemptObserver, CallFilter, CallStream, Client, Control, Error, Operation,
    RetryPolicy,
};
use happyrobot_mock::{Fault, MockServer, SEED_CAMPAIGN_IDS, SEED_EXTRA_TAGS, seeded_call};
use support::{KEY, Recorded, Reply, TestServer};

fn mock_client(server: &MockServer) -> Client {
    Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .retry(fast_retries())
        .build()
        .unwrap()
}

fn client(server: &TestServer) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(fast_retries())
        .build()
        .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

/// Every item of the stream, the first error included (the stream ends after it).
async fn drain(mut stream: CallStream) -> (Vec<Call>, Option<Error>) {
    let mut calls = Vec::new();
    while let Some(item) = stream.next_call().await {
        match item {
            Ok(call) => calls.push(call),
            Err(error) => {
                assert!(
                    stream.next_call().await.is_none(),
                    "an error ends the stream"
                );
                return (calls, Some(error));
            }
        }
    }
    (calls, None)
}

async fn walk(client: &Client, filter: CallFilter) -> Vec<Call> {
    let (calls, error) = drain(client.list_calls(filter)).await;
    assert!(error.is_none(), "{error:?}");
    calls
}

fn ids(calls: &[Call]) -> Vec<String> {
    calls.iter().map(|call| call.id.clone()).collect()
}

fn assert_unique(calls: &[Call]) {
    let unique: HashSet<&str> = calls.iter().map(|call| call.id.as_str()).collect();
    assert_eq!(unique.len(), calls.len(), "a call was yielded twice");
}

fn created(call: &Call) -> i64 {
    call.created
        .as_ref()
        .and_then(|at| at.to_utc())
        .map_or(i64::MIN, |at| at.timestamp_micros())
}

/// A call created now, with the id of the `index`-th seeded call: it lands at the head.
fn new_call(index: usize) -> Call {
    let mut call = seeded_call(index);
    call.created = Some(happyrobot::types::Timestamp::now());
    call
}

/// The query parameters of a request's path and query, decoded.
fn query(path: &str) -> HashMap<String, String> {
    let raw = path.split_once('?').map_or("", |(_, q)| q);
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_string(), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let text = text.replace('+', " ");
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A minimal call as JSON.
fn call_json(id: &str) -> serde_json::Value {
    serde_json::json!({ "id": id, "status": "Completed" })
}

fn page_reply(ids: &[String], count: Option<usize>, limit: Option<usize>, offset: usize) -> Reply {
    let mut page = serde_json::json!({
        "calls": ids.iter().map(|id| call_json(id)).collect::<Vec<_>>(),
        "offset": offset,
    });
    if let Some(count) = count {
        page["count"] = count.into();
    }
    if let Some(limit) = limit {
        page["limit"] = limit.into();
    }
    Reply::json(200, &page.to_string())
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:020}")).collect()
}

/// `skip` and `limit` of a request, as numbers.
fn skip_limit(request: &Recorded) -> (usize, usize) {
    let q = query(&request.path);
    (q["skip"].parse().unwrap(), q["limit"].parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_5000_seeded_calls_in_pages_of_7_yielding_each_once_newest_first() {
    let server = MockServer::builder()
        .seed_calls(5000)
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let client = mock_client(&server);
    let mut stream = client.list_calls(CallFilter::new().page_size(7));
    let mut calls = Vec::new();
    while let Some(call) = stream.next_call().await {
        calls.push(call.unwrap());
    }
    assert_eq!(calls.len(), 5000);
    assert_unique(&calls);
    let expected: HashSet<String> = server.call_ids().into_iter().collect();
    assert_eq!(ids(&calls).into_iter().collect::<HashSet<_>>(), expected);
    assert!(calls.windows(2).all(|w| created(&w[0]) >= created(&w[1])));
    // 714 full pages and one of 2; the count says there is no further page to ask for.
    assert_eq!(stream.pages(), 715);
    assert_eq!(server.operation_counts().list_calls, 715);
    assert_eq!((stream.count(), stream.offset()), (Some(5000), 5000));
    // The calls are whole: notes included, as the mock holds them.
    assert_eq!(Some(&calls[0]), server.call(&calls[0].id).as_ref());
}

/// Calls added at the head during the walk (one to three after every page, and a burst of 20, more
/// than a page, once) shift every offset: nothing may repeat, and no call that was there from the
/// start may be skipped. Added calls may or may not appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_5000_seeded_calls_while_calls_are_added_at_the_head() {
    let server = MockServer::builder()
        .seed_calls(5000)
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let client = mock_client(&server);
    let mut stream = client.list_calls(CallFilter::new().page_size(7));
    let mut calls = Vec::new();
    let mut next_id = 5000;
    let mut add = |count: usize| {
        for _ in 0..count {
            assert!(server.add_call(new_call(next_id)));
            next_id += 1;
        }
    };
    while let Some(call) = stream.next_call().await {
        calls.push(call.unwrap());
        // The stream asks for the next page only when this one is used up.
        if calls.len() % 7 == 0 {
            let page = calls.len() / 7;
            add(if page == 100 { 20 } else { 1 + page % 3 });
        }
    }
    assert_unique(&calls);
    let yielded: HashSet<String> = ids(&calls).into_iter().collect();
    let missing: Vec<String> = server
        .call_ids()
        .into_iter()
        .filter(|id| !yielded.contains(id))
        .collect();
    assert!(missing.is_empty(), "{} seeded calls skipped", missing.len());
    assert!(server.call_count() > 6000, "{}", server.call_count());
    // The walk went on until its offset reached the count of its last page.
    assert!(stream.offset() >= stream.count().unwrap());
    assert!(stream.pages() > 715, "{}", stream.pages());
}

#[tokio::test]
async fn filters_reach_the_mock_and_select_what_they_should() {
    let server = MockServer::builder().seed_calls(300).start().await.unwrap();
    let client = mock_client(&server);
    let everything = walk(&client, CallFilter::new().page_size(1000)).await;
    assert_eq!(everything.len(), 300);

    let from = CallFilter::parse_from("2024-02-01").unwrap();
    let to = CallFilter::parse_to("2024-02-29").unwrap();
    let filter = CallFilter::new()
        .call_type(CallFilter::parse_call_type("outbound"))
        .statuses(CallFilter::parse_statuses("Failed, no answer, in progress"))
        .campaign(SEED_CAMPAIGN_IDS[1])
        .campaign(SEED_CAMPAIGN_IDS[2])
        .from(from)
        .to(to)
        .sort(SortOrder::Asc)
        .page_size(3);
    let found = walk(&client, filter).await;
    let mut expected: Vec<&Call> = everything
        .iter()
        .filter(|c| c.type_ == Some(CallType::Outbound))
        .filter(|c| {
            matches!(
                c.status,
                Some(CallStatus::Failed | CallStatus::NoAnswer | CallStatus::InProgress)
            )
        })
        .filter(|c| {
            c.campaign_id
                .as_deref()
                .is_some_and(|id| SEED_CAMPAIGN_IDS[1..3].contains(&id))
        })
        .filter(|c| {
            let at = c.created.as_ref().unwrap().to_utc().unwrap();
            from <= at && at <= to
        })
        .collect();
    expected.reverse();
    assert!(!expected.is_empty());
    assert_eq!(found.iter().collect::<Vec<_>>(), expected);

    // What went on the wire: the lists comma-separated, the dates RFC 3339 in UTC.
    let sent = server.requests();
    let last = sent.last().unwrap();
    let q = query(&last.path);
    assert_eq!(q["type"], "Outbound");
    assert_eq!(q["statuses"], "Failed,No answer,In progress");
    assert_eq!(
        q["campaigns"],
        format!("{},{}", SEED_CAMPAIGN_IDS[1], SEED_CAMPAIGN_IDS[2])
    );
    assert_eq!(q["from"], "2024-02-01T00:00:00Z");
    assert_eq!(q["to"], "2024-02-29T23:59:59.999Z");
    assert_eq!((q["sort"].as_str(), q["limit"].as_str()), ("asc", "3"));
    assert!(
        last.path
            .contains("statuses=Failed%2CNo+answer%2CIn+progress"),
        "{}",
        last.path
    );

    let tagged = walk(
        &client,
        CallFilter::new().tag(SEED_EXTRA_TAGS[4]).tag("carrier"),
    )
    .await;
    assert!(!tagged.is_empty() && tagged.len() < 300);
    assert!(tagged.iter().all(|c| {
        let tags = c.metadata.as_ref().unwrap().tags.as_ref().unwrap();
        tags.iter()
            .any(|t| t == SEED_EXTRA_TAGS[4] || t == "carrier")
    }));
    let searched = walk(&client, CallFilter::new().search("de-0001")).await;
    let tracked: Vec<&Call> = everything
        .iter()
        .filter(|c| {
            c.extraction.as_ref().is_some_and(|e| {
                e.get("tracking_number")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|t| t.contains("DE-0001"))
            })
        })
        .collect();
    assert!(!tracked.is_empty());
    assert_eq!(searched.iter().collect::<Vec<_>>(), tracked);
    let none = walk(
        &client,
        CallFilter::new().status(CallStatus::Unknown("Dialing".into())),
    )
    .await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_page_is_reachable_by_itself_with_its_count() {
    let server = MockServer::builder().seed_calls(30).start().await.unwrap();
    let client = mock_client(&server);
    let filter = CallFilter::new().page_size(4);
    let page = client.list_calls_page(&filter, 8).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.request_id().is_some());
    assert_eq!(
        (page.count, page.limit, page.offset),
        (Some(30), Some(4), Some(8))
    );
    let all = walk(&client, CallFilter::new()).await;
    assert_eq!(ids(page.calls.as_ref().unwrap()), ids(&all[8..12]));
    let raw: serde_json::Value = page.json().unwrap();
    assert_eq!(raw["calls"].as_array().unwrap().len(), 4);
    let past = client.list_calls_page(&filter, 30).await.unwrap();
    assert_eq!(past.calls.as_deref().map(<[Call]>::len), Some(0));
}

/// Listing goes through the same retry executor as every other read: a 503 and a 429 are retried,
/// an observer sees `ListCalls` attempts, and a broken page in the middle of a walk is retried
/// without repeating or skipping a call.
#[tokio::test]
async fn pages_are_retried_like_other_reads() {
    #[derive(Default)]
    struct Seen(Mutex<Vec<Attempt>>);
    impl AttemptObserver for Seen {
        fn before_attempt(&self, attempt: &Attempt) -> ControlFlow<()> {
            self.0.lock().unwrap().push(*attempt);
            ControlFlow::Continue(())
        }
    }
    let server = MockServer::builder().seed_calls(20).start().await.unwrap();
    let client = mock_client(&server);
    server.inject(Fault::Status(503), 1);
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let seen = Seen::default();
    let page = client
        .list_calls_page_with(&CallFilter::new(), 0, &Control::new().observer(&seen))
        .await
        .unwrap();
    assert_eq!(page.calls.as_ref().unwrap().len(), 20);
    let attempts = seen.0.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.operation == Operation::ListCalls));

    // Mid-walk: the third page's first attempt is cut off, its second comes back broken.
    let mut stream = client.list_calls(CallFilter::new().page_size(3));
    let mut calls = Vec::new();
    while let Some(call) = stream.next_call().await {
        calls.push(call.unwrap());
        if calls.len() == 6 {
            server.inject(Fault::CloseBeforeResponse, 1);
            server.inject(Fault::Status(502), 1);
        }
    }
    assert_eq!(calls.len(), 20);
    assert_unique(&calls);
}

#[tokio::test]
async fn an_error_is_yielded_once_and_ends_the_stream() {
    let server = MockServer::start().await.unwrap();
    let wrong_key = Client::builder()
        .api_key("hr_wrong")
        .base_url(server.base_url())
        .build()
        .unwrap();
    let (calls, error) = drain(wrong_key.list_calls(CallFilter::new())).await;
    let error = error.unwrap();
    assert!(calls.is_empty());
    assert!(error.is_unauthorized(), "{error}");
    assert_eq!(
        error.outcome(),
        happyrobot::Outcome::NotApplied,
        "a read changes nothing"
    );

    // An invalid filter fails before anything is sent.
    let client = mock_client(&server);
    let before = server.requests().len();
    let (calls, error) = drain(client.list_calls(CallFilter::new().tag("a,b"))).await;
    assert!(calls.is_empty());
    assert!(error.unwrap().is_invalid_input());
    assert!(
        client
            .list_calls_page(&CallFilter::new().campaign(""), 0)
            .await
            .unwrap_err()
            .is_invalid_input()
    );
    assert_eq!(server.requests().len(), before);

    // A 404 names the base URL, not a call ID.
    let elsewhere = Client::builder()
        .api_key(server.api_key())
        .base_url(format!("{}/v2", server.base_url()))
        .build()
        .unwrap();
    let error = elsewhere
        .list_calls_page(&CallFilter::new(), 0)
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    assert!(error.to_string().contains("base URL"), "{error}");
}

/// A server whose list grows at the head while it is walked (as a busy account's newest-first list
/// does), by 0 to 3 calls per request and once by 12, more than a page: the count grows, pages
/// repeat calls already yielded, and every call that was there from the start comes once.
#[tokio::test]
async fn a_count_that_grows_during_the_walk() {
    let originals = numbered("a", 60);
    let list = Arc::new(Mutex::new(originals.clone()));
    let added = Arc::new(Mutex::new(0usize));
    let (l, a) = (list.clone(), added.clone());
    let server = TestServer::start(move |index, request| {
        let mut list = l.lock().unwrap();
        let burst = match index {
            0 => 0,
            5 => 12,
            _ => index % 4,
        };
        for _ in 0..burst {
            let mut n = a.lock().unwrap();
            list.insert(0, format!("n{:023}", *n));
            *n += 1;
        }
        let (skip, limit) = skip_limit(request);
        let end = (skip + limit).min(list.len());
        let page = list.get(skip.min(end)..end).unwrap_or_default().to_vec();
        page_reply(&page, Some(list.len()), Some(limit), skip)
    })
    .await;
    let mut stream = client(&server).list_calls(CallFilter::new().page_size(5));
    let mut calls = Vec::new();
    while let Some(call) = stream.next_call().await {
        calls.push(call.unwrap());
    }
    assert_unique(&calls);
    let yielded: HashSet<String> = ids(&calls).into_iter().collect();
    for id in &originals {
        assert!(yielded.contains(id), "{id} skipped");
    }
    // It went on to the count of the last page, past the pages the burst repeated.
    assert!(*added.lock().unwrap() > 12);
    assert!(stream.offset() >= stream.count().unwrap());
}

/// Asked for 10, the server sends 4 a page: silently (its `limit` still says 10, or is absent), or
/// saying so. The offset follows what came, so nothing is skipped.
#[tokio::test]
async fn a_server_that_lowers_the_page_size() {
    for says in [Some(10), None, Some(4)] {
        let all = numbered("b", 23);
        let list = all.clone();
        let server = TestServer::start(move |_, request| {
            let (skip, _) = skip_limit(request);
            let end = (skip + 4).min(list.len());
            page_reply(&list[skip.min(end)..end], Some(list.len()), says, skip)
        })
        .await;
        let calls = walk(&client(&server), CallFilter::new().page_size(10)).await;
        assert_eq!(ids(&calls), all, "{says:?}");
        let skips: Vec<usize> = server.requests().iter().map(|r| skip_limit(r).0).collect();
        assert_eq!(skips, [0, 4, 8, 12, 16, 20], "{says:?}");
        assert!(server.requests().iter().all(|r| skip_limit(r).1 == 10));
    }
}

/// Pages that overlap by a call (a server that pages from `skip - 1`): each call comes once, and
/// the walk ends at the count.
#[tokio::test]
async fn a_server_that_repeats_a_call_across_pages() {
    let all = numbered("c", 20);
    let list = all.clone();
    let server = TestServer::start(move |_, request| {
        let (skip, limit) = skip_limit(request);
        let start = skip.saturating_sub(1).min(list.len());
        let end = (start + limit).min(list.len());
        page_reply(&list[start..end], Some(list.len()), Some(limit), skip)
    })
    .await;
    let calls = walk(&client(&server), CallFilter::new().page_size(6)).await;
    assert_eq!(ids(&calls), all);
}

/// A server that ignores `skip` and claims a million calls: the second page brings nothing new,
/// which ends the walk. And one whose pages of new calls never end: the stream is lazy, so taking
/// 25 calls asks for 3 pages of 10, not more.
#[tokio::test]
async fn a_server_whose_pages_never_end() {
    let first = numbered("d", 10);
    let page = first.clone();
    let server =
        TestServer::start(move |_, _| page_reply(&page, Some(1_000_000), Some(10), 0)).await;
    let calls = walk(&client(&server), CallFilter::new().page_size(10)).await;
    assert_eq!(ids(&calls), first);
    assert_eq!(server.count(), 2);

    let endless = TestServer::start(|_, request| {
        let (skip, limit) = skip_limit(request);
        let ids: Vec<String> = (skip..skip + limit).map(|i| format!("e{i:023}")).collect();
        page_reply(&ids, None, Some(limit), skip)
    })
    .await;
    let mut stream = client(&endless).list_calls(CallFilter::new().page_size(10));
    for _ in 0..25 {
        stream.next_call().await.unwrap().unwrap();
    }
    assert_eq!(endless.count(), 3);
    assert_eq!(
        (stream.pages(), stream.offset(), stream.count()),
        (3, 30, None)
    );
    drop(stream);
}

/// The older answer, `{calls, count, currentPage}` with calls in the old shape, and numbers sent as
/// strings, decode; without `limit` the walk goes on until an empty page.
#[tokio::test]
async fn the_older_answer_and_numbers_as_strings() {
    let legacy = std::fs::read_to_string(format!(
        "{}/tests/fixtures/pages/call_page_legacy.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let server = TestServer::start(move |index, _| match index {
        0 => Reply::json(200, &legacy),
        _ => Reply::json(200, r#"{"calls": [], "count": "57", "currentPage": "3"}"#),
    })
    .await;
    let client = client(&server);
    let mut stream = client.list_calls(CallFilter::new());
    let mut calls = Vec::new();
    while let Some(call) = stream.next_call().await {
        calls.push(call.unwrap());
    }
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, Some(CallStatus::Unknown("Ended".into())));
    assert_eq!((server.count(), stream.count()), (2, Some(57)));
    let page = client.list_calls_page(&CallFilter::new(), 2).await.unwrap();
    assert_eq!((page.count, page.current_page), (Some(57), Some(3)));
    assert_eq!(page.limit, None);

    let strings = TestServer::start(|_, _| {
        Reply::json(
            200,
            r#"{"calls": [{"id": "65f1c0ffee0123456789abcd"}], "count": "1", "limit": "100", "offset": "0"}"#,
        )
    })
    .await;
    let page = self::client(&strings)
        .list_calls_page(&CallFilter::new(), 0)
        .await
        .unwrap();
    assert_eq!(
        (page.count, page.limit, page.offset),
        (Some(1), Some(100), Some(0))
    );
    let calls = walk(&self::client(&strings), CallFilter::new()).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        strings.count(),
        2,
        "the count of 1 ends the walk after the first page"
    );
}

/// `CallStream` is a `futures_core::Stream`: polled through the trait, it gives the same calls.
#[tokio::test]
async fn the_stream_trait() {
    use futures_core::Stream;
    let server = MockServer::builder().seed_calls(12).start().await.unwrap();
    let mut stream = mock_client(&server).list_calls(CallFilter::new().page_size(5));
    assert_eq!(stream.size_hint(), (0, None));
    let mut calls = Vec::new();
    while let Some(call) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        calls.push(call.unwrap());
    }
    assert_eq!(calls.len(), 12);
    assert!(futures_core::FusedStream::is_terminated(&stream));
    // It moves to another task.
    let handle = tokio::spawn(async move { stream.next_call().await.is_none() });
    assert!(handle.await.unwrap());
}
