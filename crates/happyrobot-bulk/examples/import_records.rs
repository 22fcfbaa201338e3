//! Imports notes built in memory against the project's mock server, prints each line's outcome
//! and the report, then runs the same import again to show that nothing is sent twice.
//!
//! `cargo run -p happyrobot-bulk --example import_records`

use happyrobot::{CallId, Client, NewNote};
use happyrobot_bulk::{Event, Import, JournalLocation, LineOutcome, NoteRecord, Source};
use happyrobot_mock::MockServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = MockServer::start().await?;
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .build()?;
    let records: Vec<NoteRecord> = server
        .call_ids()
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let call: CallId = id.parse()?;
            Ok(NoteRecord::new(
                call,
                NewNote::new(format!("QA sweep, call {}", i + 1)).flagged(i == 0),
            ))
        })
        .collect::<Result<_, happyrobot::Error>>()?;
    let journal = std::env::temp_dir().join(format!(
        "happyrobot-bulk-example-{}.journal",
        std::process::id()
    ));
    // Records carry their journal (one per batch); the import uses the input's own.
    let import = Import::new(client, JournalLocation::BesideInput).concurrency(4);

    for run in ["first run", "second run"] {
        println!("{run}:");
        let report = import
            .run(
                Source::records_with_journal(records.clone(), &journal),
                |event| {
                    if let Event::Line(line) = event {
                        let what = match &line.outcome {
                            LineOutcome::Added { note_id, .. } => {
                                format!("added as note {note_id}")
                            }
                            LineOutcome::AlreadyAdded { .. } => "already added".to_string(),
                            other => format!("{other:?}"),
                        };
                        println!("  line {} (call {}): {what}", line.line, line.call_id);
                    }
                },
            )
            .await?;
        println!(
            "  report: {} lines, {} added, {} skipped, {} failed, {} unknown",
            report.lines, report.added, report.skipped, report.failed, report.unknown
        );
    }
    println!("the mock holds {} new notes", server.created_note_count());
    let _ = std::fs::remove_file(&journal);
    Ok(())
}
