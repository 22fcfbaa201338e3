//! `cargo xtask bench --rate-grid`: issue 18's grid of imports against a rate-limited mock. Limits
//! of 2, 10 and 50 requests a second (the mock's default burst, 1 + N/10), 5 ms and 50 ms per
//! answer, with and without `Retry-After`, 4 and 32 in flight, from the CLI (`notes import`) and
//! from the library (as many tasks on one `Client`). Every row gets a mock of its own.
//!
//! The ideal time is the lines beyond the burst over the rate: what a client that knew the limit
//! and sent at exactly that pace would take. It asserts nothing: it reports.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use crate::bench::{Mock, bin, run_cmd, start_mock_with};

/// Where a row's notes come from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Cli,
    Library,
}

/// One row of the grid.
#[derive(Clone, Copy, Debug)]
struct Row {
    side: Side,
    limit: u32,
    latency_ms: u32,
    retry_after: bool,
    concurrency: usize,
}

impl Row {
    /// Enough lines for about 20 s at the limit (12 s at 50/s), so that the start does not dominate.
    fn lines(&self) -> usize {
        match self.limit {
            2 => 40,
            10 => 200,
            _ => 600,
        }
    }

    /// The mock's default burst for this limit.
    fn burst(&self) -> usize {
        ((1.0 + f64::from(self.limit) / 10.0).round() as usize).max(1)
    }

    fn ideal_seconds(&self) -> f64 {
        (self.lines() - self.burst()) as f64 / f64::from(self.limit)
    }
}

/// What a row measured.
struct Measured {
    seconds: f64,
    sent: u64,
    refused: u64,
    failed: u64,
}

fn grid() -> Vec<Row> {
    let mut rows = Vec::new();
    for side in [Side::Cli, Side::Library] {
        for limit in [2, 10, 50] {
            for latency_ms in [5, 50] {
                for retry_after in [true, false] {
                    for concurrency in [4, 32] {
                        rows.push(Row {
                            side,
                            limit,
                            latency_ms,
                            retry_after,
                            concurrency,
                        });
                    }
                }
            }
        }
    }
    rows
}

fn mock_for(row: &Row, dir: &Path) -> Result<Mock, String> {
    let limit = row.limit.to_string();
    let latency = format!("{}ms", row.latency_ms);
    let retry_after = if row.retry_after { "seconds" } else { "none" };
    start_mock_with(
        50,
        dir,
        &[
            "--rate-limit",
            &limit,
            "--latency",
            &latency,
            "--rate-limit-retry-after",
            retry_after,
        ],
    )
}

fn json_of(out: &str) -> Result<serde_json::Value, String> {
    // The CLI prints its summary pretty (over several lines), the bench binary on one line: the
    // JSON is what follows the first line that opens an object.
    let at = if out.starts_with('{') {
        Some(0)
    } else {
        out.find("\n{").map(|i| i + 1)
    };
    let json = at.map_or("", |i| &out[i..]);
    serde_json::from_str(json).map_err(|e| format!("no JSON summary in {out:?}: {e}"))
}

fn run_row(row: &Row, dir: &Path, index: usize) -> Result<Measured, String> {
    let mock = mock_for(row, dir)?;
    let ids = std::fs::read_to_string(&mock.ids_file).map_err(|e| e.to_string())?;
    let ids: Vec<&str> = ids.lines().collect();
    let lines = row.lines();
    match row.side {
        Side::Cli => {
            let file = dir.join(format!("grid-{index}.csv"));
            let mut csv = String::from("call_id,content\n");
            for n in 0..lines {
                let _ = writeln!(csv, "{},Rate grid note {n}", ids[n % ids.len()]);
            }
            std::fs::write(&file, csv).map_err(|e| e.to_string())?;
            let journal = dir.join(format!("grid-{index}.journal"));
            let _ = std::fs::remove_file(&journal);
            let started = Instant::now();
            let out = run_cmd(
                Command::new(bin("happyrobot"))
                    .env(
                        "HAPPYROBOT_STATE_DIR",
                        dir.join(format!("grid-state-{index}")),
                    )
                    .args(["--base-url", &mock.base_url, "--api-key", &mock.api_key])
                    .args(["notes", "import"])
                    .arg(&file)
                    .arg("--journal")
                    .arg(&journal)
                    .args(["--concurrency", &row.concurrency.to_string()])
                    .args(["--output", "json"]),
            );
            let seconds = started.elapsed().as_secs_f64();
            let summary = json_of(&out?)?;
            let n = |k: &str| summary[k].as_u64().unwrap_or(0);
            let refused = n("rate_limited");
            Ok(Measured {
                seconds,
                sent: n("added") + n("failed") + n("unknown") + refused,
                refused,
                failed: n("failed") + n("unknown") + n("not_sent"),
            })
        }
        Side::Library => {
            let out = run_cmd(Command::new(bin("happyrobot-bench")).args([
                "rate",
                &mock.base_url,
                &mock.api_key,
                &mock.ids_file.to_string_lossy(),
                &lines.to_string(),
                &row.concurrency.to_string(),
            ]))?;
            let result = json_of(&out)?;
            Ok(Measured {
                seconds: result["seconds"].as_f64().unwrap_or(f64::NAN),
                sent: result["sent"].as_u64().unwrap_or(0),
                refused: result["refused"].as_u64().unwrap_or(0),
                failed: result["failed"].as_u64().unwrap_or(0),
            })
        }
    }
}

/// Runs the grid, `jobs` rows at a time (the rows are mostly waiting), and returns its table.
pub fn run(dir: &Path, jobs: usize) -> Result<String, String> {
    let rows = grid();
    let results: Mutex<Vec<Option<Result<Measured, String>>>> =
        Mutex::new((0..rows.len()).map(|_| None).collect());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(row) = rows.get(index) else { return };
                    let measured = run_row(row, dir, index);
                    if let Ok(m) = &measured {
                        println!(
                            "  {:?} {}/s {} ms RA={} c={}: {:.1} s, {} sent, {} refused, {} failed",
                            row.side,
                            row.limit,
                            row.latency_ms,
                            row.retry_after,
                            row.concurrency,
                            m.seconds,
                            m.sent,
                            m.refused,
                            m.failed
                        );
                    }
                    if let Ok(mut all) = results.lock() {
                        all[index] = Some(measured);
                    }
                }
            });
        }
    });
    let results = results.into_inner().map_err(|e| e.to_string())?;
    let mut table = String::from(
        "| from | limit | per answer | Retry-After | in flight | lines | took / ideal | of the allowed rate | answered 429 | lines failed |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (row, result) in rows.iter().zip(results) {
        let measured = result.ok_or("a row did not run")??;
        let share = measured.refused as f64 / measured.sent.max(1) as f64;
        let _ = writeln!(
            table,
            "| {} | {}/s | {} ms | {} | {} | {} | {:.1} s / {:.1} s | **{:.2}** | **{:.1}%** ({} of {}) | **{}** |",
            match row.side {
                Side::Cli => "CLI",
                Side::Library => "library",
            },
            row.limit,
            row.latency_ms,
            if row.retry_after { "yes" } else { "no" },
            row.concurrency,
            row.lines(),
            measured.seconds,
            row.ideal_seconds(),
            row.ideal_seconds() / measured.seconds,
            share * 100.0,
            measured.refused,
            measured.sent,
            measured.failed,
        );
    }
    Ok(table)
}
