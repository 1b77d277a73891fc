//! The viewer limits of a server, shared by its media loops: each loop admits viewers against the
//! same counts, so `max_viewers`, `max_viewers_per_stream`, `max_connecting` and
//! `max_connecting_per_address` hold whatever the number of loops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::config::Limits;
use crate::{Error, Result};

/// Viewer sessions held by all loops: in total and per stream (connecting or connected), and
/// per remote address those still connecting.
#[derive(Debug)]
pub(crate) struct Admission {
    max_viewers: usize,
    max_per_stream: usize,
    max_connecting_per_address: usize,
    max_connecting: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_stream: HashMap<u64, usize>,
    /// Sessions signalled from an address whose media has not connected yet.
    connecting: HashMap<IpAddr, usize>,
    /// The sum of `connecting`.
    connecting_total: usize,
}

impl Admission {
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_viewers: limits.max_viewers,
            max_per_stream: limits.max_viewers_per_stream,
            max_connecting_per_address: limits.max_connecting_per_address,
            max_connecting: limits.max_connecting,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Takes a place for a new viewer of `stream` (named `name` in the error), connecting from
    /// `from`, or says which limit is reached.
    pub fn admit(&self, stream: u64, name: &str, from: IpAddr) -> Result<()> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_viewers {
            return Err(Error::LimitReached(format!(
                "the server has its maximum of {} viewers",
                self.max_viewers
            )));
        }
        if c.per_stream.get(&stream).copied().unwrap_or(0) >= self.max_per_stream {
            return Err(Error::LimitReached(format!(
                "stream '{name}' has its maximum of {} viewers",
                self.max_per_stream
            )));
        }
        if c.connecting_total >= self.max_connecting {
            return Err(Error::LimitReached(format!(
                "{} viewers are already connecting to the server (max_connecting); \
                 try again in a few seconds",
                self.max_connecting
            )));
        }
        if c.connecting.get(&from).copied().unwrap_or(0) >= self.max_connecting_per_address {
            return Err(Error::LimitReached(format!(
                "{} viewers from {from} are already connecting (max_connecting_per_address); \
                 try again once they have connected",
                self.max_connecting_per_address
            )));
        }
        *c.per_stream.entry(stream).or_default() += 1;
        *c.connecting.entry(from).or_default() += 1;
        c.connecting_total += 1;
        c.total += 1;
        Ok(())
    }

    /// A viewer from `from` has connected: it no longer counts as connecting.
    pub fn connected(&self, from: IpAddr) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        Self::done_connecting(&mut c, from);
    }

    /// Gives back the place of a viewer of `stream` from `from` that is gone (`connecting`: it
    /// never connected).
    pub fn release(&self, stream: u64, from: IpAddr, connecting: bool) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if connecting {
            Self::done_connecting(&mut c, from);
        }
        if let Some(n) = c.per_stream.get_mut(&stream) {
            *n -= 1;
            if *n == 0 {
                c.per_stream.remove(&stream);
            }
            c.total -= 1;
        }
    }

    fn done_connecting(c: &mut Counts, from: IpAddr) {
        if let Some(n) = c.connecting.get_mut(&from) {
            *n -= 1;
            c.connecting_total -= 1;
            if *n == 0 {
                c.connecting.remove(&from);
            }
        }
    }

    /// Addresses with sessions still connecting (for leak checks).
    #[cfg(test)]
    pub fn connecting_addresses(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connecting
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(viewers: usize, per_stream: usize, per_address: usize) -> Limits {
        Limits {
            max_viewers: viewers,
            max_viewers_per_stream: per_stream,
            max_connecting_per_address: per_address,
            ..Limits::default()
        }
    }

    #[test]
    fn the_server_may_have_only_so_many_viewers_connecting_at_once() {
        let a = Admission::new(&Limits {
            max_connecting: 2,
            ..limits(100, 100, 100)
        });
        a.admit(1, "s", A).unwrap();
        a.admit(1, "s", B).unwrap();
        let e = a.admit(2, "t", B).unwrap_err().to_string();
        assert!(
            e.contains("2 viewers are already connecting to the server"),
            "{e}"
        );
        // A connected viewer no longer counts; nor does one that gave up.
        a.connected(A);
        a.admit(2, "t", B).unwrap();
        a.release(2, B, true);
        a.admit(2, "t", A).unwrap();
        assert!(a.admit(2, "t", A).is_err());
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn limits_hold_and_places_come_back() {
        let a = Admission::new(&limits(3, 2, 10));
        a.admit(1, "one", A).unwrap();
        a.admit(1, "one", A).unwrap();
        let e = a.admit(1, "one", A).unwrap_err().to_string();
        assert!(e.contains("stream 'one' has its maximum of 2"), "{e}");
        a.admit(2, "two", B).unwrap();
        let e = a.admit(3, "three", B).unwrap_err().to_string();
        assert!(e.contains("maximum of 3 viewers"), "{e}");
        a.release(1, A, true);
        a.admit(3, "three", B).unwrap();
    }

    #[test]
    fn an_address_may_have_only_so_many_viewers_connecting_at_once() {
        let a = Admission::new(&limits(100, 100, 2));
        a.admit(1, "s", A).unwrap();
        a.admit(1, "s", A).unwrap();
        let e = a.admit(1, "s", A).unwrap_err().to_string();
        assert!(
            e.contains("2 viewers from 192.0.2.1 are already connecting"),
            "{e}"
        );
        // Another address is not affected.
        a.admit(1, "s", B).unwrap();
        // Once one has connected, another may come; a connected viewer leaving frees no
        // connecting place twice.
        a.connected(A);
        a.admit(1, "s", A).unwrap();
        a.release(1, A, false);
        assert!(a.admit(1, "s", A).is_err());
        a.release(1, A, true);
        a.release(1, A, true);
        a.release(1, B, true);
        assert_eq!(a.connecting_addresses(), 0);
    }
}
