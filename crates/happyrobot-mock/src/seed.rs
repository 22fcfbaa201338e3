//! The calls the mock holds when it starts: realistic, varied, and the same on every start.
//!
//! The first three are written out by hand so that every field of the spec's `Call` is set in at
//! least one of them; further ones (for `seed_calls(N)` with N > 3) are copies of the three that
//! vary everything a call listing filters on: status, provider and language, the creation date
//! (scattered over the 60 days before [`SEED_DATES_END`]), the campaign, the tags, the phone
//! numbers and extracted values. Ids follow one deterministic sequence whose first value is the
//! spec's example id, so that tools driven by the spec's examples hit a real call; everything else
//! is the same on every start too (no date depends on the clock).

use happyrobot_sdk::Timestamp;
use happyrobot_sdk::types::{
    Agent, AmdBehavior, Call, CallCosts, CallMetadata, CallProvider, CallStatus, CallType,
    Classification, ClassificationTag, ComponentCosts, ExtractionField, Hook, HookHeader,
    LabelColor, Language, LlmCosts, Note, Rating, RatingEmoji, SampleLabel, UseCase, VoipCosts,
};
use serde_json::{Map, Value, json};

/// The id of the first seeded call: the spec's example id.
pub const FIRST_CALL_ID: &str = "65f1c0ffee0123456789abcd";

/// The user that notes are attributed to when a request does not name one.
pub const MOCK_USER_ID: &str = "65f1c0ffee0123456789ab10";

/// The organization that owns every seeded call (the spec's example).
const ORGANIZATION_ID: &str = "65f1c0ffee0123456789ab00";

/// The campaigns seeded calls after the first three belong to (all but one in six of them); the
/// first is the second seeded call's.
pub const SEED_CAMPAIGN_IDS: [&str; 5] = [
    "65f1c0ffee0123456789ab30",
    "65f1c0ffee0123456789ab31",
    "65f1c0ffee0123456789ab32",
    "65f1c0ffee0123456789ab33",
    "65f1c0ffee0123456789ab34",
];

/// Tags that seeded calls after the first three gain (five calls in seven get one), beside their
/// model call's `carrier`/`load-booking` or `campaign`/`appointment`.
pub const SEED_EXTRA_TAGS: [&str; 5] =
    ["priority", "reefer", "follow-up", "spanish", "after-hours"];

/// Seeded calls after the first three were created in the 60 days before this instant (RFC 3339),
/// the day the first three were made; their times are scattered, so that the order by creation is
/// not the order of the ids.
pub const SEED_DATES_END: &str = "2024-03-13T00:00:00Z";

/// [`SEED_DATES_END`] in seconds since the Unix epoch.
const SEED_DATES_END_SECS: i64 = 1_710_288_000;

/// The span of the seeded dates, in seconds.
const SEED_DATES_SPAN_SECS: u64 = 60 * 86_400;

/// The id of the `index`-th seeded call (0-based): 24 lowercase hex digits, counting up from
/// [`FIRST_CALL_ID`].
pub fn call_id(index: usize) -> String {
    // FIRST_CALL_ID is "65f1c0ffee" followed by the 14 hex digits of this number.
    const FIRST_TAIL: u64 = 0x0001_2345_6789_abcd;
    format!("65f1c0ffee{:014x}", FIRST_TAIL + index as u64)
}

/// The calls the mock starts with, `count` of them, ids from [`call_id`].
pub fn calls(count: usize) -> Vec<Call> {
    (0..count).map(seeded_call).collect()
}

fn ts(text: &str) -> Timestamp {
    Timestamp::from_raw(text)
}

fn object(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn note(call_index: usize, n: usize, user: &str, content: &str, flagged: bool, at: &str) -> Note {
    Note {
        id: Some(format!("65f1d0c0de{:014x}", call_index * 16 + n)),
        user_id: Some(user.to_string()),
        content: Some(content.to_string()),
        flagged: Some(flagged),
        created_at: Some(ts(at)),
    }
}

/// The `index`-th (0-based) call the mock seeds, as it holds it when it starts: what
/// [`MockServerBuilder::seed_calls`](crate::MockServerBuilder::seed_calls) starts with, and a
/// realistic call to give [`MockServer::add_call`](crate::MockServer::add_call): an `index` past
/// the seeded ones has an id none of them has (the ids count up from [`FIRST_CALL_ID`]), or give it
/// an `id` of your own.
pub fn seeded_call(index: usize) -> Call {
    let mut call = match index % 3 {
        0 => inbound_completed(index),
        1 => outbound_scheduled(index),
        _ => chat_transferred(index),
    };
    if index >= 3 {
        // Later calls cycle through every status, provider and language so that clients meet them
        // all; the three written out above keep theirs.
        let round = index / 3;
        call.status = Some(CallStatus::from(
            CallStatus::KNOWN[index % CallStatus::KNOWN.len()],
        ));
        call.provider = Some(CallProvider::from(
            CallProvider::KNOWN[round % CallProvider::KNOWN.len()],
        ));
        call.language = Some(Language::from(
            Language::KNOWN[index % Language::KNOWN.len()],
        ));
        call.created = Some(ts(&seeded_created(index)));
        vary_for_filters(&mut call, index);
    }
    call
}

/// The creation time of the `index`-th seeded call (from the fourth on): within the 60 days before
/// [`SEED_DATES_END`], scattered by a multiplier prime to the span, so that no two calls below
/// five million share a second.
fn seeded_created(index: usize) -> String {
    let back = (index as u64).wrapping_mul(1_000_003) % SEED_DATES_SPAN_SECS;
    // The span is 60 days: `back` always fits.
    rfc3339(SEED_DATES_END_SECS - i64::try_from(back).unwrap_or(0))
}

/// `secs` since the Unix epoch as RFC 3339 in UTC, `2024-03-13T00:00:00Z`.
fn rfc3339(secs: i64) -> String {
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day number.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        (of_day / 60) % 60,
        of_day % 60
    )
}

/// Makes a copy of one of the first three calls differ in what a listing filters and searches on:
/// the campaign, an extra tag, the phone numbers and the extracted values.
fn vary_for_filters(call: &mut Call, index: usize) {
    call.campaign_id =
        (index % 6 != 5).then(|| SEED_CAMPAIGN_IDS[index % SEED_CAMPAIGN_IDS.len()].to_string());
    if let Some(metadata) = call.metadata.as_mut() {
        if let Some(tag) = SEED_EXTRA_TAGS.get(index % 7) {
            metadata
                .tags
                .get_or_insert_with(Vec::new)
                .push((*tag).to_string());
        }
        match index % 3 {
            0 => metadata.from = Some(format!("+1312555{:04}", index % 10_000)),
            1 => metadata.to = Some(format!("+5255{:08}", index % 100_000_000)),
            _ => {}
        }
    }
    if let Some(extraction) = call.extraction.as_mut() {
        if extraction.contains_key("agreed_rate") {
            let rate = 1500 + (index * 37) % 900;
            extraction.insert("agreed_rate".to_string(), Value::from(rate.to_string()));
        }
        if extraction.contains_key("tracking_number") {
            extraction.insert(
                "tracking_number".to_string(),
                Value::from(format!("DE-{index:05}-X")),
            );
        }
    }
}

/// The fully populated one: an inbound phone call that went well, with notes, ratings and costs.
fn inbound_completed(index: usize) -> Call {
    Call {
        id: call_id(index),
        organization_id: Some(ORGANIZATION_ID.to_string()),
        type_: Some(CallType::Inbound),
        status: Some(CallStatus::Completed),
        provider: Some(CallProvider::Twilio),
        metadata: Some(CallMetadata {
            call_sid: Some("CA0123456789abcdef0123456789abcdef".to_string()),
            from: Some("+13125550142".to_string()),
            to: Some("+18005550199".to_string()),
            recording_sid: Some("RE0123456789abcdef0123456789abcdef".to_string()),
            tags: Some(vec!["carrier".to_string(), "load-booking".to_string()]),
            custom: object(json!({
                "load_id": "LD-20240313-0042",
                "carrier_mc": "MC-118734",
                "priority": 2,
                "temperature_controlled": true,
                "stops": [
                    { "city": "Chicago, IL", "window": "08:00-10:00" },
                    { "city": "Dallas, TX", "window": "14:00-18:00" }
                ]
            })),
        }),
        use_case: Some(UseCase {
            id: Some("65f1c0ffee0123456789ab01".to_string()),
            organization_id: Some(ORGANIZATION_ID.to_string()),
            model: Some("gpt-4o".to_string()),
            name: Some("Inbound carrier sales".to_string()),
            transfer_number: Some("+13125550100".to_string()),
            extract_with_ai: Some(vec![
                ExtractionField {
                    name: Some("agreed_rate".to_string()),
                    description: Some(
                        "The rate in USD the carrier agreed to haul the load for.".to_string(),
                    ),
                    type_: Some("string".to_string()),
                    example: Some("1850".to_string()),
                    required: Some(true),
                },
                ExtractionField {
                    name: Some("pickup_time".to_string()),
                    description: Some("When the driver will be at the shipper.".to_string()),
                    type_: Some("string".to_string()),
                    example: Some("2024-03-14T08:30:00-05:00".to_string()),
                    required: Some(false),
                },
            ]),
            classification_tags: Some(vec![
                ClassificationTag {
                    name: Some("booked".to_string()),
                    description: Some(
                        "The carrier accepted the load at an agreed rate.".to_string(),
                    ),
                },
                ClassificationTag {
                    name: Some("not_interested".to_string()),
                    description: Some("The carrier declined the load.".to_string()),
                },
            ]),
            language: Some(Language::EnUs),
            detailed_work_hours: object(json!({
                "monday": { "start": "07:00", "end": "19:00" },
                "saturday": { "start": "09:00", "end": "13:00" },
                "sunday": null
            })),
            work_start: Some("07:00".to_string()),
            work_end: Some("19:00".to_string()),
            timezone: Some("America/Chicago".to_string()),
            generic_after_hours_message: Some(
                "Our team is offline right now; we will call you back first thing in the morning."
                    .to_string(),
            ),
            enable_detailed_work_hours: Some(true),
            keywords: Some(vec![
                "reefer".to_string(),
                "dry van".to_string(),
                "lumper".to_string(),
                "MC number".to_string(),
            ]),
            hooks: Some(vec![Hook {
                url: Some("https://tms.example.com/webhooks/happyrobot".to_string()),
                headers: Some(vec![HookHeader {
                    key: Some("x-tms-tenant".to_string()),
                    value: Some("acme-logistics".to_string()),
                }]),
            }]),
            params: object(json!({ "max_rate_usd": 2100, "min_margin_pct": 12.5 })),
            amd: Some(true),
            amd_behavior: Some(AmdBehavior::Hangup),
            amd_messages: object(json!({
                "en-US": "Hi, this is Kate from Acme Logistics about load LD-20240313-0042. Please call us back."
            })),
            sample_labels: Some(vec![SampleLabel {
                name: Some("great negotiation".to_string()),
                color: Some(LabelColor::Slate),
            }]),
            hidden: Some(false),
            evaluation_models: Some(vec!["gpt-4o-mini".to_string()]),
            max_duration_mins: Some(15),
            recorded_message_inbound: Some(true),
            recorded_message_outbound: Some(false),
            show_original_caller_id: Some(true),
            disable_end_call_after_n_reminders: Some(false),
        }),
        prompt_id: Some("65f1c0ffee0123456789ab03".to_string()),
        agent: Some(Agent {
            id: Some("65f1c0ffee0123456789ab02".to_string()),
            name: Some("Kate".to_string()),
        }),
        language: Some(Language::EnUs),
        params: object(json!({ "load_id": "LD-20240313-0042", "lane": "CHI-DAL" })),
        extraction: object(json!({
            "agreed_rate": "1850",
            "pickup_time": "2024-03-14T08:30:00-05:00"
        })),
        classification: Some(Classification {
            tag: Some("booked".to_string()),
            reasoning: Some(
                "The carrier accepted 1850 USD and confirmed an 08:30 pickup.".to_string(),
            ),
        }),
        created: Some(ts("2024-03-13T15:04:05Z")),
        duration: Some(187.4),
        viewed_by: Some(vec![
            "jsmith@example.com".to_string(),
            "mgarcia@example.com".to_string(),
        ]),
        parent_call_id: None,
        notes: Some(vec![
            note(
                index,
                0,
                "65f1c0ffee0123456789ab11",
                "Carrier asked for a lumper receipt at delivery.",
                false,
                "2024-03-13T15:10:00Z",
            ),
            note(
                index,
                1,
                "65f1c0ffee0123456789ab12",
                "Rate is above the lane average: check with the shipper before confirming.",
                true,
                "2024-03-13T15:12:30Z",
            ),
        ]),
        samples: Some(vec!["65f1c0ffee0123456789ab20".to_string()]),
        ratings: Some(vec![Rating {
            emoji: Some(RatingEmoji::CheckMark),
            email: Some("jsmith@example.com".to_string()),
            created: Some(ts("2024-03-13T16:00:00Z")),
        }]),
        scheduled_for: None,
        use_backup: Some(false),
        wait_until_awake: Some(false),
        campaign_id: None,
        max_duration_mins: Some(15),
        transfer_contact_email: None,
        costs: Some(CallCosts {
            created: Some(ts("2024-03-13T15:07:30Z")),
            total_costs: Some(0.4125),
            voip: Some(VoipCosts {
                external: Some(false),
                amd_cost: Some(0.0075),
                call_cost: Some(0.0425),
                total_cost: Some(0.05),
                pricing_id: Some("voip-twilio-us-2024".to_string()),
            }),
            transcriber: Some(ComponentCosts {
                total_cost: Some(0.0725),
                pricing_id: Some("stt-en-2024".to_string()),
            }),
            llm: Some(LlmCosts {
                input_cost: Some(0.12),
                output_cost: Some(0.06),
                total_cost: Some(0.18),
                input_pricing_id: Some("gpt-4o-input-2024".to_string()),
                output_pricing_id: Some("gpt-4o-output-2024".to_string()),
            }),
            tts: Some(ComponentCosts {
                total_cost: Some(0.11),
                pricing_id: Some("tts-en-2024".to_string()),
            }),
            per_minute: object(
                json!({ "voip": 0.016, "transcriber": 0.023, "llm": 0.058, "tts": 0.035 }),
            ),
        }),
    }
}

/// An outbound call in a campaign, scheduled for later: the scheduling fields, no costs yet.
fn outbound_scheduled(index: usize) -> Call {
    Call {
        id: call_id(index),
        organization_id: Some(ORGANIZATION_ID.to_string()),
        type_: Some(CallType::Outbound),
        status: Some(CallStatus::Scheduled),
        provider: Some(CallProvider::Twilio),
        metadata: Some(CallMetadata {
            call_sid: None,
            from: Some("+525550001234".to_string()),
            to: Some("+525512345678".to_string()),
            recording_sid: None,
            tags: Some(vec!["campaign".to_string(), "appointment".to_string()]),
            custom: None,
        }),
        use_case: Some(UseCase {
            id: Some("65f1c0ffee0123456789ab04".to_string()),
            organization_id: Some(ORGANIZATION_ID.to_string()),
            model: Some("gpt-4o-mini".to_string()),
            name: Some("Confirmación de citas".to_string()),
            language: Some(Language::EsMx),
            timezone: Some("America/Mexico_City".to_string()),
            work_start: Some("09:00".to_string()),
            work_end: Some("18:00".to_string()),
            amd: Some(true),
            amd_behavior: Some(AmdBehavior::Continue),
            max_duration_mins: Some(5),
            ..UseCase::default()
        }),
        prompt_id: None,
        agent: Some(Agent {
            id: Some("65f1c0ffee0123456789ab05".to_string()),
            name: Some("Lucía".to_string()),
        }),
        language: Some(Language::EsMx),
        params: object(json!({ "appointment": "2024-03-20T10:00:00-06:00", "clinic": "Polanco" })),
        extraction: None,
        classification: None,
        created: Some(ts("2024-03-13T18:20:00Z")),
        duration: None,
        viewed_by: Some(Vec::new()),
        parent_call_id: None,
        notes: Some(Vec::new()),
        samples: None,
        ratings: None,
        scheduled_for: Some(ts("2024-03-19T16:00:00Z")),
        use_backup: Some(true),
        wait_until_awake: Some(true),
        campaign_id: Some("65f1c0ffee0123456789ab30".to_string()),
        max_duration_mins: Some(5),
        transfer_contact_email: None,
        costs: None,
    }
}

/// A chat that a person took over: a repeat of the first call, transferred, rated badly.
fn chat_transferred(index: usize) -> Call {
    Call {
        id: call_id(index),
        organization_id: Some(ORGANIZATION_ID.to_string()),
        type_: Some(CallType::Inbound),
        status: Some(CallStatus::Transferred),
        provider: Some(CallProvider::Chat),
        metadata: Some(CallMetadata {
            call_sid: None,
            from: None,
            to: None,
            recording_sid: None,
            tags: Some(Vec::new()),
            custom: None,
        }),
        use_case: Some(UseCase {
            id: Some("65f1c0ffee0123456789ab06".to_string()),
            organization_id: Some(ORGANIZATION_ID.to_string()),
            model: Some("gpt-4o".to_string()),
            name: Some("Sendungsverfolgung".to_string()),
            language: Some(Language::DeDe),
            transfer_number: Some("+4930123456789".to_string()),
            ..UseCase::default()
        }),
        prompt_id: Some("65f1c0ffee0123456789ab07".to_string()),
        agent: Some(Agent {
            id: Some("65f1c0ffee0123456789ab08".to_string()),
            name: Some("Max".to_string()),
        }),
        language: Some(Language::DeDe),
        params: None,
        extraction: object(json!({ "tracking_number": "DE-88412-X" })),
        classification: Some(Classification {
            tag: Some("escalated".to_string()),
            reasoning: Some("The customer asked for a person twice.".to_string()),
        }),
        created: Some(ts("2024-03-13T09:45:12.250Z")),
        duration: Some(412.0),
        viewed_by: Some(vec!["support.lead@example.com".to_string()]),
        parent_call_id: Some(FIRST_CALL_ID.to_string()),
        notes: Some(vec![note(
            index,
            0,
            MOCK_USER_ID,
            "Kunde wartet seit drei Tagen auf die Zustellung.",
            true,
            "2024-03-13T10:02:00Z",
        )]),
        samples: Some(Vec::new()),
        ratings: Some(vec![
            Rating {
                emoji: Some(RatingEmoji::ThumbsDown),
                email: Some("support.lead@example.com".to_string()),
                created: Some(ts("2024-03-13T11:00:00Z")),
            },
            Rating {
                emoji: Some(RatingEmoji::RotatingLight),
                email: Some("qa@example.com".to_string()),
                created: Some(ts("2024-03-13T11:30:00Z")),
            },
        ]),
        scheduled_for: None,
        use_backup: None,
        wait_until_awake: None,
        campaign_id: None,
        max_duration_mins: None,
        transfer_contact_email: Some("support.lead@example.com".to_string()),
        costs: Some(CallCosts {
            created: Some(ts("2024-03-13T10:00:00Z")),
            total_costs: Some(0.09),
            llm: Some(LlmCosts {
                total_cost: Some(0.09),
                ..LlmCosts::default()
            }),
            ..CallCosts::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_24_hex_and_start_at_the_spec_example() {
        assert_eq!(call_id(0), FIRST_CALL_ID);
        let ids: Vec<String> = calls(40).into_iter().map(|c| c.id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 40);
        for id in &ids {
            assert_eq!(id.len(), 24, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
    }

    #[test]
    fn every_field_of_the_spec_is_set_in_some_seeded_call() {
        // `happyrobot.yaml` links to the workspace's spec and is copied into the package, so that
        // this test also compiles from the published crate.
        let spec: serde_yaml::Value = serde_yaml::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/happyrobot.yaml"
        )))
        .unwrap();
        let properties = |schema: &str| -> Vec<String> {
            spec["components"]["schemas"][schema]["properties"]
                .as_mapping()
                .unwrap()
                .keys()
                .map(|k| k.as_str().unwrap().to_string())
                .collect()
        };
        let values: Vec<serde_json::Value> = calls(3)
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        // Each object schema, with where to find its instances in a serialized call.
        type Find = fn(&serde_json::Value) -> Vec<&serde_json::Value>;
        let places: [(&str, Find); 13] = [
            ("Call", |c| vec![c]),
            ("CallMetadata", |c| vec![&c["metadata"]]),
            ("UseCase", |c| vec![&c["use_case"]]),
            ("Agent", |c| vec![&c["agent"]]),
            ("Classification", |c| vec![&c["classification"]]),
            ("Note", |c| {
                c["notes"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default()
            }),
            ("Rating", |c| {
                c["ratings"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default()
            }),
            ("CallCosts", |c| vec![&c["costs"]]),
            ("VoipCosts", |c| vec![&c["costs"]["voip"]]),
            ("LlmCosts", |c| vec![&c["costs"]["llm"]]),
            ("ComponentCosts", |c| {
                vec![&c["costs"]["tts"], &c["costs"]["transcriber"]]
            }),
            ("Hook", |c| {
                c["use_case"]["hooks"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default()
            }),
            ("ExtractionField", |c| {
                c["use_case"]["extract_with_ai"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default()
            }),
        ];
        for (schema, find) in places {
            for field in properties(schema) {
                assert!(
                    values.iter().flat_map(find).any(|v| !v[&field].is_null()),
                    "no seeded call sets {schema}.{field}"
                );
            }
        }
        assert_eq!(values[0]["ratings"][0]["emoji"], "✅");
        assert_eq!(
            values[0]["use_case"]["hooks"][0]["headers"][0]["key"],
            "x-tms-tenant"
        );
    }

    #[test]
    fn dates_are_rfc3339_and_spread_over_the_60_days_before_the_end() {
        assert_eq!(rfc3339(SEED_DATES_END_SECS), SEED_DATES_END);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        let end = Timestamp::from_raw(SEED_DATES_END).to_utc().unwrap();
        let many = calls(200);
        let mut days = std::collections::BTreeSet::new();
        for call in &many[3..] {
            let at = call.created.as_ref().unwrap();
            let utc = at.to_utc().unwrap();
            assert_eq!(
                Timestamp::from(utc).as_str(),
                at.as_str(),
                "canonical RFC 3339"
            );
            assert!(
                utc < end && end.timestamp() - utc.timestamp() <= 60 * 86_400,
                "{at:?}"
            );
            days.insert(at.as_str()[..10].to_string());
        }
        assert!(days.len() >= 50, "only {} distinct days", days.len());
        // The same on every start.
        assert_eq!(calls(200), many);
    }

    #[test]
    fn every_listing_filter_has_something_to_find() {
        let many = calls(60);
        let distinct = |values: Vec<Option<String>>| {
            values
                .into_iter()
                .flatten()
                .collect::<std::collections::BTreeSet<_>>()
        };
        let statuses = distinct(
            many.iter()
                .map(|c| c.status.as_ref().map(|v| v.to_string()))
                .collect(),
        );
        assert_eq!(statuses.len(), CallStatus::KNOWN.len());
        let types = distinct(
            many.iter()
                .map(|c| c.type_.as_ref().map(|v| v.to_string()))
                .collect(),
        );
        assert_eq!(types.len(), 2);
        let campaigns = distinct(many.iter().map(|c| c.campaign_id.clone()).collect());
        assert_eq!(
            campaigns,
            SEED_CAMPAIGN_IDS.iter().map(|c| c.to_string()).collect()
        );
        assert!(many.iter().any(|c| c.campaign_id.is_none()));
        let tags = distinct(
            many.iter()
                .flat_map(|c| {
                    c.metadata
                        .as_ref()
                        .and_then(|m| m.tags.clone())
                        .unwrap_or_default()
                })
                .map(Some)
                .collect(),
        );
        for tag in SEED_EXTRA_TAGS.iter().chain(&["carrier", "campaign"]) {
            assert!(tags.contains(*tag), "{tag}");
        }
        let use_cases = distinct(
            many.iter()
                .map(|c| c.use_case.as_ref().and_then(|u| u.id.clone()))
                .collect(),
        );
        assert_eq!(use_cases.len(), 3);
        let models = distinct(
            many.iter()
                .map(|c| c.use_case.as_ref().and_then(|u| u.model.clone()))
                .collect(),
        );
        assert_eq!(models.len(), 2);
        let phones = distinct(
            many.iter()
                .map(|c| c.metadata.as_ref().and_then(|m| m.from.clone()))
                .collect(),
        );
        assert!(phones.len() > 20);
        assert!(many.iter().any(|c| c.transfer_contact_email.is_some()));
        assert!(
            many.iter()
                .any(|c| c.ratings.as_ref().is_some_and(|r| !r.is_empty()))
        );
    }

    #[test]
    fn statuses_providers_and_languages_vary() {
        let many = calls(36);
        for (what, count) in [
            (
                "status",
                many.iter()
                    .filter_map(|c| c.status.as_ref().map(|v| v.as_str()))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
            ),
            (
                "provider",
                many.iter()
                    .filter_map(|c| c.provider.as_ref().map(|v| v.as_str()))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
            ),
            (
                "language",
                many.iter()
                    .filter_map(|c| c.language.as_ref().map(|v| v.as_str()))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
            ),
        ] {
            assert!(count >= 3, "only {count} distinct values of {what}");
        }
        assert_eq!(
            calls(3)
                .iter()
                .filter_map(|c| c.provider.as_ref().map(|v| v.as_str()))
                .collect::<Vec<_>>(),
            ["Twilio", "Twilio", "Chat"]
        );
    }
}
