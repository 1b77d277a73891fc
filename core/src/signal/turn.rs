//! TURN REST credentials: a TURN server sharing a secret with rtcast (coturn's
//! `use-auth-secret` + `static-auth-secret`) is handed to each viewer with a user name and
//! password of its own that expire, so no long-lived TURN password ever reaches a browser.
//!
//! The scheme is the one of draft-uberti-behave-turn-rest: user name `"<expiry>:<name>"` (expiry
//! in Unix seconds), password `base64(HMAC-SHA1(secret, user name))`. The TURN server recomputes
//! the password from the user name and refuses it after the expiry.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::config::IceServer;

/// A TURN server whose viewers get short-lived credentials computed from a shared secret
/// (coturn: `use-auth-secret`, `static-auth-secret=<secret>`).
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSecret {
    /// `turn:host:port?transport=udp` / `turns:host:port` URLs of the TURN server.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub secret: String,
    /// How long the credentials of a viewer stay valid from the moment it signals (default
    /// 24 h). TURN checks it when an allocation is made or refreshed, so a viewer whose
    /// credentials run out loses the relay at its next refresh.
    pub ttl: Duration,
}

impl TurnSecret {
    /// Default lifetime of a viewer's credentials: a day.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

    /// A TURN server at `urls` sharing `secret`, with the default lifetime of credentials.
    pub fn new(urls: Vec<String>, secret: impl Into<String>) -> Self {
        Self {
            urls,
            secret: secret.into(),
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// The ICE server handed to a viewer named `name` (rtcast uses the viewer id) at `now`: the
    /// user name `"<now + ttl in Unix seconds>:<name>"` and its HMAC-SHA1 password.
    pub fn ice_server(&self, now: SystemTime, name: &str) -> IceServer {
        let expiry = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.ttl);
        let username = format!("{}:{name}", expiry.as_secs());
        #[allow(clippy::expect_used)] // HMAC takes a key of any length (RFC 2104 §2)
        let mut mac =
            Hmac::<Sha1>::new_from_slice(self.secret.as_bytes()).expect("HMAC takes any key");
        mac.update(username.as_bytes());
        let credential =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        IceServer {
            urls: self.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        }
    }

    /// Checks what a TURN server cannot use; the message names the field and what to do.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.urls.is_empty() {
            return Err("turn_secret has no URL: give at least one, e.g. \
                        turn:turn.example.com:3478?transport=udp"
                .to_owned());
        }
        for url in &self.urls {
            let lower = url.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("turn:")
                .or_else(|| lower.strip_prefix("turns:"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('?')) {
                return Err(format!(
                    "turn_secret URL {url:?} is not a TURN URL: it must be turn:HOST[:PORT] or \
                     turns:HOST[:PORT] (e.g. turn:turn.example.com:3478?transport=udp); put \
                     STUN servers in ice_servers"
                ));
            }
        }
        if self.secret.is_empty() {
            return Err(
                "turn_secret's secret is empty: give the TURN server's shared secret \
                        (coturn: static-auth-secret)"
                    .to_owned(),
            );
        }
        if self.ttl < Duration::from_secs(1) {
            return Err(format!(
                "turn_secret's ttl is {:?}: credentials must live at least 1 s (default 24 h)",
                self.ttl
            ));
        }
        Ok(())
    }
}

// The secret stays out of logs.
impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnSecret")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(urls: &[&str], secret: &str, ttl: Duration) -> TurnSecret {
        TurnSecret {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            secret: secret.to_owned(),
            ttl,
        }
    }

    #[test]
    fn a_ttl_past_the_end_of_time_gives_the_latest_expiry_not_a_panic() {
        // Was `since_epoch + ttl`: "overflow when adding durations" for every viewer.
        let t = turn(&["turn:127.0.0.1:3478"], "s", Duration::MAX);
        let s = t.ice_server(UNIX_EPOCH + Duration::from_secs(1), "7");
        assert_eq!(s.username.as_deref(), Some(&*format!("{}:7", u64::MAX)));
    }

    #[test]
    fn credentials_are_the_turn_rest_hmac_of_expiry_and_name() {
        // Computed independently:
        //   printf '%s' '1700086400:42' | openssl dgst -sha1 -hmac north-shore -binary | base64
        //   python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
        //     b'north-shore', b'1700086400:42', hashlib.sha1).digest()).decode())"
        let t = turn(
            &["turn:127.0.0.1:3478"],
            "north-shore",
            Duration::from_secs(86_400),
        );
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let s = t.ice_server(now, "42");
        assert_eq!(s.urls, ["turn:127.0.0.1:3478"]);
        assert_eq!(s.username.as_deref(), Some("1700086400:42"));
        assert_eq!(
            s.credential.as_deref(),
            Some("2nQB3e5aRHh4nJ7GaaL0norrKUk=")
        );
    }

    #[test]
    fn each_moment_gets_its_own_expiry() {
        let t = TurnSecret::new(vec!["turn:t.example".into()], "s");
        let a = t.ice_server(UNIX_EPOCH + Duration::from_secs(1000), "1");
        let b = t.ice_server(UNIX_EPOCH + Duration::from_secs(1001), "1");
        assert_eq!(a.username.as_deref(), Some("87400:1"));
        assert_eq!(b.username.as_deref(), Some("87401:1"));
        assert_ne!(a.credential, b.credential);
    }

    #[test]
    fn validation_explains_what_is_wrong() {
        let day = TurnSecret::DEFAULT_TTL;
        for (t, needle) in [
            (turn(&[], "s", day), "has no URL"),
            (turn(&["stun:s.example:3478"], "s", day), "not a TURN URL"),
            (turn(&["turn:"], "s", day), "not a TURN URL"),
            (turn(&["t.example:3478"], "s", day), "not a TURN URL"),
            (turn(&["turn:t.example"], "", day), "secret is empty"),
            (
                turn(&["turn:t.example"], "s", Duration::ZERO),
                "at least 1 s",
            ),
        ] {
            let e = t.validate().unwrap_err();
            assert!(e.contains(needle), "{t:?}: {e}");
        }
        let ok = turn(
            &["turn:t.example:3478?transport=udp", "TURNS:t.example:5349"],
            "s",
            day,
        );
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = TurnSecret::new(vec!["turn:t.example".into()], "hunter2");
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
