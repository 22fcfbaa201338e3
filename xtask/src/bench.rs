//! `cargo xtask bench`: every benchmark of issue #6 from one command, on this machine, with a results
//! table at the end (and in `BENCHMARKS.md` with `--write`).
//!
//! It builds in release mode, starts the mock server itself, and measures: throughput of the SDK
//! against a raw reqwest client (interleaved), client instructions per request under callgrind,
//! decode/encode cost (divan), a 1,000 and a 100,000-line import through the CLI with its peak memory,
//! and the clean compile cost of the `happyrobot` crate. It asserts no time: it reports.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::codegen::workspace_root;

/// What the run found, in the order the table shows it.
#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String)>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, what: &str, value: String, target: &str) {
        println!("  {what}: {value}");
        self.rows
            .push((what.to_string(), value, target.to_string()));
    }
}

/// Options of `cargo xtask bench`.
pub struct Options {
    /// Write the table into BENCHMARKS.md.
    pub write: bool,
    /// Skip the clean compile-cost builds (they take most of the run).
    pub skip_compile: bool,
    /// Requests per side and mode in the throughput runs.
    pub requests: usize,
    /// Run only the rate-limit grid (issue 18), this many rows at a time.
    pub rate_grid: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            write: false,
            skip_compile: false,
            requests: 20_000,
            rate_grid: None,
        }
    }
}

/// The mock server, stopped when dropped.
pub(crate) struct Mock {
    child: Child,
    pub(crate) base_url: String,
    pub(crate) api_key: String,
    pub(crate) ids_file: PathBuf,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn run_cmd(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The target directory every release build of the run goes to (see [`run`]).
static TARGET_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// A cargo command building into [`TARGET_DIR`].
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    if let Some(target) = TARGET_DIR.get() {
        command.env("CARGO_TARGET_DIR", target);
    }
    command
}

/// A release binary of the run.
pub(crate) fn bin(name: &str) -> PathBuf {
    TARGET_DIR
        .get()
        .map_or_else(|| workspace_root().join("target"), PathBuf::clone)
        .join("release")
        .join(name)
}

fn start_mock(seed_calls: usize, dir: &Path) -> Result<Mock, String> {
    start_mock_with(seed_calls, dir, &[])
}

/// The mock server with these options besides the port and the seed.
pub(crate) fn start_mock_with(
    seed_calls: usize,
    dir: &Path,
    extra: &[&str],
) -> Result<Mock, String> {
    let mut child = Command::new(bin("happyrobot-mock"))
        .args(["--port", "0", "--seed-calls", &seed_calls.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the mock server: {e}"))?;
    let stdout = child.stdout.take().ok_or("the mock server has no stdout")?;
    let (mut base_url, mut api_key, mut ids) = (String::new(), String::new(), Vec::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(v) = line.strip_prefix("base_url=") {
            base_url = v.to_string();
        } else if let Some(v) = line.strip_prefix("api_key=") {
            api_key = v.to_string();
        } else if let Some(v) = line.strip_prefix("call_id=") {
            ids.push(v.to_string());
            if ids.len() == seed_calls {
                break;
            }
        }
    }
    if base_url.is_empty() || ids.len() != seed_calls {
        let _ = child.kill();
        return Err("the mock server did not print its base URL and call ids".into());
    }
    // The port keeps apart the files of mocks that run side by side.
    let port = base_url
        .rsplit(':')
        .next()
        .unwrap_or("0")
        .replace("/api/v1", "");
    let ids_file = dir.join(format!("call-ids-{seed_calls}-{port}.txt"));
    std::fs::write(&ids_file, ids.join("\n")).map_err(|e| e.to_string())?;
    Ok(Mock {
        child,
        base_url,
        api_key,
        ids_file,
    })
}

/// Runs `cargo xtask bench`.
pub fn run(options: &Options) -> Result<(), String> {
    let root = workspace_root();
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut report = Report::default();

    // The clean release build that measures the compile cost is also the start of the build of
    // everything else: the benchmark binaries then compile on top of it instead of from scratch,
    // which keeps a run on a fresh clone within minutes. With --skip-compile, target/ is used.
    let target = if options.skip_compile {
        root.join("target")
    } else {
        dir.join("compile-release")
    };
    let _ = TARGET_DIR.set(target);
    if !options.skip_compile {
        compile_cost(&root, &dir, &mut report)?;
    }

    println!("== building the benchmarks (release)");
    run_cmd(cargo().current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "happyrobot-bench",
        "-p",
        "happyrobot-mock",
        "-p",
        "happyrobot-cli",
    ]))?;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or("?".to_string(), |kb| {
            format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0)
        });
    report.notes.push(format!(
        "machine: {cores} cores, {memory} memory, {}",
        run_cmd(Command::new("rustc").arg("--version"))
            .unwrap_or_default()
            .trim()
    ));

    if let Some(jobs) = options.rate_grid {
        println!("== the rate-limit grid ({jobs} rows at a time)");
        let table = crate::rate_grid::run(&dir, jobs)?;
        println!(
            "\n{table}\nwhole run: {:.0} s",
            started.elapsed().as_secs_f64()
        );
        std::fs::write(dir.join("rate-grid.md"), &table).map_err(|e| e.to_string())?;
        return Ok(());
    }
    throughput(&dir, options, &mut report)?;
    instructions(&dir, &mut report)?;
    decode(&root, &mut report)?;
    import(&dir, &mut report)?;
    report.notes.push(format!(
        "whole run: {:.0} s",
        started.elapsed().as_secs_f64()
    ));

    let table = render(&report);
    println!("\n{table}");
    std::fs::write(dir.join("results.md"), &table).map_err(|e| e.to_string())?;
    if options.write {
        write_benchmarks_md(&root, &table)?;
        println!("wrote the table into BENCHMARKS.md");
    }
    Ok(())
}

fn throughput(dir: &Path, options: &Options, report: &mut Report) -> Result<(), String> {
    println!("== throughput over loopback (SDK vs reqwest + serde_json::Value, interleaved)");
    for concurrency in [1usize, 32] {
        // A fresh mock per mode, with enough calls that none grows past a few dozen notes.
        let mock = start_mock(2_000, dir)?;
        let out = run_cmd(Command::new(bin("happyrobot-bench")).args([
            "throughput",
            &mock.base_url,
            &mock.api_key,
            &mock.ids_file.to_string_lossy(),
            &options.requests.to_string(),
            &concurrency.to_string(),
            "10",
        ]))?;
        let result: serde_json::Value = serde_json::from_str(out.trim())
            .map_err(|e| format!("bad bench output {out:?}: {e}"))?;
        let f = |k: &str| result[k].as_f64().unwrap_or(f64::NAN);
        let mode = if concurrency == 1 {
            "sequential"
        } else {
            "32 concurrent"
        };
        report.row(
            &format!("throughput, {mode}: SDK / raw (requests/s)"),
            format!(
                "**{:.3}** ({:.0} / {:.0}; {} requests each)",
                f("ratio"),
                f("sdk_rps"),
                f("raw_value_rps"),
                result["requests_each"]
            ),
            ">= 0.95",
        );
    }
    Ok(())
}

/// Client instructions per request: the difference between a long and a short run under callgrind,
/// divided by the difference in requests, so that start-up cost cancels out.
fn instructions(dir: &Path, report: &mut Report) -> Result<(), String> {
    println!("== client instructions per request (valgrind --tool=callgrind)");
    if Command::new("valgrind").arg("--version").output().is_err() {
        report.notes.push(
            "valgrind is not installed: instruction counts skipped (apt-get install valgrind)"
                .into(),
        );
        return Ok(());
    }
    let (short, long) = (100usize, 600usize);
    let mut per_request = Vec::new();
    for kind in ["sdk", "typed", "typed-timeout", "value", "bytes"] {
        let mut counts = Vec::new();
        for requests in [short, long] {
            let mock = start_mock(1_000, dir)?;
            let output = Command::new("valgrind")
                .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
                .arg(bin("happyrobot-bench"))
                .args([
                    "loop",
                    kind,
                    &mock.base_url,
                    &mock.api_key,
                    &mock.ids_file.to_string_lossy(),
                    &requests.to_string(),
                ])
                .output()
                .map_err(|e| format!("cannot run valgrind: {e}"))?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                return Err(format!("callgrind run of {kind} failed:\n{stderr}"));
            }
            let collected = stderr
                .lines()
                .find_map(|l| l.split("Collected :").nth(1))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("no instruction count in callgrind's output:\n{stderr}"))?;
            counts.push(collected);
        }
        let each = (counts[1].saturating_sub(counts[0])) as f64 / (long - short) as f64;
        per_request.push((kind, each));
    }
    let get = |k: &str| {
        per_request
            .iter()
            .find(|(n, _)| *n == k)
            .map_or(f64::NAN, |(_, v)| *v)
    };
    report.row(
        "instructions/request: SDK / raw typed",
        format!(
            "**{:.3}** (SDK {:.0}k, raw typed {:.0}k)",
            get("sdk") / get("typed"),
            get("sdk") / 1e3,
            get("typed") / 1e3
        ),
        "<= 1.05",
    );
    report.row(
        "instructions/request: SDK / raw typed with the SDK's timeouts",
        format!(
            "{:.3} (raw typed with timeouts {:.0}k)",
            get("sdk") / get("typed-timeout"),
            get("typed-timeout") / 1e3
        ),
        "reference",
    );
    report.row(
        "instructions/request: raw Value, bytes only",
        format!("{:.0}k, {:.0}k", get("value") / 1e3, get("bytes") / 1e3),
        "reference",
    );
    Ok(())
}

/// Runs the divan benchmarks and reads their median times.
fn decode(root: &Path, report: &mut Report) -> Result<(), String> {
    println!("== decode and encode (divan)");
    let out = run_cmd(cargo().current_dir(root).args([
        "bench",
        "--quiet",
        "-p",
        "happyrobot-bench",
        "--bench",
        "decode",
    ]))?;
    let mut medians: Vec<(String, String, f64)> = Vec::new();
    let mut group = String::new();
    for line in out.lines() {
        // Rows look like `│  ├─ drift   20.96 µs │ 92.71 µs │ 21.43 µs │ ...`: drop the tree drawing,
        // then the columns are fastest (with the name), slowest, median, ...
        let row = line.trim_start_matches(['│', '├', '╰', '─', ' ']);
        let cells: Vec<&str> = row.split('│').map(str::trim).collect();
        let name = cells
            .first()
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("");
        if name.is_empty() {
            continue;
        }
        match cells.get(2).and_then(|median| parse_duration(median)) {
            Some(nanos) => {
                let bench = if name.starts_with("encode") {
                    name.to_string()
                } else {
                    group.clone()
                };
                medians.push((bench, name.to_string(), nanos));
            }
            None if name.starts_with("decode_") => group = name.to_string(),
            None => {}
        }
    }
    let median = |group: &str, arg: &str| {
        medians
            .iter()
            .find(|(g, a, _)| g == group && a == arg)
            .map_or(f64::NAN, |(_, _, n)| *n)
    };
    for (arg, what) in [
        ("full", "full call (~3 KB)"),
        ("notes_500", "call with 500 notes"),
        ("drift", "drift-shaped call"),
    ] {
        let (typed, value) = (median("decode_typed", arg), median("decode_value", arg));
        report.row(
            &format!("decode {what}: Value / typed time"),
            format!(
                "**{:.2}** (typed {}, Value {})",
                value / typed,
                show_nanos(typed),
                show_nanos(value)
            ),
            ">= 1.0",
        );
    }
    report.row(
        "encode a NewNote",
        show_nanos(median("encode_new_note", "encode_new_note")),
        "reference",
    );
    Ok(())
}

fn parse_duration(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let number: f64 = parts.next()?.parse().ok()?;
    let scale = match parts.next()? {
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(number * scale)
}

fn show_nanos(nanos: f64) -> String {
    if nanos >= 1e6 {
        format!("{:.2} ms", nanos / 1e6)
    } else if nanos >= 1e3 {
        format!("{:.1} µs", nanos / 1e3)
    } else {
        format!("{nanos:.0} ns")
    }
}

/// A CSV import of `lines` notes through the CLI, under `/usr/bin/time -v`: lines per second and peak
/// resident memory.
fn import_once(dir: &Path, lines: usize) -> Result<(f64, u64), String> {
    let mock = start_mock(2_000, dir)?;
    let ids = std::fs::read_to_string(&mock.ids_file).map_err(|e| e.to_string())?;
    let ids: Vec<&str> = ids.lines().collect();
    let file = dir.join(format!("import-{lines}.csv"));
    let mut csv = String::from("call_id,content,flagged\n");
    for n in 0..lines {
        let _ = writeln!(
            csv,
            "{},Imported note {n} from the QA review,{}",
            ids[n % ids.len()],
            n % 7 == 0
        );
    }
    std::fs::write(&file, csv).map_err(|e| e.to_string())?;
    let journal = dir.join(format!("import-{lines}.journal"));
    let _ = std::fs::remove_file(&journal);
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin("happyrobot"))
        .args(["--base-url", &mock.base_url, "--api-key", &mock.api_key])
        .args(["notes", "import"])
        .arg(&file)
        .arg("--journal")
        .arg(&journal)
        .output()
        .map_err(|e| format!("cannot run /usr/bin/time: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("the import of {lines} lines failed:\n{stderr}"));
    }
    let peak_kb = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or("no peak memory in /usr/bin/time's output")?;
    Ok((lines as f64 / seconds, peak_kb))
}

fn import(dir: &Path, report: &mut Report) -> Result<(), String> {
    println!("== import through the CLI (/usr/bin/time -v)");
    if !bin("happyrobot").exists() || !Path::new("/usr/bin/time").exists() {
        report.notes.push(
            "import skipped: needs the happyrobot CLI and /usr/bin/time (apt-get install time)"
                .into(),
        );
        return Ok(());
    }
    let (_, small_kb) = import_once(dir, 1_000)?;
    let (rate, large_kb) = import_once(dir, 100_000)?;
    report.row(
        "import 100,000 lines: lines/s",
        format!("{rate:.0}"),
        "reference",
    );
    report.row(
        "import peak memory: 100,000 / 1,000 lines",
        format!(
            "**{:.2}** ({:.1} MiB / {:.1} MiB)",
            large_kb as f64 / small_kb as f64,
            large_kb as f64 / 1024.0,
            small_kb as f64 / 1024.0
        ),
        "<= 1.2",
    );
    Ok(())
}

/// Clean builds of `happyrobot` in target directories of their own: wall time and crates compiled.
/// The release one is kept, for the rest of the run to build on.
fn compile_cost(root: &Path, dir: &Path, report: &mut Report) -> Result<(), String> {
    println!("== clean compile of -p happyrobot");
    for (profile, flag) in [("debug", None), ("release", Some("--release"))] {
        let target = dir.join(format!("compile-{profile}"));
        let _ = std::fs::remove_dir_all(&target);
        let started = Instant::now();
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        command
            .current_dir(root)
            .args(["build", "-p", "happyrobot"])
            .env("CARGO_TARGET_DIR", &target);
        if let Some(flag) = flag {
            command.arg(flag);
        }
        let output = command.output().map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!("the clean {profile} build failed:\n{stderr}"));
        }
        let crates = stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("Compiling "))
            .count();
        report.row(
            &format!("clean build of happyrobot, {profile}"),
            format!("{seconds:.0} s, {crates} crates"),
            "reference",
        );
        if flag.is_none() {
            let _ = std::fs::remove_dir_all(&target);
        }
    }
    Ok(())
}

fn render(report: &Report) -> String {
    let mut out = String::from("| measure | result | target |\n|---|---|---|\n");
    for (what, value, target) in &report.rows {
        let _ = writeln!(out, "| {what} | {value} | {target} |");
    }
    out.push('\n');
    for note in &report.notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

const START: &str = "<!-- bench:start (written by `cargo xtask bench --write`) -->";
const END: &str = "<!-- bench:end -->";

fn write_benchmarks_md(root: &Path, table: &str) -> Result<(), String> {
    let path = root.join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(start), Some(end)) = (text.find(START), text.find(END)) else {
        return Err(format!("BENCHMARKS.md lacks the markers {START} and {END}"));
    };
    let updated = format!("{}{START}\n{table}{}", &text[..start], &text[end..]);
    std::fs::write(&path, updated).map_err(|e| e.to_string())
}
