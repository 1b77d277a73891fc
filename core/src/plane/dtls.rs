//! One viewer's DTLS association (webrtc-rs `rtc-dtls`, sans-IO) and what comes out of it: the
//! SRTP keys (RFC 5764 keying-material export) and the fingerprint of the viewer's certificate,
//! which must match the one in its session description.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc::crypto::{HashAlgorithm, RTCCryptoProvider};
use rtc::dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::shared::TransportProtocol;
use rtc::srtp::protection_profile::ProtectionProfile;

use crate::plane::srtp::SrtpKeys;
use crate::{Error, Result};

/// The DTLS settings every viewer shares: the server's certificate, the SRTP profiles offered
/// (AES-128-GCM first, as browsers prefer), both roles.
pub(crate) struct DtlsConfig {
    server: Arc<HandshakeConfig>,
    client: Arc<HandshakeConfig>,
    pub crypto: Arc<dyn RTCCryptoProvider>,
}

impl DtlsConfig {
    pub fn new(
        certificate: rtc::dtls::crypto::Certificate,
        crypto: Arc<dyn RTCCryptoProvider>,
    ) -> Result<Self> {
        let build = |is_client: bool| -> Result<Arc<HandshakeConfig>> {
            Ok(Arc::new(
                ConfigBuilder::default()
                    .with_crypto_provider(crypto.clone())
                    .with_certificates(vec![certificate.clone()])
                    .with_srtp_protection_profiles(vec![
                        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
                        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
                    ])
                    .with_client_auth(ClientAuthType::RequireAnyClientCert)
                    // The viewer's certificate is self-signed: it is checked against the
                    // fingerprint of its description once the handshake is done.
                    .with_insecure_skip_verify(true)
                    .with_extended_master_secret(ExtendedMasterSecretType::Require)
                    .build(is_client, None)
                    .map_err(|e| Error::WebRtc(format!("DTLS configuration: {e}")))?,
            ))
        };
        Ok(Self {
            server: build(false)?,
            client: build(true)?,
            crypto,
        })
    }
}

/// Which side of the handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DtlsRole {
    /// The viewer starts the handshake (it answered `a=setup:active`, or we answered `passive`).
    Server,
    /// We start it (the viewer answered `a=setup:passive`).
    Client,
}

/// What a DTLS datagram led to.
pub(crate) enum DtlsEvent {
    /// The handshake finished: keys and the viewer's certificate fingerprint (`sha-256`, lower
    /// case hex with colons, as in SDP).
    Connected { keys: SrtpKeys, fingerprint: String },
    /// The viewer closed the association (close_notify).
    Closed,
}

/// One viewer's association. The endpoint is keyed by one address for the viewer's whole life,
/// whatever address its datagrams arrive from (ICE may move to another pair).
pub(crate) struct DtlsSession {
    endpoint: Endpoint,
    role: DtlsRole,
    client_config: Option<Arc<HandshakeConfig>>,
    peer: Option<SocketAddr>,
}

impl DtlsSession {
    pub fn new(config: &DtlsConfig, role: DtlsRole) -> Self {
        let (server, client) = match role {
            DtlsRole::Server => (Some(config.server.clone()), None),
            DtlsRole::Client => (None, Some(config.client.clone())),
        };
        Self {
            // The endpoint's local address is not used: the plane sends from the viewer's pair.
            endpoint: Endpoint::new(
                SocketAddr::from(([0, 0, 0, 0], 0)),
                TransportProtocol::UDP,
                server,
            ),
            role,
            client_config: client,
            peer: None,
        }
    }

    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// As the client, starts the handshake toward `peer` (once ICE has a pair).
    pub fn start(&mut self, now: Instant, peer: SocketAddr) -> Result<()> {
        let Some(config) = self.client_config.take() else {
            return Ok(());
        };
        self.peer = Some(peer);
        self.endpoint
            .connect(now, peer, config, None)
            .map_err(|e| Error::WebRtc(format!("DTLS: {e}")))
    }

    /// A DTLS record from the viewer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        crypto: &Arc<dyn RTCCryptoProvider>,
    ) -> Result<Option<DtlsEvent>> {
        let peer = *self.peer.get_or_insert(from);
        let events = self
            .endpoint
            .read(now, peer, None, BytesMut::from(data))
            .map_err(|e| Error::WebRtc(format!("DTLS: {e}")))?;
        let mut out = None;
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete => {
                    let state = self
                        .endpoint
                        .get_connection_state(peer)
                        .ok_or_else(|| Error::WebRtc("DTLS: association vanished".into()))?;
                    let keys = export_keys(state)?;
                    let cert = state.peer_certificates.first().ok_or_else(|| {
                        Error::WebRtc("DTLS: the viewer sent no certificate".into())
                    })?;
                    let hash = crypto
                        .crypto()
                        .hash(HashAlgorithm::Sha256, cert)
                        .map_err(|e| Error::WebRtc(format!("DTLS: {e}")))?;
                    let fingerprint = hash
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":");
                    out = Some(DtlsEvent::Connected { keys, fingerprint });
                }
                EndpointEvent::PeerClosed => out = Some(DtlsEvent::Closed),
                _ => {} // no application data in a media session
            }
        }
        Ok(out)
    }

    /// The next record to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.endpoint.poll_transmit().map(|t| t.message)
    }

    /// When the handshake next needs [`DtlsSession::handle_timeout`] (retransmission).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peer.and_then(|p| self.endpoint.poll_timeout(&p))
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        match self.peer {
            Some(p) => self
                .endpoint
                .handle_timeout(p, now)
                .map_err(|e| Error::WebRtc(format!("DTLS: {e}"))),
            None => Ok(()),
        }
    }

    /// Sends close_notify (queued for [`DtlsSession::poll_transmit`]).
    pub fn close(&mut self, now: Instant) {
        if let Some(p) = self.peer {
            self.endpoint.stop(now, p);
        }
    }
}

fn export_keys(state: &rtc::dtls::state::State) -> Result<SrtpKeys> {
    let profile = match state.srtp_protection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm => ProtectionProfile::AeadAes256Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
            ProtectionProfile::Aes128CmHmacSha1_80
        }
        other => {
            return Err(Error::WebRtc(format!(
                "DTLS negotiated SRTP profile {other:?}, which rtcast does not offer"
            )))
        }
    };
    let mut config = rtc::srtp::config::Config {
        profile,
        ..Default::default()
    };
    let material = state
        .export_keying_material(
            rtc::srtp::config::LABEL_EXTRACTOR_DTLS_SRTP,
            &[],
            config.keying_material_len(),
        )
        .map_err(|e| Error::WebRtc(format!("DTLS key export: {e}")))?;
    config
        .set_session_keys_from_keying_material(material.as_ref(), state.is_client())
        .map_err(|e| Error::WebRtc(format!("SRTP keys: {e}")))?;
    Ok(SrtpKeys {
        profile,
        local_key: config.keys.local_master_key.clone(),
        local_salt: config.keys.local_master_salt.clone(),
        remote_key: config.keys.remote_master_key.clone(),
        remote_salt: config.keys.remote_master_salt.clone(),
    })
}
