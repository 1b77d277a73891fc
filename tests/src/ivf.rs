//! Reading IVF files (the container libvpx writes): the VP8 test fixture comes in one.

use std::path::Path;

/// The frames of an IVF file, in order.
pub fn read_ivf(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if data.len() < 32 || &data[..4] != b"DKIF" {
        return Err(format!("{}: not an IVF file", path.display()));
    }
    let header_len = usize::from(u16::from_le_bytes([data[6], data[7]]));
    let mut frames = Vec::new();
    let mut at = header_len;
    while at + 12 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let start = at + 12;
        let frame = data
            .get(start..start + len)
            .ok_or_else(|| format!("{}: frame at byte {at} is truncated", path.display()))?;
        frames.push(frame.to_vec());
        at = start + len;
    }
    Ok(frames)
}

/// The path of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}
