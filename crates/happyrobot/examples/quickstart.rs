//! Adds a note to a call and prints the call it returns.
//!
//! With `HAPPYROBOT_API_KEY` set, it talks to the real API (or to `HAPPYROBOT_BASE_URL`) and needs
//! `HAPPYROBOT_CALL_ID`, the 24-character ID of one of your calls. Without a key it starts the project's
//! mock server on 127.0.0.1 and adds the note there, so it works with no account and no network:
//!
//! ```sh
//! cargo run --example quickstart
//! HAPPYROBOT_API_KEY=... HAPPYROBOT_CALL_ID=... cargo run --example quickstart
//! ```

use std::process::ExitCode;

use happyrobot::{CallId, Client, NewNote};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The mock server lives as long as this binding: it stops when dropped.
    let mut _mock = None;
    let (client, call_id) = if std::env::var_os(happyrobot::API_KEY_ENV).is_some() {
        let client = Client::from_env()?;
        let call_id: CallId = std::env::var("HAPPYROBOT_CALL_ID")
            .map_err(|_| "set HAPPYROBOT_CALL_ID to the 24-character ID of one of your calls")?
            .parse()?;
        (client, call_id)
    } else {
        let mock = happyrobot_mock::MockServer::start().await?;
        eprintln!(
            "HAPPYROBOT_API_KEY is not set, so this runs against the mock server at {} \
             (set the key to use the real API)",
            mock.base_url()
        );
        let client = Client::builder()
            .api_key(mock.api_key())
            .base_url(mock.base_url())
            .build()?;
        let call_id: CallId = mock
            .call_ids()
            .first()
            .ok_or("the mock server has no calls")?
            .parse()?;
        _mock = Some(mock);
        (client, call_id)
    };

    println!("adding a note to call {call_id} at {}", client.base_url());
    let note = NewNote::new("Driver confirmed pickup").flagged(true);
    let response = client.add_note(&call_id, note).await?;
    println!(
        "HTTP {} (request ID {})",
        response.status(),
        response.request_id().unwrap_or("none")
    );

    // Every field but `id` may be missing from an answer: the API changes without notice.
    let call = response.into_inner();
    let shown = |value: Option<String>| value.unwrap_or_else(|| "?".to_string());
    let notes = call.notes.unwrap_or_default();
    println!(
        "call {} ({} {} call, {}) now has {} notes",
        call.id,
        shown(call.type_.map(|v| v.to_string())),
        shown(call.provider.map(|v| v.to_string())),
        shown(call.status.map(|v| v.to_string())),
        notes.len()
    );
    if let Some(added) = notes.last() {
        println!(
            "newest note {}: {:?} (flagged: {}, at {})",
            added.id.as_deref().unwrap_or("?"),
            added.content.as_deref().unwrap_or(""),
            added.flagged.unwrap_or(false),
            added.created_at.as_ref().map_or("?", |t| t.as_str()),
        );
    }
    Ok(())
}
