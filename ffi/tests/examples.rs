//! The examples and the documentation of the C API, end to end: `examples/c/pattern.c` played by
//! headless Chromium, `examples/cpp/h264_file.cpp` delivering a file's access units to a native
//! viewer, the CMake package building `examples/c`, and the C snippet of README.md compiling.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use rtcast_core::media::encoder::{EncoderConfig, H264Encoder};
use rtcast_core::media::pattern::TestPattern;
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};
use rtcast_e2e::Chromium;

use common::{
    compile, compile_cpp, describe, lib_dir, out_dir, repo, shared_lib_flags, KillOnDrop,
};

fn as_strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// Reads lines of a program's stdout until one contains `marker`, and returns what follows the
/// marker on that line; panics with everything read if the program ends first.
fn read_until(stdout: &mut BufReader<ChildStdout>, marker: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("read stdout");
        assert!(n > 0, "program ended before printing {marker:?}:\n{seen}");
        if let Some(at) = line.find(marker) {
            return line[at + marker.len()..].trim().to_owned();
        }
        seen.push_str(&line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_example_plays_in_headless_chromium_at_640x360() {
    let exe = compile(
        "examples/c/pattern.c",
        "pattern_browser",
        &as_strs(&shared_lib_flags()),
    );
    // Port 0: the program prints the URL of the port it got.
    let mut child = KillOnDrop(
        Command::new(&exe)
            .args(["0", "120", "127.0.0.1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("pattern runs"),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let url = read_until(&mut stdout, "watch at ");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/pattern/embed.html"),
        "{url}"
    );
    // Keep reading the events it prints, so that a full pipe never blocks it.
    let events =
        std::thread::spawn(move || stdout.lines().map_while(Result::ok).collect::<Vec<_>>());

    let chromium = Chromium::launch().await.unwrap();
    let page = chromium.open(&url).await.unwrap();
    let report = page.wait_for_video(30, Duration::from_secs(30)).await;
    drop(chromium);
    drop(child);
    let events = events.join().expect("reader thread");
    let report = report.unwrap_or_else(|e| panic!("{e}\nprogram printed: {events:#?}"));
    assert!(report.frames_presented >= 30, "{report:?}");
    assert_eq!((report.width, report.height), (640, 360), "{report:?}");
    assert!(
        events
            .iter()
            .any(|line| line.contains("joined pattern from 127.0.0.1:")),
        "{events:#?}"
    );
}

/// The NAL units of an Annex B access unit, without start codes (4-byte and 3-byte start codes
/// compare equal) and without access unit delimiters, which rtcast does not forward.
fn nal_units(au: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(au.len(), |next| next - 3);
        while end > start && au[end - 1] == 0 {
            end -= 1;
        }
        if end > start && au[start] & 0x1f != 9 {
            nals.push(&au[start..end]);
        }
    }
    nals
}

/// 90 access units (3 s at 30 fps) of the test pattern, from the core's encoder; every other one
/// begins with an access unit delimiter, so that a splitter must handle both kinds of boundary.
fn encoded_pattern() -> Vec<Vec<u8>> {
    let mut encoder = H264Encoder::new(EncoderConfig {
        keyframe_interval: Duration::from_secs(1),
        ..EncoderConfig::default()
    });
    let mut pattern = TestPattern::new(320, 180);
    let mut units = Vec::new();
    for i in 0..90u64 {
        let pts = Duration::from_millis(i * 1000 / 30);
        let picture = pattern.render(i, pts);
        let out = encoder
            .encode(&picture.as_raw_frame(), false)
            .expect("encode")
            .expect("the encoder skips no frame at this rate");
        assert_eq!(
            out.keyframe,
            i == 0 || out.keyframe,
            "frame {i} starts with an IDR"
        );
        let mut unit = Vec::new();
        if i % 2 == 1 {
            unit.extend_from_slice(&[0, 0, 0, 1, 0x09, 0x30]); // AUD: P and I slices
        }
        unit.extend_from_slice(&out.data);
        units.push(unit);
    }
    units
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpp_h264_file_example_delivers_the_files_access_units_in_order() {
    let units = encoded_pattern();
    let file = out_dir().join("pattern.h264");
    std::fs::write(&file, units.concat()).expect("write the .h264 file");

    let exe = compile_cpp(
        "examples/cpp/h264_file.cpp",
        "h264_file",
        &as_strs(&shared_lib_flags()),
    );
    let mut child = KillOnDrop(
        Command::new(&exe)
            .arg(&file)
            .args(["30", "0", "127.0.0.1", "--wait-viewer"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("h264_file runs"),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    // The example's splitter found the access units the encoder made.
    let count = read_until(&mut stdout, "pattern.h264: ");
    assert_eq!(count, format!("{} access units", units.len()));
    let url = read_until(&mut stdout, "players connect to ");
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");

    let mut options = ViewerOptions::new(url, Duration::from_secs(20));
    options.record = true;
    options.stop_after_frames = Some(units.len() as u64);
    let report = run_viewer(options).await.expect("viewer runs");

    // It pushes for 3 s after the viewer joined, then stops by itself.
    let status = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = stdout.lines().map_while(Result::ok).collect();
        (child.0.wait().expect("wait"), rest)
    })
    .await
    .expect("waiter");
    let (status, rest) = status;
    assert!(status.success(), "status {status}, printed: {rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l == &format!("pushed {} access units; stopped", units.len())),
        "{rest:#?}"
    );

    assert!(report.connected && report.errors.is_empty(), "{report:?}");
    assert_eq!(
        report.access_units.len(),
        units.len(),
        "access units received"
    );
    for (i, (got, want)) in report.access_units.iter().zip(&units).enumerate() {
        assert!(
            nal_units(got) == nal_units(want),
            "access unit {i} differs: got {} bytes in {} NAL units, want {} bytes in {}",
            got.len(),
            nal_units(got).len(),
            want.len(),
            nal_units(want).len()
        );
    }
}

#[test]
fn cmake_package_builds_the_c_example_shared_and_static() {
    if Command::new("cmake").arg("--version").output().is_err() {
        eprintln!(
            "note: cmake is not installed; the CMake package is not tested (apt-get install cmake)"
        );
        return;
    }
    let dir = out_dir().join("cmake");
    let _ = std::fs::remove_dir_all(&dir);
    let prefix = dir.join("prefix");
    let output = Command::new("sh")
        .arg(repo().join("ffi/install.sh"))
        .arg(&prefix)
        // The libraries cargo just built: a nested cargo build would wait on this run's lock.
        .env("RTCAST_LIB_DIR", lib_dir())
        .output()
        .expect("install.sh runs");
    assert!(output.status.success(), "{}", describe(&output));

    let build = dir.join("build");
    let output = Command::new("cmake")
        .arg("-S")
        .arg(repo().join("examples/c"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .output()
        .expect("cmake configures");
    assert!(output.status.success(), "{}", describe(&output));
    let output = Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .output()
        .expect("cmake builds");
    assert!(output.status.success(), "{}", describe(&output));

    for exe in ["pattern", "pattern_static"] {
        // The shared build finds librtcast.so in the prefix through the rpath CMake set.
        let output = Command::new(build.join(exe))
            .args(["0", "1", "127.0.0.1"])
            .output()
            .expect("the example runs");
        assert!(output.status.success(), "{exe}: {}", describe(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("pushed 30 frames"),
            "{exe}: {}",
            describe(&output)
        );
    }
}

/// The first ```c block of README.md.
fn readme_c_snippet() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme.find("\n```c\n").expect("a ```c block in README.md") + "\n```c\n".len();
    let len = readme[start..].find("\n```").expect("the block ends") + 1;
    readme[start..start + len].to_owned()
}

#[test]
fn readme_c_example_compiles_and_links_with_all_warnings_as_errors() {
    let source = out_dir().join("readme_example.c");
    let snippet = readme_c_snippet();
    assert!(snippet.contains("int main"), "{snippet}");
    std::fs::write(&source, &snippet).expect("write the snippet");
    let exe = compile(
        Path::new(&source),
        "readme_example",
        &as_strs(&shared_lib_flags()),
    );
    assert!(exe.is_file());
}
