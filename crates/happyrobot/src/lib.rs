#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod error;
mod input;
mod retry;
mod tls;

pub use client::{
    API_KEY_ENV, BASE_URL_ENV, Client, ClientBuilder, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT,
};
pub use error::{Error, RawBody};
pub use input::{ApiKey, CallId, NewNote};
pub use retry::RetryPolicy;

/// The API's models, generated from the spec: [`Call`](types::Call), [`Note`](types::Note),
/// [`CallStatus`](types::CallStatus), ...
///
/// Enums are open (`Unknown(String)` keeps a value this version does not know) and timestamps are
/// [`Timestamp`](types::Timestamp)s that keep the server's text.
pub use happyrobot_sdk::types;

/// The HTTP status type used by [`Error::status`].
pub use reqwest::StatusCode;
