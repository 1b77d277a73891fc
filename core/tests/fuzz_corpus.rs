//! Replays the fuzz targets' seed corpora and every input that once crashed (`fuzz/corpus/*`,
//! `fuzz/regressions/*`) through the same entry points as `fuzz/fuzz_targets`, so CI checks
//! them on every run without a fuzzer: `cargo test --release -p rtcast --features fuzzing
//! --test fuzz_corpus`. Long runs: `scripts/fuzz.sh` (docs/RELIABILITY.md).
#![cfg(feature = "fuzzing")]

use std::path::{Path, PathBuf};

use rtcast::fuzzing;
use rtcast::media::pixel::{to_i420, I420Buffer, PixelFormat, RawFrame};
use rtcast::{Server, ServerConfig, StreamOptions, VideoCodec};

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

fn replay(target: &str, mut run: impl FnMut(&[u8])) {
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
    replay("tcp_frames", |d| {
        fuzzing::tcp_frames(d);
        fuzzing::stun_ufrag(d);
    });
}

#[test]
fn sdp() {
    let mut t = fuzzing::SdpTarget::new();
    replay("sdp", |d| t.run(d));
}

#[test]
fn datagram() {
    let mut t = fuzzing::PlaneTarget::new();
    replay("datagram", |d| t.datagram(d));
}

#[test]
fn h264() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("fuzz").unwrap();
    replay("h264", |d| {
        let _ = rtcast::media::h264::split_annex_b(d);
        let _ = rtcast::media::h264::access_units(d);
        let _ = stream.push_h264(d, None);
    });
}

#[test]
fn vp8_opus() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let options = StreamOptions {
        video: VideoCodec::Vp8,
        ..StreamOptions::default()
    };
    let stream = server.stream_with("fuzz", options).unwrap();
    replay("vp8_opus", |d| {
        let Some((&which, data)) = d.split_first() else {
            return;
        };
        if which & 1 == 0 {
            let _ = rtcast::media::vp8::parse_frame(data);
            let _ = stream.push_vp8(data, None);
        } else {
            let _ = stream.push_opus(data, None);
        }
    });
}

#[test]
fn raw_frame() {
    // The same decoding of the input as fuzz/fuzz_targets/raw_frame.rs.
    const FORMATS: [&str; 6] = ["i420", "nv12", "rgb24", "bgr24", "rgba", "bgra"];
    replay("raw_frame", |data| {
        if data.len() < 16 {
            return;
        }
        let (head, pixels) = data.split_at(16);
        let Some(format) = PixelFormat::from_name(FORMATS[usize::from(head[0]) % FORMATS.len()])
        else {
            return;
        };
        let (width, height) = (u32::from(head[1]), u32::from(head[2]));
        let stride = |i: usize| usize::from(u16::from_le_bytes([head[3 + 2 * i], head[4 + 2 * i]]));
        let cut = |i: usize| usize::from(head[9 + i]) * pixels.len() / 256;
        let (a, rest) = pixels.split_at(cut(0).min(pixels.len()));
        let (b, c) = rest.split_at(cut(1).min(rest.len()));
        let frame = if head[12] & 1 == 0 {
            RawFrame::packed(format, width, height, pixels)
        } else {
            RawFrame::with_planes(
                format,
                width,
                height,
                [a, b, c],
                [stride(0), stride(1), stride(2)],
            )
        };
        if let Ok(frame) = frame {
            let mut out = I420Buffer::new(frame.width, frame.height);
            assert_eq!(to_i420(&frame, &mut out).is_ok(), frame.validate().is_ok());
        }
    });
}
