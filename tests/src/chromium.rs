//! A headless Chromium driven over the Chrome DevTools Protocol (CDP).
//!
//! One WebSocket to the browser target carries everything: each [`Page`] is a tab attached with
//! `flatten: true`, so its commands and events travel on that socket tagged with a session id.
//! Every wait is bounded; errors carry the tail of Chromium's own log (and, for video waits, the
//! page's console), because a browser test that fails with "timed out" alone is not debuggable.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Where Debian's `chromium` package puts the browser; `$CHROMIUM` overrides it.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// Flags for a quiet, self-contained browser that plays WebRTC from loopback on its own.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    // Host candidates must be real addresses (127.0.0.1), not `.local` mDNS names.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--remote-debugging-port=0",
];

/// Nothing but localhost resolves: a test can never reach the network by accident. The rules
/// apply to IP literals too, so loopback addresses must be excluded by name as well.
const RESOLVER_RULES: &str =
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]";

/// From spawning Chromium until its DevTools endpoint answers.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// One DevTools command, including `Runtime.evaluate` of a promise.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// From `Page.navigate` until the new document has parsed.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `Drop` waits for the killed browser before removing its profile.
const EXIT_TIMEOUT: Duration = Duration::from_secs(3);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const LOG_TAIL_LINES: usize = 30;

/// Installed in every document a [`Page`] navigates to, before the page's own scripts: it counts
/// the frames each `<video>` presents (`requestVideoFrameCallback`) and notes when the first one
/// was presented, in ms since the navigation started (`performance.now()`'s origin).
const HARNESS_JS: &str = r#"(() => {
  if (window.__rtcastE2E) return;
  const watch = (video) => {
    if (video.__rtcastWatched || typeof video.requestVideoFrameCallback !== 'function') return;
    video.__rtcastWatched = true;
    video.__rtcastFrameCallbacks = 0;
    const onFrame = (now, metadata) => {
      video.__rtcastFrameCallbacks += 1;
      if (video.__rtcastFirstFrameMs === undefined || video.__rtcastFirstFrameGuessed) {
        const at = metadata && typeof metadata.presentationTime === 'number' ? metadata.presentationTime : now;
        video.__rtcastFirstFrameMs = Math.min(at, video.__rtcastFirstFrameMs ?? at);
        video.__rtcastFirstFrameGuessed = false;
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  const scan = () => document.querySelectorAll('video').forEach(watch);
  window.__rtcastE2E = { watch, scan };
  // Every peer connection the page makes, for getStats() from the test.
  window.__rtcastPeers = [];
  const Native = window.RTCPeerConnection;
  if (Native) {
    window.RTCPeerConnection = function (...args) {
      const pc = new Native(...args);
      window.__rtcastPeers.push(pc);
      return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
    Object.setPrototypeOf(window.RTCPeerConnection, Native);
  }
  new MutationObserver(scan).observe(document, { childList: true, subtree: true });
})();"#;

/// See [`Page::selected_candidate_pair`].
const SELECTED_PAIR_JS: &str = r#"(async () => {
  const peers = window.__rtcastPeers || [];
  const pc = peers[peers.length - 1];
  if (!pc) return null;
  const stats = await pc.getStats();
  let pairId = null;
  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  let pair = pairId ? stats.get(pairId) : null;
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (!pair) return null;
  const pick = (c) => c && { candidateType: c.candidateType, protocol: c.protocol, address: c.address, port: c.port, relayProtocol: c.relayProtocol ?? null };
  return { local: pick(stats.get(pair.localCandidateId)), remote: pick(stats.get(pair.remoteCandidateId)) };
})()"#;

/// Evaluates to `null` (no `<video>` yet) or the raw state of the first `<video>`.
const VIDEO_STATE_JS: &str = r#"(() => {
  const video = document.querySelector('video');
  if (!video) return null;
  if (window.__rtcastE2E) window.__rtcastE2E.watch(video);
  const quality = typeof video.getVideoPlaybackQuality === 'function' ? video.getVideoPlaybackQuality() : null;
  const decoded = quality ? quality.totalVideoFrames : 0;
  const dropped = quality ? quality.droppedVideoFrames : 0;
  const callbacks = video.__rtcastFrameCallbacks || 0;
  if ((decoded > 0 || callbacks > 0) && video.__rtcastFirstFrameMs === undefined) {
    // requestVideoFrameCallback has not reported yet: the poll time is an upper bound.
    video.__rtcastFirstFrameMs = performance.now();
    video.__rtcastFirstFrameGuessed = true;
  }
  return {
    decoded, dropped, callbacks,
    firstFrameMs: video.__rtcastFirstFrameMs ?? null,
    width: video.videoWidth, height: video.videoHeight,
    readyState: video.readyState, paused: video.paused, currentTime: video.currentTime,
    error: video.error ? (video.error.message || ('MediaError code ' + video.error.code)) : null,
  };
})()"#;

/// What went wrong in the harness or in the page, in words meant for a test failure message.
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// The whole message (it may span several lines: console output, Chromium's log).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// Debug prints the message as is, so `.unwrap()` / `.expect()` failures stay readable.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The state of a page's first `<video>`, as seen by [`Page::wait_for_video`].
#[derive(Debug, Clone, PartialEq)]
pub struct VideoReport {
    /// Frames the element has presented: the larger of the frames the harness saw through
    /// `requestVideoFrameCallback` and `getVideoPlaybackQuality()`'s total minus dropped frames.
    pub frames_presented: u64,
    /// `videoWidth` of the element (the decoded frame size), 0 before the first frame.
    pub width: u32,
    /// `videoHeight` of the element, 0 before the first frame.
    pub height: u32,
    /// Milliseconds from the start of the page's navigation to the presentation of its first
    /// frame. Always a number in a report returned by `wait_for_video`; NaN in a partial report
    /// (inside an error) when no frame has been presented yet.
    pub first_frame_ms: f64,
    /// `getVideoPlaybackQuality().totalVideoFrames`.
    pub decoded_frames: u64,
    /// `getVideoPlaybackQuality().droppedVideoFrames`.
    pub dropped_frames: u64,
    /// `requestVideoFrameCallback` callbacks counted by the harness.
    pub frame_callbacks: u64,
    /// `readyState` (0 = HAVE_NOTHING … 4 = HAVE_ENOUGH_DATA).
    pub ready_state: u8,
    /// `paused`.
    pub paused: bool,
    /// `currentTime`, in seconds.
    pub current_time: f64,
    /// `error.message` of the element, if it has a `MediaError`.
    pub error: Option<String>,
}

impl VideoReport {
    fn from_state(state: &Value) -> VideoReport {
        let int = |key: &str| state.get(key).and_then(Value::as_f64).unwrap_or(0.0) as u64;
        let decoded = int("decoded");
        let dropped = int("dropped");
        let callbacks = int("callbacks");
        VideoReport {
            frames_presented: callbacks.max(decoded.saturating_sub(dropped)),
            width: int("width") as u32,
            height: int("height") as u32,
            first_frame_ms: state
                .get("firstFrameMs")
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN),
            decoded_frames: decoded,
            dropped_frames: dropped,
            frame_callbacks: callbacks,
            ready_state: int("readyState") as u8,
            paused: state.get("paused").and_then(Value::as_bool).unwrap_or(true),
            current_time: state
                .get("currentTime")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            error: state.get("error").and_then(Value::as_str).map(String::from),
        }
    }
}

impl fmt::Display for VideoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames presented ({} decoded, {} dropped, {} frame callbacks), {}x{}, ",
            self.frames_presented,
            self.decoded_frames,
            self.dropped_frames,
            self.frame_callbacks,
            self.width,
            self.height
        )?;
        if self.first_frame_ms.is_nan() {
            f.write_str("no frame yet")?;
        } else {
            write!(f, "first frame at {:.0} ms", self.first_frame_ms)?;
        }
        write!(
            f,
            ", readyState {}, {}, currentTime {:.2} s",
            self.ready_state,
            if self.paused { "paused" } else { "playing" },
            self.current_time
        )?;
        if let Some(error) = &self.error {
            write!(f, ", error: {error}")?;
        }
        Ok(())
    }
}

/// A running headless Chromium with a fresh profile. Dropping it kills the browser (its whole
/// process group) and removes the profile.
pub struct Chromium {
    cdp: Arc<Cdp>,
    // Declared last: dropped after the DevTools connection.
    process: Process,
}

impl Chromium {
    /// Launches headless Chromium (`$CHROMIUM`, else `/usr/bin/chromium`) with a fresh profile
    /// in a temporary directory, and connects to it over the DevTools protocol.
    ///
    /// The browser resolves no host name but localhost, autoplays without a gesture, and offers
    /// its loopback addresses as plain ICE host candidates. Its stdout and stderr go to a log
    /// file whose tail is quoted in errors.
    pub async fn launch() -> Result<Chromium, Error> {
        Self::launch_reaching(&[]).await
    }

    /// As [`Chromium::launch`], also reaching the IP addresses `also` (addresses of a network
    /// namespace the test made, where nothing but the test listens).
    pub async fn launch_reaching(also: &[&str]) -> Result<Chromium, Error> {
        let mut rules = RESOLVER_RULES.to_owned();
        for addr in also {
            rules.push_str(&format!(", EXCLUDE {addr}"));
        }
        let executable = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM));
        if !executable.is_file() {
            return Err(Error::new(format!(
                "Chromium not found at {} (set $CHROMIUM to use another binary); \
                 install it with scripts/ensure-chromium.sh",
                executable.display()
            )));
        }

        let dir = ProfileDir::create()?;
        let log = std::fs::File::create(dir.log())
            .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.log().display())))?;
        let log_for_stdout = log
            .try_clone()
            .map_err(|e| Error::new(format!("cannot duplicate the log file handle: {e}")))?;
        let mut command = std::process::Command::new(&executable);
        command
            .args(FLAGS)
            .arg(rules)
            .arg(format!("--user-data-dir={}", dir.profile().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            // Its own process group, so that Drop can kill the renderers and helpers too.
            .process_group(0);
        let child = Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::new(format!("cannot start {}: {e}", executable.display())))?;
        let mut process = Process {
            pid: child.id(),
            child,
            dir,
        };

        let url = process.wait_for_devtools().await?;
        let cdp = Cdp::connect(&url, process.dir.log())
            .await
            .map_err(|e| process.error(e))?;
        Ok(Chromium {
            cdp: Arc::new(cdp),
            process,
        })
    }

    /// The browser's product and version, e.g. `HeadlessChrome/156.0.8078.79`.
    pub async fn version(&self) -> Result<String, Error> {
        let version = self.cdp.call(None, "Browser.getVersion", json!({})).await?;
        Ok(str_field(&version, "product")?.to_string())
    }

    /// Chromium's log file (its stdout and stderr); it is removed with the profile on drop.
    pub fn log_path(&self) -> PathBuf {
        self.process.dir.log()
    }

    /// Opens `url` in a new tab and returns once its document has been parsed
    /// (`readyState` is no longer `loading`).
    ///
    /// The tab starts blank; the harness enables console collection and installs its frame
    /// counter before navigating, so no console message and no frame of the page is missed.
    pub async fn open(&self, url: &str) -> Result<Page, Error> {
        let target = self
            .cdp
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = str_field(&target, "targetId")?.to_string();
        let attached = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session_id = str_field(&attached, "sessionId")?.to_string();
        let page = Page {
            console: self.cdp.console_of(&session_id),
            cdp: Arc::clone(&self.cdp),
            session_id,
            target_id,
            closed: false,
        };
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            page.call(domain, json!({})).await?;
        }
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": HARNESS_JS }),
        )
        .await?;
        let navigation = page.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigation.get("errorText").and_then(Value::as_str) {
            return Err(Error::new(format!("cannot open {url}: {error}")));
        }
        page.wait_until_parsed(url).await?;
        Ok(page)
    }
}

/// A tab of a [`Chromium`]. Dropping it closes the tab (in the background); [`Page::close`]
/// closes it and waits.
pub struct Page {
    cdp: Arc<Cdp>,
    session_id: String,
    target_id: String,
    console: ConsoleLines,
    closed: bool,
}

impl Page {
    /// Evaluates `js` in the page (`Runtime.evaluate` with `awaitPromise` and `returnByValue`)
    /// and returns its value as JSON; `undefined` becomes `null`. A thrown exception or a
    /// rejected promise is an error carrying its text.
    pub async fn eval(&self, js: &str) -> Result<Value, Error> {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": js,
                    "awaitPromise": true,
                    "returnByValue": true,
                    "userGesture": true,
                }),
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(Error::new(format!(
                "JavaScript error: {}",
                exception_text(details)
            )));
        }
        Ok(reply
            .get("result")
            .and_then(|result| result.get("value"))
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Waits until the page's first `<video>` has presented at least `min_frames` frames (and
    /// at least one, whatever `min_frames`) and returns what it saw. Fails after `timeout` with the last report, the page's console and
    /// the tail of Chromium's log.
    /// Time from the page's signalling start (`window.rtcastSignalStart`, set by `embed.html`
    /// when it opens its WebSocket or POSTs its WHEP offer) to the first presented frame, ms;
    /// printed so test runs show it. `None` for pages that do not set it.
    pub async fn time_to_first_frame(&self, report: &VideoReport) -> Option<f64> {
        let start = self
            .eval("window.rtcastSignalStart ?? null")
            .await
            .ok()?
            .as_f64()?;
        let ms = report.first_frame_ms - start;
        let marks = self
            .eval("JSON.stringify(window.rtcastMarks ?? {})")
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "time to first frame: {ms:.0} ms (signalling start to first presented frame; \
             phases in ms: {marks})"
        );
        Some(ms)
    }

    /// The kinds of the live tracks the page's first `<video>` plays (`srcObject`), sorted:
    /// `["audio", "video"]` for a stream with both.
    pub async fn played_track_kinds(&self) -> Result<Vec<String>, Error> {
        let kinds = self
            .eval(
                "(() => { const v = document.querySelector('video'); \
                 return v && v.srcObject ? v.srcObject.getTracks()\
                 .filter((t) => t.readyState === 'live').map((t) => t.kind).sort() : []; })()",
            )
            .await?;
        Ok(kinds
            .as_array()
            .map(|kinds| {
                kinds
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The candidate pair the page's last peer connection sends media on (`getStats()`:
    /// the transport's selected pair, or the nominated succeeded one), as
    /// `{"local": {candidateType, protocol, address, port, relayProtocol}, "remote": {...}}`;
    /// `null` when there is none yet.
    pub async fn selected_candidate_pair(&self) -> Result<Value, Error> {
        self.eval(SELECTED_PAIR_JS).await
    }

    pub async fn wait_for_video(
        &self,
        min_frames: u64,
        timeout: Duration,
    ) -> Result<VideoReport, Error> {
        let deadline = Instant::now() + timeout;
        let mut last_report: Option<VideoReport> = None;
        let mut last_error: Option<Error> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match tokio::time::timeout(remaining, self.eval(VIDEO_STATE_JS)).await {
                Err(_) => break,
                Ok(Err(error)) => last_error = Some(error),
                Ok(Ok(Value::Null)) => last_error = None,
                Ok(Ok(state)) => {
                    let report = VideoReport::from_state(&state);
                    if report.frames_presented >= min_frames && !report.first_frame_ms.is_nan() {
                        return Ok(report);
                    }
                    last_error = None;
                    last_report = Some(report);
                }
            }
            tokio::time::sleep(
                POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        let mut message = format!(
            "the page's video did not present {min_frames} frames within {timeout:?}\nlast report: "
        );
        match &last_report {
            Some(report) => message.push_str(&report.to_string()),
            None => message.push_str("no <video> element in the page"),
        }
        if let Some(error) = last_error {
            message.push_str(&format!("\nlast poll failed: {error}"));
        }
        message.push_str(&self.console_section());
        Err(self.cdp.error(message))
    }

    /// The colours of the page's first `<video>`'s current picture at `points`, each given as
    /// fractions of its width and height (`(0.5, 0.25)`: centre of the top half).
    pub async fn video_pixels(&self, points: &[(f64, f64)]) -> Result<Vec<[u8; 3]>, Error> {
        let points = serde_json::to_string(points).expect("numbers serialize");
        let js = format!(
            r#"(() => {{
                const v = document.querySelector('video');
                const c = document.createElement('canvas');
                c.width = v.videoWidth; c.height = v.videoHeight;
                const g = c.getContext('2d');
                g.drawImage(v, 0, 0);
                return {points}.map(([x, y]) => {{
                    const d = g.getImageData(Math.floor(x * c.width), Math.floor(y * c.height), 1, 1).data;
                    return [d[0], d[1], d[2]];
                }});
            }})()"#
        );
        let value = self.eval(&js).await?;
        serde_json::from_value(value.clone())
            .map_err(|e| self.cdp.error(format!("unexpected pixels {value}: {e}")))
    }

    /// Lays the page out as on a `width`x`height` CSS-pixel screen at 1 device pixel per CSS
    /// pixel (`Emulation.setDeviceMetricsOverride`), e.g. before a [`Page::screenshot`].
    pub async fn set_viewport(&self, width: u32, height: u32) -> Result<(), Error> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        Ok(())
    }

    /// Writes what the page's viewport shows now to `path` as a PNG (`Page.captureScreenshot`).
    pub async fn screenshot(&self, path: &Path) -> Result<(), Error> {
        use base64::Engine as _;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(str_field(&shot, "data")?)
            .map_err(|e| Error::new(format!("Page.captureScreenshot: bad base64: {e}")))?;
        std::fs::write(path, png)
            .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
    }

    /// The console messages, uncaught exceptions and browser log entries of this page so far,
    /// one line each (`console.log: …`, `uncaught exception: …`, `log.error [network]: …`).
    pub fn console(&self) -> Vec<String> {
        lock(&self.console).clone()
    }

    /// Closes the tab and waits until Chromium has done so.
    pub async fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        self.cdp
            .call(
                None,
                "Target.closeTarget",
                json!({ "targetId": self.target_id }),
            )
            .await?;
        Ok(())
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        self.cdp.call(Some(&self.session_id), method, params).await
    }

    /// Waits until the navigated document (the one with the harness script) has parsed.
    async fn wait_until_parsed(&self, url: &str) -> Result<(), Error> {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        let mut last_error = None;
        while Instant::now() < deadline {
            // Errors are expected while the old document is being replaced.
            match self
                .eval("!!window.__rtcastE2E && document.readyState !== 'loading'")
                .await
            {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(_) => last_error = None,
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let mut message = format!("{url} did not finish parsing within {LOAD_TIMEOUT:?}");
        if let Some(error) = last_error {
            message.push_str(&format!(" (last check: {error})"));
        }
        message.push_str(&self.console_section());
        Err(self.cdp.error(message))
    }

    fn console_section(&self) -> String {
        let console = self.console();
        if console.is_empty() {
            "\npage console: (empty)".to_string()
        } else {
            format!("\npage console:\n  {}", console.join("\n  "))
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Best effort: a tab left open would keep its peer connection (a viewer) alive.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let cdp = Arc::clone(&self.cdp);
            let target_id = self.target_id.clone();
            runtime.spawn(async move {
                let _ = cdp
                    .call(None, "Target.closeTarget", json!({ "targetId": target_id }))
                    .await;
            });
        }
    }
}

/// The browser process and its temporary directory.
struct Process {
    child: Child,
    pid: Option<u32>,
    dir: ProfileDir,
}

impl Process {
    /// Waits for Chromium to write `DevToolsActivePort` and returns the browser's WebSocket URL.
    async fn wait_for_devtools(&mut self) -> Result<String, Error> {
        let port_file = self.dir.profile().join("DevToolsActivePort");
        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        loop {
            // "PORT\n/devtools/browser/ID\n"; it may be read half-written.
            if let Ok(text) = tokio::fs::read_to_string(&port_file).await {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    if let Ok(port) = port.trim().parse::<u16>() {
                        return Ok(format!("ws://127.0.0.1:{port}{}", path.trim()));
                    }
                }
            }
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Err(self.error(format!(
                        "Chromium exited ({status}) before opening its DevTools port"
                    )))
                }
                Ok(None) => {}
                Err(e) => return Err(self.error(format!("cannot watch Chromium: {e}"))),
            }
            if Instant::now() >= deadline {
                return Err(self.error(format!(
                    "Chromium did not write {} within {LAUNCH_TIMEOUT:?}",
                    port_file.display()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn error(&self, message: impl fmt::Display) -> Error {
        Error::new(format!("{message}{}", log_tail(&self.dir.log())))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; the group was
            // created for this browser at spawn (process_group(0) makes its id the pid).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
        // Reap it before ProfileDir removes the files it was writing.
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                _ => break,
            }
        }
    }
}

/// A fresh temporary directory: `profile/` is Chromium's user data dir, `chromium.log` its output.
struct ProfileDir {
    root: PathBuf,
}

impl ProfileDir {
    fn create() -> Result<ProfileDir, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = std::env::temp_dir().join(format!(
            "rtcast-e2e-chromium-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(root.join("profile"))
            .map_err(|e| Error::new(format!("cannot create {}: {e}", root.display())))?;
        Ok(ProfileDir { root })
    }

    fn profile(&self) -> PathBuf {
        self.root.join("profile")
    }

    fn log(&self) -> PathBuf {
        self.root.join("chromium.log")
    }
}

impl Drop for ProfileDir {
    fn drop(&mut self) {
        // A dying browser may still add a file or two: retry briefly.
        for _ in 0..5 {
            match std::fs::remove_dir_all(&self.root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return,
            }
        }
    }
}

type WsSink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type Reply = Result<Value, String>;
/// Console lines of one page, shared between the reader task and the [`Page`].
type ConsoleLines = Arc<Mutex<Vec<String>>>;
/// Replies awaited, by command id.
type PendingReplies = Mutex<HashMap<u64, oneshot::Sender<Reply>>>;
/// Console lines by DevTools session id.
type Consoles = Mutex<HashMap<String, ConsoleLines>>;

/// The DevTools connection: sends commands, matches replies by id, files events by session.
struct Cdp {
    sink: tokio::sync::Mutex<WsSink>,
    next_id: AtomicU64,
    pending: Arc<PendingReplies>,
    consoles: Arc<Consoles>,
    closed: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    log: PathBuf,
}

impl Cdp {
    async fn connect(url: &str, log: PathBuf) -> Result<Cdp, Error> {
        let (socket, _) = tokio::time::timeout(CALL_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| {
                Error::new(format!(
                    "no DevTools handshake at {url} within {CALL_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| Error::new(format!("cannot connect to DevTools at {url}: {e}")))?;
        let (sink, mut stream) = socket.split();
        let pending: Arc<PendingReplies> = Arc::default();
        let consoles: Arc<Consoles> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let (pending, consoles, closed) = (pending.clone(), consoles.clone(), closed.clone());
            async move {
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(Message::Text(text)) => dispatch(&text, &pending, &consoles),
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                closed.store(true, Ordering::SeqCst);
                // Dropping the senders wakes every waiting call with "connection closed".
                lock(&pending).clear();
            }
        });
        Ok(Cdp {
            sink: tokio::sync::Mutex::new(sink),
            next_id: AtomicU64::new(1),
            pending,
            consoles,
            closed,
            reader,
            log,
        })
    }

    /// Sends one command (to the browser, or to a page's session) and waits for its reply.
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.pending).insert(id, reply_tx);
        if self.closed.load(Ordering::SeqCst) {
            lock(&self.pending).remove(&id);
            return Err(self.error(format!(
                "{method}: the DevTools connection to Chromium is closed"
            )));
        }
        let exchange = async {
            self.sink
                .lock()
                .await
                .send(Message::text(command.to_string()))
                .await
                .map_err(|e| format!("cannot send to DevTools: {e}"))?;
            match reply_rx.await {
                Ok(reply) => reply,
                Err(_) => Err("the DevTools connection to Chromium closed".to_string()),
            }
        };
        let outcome = tokio::time::timeout(CALL_TIMEOUT, exchange).await;
        lock(&self.pending).remove(&id);
        match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(self.error(format!("{method} failed: {error}"))),
            Err(_) => Err(self.error(format!("{method} got no reply within {CALL_TIMEOUT:?}"))),
        }
    }

    /// The console buffer of a session; created on first use by either side, so events that
    /// arrive before the page registers are kept.
    fn console_of(&self, session: &str) -> ConsoleLines {
        Arc::clone(lock(&self.consoles).entry(session.to_string()).or_default())
    }

    fn error(&self, message: impl fmt::Display) -> Error {
        Error::new(format!("{message}{}", log_tail(&self.log)))
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn dispatch(text: &str, pending: &PendingReplies, consoles: &Consoles) {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        if let Some(reply_tx) = lock(pending).remove(&id) {
            let reply = match message.get("error") {
                Some(error) => Err(error
                    .get("message")
                    .and_then(Value::as_str)
                    .map(|m| match error.get("data").and_then(Value::as_str) {
                        Some(data) => format!("{m} ({data})"),
                        None => m.to_string(),
                    })
                    .unwrap_or_else(|| error.to_string())),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = reply_tx.send(reply);
        }
        return;
    }
    let (Some(method), Some(session)) = (
        message.get("method").and_then(Value::as_str),
        message.get("sessionId").and_then(Value::as_str),
    ) else {
        return;
    };
    let params = message.get("params").unwrap_or(&Value::Null);
    if let Some(line) = describe_event(method, params) {
        let console = Arc::clone(lock(consoles).entry(session.to_string()).or_default());
        lock(&console).push(line);
    }
}

/// One line for the page events worth quoting in a failure; `None` for the others.
fn describe_event(method: &str, params: &Value) -> Option<String> {
    match method {
        "Runtime.consoleAPICalled" => {
            let kind = params.get("type").and_then(Value::as_str).unwrap_or("log");
            let args: Vec<String> = params
                .get("args")
                .and_then(Value::as_array)
                .map(|args| args.iter().map(remote_object_text).collect())
                .unwrap_or_default();
            Some(format!("console.{kind}: {}", args.join(" ")))
        }
        "Runtime.exceptionThrown" => Some(format!(
            "uncaught exception: {}",
            exception_text(params.get("exceptionDetails").unwrap_or(&Value::Null))
        )),
        "Log.entryAdded" => {
            let entry = params.get("entry").unwrap_or(&Value::Null);
            let field = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("");
            let mut line = format!(
                "log.{} [{}]: {}",
                field("level"),
                field("source"),
                field("text")
            );
            if !field("url").is_empty() {
                line.push_str(&format!(" ({})", field("url")));
            }
            Some(line)
        }
        "Inspector.targetCrashed" => Some("the page crashed (Inspector.targetCrashed)".to_string()),
        _ => None,
    }
}

/// A `Runtime.RemoteObject` as console.log would print it, roughly.
fn remote_object_text(object: &Value) -> String {
    match object.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(value) => value.to_string(),
        None => object
            .get("description")
            .or_else(|| object.get("unserializableValue"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| object.get("type").and_then(Value::as_str).unwrap_or("?"))
            .to_string(),
    }
}

/// The text of `Runtime.ExceptionDetails`: the exception's description (with its stack) when
/// there is one, and where it was thrown.
fn exception_text(details: &Value) -> String {
    let exception = details.get("exception");
    let mut text = exception
        .and_then(|e| {
            e.get("description")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .or_else(|| {
            exception.and_then(|e| e.get("value")).map(|v| match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            })
        })
        .or_else(|| {
            details
                .get("text")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| details.to_string());
    if let Some(url) = details
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        let line = details
            .get("lineNumber")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        text.push_str(&format!(" (at {url}:{line})"));
    }
    text
}

fn str_field<'a>(value: &'a Value, key: &str) -> Result<&'a str, Error> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::new(format!("DevTools reply without \"{key}\": {value}")))
}

/// The last lines of Chromium's log, as a section to append to an error message.
fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            // Headless Chromium in a container complains about D-Bus on every start: noise.
            let lines: Vec<&str> = text
                .lines()
                .filter(|line| !line.contains(":ERROR:dbus/") && !line.trim().is_empty())
                .collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            if tail.is_empty() {
                format!("\nChromium log ({}): (empty)", path.display())
            } else {
                format!(
                    "\nChromium log ({}), last {} lines:\n  {}",
                    path.display(),
                    tail.len(),
                    tail.join("\n  ")
                )
            }
        }
        Err(e) => format!("\nChromium log {}: unreadable ({e})", path.display()),
    }
}

/// Locks a mutex, ignoring poisoning: the data here (buffers, maps) stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
