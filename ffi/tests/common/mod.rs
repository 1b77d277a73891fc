//! Building and running C and C++ programs against the library cargo just built, shared by the
//! test binaries of this crate (each uses a part).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// `target/<profile>`, where `cargo build -p rtcast-ffi` puts librtcast.so and librtcast.a.
///
/// `cargo test` does not build a crate's cdylib/staticlib outputs for its integration tests, so
/// they must be built first (`scripts/test.sh` does); a missing library fails with that advice.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent() // deps
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
    for lib in ["librtcast.so", "librtcast.a"] {
        assert!(
            dir.join(lib).exists(),
            "{} is missing: build the C library first with `cargo build --release -p rtcast-ffi` \
             (scripts/test.sh does)",
            dir.join(lib).display()
        );
    }
    dir
}

/// The root of the repository.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch directory for programs and files, shared by the test binaries of this crate (so
/// every test uses names of its own).
pub fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Compiles the C file `source` (relative to the repository, or absolute) into
/// `out_dir()/name` with `gcc -std=c11 -Wall -Wextra -Werror` and `extra` flags.
pub fn compile(source: impl AsRef<Path>, name: &str, extra: &[&str]) -> PathBuf {
    build("gcc", "-std=c11", source.as_ref(), name, extra)
}

/// Compiles the C++ file `source` into `out_dir()/name` with
/// `g++ -std=c++17 -Wall -Wextra -Werror` and `extra` flags.
pub fn compile_cpp(source: impl AsRef<Path>, name: &str, extra: &[&str]) -> PathBuf {
    build("g++", "-std=c++17", source.as_ref(), name, extra)
}

fn build(compiler: &str, std: &str, source: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let exe = out_dir().join(name);
    let source = repo().join(source);
    let output = Command::new(compiler)
        .args([std, "-g", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(repo().join("include"))
        .arg(&source)
        .args(extra)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} runs (apt-get install {compiler}): {e}"));
    assert!(
        output.status.success(),
        "{compiler} {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Links against librtcast.so, found at run time through an rpath.
pub fn shared_lib_flags() -> Vec<String> {
    let dir = lib_dir();
    vec![
        format!("-L{}", dir.display()),
        "-lrtcast".into(),
        format!("-Wl,-rpath,{}", dir.display()),
    ]
}

/// Libraries the Rust standard library and the bundled openh264 (C++) need when librtcast.a is
/// linked statically, as `cargo rustc -p rtcast-ffi --crate-type staticlib -- --print
/// native-static-libs` lists them.
pub const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lstdc++",
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
];

/// Status, stdout and stderr of a finished program, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Kills a child process when dropped (a failing assertion must not leave a server running).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
