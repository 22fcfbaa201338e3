//! Exit codes and the one error type the commands return, so that `main` prints every failure
//! the same way (`error: ...` on stderr, or one JSON object with `--output json`) and exits with the
//! code the documentation promises.

use std::fmt;
use std::io::IsTerminal as _;
use std::process::ExitCode;

/// The documented exit codes. Scripts depend on them, so they never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Exit {
    /// Everything worked.
    Success = 0,
    /// An unexpected local failure, such as a journal that cannot be written.
    Internal = 1,
    /// The command line or the input is invalid; nothing was sent.
    Usage = 2,
    /// No API key, or the API rejected it (401, 403).
    Auth = 3,
    /// The call does not exist (404).
    NotFound = 4,
    /// Any other error answer from the API (400, 422, 501...); the note was not added.
    Api = 5,
    /// The API could not be reached (connection refused, DNS, TLS, connect timeout); nothing was
    /// sent.
    Network = 6,
    /// The request may have been applied (timeout after sending, broken connection, most 5xx, a
    /// 303).
    Unknown = 7,
    /// The request was applied (the API answered 2xx) but its answer could not be read: do not
    /// send it again.
    AppliedUnreadable = 8,
    /// An import stopped by SIGHUP (128 + 1, as shells report it).
    HangUp = 129,
    /// An import interrupted with Ctrl-C (128 + SIGINT).
    Interrupted = 130,
    /// An import stopped by SIGTERM (128 + 15).
    Terminated = 143,
}

impl Exit {
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// The exit code as a word, for the `kind` of a JSON error. Stable, like the codes.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Internal => "internal",
            Exit::Usage => "usage",
            Exit::Auth => "auth",
            Exit::NotFound => "not_found",
            Exit::Api => "api",
            Exit::Network => "network",
            Exit::Unknown => "unknown",
            Exit::AppliedUnreadable => "applied_unreadable",
            Exit::HangUp => "hang_up",
            Exit::Interrupted => "interrupted",
            Exit::Terminated => "terminated",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// The exit-code table shown at the end of `--help` and kept in step with the README.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  local failure (the journal cannot be written, for instance)
  2  usage error or invalid input; nothing was sent
  3  authentication: no API key, the API rejected it (401/403), or a proxy refused its
     credentials (407)
  4  not found: no call (or note) with this ID (404)
  5  other API error (400, 422, 501...); for calls get, transcript and list, any error answer,
     5xx included (a read changes nothing)
  6  network: the API could not be reached (refused, DNS, TLS, a proxy's refusal); nothing was sent
  7  outcome unknown: an add, update or delete may have been applied (timeout, dropped connection,
     5xx); check before resending
  8  the note was added (the API answered 2xx) but its answer could not be read; do not resend";

/// A failure of a command: what to tell the user, and how to exit.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) exit: Exit,
    pub(crate) message: String,
    /// Extra lines shown with `-v` (causes, hints).
    pub(crate) detail: Vec<String>,
    /// The API's request ID, when the failure came from an answer that had one.
    pub(crate) request_id: Option<String>,
}

impl CliError {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            detail: Vec::new(),
            request_id: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(Exit::Internal, message)
    }

    /// The error of an API call, with its exit code and its chain of causes as detail.
    pub(crate) fn from_api(error: &happyrobot::Error) -> Self {
        let mut detail: Vec<String> = error
            .causes()
            .into_iter()
            .map(|cause| format!("caused by: {cause}"))
            .collect();
        let request_id = error.request_id().map(str::to_string);
        if let Some(id) = &request_id {
            detail.push(format!("request id: {id}"));
        }
        Self {
            exit: exit_for(error),
            message: in_cli_words(&error.to_string()),
            detail,
            request_id,
        }
    }
}

/// A message of the libraries (the client's or the bulk engine's) in the command's words: its
/// flags for the options the message names (see [`crate::bulk_args::flag`]).
pub(crate) fn in_cli_words(message: &str) -> String {
    happyrobot_bulk::BulkOption::rename(message, crate::bulk_args::flag)
}

/// Prints a failed command's error on stderr: `error: ...` (causes with `-v`), or with `json` one
/// JSON object on one line, for scripts that read stderr with a JSON parser:
///
/// ```json
/// {"error":{"exit_code":4,"kind":"not_found","message":"...","request_id":"req_1","detail":["..."]}}
/// ```
pub(crate) fn report(error: &CliError, verbose: u8, json: bool) {
    if json {
        crate::print::err(&to_json(error).to_string());
        return;
    }
    crate::print::err(&format!("error: {}", error.message));
    if verbose > 0 {
        for line in &error.detail {
            crate::print::err(&format!("  {line}"));
        }
    } else if !error.detail.is_empty() && std::io::stderr().is_terminal() {
        crate::print::err("  (run with -v for details)");
    }
}

/// The JSON form of an error; `request_id` is `null` when there is none.
pub(crate) fn to_json(error: &CliError) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "exit_code": error.exit.code(),
            "kind": error.exit.kind(),
            "message": error.message,
            "request_id": error.request_id,
            "detail": error.detail,
        }
    })
}

impl From<happyrobot::Error> for CliError {
    fn from(error: happyrobot::Error) -> Self {
        Self::from_api(&error)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit code of one failed API call, following the table in [`EXIT_CODES_HELP`]. What the
/// server did decides first, so that no code invites a script to resend what was applied.
pub(crate) fn exit_for(error: &happyrobot::Error) -> Exit {
    use happyrobot::{Category as C, Outcome as O};
    match (error.outcome(), error.category()) {
        (O::Unknown, _) => Exit::Unknown,
        (O::Applied, _) => Exit::AppliedUnreadable,
        (_, C::InvalidInput) => Exit::Usage,
        (_, C::Authentication) => Exit::Auth,
        (_, C::NotFound) => Exit::NotFound,
        // A request stopped before it was sent again was not sent: as a network failure, a
        // re-run sends it.
        (_, C::Network | C::Stopped) => Exit::Network,
        _ => Exit::Api,
    }
}

/// What a bulk run's failure kind exits with.
pub(crate) fn exit_for_kind(kind: happyrobot_bulk::FailureKind) -> Exit {
    use happyrobot_bulk::FailureKind as K;
    match kind {
        K::Unauthorized => Exit::Auth,
        K::NotFound => Exit::NotFound,
        K::Network => Exit::Network,
        K::Local => Exit::Internal,
        _ => Exit::Api,
    }
}

/// What a bulk run ended with, for its exit code.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RunEnd {
    /// Some line's outcome is unknown.
    pub(crate) unknown: bool,
    /// A line was refused for the key (or a proxy's credentials).
    pub(crate) unauthorized: bool,
    /// The signal that stopped the run, if one did.
    pub(crate) signal: Option<Exit>,
    /// A local failure that stopped the run (the journal, the input changed), if one did.
    pub(crate) local_failure: bool,
    /// The worst failure kind among the lines.
    pub(crate) worst: Option<happyrobot_bulk::FailureKind>,
}

/// The one precedence of a bulk run's exit codes (import and undo): unknown outcomes first (they
/// need a person to look before anything is re-sent), then a rejected key, an interruption, a
/// local failure, and the worst failure of a line. Exit 2 ("nothing was sent") is never used once
/// a run got as far as sending.
pub(crate) fn run_exit(end: RunEnd) -> Exit {
    if end.unknown {
        Exit::Unknown
    } else if end.unauthorized {
        Exit::Auth
    } else if let Some(signal) = end.signal {
        signal
    } else if end.local_failure {
        Exit::Internal
    } else {
        end.worst.map_or(Exit::Success, exit_for_kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        for (exit, code) in [
            (Exit::Success, 0),
            (Exit::Internal, 1),
            (Exit::Usage, 2),
            (Exit::Auth, 3),
            (Exit::NotFound, 4),
            (Exit::Api, 5),
            (Exit::Network, 6),
            (Exit::Unknown, 7),
            (Exit::AppliedUnreadable, 8),
        ] {
            assert_eq!(exit.code(), code);
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")), "{code}");
        }
    }

    #[test]
    fn json_errors_hold_code_kind_message_and_request_id() {
        let mut error = CliError::new(Exit::NotFound, "no call \"x\"");
        error.request_id = Some("req_1".into());
        error.detail.push("request id: req_1".into());
        let json = to_json(&error);
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "exit_code": 4, "kind": "not_found", "message": "no call \"x\"",
                "request_id": "req_1", "detail": ["request id: req_1"],
            }})
        );
        // One line, so that a script can read it as one JSON document.
        assert!(!json.to_string().contains('\n'));
        assert_eq!(
            to_json(&CliError::usage("bad"))["error"]["request_id"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn unknown_beats_a_rejected_key_which_beats_a_signal_a_local_failure_and_failures() {
        use happyrobot_bulk::FailureKind as K;
        let end = RunEnd::default();
        assert_eq!(run_exit(end), Exit::Success);
        let failures = RunEnd {
            worst: Some(K::Network),
            ..end
        };
        assert_eq!(run_exit(failures), Exit::Network);
        let local = RunEnd {
            local_failure: true,
            ..failures
        };
        assert_eq!(run_exit(local), Exit::Internal);
        let interrupted = RunEnd {
            signal: Some(Exit::Interrupted),
            ..local
        };
        assert_eq!(run_exit(interrupted), Exit::Interrupted);
        let refused = RunEnd {
            unauthorized: true,
            ..interrupted
        };
        assert_eq!(run_exit(refused), Exit::Auth);
        let unknown = RunEnd {
            unknown: true,
            ..refused
        };
        assert_eq!(run_exit(unknown), Exit::Unknown);
    }

    #[test]
    fn local_errors_map_to_usage_or_auth() {
        let bad_id = "x".parse::<happyrobot::CallId>().unwrap_err();
        assert_eq!(exit_for(&bad_id), Exit::Usage);
        let bad_key = happyrobot::Client::new("has space").unwrap_err();
        assert_eq!(exit_for(&bad_key), Exit::Auth);
        let no_key = happyrobot::Client::builder().build().unwrap_err();
        assert_eq!(exit_for(&no_key), Exit::Auth);
    }
}
