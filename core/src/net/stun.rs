//! Just enough STUN (RFC 8489) to route a datagram to its viewer: every viewer shares one UDP port,
//! so a binding request is matched to a viewer by the local ufrag in its USERNAME attribute.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// Whether a datagram is a STUN message (RFC 7983 demultiplexing: first byte 0..=3, magic cookie).
#[cfg(test)]
fn is_stun(data: &[u8]) -> bool {
    stun_header(data).is_some()
}

/// The 20-byte header of a STUN message and the attributes after it.
fn stun_header(data: &[u8]) -> Option<(&[u8; 20], &[u8])> {
    let (header, attrs) = data.split_first_chunk::<20>()?;
    (header[0] < 4 && header[4..8] == MAGIC_COOKIE).then_some((header, attrs))
}

/// The local ufrag of a STUN request: the part of USERNAME before the colon. Responses carry no
/// USERNAME and return `None`.
pub(crate) fn local_ufrag(data: &[u8]) -> Option<&str> {
    let (header, body) = stun_header(data)?;
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attrs = body.get(..len)?;
    while let Some((&[t0, t1, l0, l1], rest)) = attrs.split_first_chunk::<4>() {
        let typ = u16::from_be_bytes([t0, t1]);
        let alen = usize::from(u16::from_be_bytes([l0, l1]));
        let value = rest.get(..alen)?;
        if typ == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        // Attributes are padded to 4 bytes; a last one may lack its padding.
        attrs = rest.get(alen.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        // A PRIORITY attribute after it, to check the walk.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_the_local_ufrag_of_a_binding_request() {
        let m = binding_request("abcDEF123:remote9");
        assert!(is_stun(&m));
        assert_eq!(local_ufrag(&m), Some("abcDEF123"));
    }

    #[test]
    fn dtls_rtp_and_truncated_messages_are_not_routed_by_ufrag() {
        let dtls = [
            22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(!is_stun(&dtls));
        let mut rtp = vec![0x80u8, 96];
        rtp.extend_from_slice(&[0; 30]);
        assert!(!is_stun(&rtp));
        let m = binding_request("abc:def");
        assert_eq!(local_ufrag(&m[..m.len() - 12]), None);
    }
}
