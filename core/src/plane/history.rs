//! What NACKs are answered from: one buffer of recent video packets per stream, shared by all of
//! its viewers (the payloads are the same for everyone), and per viewer the few runs that map its
//! own sequence numbers onto the stream's packet indices.

use std::collections::VecDeque;

use bytes::Bytes;

/// Video packets kept per stream: about 2.5 s of a 2 Mbit/s stream, longer than any round trip
/// at which a retransmission still arrives in time.
pub(crate) const HISTORY_PACKETS: usize = 512;
/// Runs of consecutive packets remembered per viewer (a new run starts each time it resumes on
/// a keyframe).
const MAX_RUNS: usize = 4;

/// One video packet as the stream sent it.
#[derive(Debug, Clone)]
pub(crate) struct SentPacket {
    pub payload: Bytes,
    pub timestamp: u32,
    pub marker: bool,
}

/// The stream's recent video packets by index (a counter of the stream's video packets).
#[derive(Debug)]
pub(crate) struct PacketHistory {
    packets: VecDeque<SentPacket>,
    /// Index of `packets[0]`.
    first: u64,
}

impl Default for PacketHistory {
    fn default() -> Self {
        Self {
            packets: VecDeque::with_capacity(HISTORY_PACKETS),
            first: 0,
        }
    }
}

impl PacketHistory {
    /// Index the next packet will get.
    pub fn next_index(&self) -> u64 {
        self.first + self.packets.len() as u64
    }

    /// Records a packet; returns its index.
    pub fn push(&mut self, packet: SentPacket) -> u64 {
        if self.packets.len() == HISTORY_PACKETS {
            self.packets.pop_front();
            self.first += 1;
        }
        self.packets.push_back(packet);
        self.next_index() - 1
    }

    pub fn get(&self, index: u64) -> Option<&SentPacket> {
        let i = index.checked_sub(self.first)?;
        self.packets.get(usize::try_from(i).ok()?)
    }
}

/// A run of a viewer's video packets whose sequence numbers follow the stream's indices.
#[derive(Debug, Clone, Copy)]
struct Run {
    seq: u16,
    index: u64,
    len: u32,
}

/// Maps a viewer's video sequence numbers back to stream packet indices.
#[derive(Debug, Default)]
pub(crate) struct SeqMap {
    runs: VecDeque<Run>,
}

impl SeqMap {
    /// The viewer's packet `seq` is the stream's packet `index`.
    pub fn record(&mut self, seq: u16, index: u64) {
        if let Some(last) = self.runs.back_mut() {
            if last.seq.wrapping_add(last.len as u16) == seq
                && last.index + last.len as u64 == index
            {
                last.len += 1;
                return;
            }
        }
        if self.runs.len() == MAX_RUNS {
            self.runs.pop_front();
        }
        self.runs.push_back(Run { seq, index, len: 1 });
    }

    /// Forgets the current run: packets sent from now on are not retransmittable until the
    /// next [`SeqMap::record`] (a late joiner's catch-up, whose timestamps were rewritten).
    pub fn break_run(&mut self) {
        if self.runs.len() == MAX_RUNS {
            self.runs.pop_front();
        }
        self.runs.push_back(Run {
            seq: 0,
            index: 0,
            len: 0,
        });
    }

    /// The stream index of the viewer's packet `seq`, newest run first.
    pub fn index_of(&self, seq: u16) -> Option<u64> {
        self.runs.iter().rev().find_map(|r| {
            let d = seq.wrapping_sub(r.seq) as u32;
            (d < r.len).then(|| r.index + d as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u8) -> SentPacket {
        SentPacket {
            payload: Bytes::from(vec![n]),
            timestamp: n as u32,
            marker: false,
        }
    }

    #[test]
    fn history_keeps_the_newest_packets_by_index() {
        let mut h = PacketHistory::default();
        for i in 0..HISTORY_PACKETS + 10 {
            assert_eq!(h.push(packet(i as u8)), i as u64);
        }
        assert!(h.get(9).is_none(), "evicted");
        assert_eq!(h.get(10).unwrap().payload[0], 10);
        let last = (HISTORY_PACKETS + 9) as u64;
        assert_eq!(h.get(last).unwrap().payload[0], last as u8);
        assert!(h.get(last + 1).is_none());
    }

    #[test]
    fn sequence_numbers_map_to_indices_across_wraparound_and_gaps() {
        let mut m = SeqMap::default();
        for i in 0..4u16 {
            m.record(65534u16.wrapping_add(i), 100 + i as u64);
        }
        assert_eq!(m.index_of(65534), Some(100));
        assert_eq!(m.index_of(1), Some(103));
        assert_eq!(m.index_of(2), None);
        // The viewer skipped stream packets (it waited for a keyframe): a new run.
        m.record(2, 200);
        assert_eq!(m.index_of(2), Some(200));
        assert_eq!(m.index_of(0), Some(102));
        // Catch-up packets are not retransmittable.
        m.break_run();
        assert_eq!(m.index_of(3), None);
    }
}
