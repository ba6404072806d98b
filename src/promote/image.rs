//! Image references on the command line and in the API: `NAME`, `NAME=TAG`, `NAME@DIGEST`.
//!
//! `NAME` is the `name` of a Kustomize `images:` entry (the image as written in the base
//! manifests, e.g. `registry.example.com/shop/checkout`), so `=` separates it from the tag
//! (a `:` would be ambiguous with a registry port).

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

pub use crate::model::approval::ImageRef;

/// A parsed `--image` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub name: String,
    /// `None` for a bare `NAME` (the tag comes from the source overlay).
    pub to: Option<ImageRef>,
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.to {
            None => f.write_str(&self.name),
            Some(ImageRef::Tag(t)) => write!(f, "{}={t}", self.name),
            Some(ImageRef::Digest(d)) => write!(f, "{}@{d}", self.name),
        }
    }
}

/// Why an image reference was refused. The message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("`{0}`: the image name is empty: expected NAME, NAME=TAG or NAME@DIGEST")]
    EmptyName(String),
    #[error(
        "`{input}`: invalid image name `{name}`: expected a registry path such as \
         registry.example.com/team/app (lowercase letters, digits, `.`, `_`, `-`, `/`, a \
         registry host may have a :port)"
    )]
    Name { input: String, name: String },
    #[error(
        "`{input}`: invalid tag `{tag}`: expected 1 to 128 of [A-Za-z0-9_.-], not starting \
         with `.` or `-`"
    )]
    Tag { input: String, tag: String },
    #[error(
        "`{input}`: invalid digest `{digest}`: expected ALGORITHM:HEX such as sha256: followed \
         by 64 lowercase hex digits"
    )]
    Digest { input: String, digest: String },
    #[error("`{0}`: both a tag and a digest: expected NAME=TAG or NAME@DIGEST, not both")]
    Both(String),
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are literals of this file, compiled by the tests below.
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex literal"))
}

/// A docker reference name (distribution's grammar), optionally with a registry host:port.
pub fn valid_name(name: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(
        &RE,
        r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$",
    )
    .is_match(name)
}

/// A docker tag.
pub fn valid_tag(tag: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(&RE, r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").is_match(tag)
}

/// An OCI digest: `algorithm:encoded`; sha256 and sha512 must have their exact hex length.
pub fn valid_digest(digest: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let ok = re(&RE, r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$").is_match(digest);
    let hex =
        |n: usize, s: &str| s.len() == n && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    ok && match digest.split_once(':') {
        Some(("sha256", h)) => hex(64, h),
        Some(("sha512", h)) => hex(128, h),
        _ => true,
    }
}

/// Parse `NAME`, `NAME=TAG` or `NAME@DIGEST`.
pub fn parse(input: &str) -> Result<ImageSpec, ImageError> {
    let s = input.trim();
    let (name, to) = match (s.find('='), s.find('@')) {
        (Some(_), Some(_)) => return Err(ImageError::Both(input.into())),
        (Some(i), None) => (&s[..i], Some(ImageRef::Tag(s[i + 1..].to_string()))),
        (None, Some(i)) => (&s[..i], Some(ImageRef::Digest(s[i + 1..].to_string()))),
        (None, None) => (s, None),
    };
    if name.is_empty() {
        return Err(ImageError::EmptyName(input.into()));
    }
    if !valid_name(name) {
        return Err(ImageError::Name {
            input: input.into(),
            name: name.into(),
        });
    }
    check_ref(input, to.as_ref())?;
    Ok(ImageSpec {
        name: name.to_string(),
        to,
    })
}

/// Check a tag or digest read from somewhere (a source overlay, the API).
pub fn check_ref(input: &str, to: Option<&ImageRef>) -> Result<(), ImageError> {
    match to {
        Some(ImageRef::Tag(t)) if !valid_tag(t) => Err(ImageError::Tag {
            input: input.into(),
            tag: t.clone(),
        }),
        Some(ImageRef::Digest(d)) if !valid_digest(d) => Err(ImageError::Digest {
            input: input.into(),
            digest: d.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            parse("checkout").unwrap(),
            ImageSpec {
                name: "checkout".into(),
                to: None
            }
        );
        assert_eq!(
            parse("registry.local:5000/shop/checkout=v1.2.3").unwrap(),
            ImageSpec {
                name: "registry.local:5000/shop/checkout".into(),
                to: Some(ImageRef::Tag("v1.2.3".into()))
            }
        );
        let d = parse(&format!("ghcr.io/acme/checkout@{D}")).unwrap();
        assert_eq!(d.to, Some(ImageRef::Digest(D.into())));
        assert_eq!(d.to_string(), format!("ghcr.io/acme/checkout@{D}"));
        assert_eq!(parse("a=b").unwrap().to_string(), "a=b");
    }

    #[test]
    fn rejects_bad_references_saying_what_was_expected() {
        let e = parse("=v1").unwrap_err();
        assert!(matches!(e, ImageError::EmptyName(_)));
        let e = parse("Checkout=v1").unwrap_err().to_string();
        assert!(e.contains("invalid image name `Checkout`"), "{e}");
        let e = parse("checkout=").unwrap_err().to_string();
        assert!(
            e.contains("invalid tag ``") && e.contains("[A-Za-z0-9_.-]"),
            "{e}"
        );
        let e = parse("checkout=v1 2").unwrap_err().to_string();
        assert!(e.contains("invalid tag `v1 2`"), "{e}");
        let e = parse("checkout=-v1").unwrap_err().to_string();
        assert!(e.contains("invalid tag"), "{e}");
        let e = parse("checkout@sha256:abc").unwrap_err().to_string();
        assert!(e.contains("invalid digest") && e.contains("64"), "{e}");
        let e = parse(&format!("checkout=v1@{D}")).unwrap_err();
        assert!(matches!(e, ImageError::Both(_)));
        assert!(parse(&format!("checkout@{}", D.to_uppercase())).is_err());
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(valid_tag(&"a".repeat(128)));
    }
}
