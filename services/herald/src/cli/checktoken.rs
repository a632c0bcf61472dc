//! `herald checktoken`: verifies a token the way a node would, and says what it grants.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use herald_engine::auth::{AuthError, ConnectClaims, SubscribeClaims, TokenVerifier};

/// Exit code of a token the node would refuse (bad signature, malformed, wrong claims).
pub const EXIT_INVALID: i32 = 3;
/// Exit code of a token that verifies but has expired.
pub const EXIT_EXPIRED: i32 = 4;

/// What a token is for: told apart by its `channel` claim, as the node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connection,
    Subscription,
}

/// The claims a node acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub kind: Kind,
    pub sub: String,
    /// Subscription tokens only.
    pub channel: Option<String>,
    pub exp: Option<u64>,
    pub expire_at: Option<u64>,
    /// Connection tokens only: server-side subscriptions.
    pub channels: Vec<String>,
    pub info: Option<Bytes>,
}

/// The outcome of checking one token.
#[derive(Debug)]
pub enum Verdict {
    Valid(Claims),
    /// Signed with the right key and otherwise acceptable, but past its `exp`.
    Expired(Claims),
    Invalid(AuthError),
}

impl Verdict {
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Valid(_) => 0,
            Verdict::Expired(_) => EXIT_EXPIRED,
            Verdict::Invalid(_) => EXIT_INVALID,
        }
    }
}

/// Checks `token` at `now` (Unix seconds). With a JWKS, its keys are fetched first.
pub async fn check(verifier: &TokenVerifier, token: &str, now: u64) -> Verdict {
    verifier.refresh_keys().await;
    let token = token.trim();
    if token.is_empty() {
        return Verdict::Invalid(AuthError::Invalid("empty token".into()));
    }
    let kind = kind(token);
    let verified = match kind {
        Kind::Connection => verifier.verify_connect(token, now).map(Claims::from),
        Kind::Subscription => verifier.verify_subscribe(token, now).map(Claims::from),
    };
    match verified {
        Ok(claims) => Verdict::Valid(claims),
        // The verifier reports expiry only for a token that passed every other check, so its
        // claims can be read without checking them again.
        Err(AuthError::Expired) => match unverified_claims(token, kind) {
            Some(claims) => Verdict::Expired(claims),
            None => Verdict::Invalid(AuthError::Expired),
        },
        Err(err) => Verdict::Invalid(err),
    }
}

fn payload(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn kind(token: &str) -> Kind {
    match payload(token) {
        Some(p) if p.get("channel").is_some() => Kind::Subscription,
        _ => Kind::Connection,
    }
}

fn unverified_claims(token: &str, kind: Kind) -> Option<Claims> {
    let payload = payload(token)?;
    match kind {
        Kind::Connection => serde_json::from_value::<ConnectClaims>(payload)
            .ok()
            .map(Claims::from),
        Kind::Subscription => serde_json::from_value::<SubscribeClaims>(payload)
            .ok()
            .map(Claims::from),
    }
}

impl From<ConnectClaims> for Claims {
    fn from(c: ConnectClaims) -> Self {
        Claims {
            kind: Kind::Connection,
            sub: c.sub,
            channel: None,
            exp: c.exp,
            expire_at: c.expire_at,
            channels: c.channels,
            info: c.info,
        }
    }
}

impl From<SubscribeClaims> for Claims {
    fn from(c: SubscribeClaims) -> Self {
        Claims {
            kind: Kind::Subscription,
            sub: c.sub,
            channel: Some(c.channel),
            exp: c.exp,
            expire_at: c.expire_at,
            channels: Vec::new(),
            info: c.info,
        }
    }
}

impl Claims {
    /// One `name: value` line per claim, times as RFC 3339 with the time left (or past).
    pub fn describe(&self, now: u64) -> String {
        let mut lines = vec![format!(
            "{} token",
            match self.kind {
                Kind::Connection => "connection",
                Kind::Subscription => "subscription",
            }
        )];
        let user = if self.sub.is_empty() {
            "\"\" (anonymous)".to_owned()
        } else {
            self.sub.clone()
        };
        lines.push(format!("sub:       {user}"));
        if let Some(channel) = &self.channel {
            lines.push(format!("channel:   {channel}"));
        }
        lines.push(format!(
            "exp:       {}",
            self.exp
                .map_or("none (never expires)".to_owned(), |e| when(e, now))
        ));
        match self.expire_at {
            None => {}
            Some(0) => lines.push("expire_at: 0 (never expires)".to_owned()),
            Some(at) => lines.push(format!("expire_at: {}", when(at, now))),
        }
        if self.kind == Kind::Connection {
            let channels = if self.channels.is_empty() {
                "none".to_owned()
            } else {
                self.channels.join(", ")
            };
            lines.push(format!("channels:  {channels}"));
        }
        let info = self.info.as_ref().map_or("none".to_owned(), |i| {
            String::from_utf8_lossy(i).into_owned()
        });
        lines.push(format!("info:      {info}"));
        lines.join("\n") + "\n"
    }
}

/// `2026-01-02T03:04:05Z (in 9m 59s)` or `(... ago)`.
fn when(at: u64, now: u64) -> String {
    let date = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(at));
    let distance = |s: u64| humantime::format_duration(Duration::from_secs(s));
    if at > now {
        format!("{date} (in {})", distance(at - now))
    } else {
        format!("{date} ({} ago)", distance(now - at))
    }
}

#[cfg(test)]
mod tests {
    use herald_engine::auth::{HmacAlg, NewConnectToken, NewSubscribeToken, TokenSigner};
    use herald_engine::config::{TokenConfig, TokenKey};

    use super::*;

    const SECRET: &[u8] = b"checktoken-unit-secret-0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(&TokenConfig {
            key: TokenKey::Hmac(SECRET.to_vec()),
            previous_key: None,
            audience: None,
            issuer: None,
        })
        .unwrap()
    }

    fn check_now(token: &str) -> Verdict {
        actix_web::rt::System::new().block_on(check(&verifier(), token, NOW))
    }

    fn signer() -> TokenSigner {
        TokenSigner::hmac(SECRET, HmacAlg::HS256)
    }

    #[test]
    fn a_connection_token_and_its_claims() {
        let token = signer()
            .sign(&NewConnectToken {
                sub: "alice".into(),
                exp: Some(NOW + 600),
                info: Some(serde_json::json!({"name": "Ann"})),
                channels: vec!["news".into(), "alerts".into()],
            })
            .unwrap();
        let Verdict::Valid(claims) = check_now(&format!("  {token}\n")) else {
            panic!("not valid");
        };
        assert_eq!(claims.kind, Kind::Connection);
        let text = claims.describe(NOW);
        assert!(
            text.starts_with("connection token\nsub:       alice\n"),
            "{text}"
        );
        assert!(text.contains("(in 10m)"), "{text}");
        assert!(text.contains("channels:  news, alerts"), "{text}");
        assert!(text.contains(r#"info:      {"name":"Ann"}"#), "{text}");
    }

    #[test]
    fn a_subscription_token_is_told_apart_by_its_channel() {
        let token = signer()
            .sign(&NewSubscribeToken {
                sub: "bob".into(),
                channel: "chat:1".into(),
                exp: None,
                info: None,
            })
            .unwrap();
        let verdict = check_now(&token);
        assert_eq!(verdict.exit_code(), 0);
        let Verdict::Valid(claims) = verdict else {
            panic!("not valid");
        };
        let text = claims.describe(NOW);
        assert!(text.starts_with("subscription token\n"), "{text}");
        assert!(text.contains("channel:   chat:1"), "{text}");
        assert!(text.contains("never expires"), "{text}");
        assert!(!text.contains("channels:"), "{text}");
    }

    #[test]
    fn expired_and_invalid_tokens_have_their_own_exit_codes() {
        let expired = signer()
            .sign(&NewConnectToken {
                sub: "carol".into(),
                exp: Some(NOW - 90),
                ..Default::default()
            })
            .unwrap();
        let verdict = check_now(&expired);
        assert_eq!(verdict.exit_code(), EXIT_EXPIRED);
        let Verdict::Expired(claims) = verdict else {
            panic!("not expired");
        };
        assert!(claims.describe(NOW).contains("(1m 30s ago)"));

        let wrong_key = TokenSigner::hmac(b"another-secret-0123456789abcdef-xyz", HmacAlg::HS256)
            .sign(&NewConnectToken::default())
            .unwrap();
        for bad in [wrong_key.as_str(), "garbage", "", "a.b.c"] {
            let verdict = check_now(bad);
            assert_eq!(verdict.exit_code(), EXIT_INVALID, "{bad}: {verdict:?}");
        }
    }
}
