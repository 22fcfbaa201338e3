//! Progress of a bulk run on stderr: a one-line display when stderr is a terminal, cut to the
//! terminal's width so that it never wraps, cleared while any message is printed
//! ([`around_message`], which [`crate::print::err`] goes through) and showing the last server
//! error as it happens; plain lines every two seconds when it is not (a log file, CI), so that a
//! long run never looks stuck. It counts the run's events itself, and reads the client's rate
//! statistics for the pace and the refusals.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use happyrobot::Client;
use happyrobot_bulk::{Event, LineOutcome, RowStatus};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// The width assumed when the terminal does not say its own.
const DEFAULT_WIDTH: usize = 80;

/// The display on the terminal while a run shows one: messages clear it first.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `print` (which writes a message to stderr) with the progress display cleared first and
/// drawn again after, so that a message never lands in the middle of it.
pub(crate) fn around_message(print: impl FnOnce()) {
    let shown = SHOWN.lock().unwrap_or_else(PoisonError::into_inner);
    match shown.as_ref() {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// What became of a line (or a sync's change), as the progress counts it.
enum Outcome<'a> {
    Done,
    Failed(&'a str),
    Unknown(&'a str),
}

impl<'a> Outcome<'a> {
    fn of_line(outcome: &'a LineOutcome) -> Option<Self> {
        match outcome {
            LineOutcome::Added { .. } | LineOutcome::Deleted { .. } => Some(Self::Done),
            LineOutcome::Failed(failure) => Some(Self::Failed(&failure.reason)),
            LineOutcome::Unknown(unknown) => Some(Self::Unknown(&unknown.reason)),
            _ => None,
        }
    }

    fn of_sync(status: &'a RowStatus) -> Option<Self> {
        match status {
            RowStatus::Done => Some(Self::Done),
            RowStatus::Failed(failure) => Some(Self::Failed(&failure.reason)),
            RowStatus::Unknown(reason) => Some(Self::Unknown(reason)),
            _ => None,
        }
    }
}

/// What the progress shows, counted from the run's events.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    total: AtomicU64,
    done: AtomicU64,
    added: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
    /// The last line that failed or became unknown, and why, as it happened.
    last_error: Mutex<Option<String>>,
}

impl Counts {
    /// Counts one event.
    pub(crate) fn count(&self, event: &Event) {
        let (line, outcome) = match event {
            Event::Line(line) => (line.line, Outcome::of_line(&line.outcome)),
            // A sync's changes that send a request (those its `Started` counted).
            // One found made before the run is done, but not counted as a change made.
            Event::Synced(row) if row.planned.action.writes() => (
                row.planned.line.unwrap_or(0),
                Outcome::of_sync(&row.status).filter(|_| !row.already),
            ),
            Event::Started { lines } => {
                self.total.store(*lines, Ordering::Relaxed);
                return;
            }
            _ => return,
        };
        self.done.fetch_add(1, Ordering::Relaxed);
        let (counter, reason) = match outcome {
            Some(Outcome::Done) => (&self.added, None),
            Some(Outcome::Failed(reason)) => (&self.failed, Some(reason)),
            Some(Outcome::Unknown(reason)) => (&self.unknown, Some(reason)),
            None => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = reason {
            let text = short_error(line, reason);
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(text);
        }
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The running progress display; [`Progress::finish`] stops it.
pub(crate) struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The counts as one line, what matters first (the display cuts its end on a narrow
/// terminal): what became of the lines (failures and unknowns only once there are some), the last
/// error, the pace and the time left, and how the server's rate limit went.
fn message(counts: &Counts, client: &Client, done_word: &str, started: Instant) -> (u64, String) {
    let done = counts.done.load(Ordering::Relaxed);
    let total = counts.total.load(Ordering::Relaxed);
    let rate = client.rate_stats();
    let elapsed = started.elapsed().as_secs_f64().max(0.001);
    let lines_per_sec = done as f64 / elapsed;
    let mut text = format!("{done_word} {}", counts.added.load(Ordering::Relaxed));
    for (word, counter) in [("failed", &counts.failed), ("unknown", &counts.unknown)] {
        let count = counter.load(Ordering::Relaxed);
        if count > 0 {
            text.push_str(&format!(", {word} {count}"));
        }
    }
    if let Some(error) = counts.last_error() {
        text.push_str(&format!("; last error: {error}"));
    }
    text.push_str(&format!(
        "; {:.1} requests/s, {lines_per_sec:.0} lines/s",
        rate.sent as f64 / elapsed
    ));
    if lines_per_sec > 0.0 && total > done {
        let eta = ((total - done) as f64 / lines_per_sec).ceil();
        text.push_str(&format!(", eta {eta:.0}s"));
    }
    if rate.throttled > 0 {
        text.push_str(&format!(", refused (429) {}x", rate.throttled));
        match (rate.holding, rate.pacing) {
            (Some(wait), _) if wait >= Duration::from_secs(1) => text.push_str(&format!(
                ", waiting {} s as the server asked",
                wait.as_secs()
            )),
            (_, Some(pace)) => text.push_str(&format!(", pacing at {pace:.1}/s")),
            _ => {}
        }
    }
    (done, text)
}

/// A line's failure as the display shows it: its line and the reason's first clause, without the
/// words every API error starts with ("line 12: 503 Service Unavailable").
fn short_error(line: u64, reason: &str) -> String {
    let reason = crate::exit::in_cli_words(reason).replace(['\n', '\r'], " ");
    let reason = reason
        .strip_prefix("HappyRobot API answered ")
        .unwrap_or(&reason);
    let first = reason.split(": ").next().unwrap_or(reason);
    format!("line {line}: {first}")
}

/// The display's one line for `done` of `total` lines, `text` after the bar, cut to stop short of
/// the last of `width` columns (a line longer than the terminal wraps, and the display then
/// redraws below itself).
fn bar_line(done: u64, total: u64, text: &str, width: usize) -> String {
    let cells = if width >= 60 { 12 } else { 6 };
    let filled = (done.min(total) * cells as u64)
        .checked_div(total)
        .map_or(0, |f| f as usize);
    let line = format!(
        "[{}{}] {done}/{total} {text}",
        "#".repeat(filled),
        "-".repeat(cells - filled)
    );
    let room = width.saturating_sub(2);
    if line.chars().count() <= room {
        return line;
    }
    let mut cut: String = line.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The terminal's width in columns (stderr's), else [`DEFAULT_WIDTH`].
fn terminal_width() -> usize {
    terminal_size::terminal_size_of(std::io::stderr())
        .map_or(DEFAULT_WIDTH, |(width, _)| usize::from(width.0))
}

/// Draws the one-line display until `stopped`, then clears it.
async fn show_bar(
    counts: &Counts,
    client: &Client,
    done_word: &str,
    mut stopped: oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg}") {
        bar.set_style(style);
    }
    *SHOWN.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let (done, text) = message(counts, client, done_word, started);
        let total = counts.total.load(Ordering::Relaxed);
        bar.set_message(bar_line(done, total, &text, terminal_width()));
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
    }
    *SHOWN.lock().unwrap_or_else(PoisonError::into_inner) = None;
    bar.finish_and_clear();
}

/// Prints a plain progress line every [`PLAIN_EVERY`] until `stopped`.
async fn show_plain(
    counts: &Counts,
    client: &Client,
    done_word: &str,
    mut stopped: oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(PLAIN_EVERY);
    // The first tick is immediate; nothing has happened yet then.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        let (done, text) = message(counts, client, done_word, started);
        let _ = writeln!(
            std::io::stderr().lock(),
            "progress: {done}/{} lines ({text})",
            counts.total.load(Ordering::Relaxed),
        );
    }
}

impl Progress {
    /// Starts showing progress towards `total` lines. With `verbose`, log lines share stderr, so
    /// the plain form is used even on a terminal (a bar would be torn by them).
    pub(crate) fn start(
        counts: Arc<Counts>,
        client: Client,
        verbose: bool,
        done_word: &'static str,
    ) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let bar = std::io::stderr().is_terminal() && !verbose;
        let task = tokio::spawn(async move {
            if bar {
                show_bar(&counts, &client, done_word, stopped).await;
            } else {
                show_plain(&counts, &client, done_word, stopped).await;
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the display (clearing the bar) before the summary is printed.
    pub(crate) async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The task ends as soon as it sees the signal; waiting keeps its last output above
            // the summary rather than interleaved with it.
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_never_fills_a_line_of_the_terminal() {
        let long = "added 120, failed 2, unknown 1, 40.1 requests/s, 38 lines/s, eta 25s, \
                    refused (429) 3x, pacing at 9.5/s; last error: line 12: the API answered 503 \
                    Service Unavailable (request id abc); the outcome is unknown";
        for width in [20, 40, 80, 100, 200] {
            for (done, total) in [(0, 0), (5, 10), (10, 10), (12, 10), (123_456, 1_000_000)] {
                let line = bar_line(done, total, long, width);
                assert!(
                    line.chars().count() < width - 1,
                    "{width} columns: {} characters: {line}",
                    line.chars().count()
                );
            }
        }
        let short = bar_line(5, 10, "added 5", 100);
        assert_eq!(short, "[######------] 5/10 added 5");
    }

    #[test]
    fn the_last_error_is_its_line_and_the_first_clause_of_its_reason() {
        assert_eq!(
            short_error(
                12,
                "HappyRobot API answered 503 Service Unavailable: Injected failure: Service \
                 Unavailable.\nThe API failed"
            ),
            "line 12: 503 Service Unavailable"
        );
        assert_eq!(
            short_error(3, "the connection was refused"),
            "line 3: the connection was refused"
        );
    }
}
