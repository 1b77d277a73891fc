//! The C ABI of rtcast: serve live video to browsers over WebRTC from C and C++.
//!
//! The header is `include/rtcast.h`, generated from this crate by cbindgen. The conventions
//! (those of rustls-ffi):
//! - every name starts with `rtcast_`; functions are `rtcast_<object>_<verb>`;
//! - objects are opaque handles (`rtcast_config`, `rtcast_server`, `rtcast_stream`,
//!   `rtcast_stream_options`), each
//!   freed exactly once by its `_free` function; `_free(NULL)` is a no-op;
//! - fallible functions return an `rtcast_result` and write outputs through out-pointers; a
//!   call that fails changes nothing, and `rtcast_last_error_message` tells why (per thread);
//! - every pointer is checked for NULL, and no panic crosses into C (`RTCAST_ERR_PANIC`).

#![allow(non_camel_case_types)]
// Every exported function checks its pointers; its safety contract is in its doc comment.
#![allow(clippy::missing_safety_doc)]

mod config;
mod error;
mod event;
mod handle;
mod server;
mod stream;
mod stream_options;

pub use config::*;
#[cfg(feature = "test-hooks")]
pub use error::rtcast_test_force_panic;
pub use error::{rtcast_last_error_message, rtcast_result, rtcast_result_name};
pub use event::{
    rtcast_event, rtcast_event_callback, rtcast_event_kind, rtcast_leave_reason, rtcast_protocol,
};
pub use server::*;
pub use stream::*;
pub use stream_options::*;

use std::ffi::c_char;

/// The version of rtcast, e.g. "0.1.0": a static NUL-terminated string, never NULL. Any thread.
#[no_mangle]
pub extern "C" fn rtcast_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
