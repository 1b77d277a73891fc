//! The checked-in C header is exactly what cbindgen generates from this crate.

use std::path::Path;

#[test]
fn checked_in_header_matches_the_crate() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml is readable");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");

    let header = crate_dir.join("../include/rtcast.h");
    if std::env::var_os("RTCAST_BLESS").is_some() {
        std::fs::write(&header, &generated).expect("include/rtcast.h is writable");
        return;
    }
    let checked_in = std::fs::read_to_string(&header).unwrap_or_default();
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |n| format!("line {}", n + 1));
        panic!(
            "include/rtcast.h is stale (first difference at {line}); regenerate it with\n    \
             RTCAST_BLESS=1 cargo test -p rtcast-ffi --test header\nand commit it"
        );
    }
}
