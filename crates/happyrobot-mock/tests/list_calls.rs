//! `GET /api/v1/calls` seen from a real HTTP client: the order, offset pagination, every filter
//! against the seeded calls, what the mock reads leniently and what it refuses, calls added while
//! it runs, and faults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test helper is a test failure with a location, which is what we want"
)]

mod common;

use std::collections::HashSet;

use happyrobot_mock::{
    FIRST_CALL_ID, Fault, MAX_LIST_LIMIT, MockServer, SEED_CAMPAIGN_IDS, SEED_EXTRA_TAGS,
    seeded_call,
};
use happyrobot_sdk::Timestamp;
use happyrobot_sdk::types::{Call, CallPage, CallStatus};
use serde_json::Value;

/// One page: the status, the decoded page and the raw JSON.
async fn get(server: &MockServer, query: &str) -> (u16, Value) {
    let response = common::client()
        .get(format!("{}/calls?{query}", server.base_url()))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

/// A page that must be a `200`, decoded with the generated model.
async fn fetch(server: &MockServer, query: &str) -> CallPage {
    let (status, json) = get(server, query).await;
    assert_eq!(status, 200, "{query}: {json}");
    serde_json::from_value(json).unwrap()
}

fn ids(page: &CallPage) -> Vec<String> {
    page.calls
        .iter()
        .flatten()
        .map(|call| call.id.clone())
        .collect()
}

/// Every call the query matches, walked with `skip` in pages of `limit`.
async fn all(server: &MockServer, query: &str, limit: usize) -> Vec<Call> {
    let mut calls = Vec::new();
    loop {
        let page = fetch(
            server,
            &format!("{query}&limit={limit}&skip={}", calls.len()),
        )
        .await;
        let got = page.calls.unwrap();
        if got.is_empty() {
            assert_eq!(page.count, Some(calls.len() as i64), "{query}");
            return calls;
        }
        calls.extend(got);
    }
}

fn created(call: &Call) -> i64 {
    call.created
        .as_ref()
        .unwrap()
        .to_utc()
        .unwrap()
        .timestamp_micros()
}

#[tokio::test]
async fn the_seeded_calls_are_listed_newest_first_whole() {
    let server = MockServer::start().await.unwrap();
    let (status, json) = get(&server, "").await;
    assert_eq!(status, 200);
    let members: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(members, ["calls", "count", "limit", "offset"]);
    assert_eq!(
        (&json["count"], &json["limit"], &json["offset"]),
        (&3.into(), &100.into(), &0.into())
    );
    let page: CallPage = serde_json::from_value(json).unwrap();
    // 18:20, 15:04 and 09:45 on 2024-03-13.
    assert_eq!(
        ids(&page),
        [
            "65f1c0ffee0123456789abce",
            FIRST_CALL_ID,
            "65f1c0ffee0123456789abcf"
        ]
    );
    for call in page.calls.unwrap() {
        assert_eq!(
            Some(&call),
            server.call(&call.id).as_ref(),
            "whole, notes included"
        );
    }
    let oldest_first = fetch(&server, "sort=asc").await;
    assert_eq!(ids(&oldest_first)[0], "65f1c0ffee0123456789abcf");
    assert_eq!(server.operation_counts().list_calls, 2);
}

#[tokio::test]
async fn pages_are_offsets_into_one_order_and_the_limit_is_capped() {
    let server = MockServer::builder()
        .seed_calls(1500)
        .start()
        .await
        .unwrap();
    let first = fetch(&server, "limit=7").await;
    let second = fetch(&server, "limit=7&skip=7").await;
    assert_eq!(
        (first.count, first.limit, first.offset),
        (Some(1500), Some(7), Some(0))
    );
    assert_eq!((second.limit, second.offset), (Some(7), Some(7)));
    let walked = all(&server, "", 7).await;
    assert_eq!(walked.len(), 1500);
    assert_eq!(
        ids(&first),
        walked[..7].iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&second),
        walked[7..14]
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        walked.iter().map(|c| &c.id).collect::<HashSet<_>>().len(),
        1500
    );
    assert!(
        walked.windows(2).all(|w| created(&w[0]) >= created(&w[1])),
        "newest first"
    );
    let ascending = all(&server, "sort=asc", 400).await;
    assert!(
        ascending
            .windows(2)
            .all(|w| created(&w[0]) <= created(&w[1]))
    );

    let capped = fetch(&server, "limit=5000").await;
    assert_eq!(capped.limit, Some(MAX_LIST_LIMIT as i64));
    assert_eq!(capped.calls.unwrap().len(), MAX_LIST_LIMIT);
    let past_the_end = fetch(&server, "skip=1500").await;
    assert_eq!(
        (past_the_end.calls, past_the_end.count),
        (Some(Vec::new()), Some(1500))
    );
}

#[tokio::test]
async fn every_filter_finds_the_seeded_calls_it_should() {
    let server = MockServer::builder().seed_calls(120).start().await.unwrap();
    let everything = all(&server, "", 1000).await;
    // The query, and what each call must hold to match it.
    type Holds = fn(&Call) -> bool;
    let cases: Vec<(String, Holds)> = vec![
        ("type=Outbound".into(), |c| {
            c.type_.as_ref().unwrap().as_str() == "Outbound"
        }),
        ("statuses=In+progress%2CNo%20answer".into(), |c| {
            matches!(
                c.status,
                Some(CallStatus::InProgress | CallStatus::NoAnswer)
            )
        }),
        ("statuses=Failed".into(), |c| {
            c.status == Some(CallStatus::Failed)
        }),
        (format!("campaigns={}", SEED_CAMPAIGN_IDS[3]), |c| {
            c.campaign_id.as_deref() == Some(SEED_CAMPAIGN_IDS[3])
        }),
        (format!("tags={}", SEED_EXTRA_TAGS[2]), |c| {
            c.metadata
                .as_ref()
                .unwrap()
                .tags
                .as_ref()
                .unwrap()
                .iter()
                .any(|t| t == SEED_EXTRA_TAGS[2])
        }),
        ("models=gpt-4o-mini".into(), |c| {
            c.use_case.as_ref().unwrap().model.as_deref() == Some("gpt-4o-mini")
        }),
        ("use_cases=65f1c0ffee0123456789ab06".into(), |c| {
            c.use_case.as_ref().unwrap().id.as_deref() == Some("65f1c0ffee0123456789ab06")
        }),
        ("ratings=%F0%9F%9A%A8".into(), |c| {
            c.ratings
                .iter()
                .flatten()
                .any(|r| r.emoji.as_ref().unwrap().as_str() == "🚨")
        }),
        ("from=2024-02-01&to=2024-02-29".into(), |c| {
            let day = &c.created.as_ref().unwrap().as_str()[..10];
            ("2024-02-01"..="2024-02-29").contains(&day)
        }),
        (
            "from=2024-02-10T12:00:00Z&to=2024-02-11T12:00:00%2B00:00".into(),
            |c| {
                let at = c.created.as_ref().unwrap().as_str();
                ("2024-02-10T12:00:00Z"..="2024-02-11T12:00:00Z").contains(&at)
            },
        ),
        ("search=DE-000".into(), |c| {
            c.extraction.as_ref().is_some_and(|e| {
                e.get("tracking_number")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.starts_with("DE-000"))
            })
        }),
        ("search=%2B1312555".into(), |c| {
            c.metadata
                .as_ref()
                .unwrap()
                .from
                .as_deref()
                .is_some_and(|f| f.contains("+1312555"))
        }),
        (
            "transfer_contact_email=SUPPORT.lead@example.com".into(),
            |c| c.transfer_contact_email.as_deref() == Some("support.lead@example.com"),
        ),
        ("type=Inbound&statuses=Completed&sort=asc".into(), |c| {
            c.type_.as_ref().unwrap().as_str() == "Inbound"
                && c.status == Some(CallStatus::Completed)
        }),
    ];
    for (query, holds) in cases {
        let expected: Vec<&Call> = everything.iter().filter(|c| holds(c)).collect();
        assert!(!expected.is_empty(), "{query}: nothing seeded to find");
        assert!(
            expected.len() < everything.len(),
            "{query}: matches everything"
        );
        let mut found = all(&server, &query, 1000).await;
        if query.contains("sort=asc") {
            found.reverse();
        }
        assert_eq!(found.iter().collect::<Vec<_>>(), expected, "{query}");
    }
    // Unknown values find nothing, rather than failing.
    for query in [
        "statuses=Dialing",
        "type=inbound",
        "campaigns=nope",
        "search=zzzz",
    ] {
        assert_eq!(fetch(&server, query).await.count, Some(0), "{query}");
    }
}

#[tokio::test]
async fn values_it_cannot_read_are_ignored_and_a_repeated_parameter_is_refused() {
    let server = MockServer::builder().seed_calls(10).start().await.unwrap();
    for query in [
        "limit=abc",
        "limit=-1",
        "limit=0",
        "skip=x",
        "from=yesterday&to=",
        "sort=sideways",
        "type=",
        "statuses=,,",
        "unknown=1&unknown=2",
        "limit=99999999999999999999999999",
    ] {
        let page = fetch(&server, query).await;
        assert_eq!(page.count, Some(10), "{query}");
    }
    // Bytes that are not UTF-8 are read as replacement characters: a search that finds nothing.
    assert_eq!(fetch(&server, "search=%ff%fe").await.count, Some(0));
    let (status, body) = get(&server, "statuses=Failed&statuses=Completed").await;
    assert_eq!(status, 400);
    assert_eq!(body["statusCode"], 400);
    assert!(
        body["message"].as_str().unwrap().contains("`statuses`"),
        "{body}"
    );
}

#[tokio::test]
async fn added_calls_are_listed_in_their_place() {
    let server = MockServer::builder().seed_calls(5).start().await.unwrap();
    let mut newest = seeded_call(5);
    newest.created = Some(Timestamp::now());
    let mut oldest = seeded_call(6);
    oldest.created = Some("2000-01-01T00:00:00Z".parse().unwrap());
    assert!(server.add_call(newest.clone()));
    assert!(server.add_call(oldest.clone()));
    assert!(!server.add_call(seeded_call(0)), "the id is taken");
    assert_eq!(server.call_count(), 7);
    let listed = fetch(&server, "").await;
    assert_eq!(listed.count, Some(7));
    let listed = ids(&listed);
    assert_eq!(listed.first(), Some(&newest.id));
    assert_eq!(listed.last(), Some(&oldest.id));
    assert_eq!(server.call(&newest.id), Some(newest));
}

#[tokio::test]
async fn faults_hit_listings_too() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Status(503), 1);
    server.inject(Fault::InvalidJson, 1);
    let (status, _) = get(&server, "").await;
    assert_eq!(status, 503);
    let broken = common::client()
        .get(format!("{}/calls", server.base_url()))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 200);
    assert!(serde_json::from_slice::<Value>(&broken.bytes().await.unwrap()).is_err());
    assert_eq!(fetch(&server, "").await.count, Some(3));
    let unauthorized = common::client()
        .get(format!("{}/calls", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
}
