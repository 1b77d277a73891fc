//! `rtcast-bench`: how much CPU and memory the rtcast server spends per viewer.
//!
//! ```text
//! cargo build --release -p rtcast -p rtcast-e2e
//! cargo run --release -p rtcast-e2e --bin rtcast-bench -- --viewers 1,50,200 --seconds 15
//! ```
//!
//! For each N it starts `rtcast demo` (or, with `--h264 FILE`, `rtcast relay` of a pre-encoded
//! file: no encoder in the server process) as a separate process, measures it idle, connects N
//! native viewers ([`rtcast_e2e::viewer`]) in batches, measures the server over a fixed window
//! once all are connected, then stops everything and prints one row. With `--whep URL` it starts
//! no server: the viewers play any WHEP endpoint (another server), whose CPU and memory are read
//! from `--server-pid`. The viewers run in this process, on the same cores: the server's CPU is
//! read from `/proc/<server pid>` only, and this process's own CPU is printed too so a reader
//! knows how loaded the machine was.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rtcast_e2e::serverproc::{
    clock_ticks, fetch_metrics, machine_ticks, metric, proc_sample, ProcSample, ServerProc,
};
use rtcast_e2e::viewer::{run_viewer, ViewerOptions, ViewerReport};
use tokio::task::JoinHandle;

const USAGE: &str = "usage: rtcast-bench [--viewers 1,50,200] [--seconds 15] [--batch 25] \
[--connect-timeout SECS] [--settle SECS] [--warmup SECS] [--server-args \"--media-loops 2 ...\"] \
[--h264 FILE [--h264-bitrate KBPS]] [--protocol ws|whep] [--transport udp|tcp] \
[--whep URL [--server-pid PID]] [--deaf]

  --viewers LIST        viewer counts to measure, one server run each (default 1,50,200)
  --seconds S           measurement window once all viewers are connected (default 15)
  --batch B             viewers started at once; the next batch waits for this one (default 25).
                        All viewers come from 127.0.0.1, and rtcast lets one address have at most
                        64 connections not yet past their request head and 64 viewers still
                        connecting (anti-abuse limits): above 64, viewers are refused
  --connect-timeout S   most seconds to wait for all viewers to connect (default 5 + N/20)
  --settle S            seconds between the last connection and the window (default 2)
  --warmup S            seconds after the server starts before the idle baseline (default 2)
  --server-args \"...\"   more arguments for `rtcast demo` or `rtcast relay` (--media-loops N;
                        the demo's --size, --fps, --bitrate, --noise); also --demo-args
  --h264 FILE           serve FILE (H.264 Annex B) with `rtcast relay` instead of the demo: the
                        server process encodes nothing. A missing FILE is made first: 10 s of the
                        demo pattern with noise, 1280x720, 30 fps, an IDR every 2 s
  --h264-bitrate KBPS   bitrate of a FILE made by --h264 (default 2000)
  --protocol ws|whep    how the viewers reach rtcast (default ws: Flussonic's WebSocket)
  --transport udp|tcp   what the media travels on (default udp; tcp: ICE-TCP, RFC 6544, to the
                        server's passive TCP candidate)
  --whep URL            start no server: the viewers play this WHEP endpoint of any server
                        (http://IP:PORT/PATH); its CPU and memory are read from --server-pid
  --server-pid PID      the process serving --whep URL
  --deaf                each viewer stops reading its socket after its first frame (its consent
                        checks go on for ~30 s): what the server sends costs this machine next to
                        nothing, so the server alone can be loaded to its limit. Received-packet
                        figures and loss mean nothing then; use packets sent per second. The
                        receivers' kernel drops what overflows their buffers, so no copy to them
                        is charged to the server either: a ceiling of the send path, not a real
                        network. The window must end within 25 s of the first viewer (connection
                        time + settle + seconds).";

#[derive(Debug, Clone)]
struct Options {
    viewers: Vec<usize>,
    seconds: f64,
    batch: usize,
    connect_timeout: Option<f64>,
    settle: f64,
    warmup: f64,
    demo_args: Vec<String>,
    h264: Option<PathBuf>,
    h264_bitrate: u32,
    whep_protocol: bool,
    ice_tcp: bool,
    whep: Option<String>,
    server_pid: Option<u32>,
    deaf: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        viewers: vec![1, 50, 200],
        seconds: 15.0,
        batch: 25,
        connect_timeout: None,
        settle: 2.0,
        warmup: 2.0,
        demo_args: Vec::new(),
        h264: None,
        h264_bitrate: 2000,
        whep_protocol: false,
        ice_tcp: false,
        whep: None,
        server_pid: None,
        deaf: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{name}: '{v}' is not a number of seconds"))
        };
        match a.as_str() {
            "--viewers" => {
                o.viewers = value("--viewers")?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| format!("--viewers: bad count '{s}'"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => o.seconds = num("--seconds", value("--seconds")?)?.max(1.0),
            "--batch" => {
                o.batch = value("--batch")?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--batch: needs a positive count")?;
            }
            "--connect-timeout" => {
                o.connect_timeout = Some(num("--connect-timeout", value("--connect-timeout")?)?)
            }
            "--settle" => o.settle = num("--settle", value("--settle")?)?,
            "--warmup" => o.warmup = num("--warmup", value("--warmup")?)?,
            "--demo-args" | "--server-args" => {
                o.demo_args = value("--server-args")?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
            }
            "--h264" => o.h264 = Some(PathBuf::from(value("--h264")?)),
            "--h264-bitrate" => {
                o.h264_bitrate = value("--h264-bitrate")?
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 100)
                    .ok_or("--h264-bitrate: kbit/s, at least 100")?;
            }
            "--protocol" => {
                o.whep_protocol = match value("--protocol")?.as_str() {
                    "ws" => false,
                    "whep" => true,
                    other => return Err(format!("--protocol: '{other}' is not ws or whep")),
                }
            }
            "--transport" => {
                o.ice_tcp = match value("--transport")?.as_str() {
                    "udp" => false,
                    "tcp" => true,
                    other => return Err(format!("--transport: '{other}' is not udp or tcp")),
                }
            }
            "--whep" => o.whep = Some(value("--whep")?),
            "--deaf" => o.deaf = true,
            "--server-pid" => {
                o.server_pid = Some(
                    value("--server-pid")?
                        .parse::<u32>()
                        .map_err(|_| "--server-pid: needs a process id")?,
                )
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    let per_address = rtcast::Limits::default().max_connecting_per_address;
    if o.batch > per_address {
        eprintln!(
            "rtcast-bench: --batch {} is over rtcast's default limit of {per_address} viewers \
             connecting from one address (every viewer comes from 127.0.0.1; half-open HTTP \
             connections per address are capped alike): expect refused viewers",
            o.batch
        );
    }
    if o.deaf && o.settle + o.seconds >= DEAF_BUDGET_SECS {
        return Err(format!(
            "--deaf: the window must end within {DEAF_BUDGET_SECS} s of the first viewer (its \
             ICE agent gives up after ~30 s without answers): --settle + --seconds must leave \
             time to connect"
        ));
    }
    Ok(o)
}

/// How long after its first frame a `--deaf` viewer still counts as connected, with margin.
const DEAF_BUDGET_SECS: f64 = 25.0;

// ---------------------------------------------------------------------------------------------
// One run

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct Row {
    n: usize,
    connected: usize,
    connect_secs: f64,
    window: f64,
    /// Server CPU over the window, cores (CPU seconds per second).
    server_cores: f64,
    /// Of which the demo thread (test pattern + H.264 encoding, independent of N).
    encoder_cores: f64,
    /// Server CPU at idle (no viewers), cores.
    idle_cores: f64,
    packets_per_sec: f64,
    us_per_packet: f64,
    /// Same, without the demo thread: the serving path (event loop, signalling, sending).
    us_per_packet_serving: f64,
    egress_mbps: f64,
    per_viewer_kbps: f64,
    rss_base_kb: u64,
    rss_kb: u64,
    rss_per_viewer_kb: f64,
    /// RSS with one viewer (the encoder running).
    rss_one_kb: u64,
    /// (RSS with N - RSS with one) / (N - 1).
    rss_marginal_kb: Option<f64>,
    bytes_per_packet: f64,
    ttff_p50_ms: Option<f64>,
    ttff_p99_ms: Option<f64>,
    loss_pct: f64,
    send_drops: f64,
    nacks: f64,
    client_cores: f64,
    machine_busy_pct: f64,
    viewer_failures: usize,
    with_first_frame: usize,
    /// RTP packets received by the viewers per second.
    delivered_per_sec: f64,
    /// Server CPU (without the source threads) per RTP packet a viewer received.
    us_per_delivered: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// Waits until `want` viewers received a first frame (or `until`); returns how many did.
async fn wait_playing(progress: &[Arc<AtomicU64>], want: usize, until: Instant) -> usize {
    loop {
        let playing = progress
            .iter()
            .filter(|p| p.load(Ordering::Relaxed) > 0)
            .count();
        if playing >= want || Instant::now() >= until {
            return playing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the viewers of one run play: a server of ours, or any WHEP endpoint.
struct Target {
    server: Option<ServerProc>,
    url: String,
    pid: Option<u32>,
    /// rtcast's `/metrics` (host:port), when the server is ours.
    http: Option<String>,
}

async fn run_one(binary: &PathBuf, o: &Options, n: usize, ticks: f64) -> Result<Row, String> {
    let target = match &o.whep {
        Some(url) => Target {
            server: None,
            url: url.clone(),
            pid: o.server_pid,
            http: None,
        },
        None => {
            let server = ServerProc::start(binary, &o.demo_args, o.h264.as_ref())?;
            Target {
                url: if o.whep_protocol {
                    server.whep_url.clone()
                } else {
                    server.ws_url.clone()
                },
                pid: Some(server.pid()),
                http: Some(server.http.clone()),
                server: Some(server),
            }
        }
    };
    let sample = |pid: Option<u32>| pid.map(|p| proc_sample(p, ticks)).unwrap_or_default();
    let mut row = Row {
        n,
        ..Default::default()
    };

    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    let idle_secs = o.seconds.min(3.0);
    let b0 = sample(target.pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let b1 = sample(target.pid);
    row.idle_cores = (b1.cpu - b0.cpu) / t0.elapsed().as_secs_f64();
    row.rss_base_kb = b1.rss_kb;

    let connect_timeout = o.connect_timeout.unwrap_or(5.0 + n as f64 / 20.0);
    let started = Instant::now();
    let connect_until = started + Duration::from_secs_f64(connect_timeout);
    // The viewers play until told to stop at the end of the window, which starts once they all
    // play (or at the connect timeout); this is their deadline if that stop never comes.
    let viewers_end = connect_until + Duration::from_secs_f64(o.settle + o.seconds + 1.0);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // RTP packets received by all viewers, and per viewer its complete frames.
    let delivered = Arc::new(AtomicU64::new(0));
    let mut progress: Vec<Arc<AtomicU64>> = Vec::with_capacity(n);
    let spawn = |viewers: &mut Vec<JoinHandle<Result<ViewerReport, String>>>,
                 progress: &mut Vec<Arc<AtomicU64>>| {
        let left = viewers_end.saturating_duration_since(Instant::now());
        let mut opts = ViewerOptions::new(target.url.clone(), left);
        opts.ice_tcp = o.ice_tcp;
        opts.deaf_after_first_frame = o.deaf;
        opts.stop = Some(stop_rx.clone());
        let frames = Arc::new(AtomicU64::new(0));
        opts.progress = Some(frames.clone());
        opts.packets = Some(delivered.clone());
        progress.push(frames);
        viewers.push(tokio::spawn(run_viewer(opts)));
    };
    let mut viewers: Vec<JoinHandle<Result<ViewerReport, String>>> = Vec::with_capacity(n);

    spawn(&mut viewers, &mut progress);
    if wait_playing(&progress, 1, connect_until).await == 0 {
        return Err(format!(
            "the first viewer got no frame within {connect_timeout} s"
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    row.rss_one_kb = sample(target.pid).rss_kb;

    while viewers.len() < n && Instant::now() < connect_until {
        let batch = o.batch.min(n - viewers.len());
        for _ in 0..batch {
            spawn(&mut viewers, &mut progress);
        }
        let batch_until = (Instant::now() + Duration::from_secs(10)).min(connect_until);
        wait_playing(&progress, viewers.len(), batch_until).await;
    }
    let spawned = viewers.len();
    row.connected = wait_playing(&progress, n, connect_until).await;
    row.connect_secs = started.elapsed().as_secs_f64();
    if spawned < n || row.connected < n {
        eprintln!(
            "    only {} of {n} viewers played within {connect_timeout:.0} s ({spawned} started); measuring those",
            row.connected
        );
    }
    let window_start = Instant::now() + Duration::from_secs_f64(o.settle);
    let window_end = window_start + Duration::from_secs_f64(o.seconds);
    if o.deaf {
        let end = window_end.duration_since(started).as_secs_f64();
        if end > DEAF_BUDGET_SECS {
            // Returning drops `stop_tx`: the viewers stop.
            return Err(format!(
                "--deaf: the viewers took {:.1} s to connect, so the window would end {end:.1} s \
                 after the first one, past the {DEAF_BUDGET_SECS} s its ICE agent lasts deaf: \
                 fewer viewers, a larger --batch, or a shorter --settle/--seconds",
                row.connect_secs
            ));
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(window_start)).await;

    let metrics = |http: &Option<String>| {
        let http = http.clone();
        async move {
            match http {
                Some(h) => fetch_metrics(&h).await.map(Some),
                None => Ok(None),
            }
        }
    };
    let m0 = metrics(&target.http).await?;
    let d0 = delivered.load(Ordering::Relaxed);
    let s0 = sample(target.pid);
    let c0 = proc_sample(std::process::id(), ticks);
    let k0 = machine_ticks();
    let w0 = Instant::now();
    tokio::time::sleep_until(tokio::time::Instant::from_std(window_end)).await;
    let m1 = metrics(&target.http).await?;
    let d1 = delivered.load(Ordering::Relaxed);
    let s1 = sample(target.pid);
    let c1 = proc_sample(std::process::id(), ticks);
    let k1 = machine_ticks();
    let window = w0.elapsed().as_secs_f64();
    row.window = window;
    if let Some(m1) = &m1 {
        let connected_end = metric(m1, "rtcast_viewers") as usize;
        if connected_end < row.connected {
            eprintln!(
                "    viewers connected went from {} to {connected_end} during the window",
                row.connected
            );
            row.connected = connected_end;
        }
    }

    let cpu = s1.cpu - s0.cpu;
    let thread = |s: &ProcSample, name: &str| s.threads.get(name).copied().unwrap_or(0.0);
    // Threads whose work does not depend on N: the demo's picture and encoder, the relay's
    // file reader and packetizer.
    let source = ["rtcast-demo", "rtcast-encode", "rtcast-relay"]
        .iter()
        .map(|name| thread(&s1, name) - thread(&s0, name))
        .sum::<f64>();
    row.server_cores = cpu / window;
    row.encoder_cores = source / window;
    let delivered = (d1 - d0) as f64;
    row.delivered_per_sec = delivered / window;
    if delivered > 0.0 && target.pid.is_some() {
        row.us_per_delivered = Some((cpu - source) / delivered * 1e6);
    }
    if let (Some(m0), Some(m1)) = (&m0, &m1) {
        let d = |name: &str| metric(m1, name) - metric(m0, name);
        let packets = d("rtcast_packets_sent_total");
        let bytes = d("rtcast_bytes_sent_total");
        row.packets_per_sec = packets / window;
        if packets > 0.0 {
            row.us_per_packet = cpu / packets * 1e6;
            row.us_per_packet_serving = (cpu - source) / packets * 1e6;
            row.bytes_per_packet = bytes / packets;
        }
        row.egress_mbps = bytes * 8.0 / window / 1e6;
        row.per_viewer_kbps = bytes * 8.0 / window / 1e3 / row.connected.max(1) as f64;
        row.send_drops = d("rtcast_send_drops_total");
        row.nacks = d("rtcast_nacks_total");
    }
    let c = row.connected.max(1) as f64;
    row.rss_kb = s1.rss_kb;
    row.rss_per_viewer_kb = (s1.rss_kb as f64 - row.rss_base_kb as f64) / c;
    if row.connected > 1 && target.pid.is_some() {
        row.rss_marginal_kb =
            Some((s1.rss_kb as f64 - row.rss_one_kb as f64) / (row.connected - 1) as f64);
    }
    row.client_cores = (c1.cpu - c0.cpu) / window;
    if k1.1 > k0.1 {
        row.machine_busy_pct = (k1.0 - k0.0) as f64 / (k1.1 - k0.1) as f64 * 100.0;
    }

    let _ = stop_tx.send(true);
    let mut reports = Vec::with_capacity(viewers.len());
    let collect_until = tokio::time::Instant::now() + Duration::from_secs(10);
    for h in viewers {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(collect_until, h).await {
            Ok(Ok(Ok(r))) => reports.push(r),
            Ok(Ok(Err(e))) => {
                row.viewer_failures += 1;
                if row.viewer_failures <= 3 {
                    eprintln!("    viewer failed: {e}");
                }
            }
            Ok(Err(e)) => {
                row.viewer_failures += 1;
                eprintln!("    viewer task: {e}");
            }
            Err(_) => {
                abort.abort();
                row.viewer_failures += 1;
            }
        }
    }
    if let Some(server) = target.server {
        server.terminate();
        tokio::task::spawn_blocking(move || server.reap(Duration::from_secs(8)))
            .await
            .map_err(|e| e.to_string())?;
    }

    let mut ttff: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.time_to_first_frame)
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    ttff.sort_by(f64::total_cmp);
    row.with_first_frame = ttff.len();
    row.ttff_p50_ms = percentile(&ttff, 50.0);
    row.ttff_p99_ms = percentile(&ttff, 99.0);
    let lost: u64 = reports.iter().map(|r| r.video_packets_lost).sum();
    let got: u64 = reports.iter().map(|r| r.video_packets).sum();
    if got + lost > 0 {
        row.loss_pct = lost as f64 / (got + lost) as f64 * 100.0;
    }
    Ok(row)
}

/// Makes `path`: `seconds` of the demo pattern with noise in its lower band (so the encoder
/// spends its bitrate), 1280x720 at 30 fps, an IDR every 2 s, encoded by rtcast's built-in
/// encoder at `kbps`. Paced in real time, since the encoder's rate control follows the clock.
fn make_h264(path: &PathBuf, kbps: u32, seconds: u32) -> Result<(), String> {
    use rtcast::media::encoder::{EncoderConfig, H264Encoder};
    use rtcast::media::pattern::TestPattern;
    let (w, h, fps) = (1280u32, 720u32, 30u32);
    println!(
        "rtcast-bench: making {} ({seconds} s of 1280x720 at {kbps} kbit/s)",
        path.display()
    );
    let mut pattern = TestPattern::new(w, h);
    let mut encoder = H264Encoder::new(EncoderConfig {
        bitrate_bps: kbps * 1000,
        max_fps: fps as f32,
        keyframe_interval: Duration::ZERO,
        ..EncoderConfig::default()
    });
    let mut out = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let interval = Duration::from_secs(1) / fps;
    let start = Instant::now();
    for i in 0..seconds * fps {
        if let Some(wait) = (interval * i).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let mut picture = pattern.render(u64::from(i), interval * i).clone();
        // Fresh noise over the band under the bars: incompressible.
        let rows = (h as usize * 60 / 100)..(h as usize * 63 / 100);
        for px in picture.y[rows.start * w as usize..rows.end * w as usize].iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *px = 16 + (seed % 220) as u8;
        }
        let encoded = encoder
            .encode(&picture.as_raw_frame(), i % (2 * fps) == 0)
            .map_err(|e| e.to_string())?;
        if let Some(e) = encoded {
            out.extend_from_slice(&e.data);
        }
    }
    let rate = out.len() as f64 * 8.0 / f64::from(seconds) / 1000.0;
    std::fs::write(path, &out).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("rtcast-bench: wrote {} bytes ({rate:.0} kbit/s)", out.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Output

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
}

fn print_row(r: &Row) {
    println!(
        "  N={:<4} connected {}/{} in {:.1} s (first frame {}) | window {:.1} s",
        r.n, r.connected, r.n, r.connect_secs, r.with_first_frame, r.window
    );
    println!(
        "         server CPU {:.3} cores (idle {:.3}; source threads {:.3}) | {:.0} pkt/s sent | {:.2} µs/pkt ({:.2} µs/pkt without the source threads)",
        r.server_cores, r.idle_cores, r.encoder_cores, r.packets_per_sec, r.us_per_packet, r.us_per_packet_serving
    );
    println!(
        "         viewers received {:.0} RTP pkt/s | {} µs of serving CPU per received packet",
        r.delivered_per_sec,
        r.us_per_delivered
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
    );
    println!(
        "         egress {:.1} Mbit/s = {:.0} kbit/s per viewer, {:.0} B/packet | RSS {} KB (idle {} KB, one viewer {} KB) = {:.0} KB/viewer over idle, {} KB/viewer beyond the first",
        r.egress_mbps, r.per_viewer_kbps, r.bytes_per_packet, r.rss_kb, r.rss_base_kb, r.rss_one_kb, r.rss_per_viewer_kb,
        r.rss_marginal_kb.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
    );
    println!(
        "         TTFF p50 {} ms p99 {} ms | loss {:.3}% | send drops {:.0} | NACKs {:.0} | viewer failures {}",
        opt_ms(r.ttff_p50_ms), opt_ms(r.ttff_p99_ms), r.loss_pct, r.send_drops, r.nacks, r.viewer_failures
    );
    println!(
        "         client (bench process) CPU {:.2} cores | machine busy {:.0}% of {} cores",
        r.client_cores,
        r.machine_busy_pct,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| viewers (playing) | server CPU (cores) | of which source | packets sent/s | server CPU per sent packet (µs) | same without source (µs) | RTP received/s | serving CPU per received packet (µs) | egress (Mbit/s) | per viewer (kbit/s) | RSS (MB) | RSS over idle / N (KB) | RSS beyond 1st viewer / (N-1) (KB) | TTFF p50 / p99 (ms) | video loss | send drops | client CPU (cores) | machine busy |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} ({}) | {:.3} | {:.3} | {:.0} | {:.2} | {:.2} | {:.0} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {} | {} / {} | {:.3}% | {:.0} | {:.2} | {:.0}% |\n",
            r.n,
            r.connected,
            r.server_cores,
            r.encoder_cores,
            r.packets_per_sec,
            r.us_per_packet,
            r.us_per_packet_serving,
            r.delivered_per_sec,
            r.us_per_delivered.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}")),
            r.egress_mbps,
            r.per_viewer_kbps,
            r.rss_kb as f64 / 1024.0,
            r.rss_per_viewer_kb,
            r.rss_marginal_kb.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}")),
            opt_ms(r.ttff_p50_ms),
            opt_ms(r.ttff_p99_ms),
            r.loss_pct,
            r.send_drops,
            r.client_cores,
            r.machine_busy_pct,
        ));
    }
    s
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rtcast-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let binary = match std::env::current_exe() {
        Ok(p) => p.with_file_name("rtcast"),
        Err(e) => {
            eprintln!("rtcast-bench: cannot locate myself: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(file) = &o.h264 {
        if !file.exists() {
            if let Err(e) = make_h264(file, o.h264_bitrate, 10) {
                eprintln!("rtcast-bench: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if o.whep.is_none() && !binary.is_file() {
        eprintln!(
            "rtcast-bench: the server binary {} is missing: build it first with\n  cargo build --release -p rtcast\n(into the same target directory as rtcast-bench)",
            binary.display()
        );
        return std::process::ExitCode::FAILURE;
    }
    // The target directory may be shared: say which server binary this measures.
    if let Ok(modified) = std::fs::metadata(&binary).and_then(|m| m.modified()) {
        let age = modified.elapsed().unwrap_or_default().as_secs();
        println!("rtcast-bench: server binary built {age} s ago");
    }
    let ticks = clock_ticks();
    let what = match (&o.whep, &o.h264) {
        (Some(url), _) => format!("WHEP {url} (pid {:?})", o.server_pid),
        (None, Some(file)) => format!("{} relay {}", binary.display(), file.display()),
        (None, None) => format!("{} demo", binary.display()),
    };
    println!(
        "rtcast-bench: server {what} | viewers {:?} over {}, media on {} | window {} s | batches of {}",
        o.viewers,
        if o.whep.is_some() || o.whep_protocol {
            "WHEP"
        } else {
            "WebSocket"
        },
        if o.ice_tcp { "ICE-TCP" } else { "UDP" },
        o.seconds,
        o.batch
    );
    println!("  (packets = every packet the server sent, UDP datagrams or ICE-TCP frames: RTP and RTCP, plus STUN/DTLS while connecting)");
    let mut rows = Vec::new();
    let mut failed = false;
    for &n in &o.viewers {
        println!("N = {n}: starting ...");
        match run_one(&binary, &o, n, ticks).await {
            Ok(row) => {
                print_row(&row);
                rows.push(row);
            }
            Err(e) => {
                eprintln!("  N={n}: {e}");
                failed = true;
            }
        }
    }
    println!("\n{}", markdown(&rows));
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
