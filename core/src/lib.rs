//! rtcast: serve live video (and audio) from a host program to any number of browsers over
//! WebRTC, with Flussonic's WebSocket signalling, on one UDP port.
//!
//! ```no_run
//! use rtcast::{Server, ServerConfig};
//! let server = Server::start(ServerConfig::default())?;
//! let stream = server.stream("cam")?;
//! # let access_unit: Vec<u8> = vec![];
//! stream.push_h264(&access_unit, None)?; // Annex B, from your encoder
//! println!("watch at {}", server.url("cam"));
//! # Ok::<(), rtcast::Error>(())
//! ```

#![warn(missing_docs)]
// No panic that network or host input can reach (docs/RELIABILITY.md): outside tests, every
// unwrap, expect, panic and index is checked, or allowed where it stands with the reason it
// cannot fail. Tests (`#[cfg(test)]`, `plane/tests.rs`, `core/tests/`) may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing,
        clippy::string_slice
    )
)]

pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod event;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod media;
pub mod metrics;
mod net;
mod plane;
mod server;
mod session;
pub mod signal;
mod stream;
#[doc(hidden)]
pub mod surface;
#[cfg(test)]
mod test_heap;

pub use config::{
    AuthRequest, AuthorizeHook, CandidatePolicy, IceServer, Limits, Protocol, ServerConfig,
    TlsConfig,
};
pub use error::{Error, Result};
pub use event::{Event, EventDispatcher, EventSink, Events, LeaveReason, Recv, ViewerId};
pub use media::encoder::EncoderConfig;
pub use media::pixel::{PixelFormat, RawFrame};
pub use media::VideoCodec;
pub use metrics::{ServerStats, Transport, ViewerStats};
pub use server::{Census, Server};
pub use signal::turn::TurnSecret;
pub use stream::{Rendition, Stream, StreamOptions, StreamStats, MAX_RENDITIONS};

/// The version of this library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust example, compiled by `cargo test` so it keeps working as printed.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
