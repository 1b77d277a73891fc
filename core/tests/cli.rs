//! The `rtcast` command line: `--help` documents every flag, and `demo --token` protects the
//! stream on both protocols.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn help_lists_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_rtcast"))
        .args(["demo", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--bind",
        "--port",
        "--udp-port",
        "--public-ip",
        "--cert",
        "--key",
        "--size",
        "--fps",
        "--bitrate",
        "--token",
        "--max-viewers",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn demo_with_a_static_token_refuses_viewers_without_it() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtcast"))
        .args([
            "demo",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--udp-port",
            "0",
            "--size",
            "320x240",
            "--token",
            "s3cret",
            "--duration",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    let port: u16 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            let url = l.split("player:").nth(1)?.trim().to_owned();
            url.split(':').nth(2)?.split('/').next()?.parse().ok()
        })
        .expect("the demo prints its player URL");
    let post = |auth: &str| {
        http(
            port,
            &format!(
                "POST /demo/whep HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n{auth}Content-Length: 3\r\nConnection: close\r\n\r\nv=0"
            ),
        )
    };
    let none = post("");
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    let wrong = post("Authorization: Bearer nope\r\n");
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
    // With the token, authorization passes and the (bad) SDP is what gets refused.
    let right = post("Authorization: Bearer s3cret\r\n");
    assert!(right.starts_with("HTTP/1.1 400"), "{right}");
}
