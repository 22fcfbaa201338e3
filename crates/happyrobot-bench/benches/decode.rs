//! Decoding and encoding cost of the models: the generated `Call` against `serde_json::Value` on the
//! same bytes, for a full call, a call with 500 notes and a drift-shaped call; and encoding a note.
//! Run with `cargo bench -p happyrobot-bench --bench decode` (or `cargo xtask bench`).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark fails by panicking, with the location"
)]

use divan::{Bencher, black_box};
use happyrobot::NewNote;
use happyrobot::types::Call;

const FULL: &str = include_str!("../../happyrobot/tests/fixtures/call_full.json");
const DRIFT_ENUMS: &str =
    include_str!("../../happyrobot/tests/fixtures/drift_unknown_enum_values.json");
const DRIFT_FIELDS: &str =
    include_str!("../../happyrobot/tests/fixtures/drift_unknown_fields.json");

fn main() {
    divan::main();
}

/// The full call with `notes` notes, as the API would send it.
fn with_notes(notes: usize) -> Vec<u8> {
    let mut call: serde_json::Value = serde_json::from_str(FULL).unwrap();
    let note = call["notes"][0].clone();
    call["notes"] = serde_json::Value::Array(
        (0..notes)
            .map(|i| {
                let mut n = note.clone();
                n["id"] = format!("65f1c0ffee01234567{i:06x}").into();
                n["content"] = format!("Note {i}: carrier called back about the load.").into();
                n
            })
            .collect(),
    );
    serde_json::to_vec(&call).unwrap()
}

/// A drift-shaped call: unknown enum values and unknown fields together.
fn drift() -> Vec<u8> {
    let mut call: serde_json::Value = serde_json::from_str(DRIFT_ENUMS).unwrap();
    let extra: serde_json::Value = serde_json::from_str(DRIFT_FIELDS).unwrap();
    for key in ["sentiment", "assistant"] {
        call[key] = extra[key].clone();
    }
    call["metadata"]["carrier_mc"] = extra["metadata"]["carrier_mc"].clone();
    serde_json::to_vec(&call).unwrap()
}

fn inputs(name: &str) -> Vec<u8> {
    match name {
        "full" => {
            serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(FULL).unwrap()).unwrap()
        }
        "notes_500" => with_notes(500),
        _ => drift(),
    }
}

#[divan::bench(args = ["full", "notes_500", "drift"])]
fn decode_typed(bencher: Bencher, input: &str) {
    let bytes = inputs(input);
    bencher
        .counter(divan::counter::BytesCount::of_slice(&bytes))
        .bench(|| serde_json::from_slice::<Call>(black_box(&bytes)).unwrap());
}

#[divan::bench(args = ["full", "notes_500", "drift"])]
fn decode_value(bencher: Bencher, input: &str) {
    let bytes = inputs(input);
    bencher
        .counter(divan::counter::BytesCount::of_slice(&bytes))
        .bench(|| serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap());
}

#[divan::bench]
fn encode_new_note(bencher: Bencher) {
    let note = NewNote::new("Driver confirmed pickup at dock 4.").flagged(true);
    bencher.bench(|| serde_json::to_vec(&black_box(&note).to_body().unwrap()).unwrap());
}
