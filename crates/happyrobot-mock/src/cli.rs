//! The command line: the `happyrobot-mock` binary, and the `mock` subcommand of the `happyrobot`
//! CLI, which reuses [`Args`] and [`run`] instead of repeating them.
//!
//! On start it prints, to stdout, one `key=value` line each for the base URL, the API key and every
//! seeded call id, then flushes, so that a script can read them:
//!
//! ```text
//! base_url=http://127.0.0.1:41873/api/v1
//! api_key=hr_mock_key
//! call_id=65f1c0ffee0123456789abcd
//! call_id=65f1c0ffee0123456789abce
//! call_id=65f1c0ffee0123456789abcf
//! ```
//!
//! It runs until Ctrl-C (SIGINT) or SIGTERM, then stops cleanly with exit status 0.

use std::future::Future;
use std::io::{self, Write};
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::{
    DEFAULT_API_KEY, DEFAULT_MAX_BODY_BYTES, DEFAULT_SEED_CALLS, Fault, MockServer, RateLimit,
    RateLimitHeaders,
};

/// The text after the options in the mock's `--help`, whose examples name the `happyrobot-mock`
/// binary (a command line that runs the mock as a subcommand names itself instead).
pub const AFTER_HELP: &str = "\
FAULTS (--fault, repeatable):
  429[:retry-after=SECS]   429 Too Many Requests with Retry-After (default 1 s)
  500, 502, 503            that status (any 4xx/5xx code) with a JSON error body
  delay:DURATION           wait (250ms, 2s; a bare number is milliseconds), then answer normally
  invalid-json             the change is made, then a 200 whose body is not valid JSON
  close-before-response    close the connection with no response; nothing is changed
  save-then-drop           carry the request out (add, update, delete), then close the
                           connection with no response
  note-not-found           404 with the API's body for a note that is not there, whatever the
                           request (a server that says a note it holds is gone); nothing is changed
  late-apply:answer=504,after=3s,apply=5s
                           a gateway gives up: after 3 s the client gets 504 with an HTML page
                           (answer=drop: the connection closed instead; answer may be left out),
                           and 5 s after the request arrived the backend carries it out all the
                           same, in the background; both times count from the request's arrival

  By default each --fault is used by the next --fault-count requests, in the order given.
  With --fault-rate P, each request instead gets each --fault with probability P, drawn from a
  PRNG seeded by --fault-seed, so a seed always hits the same requests.
  Faults touch requests to any of the five operations (GET /calls, GET /calls/{id},
  POST /calls/{id}/notes, PATCH and DELETE /calls/{id}/notes/{noteId}) that pass the path,
  method and key checks; save-then-drop carries the operation out before it drops the connection.

RATE LIMIT (--rate-limit N):
  One token bucket for the whole server: it holds --rate-limit-burst tokens (default 1 + N/10,
  rounded, at least 1), starts full and refills continuously at N a second. Every request that
  passes the path, method and key checks takes a token; one that finds none gets 429 with a
  JSON error body (\"rate limit exceeded: N requests per second\"), draws no fault and is not
  carried out. Its Retry-After is the whole seconds until a token is available, rounded up, at
  least 1 (--rate-limit-retry-after none sends none). --rate-limit-headers ietf sends
  RateLimit-Limit (the burst), RateLimit-Remaining, RateLimit-Reset (seconds until the
  bucket is full) and RateLimit-Policy (the rate: 10;w=1); x sends X-RateLimit-Limit,
  X-RateLimit-Remaining and X-RateLimit-Reset (the Unix time at which it is full); both on
  every answer to a request that took a token or was refused one. --rate-limit-after 10s:5
  changes the rate to 5 a second from 10 seconds after the start on (the burst with it, unless
  --rate-limit-burst is given): a limit that drops, or rises, in the middle of a run.

LATENCY (--latency DURATION):
  Every answer (errors and 429s too) waits this long after the request was handled, as from a
  slow server: 50ms, 2s, a bare number is milliseconds. Requests wait side by side.

SEEDED CALLS (--seed-calls N):
  The first three are the same hand-written calls on every start; the others copy them and vary
  the status, provider, language, campaign (5 ids), tags, phone numbers, extracted values and
  creation time (scattered over the 60 days before 2024-03-13), the same way on every start, so
  that every filter of GET /calls finds something.

LISTING (GET /api/v1/calls):
  Offset pages over the calls, newest first by created (sort=asc: oldest first), as
  {calls, count, limit, offset}. limit: default 100, at most 1000; skip: default 0. Filters:
  type, statuses, tags, models, ratings, use_cases, campaigns (comma-separated lists, URL-decoded;
  a call matches one of the values), from and to (RFC 3339 date-times or plain dates, inclusive),
  search (phone numbers and extracted values, any case), transfer_contact_email. A value the mock
  cannot read is ignored; a parameter given twice gets 400.

NOTE IDS:
  A note id the client sends with an add is kept, as the spec says the server assigns it only
  when absent. With --ignore-client-note-ids the mock gives every added note an id of its own
  and a PATCH never changes a note's id, like a server that does not honour client ids.
  A second note with an id the call already holds is added like any other, unless
  --refuse-repeated-note-ids is given: then it gets 409 Conflict and nothing is added (also when
  a late-apply fault's late add finds its id on the call by then).

OUTPUT:
  stdout gets one line per fact, then is flushed:
    base_url=http://127.0.0.1:PORT/api/v1
    api_key=KEY
    call_id=ID   (one line per seeded call)

EXAMPLES:
  happyrobot-mock --port 8080
  happyrobot-mock --fault 429:retry-after=2 --fault 503 --fault-count 2
  happyrobot-mock --fault save-then-drop --fault-rate 0.1 --fault-seed 7
  happyrobot-mock --rate-limit 10 --rate-limit-burst 5 --rate-limit-headers ietf
  happyrobot-mock --latency 50ms
  happyrobot-mock --fault late-apply:answer=504,after=3s,apply=5s --refuse-repeated-note-ids";

/// The mock's command-line options.
///
/// It is a [`clap::Parser`], and so also a [`clap::Args`] that another CLI can use as a
/// subcommand's options.
#[derive(Clone, Debug, PartialEq, clap::Parser)]
#[command(
    name = "happyrobot-mock",
    version,
    about = "Run a mock HappyRobot API on 127.0.0.1, with faults on demand.",
    long_about = "Run a stateful mock of the HappyRobot API (GET /api/v1/calls, GET \
                  /api/v1/calls/{id}, POST /api/v1/calls/{id}/notes, PATCH and DELETE \
                  /api/v1/calls/{id}/notes/{noteId}) \
                  on 127.0.0.1, seeded with realistic calls, with faults on demand. Stops on \
                  Ctrl-C or SIGTERM.",
    after_help = AFTER_HELP
)]
pub struct Args {
    /// Port to listen on, on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// API key the mock accepts, as `authorization: Bearer KEY`.
    #[arg(long, value_name = "KEY", default_value = DEFAULT_API_KEY)]
    pub api_key: String,

    /// Number of calls to start with; their ids are the same on every start.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED_CALLS)]
    pub seed_calls: usize,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// A fault to inject (repeatable); see FAULTS below.
    #[arg(long = "fault", value_name = "FAULT")]
    pub faults: Vec<Fault>,

    /// How many requests each --fault is used for, one after the other.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        conflicts_with = "fault_rate"
    )]
    pub fault_count: usize,

    /// Inject each --fault at random with this probability (0 to 1) instead of for the next requests.
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub fault_rate: Option<f64>,

    /// Seed of the random draws of --fault-rate.
    #[arg(
        long,
        value_name = "SEED",
        default_value_t = 0,
        requires = "fault_rate"
    )]
    pub fault_seed: u64,

    /// Give every added note an id of the mock's own, ignoring an `id` the client sends.
    #[arg(long)]
    pub ignore_client_note_ids: bool,

    /// Answer 409 Conflict to an add whose note id the call already holds, and add nothing.
    #[arg(long)]
    pub refuse_repeated_note_ids: bool,

    /// Throttle the server to N requests a second (decimals allowed); see RATE LIMIT below.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub rate_limit: Option<f64>,

    /// Requests the rate limit lets through at once after a quiet spell (default 1 + N/10,
    /// rounded, at least 1).
    #[arg(
        long,
        value_name = "B",
        requires = "rate_limit",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rate_limit_burst: Option<u32>,

    /// Whether a 429 of the rate limit carries Retry-After (in whole seconds).
    #[arg(
        long,
        value_name = "WHAT",
        default_value = "seconds",
        requires = "rate_limit",
        action = clap::ArgAction::Set,
        value_parser = PossibleValuesParser::new(["none", "seconds"]).map(|text| text == "seconds")
    )]
    pub rate_limit_retry_after: bool,

    /// Rate-limit headers to send on every answer: IETF RateLimit-*, or X-RateLimit-*.
    #[arg(
        long,
        value_name = "STYLE",
        default_value = "none",
        requires = "rate_limit",
        value_parser = PossibleValuesParser::new(["none", "ietf", "x"]).map(header_style)
    )]
    pub rate_limit_headers: RateLimitHeaders,

    /// From DURATION after the start on, throttle to RATE a second instead (10s:5).
    #[arg(
        long,
        value_name = "DURATION:RATE",
        requires = "rate_limit",
        value_parser = parse_change
    )]
    pub rate_limit_after: Option<(Duration, f64)>,

    /// Wait this long before every answer (50ms, 2s; a bare number is milliseconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_latency)]
    pub latency: Option<Duration>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: give requests per second, a positive number such as 10 or 0.5"
        )),
    }
}

/// `--rate-limit-after DURATION:RATE`.
fn parse_change(text: &str) -> Result<(Duration, f64), String> {
    let (after, rate) = text.split_once(':').ok_or_else(|| {
        format!("{text:?} is not DURATION:RATE: give when and the new rate, such as 10s:5")
    })?;
    Ok((parse_latency(after)?, parse_rate(rate)?))
}

/// The style of `--rate-limit-headers`, whose possible values clap has already checked.
fn header_style(text: String) -> RateLimitHeaders {
    match text.as_str() {
        "ietf" => RateLimitHeaders::Ietf,
        "x" => RateLimitHeaders::X,
        _ => RateLimitHeaders::None,
    }
}

fn parse_latency(text: &str) -> Result<Duration, String> {
    crate::fault::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration: use 50ms, 2s, or milliseconds"))
}

fn parse_probability(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability between 0 and 1")),
    }
}

impl Args {
    /// Starts a mock with these options and their faults, without printing anything: for a CLI's
    /// `--mock` flag, which only needs the server.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start_server(&self) -> io::Result<MockServer> {
        let builder = MockServer::builder()
            .port(self.port)
            .api_key(self.api_key.clone())
            .seed_calls(self.seed_calls)
            .max_body_bytes(self.max_body_bytes)
            .ignore_client_note_ids(self.ignore_client_note_ids)
            .refuse_repeated_note_ids(self.refuse_repeated_note_ids);
        let builder = match self.rate_limit_settings() {
            Some(limit) => builder.rate_limit(limit),
            None => builder,
        };
        let builder = match self.latency {
            Some(latency) => builder.latency(latency),
            None => builder,
        };
        let server = builder.start().await?;
        for (index, fault) in self.faults.iter().enumerate() {
            match self.fault_rate {
                // Each fault gets its own stream of draws, derived from the one seed.
                Some(rate) => server.inject_rate(
                    fault.clone(),
                    rate,
                    self.fault_seed.wrapping_add(index as u64),
                ),
                None => server.inject(fault.clone(), self.fault_count),
            }
        }
        Ok(server)
    }

    /// The [`RateLimit`] that `--rate-limit` and its companions ask for, if any.
    pub fn rate_limit_settings(&self) -> Option<RateLimit> {
        let rate = self.rate_limit?;
        let limit = RateLimit::per_second(rate)
            .retry_after(self.rate_limit_retry_after)
            .headers(self.rate_limit_headers);
        let limit = match self.rate_limit_after {
            Some((after, rate)) => limit.changing_after(after, rate),
            None => limit,
        };
        Some(match self.rate_limit_burst {
            Some(burst) => limit.burst(burst),
            None => limit,
        })
    }
}

/// Runs the mock as the `happyrobot-mock` binary does: starts it, prints the `key=value` lines to
/// stdout, and serves until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the signal handlers cannot be installed, the port cannot be bound, or stdout is closed.
pub async fn run(args: Args) -> io::Result<()> {
    // The handlers are installed before anything is printed, so that a signal sent as soon as the
    // output appears already stops the server cleanly instead of killing the process.
    let stop = stop_signal()?;
    serve(args, &mut io::stdout(), stop).await
}

/// Like [`run`], with the output written to `out` and the server stopped when `stop` completes.
///
/// # Errors
/// When the port cannot be bound or `out` cannot be written.
pub async fn serve(
    args: Args,
    out: &mut (impl Write + Send),
    stop: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let server = args.start_server().await?;
    writeln!(out, "base_url={}", server.base_url())?;
    writeln!(out, "api_key={}", server.api_key())?;
    for id in server.call_ids() {
        writeln!(out, "call_id={id}")?;
    }
    out.flush()?;
    let faults = if args.faults.is_empty() {
        "no faults".to_string()
    } else {
        let list: Vec<String> = args.faults.iter().map(Fault::to_string).collect();
        match args.fault_rate {
            Some(rate) => format!(
                "faults {} at rate {rate} (seed {})",
                list.join(", "),
                args.fault_seed
            ),
            None => format!("faults {} x{} each", list.join(", "), args.fault_count),
        }
    };
    let mut extras = String::new();
    if let Some(limit) = args.rate_limit_settings() {
        extras.push_str(&format!(
            ", a rate limit of {} a second (burst {})",
            limit.rate(),
            limit.burst_size()
        ));
        if let Some((after, rate)) = limit.change() {
            extras.push_str(&format!(", {rate} a second from {after:?} on"));
        }
    }
    if let Some(latency) = args.latency.filter(|latency| !latency.is_zero()) {
        extras.push_str(&format!(", {latency:?} latency"));
    }
    // A note for people, on stderr; it is not worth failing over (`eprintln!` would panic when
    // stderr is closed), unlike stdout, whose lines scripts depend on.
    let _ = writeln!(
        io::stderr(),
        "happyrobot-mock: serving {} with {faults}{extras}; stop with Ctrl-C",
        server.base_url()
    );
    stop.await;
    server.shutdown().await;
    Ok(())
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM; the handlers are installed right away.
#[cfg(unix)]
fn stop_signal() -> io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> io::Result<impl Future<Output = ()> + Send> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parses_faults_and_defaults() {
        let args = Args::try_parse_from([
            "happyrobot-mock",
            "--fault",
            "429:retry-after=2",
            "--fault",
            "503",
            "--fault-count",
            "3",
        ])
        .unwrap();
        assert_eq!(args.port, 0);
        assert_eq!(args.api_key, DEFAULT_API_KEY);
        assert_eq!(args.seed_calls, DEFAULT_SEED_CALLS);
        assert_eq!(
            args.faults,
            [
                Fault::RateLimited {
                    retry_after_secs: 2
                },
                Fault::Status(503)
            ]
        );
        assert_eq!(args.fault_count, 3);
        assert_eq!(args.fault_rate, None);
        assert!(!args.ignore_client_note_ids);
        let ignoring =
            Args::try_parse_from(["happyrobot-mock", "--ignore-client-note-ids"]).unwrap();
        assert!(ignoring.ignore_client_note_ids);
        assert!(!args.refuse_repeated_note_ids);
        assert_eq!(args.rate_limit, None);
        assert_eq!(args.rate_limit_settings(), None);
        assert_eq!(args.latency, None);
        let refusing =
            Args::try_parse_from(["happyrobot-mock", "--refuse-repeated-note-ids"]).unwrap();
        assert!(refusing.refuse_repeated_note_ids);
    }

    #[test]
    fn parses_a_limit_that_changes() {
        let args = Args::try_parse_from([
            "happyrobot-mock",
            "--rate-limit",
            "20",
            "--rate-limit-after",
            "10s:5",
        ])
        .unwrap();
        assert_eq!(
            args.rate_limit_settings().unwrap().change(),
            Some((Duration::from_secs(10), 5.0))
        );
        for bad in ["10s", "x:5", "10s:0", "10s:-1"] {
            let parsed = Args::try_parse_from([
                "happyrobot-mock",
                "--rate-limit",
                "20",
                "--rate-limit-after",
                bad,
            ]);
            assert!(parsed.is_err(), "{bad}");
        }
        assert!(Args::try_parse_from(["happyrobot-mock", "--rate-limit-after", "1s:2"]).is_err());
    }

    #[test]
    fn parses_the_rate_limit_and_the_latency() {
        let args = Args::try_parse_from(["happyrobot-mock", "--rate-limit", "2.5"]).unwrap();
        assert_eq!(args.rate_limit_settings(), Some(RateLimit::per_second(2.5)));
        let limit = args.rate_limit_settings().unwrap();
        assert_eq!(limit.burst_size(), 1);
        assert!(limit.sends_retry_after());
        assert_eq!(limit.header_style(), RateLimitHeaders::None);

        let args = Args::try_parse_from([
            "happyrobot-mock",
            "--rate-limit",
            "10",
            "--rate-limit-burst",
            "5",
            "--rate-limit-retry-after",
            "none",
            "--rate-limit-headers",
            "x",
            "--latency",
            "50ms",
        ])
        .unwrap();
        assert_eq!(
            args.rate_limit_settings(),
            Some(
                RateLimit::per_second(10.0)
                    .burst(5)
                    .retry_after(false)
                    .headers(RateLimitHeaders::X)
            )
        );
        assert_eq!(args.latency, Some(Duration::from_millis(50)));
        let ietf = Args::try_parse_from([
            "happyrobot-mock",
            "--rate-limit",
            "1",
            "--rate-limit-headers",
            "ietf",
            "--rate-limit-retry-after",
            "seconds",
        ])
        .unwrap();
        assert_eq!(ietf.rate_limit_headers, RateLimitHeaders::Ietf);
        assert!(ietf.rate_limit_retry_after);
        for (latency, expected) in [("2s", 2000), ("250", 250), ("0.1s", 100)] {
            let args = Args::try_parse_from(["happyrobot-mock", "--latency", latency]).unwrap();
            assert_eq!(args.latency, Some(Duration::from_millis(expected)));
        }
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["happyrobot-mock", "--fault", "418:teapot"][..],
            &["happyrobot-mock", "--fault", "500", "--fault-rate", "1.5"],
            &["happyrobot-mock", "--fault-seed", "3"],
            &[
                "happyrobot-mock",
                "--fault-rate",
                "0.5",
                "--fault-count",
                "2",
            ],
            &["happyrobot-mock", "--rate-limit", "0"],
            &["happyrobot-mock", "--rate-limit", "-1"],
            &["happyrobot-mock", "--rate-limit", "inf"],
            &["happyrobot-mock", "--rate-limit", "NaN"],
            &["happyrobot-mock", "--rate-limit", "ten"],
            &["happyrobot-mock", "--rate-limit-burst", "3"],
            &[
                "happyrobot-mock",
                "--rate-limit",
                "5",
                "--rate-limit-burst",
                "0",
            ],
            &["happyrobot-mock", "--rate-limit-headers", "ietf"],
            &["happyrobot-mock", "--rate-limit-retry-after", "none"],
            &[
                "happyrobot-mock",
                "--rate-limit",
                "5",
                "--rate-limit-headers",
                "draft",
            ],
            &[
                "happyrobot-mock",
                "--rate-limit",
                "5",
                "--rate-limit-retry-after",
                "2",
            ],
            &["happyrobot-mock", "--latency", "soon"],
            &["happyrobot-mock", "--fault", "late-apply:after=1s"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_documents_every_fault() {
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for fault in [
            "429",
            "delay:",
            "invalid-json",
            "close-before-response",
            "save-then-drop",
            "note-not-found",
            "late-apply:answer=504,after=3s,apply=5s",
            "--fault-seed",
            "--ignore-client-note-ids",
            "--refuse-repeated-note-ids",
            "--rate-limit",
            "--rate-limit-burst",
            "--rate-limit-retry-after",
            "--rate-limit-headers",
            "RateLimit-Reset",
            "X-RateLimit-Reset",
            "--latency",
            "PATCH",
        ] {
            assert!(help.contains(fault), "help lacks {fault}");
        }
    }
}
