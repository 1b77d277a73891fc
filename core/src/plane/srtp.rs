//! A viewer's SRTP protection (webrtc-rs `rtc-srtp`): our context encrypts the RTP and RTCP we
//! send, the viewer's decrypts the RTCP it sends back. The keys come from the DTLS handshake.

use bytes::BytesMut;
use rtc::crypto::RTCCrypto;
use rtc::rtp;
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
    local: Context,
    remote: Context,
}

impl Protection {
    pub fn new(keys: &SrtpKeys, crypto: &dyn RTCCrypto) -> Result<Self> {
        let err = |e: rtc::shared::error::Error| Error::WebRtc(format!("SRTP: {e}"));
        Ok(Self {
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

    /// Encrypts one RTP packet (`packet` is the whole plain packet, `header` its parsed header).
    pub fn protect_rtp(&mut self, packet: &[u8], header: &rtp::Header) -> Result<BytesMut> {
        self.local
            .encrypt_rtp_with_header(packet, header)
            .map_err(|e| Error::WebRtc(format!("SRTP: {e}")))
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
