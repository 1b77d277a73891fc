//! rtcast: serve live video (and audio) from a host program to any number of browsers over
//! WebRTC, with Flussonic's WebSocket signalling and WHEP, on one UDP port.

#![warn(missing_docs)]

pub mod error;
pub mod media;

pub use error::{Error, Result};
