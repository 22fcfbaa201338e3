//! `happyrobot-mock`: runs the mock HappyRobot API until Ctrl-C or SIGTERM; see `--help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = happyrobot_mock::cli::Args::parse();
    match happyrobot_mock::cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("happyrobot-mock: {error}");
            ExitCode::FAILURE
        }
    }
}
