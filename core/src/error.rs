//! The one error type of the core. Bindings map its variants to their own error kinds, so every
//! variant names a category a host can act on, and every message says what was wrong.

use std::io;

/// Everything that can go wrong in rtcast, as seen by a host program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A socket could not be bound (port in use, address not on this host...).
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which listener: "HTTP" or "media UDP".
        what: &'static str,
        /// The address that was asked for.
        addr: std::net::SocketAddr,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// TLS certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),

    /// A pushed raw frame does not match its declared format (size, stride, dimensions).
    #[error("invalid frame: {0}")]
    InvalidFrame(String),

    /// Pushed encoded data is not what the call says it is (e.g. not H.264 Annex B).
    #[error("invalid media data: {0}")]
    InvalidData(String),

    /// The codec is not supported for this call or this stream.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),

    /// The built-in encoder failed.
    #[error("encoder: {0}")]
    Encoder(String),

    /// The stream was removed or the server stopped; pushing into it is no longer possible.
    #[error("stream '{0}' is closed")]
    StreamClosed(String),

    /// The server was stopped.
    #[error("server is stopped")]
    ServerStopped,

    /// A limit was reached (viewers per stream, per server...).
    #[error("limit reached: {0}")]
    LimitReached(String),

    /// An internal WebRTC failure (a bug or a peer that broke the protocol).
    #[error("webrtc: {0}")]
    WebRtc(String),

    /// Other I/O failures.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

impl From<rtc::shared::error::Error> for Error {
    fn from(e: rtc::shared::error::Error) -> Self {
        Error::WebRtc(e.to_string())
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
