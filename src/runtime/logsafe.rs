//! Strings from requests, made safe to log.
//!
//! tracing's text format writes a string field as it is: a newline in an alert label would
//! start a new, forged log line, and escape codes would drive the terminal of whoever reads
//! the log (tracing-subscriber escapes ANSI escapes but not line breaks). [`Escaped`] writes
//! every control character (C0, DEL, C1) and the Unicode line and paragraph separators as
//! an escape (`\n`, `\u{1b}`), and cuts the value after [`MAX_CHARS`] characters.
//!
//! Use it for every logged value that a client chose: `field = %Escaped(&s)`.

use std::fmt;

/// Characters of a value written before it is cut.
pub const MAX_CHARS: usize = 200;

/// A client-chosen string, displayed escaped and cut (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let mut chars = self.0.chars();
        for ch in chars.by_ref().take(MAX_CHARS) {
            if ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}' | '\\') {
                write!(f, "{}", ch.escape_default())?;
            } else {
                f.write_char(ch)?;
            }
        }
        let rest = chars.count();
        if rest > 0 {
            write!(f, "…({rest} more characters)")?;
        }
        Ok(())
    }
}

/// [`Escaped`] of an optional value (`""` when absent).
pub fn opt(v: Option<&str>) -> Escaped<'_> {
    Escaped(v.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO slogate: forged\r\x1b[31mred\u{9b}\u{2028}";
        let out = Escaped(forged).to_string();
        assert!(
            !out.contains(['\n', '\r', '\x1b', '\u{9b}', '\u{2028}']),
            "{out}"
        );
        assert_eq!(
            out,
            "x\\n2026-01-01T00:00:00Z  INFO slogate: forged\\r\\u{1b}[31mred\\u{9b}\\u{2028}"
        );
        // A backslash is doubled, so an escape in the output always came from this escaping.
        assert_eq!(Escaped("a\\nb").to_string(), "a\\\\nb");
        assert_eq!(Escaped("plain-value_1").to_string(), "plain-value_1");
        let long = "é".repeat(MAX_CHARS + 50);
        let out = Escaped(&long).to_string();
        assert!(out.starts_with(&"é".repeat(MAX_CHARS)));
        assert!(out.ends_with("…(50 more characters)"), "{out}");
    }
}
