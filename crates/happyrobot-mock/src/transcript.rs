//! `GET /calls/{id}/transcript`: a realistic conversation for every call, the same on every start.
//!
//! A carrier calls a freight broker's agent about a load: the agent greets, the carrier gives a
//! load number, the agent looks it up with a tool call, the tool answers, and the agent confirms
//! the pickup. The load number, the times and the carrier's name come from the call's ID and
//! creation time, so each call has its own transcript and a restart serves the same one.

use happyrobot_sdk::types::Call;
use serde_json::{Value, json};

/// The carriers who call, picked by the call's ID.
const CARRIERS: [&str; 4] = [
    "Blue Ridge Freight",
    "Lone Star Carriers",
    "Great Lakes Trucking",
    "Sierra Haulers",
];

/// The pickup cities, picked by the call's ID.
const CITIES: [(&str, &str); 4] = [
    ("Joliet, IL", "Dallas, TX"),
    ("Laredo, TX", "Atlanta, GA"),
    ("Fontana, CA", "Phoenix, AZ"),
    ("Savannah, GA", "Charlotte, NC"),
];

/// The transcript of `call`, as the API answers it.
pub(crate) fn of(call: &Call) -> Value {
    let seed = digest(&call.id);
    let load = 40_000 + seed % 10_000;
    let carrier = CARRIERS[usize::try_from(seed % 4).unwrap_or(0)];
    let (origin, destination) = CITIES[usize::try_from((seed / 4) % 4).unwrap_or(0)];
    let agent = call
        .agent
        .as_ref()
        .and_then(|agent| agent.name.clone())
        .unwrap_or_else(|| "Kate".to_string());
    let start_time = call
        .created
        .as_ref()
        .and_then(|created| created.to_utc())
        .map_or(1_710_288_000, |created| created.timestamp());
    let tool_call_id = format!("call_{:016x}", seed);
    let arguments = json!({ "reference_number": load.to_string() }).to_string();
    let tool_answer = json!({
        "reference_number": load.to_string(),
        "origin": origin,
        "destination": destination,
        "pickup": "tomorrow 08:00-10:00",
        "rate_usd": 1_850 + (seed % 9) * 50,
    })
    .to_string();
    json!({
        "id": format!("{:024x}", u128::from(seed) << 32 | 0x7472),
        "organization_id": call.organization_id,
        "call_id": call.id,
        "start_time": start_time,
        "messages": [
            {
                "id": "msg_0001",
                "role": "assistant",
                "content": format!(
                    "Thanks for calling Acme Logistics, this is {agent}. How can I help you today?"
                ),
                "start": 0.42,
                "end": 3.9,
                "discard": false,
            },
            {
                "id": "msg_0002",
                "role": "user",
                "content": format!(
                    "Hi {agent}, this is Sam with {carrier}. I'm calling about load {load}."
                ),
                "start": 4.6,
                "end": 8.15,
            },
            {
                "id": "msg_0003",
                "role": "assistant",
                "content": "Let me pull that up.",
                "tool_calls": [{
                    "type": "function",
                    "id": tool_call_id,
                    "function": { "name": "find_load", "arguments": arguments },
                }],
                "start": 8.9,
                "end": 10.1,
                "is_filler": true,
            },
            {
                "id": "msg_0004",
                "role": "tool",
                "name": "find_load",
                "tool_call_id": tool_call_id,
                "content": tool_answer,
                "start": 10.3,
                "end": 10.3,
            },
            {
                "id": "msg_0005",
                "role": "assistant",
                "content": format!(
                    "Load {load} picks up in {origin} tomorrow between 8 and 10 and delivers to \
                     {destination}. Can you confirm your driver will make the window?"
                ),
                "start": 10.8,
                "end": 17.25,
            },
            {
                "id": "msg_0006",
                "role": "user",
                "content": "Yes, driver confirmed pickup. He'll be there at 8:30.",
                "start": 18.0,
                "end": 21.4,
            },
            {
                "id": "msg_0007",
                "role": "assistant",
                "content": "Great, I've noted that. Thanks for calling, have a safe trip.",
                "start": 22.05,
                "end": 25.6,
            },
        ],
    })
}

/// FNV-1a of the call's ID: stable across runs and platforms.
fn digest(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_has_its_own_transcript_and_the_same_one_every_time() {
        let first = crate::seed::seeded_call(0);
        let second = crate::seed::seeded_call(1);
        assert_eq!(of(&first), of(&first));
        assert_ne!(of(&first)["messages"], of(&second)["messages"]);
        assert_eq!(of(&first)["call_id"], first.id.as_str());
        let transcript = of(&first);
        let roles: Vec<&str> = transcript["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(
            roles,
            [
                "assistant",
                "user",
                "assistant",
                "tool",
                "assistant",
                "user",
                "assistant"
            ]
        );
    }
}
