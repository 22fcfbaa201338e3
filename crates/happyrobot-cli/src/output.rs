//! How commands write to the terminal: the `--output` choice, and the only functions that print.
//!
//! Every write to stdout or stderr goes through [`out`] and [`err`], which ignore a failed write:
//! a closed pipe (`| head`, or a `tee` killed by the same Ctrl-C) must never make the command
//! panic, as `println!` and `eprintln!` would. The lints `print_stdout` and `print_stderr` are
//! denied in this crate so that nothing bypasses them.

use std::io::Write as _;

use clap::ValueEnum;

/// How a command prints its result on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Readable text.
    Text,
    /// JSON, for scripts and jq.
    Json,
}

/// Writes `text` and a newline to stdout, ignoring a closed or broken stdout.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
}

/// Writes `text` and a newline to stderr, ignoring a closed or broken stderr.
pub(crate) fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.write_all(b"\n"))
        .and_then(|()| stderr.flush());
}

/// Writes bytes as received (a JSON body) to stdout, with one final newline, ignoring a closed or
/// broken stdout.
pub(crate) fn out_raw(body: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(&raw_json(body))
        .and_then(|()| stdout.flush());
}

/// A body as printed: as received, with one final newline.
fn raw_json(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_body_as_received() {
        assert_eq!(raw_json(b"{\"a\":1e400}"), b"{\"a\":1e400}\n");
        assert_eq!(raw_json(b"{}\n"), b"{}\n");
    }
}
