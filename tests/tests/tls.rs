//! HTTPS/WSS: with a certificate and key in PEM files, the same port serves the WebSocket
//! protocol over TLS and a viewer plays through `wss://`; with the default ports that one TCP
//! port also carries ICE-TCP next to TLS.

use std::time::Duration;

use rtcast::{Server, ServerConfig, TlsConfig};
use rtcast_e2e::small_demo;
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_plays_over_wss_with_the_configured_certificate() {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("rtcast-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, key.cert.pem()).unwrap();
    std::fs::write(&key_pem, key.signing_key.serialize_pem()).unwrap();

    let mut config = ServerConfig::loopback();
    config.tls = Some(TlsConfig { cert_pem, key_pem });
    let server = Server::start(config).unwrap();
    let stream = server.stream("secure").unwrap();
    let _source = small_demo(stream);
    let url = server.ws_url("secure");
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let mut opts = ViewerOptions::new(url, Duration::from_secs(15));
    opts.tls_ca_der = Some(key.cert.der().to_vec());
    opts.stop_after_frames = Some(10);
    let report = run_viewer(opts).await.unwrap();
    assert!(report.connected);
    assert_eq!(report.video_frames, 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_wss_and_ice_tcp_side_by_side() {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("rtcast-tls-tcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, key.cert.pem()).unwrap();
    std::fs::write(&key_pem, key.signing_key.serialize_pem()).unwrap();

    // A port number free for TCP and UDP; the UDP and ICE-TCP ports default to it.
    let port = loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let mut config = ServerConfig::loopback();
    config.port = port;
    config.udp_port = None;
    config.tls = Some(TlsConfig { cert_pem, key_pem });
    let server = Server::start(config).unwrap();
    assert_eq!(server.tcp_addrs()[0].port(), port);
    let stream = server.stream("secure").unwrap();
    let _source = small_demo(stream);
    let mut opts = ViewerOptions::new(server.ws_url("secure"), Duration::from_secs(15));
    opts.tls_ca_der = Some(key.cert.der().to_vec());
    opts.stop_after_frames = Some(10);
    opts.ice_tcp = true;
    let report = run_viewer(opts).await.unwrap();
    assert_eq!(report.video_frames, 10, "{report:?}");
    assert!(report.tcp_packets >= report.video_packets, "{report:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_certificate_fails_with_a_message_naming_the_files() {
    let mut config = ServerConfig::loopback();
    config.tls = Some(TlsConfig {
        cert_pem: "/nonexistent/cert.pem".into(),
        key_pem: "/nonexistent/key.pem".into(),
    });
    let err = Server::start(config).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
