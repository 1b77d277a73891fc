//! ICE-lite (RFC 8445 §2.5) on the server side: a viewer's connectivity checks are answered, and
//! the server never sends a check of its own, so no address a client names in its candidates can
//! make rtcast send anything. A valid check is also the viewer's consent (RFC 7675).

use std::net::SocketAddr;

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::{ATTR_USERNAME, ATTR_USE_CANDIDATE};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;

/// Our half of a viewer's ICE credentials.
#[derive(Debug, Clone)]
pub(crate) struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

/// A check that passed: the response to send back, and whether the viewer nominated the pair.
#[derive(Debug)]
pub(crate) struct Answered {
    pub response: Vec<u8>,
    pub nominated: bool,
}

/// Why a STUN datagram got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    NotABindingRequest,
    Malformed,
    WrongUsername,
    BadIntegrity,
}

/// Answers a binding request from `from` addressed to `local`'s credentials. `remote_ufrag` is
/// the viewer's ufrag once its description arrived: before that, a check is answered on our ufrag
/// and password alone, so a browser whose checks overtake its answer is not kept waiting for a
/// retransmission.
pub(crate) fn answer_check(
    data: &[u8],
    from: SocketAddr,
    local: &IceCredentials,
    remote_ufrag: Option<&str>,
    crypto: &dyn RTCCrypto,
) -> Result<Answered, Refused> {
    let mut m = Message::new();
    m.unmarshal_binary(data).map_err(|_| Refused::Malformed)?;
    if m.typ != BINDING_REQUEST {
        return Err(Refused::NotABindingRequest);
    }
    let username = TextAttribute::get_from_as(&m, ATTR_USERNAME)
        .map_err(|_| Refused::WrongUsername)?
        .text;
    let (ours, theirs) = username.split_once(':').ok_or(Refused::WrongUsername)?;
    if ours != local.ufrag || remote_ufrag.is_some_and(|r| r != theirs) {
        return Err(Refused::WrongUsername);
    }
    FINGERPRINT.check(&m).map_err(|_| Refused::BadIntegrity)?;
    MessageIntegrity::check(&mut m, local.pwd.as_bytes(), crypto)
        .map_err(|_| Refused::BadIntegrity)?;
    let nominated = m.contains(ATTR_USE_CANDIDATE);
    let mut out = Message::new();
    let setters: [Box<dyn Setter + '_>; 5] = [
        Box::new(m.clone()),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            local.pwd.clone(),
            crypto,
        )),
        Box::new(FINGERPRINT),
    ];
    out.build(&setters).map_err(|_| Refused::Malformed)?;
    Ok(Answered {
        response: out.raw,
        nominated,
    })
}

/// A binding request as a browser sends it (USE-CANDIDATE, PRIORITY, MESSAGE-INTEGRITY with
/// `pwd`, FINGERPRINT), for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn build_check(username: &str, pwd: &str) -> Vec<u8> {
    let Ok(provider) = rtc::crypto::default_provider() else {
        return Vec::new();
    };
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(rtc::stun::message::TransactionId::new()),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        Box::new(rtc::ice::attributes::use_candidate::UseCandidateAttr::new()),
        Box::new(rtc::ice::attributes::priority::PriorityAttr(1234)),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            pwd.to_owned(),
            provider.crypto(),
        )),
        Box::new(FINGERPRINT),
    ];
    if m.build(&setters).is_err() {
        return Vec::new();
    }
    m.raw
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rtc::stun::attributes::ATTR_PRIORITY;
    use rtc::stun::message::{Getter, CLASS_SUCCESS_RESPONSE};

    /// A binding request as a browser sends it.
    pub(crate) fn check(
        username: &str,
        pwd: &str,
        nominate: bool,
        crypto: &dyn RTCCrypto,
    ) -> Vec<u8> {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(rtc::stun::message::TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        ];
        if nominate {
            setters.push(Box::new(
                rtc::ice::attributes::use_candidate::UseCandidateAttr::new(),
            ));
        }
        setters.push(Box::new(rtc::ice::attributes::priority::PriorityAttr(1234)));
        setters.push(Box::new(
            MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto),
        ));
        setters.push(Box::new(FINGERPRINT));
        m.build(&setters).unwrap();
        assert!(m.contains(ATTR_PRIORITY));
        m.raw
    }

    fn creds() -> IceCredentials {
        IceCredentials {
            ufrag: "srv".into(),
            pwd: "serverpasswordserverpassword".into(),
        }
    }

    #[test]
    fn a_valid_check_is_answered_with_the_senders_address_signed_with_our_password() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let req = check("srv:cli", &creds().pwd, true, crypto);
        let a = answer_check(&req, from, &creds(), Some("cli"), crypto).unwrap();
        assert!(a.nominated);
        let mut resp = Message::new();
        resp.unmarshal_binary(&a.response).unwrap();
        assert_eq!(resp.typ.class, CLASS_SUCCESS_RESPONSE);
        let mut mapped = XorMappedAddress {
            ip: "0.0.0.0".parse().unwrap(),
            port: 0,
        };
        mapped.get_from(&resp).unwrap();
        assert_eq!((mapped.ip, mapped.port), (from.ip(), from.port()));
        MessageIntegrity::check(&mut resp, creds().pwd.as_bytes(), crypto).unwrap();
    }

    #[test]
    fn checks_with_another_ufrag_or_password_are_not_answered() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let req = check("other:cli", &creds().pwd, false, crypto);
        assert_eq!(
            answer_check(&req, from, &creds(), None, crypto).unwrap_err(),
            Refused::WrongUsername
        );
        let req = check("srv:cli", "not-the-password-at-all-00000", false, crypto);
        assert_eq!(
            answer_check(&req, from, &creds(), None, crypto).unwrap_err(),
            Refused::BadIntegrity
        );
        // Known remote ufrag: a check naming another one is refused.
        let req = check("srv:intruder", &creds().pwd, false, crypto);
        assert_eq!(
            answer_check(&req, from, &creds(), Some("cli"), crypto).unwrap_err(),
            Refused::WrongUsername
        );
        // Before the viewer's description arrives, our credentials are enough.
        let a = answer_check(&req, from, &creds(), None, crypto).unwrap();
        assert!(!a.nominated);
        assert_eq!(
            answer_check(&[0, 1, 0, 0], from, &creds(), None, crypto).unwrap_err(),
            Refused::Malformed
        );
    }
}
