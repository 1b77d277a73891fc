//! Opaque handles: boxed on `_new`, borrowed by every call, dropped once by `_free`.
//!
//! Each handle starts with a magic number that `_free` clears, so a handle freed twice or a
//! pointer of the wrong type is usually refused with `RTCAST_ERR_INVALID_ARGUMENT` instead of
//! corrupting memory. This is a best-effort aid for debugging, not a guarantee: freeing a handle
//! twice is still a bug in the caller.

use crate::error::{Failure, FfiResult};

/// A type handed to C behind a pointer.
pub(crate) trait Handle: Sized {
    /// The C type name, for messages.
    const NAME: &'static str;
    /// The magic number of a live handle of this type.
    const MAGIC: u64;
    /// The handle's magic field.
    fn magic(&self) -> u64;
    /// Clears the magic field before the handle is dropped.
    fn clear_magic(&mut self);
}

/// Borrows a handle passed by C.
///
/// # Safety
/// `p` must be NULL or a pointer returned by the matching `_new`/`_start` and not yet freed.
pub(crate) unsafe fn borrow<'a, T: Handle>(p: *const T) -> FfiResult<&'a T> {
    if p.is_null() {
        return Err(Failure::null(T::NAME));
    }
    let h = &*p;
    if h.magic() != T::MAGIC {
        return Err(Failure::invalid(format!(
            "{} is not a live handle (freed already, or a pointer of another type)",
            T::NAME
        )));
    }
    Ok(h)
}

/// Hands a new handle to C.
pub(crate) fn into_raw<T: Handle>(h: T) -> *mut T {
    Box::into_raw(Box::new(h))
}

/// Takes back and drops a handle; NULL is a no-op.
///
/// # Safety
/// `p` must be NULL or a pointer returned by the matching `_new`/`_start` and not yet freed.
pub(crate) unsafe fn free<T: Handle>(p: *mut T) -> FfiResult {
    if p.is_null() {
        return Ok(());
    }
    borrow(p.cast_const())?;
    let mut b = Box::from_raw(p);
    b.clear_magic();
    drop(b);
    Ok(())
}

/// A required out-pointer.
///
/// # Safety
/// `p` must be NULL or valid for writes.
pub(crate) unsafe fn out<'a, T>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    p.as_mut().ok_or_else(|| Failure::null(what))
}
