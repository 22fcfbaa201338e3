//! Clients that share their pace through a directory (`ClientBuilder::share_rate_limit`, feature
//! `shared-rate`), as the clients of two processes do: each has its own controller, and a file
//! between them. (Two clients of one process lock the file through two descriptions, as two
//! processes do.)

#![cfg(feature = "shared-rate")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

use std::time::Duration;

use happyrobot::{CallId, Client, NewNote, RateControl};
use happyrobot_mock::{MockServer, RateLimit};

fn client(server: &MockServer, dir: &std::path::Path) -> Client {
    Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .share_rate_limit(dir)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_starts_under_a_limit_another_paces_under_takes_its_pace() {
    let server = MockServer::builder()
        .rate_limit(RateLimit::per_second(10.0))
        .start()
        .await
        .unwrap();
    let dir = happyrobot_mock::testkit::temp_dir("shared-rate").unwrap();
    let id = CallId::new(&server.call_ids()[0]).unwrap();
    let first = client(&server, &dir);
    // A third client starts before anyone paces: it goes unpaced, in its slow start.
    let third = client(&server, &dir);
    third.add_note(&id, NewNote::new("third")).await.unwrap();
    assert_eq!(third.rate_stats().pacing, None);
    // The first client alone, until the server has limited it and it paces.
    let mut adds = 0;
    while first.rate_stats().learned.is_none() {
        first.add_note(&id, NewNote::new("first")).await.unwrap();
        adds += 1;
        assert!(
            adds < 200,
            "the first client never paced: {:?}",
            first.rate_stats()
        );
    }
    let learned = first.rate_stats().learned;

    // The file names neither the key nor the server.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        !text.contains(server.api_key()) && !text.contains("127.0.0.1"),
        "{text}"
    );

    // The bucket fills again while the first is quiet; a second client's first request then
    // goes at the shared pace: it paces, with what the first learned, without a refusal of its
    // own (alone, it would not pace before the server refused it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = client(&server, &dir);
    second.add_note(&id, NewNote::new("second")).await.unwrap();
    let stats = second.rate_stats();
    assert_eq!(stats.throttled, 0, "{stats:?}");
    assert!(
        stats.pacing.is_some(),
        "the second client does not pace: {stats:?}"
    );
    assert_eq!(stats.learned, learned, "{stats:?}");
    // The third, still in its slow start, takes its next turn from the shared pace too.
    third.add_note(&id, NewNote::new("third")).await.unwrap();
    let stats = third.rate_stats();
    assert!(stats.pacing.is_some() && stats.throttled == 0, "{stats:?}");

    // A client of another key shares nothing.
    let other = Client::builder()
        .api_key("another-key-of-the-same-organisation")
        .base_url(server.base_url())
        .share_rate_limit(&dir)
        .build()
        .unwrap();
    let _ = other.add_note(&id, NewNote::new("other")).await;
    assert_eq!(other.rate_stats().pacing, None);

    // A client with a ceiling spaces its own requests: it shares nothing, and makes no file.
    let capped_dir = happyrobot_mock::testkit::temp_dir("shared-rate-capped").unwrap();
    let capped = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .rate_control(RateControl::adaptive().max_rate(50.0))
        .share_rate_limit(&capped_dir)
        .build()
        .unwrap();
    capped.add_note(&id, NewNote::new("capped")).await.unwrap();
    let files = std::fs::read_dir(&capped_dir).map_or(0, Iterator::count);
    assert_eq!(files, 0);
}
