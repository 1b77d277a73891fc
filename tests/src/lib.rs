//! End-to-end test harness for rtcast.
//!
//! Runs a real headless Chromium (Debian's `chromium`, see `scripts/ensure-chromium.sh`), opens
//! pages in it over the DevTools protocol and checks that a `<video>` really presents frames.
//! The pages live in `tests/pages/` and are opened as `file://` URLs built by [`page_url`].

pub mod chromium;
mod depacketize;
pub mod ivf;
pub mod netns;
pub mod serverproc;
pub mod viewer;
pub mod whep;
pub mod witness;

use std::path::Path;

pub use chromium::{Chromium, Error, Page, VideoReport};

use rtcast::demo::{DemoOptions, DemoSource};

/// The demo source at 320x240, 30 fps: live video that costs the test machine little.
pub fn small_demo(stream: rtcast::Stream) -> DemoSource {
    DemoSource::start(
        stream,
        DemoOptions {
            width: 320,
            height: 240,
            ..DemoOptions::default()
        },
    )
}

/// The `file://` URL of `tests/pages/<name>`, with `query` (without the leading `?`) appended
/// when it is not empty: `page_url("flussonic-ws-client.html", "src=ws://127.0.0.1:8080/demo/webrtc")`.
///
/// The query is used as given, so the caller escapes what needs escaping (`&`, `#`, spaces).
pub fn page_url(name: &str, query: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pages")
        .join(name);
    let mut url = String::from("file://");
    for c in path.to_string_lossy().chars() {
        // Only the characters a path may hold that would change the URL's meaning.
        match c {
            ' ' => url.push_str("%20"),
            '%' => url.push_str("%25"),
            '#' => url.push_str("%23"),
            '?' => url.push_str("%3F"),
            c => url.push(c),
        }
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::page_url;

    #[test]
    fn page_url_points_into_tests_pages_and_keeps_the_query() {
        let url = page_url("x.html", "src=ws://127.0.0.1:1/demo/webrtc");
        assert!(url.starts_with("file:///"), "{url}");
        assert!(
            url.ends_with("/pages/x.html?src=ws://127.0.0.1:1/demo/webrtc"),
            "{url}"
        );
        assert!(page_url("x.html", "").ends_with("/pages/x.html"));
    }
}
