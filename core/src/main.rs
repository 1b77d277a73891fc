//! The `rtcast` command line: `rtcast demo` serves a live test pattern to browsers, `rtcast relay`
//! serves an H.264 file as a live stream.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The program's allocator: jemalloc gives freed memory back to the system, where glibc's keeps
/// it (after 10 000 viewer cycles glibc's RSS stayed 8 % above where it settled, jemalloc's went
/// back under it: docs/RELIABILITY.md). Hosts embedding the library keep their own allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::{Server, ServerConfig, TlsConfig, TurnSecret};

/// Serve live video to browsers over WebRTC (Flussonic WebSocket protocol, one UDP port).
#[derive(Parser)]
#[command(name = "rtcast", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a stream `demo` with a live generated test pattern (moving picture, frame counter and
    /// clock; Opus silence). Open the printed URL in a browser.
    Demo(DemoArgs),
    /// Relay an H.264 elementary stream file (Annex B, `.h264`: `ffmpeg -i in.mp4 -c:v libx264
    /// -bf 0 -f h264 out.h264`) as a live stream, looped, at its frame rate: the server encodes
    /// nothing, it only packetizes and sends (what `rtcast-bench --h264` measures).
    Relay(RelayArgs),
}

#[derive(Args)]
struct RelayArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The H.264 Annex B file (constrained baseline or main, no B-frames).
    #[arg(long, value_name = "FILE")]
    h264: PathBuf,
    /// Frames per second to push the file's access units at.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Stream name.
    #[arg(long, default_value = "relay")]
    name: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
}

#[derive(Args)]
struct ServerArgs {
    /// Address to listen on (HTTP and media). 0.0.0.0 listens on every interface.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// TCP port for HTTP, WebSocket (and HTTPS/WSS with --cert/--key).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// UDP port carrying the media of every viewer [default: same number as --port].
    #[arg(long)]
    udp_port: Option<u16>,
    /// TCP port of ICE-TCP, for viewers whose network blocks UDP [default: the UDP port's
    /// number, shared with HTTP when that is --port].
    #[arg(long)]
    tcp_port: Option<u16>,
    /// Candidates offered to viewers: udp, tcp, local, public, separated by commas.
    #[arg(long, default_value = "udp,tcp,local,public")]
    candidates: rtcast::CandidatePolicy,
    /// Public IP to announce to viewers (1:1 NAT, e.g. a cloud VM). Repeat for several.
    #[arg(long = "public-ip", value_name = "IP")]
    public_ips: Vec<IpAddr>,
    /// TURN server handed to viewers with short-lived credentials from --turn-secret, e.g.
    /// turn:turn.example.com:3478?transport=udp. Repeat for several URLs of that server.
    #[arg(long = "turn-url", value_name = "URL", requires = "turn_secret")]
    turn_urls: Vec<String>,
    /// Secret shared with the TURN server (coturn: use-auth-secret, static-auth-secret=SECRET);
    /// needs --turn-url. Each viewer gets a user name "<expiry>:<viewer id>" and its HMAC.
    #[arg(long, value_name = "SECRET", requires = "turn_urls")]
    turn_secret: Option<String>,
    /// Lifetime of a viewer's TURN credentials, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    turn_ttl: u64,
    /// TLS certificate chain (PEM) to serve HTTPS/WSS; needs --key.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Most viewers per stream.
    #[arg(long, default_value_t = 1000)]
    max_viewers: usize,
    /// Most viewers signalling from one IP address whose media has not connected yet.
    #[arg(long, default_value_t = 64)]
    max_connecting_per_address: usize,
    /// Most viewers of the whole server whose media has not connected yet.
    #[arg(long, default_value_t = 1000)]
    max_connecting: usize,
    /// Media loops (threads sharing the viewers, all on the one UDP port); 0: one per core.
    #[arg(long, default_value_t = 0)]
    media_loops: usize,
    /// Let only viewers presenting this token watch: `?token=` on the WebSocket URL, or
    /// `Authorization: Bearer` on WHEP.
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Picture size, WIDTHxHEIGHT (even numbers).
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    size: (u32, u32),
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video bitrate of the built-in encoder, kbit/s.
    #[arg(long, default_value_t = 2000)]
    bitrate: u32,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Add moving noise under the bars so the encoder really spends --bitrate (the plain
    /// pattern compresses to ~0.3 Mbit/s); for benchmarks.
    #[arg(long)]
    noise: bool,
    /// A rendition of an adaptive ladder, WIDTHxHEIGHT@KBPS; repeat it, best first
    /// (`--rendition 1280x720@2000 --rendition 640x360@600 --rendition 320x180@200`). Each viewer
    /// gets the best one its network carries; each is encoded once (--bitrate is then unused).
    #[arg(long = "rendition", value_name = "WxH@KBPS", value_parser = parse_rendition)]
    renditions: Vec<rtcast::Rendition>,
    /// Let the encoder follow the slowest viewer's bandwidth, down to this many kbit/s (a
    /// stream of one rendition).
    #[arg(long, value_name = "KBPS")]
    follow_viewers: Option<u32>,
}

fn parse_rendition(s: &str) -> Result<rtcast::Rendition, String> {
    let (size, kbps) = s
        .split_once('@')
        .ok_or_else(|| format!("rendition '{s}' must look like 640x360@600"))?;
    let (width, height) = parse_size(size)?;
    let kbps: u32 = kbps
        .parse()
        .map_err(|_| format!("bad kbit/s in rendition '{s}'"))?;
    Ok(rtcast::Rendition {
        width,
        height,
        bitrate_bps: kbps.saturating_mul(1000),
    })
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size '{s}' must look like 1280x720"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width in '{s}'"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height in '{s}'"))?;
    if w == 0 || h == 0 || w % 2 == 1 || h % 2 == 1 {
        return Err(format!("size '{s}' must be even and non-zero"));
    }
    Ok((w, h))
}

fn config(args: &ServerArgs) -> ServerConfig {
    let mut config = ServerConfig {
        bind: args.bind,
        port: args.port,
        udp_port: args.udp_port,
        tcp_port: args.tcp_port,
        candidates: args.candidates,
        public_ips: args.public_ips.clone(),
        media_loops: args.media_loops,
        ..ServerConfig::default()
    };
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        config.tls = Some(TlsConfig {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        });
    }
    if let Some(secret) = &args.turn_secret {
        config.turn_secret = Some(TurnSecret {
            urls: args.turn_urls.clone(),
            secret: secret.clone(),
            ttl: Duration::from_secs(args.turn_ttl),
        });
    }
    config.limits.max_viewers_per_stream = args.max_viewers;
    config.limits.max_connecting_per_address = args.max_connecting_per_address;
    config.limits.max_connecting = args.max_connecting;
    if let Some(token) = args.token.clone() {
        config.authorize = Some(std::sync::Arc::new(move |req: &rtcast::AuthRequest| {
            req.token.as_deref() == Some(token.as_str())
        }));
    }
    config
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "rtcast=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo(args),
        Command::Relay(args) => relay(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtcast: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn demo(args: DemoArgs) -> rtcast::Result<()> {
    let mut server = Server::start(config(&args.server))?;
    let mut options = rtcast::StreamOptions::default();
    options.encoder.bitrate_bps = args.bitrate.saturating_mul(1000);
    options.encoder.max_fps = args.fps as f32;
    options.encoder.follow_viewers_floor_bps = args.follow_viewers.map(|k| k.saturating_mul(1000));
    options.renditions = args.renditions;
    let stream = server.stream_with("demo", options)?;
    let source = DemoSource::start(
        stream,
        DemoOptions {
            width: args.size.0,
            height: args.size.1,
            fps: args.fps,
            noise: args.noise,
        },
    );
    println!("rtcast {} serving a live test pattern", rtcast::VERSION);
    print_urls(&server, "demo");
    wait_for_stop(args.duration);
    source.stop();
    server.stop();
    Ok(())
}

fn relay(args: RelayArgs) -> rtcast::Result<()> {
    let data = std::fs::read(&args.h264).map_err(|e| {
        rtcast::Error::InvalidConfig(format!("cannot read {}: {e}", args.h264.display()))
    })?;
    let units = rtcast::media::h264::access_units(&data)?;
    let keyframes = units
        .iter()
        .filter(|u| {
            rtcast::media::h264::split_annex_b(u).is_ok_and(|nals| {
                nals.iter().any(|n| {
                    rtcast::media::h264::nal_unit_type(n) == rtcast::media::h264::nal_type::IDR
                })
            })
        })
        .count();
    if keyframes == 0 {
        return Err(rtcast::Error::InvalidData(format!(
            "{} has no IDR picture: a viewer could never start",
            args.h264.display()
        )));
    }
    let mut server = Server::start(config(&args.server))?;
    let options = rtcast::StreamOptions {
        audio: false,
        ..Default::default()
    };
    let stream = server.stream_with(&args.name, options)?;
    println!(
        "rtcast {} relaying {} ({} access units, {keyframes} keyframes) at {} fps",
        rtcast::VERSION,
        args.h264.display(),
        units.len(),
        args.fps
    );
    print_urls(&server, &args.name);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = {
        let stop = stop.clone();
        let interval = Duration::from_secs(1) / args.fps.max(1);
        std::thread::Builder::new()
            .name("rtcast-relay".into())
            .spawn(move || {
                let start = std::time::Instant::now();
                for (i, unit) in units.iter().cycle().enumerate() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let at = interval * i as u32;
                    if let Some(wait) = at.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    if let Err(e) = stream.push_h264(unit, Some(at)) {
                        eprintln!("rtcast: access unit {i} not pushed: {e}");
                        if stream.is_closed() {
                            break;
                        }
                    }
                }
            })?
    };
    wait_for_stop(args.duration);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = pusher.join();
    server.stop();
    Ok(())
}

fn print_urls(server: &Server, name: &str) {
    println!("  player:    {}", server.url(name));
    let port = server.http_addr().port();
    for addr in server.udp_addrs().iter().filter(|a| !a.ip().is_loopback()) {
        println!("             http://{}:{port}/{name}/embed.html", addr.ip());
    }
    println!("  websocket: {}", server.ws_url(name));
    println!("  whep:      {}", server.whep_url(name));
    println!(
        "  media:     udp {}",
        server
            .udp_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("Press Ctrl-C to stop.");
}

/// Waits for Ctrl-C or SIGTERM, or `duration` seconds.
fn wait_for_stop(duration: Option<u64>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = ctrlc_channel(tx);
    match duration {
        Some(s) => {
            let _ = rx.recv_timeout(Duration::from_secs(s));
        }
        None => {
            let _ = rx.recv();
        }
    }
}

/// Ctrl-C and SIGTERM end the demo cleanly.
fn ctrlc_channel(tx: std::sync::mpsc::Sender<()>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered here, so that a failure is an error of the program's start.
    let mut term = {
        let _enter = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?
    };
    std::thread::Builder::new()
        .name("rtcast-signal".into())
        .spawn(move || {
            rt.block_on(async {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            });
            let _ = tx.send(());
        })?;
    Ok(())
}
