//! Node.js binding of rtcast (napi-rs). Thin by design: it converts JavaScript values to core
//! types and core errors to JavaScript errors, and owns nothing but handles; every behaviour
//! lives in the `rtcast` crate.

#![deny(clippy::all)]

mod error;
mod events;
mod server;
mod stream;

use napi_derive::napi;

/// The version of the rtcast core this module was built from.
#[napi]
pub fn version() -> String {
    rtcast_core::VERSION.to_owned()
}
