//! Progress of a bulk run on stderr: a bar when stderr is a terminal, plain lines every two
//! seconds when it is not (a log file, CI), so that a long run never looks stuck. It counts the
//! run's events itself, and reads the client's rate statistics for the pace and the refusals.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use happyrobot::Client;
use happyrobot_bulk::{Event, LineOutcome};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// What the progress shows, counted from the run's events.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    total: AtomicU64,
    done: AtomicU64,
    added: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
}

impl Counts {
    /// Counts one event.
    pub(crate) fn count(&self, event: &Event) {
        let line = match event {
            Event::Line(line) => line,
            Event::Started { lines } => {
                self.total.store(*lines, Ordering::Relaxed);
                return;
            }
            _ => return,
        };
        self.done.fetch_add(1, Ordering::Relaxed);
        let counter = match line.outcome {
            LineOutcome::Added { .. } | LineOutcome::Deleted { .. } => &self.added,
            LineOutcome::Failed(_) => &self.failed,
            LineOutcome::Unknown(_) => &self.unknown,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The running progress display; [`Progress::finish`] stops it.
pub(crate) struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The counts as one line: what became of the lines, and how the server's rate limit went.
fn message(counts: &Counts, client: &Client, done_word: &str, started: Instant) -> (u64, String) {
    let done = counts.done.load(Ordering::Relaxed);
    let rate = client.rate_stats();
    let elapsed = started.elapsed().as_secs_f64().max(0.001);
    let mut text = format!(
        "{done_word} {}, failed {}, unknown {}, {:.1} requests/s",
        counts.added.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        counts.unknown.load(Ordering::Relaxed),
        rate.sent as f64 / elapsed,
    );
    if rate.throttled > 0 {
        text.push_str(&format!(", refused (429) {}x", rate.throttled));
        if let Some(pace) = rate.pacing {
            text.push_str(&format!(", pacing at {pace:.1}/s"));
        }
    }
    (done, text)
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
        let (stop, mut stopped) = oneshot::channel::<()>();
        let bar = std::io::stderr().is_terminal() && !verbose;
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let lines_per_sec =
                |done: u64| done as f64 / started.elapsed().as_secs_f64().max(0.001);
            let total = || counts.total.load(Ordering::Relaxed);
            if bar {
                let bar =
                    ProgressBar::with_draw_target(Some(total()), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} lines  {msg}  eta {eta}",
                ) {
                    bar.set_style(style);
                }
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    let (done, text) = message(&counts, &client, done_word, started);
                    bar.set_length(total());
                    bar.set_position(done);
                    bar.set_message(format!("{text}, {:.0} lines/s", lines_per_sec(done)));
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => {}
                    }
                }
                bar.finish_and_clear();
            } else {
                let mut tick = tokio::time::interval(PLAIN_EVERY);
                // The first tick is immediate; nothing has happened yet then.
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => {}
                    }
                    let (done, text) = message(&counts, &client, done_word, started);
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "progress: {done}/{} lines ({text}), {:.0} lines/s",
                        total(),
                        lines_per_sec(done)
                    );
                }
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
