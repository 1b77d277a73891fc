//! A viewer's SRTP protection. The RTP we send is sealed here, in place in the send buffer
//! ([`RtpSealer`]: RFC 3711 AES-CM/HMAC-SHA1 and RFC 7714 AES-GCM over the crypto provider's
//! primitives, no allocation and no copy per packet); RTCP both ways goes through webrtc-rs
//! `rtc-srtp` contexts (a few packets a second). The keys come from the DTLS handshake.

use bytes::BytesMut;
use rtc::crypto::{
    AeadAlgorithm, AeadCipher, BlockCipherAlgorithm, HmacAlgorithm, Mac, RTCCrypto, StreamCipher,
    StreamCipherAlgorithm,
};
use rtc::srtp::context::Context;
use rtc::srtp::option::srtcp_replay_protection;
use rtc::srtp::protection_profile::ProtectionProfile;

use crate::{Error, Result};

/// Replay window for the viewer's RTCP (packets).
const SRTCP_REPLAY_WINDOW: usize = 64;

/// Master keys and salts of both directions, as exported from DTLS.
#[derive(Clone)]
pub(crate) struct SrtpKeys {
    pub profile: ProtectionProfile,
    pub local_key: Vec<u8>,
    pub local_salt: Vec<u8>,
    pub remote_key: Vec<u8>,
    pub remote_salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SrtpKeys")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Protection {
    rtp: RtpSealer,
    local: Context,
    remote: Context,
}

impl Protection {
    pub fn new(keys: &SrtpKeys, crypto: &dyn RTCCrypto) -> Result<Self> {
        let err = |e: rtc::shared::error::Error| Error::WebRtc(format!("SRTP: {e}"));
        Ok(Self {
            rtp: RtpSealer::new(keys, crypto)?,
            local: Context::new(
                &keys.local_key,
                &keys.local_salt,
                keys.profile,
                None,
                None,
                crypto,
            )
            .map_err(err)?,
            remote: Context::new(
                &keys.remote_key,
                &keys.remote_salt,
                keys.profile,
                None,
                Some(srtcp_replay_protection(SRTCP_REPLAY_WINDOW)),
                crypto,
            )
            .map_err(err)?,
        })
    }

    /// Bytes an RTP packet grows by when sealed (its authentication tag).
    pub fn rtp_overhead(&self) -> usize {
        self.rtp.overhead()
    }

    /// Encrypts the plain RTP packet that is all of `packet` in place and appends its tag
    /// (`packet` must have [`Protection::rtp_overhead`] bytes of spare capacity, or it grows).
    /// `header_len`: its header's length with extensions; `ssrc`, `seq`: as in that header.
    pub fn seal_rtp(
        &mut self,
        packet: &mut BytesMut,
        header_len: usize,
        ssrc: u32,
        seq: u16,
    ) -> Result<()> {
        self.rtp.seal(packet, header_len, ssrc, seq)
    }

    /// Encrypts one compound RTCP packet.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut> {
        self.local
            .encrypt_rtcp(packet)
            .map_err(|e| Error::WebRtc(format!("SRTCP: {e}")))
    }

    /// Decrypts and authenticates one compound RTCP packet from the viewer.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut> {
        self.remote
            .decrypt_rtcp(packet)
            .map_err(|e| Error::WebRtc(format!("SRTCP: {e}")))
    }
}

/// Most SSRCs one sealer keeps a rollover counter for (a viewer's video and audio, with room).
const MAX_SSRCS: usize = 8;

/// The cipher of one SRTP protection profile, keyed with the session keys.
enum Cipher {
    /// RFC 7714 (AEAD_AES_128_GCM, AEAD_AES_256_GCM): the header is the associated data.
    Gcm {
        aead: Box<dyn AeadCipher>,
        salt: [u8; 12],
    },
    /// RFC 3711 (AES_CM_128_HMAC_SHA1_80): AES counter mode, then HMAC-SHA1 over the packet and
    /// the rollover counter, truncated.
    CmSha1 {
        ctr: Box<dyn StreamCipher>,
        mac: Box<dyn Mac>,
        salt: [u8; 14],
        tag_len: usize,
    },
}

/// Seals the RTP packets one viewer is sent, in place.
pub(crate) struct RtpSealer {
    cipher: Cipher,
    /// Per SSRC, the highest packet index (RFC 3711 §3.3.1: rollover counter and sequence
    /// number) sealed so far.
    index: Vec<(u32, u64)>,
}

impl RtpSealer {
    pub fn new(keys: &SrtpKeys, crypto: &dyn RTCCrypto) -> Result<Self> {
        use rtc::srtp::protection_profile::ProtectionProfile as P;
        let key = keys.local_key.as_slice();
        let salt = keys.local_salt.as_slice();
        let block = match key.len() {
            16 => BlockCipherAlgorithm::Aes128,
            32 => BlockCipherAlgorithm::Aes256,
            n => return Err(Error::WebRtc(format!("SRTP: a {n}-byte master key"))),
        };
        let kdf = |label: u8, len: usize| derive(crypto, block, key, salt, label, len);
        let provider = |e: rtc::crypto::CryptoError| Error::WebRtc(format!("SRTP: {e}"));
        let cipher = match keys.profile {
            P::AeadAes128Gcm | P::AeadAes256Gcm => {
                let algorithm = if key.len() == 16 {
                    AeadAlgorithm::Aes128Gcm
                } else {
                    AeadAlgorithm::Aes256Gcm
                };
                let aead = crypto
                    .new_aead(algorithm, &kdf(LABEL_ENCRYPTION, key.len())?)
                    .map_err(provider)?;
                if aead.tag_len() != GCM_TAG {
                    return Err(Error::WebRtc(format!(
                        "SRTP: AES-GCM with a {}-byte tag",
                        aead.tag_len()
                    )));
                }
                Cipher::Gcm {
                    aead,
                    salt: fixed(&kdf(LABEL_SALT, 12)?)?,
                }
            }
            P::Aes128CmHmacSha1_80
            | P::Aes128CmHmacSha1_32
            | P::Aes256CmHmacSha1_80
            | P::Aes256CmHmacSha1_32 => {
                let algorithm = if key.len() == 16 {
                    StreamCipherAlgorithm::Aes128Ctr
                } else {
                    StreamCipherAlgorithm::Aes256Ctr
                };
                Cipher::CmSha1 {
                    ctr: crypto
                        .new_stream_cipher(algorithm, &kdf(LABEL_ENCRYPTION, key.len())?)
                        .map_err(provider)?,
                    mac: crypto
                        .new_hmac(HmacAlgorithm::Sha1, &kdf(LABEL_AUTH, 20)?)
                        .map_err(provider)?,
                    salt: fixed(&kdf(LABEL_SALT, 14)?)?,
                    tag_len: keys.profile.rtp_auth_tag_len(),
                }
            }
            other => {
                return Err(Error::WebRtc(format!(
                    "SRTP: profile {other:?}, which rtcast does not offer"
                )))
            }
        };
        Ok(Self {
            cipher,
            index: Vec::with_capacity(2),
        })
    }

    fn overhead(&self) -> usize {
        match &self.cipher {
            Cipher::Gcm { .. } => GCM_TAG,
            Cipher::CmSha1 { tag_len, .. } => *tag_len,
        }
    }

    fn seal(
        &mut self,
        packet: &mut BytesMut,
        header_len: usize,
        ssrc: u32,
        seq: u16,
    ) -> Result<()> {
        if packet.len() < header_len {
            return Err(Error::WebRtc(
                "SRTP: a packet shorter than its header".into(),
            ));
        }
        let index = self.next_index(ssrc, seq)?;
        let roc = (index >> 16) as u32;
        let provider = |e: rtc::crypto::CryptoError| Error::WebRtc(format!("SRTP: {e}"));
        match &mut self.cipher {
            Cipher::Gcm { aead, salt } => {
                // RFC 7714 §8.1: 00 00 | SSRC | ROC | SEQ, XOR the salt.
                let mut iv = [0u8; 12];
                iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
                iv[6..10].copy_from_slice(&roc.to_be_bytes());
                iv[10..12].copy_from_slice(&seq.to_be_bytes());
                iv.iter_mut().zip(salt.iter()).for_each(|(v, s)| *v ^= s);
                let mut tag = [0u8; GCM_TAG];
                let (header, payload) = packet.split_at_mut(header_len);
                aead.seal_in_place(&iv, header, payload, &mut tag)
                    .map_err(provider)?;
                packet.extend_from_slice(&tag);
            }
            Cipher::CmSha1 {
                ctr,
                mac,
                salt,
                tag_len,
            } => {
                // RFC 3711 §4.1.1: IV = salt·2^16 XOR SSRC·2^64 XOR index·2^16.
                let mut iv = [0u8; 16];
                iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
                iv[8..12].copy_from_slice(&roc.to_be_bytes());
                iv[12..14].copy_from_slice(&seq.to_be_bytes());
                iv.iter_mut().zip(salt.iter()).for_each(|(v, s)| *v ^= s);
                if let Some(payload) = packet.get_mut(header_len..) {
                    ctr.apply_keystream(&iv, payload).map_err(provider)?;
                }
                let mut tag = [0u8; 20];
                mac.sign(&[&packet[..], &roc.to_be_bytes()], &mut tag)
                    .map_err(provider)?;
                packet.extend_from_slice(tag.get(..*tag_len).unwrap_or(&tag));
            }
        }
        self.commit(ssrc, index);
        Ok(())
    }

    /// The packet index of `seq` on `ssrc`: the rollover counter guessed from the highest index
    /// sealed so far (RFC 3711 §3.3.1, Appendix A), so a retransmission of a packet from before
    /// a wrap keeps its old counter.
    fn next_index(&self, ssrc: u32, seq: u16) -> Result<u64> {
        let Some(&(_, highest)) = self.index.iter().find(|(s, _)| *s == ssrc) else {
            return Ok(u64::from(seq));
        };
        let (roc, s_l) = (highest >> 16, highest as u16);
        let guess = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 && roc > 0 {
                roc - 1
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc + 1
        } else {
            roc
        };
        // 2^48 packets with one key: RFC 3711 §9.2 forbids going on.
        if guess > u64::from(u32::MAX) {
            return Err(Error::WebRtc("SRTP: 2^48 packets sent with one key".into()));
        }
        Ok((guess << 16) | u64::from(seq))
    }

    fn commit(&mut self, ssrc: u32, index: u64) {
        if let Some((_, highest)) = self.index.iter_mut().find(|(s, _)| *s == ssrc) {
            *highest = (*highest).max(index);
            return;
        }
        if self.index.len() == MAX_SSRCS {
            // More SSRCs than a viewer has: forget the oldest.
            self.index.remove(0);
        }
        self.index.push((ssrc, index));
    }
}

const GCM_TAG: usize = 16;
const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_AUTH: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;

/// The SRTP key derivation (RFC 3711 §4.3.1 with a key derivation rate of 0, as DTLS-SRTP uses;
/// RFC 6188 for AES-256): AES in counter mode under the master key, from the master salt XOR the
/// label in byte 7.
fn derive(
    crypto: &dyn RTCCrypto,
    block: BlockCipherAlgorithm,
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    len: usize,
) -> Result<Vec<u8>> {
    if master_salt.len() > 14 {
        return Err(Error::WebRtc("SRTP: a master salt over 14 bytes".into()));
    }
    let mut out = Vec::with_capacity(len.div_ceil(16) * 16);
    for i in 0..len.div_ceil(16) {
        let mut x = [0u8; 16];
        x.iter_mut().zip(master_salt).for_each(|(x, s)| *x = *s);
        x[7] ^= label;
        x[14..16].copy_from_slice(&(i as u16).to_be_bytes());
        crypto
            .block_encrypt(block, master_key, &mut x)
            .map_err(|e| Error::WebRtc(format!("SRTP key derivation: {e}")))?;
        out.extend_from_slice(&x);
    }
    out.truncate(len);
    Ok(out)
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N]> {
    v.try_into()
        .map_err(|_| Error::WebRtc("SRTP: a derived key of the wrong size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use rtc::srtp::protection_profile::ProtectionProfile as P;

    fn keys(profile: P) -> SrtpKeys {
        let key = (0..profile.key_len()).map(|i| i as u8 * 7 + 1).collect();
        let salt = (0..profile.salt_len()).map(|i| i as u8 * 13 + 5).collect();
        SrtpKeys {
            profile,
            local_key: key,
            local_salt: salt,
            remote_key: vec![0; profile.key_len()],
            remote_salt: vec![0; profile.salt_len()],
        }
    }

    /// A plain RTP packet; with `twcc`, a one-byte-header extension as the plane writes it.
    fn plain(seq: u16, ssrc: u32, twcc: bool, payload_len: usize) -> (BytesMut, usize) {
        let mut p = BytesMut::new();
        p.put_u8(if twcc { 0x90 } else { 0x80 });
        p.put_u8(96);
        p.put_u16(seq);
        p.put_u32(90_000 + u32::from(seq));
        p.put_u32(ssrc);
        if twcc {
            p.put_slice(&[0xBE, 0xDE, 0, 1, 0x31, 0x12, 0x34, 0]);
        }
        let header_len = p.len();
        p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
        (p, header_len)
    }

    /// Our in-place sealing gives byte for byte what webrtc-rs's SRTP context gives, for every
    /// profile rtcast offers, across a sequence number wrap and with a retransmission of a
    /// packet from before it (which keeps its rollover counter); a receiving context opens it.
    #[test]
    fn sealing_in_place_matches_rtc_srtp_across_a_wrap() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        for profile in [P::AeadAes128Gcm, P::AeadAes256Gcm, P::Aes128CmHmacSha1_80] {
            let k = keys(profile);
            let mut ours = RtpSealer::new(&k, crypto).unwrap();
            let mut theirs =
                Context::new(&k.local_key, &k.local_salt, profile, None, None, crypto).unwrap();
            let mut opener =
                Context::new(&k.local_key, &k.local_salt, profile, None, None, crypto).unwrap();
            let seqs = (65_530..=65_535).chain(0..6).chain([65_533, 3, 7]);
            for (n, seq) in seqs.enumerate() {
                for (ssrc, twcc) in [(0x1234_5678, n % 2 == 0), (0x0bad_cafe, false)] {
                    let (mut packet, header_len) = plain(seq, ssrc, twcc, 100 + n * 37);
                    let expected = theirs.encrypt_rtp(&packet).unwrap();
                    let plain_copy = packet.clone();
                    ours.seal(&mut packet, header_len, ssrc, seq).unwrap();
                    assert_eq!(packet, expected, "{profile:?} seq {seq} ssrc {ssrc:x}");
                    assert_eq!(packet.len(), plain_copy.len() + ours.overhead());
                    let opened = opener.decrypt_rtp(&packet).unwrap();
                    assert_eq!(opened, plain_copy);
                }
            }
        }
    }

    #[test]
    fn a_packet_shorter_than_its_header_is_refused() {
        let provider = rtc::crypto::default_provider().unwrap();
        let mut ours = RtpSealer::new(&keys(P::AeadAes128Gcm), provider.crypto()).unwrap();
        let mut packet = BytesMut::from(&[0x80u8, 96, 0, 1][..]);
        assert!(ours.seal(&mut packet, 12, 1, 1).is_err());
    }
}
