//! Syncs notes built in memory (one per load, keyed by the load's ID) against the project's mock
//! server: a plan shown before it is applied, then an edit and a removed load synced again (the
//! edit updated in place, the removed load's note pruned), then that last sync undone.
//!
//! `cargo run -p happyrobot-bulk --example sync_records`

use happyrobot::{CallId, Client, NewNote};
use happyrobot_bulk::{JournalLocation, NoteRecord, Source, Sync, SyncPlan};
use happyrobot_mock::MockServer;

/// The notes of the loads: (load ID, call, text).
fn records(loads: &[(&str, &CallId, &str)]) -> Source {
    Source::records(
        loads.iter().map(|(load, call, text)| {
            NoteRecord::new((*call).clone(), NewNote::new(*text)).key(*load)
        }),
    )
}

fn show(title: &str, plan: &SyncPlan) {
    println!("{title}:");
    for row in &plan.rows {
        println!(
            "  {:<9} {} on call {}: {:?}",
            row.action.as_str(),
            row.key,
            row.call_id,
            row.new
                .as_ref()
                .or(row.old.as_ref())
                .map_or("", |t| t.content.as_str())
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = MockServer::start().await?;
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .build()?;
    let calls: Vec<CallId> = server
        .call_ids()
        .iter()
        .map(|id| id.parse())
        .collect::<Result<_, _>>()?;
    let journal = std::env::temp_dir().join(format!(
        "happyrobot-bulk-sync-example-{}.journal",
        std::process::id()
    ));
    let sync = Sync::new(client, JournalLocation::path(&journal)).prune(true);

    let first = records(&[
        ("L-1001", &calls[0], "Driver confirmd pickup"),
        ("L-1002", &calls[1], "Dock 4, door 12"),
        ("L-1003", &calls[1], "Lumper receipt needed"),
    ]);
    let plan = sync.plan(&first).await?;
    show("plan (nothing sent yet)", &plan);
    let report = sync.apply(&first, plan, |_| {}).await?;
    println!("applied: {} added\n", report.added);

    // The typo fixed; L-1003 gone.
    let edited = records(&[
        ("L-1001", &calls[0], "Driver confirmed pickup"),
        ("L-1002", &calls[1], "Dock 4, door 12"),
    ]);
    let plan = sync.plan(&edited).await?;
    show("plan after the edit", &plan);
    let report = sync.apply(&edited, plan, |_| {}).await?;
    println!(
        "applied: {} updated, {} deleted, {} unchanged\n",
        report.updated, report.deleted, report.unchanged
    );

    let report = sync.undo(&edited, |_| {}).await?;
    println!(
        "undone: {} updated back, {} added back",
        report.updated, report.added
    );
    println!(
        "the mock holds {} notes made through the API",
        server.created_note_count()
    );
    let _ = std::fs::remove_file(&journal);
    Ok(())
}
