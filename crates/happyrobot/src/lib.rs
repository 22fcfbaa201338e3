#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod base_url;
mod builder;
mod client;
mod control;
mod error;
mod ext;
mod input;
mod list;
mod rate;
mod response;
mod retry;
mod settle;
mod tls;

pub use base_url::BaseUrl;
pub use builder::ClientBuilder;
pub use client::{
    API_KEY_ENV, BASE_URL_ENV, Client, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RECONCILE_SETTLE, DEFAULT_TIMEOUT, new_note_id,
};
pub use control::{Attempt, AttemptObserver, Control, OwnedControl, SettleStep};
pub use error::{Category, Error, ErrorKind, Operation, Outcome, Unsettled};
pub use ext::{CallExt, NoteExt};
pub use input::{ApiKey, CallId, IntoApiKey, NewNote, NoteChanges, NoteId};
pub use list::{CallFilter, CallStream, CallWithJson, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use rate::{RateControl, RateStats};
pub use response::Response;
pub use retry::{RetryAction, RetryPolicy, RetryReason, StopReason};
pub use settle::{AddedNote, HowAdded, NoteLookup, PendingAdd, Settled, Undecided, added_note};
/// How a caller stops the waits of its requests ([`Control::stop`]): tokio-util's token,
/// re-exported so that no direct dependency on tokio-util is needed.
pub use tokio_util::sync::CancellationToken;

/// The API's models, generated from the spec: [`Call`](types::Call), [`Note`](types::Note),
/// [`CallStatus`](types::CallStatus), ...
///
/// Enums are open (`Unknown(String)` keeps a value this version does not know) and timestamps are
/// [`Timestamp`](types::Timestamp)s that keep the server's text.
pub use happyrobot_sdk::types;

/// chrono's date and time types that [`CallFilter`] takes ([`CallFilter::from`],
/// [`CallFilter::to`], [`CallFilter::day`]), re-exported so that no direct dependency on chrono
/// is needed (and `chrono` itself, for the rest: `happyrobot::chrono::TimeZone`).
pub use chrono::{self, DateTime, NaiveDate, Utc};

/// The HTTP status type used by [`Error::status`] and [`Response::status`] (the `http` crate's).
pub use http::StatusCode;
