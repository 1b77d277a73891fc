//! `rtcast-churn`: viewers that connect, play and vanish in every way a viewer can, cycle after
//! cycle, while a witness viewer plays; what the server holds is printed as it goes and at the
//! end, once every vanished viewer should have been reaped.
//!
//! ```text
//! cargo build --release -p rtcast -p rtcast-e2e
//! target/release/rtcast-churn --cycles 10000 --parallel 16
//! ```
//!
//! The server is `rtcast demo` (320x240) in a process of its own; its RSS, threads and open
//! descriptors come from `/proc`, its viewer sessions and tasks from `/metrics`. Cycle `i` leaves
//! the fifth way of `i % 5`:
//!
//! - `close`: plays over WebSocket, then closes the socket and the peer connection;
//! - `delete`: plays over WHEP, then DELETEs its session;
//! - `silent`: plays over WHEP, then drops everything without a word (reaped at ICE consent);
//! - `no-answer`: takes the WebSocket offer and never answers (reaped at the connect timeout);
//! - `no-dtls`: answers and finishes ICE, never starts DTLS (reaped at the connect timeout).
//!
//! Exits non-zero when the witness stalled, sessions did not come back to the witness alone, or
//! RSS, threads, descriptors or tasks grew past their bounds (RSS: 2 % over where it settled
//! after `--settle` cycles).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rtcast_e2e::serverproc::{clock_ticks, fetch_metrics, metric, proc_sample, ServerProc};
use rtcast_e2e::viewer::{run_viewer, Leave, ViewerOptions};
use tokio::task::JoinSet;

const USAGE: &str = "usage: rtcast-churn [--cycles 10000] [--parallel 16] [--settle 1000] \
[--every 1000] [--modes close,delete,silent,no-answer,no-dtls] [--rss-bound 2] [--server-args \"...\"]

  --cycles N        viewer cycles in all (default 10000)
  --parallel P      cycles under way at once (default 16)
  --settle S        cycles after which RSS is taken as settled (default 1000, or cycles/10)
  --every E         print a row every E cycles (default 1000)
  --modes LIST      ways of leaving to take in turn (default all five)
  --rss-bound PCT   most RSS growth over the settled figure, percent (default 2; \"off\": not
                    checked, for runs too short for RSS to settle)
  --server-args     more arguments for `rtcast demo`";

const MODES: [&str; 5] = ["close", "delete", "silent", "no-answer", "no-dtls"];
/// Viewers held open by the server's decision (no-answer, no-dtls) at once, at most.
const MAX_HELD: usize = 400;

struct Options {
    cycles: usize,
    parallel: usize,
    settle: Option<usize>,
    every: usize,
    modes: Vec<usize>,
    rss_bound: f64,
    server_args: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        cycles: 10_000,
        parallel: 16,
        settle: None,
        every: 1000,
        modes: (0..MODES.len()).collect(),
        rss_bound: 2.0,
        server_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let count = |name: &str, v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: '{v}' is not a positive count"))
        };
        match a.as_str() {
            "--cycles" => o.cycles = count("--cycles", value("--cycles")?)?,
            "--parallel" => o.parallel = count("--parallel", value("--parallel")?)?,
            "--settle" => o.settle = Some(count("--settle", value("--settle")?)?),
            "--every" => o.every = count("--every", value("--every")?)?,
            "--modes" => {
                o.modes = value("--modes")?
                    .split(',')
                    .map(|m| {
                        MODES
                            .iter()
                            .position(|x| *x == m.trim())
                            .ok_or_else(|| format!("--modes: unknown way of leaving '{m}'"))
                    })
                    .collect::<Result<_, _>>()?;
                if o.modes.is_empty() {
                    return Err("--modes: name at least one".into());
                }
            }
            "--rss-bound" => {
                let v = value("--rss-bound")?;
                o.rss_bound = if v == "off" {
                    Ok(f64::INFINITY)
                } else {
                    v.parse::<f64>()
                }
                .ok()
                .filter(|p| *p >= 0.0)
                .ok_or_else(|| format!("--rss-bound: '{v}' is not a percentage"))?;
            }
            "--server-args" => {
                o.server_args = value("--server-args")?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(o)
}

/// What the server holds at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    cycles: usize,
    rss_kb: u64,
    threads: usize,
    fds: usize,
    sessions: f64,
    tasks: f64,
    witness_fps: f64,
}

async fn sample(server: &ServerProc, cycles: usize, witness_fps: f64) -> Result<Sample, String> {
    let pid = server.pid();
    let p = proc_sample(pid, clock_ticks());
    let count = |dir: String| std::fs::read_dir(dir).map_or(0, |d| d.count());
    let m = fetch_metrics(&server.http).await?;
    Ok(Sample {
        cycles,
        rss_kb: p.rss_kb,
        threads: count(format!("/proc/{pid}/task")),
        fds: count(format!("/proc/{pid}/fd")),
        sessions: metric(&m, "rtcast_sessions"),
        tasks: metric(&m, "rtcast_tasks"),
        witness_fps,
    })
}

fn print_row(s: &Sample) {
    println!(
        "| {} | {:.1} | {} | {} | {} | {} | {:.1} |",
        s.cycles,
        s.rss_kb as f64 / 1024.0,
        s.sessions,
        s.tasks,
        s.threads,
        s.fds,
        s.witness_fps
    );
}

/// One cycle, leaving the way of `mode`. Returns whether it went as that way expects (the
/// players got frames; the others got their offer or their ICE).
async fn cycle(ws: String, whep: String, mode: usize) -> Result<(), String> {
    let (url, leave) = match MODES[mode] {
        "close" => (ws, Leave::Close),
        "delete" => (whep, Leave::Close),
        "silent" => (whep, Leave::Vanish),
        "no-answer" => return no_answer(&ws).await,
        _ => (ws, Leave::Vanish),
    };
    let mut opts = ViewerOptions::new(url, Duration::from_secs(30));
    opts.leave = leave;
    if MODES[mode] == "no-dtls" {
        opts.vanish_before_dtls = true;
    } else {
        opts.stop_after_frames = Some(3);
    }
    let r = run_viewer(opts).await?;
    if MODES[mode] != "no-dtls" && r.video_frames < 3 {
        return Err(format!("{}: {} frames", MODES[mode], r.video_frames));
    }
    Ok(())
}

/// Takes the offer and holds the WebSocket without answering until the server closes it.
async fn no_answer(ws: &str) -> Result<(), String> {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws)
        .await
        .map_err(|e| format!("no-answer: {e}"))?;
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut offered = false;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, socket.next()).await {
        offered |= m.to_text().is_ok_and(|t| t.contains("\"offer\""));
        if m.is_close() {
            break;
        }
    }
    if offered {
        Ok(())
    } else {
        Err("no-answer: no offer".into())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(o).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("rtcast-churn: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(o: Options) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let binary: PathBuf = exe.with_file_name("rtcast");
    let mut args: Vec<String> = [
        "--size",
        "320x240",
        "--max-viewers",
        "1000",
        "--max-connecting-per-address",
        "100000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(o.server_args.iter().cloned());
    let server = ServerProc::start(&binary, &args, None)?;
    let settle = o.settle.unwrap_or((o.cycles / 10).clamp(1, 1000));
    println!(
        "rtcast-churn: {} cycles, {} at once, leaving by {} in turn; server {} (pid {})",
        o.cycles,
        o.parallel,
        o.modes
            .iter()
            .map(|m| MODES[*m])
            .collect::<Vec<_>>()
            .join(", "),
        binary.display(),
        server.pid()
    );

    // The witness plays throughout.
    let frames = Arc::new(AtomicU64::new(0));
    let mut w = ViewerOptions::new(server.ws_url.clone(), Duration::from_secs(24 * 3600));
    w.progress = Some(frames.clone());
    let witness = tokio::spawn(run_viewer(w));
    let t0 = Instant::now();
    while frames.load(Ordering::Relaxed) < 30 {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err("the witness got no frames within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut last = (Instant::now(), frames.load(Ordering::Relaxed));
    let mut fps = move || {
        let now = (Instant::now(), frames.load(Ordering::Relaxed));
        let r = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64().max(1e-3);
        last = now;
        r
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = sample(&server, 0, fps()).await?;
    println!("| cycles | RSS (MB) | sessions | tasks | threads | fds | witness fps |");
    println!("|---|---|---|---|---|---|---|");
    print_row(&start);

    let mut running: JoinSet<(usize, Result<(), String>)> = JoinSet::new();
    let mut held: JoinSet<(usize, Result<(), String>)> = JoinSet::new();
    let mut failures: BTreeMap<&str, (usize, String)> = BTreeMap::new();
    let mut note = |mode: usize, r: Result<(), String>| {
        if let Err(e) = r {
            let f = failures.entry(MODES[mode]).or_insert((0, String::new()));
            f.0 += 1;
            f.1 = e;
        }
    };
    let mut samples = vec![start];
    let mut settled: Option<Sample> = None;
    let mut stalled = false;
    let started = Instant::now();
    for i in 0..o.cycles {
        while running.len() >= o.parallel {
            if let Some(Ok((mode, r))) = running.join_next().await {
                note(mode, r);
            }
        }
        while held.len() >= MAX_HELD {
            if let Some(Ok((mode, r))) = held.join_next().await {
                note(mode, r);
            }
        }
        while let Some(Ok((mode, r))) = held.try_join_next() {
            note(mode, r);
        }
        let mode = o.modes[i % o.modes.len()];
        let (ws, whep) = (server.ws_url.clone(), server.whep_url.clone());
        let task = async move { (mode, cycle(ws, whep, mode).await) };
        if matches!(MODES[mode], "no-answer" | "no-dtls") {
            held.spawn(task);
        } else {
            running.spawn(task);
        }
        let done = i + 1;
        if done % o.every == 0 || done == settle {
            let s = sample(&server, done, fps()).await?;
            stalled |= s.witness_fps < 20.0;
            print_row(&s);
            if done == settle {
                settled = Some(s);
            }
            samples.push(s);
        }
    }
    while let Some(Ok((mode, r))) = running.join_next().await {
        note(mode, r);
    }
    let cycles_took = started.elapsed();
    // Everything vanished must now be reaped: the held ones when the server closes them (connect
    // timeout), the silent ones at their consent deadline.
    let reap_start = Instant::now();
    while let Some(Ok((mode, r))) = held.join_next().await {
        note(mode, r);
    }
    let mut end = sample(&server, o.cycles, fps()).await?;
    while end.sessions > 1.0 && reap_start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        end = sample(&server, o.cycles, end.witness_fps).await?;
    }
    let reaped_after = reap_start.elapsed();
    // Descriptors and tasks of the last connections (a /metrics request's own) close within a
    // moment of them.
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        end = sample(&server, o.cycles, end.witness_fps).await?;
        if end.fds <= start.fds && end.tasks <= start.tasks {
            break;
        }
    }
    end.witness_fps = fps();
    print_row(&end);
    witness.abort();
    server.terminate();
    let stopped = std::thread::spawn(move || server.reap(Duration::from_secs(10)));

    let settled = settled.unwrap_or(start);
    let rss_growth = (end.rss_kb as f64 - settled.rss_kb as f64) / settled.rss_kb as f64 * 100.0;
    println!(
        "\n{} cycles in {:.1} s ({:.1}/s); the last vanished viewers reaped {:.1} s after the last \
         cycle",
        o.cycles,
        cycles_took.as_secs_f64(),
        o.cycles as f64 / cycles_took.as_secs_f64(),
        reaped_after.as_secs_f64()
    );
    println!(
        "RSS: start {:.1} MB, settled after {} cycles {:.1} MB, end {:.1} MB ({rss_growth:+.2} % \
         over settled); sessions {} -> {}; tasks {} -> {}; threads {} -> {}; fds {} -> {}",
        start.rss_kb as f64 / 1024.0,
        settled.cycles,
        settled.rss_kb as f64 / 1024.0,
        end.rss_kb as f64 / 1024.0,
        start.sessions,
        end.sessions,
        start.tasks,
        end.tasks,
        start.threads,
        end.threads,
        start.fds,
        end.fds
    );
    for (mode, (n, last)) in &failures {
        println!("cycles that did not go as '{mode}' expects: {n} (last: {last})");
    }
    let _ = stopped.join();
    let mut ok = true;
    let mut fail = |why: String| {
        println!("FAIL: {why}");
        ok = false;
    };
    if stalled {
        fail("the witness fell under 20 frames/s during the run".into());
    }
    if end.sessions > 1.0 {
        fail(format!(
            "{} sessions left (only the witness should be)",
            end.sessions
        ));
    }
    if rss_growth > o.rss_bound {
        fail(format!(
            "RSS grew {rss_growth:.2} % after it settled (bound {} %)",
            o.rss_bound
        ));
    }
    if end.threads > start.threads || end.fds > start.fds || end.tasks > start.tasks {
        fail("threads, descriptors or tasks grew".into());
    }
    // A few cycles may fail on a loaded machine (a viewer's own timeout); many mean a bug.
    let failed: usize = failures.values().map(|f| f.0).sum();
    if failed * 100 > o.cycles {
        fail(format!("{failed} cycles did not go as expected"));
    }
    if ok {
        println!("OK");
    }
    Ok(ok)
}
