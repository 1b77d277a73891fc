//! NumPy arrays to core `RawFrame`s, without copying when rows are contiguous: the frame borrows
//! the arrays' memory for the duration of the push. Only type and layout checks live here; sizes
//! and dimensions are checked by the core.

use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use rtcast::{PixelFormat, RawFrame};

use crate::error::{raise, to_py, Kind};

/// The arrays of one frame, borrowed read-only (kept alive and unmodifiable by Rust code while the
/// frame is pushed), and their layout.
pub struct FrameArrays<'py> {
    format: PixelFormat,
    width: u32,
    height: u32,
    planes: Vec<Plane<'py>>,
}

/// One plane: rows of `row_bytes` bytes, `stride` bytes apart.
struct Plane<'py> {
    array: PyReadonlyArrayDyn<'py, u8>,
    rows: usize,
    row_bytes: usize,
    stride: usize,
}

impl<'py> Plane<'py> {
    fn bytes(&self) -> &[u8] {
        if self.rows == 0 || self.row_bytes == 0 {
            return &[];
        }
        let len = self.stride * (self.rows - 1) + self.row_bytes;
        // SAFETY: the array is kept alive and borrowed read-only by `self.array`; `len` bytes from
        // its data pointer are inside it: `stride` is its first-axis stride (checked positive)
        // and the last row is `row_bytes` long with unit inner strides (checked in `plane`).
        unsafe { std::slice::from_raw_parts(self.array.data() as *const u8, len) }
    }
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// A uint8 array (of any layout) as a plane: copied into C order only when its rows are not
/// contiguous runs of bytes.
fn plane<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Plane<'py>> {
    let py = obj.py();
    let untyped = obj.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a NumPy uint8 array, got {}",
            type_name(obj)
        ))
    })?;
    if !untyped.dtype().is_equiv_to(&numpy::dtype::<u8>(py)) {
        return Err(raise(
            Kind::InvalidFrame,
            format!(
                "{what} must have dtype uint8, got {} (convert with .astype(numpy.uint8))",
                untyped.dtype()
            ),
        ));
    }
    let array = untyped.cast::<PyArrayDyn<u8>>()?;
    let ndim = array.shape().len();
    if !(2..=3).contains(&ndim) {
        return Err(raise(
            Kind::InvalidFrame,
            format!(
                "{what} must have 2 or 3 dimensions, got {ndim} (shape {}); rgb24/bgr24 is (H, W, 3), \
                 rgba/bgra (H, W, 4), packed i420/nv12 (H*3/2, W), planes (H, W)",
                shape_text(array.shape())
            ),
        ));
    }
    if let Some(p) = row_layout(array)? {
        return Ok(p);
    }
    // Rows are not contiguous (a reversed or strided view): one copy into C order.
    let copy = py
        .import("numpy")?
        .call_method1("ascontiguousarray", (array,))?
        .cast_into::<PyArrayDyn<u8>>()?;
    row_layout(&copy)?.ok_or_else(|| raise(Kind::InvalidFrame, format!("{what}: unusable layout")))
}

/// The plane view of an array whose rows are contiguous, `None` otherwise.
fn row_layout<'py>(array: &Bound<'py, PyArrayDyn<u8>>) -> PyResult<Option<Plane<'py>>> {
    let shape = array.shape().to_vec();
    let strides = array.strides().to_vec();
    let (rows, row_bytes, inner_ok) = match shape.len() {
        2 => (shape[0], shape[1], shape[1] <= 1 || strides[1] == 1),
        3 => (
            shape[0],
            shape[1] * shape[2],
            (shape[2] <= 1 || strides[2] == 1)
                && (shape[1] <= 1 || strides[1] == shape[2] as isize),
        ),
        _ => (0, 0, false),
    };
    // Empty arrays (NumPy gives them zero strides) pass as empty planes: the core says which
    // dimension is zero.
    let empty = shape.contains(&0);
    let stride = if rows <= 1 || empty {
        row_bytes as isize
    } else {
        strides[0]
    };
    let inner_ok = inner_ok || empty;
    if !inner_ok || stride < row_bytes as isize {
        return Ok(None);
    }
    let array = array.try_readonly().map_err(|e| {
        raise(
            Kind::InvalidFrame,
            format!("the array is borrowed mutably: {e}"),
        )
    })?;
    Ok(Some(Plane {
        array,
        rows,
        row_bytes,
        stride: stride as usize,
    }))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The format named by the caller (parsed by the core, as in every language).
fn parse_format(name: &str) -> PyResult<PixelFormat> {
    name.parse::<PixelFormat>().map_err(to_py)
}

fn dim(n: usize, what: &str) -> PyResult<u32> {
    u32::try_from(n).map_err(|_| raise(Kind::InvalidFrame, format!("{what} {n} is too large")))
}

impl<'py> FrameArrays<'py> {
    /// Reads `frame` (an array, or a tuple/list of plane arrays) as `format` (or the format its
    /// shape implies).
    pub fn from_py(frame: &Bound<'py, PyAny>, format: Option<&str>) -> PyResult<Self> {
        let format = format.map(parse_format).transpose()?;
        if frame.is_instance_of::<PyTuple>() || frame.is_instance_of::<PyList>() {
            return Self::from_planes(frame, format);
        }
        let p = plane(frame, "frame")?;
        let shape = p.array.shape().to_vec();
        let wrong = |f: PixelFormat| {
            raise(
                Kind::InvalidFrame,
                format!(
                    "format '{f}' does not fit an array of shape {}: rgb24/bgr24 take (H, W, 3), \
                     rgba/bgra (H, W, 4), i420/nv12 a (H*3/2, W) array or a tuple of planes",
                    shape_text(&shape)
                ),
            )
        };
        match shape.len() {
            3 => {
                let channels = shape[2];
                let format = match (channels, format) {
                    (3, None) => PixelFormat::Rgb24,
                    (4, None) => PixelFormat::Rgba,
                    (3, Some(f @ (PixelFormat::Rgb24 | PixelFormat::Bgr24))) => f,
                    (4, Some(f @ (PixelFormat::Rgba | PixelFormat::Bgra))) => f,
                    (3 | 4, Some(f)) => return Err(wrong(f)),
                    _ => {
                        return Err(raise(
                            Kind::InvalidFrame,
                            format!(
                                "a frame array of shape {} has {channels} channels; \
                                 rtcast takes (H, W, 3) rgb24/bgr24 or (H, W, 4) rgba/bgra",
                                shape_text(&shape)
                            ),
                        ))
                    }
                };
                Ok(Self {
                    format,
                    width: dim(shape[1], "width")?,
                    height: dim(shape[0], "height")?,
                    planes: vec![p],
                })
            }
            2 => {
                let format = match format {
                    Some(f @ (PixelFormat::I420 | PixelFormat::Nv12)) => f,
                    Some(f) => return Err(wrong(f)),
                    None => {
                        return Err(raise(
                            Kind::InvalidFrame,
                            format!(
                                "a 2-D array of shape {} is read as packed YUV 4:2:0: pass \
                                 format='i420' or format='nv12' (or push an (H, W, 3) RGB array)",
                                shape_text(&shape)
                            ),
                        ))
                    }
                };
                if shape[0] % 3 != 0 {
                    return Err(raise(
                        Kind::InvalidFrame,
                        format!(
                            "a packed {format} array has H*3/2 rows of W bytes; {} rows is not \
                             a multiple of 3",
                            shape[0]
                        ),
                    ));
                }
                // The planes follow each other in memory: packed means contiguous rows of W.
                let p = if p.stride == p.row_bytes {
                    p
                } else {
                    let copy = frame
                        .py()
                        .import("numpy")?
                        .call_method1("ascontiguousarray", (frame,))?;
                    plane(&copy, "frame")?
                };
                Ok(Self {
                    format,
                    width: dim(shape[1], "width")?,
                    height: dim(shape[0] / 3 * 2, "height")?,
                    planes: vec![p],
                })
            }
            // plane() accepts 2 or 3 dimensions only; kept as an error rather than a panic.
            n => Err(raise(
                Kind::InvalidFrame,
                format!("a frame array has 2 or 3 dimensions, got {n}"),
            )),
        }
    }

    /// I420 `(y, u, v)` or NV12 `(y, uv)` plane arrays.
    fn from_planes(frame: &Bound<'py, PyAny>, format: Option<PixelFormat>) -> PyResult<Self> {
        let items: Vec<Bound<'py, PyAny>> = frame.try_iter()?.collect::<PyResult<_>>()?;
        let format = match (items.len(), format) {
            (3, None | Some(PixelFormat::I420)) => PixelFormat::I420,
            (2, None | Some(PixelFormat::Nv12)) => PixelFormat::Nv12,
            (n, f) => {
                return Err(raise(
                    Kind::InvalidFrame,
                    format!(
                        "a tuple of {n} planes{} does not make a frame: pass (y, u, v) for \
                         i420 or (y, uv) for nv12",
                        f.map(|f| format!(" with format '{f}'")).unwrap_or_default()
                    ),
                ))
            }
        };
        let names: &[&str] = if format == PixelFormat::I420 {
            &["y", "u", "v"]
        } else {
            &["y", "uv"]
        };
        let planes: Vec<Plane<'py>> = items
            .iter()
            .zip(names)
            .map(|(item, name)| plane(item, &format!("{format} plane {name}")))
            .collect::<PyResult<_>>()?;
        let y_shape = planes[0].array.shape().to_vec();
        if y_shape.len() != 2 {
            return Err(raise(
                Kind::InvalidFrame,
                format!(
                    "{format} plane y must be a 2-D (H, W) array, got shape {}",
                    shape_text(&y_shape)
                ),
            ));
        }
        let (h, w) = (y_shape[0], y_shape[1]);
        for (p, name) in planes.iter().zip(names).skip(1) {
            let shape = p.array.shape().to_vec();
            let ok = match format {
                PixelFormat::I420 => shape == [h / 2, w / 2],
                _ => shape == [h / 2, w] || shape == [h / 2, w / 2, 2],
            };
            if !ok {
                let expected = match format {
                    PixelFormat::I420 => format!("({}, {})", h / 2, w / 2),
                    _ => format!("({}, {}) or ({}, {}, 2)", h / 2, w, h / 2, w / 2),
                };
                return Err(raise(
                    Kind::InvalidFrame,
                    format!(
                        "{format} plane {name} of a {w}x{h} frame must have shape {expected}, \
                         got {}",
                        shape_text(&shape)
                    ),
                ));
            }
        }
        Ok(Self {
            format,
            width: dim(w, "width")?,
            height: dim(h, "height")?,
            planes,
        })
    }

    /// The core frame borrowing the arrays; the core checks dimensions and sizes.
    pub fn raw_frame(&self) -> PyResult<RawFrame<'_>> {
        let mut planes: [&[u8]; 3] = [&[]; 3];
        let mut strides = [0usize; 3];
        for (i, p) in self.planes.iter().enumerate() {
            planes[i] = p.bytes();
            strides[i] = p.stride;
        }
        if self.planes.len() == 1 && self.format.plane_count() > 1 {
            // Packed YUV in one contiguous array.
            return RawFrame::packed(self.format, self.width, self.height, planes[0])
                .map_err(to_py);
        }
        RawFrame::with_planes(self.format, self.width, self.height, planes, strides).map_err(to_py)
    }
}
