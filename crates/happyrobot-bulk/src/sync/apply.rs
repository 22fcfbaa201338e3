//! Applying a plan: exactly its changes, each written to the journal as an intent before its
//! request and as its outcome after. An add whose outcome is unknown is looked up on its call by
//! its ID and sent once more (under the row's next ID) only when it is certainly absent; updates
//! and deletes are idempotent (a delete of a note already gone is done).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use happyrobot::{
    AttemptObserver, CallId, CancellationToken, Client, Control, NewNote, NoteChanges, NoteId,
    Outcome, PendingAdd, Settled, Undecided,
};
use tokio::sync::Semaphore;

use super::journal::{Entry, Op, SyncState, SyncWriter, Text, run_entry};
use super::plan::{NoteText, PlannedRow, SyncAction, SyncPlan};
use super::{RowStatus, SyncReport, SyncedRow};
use crate::journal::{Destination, now};
use crate::{BulkError, Event, Failure, FailureKind, Source, Stop};

/// What every change of a run shares.
struct Run {
    client: Client,
    writer: SyncWriter,
    run: u64,
    stop: CancellationToken,
    reconcile: bool,
    /// Why the run stopped early, the first reason.
    stopped: Mutex<Option<Stop>>,
    /// The notes the plan names: other rows' notes, never mistaken for an add in doubt.
    known: std::collections::HashSet<String>,
    /// Calls of the plan's rows not found gone: read as another call in the proof that a call is
    /// gone (see [`crate::gone`]).
    witnesses: Vec<String>,
    /// Each call the plan found gone, once proven gone or not (see [`forget_gone`]).
    gone: Mutex<std::collections::HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
}

impl Run {
    fn control(&self) -> Control<'_> {
        Control::new()
            .stop(&self.stop)
            .deadline(std::time::Duration::MAX)
    }

    /// Writes `entry`; a failure stops the run.
    fn write(&self, entry: &Entry) -> bool {
        match self.writer.write(entry) {
            Ok(()) => true,
            Err(e) => {
                self.stop_for(Stop::Journal(format!(
                    "cannot write the sync journal {}: {e}",
                    self.writer.path().display()
                )));
                false
            }
        }
    }

    fn stop_for(&self, stop: Stop) {
        self.stop.cancel();
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(stop);
    }

    /// The journal entry of `event` about `row` (its change's note `note`, its `k`).
    fn entry(&self, event: &str, op: Op, row: &PlannedRow, note: &str, k: Option<u32>) -> Entry {
        Entry {
            event: event.to_string(),
            run: Some(self.run),
            op: Some(op),
            row: Some(row.key.clone()),
            line: row.line,
            call: Some(row.call_id.clone()),
            note: Some(note.to_string()),
            k,
            text: row.new.as_ref().map(Text::from),
            before: row.old.as_ref().map(Text::from),
            at: Some(now()),
            ..Entry::default()
        }
    }

    /// Journals the intent of a change (`op` of `note`, for `row`, as its `k`-th ID) and gives
    /// the observer that journals when an attempt of it goes out later; `None` when the journal
    /// cannot be written (nothing is sent).
    fn intent<'a>(
        &'a self,
        op: Op,
        row: &PlannedRow,
        note: &str,
        k: Option<u32>,
    ) -> Option<Sent<'a>> {
        let intent = self.entry("intent", op, row, note, k);
        let at = intent.at.unwrap_or_default();
        self.write(&intent).then(|| Sent {
            run: self,
            written: AtomicU64::new(at),
        })
    }

    /// Journals the end of a change and makes its status.
    fn ended(&self, op: Op, row: &PlannedRow, note: &str, status: RowStatus) -> RowStatus {
        let (event, error) = match &status {
            RowStatus::Done => ("done", None),
            RowStatus::Failed(f) => ("failed", Some(f.reason.clone())),
            RowStatus::Unknown(reason) => ("unknown", Some(reason.clone())),
            RowStatus::NotSent => return status,
        };
        let entry = Entry {
            error,
            ..self.entry(event, op, row, note, None)
        };
        self.write(&entry);
        status
    }

    /// A failure of the client as a row's, stopping the run when every other row would share it.
    fn failed(&self, error: &happyrobot::Error) -> RowStatus {
        if let Some(stop) = crate::line::stop_for(error) {
            self.stop_for(stop);
        }
        RowStatus::Failed(crate::line::failure(error))
    }

    /// Whether a change whose outcome is unknown (`error`) is looked up on its call: not when the
    /// error stops the run (a `Retry-After` longer than the run waits, which would hold the
    /// lookup too, or a refusal every row would share), which it then stops; the row stays
    /// unknown, and a re-run settles it.
    fn in_doubt(&self, error: &happyrobot::Error) -> bool {
        match crate::line::stop_for(error) {
            Some(stop) => {
                self.stop_for(stop);
                false
            }
            None => true,
        }
    }

    /// Journals the end of a change the server certainly did not apply (`error`) and makes its
    /// status: failed; or not sent (journaled as failed, which a re-run sends) when the rate
    /// limit asked for a longer wait than the run allows (a rate limit never fails a row), or
    /// when the run stopped while the change waited for its turn.
    fn refused(
        &self,
        op: Op,
        row: &PlannedRow,
        note: &str,
        error: &happyrobot::Error,
    ) -> RowStatus {
        let status = self.ended(op, row, note, self.failed(error));
        if crate::line::deferred(error) || error.is_stopped() {
            RowStatus::NotSent
        } else {
            status
        }
    }
}

/// Journals each attempt of a change that goes out in a later second than the last entry about
/// it said (a rate limit's hold, a retry), as a `sent` entry: a change in doubt may land until
/// some time after its last attempt went, which a run killed meanwhile would not tell otherwise.
struct Sent<'a> {
    run: &'a Run,
    /// The journal's time (whole seconds) of the last entry written about the change.
    written: AtomicU64,
}

impl AttemptObserver for Sent<'_> {
    fn before_attempt(&self, _: &happyrobot::Attempt) -> ControlFlow<()> {
        let at = now();
        if at <= self.written.load(Ordering::Relaxed) {
            return ControlFlow::Continue(());
        }
        // Its run and time only: what a reader needs (see `Attempt::latest`), and nothing an
        // older reader could take for a change.
        let sent = Entry {
            event: "sent".to_string(),
            run: Some(self.run.run),
            at: Some(at),
            ..Entry::default()
        };
        if !self.run.write(&sent) {
            // Not journaled, not sent.
            return ControlFlow::Break(());
        }
        self.written.store(at, Ordering::Relaxed);
        ControlFlow::Continue(())
    }
}

/// Applies `plan` for `source`.
pub(crate) async fn apply(
    sync: &crate::Sync,
    source: &Source,
    plan: SyncPlan,
    mut on_event: impl FnMut(&Event) + Send,
) -> Result<SyncReport, BulkError> {
    // A first sync of an imported file: no import of it runs until the apply ends.
    let _import_locks = match &plan.import {
        Some(import) => Some(import.hold(sync.settings.state_dir.as_deref())?),
        None => None,
    };
    let writer = SyncWriter::open(&plan.journal, sync.settings.fsync)?;
    let state = SyncState::load(&plan.journal)?;
    if state.entries != plan.journal_entries {
        return Err(BulkError::usage(format!(
            "the sync journal {} changed since the plan was made (another run applied); nothing \
             was sent. Make the plan again",
            plan.journal.display()
        )));
    }
    let destination = Destination::new(
        sync.client.base_url(),
        sync.client.api_key().expose_secret(),
    );
    let run = Arc::new(Run {
        client: sync.client.clone(),
        writer,
        run: state.next_run(),
        stop: sync.settings.stop.child_token(),
        reconcile: sync.settings.reconcile,
        stopped: Mutex::new(None),
        known: plan.rows.iter().filter_map(|r| r.note_id.clone()).collect(),
        witnesses: witnesses(&plan),
        gone: Mutex::default(),
    });
    let first = run_entry(
        run.run,
        &destination,
        &source.journal_name,
        plan.undoes,
        sync.client.timeout(),
    );
    if let Err(e) = run.writer.write(&first) {
        return Err(BulkError::io(format!(
            "cannot write the sync journal {}: {e}; nothing was sent",
            plan.journal.display()
        )));
    }
    for settled in &plan.settled {
        run.write(&settled_entry(run.run, settled));
    }
    on_event(&Event::Started {
        lines: plan.rows.iter().filter(|r| r.action.writes()).count() as u64,
    });
    let rows = changes(&run, &plan, sync.settings.concurrency, &mut on_event).await;
    let stopped = run.stopped.lock().unwrap_or_else(|p| p.into_inner()).take();
    let mut report = report(rows, stopped, &plan);
    if let Some(path) = &sync.settings.results
        && let Err(e) = super::results::write(path, &report, sync.settings.option_names)
    {
        // The requests went out: the report still says what became of each row.
        report.results_error = Some(format!(
            "cannot write the results file {}: {e}",
            path.display()
        ));
    }
    Ok(report)
}

/// The journal's entry for an add in doubt the plan found settled: its row's note (`settled`, no
/// change of this run, which an undo leaves), or failed (certainly absent once it could no longer
/// land).
fn settled_entry(run: u64, settled: &super::plan::Settled) -> Entry {
    let (event, op, error) = match settled.found {
        Some(_) => ("settled", Op::Adopt, None),
        None => (
            "failed",
            Op::Add,
            Some("not on its call once it could no longer land".to_string()),
        ),
    };
    Entry {
        event: event.to_string(),
        run: Some(run),
        op: Some(op),
        row: Some(settled.row.clone()),
        call: Some(settled.call.clone()),
        note: Some(settled.note.clone()),
        text: settled.found.clone(),
        error,
        at: Some(now()),
        ..Entry::default()
    }
}

/// Carries out every row of `plan`, `concurrency` requests at a time, in the plan's order.
async fn changes(
    run: &Arc<Run>,
    plan: &SyncPlan,
    concurrency: usize,
    on_event: &mut (impl FnMut(&Event) + Send),
) -> Vec<SyncedRow> {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut done: Vec<Option<SyncedRow>> = vec![None; plan.rows.len()];
    for (index, row) in plan.rows.iter().enumerate() {
        if !row.action.writes() {
            let synced = without_request(run, row);
            on_event(&Event::Synced(Box::new(synced.clone())));
            done[index] = Some(synced);
            continue;
        }
        let (run, slots, row) = (Arc::clone(run), Arc::clone(&slots), row.clone());
        tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return (index, SyncedRow::new(row, RowStatus::NotSent));
            };
            if run.stop.is_cancelled() {
                return (index, SyncedRow::new(row, RowStatus::NotSent));
            }
            let ended = change(&run, &row).await;
            let mut synced = SyncedRow::new(row, ended.status);
            synced.note_id = ended.note;
            let done = matches!(synced.status, RowStatus::Done);
            synced.already = ended.already && done;
            synced.updated_instead = ended.updated && done;
            (index, synced)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, synced)) => {
                on_event(&Event::Synced(Box::new(synced.clone())));
                done[index] = Some(synced);
            }
            Err(e) => run.stop_for(Stop::Worker(format!("a change's task failed: {e}"))),
        }
    }
    done.into_iter()
        .zip(&plan.rows)
        .map(|(synced, row)| {
            synced.unwrap_or_else(|| SyncedRow::new(row.clone(), RowStatus::NotSent))
        })
        .collect()
}

/// A row that needs no request: journaled when it adopts a note.
fn without_request(run: &Run, row: &PlannedRow) -> SyncedRow {
    let status = match (row.action, &row.note_id) {
        (SyncAction::Adopt, Some(note)) => {
            if run.write(&run.entry("done", Op::Adopt, row, note, None)) {
                RowStatus::Done
            } else {
                RowStatus::NotSent
            }
        }
        (SyncAction::Fail, _) => RowStatus::Failed(row.failure.clone().unwrap_or(Failure {
            status: None,
            kind: FailureKind::Api,
            reason: row.reason.clone().unwrap_or_default(),
        })),
        _ => RowStatus::Done,
    };
    SyncedRow::new(row.clone(), status)
}

/// What one change came to: its status, the note it ended on, and whether it was found made
/// already (see [`SyncReport::already`](super::SyncReport::already)).
struct Ended {
    status: RowStatus,
    note: Option<String>,
    already: bool,
    /// An undo's add back that found the note never deleted, with other text, and put its text
    /// back in place: an update, counted as one.
    updated: bool,
}

impl Ended {
    /// A change this run made, or tried to.
    fn made(status: RowStatus, note: String) -> Self {
        Self {
            status,
            note: Some(note),
            already: false,
            updated: false,
        }
    }

    /// A change found made already when `already` (nothing this run sent made it).
    fn found(status: RowStatus, note: String, already: bool) -> Self {
        Self {
            already,
            ..Self::made(status, note)
        }
    }
}

/// One change that sends a request.
async fn change(run: &Run, row: &PlannedRow) -> Ended {
    let (Ok(call), Some(note)) = (CallId::new(&row.call_id), row.note_id.clone()) else {
        let failure = Failure {
            status: None,
            kind: FailureKind::Local,
            reason: format!("the plan's call {} or note is not valid", row.call_id),
        };
        return Ended {
            note: None,
            ..Ended::made(RowStatus::Failed(failure), String::new())
        };
    };
    match row.action {
        SyncAction::Add => match settle_pending(run, row, &call).await {
            Some(settled) => settled,
            None => {
                let (status, id) = add(run, row, &call, row.k).await;
                Ended::made(status, id)
            }
        },
        SyncAction::Update => Ended::made(update(run, row, &call, &note).await, note),
        SyncAction::Delete => {
            let (status, already) = delete(run, row, &call, &note).await;
            Ended::found(status, note, already)
        }
        _ => Ended::made(RowStatus::Done, note),
    }
}

/// Adds the row's note as its `k`-th ID; an unknown outcome is looked up, and sent once more
/// under the next ID only when certainly absent. Gives the status and the note's ID.
async fn add(run: &Run, row: &PlannedRow, call: &CallId, k: u32) -> (RowStatus, String) {
    let note_id = super::journal::note_id(&row.call_id, &row.key, k);
    let Some(text) = &row.new else {
        return (RowStatus::NotSent, note_id);
    };
    let Some(sent) = run.intent(Op::Add, row, &note_id, Some(k)) else {
        return (RowStatus::NotSent, note_id);
    };
    let mut note = NewNote::new(text.content.clone()).id(note_id.clone());
    if let Some(flag) = text.flagged {
        note = note.flagged(flag);
    }
    let ended = |status, id: &str| (run.ended(Op::Add, row, id, status), id.to_string());
    let error = match run
        .client
        .add_note_with(call, note.clone(), &run.control().observer(&sent))
        .await
    {
        Ok(answer) => {
            let id = added_id(run, &answer, &note_id, &text.content);
            return ended(RowStatus::Done, &id);
        }
        Err(e) if e.outcome() == Outcome::NotApplied => {
            return (run.refused(Op::Add, row, &note_id, &e), note_id);
        }
        Err(e) => e,
    };
    if !run.reconcile {
        // Without a look, what the answer says: added (a `409` for its ID, or a `2xx` whose body
        // could not be read), else unknown.
        let status = if error.outcome() == Outcome::Applied {
            RowStatus::Done
        } else {
            RowStatus::Unknown(error.to_string())
        };
        return ended(status, &note_id);
    }
    let pending = PendingAdd::from_error(&note, &error)
        .unwrap_or_else(|| PendingAdd::new(note_id.clone(), text.content.clone()));
    match settle(run, call, &pending, &text.content).await {
        Ok(Settled::Found { note, .. }) => {
            let id = note.id.clone().unwrap_or(note_id);
            ended(RowStatus::Done, &id)
        }
        Ok(Settled::Absent) if k == row.k => {
            ended(RowStatus::Failed(crate::line::failure(&error)), &note_id);
            Box::pin(add(run, row, call, k + 1)).await
        }
        Ok(Settled::Absent) => ended(RowStatus::Failed(crate::line::failure(&error)), &note_id),
        Ok(_) => {
            let status = RowStatus::Unknown(format!(
                "{error}; looking the note up on its call could not tell whether it was added"
            ));
            ended(status, &note_id)
        }
        Err(e) => {
            let status = RowStatus::Unknown(format!("{error}; looking it up failed: {e}"));
            ended(status, &note_id)
        }
    }
}

/// The ID the API gave the note it added: the one sent, or, from a server that does not keep the
/// IDs clients choose, its own, which stops the run (a sync finds its notes by their IDs).
fn added_id(run: &Run, answer: &happyrobot::types::Call, sent: &str, content: &str) -> String {
    let given = happyrobot::added_note(answer, Some(sent), content).and_then(|n| n.id.clone());
    match given {
        Some(id) if id != sent => {
            run.stop_for(Stop::Refused(format!(
                "the API gave the note added as {sent} the ID {id}: it does not keep the IDs \
                 clients choose, which a sync needs to find its notes again; the note is recorded \
                 under the API's ID and nothing more was sent"
            )));
            id
        }
        _ => sent.to_string(),
    }
}

/// Looks a pending add up. A note with the same text under another ID makes the look undecided,
/// unless every such note is one this run knows (another row's): then the add is absent.
async fn settle(
    run: &Run,
    call: &CallId,
    pending: &PendingAdd,
    content: &str,
) -> Result<Settled, happyrobot::Error> {
    let settled = run
        .client
        .settle_add(call, pending, None, &run.control())
        .await?;
    if !matches!(settled, Settled::Undecided(Undecided::SameTextOtherId)) {
        return Ok(settled);
    }
    let answer = run.client.get_call_with(call, &run.control()).await?;
    let notes = answer.into_inner().notes.unwrap_or_default();
    let all_known = notes
        .iter()
        .filter(|n| n.content.as_deref() == Some(content))
        .all(|n| {
            n.id.as_ref()
                .is_some_and(|id| run.known.contains(id) && !pending.note_ids().contains(id))
        });
    Ok(if all_known { Settled::Absent } else { settled })
}

/// Settles the adds of an earlier run whose outcome is unknown: found, the row is done (its
/// note adopted; for an undo's add back, found under the note's own ID, never deleted: found
/// so); certainly absent (a late apply waited for), `None`: send it.
async fn settle_pending(run: &Run, row: &PlannedRow, call: &CallId) -> Option<Ended> {
    let (pending, text) = (row.pending.as_ref()?, row.new.as_ref()?);
    let (first, others) = pending.ids.split_first()?;
    let mut look = others.iter().fold(
        PendingAdd::new(first.clone(), text.content.clone()),
        |p, id| p.also_id(id.clone()),
    );
    // Its last attempt: as long as the client lets one take, for a killed run's (see
    // `last_attempt`).
    let (sent, took) = pending.attempt(run.client.timeout());
    look = look.sent(sent, took);
    let (status, id) = match settle(run, call, &look, &text.content).await {
        Ok(Settled::Absent) => return None,
        Ok(Settled::Found { note, .. }) => {
            let id = note.id.clone().unwrap_or_else(|| first.clone());
            let never_deleted = pending.own_first && id == *first;
            if !text_matches(&note, text) {
                let (status, id) = edited_since(run, row, call, &note, id).await;
                return Some(Ended {
                    updated: never_deleted,
                    ..Ended::made(status, id)
                });
            }
            let status = run.ended(Op::Add, row, &id, RowStatus::Done);
            return Some(Ended::found(status, id, never_deleted));
        }
        Ok(_) => (
            RowStatus::Unknown(
                "an earlier add's outcome is unknown and looking it up could not tell".to_string(),
            ),
            first.clone(),
        ),
        Err(e) => (
            RowStatus::Unknown(format!("looking up an earlier add failed: {e}")),
            first.clone(),
        ),
    };
    Some(Ended::made(run.ended(Op::Add, row, &id, status), id))
}

/// An earlier add of the row, found on its call with the text the row had then (the row was
/// edited since it was sent): journaled as added with that text, then changed in place to the
/// row's. Gives the update's status and the note's ID.
async fn edited_since(
    run: &Run,
    row: &PlannedRow,
    call: &CallId,
    note: &happyrobot::types::Note,
    id: String,
) -> (RowStatus, String) {
    let found = Some(NoteText {
        content: note.content.clone().unwrap_or_default(),
        flagged: note.flagged,
    });
    let added = PlannedRow {
        new: found.clone(),
        ..row.clone()
    };
    run.ended(Op::Add, &added, &id, RowStatus::Done);
    let edit = PlannedRow {
        action: SyncAction::Update,
        note_id: Some(id.clone()),
        old: found,
        ..row.clone()
    };
    (update(run, &edit, call, &id).await, id)
}

/// Changes the row's note in place.
async fn update(run: &Run, row: &PlannedRow, call: &CallId, note: &str) -> RowStatus {
    let (Some(text), Ok(note_id)) = (&row.new, NoteId::new(note)) else {
        return RowStatus::NotSent;
    };
    let Some(sent) = run.intent(Op::Update, row, note, None) else {
        return RowStatus::NotSent;
    };
    let mut changes = NoteChanges::new().content(text.content.clone());
    if let Some(flag) = text.flagged {
        changes = changes.flagged(flag);
    }
    let status = match run
        .client
        .update_note_with(call, &note_id, changes, &run.control().observer(&sent))
        .await
    {
        Ok(_) => RowStatus::Done,
        Err(e) if e.outcome() == Outcome::NotApplied => {
            return run.refused(Op::Update, row, note, &e);
        }
        Err(e) if !run.in_doubt(&e) => RowStatus::Unknown(e.to_string()),
        Err(e) => match holds(run, call, note).await {
            Some(Some(now)) if text_matches(&now, text) => RowStatus::Done,
            _ => RowStatus::Unknown(e.to_string()),
        },
    };
    run.ended(Op::Update, row, note, status)
}

/// Deletes the note. One already gone is done and found so (`true`), as is one the plan found
/// gone with its call (journaled, nothing sent).
async fn delete(run: &Run, row: &PlannedRow, call: &CallId, note: &str) -> (RowStatus, bool) {
    let Ok(note_id) = NoteId::new(note) else {
        return (RowStatus::NotSent, false);
    };
    if row.gone_with_call
        && let Some(status) = forget_gone(run, row, call, note).await
    {
        return (status, true);
    }
    let Some(sent) = run.intent(Op::Delete, row, note, None) else {
        return (RowStatus::NotSent, false);
    };
    let (status, already) = match run
        .client
        .delete_note_with(call, &note_id, &run.control().observer(&sent))
        .await
    {
        Ok(_) => (RowStatus::Done, false),
        // The API's word that the note was gone before, checked against the call's notes: a
        // server may answer so of a note it holds.
        Err(e) if e.is_note_already_gone() => match holds(run, call, note).await {
            Some(None) => (RowStatus::Done, true),
            Some(Some(_)) => return (run.refused(Op::Delete, row, note, &e), false),
            None => (RowStatus::Unknown(e.to_string()), false),
        },
        Err(e) if e.is_note_not_found() => (RowStatus::Done, false),
        Err(e) if e.outcome() == Outcome::NotApplied => {
            return (run.refused(Op::Delete, row, note, &e), false);
        }
        Err(e) if !run.in_doubt(&e) => (RowStatus::Unknown(e.to_string()), false),
        Err(e) => match holds(run, call, note).await {
            Some(None) => (RowStatus::Done, false),
            _ => (RowStatus::Unknown(e.to_string()), false),
        },
    };
    (run.ended(Op::Delete, row, note, status), already)
}

/// A note the plan found gone with its call, its call proven gone (see [`crate::gone`]; a plan
/// may be applied long after it was made): forgotten (a `gone` entry, nothing sent); `None` when
/// the proof fails (the call is back, or the API cannot be believed), to be deleted as any other
/// note, which says what the API says; not sent when the run stopped.
async fn forget_gone(run: &Run, row: &PlannedRow, call: &CallId, note: &str) -> Option<RowStatus> {
    let cell = {
        let mut gone = run
            .gone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(gone.entry(call.to_string()).or_default())
    };
    let proven = *cell
        .get_or_init(|| async {
            let calls = std::collections::HashSet::from([call.to_string()]);
            let witnesses = || run.witnesses.clone();
            !crate::gone::confirmed(&run.client, &run.stop, 1, &calls, witnesses)
                .await
                .is_empty()
        })
        .await;
    if run.stop.is_cancelled() {
        return Some(RowStatus::NotSent);
    }
    if !proven {
        return None;
    }
    let gone = run.entry("gone", Op::Delete, row, note, None);
    Some(if run.write(&gone) {
        RowStatus::Done
    } else {
        RowStatus::NotSent
    })
}

/// Up to three calls of the plan's rows that it read (a row it could not plan may name a call that
/// does not exist) and did not find gone.
fn witnesses(plan: &SyncPlan) -> Vec<String> {
    let mut calls: Vec<String> = Vec::new();
    let read = |row: &&PlannedRow| !row.gone_with_call && row.action != SyncAction::Fail;
    for row in plan.rows.iter().filter(read) {
        if calls.len() == 3 {
            break;
        }
        if !calls.contains(&row.call_id) {
            calls.push(row.call_id.clone());
        }
    }
    calls
}

/// The note `note` as `call` holds it now (`Some(None)`: not there); `None` when the call could
/// not be read.
async fn holds(run: &Run, call: &CallId, note: &str) -> Option<Option<happyrobot::types::Note>> {
    let read = run.client.get_call_with(call, &run.control()).await.ok()?;
    let notes = read.into_inner().notes.unwrap_or_default();
    Some(notes.into_iter().find(|n| n.id.as_deref() == Some(note)))
}

fn text_matches(note: &happyrobot::types::Note, text: &super::NoteText) -> bool {
    note.content.as_deref() == Some(text.content.as_str())
        && text
            .flagged
            .is_none_or(|f| note.flagged.unwrap_or(false) == f)
}

/// The report of the rows as they ended.
fn report(rows: Vec<SyncedRow>, stopped: Option<Stop>, plan: &SyncPlan) -> SyncReport {
    let mut report = SyncReport {
        journal: plan.journal.clone(),
        undo: plan.undo,
        stopped,
        ..SyncReport::default()
    };
    for row in &rows {
        let counter = match (&row.status, row.planned.action) {
            (RowStatus::Done, _) if row.already => &mut report.already,
            (RowStatus::Done, _) if row.updated_instead => &mut report.updated,
            (RowStatus::Done, SyncAction::Add) => &mut report.added,
            (RowStatus::Done, SyncAction::Update) => &mut report.updated,
            (RowStatus::Done, SyncAction::Delete) => &mut report.deleted,
            (RowStatus::Done, SyncAction::Unchanged | SyncAction::Adopt) => &mut report.unchanged,
            (RowStatus::Done, SyncAction::Keep) => &mut report.kept,
            (RowStatus::Done, _) => continue,
            (RowStatus::Failed(_), _) => &mut report.failed,
            (RowStatus::Unknown(_), _) => &mut report.unknown,
            (RowStatus::NotSent, _) => &mut report.not_sent,
        };
        *counter += 1;
    }
    report.rows = rows;
    report
}

impl SyncedRow {
    pub(crate) fn new(planned: PlannedRow, status: RowStatus) -> Self {
        let note_id = planned.note_id.clone();
        Self {
            planned,
            status,
            note_id,
            already: false,
            updated_instead: false,
        }
    }
}
