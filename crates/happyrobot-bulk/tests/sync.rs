//! `Sync` against the mock: a sheet as the desired state, planned with reads only, applied
//! exactly once per row through faults, kills and lost journals, and undone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use happyrobot::{CallId, Client, NewNote, NoteChanges, NoteId};
use happyrobot_bulk::{
    BulkErrorKind, Event, JournalLocation, NoteRecord, RowStatus, Source, Sync, SyncAction,
    SyncReport,
};
use happyrobot_mock::{Fault, LateAnswer, MockServer};

/// A sheet row: key, call (an index among the mock's calls), text, flag.
type Row<'a> = (&'a str, usize, &'a str, Option<bool>);

struct Sheet {
    server: MockServer,
    dir: PathBuf,
    file: PathBuf,
    /// The seeded notes' IDs: not the test's.
    seeded: Vec<String>,
}

impl Sheet {
    async fn new(name: &str) -> Self {
        let server = MockServer::builder().seed_calls(6).start().await.unwrap();
        let dir = common::temp_dir(name);
        let file = dir.join("review.csv");
        let seeded = server
            .call_ids()
            .iter()
            .flat_map(|call| server.notes(call))
            .filter_map(|n| n.id)
            .collect();
        Self {
            server,
            dir,
            file,
            seeded,
        }
    }

    fn call(&self, index: usize) -> String {
        self.server.call_ids()[index].clone()
    }

    /// Writes the sheet with a `row_id` key column.
    fn write(&self, rows: &[Row<'_>]) {
        let mut text = String::from("row_id,call_id,content,flagged\n");
        for (key, call, content, flag) in rows {
            let flag = flag.map(|f| f.to_string()).unwrap_or_default();
            text.push_str(&format!("{key},{},{content},{flag}\n", self.call(*call)));
        }
        std::fs::write(&self.file, text).unwrap();
    }

    fn sync(&self) -> Sync {
        Sync::new(common::client(&self.server), JournalLocation::BesideInput)
            .key_column("row_id")
            .state_dir(Some(self.dir.join("state")))
    }

    fn source(&self) -> Source {
        Source::file(&self.file)
    }

    /// An import of the file, with its journal beside it.
    fn import(&self) -> happyrobot_bulk::Import {
        happyrobot_bulk::Import::new(common::client(&self.server), JournalLocation::BesideInput)
            .state_dir(Some(self.dir.join("state")))
    }

    /// The file as an import reads it (the key column is not the import's).
    fn loose(&self) -> Source {
        self.source()
            .read_options(happyrobot_bulk::ReadOptions::new().ignore_other_columns(true))
    }

    /// A client that gives up on an answer after a second and settles a look-up in 200 ms, for
    /// the tests of answers that never come.
    fn quick_client(&self) -> happyrobot::ClientBuilder {
        Client::builder()
            .api_key(self.server.api_key())
            .base_url(self.server.base_url())
            .timeout(Duration::from_secs(1))
            .reconcile_settle(Duration::from_millis(200))
    }

    /// The next `count` requests are carried out `apply_after` after they arrived; their answers
    /// never come.
    fn apply_late(&self, apply_after: Duration, count: usize) {
        let fault = Fault::LateApply {
            answer_after: Duration::from_secs(5),
            answer: LateAnswer::Drop,
            apply_after,
        };
        self.server.inject(fault, count);
    }

    async fn run(&self, sync: &Sync) -> SyncReport {
        sync.run(&self.source(), |_| {}).await.unwrap()
    }

    /// The notes on call `index` that the mock was not seeded with.
    fn held(&self, index: usize) -> Vec<happyrobot::types::Note> {
        self.server
            .notes(&self.call(index))
            .into_iter()
            .filter(|n| n.id.as_ref().is_none_or(|id| !self.seeded.contains(id)))
            .collect()
    }

    /// How many notes with each text the test added, on every call.
    fn by_text(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for index in 0..self.server.call_ids().len() {
            for note in self.held(index) {
                *counts.entry(note.content.unwrap_or_default()).or_default() += 1;
            }
        }
        counts
    }

    /// The texts on call `index`, sorted, with their flags.
    fn notes(&self, index: usize) -> Vec<(String, bool)> {
        let mut notes: Vec<(String, bool)> = self
            .held(index)
            .into_iter()
            .map(|n| (n.content.unwrap_or_default(), n.flagged.unwrap_or(false)))
            .collect();
        notes.sort();
        notes
    }

    /// Undoes once more after an undo: nothing is left, nothing is sent.
    async fn undo_again_changes_nothing(&self, sync: &Sync) {
        let writes = self.writes();
        let again = sync.undo(&self.source(), |_| {}).await.unwrap();
        assert_eq!((again.rows.len(), self.writes()), (0, writes), "{again:?}");
    }

    fn writes(&self) -> usize {
        let counts = self.server.operation_counts();
        counts.add_note + counts.update_note + counts.delete_note
    }
}

/// Kills `run` 400 ms in: the future is dropped, as a killed process's requests are. Its aborted
/// tasks go when the runtime next runs them, and their hold on the journal with them (a killed
/// process's goes at once): waited for.
async fn kill<T>(run: impl std::future::Future<Output = T>) {
    let killed = tokio::time::timeout(Duration::from_millis(400), run).await;
    assert!(killed.is_err(), "it ended before it was killed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn actions(plan: &happyrobot_bulk::SyncPlan) -> Vec<(Option<u64>, SyncAction)> {
    plan.rows.iter().map(|r| (r.line, r.action)).collect()
}

const THREE: [Row<'static>; 3] = [
    ("r1", 0, "Driver confirmd pickup", None),
    ("r2", 1, "Dock 4", Some(false)),
    ("r3", 2, "Call back at 5", None),
];

#[tokio::test]
async fn a_plan_sends_nothing_and_a_run_does_what_it_said() {
    let sheet = Sheet::new("sync-plan").await;
    sheet.write(&THREE);
    let sync = sheet.sync();
    let plan = sync.plan(&sheet.source()).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            (Some(2), SyncAction::Add),
            (Some(3), SyncAction::Add),
            (Some(4), SyncAction::Add)
        ]
    );
    assert_eq!(plan.calls_read, 3);
    assert_eq!(sheet.writes(), 0, "a plan only reads");
    assert!(
        !sheet.dir.join("review.csv.sync.journal").exists(),
        "a plan writes nothing"
    );

    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.added, report.failed, report.unknown), (3, 0, 0));
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmd pickup".to_string(), false)]
    );

    // A rerun reads and sends nothing.
    let reads = sheet.server.operation_counts().get_call;
    let report = sheet.run(&sync).await;
    assert_eq!((report.added, report.unchanged), (0, 3));
    assert_eq!(sheet.writes(), 3);
    assert_eq!(sheet.server.operation_counts().get_call, reads + 3);
}

#[tokio::test]
async fn edits_update_in_place_and_removed_rows_are_kept_or_pruned() {
    let sheet = Sheet::new("sync-edit").await;
    sheet.write(&THREE);
    let sync = sheet.sync();
    sheet.run(&sync).await;
    let id_before = sheet.held(0)[0].id.clone();
    // A note written by hand, with the same text as a row that will be removed.
    let client = common::client(&sheet.server);
    let call2: CallId = sheet.call(2).parse().unwrap();
    client
        .add_note(&call2, NewNote::new("Call back at 5"))
        .await
        .unwrap();

    // The typo fixed, a flag set, row 3 removed.
    sheet.write(&[
        ("r1", 0, "Driver confirmed pickup", None),
        ("r2", 1, "Dock 4", Some(true)),
    ]);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            (Some(2), SyncAction::Update),
            (Some(3), SyncAction::Update),
            (None, SyncAction::Keep)
        ]
    );
    assert_eq!(
        plan.rows[0].old.as_ref().unwrap().content,
        "Driver confirmd pickup"
    );
    let adds = sheet.server.operation_counts().add_note;
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.updated, report.kept), (2, 1));
    assert_eq!(sheet.server.operation_counts().add_note, adds, "no POST");
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmed pickup".to_string(), false)]
    );
    assert_eq!(sheet.held(0)[0].id, id_before, "the same note");
    assert_eq!(sheet.notes(1), [("Dock 4".to_string(), true)]);
    assert_eq!(sheet.notes(2).len(), 2, "kept, and the hand-written one");

    let report = sheet.run(&sheet.sync().prune(true)).await;
    assert_eq!(report.deleted, 1);
    assert_eq!(
        sheet.notes(2),
        [("Call back at 5".to_string(), false)],
        "the hand-written one stays"
    );
}

#[tokio::test]
async fn an_update_that_may_have_gone_through_before_a_long_retry_after_stops_the_run_unknown() {
    let sheet = Sheet::new("sync-maybe").await;
    sheet.write(&THREE);
    let sync = sheet.sync();
    sheet.run(&sync).await;
    sheet.write(&[
        ("r1", 0, "Driver confirmed pickup", None),
        ("r2", 1, "Dock 4", Some(false)),
        ("r3", 2, "Call back at 5", None),
    ]);
    // A program that names the client's max_retry_after its own way, in the results file too.
    let results = sheet.dir.join("review.results.csv");
    let sync = sync
        .results_file(&results)
        .option_names(|option| match option {
            happyrobot_bulk::BulkOption::MaxRetryAfter => Some("--max-retry-after"),
            _ => None,
        });
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // The update goes through, its answer lost; its retry is asked to wait longer than the
    // client's max_retry_after.
    sheet.server.inject(Fault::SaveThenDrop, 1);
    sheet.server.inject(
        Fault::RateLimited {
            retry_after_secs: 120,
        },
        1,
    );
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(
        (report.updated, report.unknown),
        (0, 1),
        "{:?}",
        report.rows
    );
    assert!(
        matches!(
            report.stopped,
            Some(happyrobot_bulk::Stop::RetryAfterTooLong(_))
        ),
        "{:?}",
        report.stopped
    );
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmed pickup".to_string(), false)],
        "it went through"
    );
    let written = std::fs::read_to_string(&results).unwrap();
    let row = written.lines().find(|row| row.contains(",unknown,"));
    assert!(
        row.is_some_and(|row| row.contains("--max-retry-after (30 s)")),
        "{written}"
    );
    assert!(!written.contains("max_retry_after"), "{written}");
}

#[tokio::test]
async fn a_key_column_holds_two_notes_on_one_call_and_a_key_moves() {
    let sheet = Sheet::new("sync-keys").await;
    sheet.write(&[("a", 0, "First", None), ("b", 0, "Second", None)]);
    let sync = sheet.sync();
    sheet.run(&sync).await;
    assert_eq!(sheet.notes(0).len(), 2);
    // Key b moves to call 1.
    sheet.write(&[("a", 0, "First", None), ("b", 1, "Second", None)]);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    let mut moved: Vec<SyncAction> = plan.rows.iter().map(|r| r.action).collect();
    moved.sort_by_key(|a| a.as_str());
    assert_eq!(
        moved,
        [SyncAction::Add, SyncAction::Delete, SyncAction::Unchanged]
    );
    sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(sheet.notes(0), [("First".to_string(), false)]);
    assert_eq!(sheet.notes(1), [("Second".to_string(), false)]);
    assert!(sync.plan(&sheet.source()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_call_twice_without_a_key_column_is_refused_naming_it() {
    let sheet = Sheet::new("sync-twice").await;
    sheet.write(&[("a", 0, "First", None), ("b", 0, "Second", None)]);
    let sync =
        Sync::new(common::client(&sheet.server), JournalLocation::BesideInput).state_dir(None);
    // Without the key column, row_id is another column: let it through.
    let source = sheet
        .source()
        .read_options(happyrobot_bulk::ReadOptions::new().ignore_other_columns(true));
    let error = sync.plan(&source).await.unwrap_err();
    assert_eq!(error.kind(), BulkErrorKind::InvalidInput);
    assert!(
        error.line_errors()[0]
            .message()
            .contains("Sync::key_column"),
        "{error:?}"
    );
    assert_eq!(sheet.server.operation_counts().get_call, 0, "nothing read");
}

#[tokio::test]
async fn notes_changed_or_deleted_by_hand_are_put_back() {
    let sheet = Sheet::new("sync-hand").await;
    sheet.write(&THREE);
    let sync = sheet.sync();
    sheet.run(&sync).await;
    let client = common::client(&sheet.server);
    let call0: CallId = sheet.call(0).parse().unwrap();
    let call1: CallId = sheet.call(1).parse().unwrap();
    let note0 = NoteId::new(sheet.held(0)[0].id.clone().unwrap()).unwrap();
    let note1 = NoteId::new(sheet.held(1)[0].id.clone().unwrap()).unwrap();
    client
        .update_note(
            &call0,
            &note0,
            NoteChanges::new().content("edited in the app"),
        )
        .await
        .unwrap();
    client.delete_note(&call1, &note1).await.unwrap();
    let plan = sync.plan(&sheet.source()).await.unwrap();
    assert_eq!(plan.rows[0].action, SyncAction::Update);
    assert!(
        plan.rows[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("changed in the app")
    );
    assert_eq!(plan.rows[1].action, SyncAction::Add);
    assert!(
        plan.rows[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("deleted in the app")
    );
    sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmd pickup".to_string(), false)]
    );
    assert_eq!(sheet.notes(1), [("Dock 4".to_string(), false)]);
}

#[tokio::test]
async fn answers_lost_after_the_change_converge_to_one_note_a_row() {
    let sheet = Sheet::new("sync-faults").await;
    let rows: Vec<(String, usize, String)> = (0..12)
        .map(|n| (format!("k{n}"), n % 6, format!("Note {n}")))
        .collect();
    let as_rows = |suffix: &str| -> Vec<(String, usize, String)> {
        rows.iter()
            .map(|(k, c, t)| (k.clone(), *c, format!("{t}{suffix}")))
            .collect()
    };
    let write = |rows: &[(String, usize, String)]| {
        let list: Vec<Row<'_>> = rows
            .iter()
            .map(|(k, c, t)| (k.as_str(), *c, t.as_str(), None))
            .collect();
        sheet.write(&list);
    };
    for suffix in ["", " (edited)"] {
        write(&as_rows(suffix));
        sheet.server.inject_rate(Fault::SaveThenDrop, 0.5, 7);
        for _ in 0..4 {
            let _ = sheet.sync().prune(true).run(&sheet.source(), |_| {}).await;
        }
        sheet.server.clear_faults();
        let report = sheet.run(&sheet.sync().prune(true)).await;
        assert_eq!((report.failed, report.unknown), (0, 0), "{report:?}");
        assert_eq!(report.unchanged, 12, "{report:?}");
        let held = sheet.by_text();
        for (_, _, text) in as_rows(suffix) {
            assert_eq!(held.get(&text), Some(&1), "{text}: {held:?}");
        }
        assert_eq!(held.values().sum::<usize>(), 12, "{held:?}");
    }
    // Deletes under the same faults.
    write(&as_rows(" (edited)")[..6]);
    sheet.server.inject_rate(Fault::SaveThenDrop, 0.5, 11);
    let _ = sheet.sync().prune(true).run(&sheet.source(), |_| {}).await;
    sheet.server.clear_faults();
    sheet.run(&sheet.sync().prune(true)).await;
    assert_eq!(sheet.by_text().values().sum::<usize>(), 6);
}

#[tokio::test]
async fn a_lost_journal_adds_nothing_twice() {
    let sheet = Sheet::new("sync-lost").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    std::fs::remove_file(sheet.dir.join("review.csv.sync.journal")).unwrap();
    std::fs::remove_dir_all(sheet.dir.join("state")).ok();
    let plan = sheet.sync().plan(&sheet.source()).await.unwrap();
    assert!(
        plan.rows.iter().all(|r| r.action == SyncAction::Adopt),
        "{plan:?}"
    );
    let report = sheet.run(&sheet.sync()).await;
    assert_eq!(report.added, 0);
    assert_eq!(sheet.by_text().values().sum::<usize>(), 3);
    // Adopted back: an edit updates in place.
    sheet.write(&[("r1", 0, "Driver confirmed pickup", None)]);
    let report = sheet.run(&sheet.sync()).await;
    assert_eq!((report.updated, report.kept), (1, 2));
}

#[tokio::test]
async fn undo_puts_back_an_edit_and_a_prune_once() {
    let sheet = Sheet::new("sync-undo").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    sheet.write(&[
        ("r1", 0, "Driver confirmed pickup", Some(true)),
        ("r2", 1, "Dock 4", Some(false)),
    ]);
    let report = sheet.run(&sheet.sync().prune(true)).await;
    assert_eq!((report.updated, report.deleted), (1, 1));
    let report = sheet.sync().undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!((report.updated, report.added), (1, 1), "{report:?}");
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmd pickup".to_string(), false)]
    );
    assert_eq!(sheet.notes(2), [("Call back at 5".to_string(), false)]);
    sheet.undo_again_changes_nothing(&sheet.sync()).await;
}

#[tokio::test]
async fn a_pruned_row_whose_call_was_deleted_is_forgotten_not_failed_on_every_run() {
    let sheet = Sheet::new("sync-call-gone").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    // The call of row 3 deleted in the app (its note went with it), and the row removed.
    assert!(sheet.server.remove_call(&sheet.call(2)));
    sheet.write(&THREE[..2]);
    let sync = sheet.sync().prune(true);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    assert_eq!(actions(&plan)[2], (None, SyncAction::Delete));
    let reason = plan.rows[2].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("call") && reason.contains("not found"),
        "{reason}"
    );
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    // Gone with its call, not deleted by the run: counted as found so.
    assert_eq!(
        (report.deleted, report.already, report.failed),
        (0, 1, 0),
        "{report:?}"
    );
    assert!(report.rows[2].already);
    // The journal forgot the note: the next run has nothing to do, and sends nothing.
    let writes = sheet.writes();
    let again = sheet.run(&sync).await;
    assert_eq!(
        (again.deleted, again.failed, again.rows.len()),
        (0, 0, 2),
        "{again:?}"
    );
    assert_eq!(sheet.writes(), writes);
    // Forgotten, not deleted by the run: an undo has nothing of it to put back, and the undo of
    // the first sync has nothing of it to delete.
    let undo = sync.undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!(
        (undo.deleted, undo.added, undo.failed),
        (2, 0, 0),
        "{undo:?}"
    );
    sheet.undo_again_changes_nothing(&sync).await;
}

#[tokio::test]
async fn a_404_for_every_call_forgets_no_note() {
    let sheet = Sheet::new("sync-every-call-gone").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    // Every call the plan reads answers 404, as from a key of another organization or a gateway
    // that answers in JSON: nothing says the calls are gone rather than out of sight.
    for index in 0..3 {
        assert!(sheet.server.remove_call(&sheet.call(index)));
    }
    sheet.write(&THREE[..1]);
    let report = sheet.run(&sheet.sync().prune(true)).await;
    assert_eq!((report.deleted, report.failed), (0, 3), "{report:?}");
    let plan = sheet
        .sync()
        .prune(true)
        .plan(&sheet.source())
        .await
        .unwrap();
    let deletes = plan.rows.iter().filter(|r| r.action == SyncAction::Delete);
    assert_eq!(deletes.count(), 2, "still the journal's notes: {plan:?}");
}

#[tokio::test]
async fn an_imported_file_is_adopted_not_added_again() {
    let sheet = Sheet::new("sync-import").await;
    sheet.write(&THREE);
    let report = sheet.import().run(sheet.loose(), |_| {}).await.unwrap();
    assert_eq!(report.added, 3);
    let plan = sheet.sync().plan(&sheet.source()).await.unwrap();
    assert!(
        plan.rows.iter().all(|r| r.action == SyncAction::Adopt),
        "{plan:?}"
    );
    sheet.run(&sheet.sync()).await;
    assert_eq!(sheet.by_text().values().sum::<usize>(), 3);
}

#[tokio::test]
async fn an_imported_file_with_a_line_twice_is_adopted_note_by_note() {
    let sheet = Sheet::new("sync-import-twice").await;
    // Two rows with the same call and text (two stops, say), told apart by their keys.
    let rows = [
        ("stop-1", 0, "Call back at 5", None),
        ("stop-2", 0, "Call back at 5", None),
        THREE[1],
    ];
    sheet.write(&rows);
    let import = sheet.import().allow_duplicates(true);
    assert_eq!(import.run(sheet.loose(), |_| {}).await.unwrap().added, 3);
    let plan = sheet.sync().plan(&sheet.source()).await.unwrap();
    assert!(
        plan.rows.iter().all(|r| r.action == SyncAction::Adopt),
        "{plan:?}"
    );
    let adopted: std::collections::HashSet<_> = plan.rows.iter().map(|r| &r.note_id).collect();
    assert_eq!(adopted.len(), 3, "each row its own note: {plan:?}");
    sheet.run(&sheet.sync()).await;
    assert_eq!(sheet.notes(0).len(), 2, "{:?}", sheet.notes(0));
}

#[tokio::test]
async fn an_import_of_a_synced_file_is_refused_not_added_twice() {
    let sheet = Sheet::new("sync-then-import").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    let writes = sheet.writes();
    let error = sheet.import().run(sheet.loose(), |_| {}).await.unwrap_err();
    assert!(error.to_string().contains("is synced"), "{error}");
    assert_eq!(sheet.writes(), writes, "nothing sent");
    assert_eq!(sheet.by_text().values().sum::<usize>(), 3);
}

#[tokio::test]
async fn a_journal_line_cut_inside_a_character_is_damaged_not_unreadable() {
    let sheet = Sheet::new("sync-cut-utf8").await;
    sheet.write(&THREE);
    let report = sheet.run(&sheet.sync()).await;
    // A kill while a line with "Café" was written: the line ends inside the "é".
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open(&report.journal)
        .unwrap();
    std::io::Write::write_all(
        &mut journal,
        b"{\"event\":\"intent\",\"text\":{\"content\":\"Caf\xc3",
    )
    .unwrap();
    let plan = sheet.sync().plan(&sheet.source()).await.unwrap();
    assert_eq!(plan.counts.unchanged, 3, "{plan:?}");
    let error = sheet.import().run(sheet.loose(), |_| {}).await.unwrap_err();
    assert!(error.to_string().contains("is synced"), "{error}");
}

#[tokio::test]
async fn a_sync_while_an_import_of_the_file_runs_is_refused() {
    let sheet = Sheet::new("sync-during-import").await;
    sheet.write(&THREE[..1]);
    let imported = sheet.import().run(sheet.loose(), |_| {}).await.unwrap();
    let journal = imported.journal;
    sheet.write(&THREE);
    // An import of the file runs (it holds its journal's lock).
    let running = std::fs::File::open(&journal).unwrap();
    assert!(fs4::fs_std::FileExt::try_lock_exclusive(&running).unwrap());
    let writes = sheet.writes();
    let error = sheet.sync().run(&sheet.source(), |_| {}).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("another run of this file is going on"),
        "{error}"
    );
    assert_eq!(sheet.writes(), writes, "nothing sent");
    drop(running);
    // Once it ended: its note taken over, the others added.
    let report = sheet.run(&sheet.sync()).await;
    assert_eq!((report.unchanged, report.added), (1, 2), "{report:?}");
}

#[tokio::test]
async fn an_import_run_between_a_first_sync_s_plan_and_its_apply_stops_the_apply() {
    let sheet = Sheet::new("sync-plan-import-apply").await;
    sheet.write(&THREE);
    let sync = sheet.sync();
    let plan = sync.plan(&sheet.source()).await.unwrap();
    assert_eq!(plan.counts.add, 3);
    // Another process imports the file meanwhile.
    let imported = sheet.import().run(sheet.loose(), |_| {}).await.unwrap();
    assert_eq!(imported.added, 3);
    let writes = sheet.writes();
    let error = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap_err();
    assert!(
        error.to_string().contains("changed since the plan"),
        "{error}"
    );
    assert_eq!(sheet.writes(), writes, "nothing sent");
    // Planned again: the import's notes taken over.
    let report = sheet.run(&sync).await;
    assert_eq!((report.added, report.unchanged), (0, 3), "{report:?}");
    assert_eq!(sheet.by_text().values().sum::<usize>(), 3);
}

#[tokio::test]
async fn an_import_killed_while_it_adds_is_looked_up_by_the_first_sync_not_added_again() {
    let sheet = Sheet::new("sync-import-kill").await;
    sheet.write(&THREE[..1]);
    let client = sheet.quick_client().build().unwrap();
    let import = happyrobot_bulk::Import::new(client.clone(), JournalLocation::BesideInput)
        .state_dir(Some(sheet.dir.join("state")));
    // The import's add lands a second after it arrived; its answer never comes, and the import
    // is killed while it waits.
    sheet.apply_late(Duration::from_millis(1000), 1);
    kill(import.run(sheet.loose(), |_| {})).await;
    // A first sync of the file, before the add has landed: it looks the import's add up.
    let sync = Sync::new(client, JournalLocation::BesideInput)
        .key_column("row_id")
        .state_dir(Some(sheet.dir.join("state")));
    let report = sync.run(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!((report.added, report.unknown), (1, 0), "{report:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        sheet.by_text().values().sum::<usize>(),
        1,
        "{:?}",
        sheet.by_text()
    );
}

#[tokio::test]
async fn a_first_sync_beside_notes_with_the_same_text_is_refused_or_adopts() {
    let sheet = Sheet::new("sync-twin").await;
    sheet.write(&THREE);
    let client = common::client(&sheet.server);
    let call0: CallId = sheet.call(0).parse().unwrap();
    client
        .add_note(&call0, NewNote::new("Driver confirmd pickup"))
        .await
        .unwrap();
    let error = sheet.sync().plan(&sheet.source()).await.unwrap_err();
    assert!(
        error.to_string().contains("Sync::adopt_existing"),
        "{error}"
    );
    assert_eq!(sheet.writes(), 1);
    let report = sheet.run(&sheet.sync().adopt_existing(true)).await;
    assert_eq!((report.added, report.unchanged), (2, 1));
    assert_eq!(sheet.notes(0).len(), 1);
}

#[tokio::test]
async fn records_sync_by_their_keys_with_events() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("sync-records");
    let call: CallId = server.call_ids()[0].parse().unwrap();
    let records = |text: &str| {
        vec![
            NoteRecord::new(call.clone(), NewNote::new(text)).key("load-1"),
            NoteRecord::new(call.clone(), NewNote::new("Second")).key("load-2"),
        ]
    };
    let sync = Sync::new(
        common::client(&server),
        JournalLocation::path(dir.join("j")),
    );
    let mut events = 0;
    let report = sync
        .run(
            &Source::records_with_journal(records("First"), dir.join("j")),
            |e| {
                if let Event::Synced(row) = e {
                    assert!(matches!(row.status, RowStatus::Done));
                    events += 1;
                }
            },
        )
        .await
        .unwrap();
    assert_eq!((report.added, events), (2, 2));
    let report = sync
        .run(
            &Source::records_with_journal(records("First, edited"), dir.join("j")),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!((report.updated, report.unchanged), (1, 1));
    let beside = Sync::new(common::client(&server), JournalLocation::BesideInput);
    // Records built without a journal (the deprecated form) and none given: refused.
    #[allow(deprecated)]
    let journalless = Source::records(records("x"));
    let error = beside.plan(&journalless).await.unwrap_err();
    assert!(
        error.to_string().contains("JournalLocation::Path"),
        "{error}"
    );
    let _ = Path::new("");
}

#[tokio::test]
async fn a_gateway_that_gave_up_while_the_api_went_on_leaves_one_note_after_the_next_sync() {
    let sheet = Sheet::new("sync-late").await;
    sheet.write(&THREE[..1]);
    sheet.server.inject(
        Fault::LateApply {
            answer_after: Duration::from_millis(100),
            answer: LateAnswer::Status(504),
            apply_after: Duration::from_millis(900),
        },
        1,
    );
    let report = sheet.run(&sheet.sync()).await;
    assert_eq!((report.added, report.unknown), (1, 0), "{report:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The late apply left a copy: the next plan deletes it.
    let plan = sheet.sync().plan(&sheet.source()).await.unwrap();
    let copies = plan
        .rows
        .iter()
        .filter(|r| r.action == SyncAction::Delete)
        .count();
    assert_eq!(
        copies,
        sheet.by_text().values().sum::<usize>() - 1,
        "{plan:?}"
    );
    sheet
        .sync()
        .apply(&sheet.source(), plan, |_| {})
        .await
        .unwrap();
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmd pickup".to_string(), false)]
    );
}

#[tokio::test]
async fn a_killed_sync_looks_its_adds_up_before_sending_them_again() {
    let sheet = Sheet::new("sync-kill").await;
    sheet.write(&THREE);
    let client = sheet.quick_client().build().unwrap();
    let sync = Sync::new(client, JournalLocation::BesideInput)
        .key_column("row_id")
        .state_dir(None)
        .concurrency(4);
    let source = sheet.source();
    let plan = sync.plan(&source).await.unwrap();
    // Every add is carried out a second after it arrived; the answers never come.
    sheet.apply_late(Duration::from_millis(1000), 3);
    // Killed while the adds are in flight: the future is dropped.
    kill(sync.apply(&source, plan, |_| {})).await;
    let plan = sync.plan(&sheet.source()).await.unwrap();
    assert!(
        plan.rows.iter().all(|r| r.action == SyncAction::Add
            && r.reason
                .as_deref()
                .is_some_and(|m| m.contains("looked up first"))),
        "{plan:?}"
    );
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(
        (report.added, report.failed, report.unknown),
        (3, 0, 0),
        "{report:?}"
    );
    assert_eq!(
        sheet.by_text().values().sum::<usize>(),
        3,
        "{:?}",
        sheet.by_text()
    );
}

#[tokio::test]
async fn an_undo_killed_while_it_adds_a_pruned_note_back_adds_it_once_when_run_again() {
    let sheet = Sheet::new("sync-undo-kill").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    sheet.write(&THREE[..2]);
    assert_eq!(sheet.run(&sheet.sync().prune(true)).await.deleted, 1);
    let client = sheet.quick_client().build().unwrap();
    let undo = Sync::new(client, JournalLocation::BesideInput)
        .key_column("row_id")
        .state_dir(None);
    // The note added back lands a second after it arrived; its answer never comes, and the undo
    // is killed while it waits.
    sheet.apply_late(Duration::from_millis(1000), 1);
    let source = sheet.source();
    kill(undo.undo(&source, |_| {})).await;
    // Run again, as the killed undo's exit asks: the earlier add is looked up, not sent blind
    // under the row's next ID.
    let again = undo.undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!(
        (again.added, again.failed, again.unknown),
        (1, 0, 0),
        "{again:?}"
    );
    // Once the killed undo's add has landed, whenever that is.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sheet.notes(2), [("Call back at 5".to_string(), false)]);
}

/// A sync and its undo on the sheet's journal, with the quick client (`retry`: whether it retries).
fn quick_sync(sheet: &Sheet, retry: bool) -> Sync {
    let mut client = sheet.quick_client();
    if !retry {
        client = client.retry(happyrobot::RetryPolicy::none());
    }
    Sync::new(client.build().unwrap(), JournalLocation::BesideInput)
        .key_column("row_id")
        .state_dir(None)
}

#[tokio::test]
async fn an_undo_after_a_sync_killed_with_an_edit_in_doubt_undoes_that_sync_not_the_one_before() {
    let sheet = Sheet::new("sync-undo-killed-edit").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    let sync = quick_sync(&sheet, true);
    sheet.write(&[
        ("r1", 0, "Driver confirmed pickup", None),
        THREE[1],
        THREE[2],
    ]);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // The edit lands a second after it arrived; its answer never comes, and the sync is killed:
    // the killed sync changed nothing for certain.
    sheet.apply_late(Duration::from_millis(1000), 1);
    kill(sync.apply(&sheet.source(), plan, |_| {})).await;
    let undo = sync.undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!(
        (undo.updated, undo.deleted, undo.unknown),
        (1, 0, 0),
        "{undo:?}"
    );
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmd pickup".to_string(), false)],
        "the edit is put back, after it landed"
    );
    assert_eq!(
        sheet.notes(1).len() + sheet.notes(2).len(),
        2,
        "the first sync's notes stay"
    );
    // Undone: a second undo changes nothing (it does not go on to the sync before).
    sheet.undo_again_changes_nothing(&sync).await;
}

#[tokio::test]
async fn an_undo_after_a_sync_killed_with_adds_in_doubt_deletes_them_once_they_landed() {
    let sheet = Sheet::new("sync-undo-killed-adds").await;
    sheet.write(&THREE[..1]);
    sheet.run(&sheet.sync()).await;
    let sync = quick_sync(&sheet, true);
    sheet.write(&THREE);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    sheet.apply_late(Duration::from_millis(1000), 2);
    kill(sync.apply(&sheet.source(), plan, |_| {})).await;
    let undo = sync.undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!(
        (undo.deleted, undo.failed, undo.unknown),
        (2, 0, 0),
        "{undo:?}"
    );
    assert_eq!((sheet.notes(1).len(), sheet.notes(2).len()), (0, 0));
    assert_eq!(sheet.notes(0).len(), 1, "the first sync's note stays");
    sheet.undo_again_changes_nothing(&sync).await;
    assert_eq!(sheet.notes(0).len(), 1);
}

#[tokio::test]
async fn a_prune_counts_a_note_gone_before_it_as_already_and_one_its_retry_deleted_as_deleted() {
    let sheet = Sheet::new("sync-prune-retry").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    // Row 3's note deleted in the app; its prune is refused once first (nothing done), then
    // finds it gone: gone before the run.
    let gone = sheet.held(2)[0].id.clone().unwrap();
    let client = sheet.quick_client().build().unwrap();
    client
        .delete_note(
            &sheet.call(2).parse().unwrap(),
            &happyrobot::NoteId::new(gone).unwrap(),
        )
        .await
        .unwrap();
    let results = sheet.dir.join("review.results.csv");
    let sync = sheet.sync().prune(true).results_file(&results);
    sheet.write(&THREE[..2]);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    sheet.server.inject(
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        1,
    );
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.deleted, report.already), (0, 1), "{report:?}");
    // The results file says so too, not "done".
    let written = std::fs::read_to_string(&results).unwrap();
    let row = written.lines().find(|row| row.contains(",delete,"));
    assert!(
        row.is_some_and(|row| row.contains(",already done,")),
        "{written}"
    );
    // Row 2's prune deletes its note, the answer lost; the retry finds it gone: deleted by the
    // run's own first attempt.
    sheet.write(&THREE[..1]);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    sheet.server.inject(Fault::SaveThenDrop, 1);
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.deleted, report.already), (1, 0), "{report:?}");
    assert!(sheet.held(1).is_empty());
}

#[tokio::test]
async fn an_undo_of_an_add_in_doubt_that_never_landed_deletes_nothing_and_says_so() {
    let sheet = Sheet::new("sync-undo-add-never-landed").await;
    sheet.write(&THREE[..2]);
    sheet.run(&sheet.sync()).await;
    let sync = quick_sync(&sheet, false);
    sheet.write(&THREE);
    // The add's connection closes before any answer (nothing added), and so does the look-up
    // after it: unknown.
    let plan = sync.plan(&sheet.source()).await.unwrap();
    sheet.server.inject(Fault::CloseBeforeResponse, 2);
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.added, report.unknown), (0, 1), "{report:?}");
    assert!(sheet.notes(2).is_empty());
    let undo = sync.undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!(
        (undo.deleted, undo.already, undo.failed, undo.unknown),
        (0, 1, 0, 0),
        "{undo:?}"
    );
    assert!(undo.rows.iter().all(|row| row.already), "{undo:?}");
    assert_eq!(
        sheet.notes(0).len() + sheet.notes(1).len(),
        2,
        "the first sync's notes stay"
    );
    sheet.undo_again_changes_nothing(&sync).await;
}

/// A sheet synced, then row 3 removed and pruned in doubt: the delete's connection closes before
/// any answer, and nothing was deleted; the look-up after it cannot read the call either.
async fn pruned_in_doubt(name: &str) -> (Sheet, Sync) {
    let sheet = Sheet::new(name).await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    let sync = quick_sync(&sheet, false).prune(true);
    sheet.write(&THREE[..2]);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    sheet.server.inject(Fault::CloseBeforeResponse, 2);
    let pruned = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(pruned.unknown, 1, "{pruned:?}");
    (sheet, sync)
}

#[tokio::test]
async fn an_undo_of_a_prune_in_doubt_puts_back_the_text_of_a_note_edited_since_as_an_update() {
    let (sheet, sync) = pruned_in_doubt("sync-undo-prune-edited").await;
    // The note, still there, is edited in the app.
    let note = sheet.held(2)[0].id.clone().unwrap();
    let client = sheet.quick_client().build().unwrap();
    client
        .update_note(
            &sheet.call(2).parse().unwrap(),
            &happyrobot::NoteId::new(note).unwrap(),
            happyrobot::NoteChanges::new().content("Edited in the app"),
        )
        .await
        .unwrap();
    let adds = sheet.server.operation_counts().add_note;
    let results = sheet.dir.join("review.results.csv");
    let undo = sync
        .results_file(&results)
        .undo(&sheet.source(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (undo.added, undo.updated, undo.already, undo.failed),
        (0, 1, 0, 0),
        "{undo:?}"
    );
    let written = std::fs::read_to_string(&results).unwrap();
    assert!(written.contains(",add,updated instead,"), "{written}");
    assert_eq!(
        sheet.server.operation_counts().add_note,
        adds,
        "nothing added"
    );
    assert!(undo.rows.iter().all(|row| row.updated_instead), "{undo:?}");
    assert_eq!(sheet.notes(2), [("Call back at 5".to_string(), false)]);
}

#[tokio::test]
async fn an_undo_of_a_prune_in_doubt_adds_the_note_back_only_if_it_is_gone() {
    let (sheet, sync) = pruned_in_doubt("sync-undo-prune-doubt").await;
    let adds = sheet.server.operation_counts().add_note;
    let undo = sync.undo(&sheet.source(), |_| {}).await.unwrap();
    // Still there: nothing added, and said so.
    assert_eq!(
        (undo.added, undo.already, undo.failed, undo.unknown),
        (0, 1, 0, 0),
        "{undo:?}"
    );
    assert_eq!(
        sheet.server.operation_counts().add_note,
        adds,
        "found, not added again"
    );
    assert_eq!(sheet.notes(2), [("Call back at 5".to_string(), false)]);
    sheet.undo_again_changes_nothing(&sync).await;
}

#[tokio::test]
async fn an_attempt_held_by_a_rate_limit_is_journaled_when_it_goes() {
    let sheet = Sheet::new("sync-sent-later").await;
    sheet.write(&THREE[..1]);
    sheet.run(&sheet.sync()).await;
    sheet.write(&[("r1", 0, "Driver confirmed pickup", None)]);
    let sync = sheet.sync();
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // The update is refused with a wait of two seconds: its next attempt goes seconds after its
    // intent, and a run killed then would not say when without a `sent` entry.
    sheet.server.inject(
        Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(report.updated, 1, "{report:?}");
    let journal = std::fs::read_to_string(&report.journal).unwrap();
    let entries: Vec<serde_json::Value> = journal
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let at = |event: &str| {
        entries
            .iter()
            .find(|e| e["event"] == event && e["run"] == 2)
            .and_then(|e| e["at"].as_u64())
    };
    let (intent, sent) = (at("intent").unwrap(), at("sent"));
    assert!(sent.is_some_and(|sent| sent > intent), "{journal}");
}

#[tokio::test]
async fn an_earlier_add_found_late_after_its_row_was_edited_is_changed_to_the_row() {
    let sheet = Sheet::new("sync-late-edit").await;
    sheet.write(&THREE[..1]);
    let client = sheet.quick_client().build().unwrap();
    let sync = Sync::new(client, JournalLocation::BesideInput)
        .key_column("row_id")
        .state_dir(None);
    let source = sheet.source();
    let plan = sync.plan(&source).await.unwrap();
    // The add lands a second after it arrived, its answer never comes, and the sync is killed.
    sheet.apply_late(Duration::from_millis(1000), 1);
    kill(sync.apply(&source, plan, |_| {})).await;
    // The row is edited before the add has landed; the next sync finds the earlier add under
    // the row's ID, holding the earlier text.
    sheet.write(&[("r1", 0, "Driver confirmed pickup", Some(true))]);
    let report = sync.run(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!((report.failed, report.unknown), (0, 0), "{report:?}");
    // Once the killed sync's add has landed, whenever that is.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmed pickup".to_string(), true)],
        "the note holds the row's text"
    );
    let plan = sync.plan(&sheet.source()).await.unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    // The sync added the note (found late) and updated it: its undo deletes it, once.
    let undo = sync.undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!(
        (undo.deleted, undo.updated, undo.failed),
        (1, 0, 0),
        "{undo:?}"
    );
    assert_eq!(sheet.notes(0), []);
    sheet.undo_again_changes_nothing(&sync).await;
}

#[tokio::test]
async fn an_update_in_doubt_is_waited_out_before_the_next_sync_reads_and_changes_the_note() {
    let sheet = Sheet::new("sync-late-update").await;
    sheet.write(&THREE[..1]);
    let client = sheet
        .quick_client()
        .retry(happyrobot::RetryPolicy::none())
        .build()
        .unwrap();
    let sync = Sync::new(client, JournalLocation::BesideInput)
        .key_column("row_id")
        .state_dir(None);
    assert_eq!(sync.run(&sheet.source(), |_| {}).await.unwrap().added, 1);
    sheet.write(&[("r1", 0, "Two", None)]);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // The update lands 2.5 s after it arrived, long after the client gave up on its answer and
    // looked the note up (still the old text): unknown.
    sheet.apply_late(Duration::from_millis(2500), 1);
    let first = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(first.unknown, 1, "{first:?}");
    // Edited again; the next sync waits the late update out before it reads the note, so that
    // its own update comes after.
    sheet.write(&[("r1", 0, "Three", None)]);
    assert!(sync.plan_waits(&sheet.source()).await.unwrap().is_some());
    let second = sync.run(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!((second.updated, second.unknown), (1, 0), "{second:?}");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(sheet.notes(0), [("Three".to_string(), false)]);
    assert!(sync.plan(&sheet.source()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_late_add_of_a_row_removed_since_is_pruned_not_left_behind() {
    late_add_of_a_removed_row(true).await;
}

#[tokio::test]
async fn a_late_add_of_a_row_removed_since_is_kept_and_listed() {
    late_add_of_a_removed_row(false).await;
}

/// An add killed before it landed, its row removed from the file before the next sync: the note
/// is the removed row's, pruned or kept, and settled in the journal.
async fn late_add_of_a_removed_row(prune: bool) {
    let sheet = Sheet::new("sync-late-removed").await;
    sheet.write(&THREE[..2]);
    let client = sheet.quick_client().build().unwrap();
    let sync = Sync::new(client, JournalLocation::BesideInput)
        .key_column("row_id")
        .state_dir(None)
        .concurrency(1)
        .prune(prune);
    let source = sheet.source();
    let plan = sync.plan(&source).await.unwrap();
    // The first add lands a second after it arrived; its answer never comes, and the sync is
    // killed while it waits.
    sheet.apply_late(Duration::from_millis(1000), 1);
    kill(sync.apply(&source, plan, |_| {})).await;
    // Its row is removed from the file before the add has landed; the next sync finds the note
    // once it has: pruned, or kept and listed, rather than left with no row.
    sheet.write(&THREE[1..2]);
    let report = sync.run(&sheet.source(), |_| {}).await.unwrap();
    let expected = if prune { (1, 0, 0, 0) } else { (0, 1, 0, 0) };
    assert_eq!(
        (report.deleted, report.kept, report.failed, report.unknown),
        expected,
        "{report:?}"
    );
    let left = if prune { 0 } else { 1 };
    assert_eq!(sheet.notes(0).len(), left);
    assert_eq!(sheet.notes(1), [("Dock 4".to_string(), false)]);
    // Settled in the journal: the next plan has nothing to wait for, and reads the removed row's
    // call only to prune (as for any removed row).
    assert_eq!(sync.plan_waits(&sheet.source()).await.unwrap(), None);
    let again = sync.plan(&sheet.source()).await.unwrap();
    assert_eq!(again.counts.keep, u64::from(!prune), "{again:?}");
    assert_eq!(again.calls_read, 1);
}

#[tokio::test]
async fn a_404_for_every_call_settles_no_add_in_doubt() {
    let sheet = Sheet::new("sync-stray-404").await;
    sheet.write(&THREE[..2]);
    let sync = quick_sync(&sheet, true).concurrency(1);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    sheet.apply_late(Duration::from_millis(1000), 1);
    kill(sync.apply(&sheet.source(), plan, |_| {})).await;
    // Row 1 removed while its add is in doubt; then every call answers 404 (a key of another
    // organization, a gateway that answers in JSON): nothing says the add is absent.
    sheet.write(&THREE[1..2]);
    for index in 0..2 {
        assert!(sheet.server.remove_call(&sheet.call(index)));
    }
    let report = sync.run(&sheet.source(), |_| {}).await.unwrap();
    let journal = std::fs::read_to_string(&report.journal).unwrap();
    let settled = journal
        .lines()
        .filter(|line| line.contains(r#""row":"r1""#))
        .filter(|line| {
            line.contains(r#""event":"failed""#) || line.contains(r#""event":"settled""#)
        });
    assert_eq!(settled.count(), 0, "{journal}");
}

#[tokio::test]
async fn a_call_back_by_the_time_a_plan_is_applied_has_its_note_deleted_not_forgotten() {
    let sheet = Sheet::new("sync-call-back").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    let call = sheet.server.call(&sheet.call(2)).unwrap();
    assert!(sheet.server.remove_call(&sheet.call(2)));
    sheet.write(&THREE[..2]);
    let sync = sheet.sync().prune(true);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // Restored (from a trash, say) before the plan is applied: its note is deleted.
    assert!(sheet.server.add_call(call));
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.deleted, report.failed), (1, 0), "{report:?}");
    assert_eq!(sheet.notes(2), []);
}

#[tokio::test]
async fn an_api_that_answers_404_for_every_call_once_the_plan_is_made_forgets_no_note() {
    let sheet = Sheet::new("sync-call-outage").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    let call = sheet.server.call(&sheet.call(2)).unwrap();
    assert!(sheet.server.remove_call(&sheet.call(2)));
    sheet.write(&THREE[..2]);
    let sync = sheet.sync().prune(true);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // Back, but the API now answers 404 for every call (an outage, a key that lost its access):
    // the plan's word that it was gone is not taken. Its delete is tried and fails.
    assert!(sheet.server.add_call(call));
    sheet.server.inject(Fault::Status(404), 50);
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.deleted, report.failed), (0, 1), "{report:?}");
    sheet.server.clear_faults();
    assert_eq!(sheet.notes(2).len(), 1);
    // The next run still knows the note: it deletes it.
    let again = sheet.run(&sheet.sync().prune(true)).await;
    assert_eq!(again.deleted, 1, "{again:?}");
    assert_eq!(sheet.notes(2), []);
}

#[tokio::test]
async fn a_prune_answered_not_found_for_a_note_its_call_lists_fails() {
    let sheet = Sheet::new("sync-note-contradicted").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    sheet.write(&THREE[..2]);
    let sync = sheet.sync().prune(true);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // The delete is answered 404 for the note, which the call, read again, still lists.
    sheet.server.inject(Fault::NoteNotFound, 1);
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!(
        (report.deleted, report.already, report.failed),
        (0, 0, 1),
        "{report:?}"
    );
    assert_eq!(sheet.notes(2).len(), 1);
    let again = sheet.run(&sheet.sync().prune(true)).await;
    assert_eq!(again.deleted, 1, "{again:?}");
    assert_eq!(sheet.notes(2), []);
}

#[tokio::test]
async fn without_reconciling_an_add_answered_unreadably_is_added_not_unknown() {
    let sheet = Sheet::new("sync-applied").await;
    sheet.write(&THREE[..1]);
    let sync = sheet.sync().reconcile(false);
    let plan = sync.plan(&sheet.source()).await.unwrap();
    // Added, its answer's body unreadable: the API did add it, and says so with its 2xx.
    sheet.server.inject(Fault::InvalidJson, 1);
    let report = sync.apply(&sheet.source(), plan, |_| {}).await.unwrap();
    assert_eq!((report.added, report.unknown), (1, 0), "{report:?}");
    assert_eq!(sheet.notes(0).len(), 1);
    assert!(sync.plan(&sheet.source()).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_undo_stopped_part_way_is_finished_by_the_next() {
    let sheet = Sheet::new("sync-undo-part").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    sheet.write(&[
        ("r1", 0, "One", None),
        ("r2", 1, "Two", None),
        ("r3", 2, "Three", None),
    ]);
    assert_eq!(sheet.run(&sheet.sync()).await.updated, 3);
    // The first undo's requests fail (503, nothing changed) until the faults run out.
    sheet.server.inject(Fault::Status(503), 8);
    let client = Client::builder()
        .api_key(sheet.server.api_key())
        .base_url(sheet.server.base_url())
        .retry(happyrobot::RetryPolicy::none())
        .build()
        .unwrap();
    let undo = Sync::new(client, JournalLocation::BesideInput).concurrency(1);
    let first = undo.undo(&sheet.source(), |_| {}).await.unwrap();
    assert!(first.updated < 3, "{first:?}");
    sheet.server.clear_faults();
    let second = sheet.sync().undo(&sheet.source(), |_| {}).await.unwrap();
    assert_eq!(first.updated + second.updated, 3, "{second:?}");
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmd pickup".to_string(), false)]
    );
    assert_eq!(sheet.notes(2), [("Call back at 5".to_string(), false)]);
    let third = sheet.sync().undo(&sheet.source(), |_| {}).await.unwrap();
    assert!(third.rows.is_empty(), "{third:?}");
}

#[tokio::test]
async fn another_sheet_on_the_same_calls_and_keys_is_refused_not_fought_over() {
    let sheet = Sheet::new("sync-two-sheets").await;
    sheet.write(&THREE);
    sheet.run(&sheet.sync()).await;
    // A second sheet, its own journal, the same keys and calls, other texts.
    let other = sheet.dir.join("other.csv");
    std::fs::copy(&sheet.file, &other).unwrap();
    let text = std::fs::read_to_string(&other)
        .unwrap()
        .replace("Dock 4", "Dock 9");
    std::fs::write(&other, text).unwrap();
    let writes = sheet.writes();
    let error = sheet.sync().plan(&Source::file(&other)).await.unwrap_err();
    assert!(
        error.to_string().contains("this journal did not make"),
        "{error}"
    );
    assert!(
        error.to_string().contains("Sync::adopt_existing"),
        "{error}"
    );
    assert_eq!(sheet.writes(), writes);
}

#[tokio::test]
async fn a_server_that_gives_its_own_note_ids_stops_the_sync_without_doubles() {
    let server = MockServer::builder()
        .ignore_client_note_ids(true)
        .start()
        .await
        .unwrap();
    let dir = common::temp_dir("sync-own-ids");
    let call: CallId = server.call_ids()[0].parse().unwrap();
    let records = || {
        Source::records_with_journal(
            vec![
                NoteRecord::new(call.clone(), NewNote::new("One")).key("a"),
                NoteRecord::new(call.clone(), NewNote::new("Two")).key("b"),
            ],
            dir.join("j"),
        )
    };
    let sync = Sync::new(common::client(&server), JournalLocation::BesideInput).concurrency(1);
    let first = sync.run(&records(), |_| {}).await.unwrap();
    assert!(
        matches!(first.stopped, Some(happyrobot_bulk::Stop::Refused(_))),
        "{first:?}"
    );
    assert_eq!((first.added, first.not_sent), (1, 1));
    assert_ne!(
        first.rows[0].note_id, first.rows[0].planned.note_id,
        "the API's own ID"
    );
    for _ in 0..3 {
        let _ = sync.run(&records(), |_| {}).await.unwrap();
    }
    let held = server.notes_by_content(Some(call.as_str()));
    assert_eq!(
        (held.get("One"), held.get("Two")),
        (Some(&1), Some(&1)),
        "{held:?}"
    );
}

#[tokio::test]
async fn a_key_column_given_later_takes_the_notes_over_instead_of_doubling_them() {
    let sheet = Sheet::new("sync-rekey").await;
    sheet.write(&THREE);
    // First synced by call (the row_id column let through), then by row_id.
    let by_call =
        Sync::new(common::client(&sheet.server), JournalLocation::BesideInput).state_dir(None);
    let loose = sheet
        .source()
        .read_options(happyrobot_bulk::ReadOptions::new().ignore_other_columns(true));
    assert_eq!(by_call.run(&loose, |_| {}).await.unwrap().added, 3);
    let plan = sheet.sync().plan(&sheet.source()).await.unwrap();
    assert!(
        plan.rows.iter().all(|r| r.action == SyncAction::Adopt),
        "{plan:?}"
    );
    sheet
        .sync()
        .apply(&sheet.source(), plan, |_| {})
        .await
        .unwrap();
    assert_eq!(sheet.by_text().values().sum::<usize>(), 3);
    // The old keys are gone from the journal's rows: a prune deletes nothing.
    let report = sheet.run(&sheet.sync().prune(true)).await;
    assert_eq!((report.deleted, report.unchanged), (0, 3), "{report:?}");
}

#[tokio::test]
async fn an_imported_file_edited_since_is_synced_in_place() {
    let sheet = Sheet::new("sync-import-edited").await;
    sheet.write(&THREE);
    let import = sheet.import();
    assert_eq!(import.run(sheet.loose(), |_| {}).await.unwrap().added, 3);
    // The typo fixed after the import; the sync takes the import's note and updates it.
    sheet.write(&[
        ("r1", 0, "Driver confirmed pickup", None),
        ("r2", 1, "Dock 4", Some(false)),
        ("r3", 2, "Call back at 5", None),
    ]);
    let plan = sheet.sync().plan(&sheet.source()).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            (Some(2), SyncAction::Update),
            (Some(3), SyncAction::Adopt),
            (Some(4), SyncAction::Adopt)
        ],
        "{plan:?}"
    );
    sheet
        .sync()
        .apply(&sheet.source(), plan, |_| {})
        .await
        .unwrap();
    assert_eq!(
        sheet.notes(0),
        [("Driver confirmed pickup".to_string(), false)]
    );
    assert_eq!(sheet.by_text().values().sum::<usize>(), 3);
}
