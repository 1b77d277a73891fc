//! The Python module `rtcast._rtcast` (re-exported by the `rtcast` package): a thin face over the
//! rtcast core. It converts arguments, results and errors; every behaviour lives in the core.

use pyo3::prelude::*;

mod error;
mod event;
mod frame;
mod server;
mod stats;
mod stream;

#[pymodule]
fn _rtcast(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Load NumPy's C API now, where a failure is an ImportError: done lazily by the first push,
    // a KeyboardInterrupt landing in that import would make the numpy crate panic.
    m.py().import("numpy")?;
    let _ = numpy::dtype::<u8>(m.py());
    m.add("__version__", rtcast::VERSION)?;
    m.add_class::<server::Server>()?;
    m.add_class::<server::AuthRequest>()?;
    m.add_class::<stream::Stream>()?;
    m.add_class::<stream::Rendition>()?;
    m.add_class::<event::Event>()?;
    m.add_class::<stats::ServerStats>()?;
    m.add_class::<stats::StreamStats>()?;
    m.add_class::<stats::ViewerStats>()?;
    error::register(m)?;
    let close_all = wrap_pyfunction!(server::_close_all, m)?;
    m.add_function(close_all.clone())?;
    // Servers still running at exit are stopped before the interpreter finalizes, while their
    // event threads can still take the GIL to deliver the last events.
    m.py()
        .import("atexit")?
        .call_method1("register", (close_all,))?;
    Ok(())
}
