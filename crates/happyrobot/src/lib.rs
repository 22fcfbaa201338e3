#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

/// The API's models, generated from the spec: [`Call`](types::Call), [`Note`](types::Note),
/// [`CallStatus`](types::CallStatus), ...
pub use happyrobot_sdk::types;
