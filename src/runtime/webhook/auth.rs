//! Authentication of webhook requests: a bearer token and/or HTTP basic credentials.
//!
//! - Secrets come from a file or an environment variable ([`SecretSource`]). They are read
//!   when the receiver is built (a missing secret stops the daemon from starting) and
//!   re-read at most every [`REFRESH`], so a rotated Kubernetes Secret is picked up without a
//!   restart. When a re-read fails the previous value stays in force and a warning names the
//!   source, never the value.
//! - Comparison is constant-time in the content of the secret ([`ct_eq`]): its time depends
//!   only on the lengths, so a client cannot find the secret byte by byte.
//! - A failure answers 401 with `WWW-Authenticate` naming the accepted schemes.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use crate::adapters::git::{Secret, SecretSource};

use super::config::WebhookConfig;

/// How long a secret read from its source is used before it is read again.
pub const REFRESH: Duration = Duration::from_secs(30);

/// A secret read from its source, refreshed every [`REFRESH`].
pub struct CachedSecret {
    source: SecretSource,
    cached: RwLock<(Secret, Instant)>,
}

impl CachedSecret {
    /// Read the secret now; errors name the source, never the value.
    pub fn new(source: SecretSource) -> Result<Self, String> {
        let s = source.read().map_err(|e| e.to_string())?;
        Ok(CachedSecret {
            source,
            cached: RwLock::new((s, Instant::now())),
        })
    }

    /// The current secret (re-read from its source when the cached value is old).
    pub fn get(&self) -> Secret {
        {
            // A poisoned lock only means a reader panicked; the pair is always whole.
            let c = self.cached.read().unwrap_or_else(|p| p.into_inner());
            if c.1.elapsed() < REFRESH {
                return c.0.clone();
            }
        }
        let mut c = self.cached.write().unwrap_or_else(|p| p.into_inner());
        if c.1.elapsed() >= REFRESH {
            match self.source.read() {
                Ok(s) => *c = (s, Instant::now()),
                Err(e) => {
                    tracing::warn!(source = ?self.source, "webhook secret could not be re-read, keeping the previous one: {e}");
                    c.1 = Instant::now();
                }
            }
        }
        c.0.clone()
    }
}

impl std::fmt::Debug for CachedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CachedSecret({:?})", self.source)
    }
}

/// What the receiver accepts.
#[derive(Debug)]
pub struct Authenticator {
    bearer: Option<CachedSecret>,
    basic: Option<(String, CachedSecret)>,
    allow_unauthenticated: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// A scheme that is not accepted, or an undecodable value.
    Malformed,
    /// Wrong token, user name or password.
    Wrong,
}

impl AuthFailure {
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => "authentication required",
            AuthFailure::Malformed => "unsupported or malformed Authorization header",
            AuthFailure::Wrong => "invalid credentials",
        }
    }
}

impl Authenticator {
    /// Build from the config, reading the secrets now. Refuses a config without
    /// credentials unless `allow_unauthenticated` is set.
    pub fn from_config(cfg: &WebhookConfig) -> Result<Self, String> {
        cfg.check()?;
        let bearer = match &cfg.auth.bearer {
            Some(b) => Some(
                CachedSecret::new(b.source()?).map_err(|e| format!("webhook.auth.bearer: {e}"))?,
            ),
            None => None,
        };
        let basic = match &cfg.auth.basic {
            Some(b) => Some((
                b.username.clone(),
                CachedSecret::new(b.source()?).map_err(|e| format!("webhook.auth.basic: {e}"))?,
            )),
            None => None,
        };
        if bearer.is_none() && basic.is_none() && !cfg.allow_unauthenticated {
            return Err("webhook.auth: no credentials configured".into());
        }
        Ok(Authenticator {
            bearer,
            basic,
            allow_unauthenticated: cfg.allow_unauthenticated && false_if_creds(&cfg.auth),
        })
    }

    /// Accept `Authorization: Bearer <token>`.
    pub fn bearer(source: SecretSource) -> Result<Self, String> {
        Ok(Authenticator {
            bearer: Some(CachedSecret::new(source)?),
            basic: None,
            allow_unauthenticated: false,
        })
    }

    /// Accept `Authorization: Basic base64(user:password)`.
    pub fn basic(username: impl Into<String>, password: SecretSource) -> Result<Self, String> {
        Ok(Authenticator {
            bearer: None,
            basic: Some((username.into(), CachedSecret::new(password)?)),
            allow_unauthenticated: false,
        })
    }

    /// Also accept basic credentials (in addition to a bearer token).
    pub fn with_basic(
        mut self,
        username: impl Into<String>,
        password: SecretSource,
    ) -> Result<Self, String> {
        self.basic = Some((username.into(), CachedSecret::new(password)?));
        self.allow_unauthenticated = false;
        Ok(self)
    }

    /// Accept every request. Only for a receiver nothing but Alertmanager can reach.
    pub fn none() -> Self {
        Authenticator {
            bearer: None,
            basic: None,
            allow_unauthenticated: true,
        }
    }

    /// The `WWW-Authenticate` values to send with a 401.
    pub fn challenges(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.bearer.is_some() {
            v.push("Bearer realm=\"slogate\"");
        }
        if self.basic.is_some() {
            v.push("Basic realm=\"slogate\", charset=\"UTF-8\"");
        }
        v
    }

    /// Check the request's `Authorization` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        if self.allow_unauthenticated {
            return Ok(());
        }
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(AuthFailure::Missing);
        };
        let value = value.as_bytes();
        let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
            Some(i) => (&value[..i], trim_spaces(&value[i + 1..])),
            None => return Err(AuthFailure::Malformed),
        };
        if scheme.eq_ignore_ascii_case(b"bearer") {
            let Some(token) = &self.bearer else {
                return Err(AuthFailure::Malformed);
            };
            return if ct_eq(rest, token.get().expose().as_bytes()) {
                Ok(())
            } else {
                Err(AuthFailure::Wrong)
            };
        }
        if scheme.eq_ignore_ascii_case(b"basic") {
            let Some((user, password)) = &self.basic else {
                return Err(AuthFailure::Malformed);
            };
            let decoded = decode_basic(rest).ok_or(AuthFailure::Malformed)?;
            let i = decoded
                .iter()
                .position(|b| *b == b':')
                .ok_or(AuthFailure::Malformed)?;
            // Both halves are always compared, so timing does not tell which one was wrong.
            let user_ok = ct_eq(&decoded[..i], user.as_bytes());
            let password_ok = ct_eq(&decoded[i + 1..], password.get().expose().as_bytes());
            return if user_ok & password_ok {
                Ok(())
            } else {
                Err(AuthFailure::Wrong)
            };
        }
        Err(AuthFailure::Malformed)
    }
}

/// `allow_unauthenticated` only means something when no credentials are configured: with
/// credentials, they are always required.
fn false_if_creds(a: &super::config::WebhookAuthConfig) -> bool {
    a.bearer.is_none() && a.basic.is_none()
}

fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Equality whose running time depends on the lengths only (shared with the API's bearer
/// check).
pub use crate::adapters::http_auth::ct_eq;

/// Basic credentials are standard base64 (RFC 4648 §4). Padding is optional but complete
/// when present (`Zg==` or `Zg`, not `Zg=`), and non-zero trailing bits are accepted
/// (`Zh==` is `f`), as some clients send them.
const PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);
const UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Decode the base64 of basic credentials ([`PADDED`]); `None` on any invalid input.
fn decode_basic(input: &[u8]) -> Option<Vec<u8>> {
    let engine = if input.ends_with(b"=") {
        &PADDED
    } else {
        &UNPADDED
    };
    engine.decode(input).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_credentials_decode_rfc4648_vectors() {
        let cases: [(&str, &str); 7] = [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ];
        for (enc, dec) in cases {
            assert_eq!(
                decode_basic(enc.as_bytes()).as_deref(),
                Some(dec.as_bytes()),
                "{enc}"
            );
        }
        // Unpadded input is accepted.
        assert_eq!(decode_basic(b"Zm8").as_deref(), Some(&b"fo"[..]));
        // Non-zero trailing bits are accepted, as by the hand-written decoder this replaced.
        assert_eq!(decode_basic(b"Zh==").as_deref(), Some(&b"f"[..]));
        assert_eq!(decode_basic(b"Zh").as_deref(), Some(&b"f"[..]));
        for bad in [
            "Z", "Zm9v!", "Zg=", "Zg===", "Z===", "Zm9vY", "=", "Zg==Zg==",
        ] {
            assert_eq!(decode_basic(bad.as_bytes()), None, "{bad}");
        }
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_and_basic() {
        std::env::set_var("SLOGATE_TEST_AUTH_TOKEN", "tok-123");
        std::env::set_var("SLOGATE_TEST_AUTH_PW", "pa:ss");
        let a = Authenticator::bearer(SecretSource::Env("SLOGATE_TEST_AUTH_TOKEN".into()))
            .unwrap()
            .with_basic("am", SecretSource::Env("SLOGATE_TEST_AUTH_PW".into()))
            .unwrap();
        assert_eq!(a.check(&HeaderMap::new()), Err(AuthFailure::Missing));
        assert_eq!(a.check(&headers("Bearer tok-123")), Ok(()));
        assert_eq!(a.check(&headers("bearer  tok-123 ")), Ok(()));
        assert_eq!(a.check(&headers("Bearer tok-12")), Err(AuthFailure::Wrong));
        assert_eq!(
            a.check(&headers("Bearertok-123")),
            Err(AuthFailure::Malformed)
        );
        // am:pa:ss (a password may contain `:`)
        assert_eq!(a.check(&headers("Basic YW06cGE6c3M=")), Ok(()));
        // am:wrong
        assert_eq!(
            a.check(&headers("Basic YW06d3Jvbmc=")),
            Err(AuthFailure::Wrong)
        );
        assert_eq!(a.check(&headers("Basic !!!")), Err(AuthFailure::Malformed));
        assert_eq!(a.check(&headers("Digest x")), Err(AuthFailure::Malformed));
        assert_eq!(a.challenges().len(), 2);
    }

    #[test]
    fn config_without_credentials_needs_the_explicit_switch() {
        let cfg = WebhookConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(Authenticator::from_config(&cfg).is_err());
        let cfg = WebhookConfig {
            enabled: true,
            allow_unauthenticated: true,
            ..Default::default()
        };
        let a = Authenticator::from_config(&cfg).unwrap();
        assert_eq!(a.check(&HeaderMap::new()), Ok(()));
    }

    #[test]
    fn missing_secret_names_the_source_only() {
        let e = Authenticator::bearer(SecretSource::Env("SLOGATE_TEST_AUTH_UNSET_VAR".into()))
            .unwrap_err();
        assert!(e.contains("SLOGATE_TEST_AUTH_UNSET_VAR"), "{e}");
    }
}
