//! Progress of an import on stderr: a bar when stderr is a terminal, plain lines every two
//! seconds when it is not (a log file, CI), so that a long import never looks stuck.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Stats;
use super::gate::Gate;

/// How often the plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// The running progress display; [`Progress::finish`] stops it.
pub(crate) struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn counts(stats: &Stats, gate: &Gate) -> (u64, String) {
    let processed = stats.processed.load(Ordering::Relaxed);
    let message = format!(
        "added {}, failed {}, unknown {}{}{}",
        stats.added.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.unknown.load(Ordering::Relaxed),
        match stats.rate_limited.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(", rate limited {n}x"),
        },
        match gate.remaining() {
            Some(left) => format!(" (paused {:.1}s as the API asked)", left.as_secs_f64()),
            None => String::new(),
        }
    );
    (processed, message)
}

impl Progress {
    /// Starts showing progress towards `total` lines. With `verbose`, log lines share stderr, so
    /// the plain form is used even on a terminal (a bar would be torn by them).
    pub(crate) fn start(total: u64, stats: Arc<Stats>, gate: Arc<Gate>, verbose: bool) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let bar = std::io::stderr().is_terminal() && !verbose;
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let rate =
                |processed: u64| processed as f64 / started.elapsed().as_secs_f64().max(0.001);
            if bar {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} lines  {msg}  eta {eta}",
                ) {
                    bar.set_style(style);
                }
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    let (processed, message) = counts(&stats, &gate);
                    bar.set_position(processed);
                    bar.set_message(format!("{message}, {:.0} lines/s", rate(processed)));
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => {}
                    }
                }
                let (processed, message) = counts(&stats, &gate);
                bar.set_position(processed);
                bar.set_message(message);
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
                    let (processed, message) = counts(&stats, &gate);
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "progress: {processed}/{total} lines ({message}), {:.0} lines/s",
                        rate(processed)
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
