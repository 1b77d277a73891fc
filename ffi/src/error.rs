//! Result codes, the thread-local last error, and the guard every entry point runs in: it catches
//! panics (none crosses the C boundary) and records the message of every failure.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_uint, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use rtcast_core::Error;

/// What a fallible call returns. `RTCAST_OK` is 0; on any other code the call changed nothing
/// and `rtcast_last_error_message` tells what was wrong on this thread.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rtcast_result {
    /// Success.
    RTCAST_OK = 0,
    /// A required pointer argument was NULL.
    RTCAST_ERR_NULL,
    /// An argument is out of range or malformed (address, stream name, configuration, UTF-8...).
    RTCAST_ERR_INVALID_ARGUMENT,
    /// A raw frame does not match its declared format (size, stride, dimensions).
    RTCAST_ERR_INVALID_FRAME,
    /// Encoded data is not what the call says (e.g. not H.264 Annex B, an empty Opus packet).
    RTCAST_ERR_INVALID_DATA,
    /// The codec or feature is not supported (yet, or for this stream).
    RTCAST_ERR_UNSUPPORTED,
    /// A port could not be bound (in use, address not on this host).
    RTCAST_ERR_BIND,
    /// The TLS certificate or key could not be read or used.
    RTCAST_ERR_TLS,
    /// The server was stopped.
    RTCAST_ERR_STOPPED,
    /// The stream was removed or its server stopped: pushing into it is no longer possible.
    RTCAST_ERR_CLOSED,
    /// A limit was reached (viewers, queues).
    RTCAST_ERR_LIMIT,
    /// The caller's buffer is too small; the length needed was written to the out-pointer.
    RTCAST_ERR_BUFFER_TOO_SMALL,
    /// rtcast panicked inside the call (a bug): the panic was caught and did not cross into C.
    RTCAST_ERR_PANIC,
    /// Any other failure inside rtcast (encoder, WebRTC, I/O).
    RTCAST_ERR_INTERNAL,
}

use rtcast_result::*;

/// A failure: its code and its message, as stored for `rtcast_last_error_message`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: rtcast_result,
    pub message: String,
}

impl Failure {
    pub fn new(code: rtcast_result, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn null(what: &str) -> Self {
        Self::new(RTCAST_ERR_NULL, format!("{what} is NULL"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(RTCAST_ERR_INVALID_ARGUMENT, message)
    }
}

/// The one mapping from core errors to result codes.
impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidConfig(_) => RTCAST_ERR_INVALID_ARGUMENT,
            Error::Bind { .. } => RTCAST_ERR_BIND,
            Error::Tls(_) => RTCAST_ERR_TLS,
            Error::InvalidFrame(_) => RTCAST_ERR_INVALID_FRAME,
            Error::InvalidData(_) => RTCAST_ERR_INVALID_DATA,
            Error::UnsupportedCodec(_) => RTCAST_ERR_UNSUPPORTED,
            Error::StreamClosed(_) => RTCAST_ERR_CLOSED,
            Error::ServerStopped => RTCAST_ERR_STOPPED,
            Error::LimitReached(_) => RTCAST_ERR_LIMIT,
            Error::Encoder(_) | Error::WebRtc(_) | Error::Io(_) => RTCAST_ERR_INTERNAL,
            _ => RTCAST_ERR_INTERNAL,
        };
        Self::new(code, e.to_string())
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: String) {
    LAST_ERROR.with(|m| *m.borrow_mut() = message);
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs the body of entry point `name`: catches a panic, records the message of a failure in the
/// thread's last error, and turns the outcome into a result code.
pub(crate) fn guard(name: &str, body: impl FnOnce() -> FfiResult) -> rtcast_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RTCAST_OK,
        Ok(Err(f)) => {
            set_last_error(format!("{name}: {}", f.message));
            f.code
        }
        Err(payload) => {
            set_last_error(format!(
                "{name}: internal panic (a bug in rtcast, please report it): {}",
                panic_message(&*payload)
            ));
            RTCAST_ERR_PANIC
        }
    }
}

/// Runs `body` for an entry point that cannot report an error (the `_free` functions): a panic
/// is caught and recorded, never propagated.
pub(crate) fn guard_void(name: &str, body: impl FnOnce()) {
    let _ = guard(name, || {
        body();
        Ok(())
    });
}

/// Copies `s` and a terminating NUL into the caller's `buf` of `len` bytes, and its length
/// (without the NUL) into `*out_len`. Too small a buffer: `RTCAST_ERR_BUFFER_TOO_SMALL`, the
/// buffer is untouched and `*out_len` still says the length needed (without the NUL).
///
/// # Safety
/// `buf` must be NULL or valid for `len` bytes; `out_len` must be NULL or valid.
pub(crate) unsafe fn write_str(
    s: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> FfiResult {
    if out_len.is_null() {
        return Err(Failure::null("out_len"));
    }
    if buf.is_null() && len != 0 {
        return Err(Failure::null("buf (with len > 0)"));
    }
    if s.len() >= len {
        *out_len = s.len();
        return Err(Failure::new(
            RTCAST_ERR_BUFFER_TOO_SMALL,
            format!(
                "buffer of {len} bytes is too small: {} bytes are needed (with the NUL)",
                s.len() + 1
            ),
        ));
    }
    std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
    *buf.add(s.len()) = 0;
    *out_len = s.len();
    Ok(())
}

/// A required C string argument as UTF-8.
///
/// # Safety
/// `s` must be NULL or point to a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(s: *const c_char, what: &str) -> FfiResult<&'a str> {
    if s.is_null() {
        return Err(Failure::null(what));
    }
    CStr::from_ptr(s)
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// Copies the message of the last failed call made on this thread (empty if none failed) into
/// `buf` (`len` bytes, NUL-terminated), its length without the NUL into `*out_len`.
///
/// Returns `RTCAST_ERR_BUFFER_TOO_SMALL` (buffer untouched, `*out_len` = length needed without
/// the NUL) when `len` is not larger than the message; `RTCAST_ERR_NULL` when `out_len` is NULL,
/// or `buf` is NULL with `len` > 0. `buf` may be NULL with `len` 0 to ask for the length.
/// This function never changes the last error, so it can be called again with a bigger buffer.
/// Any thread.
///
/// # Safety
/// `buf` must be NULL or writable for `len` bytes; `out_len` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> rtcast_result {
    let result = catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR.with(|m| write_str(&m.borrow(), buf, len, out_len))
    }));
    match result {
        Ok(Ok(())) => RTCAST_OK,
        Ok(Err(f)) => f.code,
        Err(_) => RTCAST_ERR_PANIC,
    }
}

/// A static, NUL-terminated name of a result code ("RTCAST_OK", "RTCAST_ERR_NULL"...), for
/// logs; "RTCAST_UNKNOWN" for a value that is no result code. Never NULL; any thread. Takes the
/// code as an unsigned int (what an `enum rtcast_result` converts to): a value outside the enum
/// coming from C must not be read as a Rust enum.
#[no_mangle]
pub extern "C" fn rtcast_result_name(result: c_uint) -> *const c_char {
    let name: &'static CStr = match result {
        x if x == RTCAST_OK as c_uint => c"RTCAST_OK",
        x if x == RTCAST_ERR_NULL as c_uint => c"RTCAST_ERR_NULL",
        x if x == RTCAST_ERR_INVALID_ARGUMENT as c_uint => c"RTCAST_ERR_INVALID_ARGUMENT",
        x if x == RTCAST_ERR_INVALID_FRAME as c_uint => c"RTCAST_ERR_INVALID_FRAME",
        x if x == RTCAST_ERR_INVALID_DATA as c_uint => c"RTCAST_ERR_INVALID_DATA",
        x if x == RTCAST_ERR_UNSUPPORTED as c_uint => c"RTCAST_ERR_UNSUPPORTED",
        x if x == RTCAST_ERR_BIND as c_uint => c"RTCAST_ERR_BIND",
        x if x == RTCAST_ERR_TLS as c_uint => c"RTCAST_ERR_TLS",
        x if x == RTCAST_ERR_STOPPED as c_uint => c"RTCAST_ERR_STOPPED",
        x if x == RTCAST_ERR_CLOSED as c_uint => c"RTCAST_ERR_CLOSED",
        x if x == RTCAST_ERR_LIMIT as c_uint => c"RTCAST_ERR_LIMIT",
        x if x == RTCAST_ERR_BUFFER_TOO_SMALL as c_uint => c"RTCAST_ERR_BUFFER_TOO_SMALL",
        x if x == RTCAST_ERR_PANIC as c_uint => c"RTCAST_ERR_PANIC",
        x if x == RTCAST_ERR_INTERNAL as c_uint => c"RTCAST_ERR_INTERNAL",
        _ => c"RTCAST_UNKNOWN",
    };
    name.as_ptr()
}

/// For tests only (cargo feature `test-hooks`, not in the header): panics inside rtcast, to prove
/// that a panic is caught at the boundary. Always returns `RTCAST_ERR_PANIC` and sets the last
/// error; nothing else is affected. Any thread.
#[cfg(feature = "test-hooks")]
#[no_mangle]
pub extern "C" fn rtcast_test_force_panic() -> rtcast_result {
    guard("rtcast_test_force_panic", || {
        panic!("forced by rtcast_test_force_panic");
    })
}
