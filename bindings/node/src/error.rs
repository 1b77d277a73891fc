//! The one error adapter: every failure reaches JavaScript as an `Error` whose `code` names its
//! category (`ERR_RTCAST_INVALID_FRAME`...) and whose message is the core's, saying what was wrong.

use napi::bindgen_prelude::{JsObjectValue, JsValue};
use napi::{Env, Status};
use rtcast_core::Error;

/// A failure on its way to JavaScript: a code and a message. Plain Rust data, so it can be made on
/// any thread (inside an async task) and turned into a JS `Error` on the JS thread.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

/// The error codes, in one place; `index.d.ts` and the README list the same.
pub mod code {
    pub const INVALID_ARGUMENT: &str = "ERR_RTCAST_INVALID_ARGUMENT";
    pub const INVALID_FRAME: &str = "ERR_RTCAST_INVALID_FRAME";
    pub const INVALID_DATA: &str = "ERR_RTCAST_INVALID_DATA";
    pub const UNSUPPORTED: &str = "ERR_RTCAST_UNSUPPORTED";
    pub const BIND: &str = "ERR_RTCAST_BIND";
    pub const TLS: &str = "ERR_RTCAST_TLS";
    pub const STREAM_CLOSED: &str = "ERR_RTCAST_STREAM_CLOSED";
    pub const SERVER_STOPPED: &str = "ERR_RTCAST_SERVER_STOPPED";
    pub const LIMIT: &str = "ERR_RTCAST_LIMIT";
    pub const INTERNAL: &str = "ERR_RTCAST_INTERNAL";
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: code::INVALID_ARGUMENT,
            message: message.into(),
        }
    }

    /// The JS `Error` (with its `code` property), as a napi error that throws or rejects it.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        let build = || -> napi::Result<napi::Error> {
            let mut obj =
                env.create_error(napi::Error::new(Status::GenericFailure, &self.message))?;
            obj.set_named_property("code", self.code)?;
            Ok(napi::Error::from(obj.to_unknown()))
        };
        // Building a JS object only fails while the environment shuts down; the message survives.
        build().unwrap_or_else(|_| napi::Error::new(Status::GenericFailure, self.message))
    }
}

/// The one mapping from core errors to codes.
impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidConfig(_) => code::INVALID_ARGUMENT,
            Error::Bind { .. } => code::BIND,
            Error::Tls(_) => code::TLS,
            Error::InvalidFrame(_) => code::INVALID_FRAME,
            Error::InvalidData(_) => code::INVALID_DATA,
            Error::UnsupportedCodec(_) => code::UNSUPPORTED,
            Error::StreamClosed(_) => code::STREAM_CLOSED,
            Error::ServerStopped => code::SERVER_STOPPED,
            Error::LimitReached(_) => code::LIMIT,
            _ => code::INTERNAL,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

/// Result of the binding's own helpers.
pub type BResult<T> = std::result::Result<T, Failure>;

/// Converts a failure into a thrown JS error, for `#[napi]` methods (which take `env`).
pub trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T, E: Into<Failure>> OrThrow<T> for std::result::Result<T, E> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| e.into().into_napi(env))
    }
}
