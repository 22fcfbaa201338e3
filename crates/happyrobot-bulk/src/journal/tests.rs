//! The journal's reading rules, entry by entry: what decides a line, what another destination's
//! entries count for, what a kill mid-write leaves, and what each kind of damage costs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::{Path, PathBuf};

use super::*;
use crate::journal::state::{Keep, Standing};

/// A path `name` in a directory of its own (see the mock's `testkit::temp_dir`, whose directories
/// a later test run sweeps away once this one has ended).
pub(crate) fn temp_path(name: &str) -> PathBuf {
    happyrobot_mock::testkit::temp_dir("bulk-journal")
        .unwrap()
        .join(name)
}

fn here() -> Destination {
    Destination::new("http://127.0.0.1:1/api/v1", "k")
}

fn open(path: &Path) -> (JournalWriter, JournalState) {
    JournalWriter::open(path, &here(), false, Keep::default()).unwrap()
}

fn load(path: &Path) -> JournalState {
    JournalState::load(path, &here(), Keep::default()).unwrap()
}

fn line(event: Event, n: u64, fp: u64) -> Entry {
    Entry {
        k: Some(0),
        ..Entry::line(event, n, (fp, 0))
    }
}

fn run_entry(destination: &Destination) -> Entry {
    Entry {
        event: Some(Event::Run),
        file: Some("notes.csv".into()),
        format: Some("csv".into()),
        version: Some(VERSION),
        content: Some("c0ffee".into()),
        base_url: Some(destination.base_url.clone()),
        key: Some(destination.key_hash.clone()),
        ..Entry::default()
    }
}

fn state_of(state: &JournalState, fp: u64) -> Standing {
    state.standing((fp, 0))
}

fn done() -> Standing {
    Standing {
        state: Some(LineState::Done),
        in_doubt: false,
    }
}

/// Writes a journal of one run: line 2 done, 3 failed, 4 unknown, 5 in flight, 6 failed then done.
fn sample(path: &Path) {
    let (writer, _) = open(path);
    writer.write(&run_entry(&here())).unwrap();
    for (event, n) in [
        (Event::Start, 2),
        (Event::Done, 2),
        (Event::Start, 3),
        (Event::Failed, 3),
        (Event::Start, 4),
        (Event::Unknown, 4),
        (Event::Start, 5),
        (Event::Start, 6),
        (Event::Failed, 6),
        (Event::Start, 6),
        (Event::Done, 6),
    ] {
        writer.write(&line(event, n, n * 100)).unwrap();
    }
}

#[test]
fn the_last_entry_of_a_line_decides_and_a_lone_start_is_unknown() {
    let path = temp_path("j.journal");
    sample(&path);
    let state = load(&path);
    assert_eq!(state.len(), 5);
    assert_eq!(state_of(&state, 200), done());
    assert_eq!(state_of(&state, 300).state, Some(LineState::Failed));
    assert_eq!(
        state_of(&state, 400).state,
        Some(LineState::Unknown { interrupted: false })
    );
    assert_eq!(
        state_of(&state, 500).state,
        Some(LineState::Unknown { interrupted: true })
    );
    assert_eq!(state_of(&state, 600), done());
    assert_eq!(state_of(&state, 700).state, None);
    assert!(state.contents.contains("c0ffee"));
}

/// The journal's lines, to damage one by one.
fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn damage_to_the_first_line_costs_no_line_anything() {
    // Issue 20: the `run` entry was a single point of failure. Now every entry stands alone.
    let path = temp_path("first.journal");
    sample(&path);
    let lines = lines_of(&path);
    let variants: Vec<(&str, Vec<String>)> = vec![
        (
            "garbage",
            [vec!["#!garbage#!".to_string()], lines[1..].to_vec()].concat(),
        ),
        (
            "cut",
            [vec![lines[0][..20].to_string()], lines[1..].to_vec()].concat(),
        ),
        ("deleted", lines[1..].to_vec()),
        (
            "emptied",
            [vec![String::new()], lines[1..].to_vec()].concat(),
        ),
        ("swapped", {
            let mut swapped = lines.clone();
            swapped.swap(0, 4);
            swapped
        }),
    ];
    for (what, damaged) in variants {
        write_lines(&path, &damaged);
        let state = load(&path);
        assert_eq!(state_of(&state, 200), done(), "{what}");
        assert_eq!(state_of(&state, 600), done(), "{what}");
        assert_eq!(
            state_of(&state, 300).state,
            Some(LineState::Failed),
            "{what}"
        );
        // A line never sent is still new: the damage was a `run` entry, which no line's standing
        // depends on.
        assert!(!state_of(&state, 900).in_doubt, "{what}");
    }
}

#[test]
fn a_damaged_done_entry_leaves_its_line_in_doubt_with_its_note_id() {
    let path = temp_path("done.journal");
    sample(&path);
    let mut lines = lines_of(&path);
    // Line 2's `done` (the third journal line): one character changed.
    lines[2] = lines[2].replace("\"done\"", "\"dune\"");
    write_lines(&path, &lines);
    let state = load(&path);
    assert_eq!(state.damaged, [3]);
    let standing = state_of(&state, 200);
    assert!(standing.in_doubt, "{standing:?}");
    // Its `start` is intact: the ID it was sent with can be looked up.
    let salt = state.salt();
    assert!(
        state
            .candidates((200, 0))
            .contains(&note_id(&salt, (200, 0), 0))
    );
    // Another line's entries are untouched.
    assert_eq!(state_of(&state, 600), done());
}

#[test]
fn an_entry_missing_from_the_middle_puts_every_line_before_it_in_doubt() {
    let path = temp_path("gap.journal");
    sample(&path);
    let mut lines = lines_of(&path);
    // Line 5's `start` (journal line 8) is gone, and nothing says what it was.
    lines.remove(7);
    write_lines(&path, &lines);
    let state = load(&path);
    for fp in [200, 300, 400] {
        assert!(
            state_of(&state, fp).in_doubt,
            "{fp}: written before the gap"
        );
    }
    assert_eq!(state_of(&state, 600), done(), "settled after the gap");
    let never = state_of(&state, 900);
    assert!(
        never.in_doubt && never.state.is_none(),
        "a line never written may be the missing one"
    );
    let salt = state.salt();
    assert_eq!(state.candidates((900, 0)), [note_id(&salt, (900, 0), 0)]);
}

#[test]
fn entries_for_another_destination_do_not_count() {
    let path = temp_path("dest.journal");
    let mock = Destination::new("http://127.0.0.1:9/api/v1", "k");
    let (writer, _) = JournalWriter::open(&path, &mock, false, Keep::default()).unwrap();
    writer.write(&run_entry(&mock)).unwrap();
    writer.write(&line(Event::Done, 2, 1)).unwrap();
    drop(writer);
    let rotated = Destination::new("http://127.0.0.1:1/api/v1", "other key");
    let (writer, _) = JournalWriter::open(&path, &rotated, false, Keep::default()).unwrap();
    writer.write(&run_entry(&rotated)).unwrap();
    writer.write(&line(Event::Done, 3, 2)).unwrap();
    drop(writer);
    let state = load(&path);
    assert_eq!(state_of(&state, 1).state, None, "done on the mock only");
    assert_eq!(state_of(&state, 2), done());
    assert!(state.other_key);
    assert!(state.other_destinations.contains(&mock.base_url));
    let state = JournalState::load(&path, &mock, Keep::default()).unwrap();
    assert_eq!(state_of(&state, 1), done());
    assert_eq!(state_of(&state, 2).state, None);
}

#[test]
fn notes_added_under_another_key_are_told_from_a_run_under_it_that_added_none() {
    let path = temp_path("keys.journal");
    let other = Destination::new("http://127.0.0.1:1/api/v1", "another key");
    let write = |destination: &Destination, done: Option<(u64, u64)>| {
        let (writer, _) = JournalWriter::open(&path, destination, false, Keep::default()).unwrap();
        writer.write(&run_entry(destination)).unwrap();
        if let Some((n, fp)) = done {
            writer.write(&line(Event::Done, n, fp)).unwrap();
        }
    };
    // A run under another key that added nothing (a mistyped key, refused), then this key's.
    write(&other, None);
    write(&here(), Some((1, 1)));
    let state = load(&path);
    assert!(state.other_key && !state.added_by_other_key);
    // A note added under the other key.
    write(&other, Some((2, 2)));
    assert!(load(&path).added_by_other_key);
}

#[test]
fn a_note_counted_gone_without_its_delete_stays_unseen_until_an_add() {
    let path = temp_path("gone-unseen.journal");
    let (writer, _) = open(&path);
    writer.write(&run_entry(&here())).unwrap();
    let undone = |n: u64, reason: Option<&str>| Entry {
        reason: reason.map(str::to_string),
        ..line(Event::Undone, n, n)
    };
    for n in [1, 2, 3] {
        writer.write(&line(Event::Done, n, n)).unwrap();
    }
    // Deleted by the undo; counted gone (the API said so); counted gone, then a send failed.
    writer.write(&undone(1, None)).unwrap();
    writer.write(&undone(2, Some("gone"))).unwrap();
    writer.write(&undone(3, Some("gone"))).unwrap();
    writer.write(&line(Event::Failed, 3, 3)).unwrap();
    let state = load(&path);
    let unseen = |fp: u64| state.gone_unseen((fp, 0));
    assert_eq!([unseen(1), unseen(2), unseen(3)], [false, true, true]);
    // Found or added again: seen.
    writer.write(&line(Event::Done, 2, 2)).unwrap();
    assert!(!load(&path).gone_unseen((2, 0)));
}

#[test]
fn urls_are_compared_normalised_and_keys_only_by_hash() {
    assert_eq!(
        normalize_url(" HTTPS://App.HappyRobot.ai/api/v1/ "),
        "https://app.happyrobot.ai/api/v1"
    );
    let hash = key_hash("hr_secret_key");
    assert_eq!(hash.len(), 32);
    assert!(!hash.contains("secret"));
    assert_ne!(hash, key_hash("hr_secret_kez"));
    // The same value as the release before: its journals keep telling keys apart.
    assert_eq!(key_hash("k"), key_hash("k"));
}

#[test]
fn a_missing_or_empty_journal_has_no_line_sent() {
    let state = load(&temp_path("absent.journal"));
    assert_eq!(state.len(), 0);
    let empty = temp_path("empty.journal");
    std::fs::write(&empty, "").unwrap();
    let state = load(&empty);
    assert_eq!(state.len(), 0);
    assert!(!state_of(&state, 1).in_doubt);
}

#[test]
fn an_entry_cut_by_a_kill_is_dropped_and_the_file_repaired() {
    let path = temp_path("cut.journal");
    let (writer, _) = open(&path);
    writer.write(&run_entry(&here())).unwrap();
    writer.write(&line(Event::Done, 2, 7)).unwrap();
    drop(writer);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":3,\"event\":\"start\",\"li");
    std::fs::write(&path, text).unwrap();
    let (writer, state) = open(&path);
    assert_eq!(state_of(&state, 7), done());
    assert!(state.damaged.is_empty(), "a cut last entry is no damage");
    writer.write(&line(Event::Start, 3, 9)).unwrap();
    drop(writer);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    let state = load(&path);
    assert_eq!(
        state_of(&state, 9).state,
        Some(LineState::Unknown { interrupted: true })
    );
    assert!(!state_of(&state, 9).in_doubt);
}

#[test]
fn version_2_journals_keep_working() {
    let path = temp_path("v2.journal");
    let dest = here();
    let text = format!(
        "{{\"event\":\"run\",\"file\":\"/a.csv\",\"format\":\"csv\",\"version\":2,\"content\":\"c0ffee\",\"base_url\":\"{}\",\"key\":\"{}\",\"at\":1}}\n\
         {{\"event\":\"start\",\"line\":2,\"fp\":\"0000000000000001\",\"call_id\":\"65f1c0ffee0123456789abcd\",\"note_id\":\"aaaaaaaaaaaaaaaaaaaaaaaa\",\"at\":1}}\n\
         {{\"event\":\"done\",\"line\":2,\"fp\":\"0000000000000001\",\"note_id\":\"aaaaaaaaaaaaaaaaaaaaaaaa\",\"at\":1}}\n\
         {{\"event\":\"start\",\"line\":3,\"fp\":\"0000000000000002\",\"call_id\":\"65f1c0ffee0123456789abcd\",\"note_id\":\"bbbbbbbbbbbbbbbbbbbbbbbb\",\"at\":1}}\n",
        dest.base_url, dest.key_hash
    );
    std::fs::write(&path, text).unwrap();
    let state = load(&path);
    assert_eq!(state_of(&state, 1), done());
    assert_eq!(
        state_of(&state, 2).state,
        Some(LineState::Unknown { interrupted: true })
    );
    assert_eq!(state.candidates((2, 0)), ["bbbbbbbbbbbbbbbbbbbbbbbb"]);
    assert!(state.contents.contains("c0ffee"));
    // For an undo, the ID a done line was added as.
    let undo = JournalState::load(
        &path,
        &dest,
        Keep {
            done_notes: true,
            reasons: false,
        },
    )
    .unwrap();
    assert_eq!(
        undo.done_id((1, 0)).as_deref(),
        Some("aaaaaaaaaaaaaaaaaaaaaaaa")
    );
    // Resumed by this version: its entries are appended in version 3, and both are read.
    let (writer, _) = open(&path);
    writer.write(&run_entry(&dest)).unwrap();
    writer.write(&line(Event::Done, 3, 2)).unwrap();
    drop(writer);
    let state = load(&path);
    assert_eq!(state_of(&state, 2), done());
    assert_eq!(state_of(&state, 1), done());
}

#[test]
fn a_damaged_version_2_run_entry_puts_its_lines_in_doubt_instead_of_sending_them() {
    let path = temp_path("v2-damaged.journal");
    let text = "{\"event\":\"rxn\",garbage\n\
         {\"event\":\"done\",\"line\":2,\"fp\":\"0000000000000001\",\"note_id\":\"aaaaaaaaaaaaaaaaaaaaaaaa\",\"at\":1}\n";
    std::fs::write(&path, text).unwrap();
    let state = load(&path);
    let standing = state_of(&state, 1);
    assert!(standing.in_doubt, "{standing:?}");
    assert_eq!(state.candidates((1, 0)), ["aaaaaaaaaaaaaaaaaaaaaaaa"]);
}

#[test]
fn old_and_newer_journals_are_refused_with_what_to_do() {
    let path = temp_path("v1.journal");
    std::fs::write(
        &path,
        "{\"event\":\"run\",\"file\":\"a.csv\",\"version\":1,\"at\":0}\n",
    )
    .unwrap();
    let error = JournalState::load(&path, &here(), Keep::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("earlier version") && error.contains("nothing was sent"),
        "{error}"
    );
    let newer = temp_path("v9.journal");
    let mut entry = run_entry(&here());
    entry.version = Some(9);
    entry.seq = Some(1);
    entry.dest = Some(here().id());
    let mut line = entry.encode().unwrap();
    line.push(b'\n');
    std::fs::write(&newer, line).unwrap();
    let error = JournalState::load(&newer, &here(), Keep::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("newer version"), "{error}");
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
    let path = temp_path("locked.journal");
    let (first, _) = open(&path);
    let error = JournalWriter::open(&path, &here(), false, Keep::default()).unwrap_err();
    assert!(matches!(error, JournalError::Locked(_)), "{error}");
    drop(first);
    assert!(JournalWriter::open(&path, &here(), false, Keep::default()).is_ok());
}

#[cfg(unix)]
#[test]
fn a_new_journal_is_private_and_only_a_regular_file_is_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = temp_path("mode.journal");
    drop(open(&path));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let link = temp_path("null.journal");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let error = JournalWriter::open(&link, &here(), false, Keep::default()).unwrap_err();
    assert!(matches!(error, JournalError::NotRegular(..)), "{error}");
    assert!(error.to_string().contains("device"), "{error}");
    assert!(JournalState::load(&link, &here(), Keep::default()).is_err());
}

#[test]
fn a_new_send_of_a_line_that_certainly_failed_reuses_its_id_and_others_get_new_ones() {
    let path = temp_path("k.journal");
    let (writer, _) = open(&path);
    writer.write(&run_entry(&here())).unwrap();
    writer.write(&line(Event::Start, 2, 1)).unwrap();
    writer.write(&line(Event::Failed, 2, 1)).unwrap();
    writer.write(&line(Event::Start, 3, 2)).unwrap();
    writer.write(&line(Event::Unknown, 3, 2)).unwrap();
    let absent = Entry {
        kind: Some("absent".into()),
        ..line(Event::Failed, 4, 3)
    };
    writer.write(&line(Event::Start, 4, 3)).unwrap();
    writer.write(&absent).unwrap();
    drop(writer);
    let state = load(&path);
    assert_eq!(
        state.next_k((1, 0)),
        0,
        "failed with an answer: its ID is on no call"
    );
    assert_eq!(state.next_k((2, 0)), 1, "unknown: a new ID");
    assert_eq!(
        state.next_k((3, 0)),
        1,
        "looked up and absent: never the same ID again"
    );
    assert_eq!(state.next_k((4, 0)), 0, "never sent");
}
