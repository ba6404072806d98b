//! What the HTTP adapters share: the client builder every outbound call starts from (a
//! per-request timeout, a connect timeout and slogate's `User-Agent`), the text of a
//! transport error without its URL, and the percent-encoding of one URL path segment.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The `User-Agent` of every request slogate makes (GitHub's API requires one).
pub const USER_AGENT: &str = concat!("slogate/", env!("CARGO_PKG_VERSION"));

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded, so
/// `/` in `group/project` becomes `%2F` and stays one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode one path segment (UTF-8, upper-case hex digits).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A client builder with `timeout` for each request (the answer's body included),
/// `connect_timeout` for the connection, and [`USER_AGENT`].
pub fn client_builder(timeout: Duration, connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .user_agent(USER_AGENT)
}

/// A reqwest error as text, without its URL (which may hold a secret: a Slack webhook's
/// path, credentials) but with its causes, and saying so when it timed out.
pub fn describe_error(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if timeout && !msg.contains("timed out") {
        msg.push_str(" (timed out)");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_only_unreserved_characters() {
        assert_eq!(encode_segment("checkout-prod_1.2~x"), "checkout-prod_1.2~x");
        assert_eq!(encode_segment("platform/gitops"), "platform%2Fgitops");
        assert_eq!(encode_segment("a b?c#d%e"), "a%20b%3Fc%23d%25e");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment(".."), "..");
        assert_eq!(encode_segment(""), "");
    }
}
