//! Replays the fuzz targets' seed corpora and every input that once crashed (`fuzz/corpus/*`,
//! `fuzz/regressions/*`) through the same entry points as `fuzz/fuzz_targets`, so CI checks
//! them on every run without a fuzzer: `cargo test --release -p rtcast --features fuzzing
//! --test fuzz_corpus`. Long runs: `scripts/fuzz.sh` (docs/RELIABILITY.md).
#![cfg(feature = "fuzzing")]

use std::path::{Path, PathBuf};

use rtcast::fuzzing;

/// Every file of `fuzz/corpus/TARGET` and `fuzz/regressions/TARGET`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_file() {
                let data = std::fs::read(&path).unwrap();
                out.push((path, data));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(
        !inputs.is_empty(),
        "no seeds for {target} in fuzz/corpus/{target}"
    );
    for (path, data) in &inputs {
        eprintln!("{target}: {}", path.display());
        run(data);
    }
}

#[test]
fn ws_message() {
    replay("ws_message", fuzzing::ws_message);
}

#[test]
fn rtcp() {
    replay("rtcp", fuzzing::rtcp);
}

#[test]
fn tcp_frames() {
    replay("tcp_frames", fuzzing::tcp_frames);
}

#[test]
fn sdp() {
    replay("sdp", fuzzing::sdp);
}

#[test]
fn datagram() {
    replay("datagram", fuzzing::datagram);
}

#[test]
fn h264() {
    replay("h264", fuzzing::h264);
}

#[test]
fn vp8_opus() {
    replay("vp8_opus", fuzzing::vp8_opus);
}

#[test]
fn raw_frame() {
    replay("raw_frame", fuzzing::raw_frame);
}

#[test]
fn http() {
    replay("http", fuzzing::http);
}

#[test]
fn whep_patch() {
    replay("whep_patch", fuzzing::whep_patch);
}
