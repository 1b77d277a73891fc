//! The C API tested from C: the C programs in `ffi/tests/c` and `examples/c` are compiled with
//! `gcc -Wall -Wextra -Werror` against the library cargo just built, and run.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtcast_e2e::viewer::{run_viewer, ViewerOptions};

use common::{compile, describe, lib_dir, out_dir, repo, shared_lib_flags, NATIVE_STATIC_LIBS};

#[test]
fn c_program_gets_codes_and_messages_for_every_misuse_and_runs_start_push_stop() {
    let mut flags = shared_lib_flags();
    // The panic test needs `rtcast_test_force_panic`, only in a library built with the feature
    // (scripts/test.sh builds it so).
    let hooks = cfg!(feature = "test-hooks");
    if hooks {
        flags.push("-DRTCAST_TEST_HOOKS".into());
    } else {
        eprintln!("the panic test is skipped: build with --features rtcast-ffi/test-hooks");
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let exe = compile("ffi/tests/c/api_test.c", "api_test", &flags);
    let output = Command::new(&exe)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("api_test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" passed, 0 failed"),
        "{}",
        describe(&output)
    );
    // The forced panic was reported by the panic hook and caught: the process went on.
    assert!(
        !hooks
            || String::from_utf8_lossy(&output.stderr)
                .contains("forced by rtcast_test_force_panic")
    );
}

#[test]
fn pattern_example_serves_and_shuts_down_cleanly() {
    let flags = shared_lib_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let exe = compile("examples/c/pattern.c", "pattern", &flags);
    let output = Command::new(&exe)
        .args(["0", "1", "127.0.0.1"])
        .output()
        .expect("pattern runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stdout.contains("watch at http://127.0.0.1:") && stdout.contains("/pattern/embed.html"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout.contains("pushed 30 frames") && stdout.contains("stopped"),
        "{}",
        describe(&output)
    );
}

/// serve_once.c pushes video and audio into one stream and video into another, from three
/// threads at once, while a native viewer watches: built with AddressSanitizer, it must end with
/// no memory error and no leak.
#[test]
fn asan_build_serves_a_viewer_from_three_pushing_threads_without_memory_errors_or_leaks() {
    let lib = lib_dir().join("librtcast.a");
    let mut flags = vec![
        "-fsanitize=address",
        "-fno-omit-frame-pointer",
        lib.to_str().expect("UTF-8 path"),
    ];
    flags.extend_from_slice(NATIVE_STATIC_LIBS);
    let exe = compile("ffi/tests/c/serve_once.c", "serve_once_asan", &flags);

    let mut child = Command::new(&exe)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=86",
        )
        .env(
            "LSAN_OPTIONS",
            format!(
                "suppressions={}",
                repo().join("ffi/tests/c/lsan.supp").display()
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve_once runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut url = String::new();
    stdout.read_line(&mut url).expect("first line");
    let url = url.trim().to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "first line: {url:?}");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The authorization callback refuses this one (4403) and admits the next.
    let mut options = ViewerOptions::new(format!("{url}?token=bad"), Duration::from_secs(20));
    options.stop_after_frames = Some(10);
    let refused = runtime.block_on(run_viewer(options));
    let mut options = ViewerOptions::new(format!("{url}?token=good"), Duration::from_secs(20));
    // Two seconds of frames: its figures are published about once a second.
    options.stop_after_frames = Some(60);
    let report = runtime.block_on(run_viewer(options));

    // The program stops by itself once the viewer left; give ASan time for its leak check.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("stdout");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let context = format!("status {status}\n--- stdout\n{rest}\n--- stderr\n{stderr}");

    let report = report.unwrap_or_else(|e| panic!("viewer failed: {e}\n{context}"));
    assert!(
        report.video_frames >= 10,
        "viewer got {} frames\n{context}",
        report.video_frames
    );
    assert!(
        report.audio_packets > 0,
        "no audio reached the viewer\n{context}"
    );
    assert!(
        !stderr.contains("AddressSanitizer") && !stderr.contains("LeakSanitizer"),
        "{context}"
    );
    assert!(status.success(), "{context}");
    assert!(
        rest.contains("done joined=1 left=1 admitted=1 refused=1 calls=2 figures=1"),
        "{context}"
    );
    let refused = refused.unwrap_or_else(|e| panic!("refused viewer: {e}\n{context}"));
    assert_eq!(
        (refused.close.as_ref().map(|c| c.0), refused.video_frames),
        (Some(4403), 0),
        "the viewer with a bad token: {refused:?}\n{context}"
    );
}

#[test]
fn install_sh_makes_a_prefix_that_pkg_config_builds_against() {
    let prefix = out_dir().join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let output = Command::new("sh")
        .arg(repo().join("ffi/install.sh"))
        .arg(&prefix)
        // The libraries cargo just built: a nested cargo build would wait on this run's lock.
        .env("RTCAST_LIB_DIR", lib_dir())
        .output()
        .expect("install.sh runs");
    assert!(output.status.success(), "{}", describe(&output));

    let pkg_config = |arg: &str| {
        let out = Command::new("pkg-config")
            .args([arg, "rtcast"])
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .output()
            .expect("pkg-config runs (apt-get install pkg-config)");
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned()
    };
    assert_eq!(pkg_config("--modversion"), env!("CARGO_PKG_VERSION"));
    let mut flags: Vec<String> = pkg_config("--cflags")
        .split_whitespace()
        .map(Into::into)
        .collect();
    flags.extend(pkg_config("--libs").split_whitespace().map(String::from));
    let exe = out_dir().join("pattern_pkg_config");
    let output = Command::new("cc")
        .arg(repo().join("examples/c/pattern.c"))
        .args(&flags)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(output.status.success(), "{}", describe(&output));
    let output = Command::new(&exe)
        .args(["0", "1", "127.0.0.1"])
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .output()
        .expect("pattern runs");
    assert!(output.status.success(), "{}", describe(&output));
}
