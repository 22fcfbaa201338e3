//! The models against the spec's contract: JSON Schema snapshots of every public model type, the request
//! body, and the decode-then-re-encode of each fixture in `tests/fixtures/` (see its README).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

use happyrobot::types::*;
use happyrobot::{CallId, NewNote};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn decode(name: &str) -> Call {
    serde_json::from_value(fixture(name)).unwrap_or_else(|e| panic!("{name} does not decode: {e}"))
}

fn reencode(name: &str) -> Value {
    serde_json::to_value(decode(name)).unwrap()
}

/// Drops `null` members, which decode as absent and are then not re-encoded.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

macro_rules! schema_snapshots {
    ($($ty:ident),* $(,)?) => {
        #[test]
        fn json_schema_of_every_model_type() {
            $(
                let schema = schemars::schema_for!($ty);
                insta::assert_json_snapshot!(concat!("schema_", stringify!($ty)), schema);
            )*
        }
    };
}

schema_snapshots!(
    Call,
    CallPage,
    Note,
    NoteInput,
    NoteUpdate,
    NoteUpdateContent,
    GetCallId,
    UpdateNoteId,
    UpdateNoteNoteId,
    DeleteNoteId,
    DeleteNoteNoteId,
    CallMetadata,
    UseCase,
    ExtractionField,
    ClassificationTag,
    Hook,
    HookHeader,
    SampleLabel,
    Agent,
    Classification,
    Rating,
    CallCosts,
    VoipCosts,
    ComponentCosts,
    LlmCosts,
    ErrorBody,
    CallType,
    CallStatus,
    CallProvider,
    Language,
    AmdBehavior,
    LabelColor,
    RatingEmoji,
    SortOrder,
    Timestamp,
    Transcript,
    TranscriptMessage,
    Seconds,
    MessageRole,
    ToolCall,
    ToolCallFunction,
    UnpreferredMessage,
    TransferContact,
    TransferContactType,
    TransferPhone,
    GetTranscriptId,
);

#[test]
fn request_body_json() {
    let note = NewNote::new("Driver confirmed pickup")
        .flagged(true)
        .created_at("2024-01-01T01:01:01Z".parse::<Timestamp>().unwrap());
    insta::assert_json_snapshot!("request_body_full", note.to_body().unwrap());
    insta::assert_json_snapshot!(
        "request_body_content_only",
        NewNote::new("Driver confirmed pickup").to_body().unwrap()
    );
}

#[test]
fn full_call_round_trips_unchanged() {
    let reencoded = reencode("call_full.json");
    assert_eq!(reencoded, fixture("call_full.json"));
    insta::assert_json_snapshot!("call_full_reencoded", reencoded);
}

#[test]
fn full_call_fields_are_typed() {
    let call = decode("call_full.json");
    assert_eq!(call.status, Some(CallStatus::Completed));
    assert_eq!(call.type_, Some(CallType::Inbound));
    assert_eq!(call.provider, Some(CallProvider::Twilio));
    assert_eq!(call.language, Some(Language::EnUs));
    let use_case = call.use_case.as_ref().unwrap();
    assert_eq!(use_case.amd_behavior, Some(AmdBehavior::Hangup));
    let ratings = call.ratings.unwrap();
    assert_eq!(ratings[0].emoji, Some(RatingEmoji::CheckMark));
    assert_eq!(
        call.created
            .as_ref()
            .unwrap()
            .to_utc()
            .unwrap()
            .to_rfc3339(),
        "2024-01-01T01:01:01+00:00"
    );
    assert_eq!(
        call.metadata.unwrap().custom.unwrap()["nested"]["stops"][1],
        2
    );
    assert_eq!(call.costs.unwrap().llm.unwrap().total_cost, Some(0.3));
    // The call's own ID is a valid CallId, so a returned call can be passed straight back.
    CallId::new(call.id).unwrap();
}

#[test]
fn minimal_call_decodes() {
    let call = decode("call_minimal.json");
    assert!(call.notes.is_none());
    assert!(call.classification.is_none());
    assert_eq!(reencode("call_minimal.json"), fixture("call_minimal.json"));
}

/// The ten fields besides `id` that the API reference documents as required.
const DOCUMENTED_REQUIRED: [&str; 10] = [
    "organization_id",
    "type",
    "status",
    "provider",
    "metadata",
    "use_case",
    "agent",
    "language",
    "created",
    "viewed_by",
];

#[test]
fn a_call_with_only_its_id_decodes() {
    let call = decode("drift_only_id.json");
    assert_eq!(call.id, "65f1c0ffee0123456789abcd");
    let json = serde_json::to_value(&call).unwrap();
    assert_eq!(json, fixture("drift_only_id.json"), "nothing else appears");
}

#[test]
fn documented_required_fields_may_be_missing_or_null() {
    for name in [
        "drift_documented_required_missing.json",
        "drift_documented_required_null.json",
    ] {
        let call = decode(name);
        let json = serde_json::to_value(&call).unwrap();
        for field in DOCUMENTED_REQUIRED {
            assert!(json.get(field).is_none(), "{name}: {field}");
        }
        assert!(call.status.is_none() && call.metadata.is_none() && call.created.is_none());
        // What the fixture does hold still decodes.
        assert_eq!(call.notes, decode("call_full.json").notes, "{name}");
    }
}

#[test]
fn the_spec_records_the_documented_required_list() {
    let spec = std::fs::read_to_string(format!(
        "{}/../../openapi/happyrobot.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let at = spec.find("x-documented-required:").unwrap();
    let listed = &spec[at..at + 400];
    for field in DOCUMENTED_REQUIRED {
        assert!(listed.contains(&format!("- {field}\n")), "{field}");
    }
}

#[test]
fn unknown_members_and_big_numbers_decode() {
    let call = decode("drift_unknown_members_and_big_numbers.json");
    assert_eq!(call.duration, Some(1.0000000000000002e-7));
    let notes = call.notes.as_ref().unwrap();
    assert_eq!(notes[0].id, decode("call_full.json").notes.unwrap()[0].id);
}

#[test]
fn unknown_enum_values_are_kept() {
    let call = decode("drift_unknown_enum_values.json");
    assert_eq!(call.status, Some(CallStatus::Unknown("Dialing".into())));
    assert_eq!(call.type_, Some(CallType::Unknown("Transfer".into())));
    assert_eq!(call.provider, Some(CallProvider::Unknown("Phone".into())));
    assert_eq!(call.language, Some(Language::Unknown("ja-JP".into())));
    assert!(call.language.as_ref().unwrap().is_unknown());
    let use_case = call.use_case.as_ref().unwrap();
    assert_eq!(use_case.language, Some(Language::Unknown("zh-CN".into())));
    assert_eq!(
        use_case.amd_behavior,
        Some(AmdBehavior::Unknown("Voicemail".into()))
    );
    let labels = use_case.sample_labels.as_ref().unwrap();
    assert_eq!(labels[0].color, Some(LabelColor::Unknown("indigo".into())));
    let ratings = call.ratings.as_ref().unwrap();
    assert_eq!(ratings[0].emoji, Some(RatingEmoji::Unknown("🎉".into())));
    assert_eq!(ratings[1].emoji, Some(RatingEmoji::RotatingLight));
    assert_eq!(
        reencode("drift_unknown_enum_values.json"),
        fixture("drift_unknown_enum_values.json")
    );

    let lower = decode("drift_lowercase_status.json");
    assert_eq!(lower.status.unwrap().as_str(), "in-progress");
    assert_eq!(
        reencode("drift_lowercase_status.json"),
        fixture("drift_lowercase_status.json")
    );
}

#[test]
fn unknown_fields_are_accepted() {
    let call = decode("drift_unknown_fields.json");
    // Every field the spec knows decodes to what the full fixture holds.
    assert_eq!(call, decode("call_full.json"));
}

#[test]
fn nulls_decode_as_absent() {
    let call = decode("drift_nulls.json");
    assert!(call.extraction.is_none());
    assert!(call.classification.is_none());
    let metadata = call.metadata.as_ref().unwrap();
    assert!(metadata.custom.is_none());
    assert!(metadata.call_sid.is_none() && metadata.from.is_none() && metadata.to.is_none());
    assert!(call.notes.is_none() && call.ratings.is_none() && call.costs.is_none());
    assert_eq!(
        reencode("drift_nulls.json"),
        without_nulls(fixture("drift_nulls.json"))
    );
}

#[test]
fn timestamps_keep_their_text() {
    let call = decode("drift_timestamp_shapes.json");
    let created = call.created.as_ref().unwrap();
    assert_eq!(created.as_str(), "2024-01-01T03:01:01.123456+02:00");
    assert_eq!(
        created.to_utc().unwrap().to_rfc3339(),
        "2024-01-01T01:01:01.123456+00:00"
    );
    let notes = call.notes.as_ref().unwrap();
    assert!(notes[0].created_at.as_ref().unwrap().to_utc().is_some());
    let ratings = call.ratings.as_ref().unwrap();
    let unreadable = ratings[0].created.as_ref().unwrap();
    assert_eq!(unreadable.as_str(), "yesterday afternoon");
    assert_eq!(unreadable.to_utc(), None);
    assert_eq!(
        reencode("drift_timestamp_shapes.json"),
        fixture("drift_timestamp_shapes.json")
    );
}

#[test]
fn free_form_objects_hold_any_json() {
    let mut value = fixture("call_full.json");
    let anything = serde_json::json!({"a": [1, "two", null, {"b": false}], "c": 1.5e300, "d": ""});
    for pointer in [
        "/params",
        "/extraction",
        "/metadata/custom",
        "/use_case/detailed_work_hours",
        "/use_case/amd_messages",
    ] {
        *value.pointer_mut(pointer).unwrap() = anything.clone();
    }
    let call: Call = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&call).unwrap(), value);
}

fn decode_page(name: &str) -> CallPage {
    serde_json::from_value(fixture(name)).unwrap_or_else(|e| panic!("{name} does not decode: {e}"))
}

#[test]
fn a_call_page_round_trips_unchanged() {
    let page = decode_page("pages/call_page.json");
    assert_eq!(
        (page.count, page.limit, page.offset, page.current_page),
        (Some(1234), Some(3), Some(300), None)
    );
    let calls = page.calls.as_ref().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[0],
        decode("call_full.json"),
        "whole calls, notes included"
    );
    assert_eq!(calls[2].status, Some(CallStatus::InProgress));
    assert_eq!(
        serde_json::to_value(&page).unwrap(),
        fixture("pages/call_page.json")
    );
    insta::assert_json_snapshot!("call_page_reencoded", page);
}

/// The older rendering of "List calls": `{calls, count, currentPage}`, with calls in the old shape
/// (`assistant` instead of `use_case` and `agent`, no `notes`, statuses of the old list).
#[test]
fn the_older_call_page_decodes() {
    let page = decode_page("pages/call_page_legacy.json");
    assert_eq!(
        (page.count, page.current_page, page.limit, page.offset),
        (Some(57), Some(2), None, None)
    );
    let calls = page.calls.unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, Some(CallStatus::Unknown("Ended".into())));
    assert_eq!(calls[1].status, Some(CallStatus::Unknown("Missed".into())));
    assert!(
        calls
            .iter()
            .all(|c| c.notes.is_none() && c.use_case.is_none() && c.agent.is_none())
    );
    assert_eq!(
        calls[0].metadata.as_ref().unwrap().from.as_deref(),
        Some("+13125550101")
    );
    assert_eq!(calls[0].duration, Some(61.0));
}

#[test]
fn a_call_page_of_nulls_or_nothing_decodes() {
    let nulls = decode_page("pages/call_page_nulls.json");
    assert_eq!(nulls, CallPage::default());
    assert_eq!(
        serde_json::from_str::<CallPage>("{}").unwrap(),
        CallPage::default()
    );
    let empty = decode_page("pages/call_page_empty.json");
    assert_eq!(empty.calls, Some(Vec::new()));
    assert_eq!(empty.count, Some(0));
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        fixture("pages/call_page_empty.json")
    );
}

#[test]
fn sort_orders_are_open() {
    assert_eq!(SortOrder::KNOWN, ["asc", "desc"]);
    assert_eq!("desc".parse::<SortOrder>().unwrap(), SortOrder::Desc);
    let other: SortOrder = serde_json::from_str("\"relevance\"").unwrap();
    assert_eq!(other, SortOrder::Unknown("relevance".into()));
    assert_eq!(serde_json::to_string(&other).unwrap(), "\"relevance\"");
}

/// A transcript fixture with every number as a float: the typed [`Seconds`] keep a number as an
/// `f64`, so `1710320400` re-encodes as `1710320400.0`, the same number (the raw body,
/// `Response::raw_body`, keeps the text as sent).
fn transcript_fixture(name: &str) -> Value {
    floats(fixture(&format!("transcripts/{name}")))
}

fn floats(value: Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, floats(v))).collect()),
        other => other,
    }
}

fn transcript(name: &str) -> Transcript {
    serde_json::from_value(fixture(&format!("transcripts/{name}")))
        .unwrap_or_else(|e| panic!("{name} does not decode: {e}"))
}

#[test]
fn every_transcript_fixture_decodes() {
    let dir = format!("{}/tests/fixtures/transcripts", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        transcript(&name);
        count += 1;
    }
    assert!(count >= 8, "{count} fixtures");
}

#[test]
fn the_full_and_the_older_transcripts_round_trip_unchanged() {
    for name in [
        "transcript_full.json",
        "transcript_older.json",
        "transcript_empty.json",
    ] {
        let reencoded = serde_json::to_value(transcript(name)).unwrap();
        assert_eq!(reencoded, transcript_fixture(name), "{name}");
    }
    insta::assert_json_snapshot!(
        "transcript_full_reencoded",
        serde_json::to_value(transcript("transcript_full.json")).unwrap()
    );
}

#[test]
fn transcript_members_are_typed() {
    let full = transcript("transcript_full.json");
    assert_eq!(
        full.start_time.as_ref().unwrap().as_f64(),
        Some(1_710_320_400.0)
    );
    let messages = full.messages.unwrap();
    let roles: Vec<_> = messages.iter().map(|m| m.role.clone().unwrap()).collect();
    assert_eq!(
        roles,
        [
            MessageRole::System,
            MessageRole::Assistant,
            MessageRole::User,
            MessageRole::Assistant,
            MessageRole::Tool,
            MessageRole::Assistant
        ]
    );
    let call = &messages[3].tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        call.function.as_ref().unwrap().name.as_deref(),
        Some("find_load")
    );
    assert_eq!(messages[4].tool_call_id.as_deref(), Some("call_abc123"));
    let contact = messages[5].transfer_contact.as_ref().unwrap();
    assert_eq!(contact.type_, Some(TransferContactType::Terminal));
    assert_eq!(
        contact.phone.as_ref().unwrap().number.as_deref(),
        Some("+13125550142")
    );
    assert_eq!(messages[1].unpreferred_messages.as_ref().unwrap().len(), 1);
}

#[test]
fn transcript_drift_is_kept() {
    // Unknown values of the open enums are kept and re-encoded as sent.
    let unknown = transcript("drift_unknown_role.json");
    let reencoded = serde_json::to_value(&unknown).unwrap();
    assert_eq!(reencoded, transcript_fixture("drift_unknown_role.json"));
    assert_eq!(
        unknown.messages.as_ref().unwrap()[0]
            .role
            .as_ref()
            .unwrap()
            .to_string(),
        "developer"
    );
    // Times as text: read as numbers where they are numbers, kept as text either way.
    let text = transcript("drift_times_as_text.json");
    assert_eq!(
        text.start_time.as_ref().unwrap().as_f64(),
        Some(1_710_320_400.0)
    );
    let messages = text.messages.unwrap();
    assert_eq!(messages[0].start.as_ref().unwrap().as_f64(), Some(0.5));
    assert_eq!(messages[0].end.as_ref().unwrap().as_f64(), Some(2.25));
    assert_eq!(messages[1].start.as_ref().unwrap().as_f64(), None);
    assert_eq!(
        serde_json::to_value(&messages[1].start).unwrap(),
        serde_json::json!("soon")
    );
    // Nulls decode as absent; a collapsed `{}` is an empty transcript.
    let nulls = transcript("drift_nulls.json");
    assert!(nulls.id.is_none() && nulls.start_time.is_none());
    assert_eq!(nulls.messages.as_ref().unwrap().len(), 2);
    assert_eq!(transcript("drift_collapsed.json"), Transcript::default());
    // Arguments that are JSON, not text, are kept as they came.
    let members = transcript("drift_unknown_members.json");
    let call = &members.messages.unwrap()[0].tool_calls.clone().unwrap()[0];
    assert_eq!(
        call.function.as_ref().unwrap().arguments,
        Some(serde_json::json!({"ref": 48213}))
    );
}
