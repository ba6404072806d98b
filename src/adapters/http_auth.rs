//! The bearer-token check every authenticated endpoint of the daemon shares (the guard
//! override, the rollout controls and the promote API; the webhook has its own
//! [`crate::runtime::webhook::auth`], which also accepts basic credentials).
//!
//! - The scheme is matched case-insensitively (RFC 9110 §11.1: `Bearer`, `bearer`,
//!   `BEARER` are the same), with any run of spaces or tabs before the token, and trailing
//!   whitespace ignored.
//! - The comparison takes a time that depends on the lengths only.
//!
//! It reads headers only: callers check it before they read a request body.

use axum::http::{header, HeaderMap};

use crate::adapters::git::Secret;

/// The token of an `Authorization: Bearer <token>` header; `None` when the header is
/// missing, of another scheme, or empty.
pub fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let i = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let (scheme, rest) = value.split_at(i);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Whether the request carries `Authorization: Bearer <expected>`.
pub fn bearer_matches(headers: &HeaderMap, expected: &Secret) -> bool {
    match bearer_token(headers) {
        Some(given) => ct_eq(given, expected.expose().as_bytes()),
        None => {
            // Same work as a wrong token of the expected length.
            ct_eq(expected.expose().as_bytes(), b"");
            false
        }
    }
}

/// Equality whose running time depends on the lengths only, not on where the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff: u8 = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    // Keep the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        let s = Secret::new("tok-1");
        for ok in [
            "Bearer tok-1",
            "bearer tok-1",
            "BEARER tok-1",
            "beaReR \t tok-1  ",
        ] {
            assert!(bearer_matches(&h(ok), &s), "{ok}");
        }
        for bad in [
            "Bearer tok-2",
            "Bearer tok-1x",
            "Bearer tok-",
            "Bearertok-1",
            "Basic tok-1",
            "Bearer ",
            "tok-1",
        ] {
            assert!(!bearer_matches(&h(bad), &s), "{bad}");
        }
        assert!(!bearer_matches(&HeaderMap::new(), &s));
    }

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"abc", b""));
        // Length differences with a zero suffix are not equal.
        assert!(!ct_eq(b"ab\0", b"ab"));
    }
}
