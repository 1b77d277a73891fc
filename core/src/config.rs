//! Server configuration: addresses, TLS, ICE servers handed to viewers, limits and the
//! authorization hook. Every limit has a default and a knob.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::signal::turn::TurnSecret;

/// How a server is started. `ServerConfig::default()` listens on every interface, HTTP port 8080
/// and UDP port 8080.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to bind, `0.0.0.0` (all interfaces) by default. Tests use `127.0.0.1`.
    pub bind: IpAddr,
    /// TCP port of HTTP, WebSocket and (with `tls`) HTTPS/WSS. 0 picks a free port.
    pub port: u16,
    /// UDP port carrying the media of every viewer. `None`: the same number as `port`
    /// (or a free port when that is 0). `Some(0)` picks a free port.
    pub udp_port: Option<u16>,
    /// TCP port of ICE-TCP, for viewers whose network blocks UDP. `None`: the same number as
    /// the UDP media port — served on the HTTP listener when that is the HTTP port (the first
    /// bytes tell ICE-TCP from HTTP and TLS), on a listener of its own otherwise. `Some(0)`
    /// picks a free port.
    pub tcp_port: Option<u16>,
    /// Which candidates viewers are offered (UDP, TCP; the listening addresses, `public_ips`).
    pub candidates: CandidatePolicy,
    /// Public addresses to announce for 1:1 NAT (a cloud VM's public IP), in addition to the
    /// addresses the media sockets listen on.
    pub public_ips: Vec<IpAddr>,
    /// STUN/TURN servers handed to viewers (in the WebSocket `config` and WHEP `Link` headers).
    pub ice_servers: Vec<IceServer>,
    /// A TURN server sharing a secret with rtcast (coturn's `use-auth-secret`): each viewer is
    /// handed it after `ice_servers`, with credentials of its own that expire.
    pub turn_secret: Option<TurnSecret>,
    /// Serve HTTPS/WSS with this certificate and key.
    pub tls: Option<TlsConfig>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Decides whether a viewer may watch; `None` lets everyone in.
    pub authorize: Option<AuthorizeHook>,
    /// Origins allowed to call WHEP and `media_info.json` from another page (CORS). `"*"`
    /// (the default) allows any; otherwise a listed `Origin` is echoed back.
    pub cors_origins: Vec<String>,
    /// Media loops, each on its own thread with its share of the viewers, all on the one UDP
    /// port. 0 (the default): one per CPU core. At most 62.
    pub media_loops: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8080,
            udp_port: None,
            tcp_port: None,
            candidates: CandidatePolicy::default(),
            public_ips: Vec::new(),
            ice_servers: Vec::new(),
            turn_secret: None,
            tls: None,
            limits: Limits::default(),
            authorize: None,
            cors_origins: vec!["*".to_owned()],
            media_loops: 0,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("udp_port", &self.udp_port)
            .field("tcp_port", &self.tcp_port)
            .field("candidates", &self.candidates)
            .field("public_ips", &self.public_ips)
            .field("ice_servers", &self.ice_servers)
            .field("turn_secret", &self.turn_secret)
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .field("authorize", &self.authorize.as_ref().map(|_| "<hook>"))
            .field("cors_origins", &self.cors_origins)
            .field("media_loops", &self.media_loops)
            .finish()
    }
}

impl ServerConfig {
    /// A configuration bound to 127.0.0.1 with free ports: what tests and benchmarks use.
    pub fn loopback() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            udp_port: Some(0),
            ..Self::default()
        }
    }

    /// The number of media loops to run: `media_loops`, or one per core.
    pub(crate) fn loops(&self) -> usize {
        match self.media_loops {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(crate::plane::MAX_LOOPS),
            n => n,
        }
    }

    /// The ICE servers handed to the viewer `viewer` when it signals at `now`: `ice_servers`,
    /// then the TURN server of `turn_secret` with fresh credentials.
    pub(crate) fn ice_servers_for(
        &self,
        now: std::time::SystemTime,
        viewer: crate::ViewerId,
    ) -> Vec<IceServer> {
        let mut servers = self.ice_servers.clone();
        if let Some(turn) = &self.turn_secret {
            servers.push(turn.ice_server(now, &viewer.to_string()));
        }
        servers
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let l = &self.limits;
        let bad = |m: &str| Err(crate::Error::InvalidConfig(m.to_owned()));
        if self.media_loops > crate::plane::MAX_LOOPS {
            return Err(crate::Error::InvalidConfig(format!(
                "media_loops is {}, at most {} (0: one per core)",
                self.media_loops,
                crate::plane::MAX_LOOPS
            )));
        }
        let c = &self.candidates;
        if !c.local && (self.public_ips.is_empty() || !c.public) {
            return bad("the candidate policy offers no address: without \"local\" it needs \"public\" and at least one public_ips entry");
        }
        if let Some(turn) = &self.turn_secret {
            turn.validate().map_err(crate::Error::InvalidConfig)?;
        }
        if l.max_viewers == 0
            || l.max_viewers_per_stream == 0
            || l.max_connecting_per_address == 0
            || l.max_connecting == 0
        {
            return bad("viewer limits (max_viewers, max_viewers_per_stream, max_connecting_per_address, max_connecting) must be at least 1");
        }
        if l.max_ws_message_bytes < 1024 {
            return bad("max_ws_message_bytes must be at least 1024 (an SDP answer is ~1-4 KB)");
        }
        if l.connect_timeout.is_zero() || l.consent_timeout.is_zero() {
            return bad("timeouts must be greater than zero");
        }
        Ok(())
    }
}

/// Which ICE candidates the server offers viewers: on which transports, and with which
/// addresses. Its text form (what C, Python, Node and the command line take) is a list of
/// `udp`, `tcp`, `local`, `public` separated by commas or spaces: transports named without
/// addresses get every address, addresses named without transports every transport. Default:
/// all of them (`"udp,tcp,local,public"`): UDP first (a higher priority), TCP as the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidatePolicy {
    /// Candidates on the UDP media port.
    pub udp: bool,
    /// Passive ICE-TCP candidates on the TCP port (`tcp_port`).
    pub tcp: bool,
    /// The addresses the media sockets listen on (host candidates).
    pub local: bool,
    /// `public_ips` (server-reflexive candidates for 1:1 NAT).
    pub public: bool,
}

impl Default for CandidatePolicy {
    fn default() -> Self {
        Self {
            udp: true,
            tcp: true,
            local: true,
            public: true,
        }
    }
}

impl std::str::FromStr for CandidatePolicy {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        let mut p = Self {
            udp: false,
            tcp: false,
            local: false,
            public: false,
        };
        for word in s.split([',', ' ']).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "udp" => p.udp = true,
                "tcp" => p.tcp = true,
                "local" => p.local = true,
                "public" => p.public = true,
                other => {
                    return Err(crate::Error::InvalidConfig(format!(
                    "unknown candidate kind {other:?} in {s:?} (expected udp, tcp, local, public)"
                )))
                }
            }
        }
        if !p.udp && !p.tcp {
            (p.udp, p.tcp) = (true, true);
        }
        if !p.local && !p.public {
            (p.local, p.public) = (true, true);
        }
        Ok(p)
    }
}

impl fmt::Display for CandidatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = [
            (self.udp, "udp"),
            (self.tcp, "tcp"),
            (self.local, "local"),
            (self.public, "public"),
        ];
        let mut first = true;
        for (on, word) in words {
            if on {
                f.write_str(if first { "" } else { "," })?;
                f.write_str(word)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A STUN or TURN server for viewers, in the shape of the W3C `RTCIceServer` dictionary.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port` / `turn:host:port?transport=udp` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// PEM files for HTTPS/WSS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert_pem: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: PathBuf,
}

/// Limits and timeouts; each has a default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most viewers of one stream (default 1000).
    pub max_viewers_per_stream: usize,
    /// Most viewers of the whole server (default 5000).
    pub max_viewers: usize,
    /// Viewers signalling from one IP address whose media has not connected yet (default 64):
    /// one address cannot hold a stream's places with sessions that never connect. A whole
    /// office behind one NAT starting at once still gets in (each connects within a second).
    pub max_connecting_per_address: usize,
    /// Viewers of the whole server whose media has not connected yet (default 1000): sessions
    /// that signal and never connect (each held until `connect_timeout`) cannot fill the server,
    /// whatever the number of addresses they come from.
    pub max_connecting: usize,
    /// Largest WebSocket message, or WHEP request body, accepted from a viewer (default 64 KiB).
    pub max_ws_message_bytes: usize,
    /// Time from the socket opening to connected media before the viewer is dropped (default 15 s).
    pub connect_timeout: Duration,
    /// Time without ICE consent from a connected viewer before it is reaped (default 10 s).
    pub consent_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_viewers_per_stream: 1000,
            max_viewers: 5000,
            max_connecting_per_address: 64,
            max_connecting: 1000,
            max_ws_message_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(15),
            consent_timeout: Duration::from_secs(10),
        }
    }
}

/// Which signalling protocol a viewer came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Flussonic's WebSocket protocol (`/STREAM/webrtc`).
    WebSocket,
    /// WHEP (`/STREAM/whep`).
    Whep,
}

impl Protocol {
    /// Lower-case name: "websocket" or "whep".
    pub fn name(self) -> &'static str {
        match self {
            Protocol::WebSocket => "websocket",
            Protocol::Whep => "whep",
        }
    }
}

/// What the authorization hook is asked about.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Stream name.
    pub stream: String,
    /// `?token=` of the WebSocket URL or the WHEP `Authorization: Bearer` value.
    pub token: Option<String>,
    /// Remote address of the viewer's signalling connection.
    pub remote: SocketAddr,
    /// Signalling protocol.
    pub protocol: Protocol,
}

/// Longest the authorization hook may take: past it the viewer is refused (the hook's call is
/// left to finish on its own).
pub const AUTHORIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Decides whether a viewer may watch. Runs on a thread of the server's blocking pool, one call
/// per connecting viewer: a slow hook delays only the viewer it decides about; one that takes
/// longer than [`AUTHORIZE_TIMEOUT`] refuses it.
pub type AuthorizeHook = Arc<dyn Fn(&AuthRequest) -> bool + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_policies_parse_and_print() {
        let all: CandidatePolicy = "udp,tcp,local,public".parse().unwrap();
        assert_eq!(all, CandidatePolicy::default());
        assert_eq!(all.to_string(), "udp,tcp,local,public");
        let tcp: CandidatePolicy = "tcp".parse().unwrap();
        assert!(!tcp.udp && tcp.tcp && tcp.local && tcp.public);
        let p: CandidatePolicy = "UDP public".parse().unwrap();
        assert_eq!(p.to_string(), "udp,public");
        assert_eq!("".parse::<CandidatePolicy>().unwrap(), all);
        let e = "udp,quic".parse::<CandidatePolicy>().unwrap_err();
        assert!(e.to_string().contains("\"quic\""), "{e}");
    }

    #[test]
    fn a_policy_without_any_address_is_refused() {
        let mut c = ServerConfig::loopback();
        c.candidates = "udp,public".parse().unwrap();
        assert!(c.validate().is_err());
        c.public_ips.push("203.0.113.7".parse().unwrap());
        c.validate().unwrap();
    }
}
