//! H.264 Annex B parsing: just enough to validate what a host pushes, find keyframes and keep the
//! parameter sets a late joiner needs in front of the next IDR.

use bytes::{Bytes, BytesMut};

use crate::{Error, Result};

/// NAL unit types rtcast cares about (ITU-T H.264 table 7-1).
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture: a keyframe.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// Returns the NAL units of an Annex B buffer, without their start codes.
///
/// Fails when the data does not begin with a start code (`00 00 01` or `00 00 00 01`): that is the
/// mistake hosts make most (pushing AVCC length-prefixed data from an MP4 demuxer).
pub fn split_annex_b(data: &[u8]) -> Result<Vec<&[u8]>> {
    let (lead, mut start) = find_start_code(data, 0).ok_or_else(|| not_annex_b(data))?;
    if data.iter().take(lead).any(|&b| b != 0) {
        return Err(not_annex_b(data));
    }
    let mut nals = Vec::new();
    // find_start_code returns positions at or after `start`, inside `data`.
    while let Some((sc_pos, next_start)) = find_start_code(data, start) {
        push_nal(&mut nals, data.get(start..sc_pos).unwrap_or_default());
        start = next_start;
    }
    push_nal(&mut nals, data.get(start..).unwrap_or_default());
    if nals.is_empty() {
        return Err(Error::InvalidData(
            "H.264 access unit holds start codes but no NAL unit".into(),
        ));
    }
    Ok(nals)
}

fn push_nal<'a>(nals: &mut Vec<&'a [u8]>, nal: &'a [u8]) {
    // Trailing zero bytes belong to the next start code (zero_byte) or are padding.
    if let Some(last) = nal.iter().rposition(|&b| b != 0) {
        nals.extend(nal.get(..=last));
    }
}

fn not_annex_b(data: &[u8]) -> Error {
    let head: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Error::InvalidData(format!(
        "data is not H.264 Annex B: it must start with a 00 00 01 or 00 00 00 01 start code, \
         it starts with [{}] ({} bytes); length-prefixed (AVCC/MP4) data must be converted first",
        head.join(" "),
        data.len()
    ))
}

/// Finds the next start code at or after `from`: returns (position of its first byte, position
/// just after it).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(&[b0, b1, b2]) = data.get(i..i + 3) {
        if b0 == 0 && b1 == 0 {
            if b2 == 1 {
                let begin = if i > from && data.get(i - 1) == Some(&0) {
                    i - 1
                } else {
                    i
                };
                return Some((begin, i + 3));
            }
            if b2 == 0 {
                i += 1;
                continue;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// Splits an H.264 elementary stream (an Annex B `.h264` file) into access units, each in Annex
/// B form as [`crate::Stream::push_h264`] takes them. An access unit begins at an access unit
/// delimiter, SEI or parameter set that follows a picture, or at a slice whose
/// `first_mb_in_slice` is 0 (H.264 §7.4.1.2.3); pictures of several slices stay together.
pub fn access_units(stream: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut has_picture = false;
    for nal in split_annex_b(stream)? {
        let typ = nal_unit_type(nal);
        let vcl = matches!(typ, nal_type::SLICE | nal_type::IDR);
        // first_mb_in_slice is the slice header's first ue(v): 0 is the single bit 1.
        let first_slice = vcl && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_unit = match typ {
            nal_type::AUD | nal_type::SPS | nal_type::PPS | nal_type::SEI => has_picture,
            _ => first_slice && has_picture,
        };
        if starts_unit {
            units.push(std::mem::take(&mut current));
            has_picture = false;
        }
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(nal);
        has_picture |= vcl;
    }
    if has_picture {
        units.push(current);
    }
    Ok(units)
}

/// The type of a NAL unit (its low five header bits).
pub fn nal_unit_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| h & 0x1f)
}

/// One pushed access unit, checked and ready for the packetizer.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// NAL units without start codes, parameter sets first for a keyframe.
    pub nals: Vec<Bytes>,
    /// Whether the unit holds an IDR slice.
    pub keyframe: bool,
}

/// Remembers the latest SPS and PPS of a stream so that every IDR can carry them: browsers cannot
/// decode an IDR whose parameter sets they never saw, and a late joiner never saw the first ones.
#[derive(Debug, Default)]
pub struct ParameterSets {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
}

impl ParameterSets {
    /// Parses an Annex B access unit, learns its parameter sets and returns it with SPS/PPS in
    /// front of an IDR when the host left them out.
    pub fn access_unit(&mut self, data: &[u8]) -> Result<AccessUnit> {
        let raw = split_annex_b(data)?;
        let mut keyframe = false;
        let (mut has_sps, mut has_pps) = (false, false);
        let mut nals = Vec::with_capacity(raw.len() + 2);
        for nal in raw {
            if let Some(header) = nal.first().filter(|&&h| h & 0x80 != 0) {
                return Err(Error::InvalidData(format!(
                    "H.264 NAL unit header 0x{header:02x} has its forbidden_zero_bit set: \
                     the data is not H.264 (or it is corrupt)"
                )));
            }
            match nal_unit_type(nal) {
                nal_type::IDR => keyframe = true,
                nal_type::SPS => {
                    has_sps = true;
                    self.sps = Some(Bytes::copy_from_slice(nal));
                }
                nal_type::PPS => {
                    has_pps = true;
                    self.pps = Some(Bytes::copy_from_slice(nal));
                }
                // Delimiters carry nothing a WebRTC receiver needs.
                nal_type::AUD => continue,
                _ => {}
            }
            nals.push(Bytes::copy_from_slice(nal));
        }
        if keyframe && !(has_sps && has_pps) {
            let mut front = Vec::with_capacity(2);
            if !has_sps {
                front.extend(self.sps.clone());
            }
            if !has_pps {
                front.extend(self.pps.clone());
            }
            nals.splice(0..0, front);
        }
        Ok(AccessUnit { nals, keyframe })
    }
}

/// Joins NAL units back into one Annex B buffer (4-byte start codes), as a payloader reads it.
pub fn to_annex_b(nals: &[Bytes]) -> Bytes {
    let len = nals.iter().map(|n| n.len() + 4).sum();
    let mut out = BytesMut::with_capacity(len);
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    fn annex_b(nals: &[&[u8]], short_codes: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            if short_codes {
                v.extend_from_slice(&[0, 0, 1]);
            } else {
                v.extend_from_slice(&[0, 0, 0, 1]);
            }
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn splits_four_and_three_byte_start_codes() {
        for short in [false, true] {
            let data = annex_b(&[SPS, PPS, IDR], short);
            assert_eq!(split_annex_b(&data).unwrap(), vec![SPS, PPS, IDR]);
        }
    }

    #[test]
    fn nal_payload_with_zero_bytes_inside_survives() {
        let nal: &[u8] = &[0x65, 0x00, 0x00, 0x03, 0x01, 0x00, 0x02];
        let data = annex_b(&[nal, P], false);
        assert_eq!(split_annex_b(&data).unwrap(), vec![nal, P]);
    }

    #[test]
    fn rejects_length_prefixed_data_with_a_message_that_says_so() {
        let avcc = [0x00, 0x00, 0x00, 0x05, 0x65, 0x88, 0x84, 0x00, 0x33];
        let err = split_annex_b(&avcc).unwrap_err().to_string();
        assert!(err.contains("not H.264 Annex B"), "{err}");
        assert!(err.contains("AVCC"), "{err}");
        assert!(split_annex_b(&[]).is_err());
        assert!(split_annex_b(&[0x65, 0, 0, 1, 0x41]).is_err());
    }

    #[test]
    fn rejects_forbidden_bit() {
        let mut ps = ParameterSets::default();
        let data = annex_b(&[&[0xe5, 1, 2]], false);
        assert!(ps.access_unit(&data).is_err());
    }

    #[test]
    fn idr_without_parameter_sets_gets_the_last_ones_in_front() {
        let mut ps = ParameterSets::default();
        let first = ps.access_unit(&annex_b(&[SPS, PPS, IDR], false)).unwrap();
        assert!(first.keyframe);
        assert_eq!(first.nals.len(), 3);

        let p = ps.access_unit(&annex_b(&[P], false)).unwrap();
        assert!(!p.keyframe);
        assert_eq!(p.nals, vec![Bytes::from_static(P)]);

        let bare_idr = ps.access_unit(&annex_b(&[IDR], false)).unwrap();
        assert!(bare_idr.keyframe);
        let types: Vec<u8> = bare_idr.nals.iter().map(|n| nal_unit_type(n)).collect();
        assert_eq!(types, vec![nal_type::SPS, nal_type::PPS, nal_type::IDR]);
    }

    #[test]
    fn an_elementary_stream_splits_into_access_units_at_first_slices() {
        let sps: &[u8] = &[0x67, 0x42, 0xc0, 0x1f];
        let pps: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
        let idr: &[u8] = &[0x65, 0x88, 0x01];
        // A picture of two slices: the second has first_mb_in_slice != 0 (first bit 0).
        let p1: &[u8] = &[0x41, 0x9a, 0x02];
        let p1b: &[u8] = &[0x41, 0x12, 0x02];
        let p2: &[u8] = &[0x41, 0x9b, 0x04];
        let file = annex_b(&[sps, pps, idr, p1, p1b, p2], false);
        let units = access_units(&file).unwrap();
        assert_eq!(units.len(), 3);
        assert_eq!(units[0], annex_b(&[sps, pps, idr], false));
        assert_eq!(units[1], annex_b(&[p1, p1b], false));
        assert_eq!(units[2], annex_b(&[p2], false));
        assert!(access_units(&[1, 2, 3]).is_err());
    }

    #[test]
    fn access_unit_delimiters_are_dropped() {
        let mut ps = ParameterSets::default();
        let au = ps
            .access_unit(&annex_b(&[&[0x09, 0xf0], P], false))
            .unwrap();
        assert_eq!(au.nals, vec![Bytes::from_static(P)]);
    }
}
