//! TURN for viewers: headless Chromium told to use relay candidates only (`iceTransportPolicy:
//! "relay"`) plays an rtcast stream through Debian's coturn, started here on loopback with
//! `use-auth-secret`, using the short-lived credentials rtcast computed from the shared secret
//! and handed out in the WebSocket offer's `config.iceServers`. coturn comes from
//! `scripts/ensure-net-tools.sh` (called by `scripts/test.sh`); `$TURNSERVER` selects another binary.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::{Server, ServerConfig, TurnSecret};
use rtcast_e2e::{page_url, Chromium};

const PLAY_TIMEOUT: Duration = Duration::from_secs(30);
const SECRET: &str = "rtcast-e2e-turn-secret";
const REALM: &str = "rtcast.test";
/// Relay ports of the test's coturn: above Linux's default ephemeral range (32768-60999), so
/// they do not collide with the free ports the test's sockets are given.
const RELAY_PORTS: (u16, u16) = (61000, 61999);

/// A coturn `turnserver` on 127.0.0.1, killed (and its files removed) on drop, even when the
/// test fails.
struct Coturn {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Coturn {
    /// Starts coturn with `use-auth-secret` and `secret`, and waits until it answers STUN.
    fn start(secret: &str) -> Coturn {
        let exe = std::env::var_os("TURNSERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/turnserver"));
        assert!(
            exe.is_file(),
            "coturn not found at {} (set $TURNSERVER to use another binary); install it with \
             scripts/ensure-net-tools.sh",
            exe.display()
        );
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("rtcast-e2e-coturn-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_udp_and_tcp_port();
        let output = std::fs::File::create(dir.join("stdout.log")).unwrap();
        let child = Command::new(&exe)
            .args([
                "-n", // no configuration file
                "-v",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={}", RELAY_PORTS.0),
                &format!("--max-port={}", RELAY_PORTS.1),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                &format!("--realm={REALM}"),
                // rtcast's media port is on 127.0.0.1 too.
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--simple-log",
                "--no-stdout-log",
            ])
            .arg(format!(
                "--log-file={}",
                dir.join("turnserver.log").display()
            ))
            .arg(format!(
                "--pidfile={}",
                dir.join("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", dir.join("turndb").display()))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let mut coturn = Coturn { child, dir, port };
        coturn.wait_until_it_answers_stun();
        coturn
    }

    /// The URL handed to viewers.
    fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// coturn's log, for assertions and failure messages.
    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("turnserver.log"))
    }

    fn wait_until_it_answers_stun(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A STUN Binding request: type 0x0001, length 0, the magic cookie, a transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"rtcast-e2e!!");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("coturn exited with {status}:\n{}", self.log());
            }
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            if let Ok(n) = socket.recv(&mut buf) {
                // Binding success response, same transaction.
                if n >= 20 && buf[..2] == [0x01, 0x01] && buf[8..20] == request[8..20] {
                    return;
                }
            }
        }
        panic!(
            "coturn did not answer STUN on 127.0.0.1:{} within 10 s:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both).
fn free_udp_and_tcp_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// The selected candidate pair of `window.pc`, its two candidates described.
const SELECTED_PAIR_JS: &str = r#"(async () => {
  const stats = await window.pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    state: pair.state,
    bytesReceived: pair.bytesReceived,
    localType: local.candidateType,
    localAddress: local.address,
    relayProtocol: local.relayProtocol ?? null,
    remoteType: remote.candidateType,
    remoteAddress: remote.address,
    remotePort: remote.port,
  };
})()"#;

fn server_with_turn(turn_url: String, secret: &str) -> (Server, DemoSource) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = ServerConfig::loopback();
    config.turn_secret = Some(TurnSecret {
        urls: vec![turn_url],
        secret: secret.to_owned(),
        ttl: Duration::from_secs(600),
    });
    let server = Server::start(config).unwrap();
    let stream = server.stream("demo").unwrap();
    let source = DemoSource::start(stream, DemoOptions::default());
    (server, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_chromium_plays_through_coturn_with_credentials_from_the_shared_secret() {
    let coturn = Coturn::start(SECRET);
    let (server, _source) = server_with_turn(coturn.url(), SECRET);
    let chromium = Chromium::launch().await.unwrap();
    let url = page_url(
        "ws-ice-client.html",
        &format!("src={}&policy=relay", server.ws_url("demo")),
    );
    let page = chromium.open(&url).await.unwrap();
    let report = page
        .wait_for_video(30, PLAY_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\ncoturn log:\n{}", coturn.log()));
    assert_eq!((report.width, report.height), (1280, 720), "{report:?}");

    let pair = page.eval(SELECTED_PAIR_JS).await.unwrap();
    let udp_port = server.udp_addrs()[0].port();
    assert_eq!(pair["localType"], "relay", "selected pair: {pair}");
    assert_eq!(pair["relayProtocol"], "udp", "selected pair: {pair}");
    assert_eq!(pair["remoteType"], "host", "selected pair: {pair}");
    assert_eq!(pair["remoteAddress"], "127.0.0.1", "selected pair: {pair}");
    assert_eq!(
        pair["remotePort"].as_u64(),
        Some(u64::from(udp_port)),
        "selected pair: {pair}"
    );
    // 30 frames of the pattern (which compresses well) came over this pair.
    assert!(
        pair["bytesReceived"].as_u64().unwrap_or(0) > 10_000,
        "selected pair: {pair}"
    );
    // coturn let the viewer allocate with the user name rtcast made: "<expiry>:<viewer id>",
    // the expiry the configured 600 s from now.
    let log = coturn.log();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let allocated = log
        .lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .filter_map(user_of)
        .any(|(expiry, _viewer)| expiry.abs_diff(now + 600) < 60);
    assert!(
        allocated,
        "no allocation with rtcast's credentials in coturn's log:\n{log}"
    );
}

/// The `(expiry, viewer id)` of a coturn log line's `user <EXPIRY:ID>`, if it has one.
fn user_of(line: &str) -> Option<(u64, u64)> {
    let user = line.split_once("user <")?.1.split_once('>')?.0;
    let (expiry, viewer) = user.split_once(':')?;
    Some((expiry.parse().ok()?, viewer.parse().ok()?))
}

/// The other side of the proof: the same page and coturn, but rtcast signs with a secret that
/// is not coturn's. coturn refuses the allocation, a relay-only viewer has no candidate, and
/// nothing plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_chromium_does_not_play_when_the_secret_is_not_coturns() {
    let coturn = Coturn::start(SECRET);
    let (server, _source) = server_with_turn(coturn.url(), "not-the-secret");
    let chromium = Chromium::launch().await.unwrap();
    let url = page_url(
        "ws-ice-client.html",
        &format!("src={}&policy=relay", server.ws_url("demo")),
    );
    let page = chromium.open(&url).await.unwrap();
    let error = page
        .wait_for_video(1, Duration::from_secs(8))
        .await
        .expect_err("played without a valid TURN allocation");
    assert!(
        !page
            .console()
            .iter()
            .any(|l| l.contains("local candidate:") && l.contains("typ relay")),
        "{error}"
    );
    // The first ALLOCATE of any client is answered 401 (the challenge); the one carrying
    // rtcast's user name must be refused too.
    let log = coturn.log();
    assert!(
        log.lines()
            .any(|l| l.contains("error 401") && user_of(l).is_some()),
        "coturn did not refuse rtcast's credentials:\n{log}"
    );
    assert!(
        !log.contains("ALLOCATE processed, success"),
        "coturn allocated:\n{log}"
    );
}
