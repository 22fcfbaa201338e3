//! The project's own commands, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `cargo xtask codegen`: regenerate `crates/happyrobot-sdk/src/generated.rs` from the spec.
//! - `cargo xtask codegen --check`: fail, with a diff, when the committed file is stale.
//! - `cargo xtask bench [--write] [--skip-compile] [--requests N]`: the benchmarks (see BENCHMARKS.md).
//! - `cargo xtask bench --rate-grid`: only the rate-limit grid (issues 18 and 30), from the CLI and the library.

mod bench;
mod codegen;
mod rate_grid;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask codegen [--check]
       cargo xtask bench [--write] [--skip-compile] [--requests N]
       cargo xtask bench --rate-grid

commands:
  codegen           regenerate crates/happyrobot-sdk/src/generated.rs from openapi/happyrobot.yaml
  codegen --check   exit 1 with a diff when the committed generated code is stale
  bench             build in release mode, start the mock server, run every benchmark and print a table
    --write         also write the table into BENCHMARKS.md
    --skip-compile  skip the clean compile-cost builds
    --requests N    requests per side in each throughput run (default 20000)
    --rate-grid     only the imports against a rate-limited mock (limits 2, 10, 50/s; 5 and 50 ms;
                    with and without Retry-After; 4 and 32 in flight; then 2/s, 100/s behind
                    300 ms, two imports on one limit and a limit that drops, each with and
                    without Retry-After and with rate-limit headers; CLI and library), into
                    target/bench/rate-grid.md";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["codegen"] => codegen::run(false),
        ["codegen", "--check"] => codegen::run(true),
        ["bench", rest @ ..] => match bench_options(rest) {
            Ok(options) => bench::run(&options),
            Err(message) => {
                eprintln!("error: {message}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn bench_options(args: &[&str]) -> Result<bench::Options, String> {
    let mut options = bench::Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--write" => options.write = true,
            "--skip-compile" => options.skip_compile = true,
            "--rate-grid" => {
                options.skip_compile = true;
                options.rate_grid = Some(4);
            }
            "--requests" => {
                let value = args.next().ok_or("--requests needs a number")?;
                options.requests = value
                    .parse()
                    .map_err(|_| format!("--requests: {value:?} is not a number"))?;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::codegen;

    /// `cargo test` catches a spec edited without regenerating, as `cargo xtask codegen --check` does.
    #[test]
    fn generated_code_is_up_to_date() {
        let root = codegen::workspace_root();
        let fresh = codegen::generate(&root).unwrap();
        let committed = std::fs::read_to_string(root.join(codegen::OUTPUT)).unwrap();
        if let Err(report) = codegen::compare(&committed, &fresh) {
            panic!("{report}");
        }
    }

    #[test]
    fn drift_is_reported_with_a_diff_and_the_fix() {
        let report = codegen::compare("a\nb\n", "a\nc\n").unwrap_err();
        assert!(report.contains("-b"), "{report}");
        assert!(report.contains("+c"), "{report}");
        assert!(report.contains("Run `cargo xtask codegen`"), "{report}");
    }

    #[test]
    fn generation_is_deterministic() {
        let root = codegen::workspace_root();
        assert_eq!(
            codegen::generate(&root).unwrap(),
            codegen::generate(&root).unwrap()
        );
    }
}
