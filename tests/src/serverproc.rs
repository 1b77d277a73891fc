//! A server under measurement in its own process (`rtcast demo` / `rtcast relay`) and what
//! `/proc` and `/metrics` say about it: shared by `rtcast-bench` and `rtcast-churn`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// /proc readings

/// Clock ticks per second of `utime`/`stime` in /proc (almost always 100).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime in seconds from a `/proc/.../stat` file (all threads for a process).
pub fn stat_cpu(path: &str, ticks: f64) -> Option<(String, f64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_owned();
    // Fields after the command name start at field 3 (state); utime is field 14, stime 15.
    let f: Vec<&str> = s[close + 1..].split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / ticks))
}

/// Nanoseconds a thread has run, from `/proc/.../task/TID/schedstat` (its first field): exact,
/// where `utime`/`stime` come in clock ticks (10 ms), too coarse for a loop that runs ~10 ms a
/// second.
fn schedstat_cpu(task: &std::path::Path) -> Option<f64> {
    let s = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// One reading of a process: total CPU seconds, CPU seconds per thread name, RSS in KB.
#[derive(Debug, Clone, Default)]
pub struct ProcSample {
    pub cpu: f64,
    pub threads: BTreeMap<String, f64>,
    pub rss_kb: u64,
}

/// Reads a process. CPU is the sum of its live threads' exact run times where the kernel keeps
/// them (`schedstat`), else its clock ticks; a thread that ends between two samples takes its
/// time with it, so compare samples of a process whose threads last (a server under load).
pub fn proc_sample(pid: u32, ticks: f64) -> ProcSample {
    let mut s = ProcSample::default();
    let mut exact = true;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten() {
            let path = format!("{}/stat", e.path().display());
            let Some((comm, ticked)) = stat_cpu(&path, ticks) else {
                continue;
            };
            let cpu = schedstat_cpu(&e.path()).unwrap_or_else(|| {
                exact = false;
                ticked
            });
            *s.threads.entry(comm).or_default() += cpu;
        }
    }
    s.cpu = if exact && !s.threads.is_empty() {
        s.threads.values().sum()
    } else {
        stat_cpu(&format!("/proc/{pid}/stat"), ticks).map_or(0.0, |x| x.1)
    };
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("VmRSS:") {
                s.rss_kb = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            }
        }
    }
    s
}

/// The whole machine from /proc/stat: (busy ticks, total ticks).
pub fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

// ---------------------------------------------------------------------------------------------
// /metrics

pub async fn fetch_metrics(http: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(http))
            .await
            .map_err(|_| "connecting for /metrics timed out".to_owned())?
            .map_err(|e| format!("/metrics: {e}"))?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut body))
        .await
        .map_err(|_| "/metrics timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if !line.starts_with("rtcast_") {
            continue;
        }
        if let Some((name, v)) = line.rsplit_once(' ') {
            if let Ok(v) = v.parse::<f64>() {
                out.insert(name.to_owned(), v);
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "/metrics answered without rtcast_ counters: {text:.200}"
        ));
    }
    Ok(out)
}

pub fn metric(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// The server process

pub struct ServerProc {
    child: Child,
    pub http: String,
    pub ws_url: String,
    pub whep_url: String,
}

impl ServerProc {
    /// Starts `rtcast demo` with `extra` arguments, or `rtcast relay --h264 FILE`.
    pub fn start(
        binary: &PathBuf,
        extra: &[String],
        h264: Option<&PathBuf>,
    ) -> Result<Self, String> {
        let mode: Vec<String> = match h264 {
            Some(file) => vec!["relay".into(), "--h264".into(), file.display().to_string()],
            None => vec!["demo".into()],
        };
        let mut child = Command::new(binary)
            .args(mode)
            .args(["--bind", "127.0.0.1", "--port", "0", "--udp-port", "0"])
            .args(extra)
            // Logging every viewer's join would cost the server CPU we are measuring.
            .env("RUST_LOG", "rtcast=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Keep draining stdout for the life of the server so it never blocks on a full pipe;
        // warnings (tracing writes to stdout) are passed on to our stderr.
        std::thread::spawn(move || {
            let mut found = 0;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if found < 2 {
                    let t = line.trim();
                    if let Some(url) = t.strip_prefix("websocket:").or(t.strip_prefix("whep:")) {
                        found += 1;
                        let _ = tx.send(url.trim().to_owned());
                        continue;
                    }
                }
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("    [server] {line}");
                }
            }
        });
        let (ws_url, whep_url) = match (
            rx.recv_timeout(Duration::from_secs(20)),
            rx.recv_timeout(Duration::from_secs(5)),
        ) {
            (Ok(ws), Ok(whep)) => (ws, whep),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(
                    "the server did not print its websocket and WHEP URLs within 20 s".into(),
                );
            }
        };
        // ws://127.0.0.1:PORT/demo/webrtc
        let http = ws_url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .ok_or_else(|| format!("unexpected websocket URL '{ws_url}'"))?
            .to_owned();
        Ok(Self {
            child,
            http,
            ws_url,
            whep_url,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM; returns at once (the server closes every viewer's WebSocket with 1001).
    pub fn terminate(&self) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Waits up to `grace` for the process to exit, then kills it.
    pub fn reap(mut self, grace: Duration) {
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("    server did not exit within {grace:?} of SIGTERM: killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
