//! Network namespaces the tests make for themselves (root, `ip netns`): a namespace with nothing
//! but its own loopback, where a test drops UDP with nftables and runs the server and Chromium
//! together (every socket and process of [`Netns::enter`]'s closure is inside it).

use std::ffi::CString;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes a namespace with its loopback up. The error says why it could not be made (not
    /// root, no `ip`, no namespaces in this kernel or container): tests skip with it.
    pub fn create(tag: &str) -> Result<Netns, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rtcast-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name])
            .map_err(|e| format!("cannot make a network namespace: {e}"))?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace (`ip netns exec`).
    pub fn exec(&self, argv: &[&str]) -> Result<(), String> {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(argv);
        run("ip", &args)
    }

    /// Drops every UDP packet leaving anything in the namespace (its loopback included), with
    /// nftables: what a firewall that blocks UDP does.
    pub fn drop_udp(&self) -> Result<(), String> {
        let rules = "table inet rtcast_test {\n\
                       chain out { type filter hook output priority 0; meta l4proto udp drop; }\n\
                     }\n";
        let path = std::env::temp_dir().join(format!("{}.nft", self.name));
        std::fs::write(&path, rules).map_err(|e| e.to_string())?;
        let res = self.exec(&["nft", "-f", path.to_str().unwrap_or_default()]);
        let _ = std::fs::remove_file(&path);
        res.map_err(|e| {
            format!(
                "cannot drop UDP with nftables ({e}); scripts/test.sh installs Debian's nftables"
            )
        })
    }

    /// Links this namespace to `other` with a veth pair, addressed `here` on this side and
    /// `there` on the other (`10.77.0.1/24`); returns the name of this side's interface.
    pub fn link_to(&self, other: &Netns, here: &str, there: &str) -> Result<String, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Interface names have at most 15 characters.
        let tag = format!(
            "rv{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (a, b) = (format!("{tag}a"), format!("{tag}b"));
        run(
            "ip",
            &[
                "link",
                "add",
                &a,
                "netns",
                &self.name,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &other.name,
            ],
        )?;
        for (ns, dev, addr) in [(self, &a, here), (other, &b, there)] {
            ns.exec(&["ip", "addr", "add", addr, "dev", dev])?;
            ns.exec(&["ip", "link", "set", dev, "up"])?;
        }
        Ok(a)
    }

    /// Limits what leaves `dev` to `rate` (`800kbit`) with a token bucket filter (`tc tbf`)
    /// whose queue holds 200 ms: a slow access link. (This kernel has no `netem`.)
    pub fn limit_egress(&self, dev: &str, rate: &str) -> Result<(), String> {
        self.exec(&[
            "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "10kb",
            "latency", "200ms",
        ])
        .map_err(|e| format!("cannot shape {dev} with tc ({e}); Debian's iproute2 has tc"))
    }

    /// Runs `f` on a thread that has entered the namespace, and returns what it returns. Threads
    /// it starts (a tokio runtime's) and processes it spawns (Chromium) are inside too.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let c = CString::new(path.clone()).expect("a path without NUL");
                    // SAFETY: a plain open(2) of a path we own; the descriptor is closed below.
                    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                    assert!(
                        fd >= 0,
                        "cannot open {path}: {}",
                        std::io::Error::last_os_error()
                    );
                    // SAFETY: setns(2) on this thread only, with a namespace descriptor.
                    let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                    let err = std::io::Error::last_os_error();
                    // SAFETY: closing the descriptor opened above, once.
                    unsafe { libc::close(fd) };
                    assert_eq!(rc, 0, "cannot enter {path}: {err}");
                    f()
                })
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "delete", &self.name]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
