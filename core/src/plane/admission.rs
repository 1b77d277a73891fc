//! The viewer limits of a server, shared by its media loops: each loop admits viewers against the
//! same counts, so `max_viewers` and `max_viewers_per_stream` hold whatever the number of loops.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::Limits;
use crate::{Error, Result};

/// Viewer sessions (connecting or connected) held by all loops, in total and per stream.
#[derive(Debug)]
pub(crate) struct Admission {
    max_viewers: usize,
    max_per_stream: usize,
    counts: Mutex<(usize, HashMap<u64, usize>)>,
}

impl Admission {
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_viewers: limits.max_viewers,
            max_per_stream: limits.max_viewers_per_stream,
            counts: Mutex::new((0, HashMap::new())),
        }
    }

    /// Takes a place for a new viewer of `stream` (named `name` in the error), or says which
    /// limit is reached.
    pub fn admit(&self, stream: u64, name: &str) -> Result<()> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 >= self.max_viewers {
            return Err(Error::LimitReached(format!(
                "the server has its maximum of {} viewers",
                self.max_viewers
            )));
        }
        let n = c.1.entry(stream).or_default();
        if *n >= self.max_per_stream {
            return Err(Error::LimitReached(format!(
                "stream '{name}' has its maximum of {} viewers",
                self.max_per_stream
            )));
        }
        *n += 1;
        c.0 += 1;
        Ok(())
    }

    /// Gives back the place of a viewer of `stream` that is gone.
    pub fn release(&self, stream: u64) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.1.get_mut(&stream) {
            *n -= 1;
            if *n == 0 {
                c.1.remove(&stream);
            }
            c.0 -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_over_streams_and_places_come_back() {
        let a = Admission::new(&Limits {
            max_viewers: 3,
            max_viewers_per_stream: 2,
            ..Limits::default()
        });
        a.admit(1, "a").unwrap();
        a.admit(1, "a").unwrap();
        let e = a.admit(1, "a").unwrap_err().to_string();
        assert!(e.contains("stream 'a' has its maximum of 2"), "{e}");
        a.admit(2, "b").unwrap();
        let e = a.admit(3, "c").unwrap_err().to_string();
        assert!(e.contains("server has its maximum of 3"), "{e}");
        a.release(1);
        a.admit(3, "c").unwrap();
        a.release(7); // unknown: nothing happens
        assert_eq!(a.counts.lock().unwrap().0, 3);
    }
}
