//! A faster reader of one YAML document into a [`Value`], for the documents nearly every
//! slogate input is: no anchors, aliases, tags, merge keys, duplicate keys or complex keys,
//! and scalars that are strings, booleans, null or plain decimal numbers. It builds the tree
//! straight from the events of granit-parser (the parser serde-saphyr runs, with the same
//! options) and gives up, answering `None`, on anything else: a parse error, a limit of the
//! [`budget`](super::budget) coming near, or a scalar whose type it does not resolve with
//! certainty. The caller then reads the text with serde-saphyr, as before, so errors,
//! limits and every unusual document get serde-saphyr's answer.
//!
//! Why by hand: serde-saphyr's deserialiser layer (event look-ahead, key fingerprints,
//! budget accounting, serde's visitor calls) costs about two thirds of reading a spec file,
//! and no maintained crate builds an untyped tree from these events. What it answers is what
//! serde-saphyr answers with slogate's options (YAML 1.2 booleans, `0755` and `1_000` as
//! strings): the tests compare both on every YAML file of the repository and on generated
//! scalars, keys and nestings.

use std::borrow::Cow;

use serde_saphyr::granit_parser::{Event, Options, Parser, ScalarStyle};

use super::{Mapping, Number, Value, MAX_DEPTH, MAX_NODES};

/// Deeper than this, serde-saphyr reads the document (and enforces the depth limit).
const DEPTH: usize = MAX_DEPTH - 8;
/// More nodes than this, serde-saphyr reads the document (and enforces the node limit).
const NODES: usize = MAX_NODES / 4;
/// Longer texts go to serde-saphyr, whose scalar-bytes limit (64 MiB) this one stays far
/// below.
const BYTES: usize = 16 << 20;

/// A collection being read: a list, or a mapping with the key waiting for its value.
enum Frame {
    Seq(Vec<Value>),
    Map(Vec<(Value, Value)>, Option<Value>),
}

/// The one document of `text` (a text without document markers), or `None` when
/// serde-saphyr should read it.
pub(super) fn read(text: &str) -> Option<Value> {
    if text.len() > BYTES {
        return None;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    let mut nodes = 0usize;
    let mut documents = 0usize;
    for item in Parser::new_from_str_with_options(text, parser_options()) {
        let (event, _) = item.ok()?;
        let at_key = matches!(stack.last(), Some(Frame::Map(_, None)));
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(explicit, version) => {
                documents += 1;
                if documents > 1 || explicit || version.is_some() {
                    return None;
                }
            }
            Event::Scalar(v, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                nodes += 1;
                let value = if at_key {
                    key(v, style)?
                } else {
                    scalar(v, style)?
                };
                add(&mut stack, &mut root, value)?;
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                if anchor != 0 || tag.is_some() || at_key || stack.len() >= DEPTH {
                    return None;
                }
                nodes += 1;
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(Vec::new())
                } else {
                    Frame::Map(Vec::new(), None)
                });
            }
            Event::SequenceEnd => {
                let Some(Frame::Seq(items)) = stack.pop() else {
                    return None;
                };
                add(&mut stack, &mut root, Value::Sequence(items))?;
            }
            Event::MappingEnd => {
                let Some(Frame::Map(entries, None)) = stack.pop() else {
                    return None;
                };
                if has_duplicate_keys(&entries) {
                    return None;
                }
                add(&mut stack, &mut root, Value::Mapping(Mapping { entries }))?;
            }
            // Aliases, anchors and anything a later parser version adds.
            _ => return None,
        }
        if nodes > NODES {
            return None;
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

/// serde-saphyr's parser options with slogate's budget (what `Budget::parser_options` sets,
/// which is not public): the same events, the same parse errors.
fn parser_options() -> Options {
    let mut o = Options::default();
    if let Some(b) = super::budget() {
        o.simple_key_max_lookahead = b.simple_key_max_lookahead;
        o.flow_nesting_limit = b.flow_nesting_limit;
        o.block_nesting_limit = o.block_nesting_limit.max(b.max_depth.saturating_add(1));
    }
    o.emit_comments = false;
    o
}

/// Put a finished node where it belongs: the root, the next item of a list, a mapping's key
/// or the value of that key. `None` for a second root (not one document).
fn add(stack: &mut [Frame], root: &mut Option<Value>, value: Value) -> Option<()> {
    match stack.last_mut() {
        None if root.is_none() => *root = Some(value),
        None => return None,
        Some(Frame::Seq(items)) => items.push(value),
        Some(Frame::Map(_, pending @ None)) => *pending = Some(value),
        Some(Frame::Map(entries, pending)) => {
            let k = pending.take()?;
            entries.push((k, value));
        }
    }
    Some(())
}

/// Whether two keys of a mapping are the same string (all keys here are strings). The
/// reader refuses duplicates; serde-saphyr says so with its location.
fn has_duplicate_keys(entries: &[(Value, Value)]) -> bool {
    let mut keys: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
    if keys.len() != entries.len() {
        return true;
    }
    if keys.len() <= 8 {
        return keys
            .iter()
            .enumerate()
            .any(|(i, k)| keys[i + 1..].contains(k));
    }
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// A mapping key: a quoted or block scalar, or a plain one that is a string. Other keys
/// (null, numbers, booleans, the `<<` merge key) go to serde-saphyr.
fn key(v: Cow<'_, str>, style: ScalarStyle) -> Option<Value> {
    if v.as_ref() == "<<" {
        return None;
    }
    match scalar(v, style)? {
        s @ Value::String(_) => Some(s),
        _ => None,
    }
}

/// A scalar's value, resolved as serde-saphyr resolves it for an untyped value with
/// slogate's options; `None` when this reader does not know for sure.
fn scalar(v: Cow<'_, str>, style: ScalarStyle) -> Option<Value> {
    if style != ScalarStyle::Plain {
        return Some(Value::String(v.into_owned()));
    }
    let t = v.as_ref();
    // A plain scalar has no surrounding blanks (the scanner drops them); serde-saphyr trims
    // before resolving, so one with any would need its rules.
    if t.starts_with([' ', '\t', '\r', '\n']) || t.ends_with([' ', '\t', '\r', '\n']) {
        return None;
    }
    Some(match t {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        // `underscored_numbers_as_strings` and `leading_zero_numbers_as_strings`.
        _ if t.contains('_') || leading_zero_decimal(t) => Value::String(v.into_owned()),
        _ if !could_be_number(t) => Value::String(v.into_owned()),
        _ => Value::Number(decimal(t)?),
    })
}

/// `0127`, `+0127`, `-0127`: a decimal integer with a redundant leading zero.
fn leading_zero_decimal(t: &str) -> bool {
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether serde-saphyr might read `t` as a number: an integer in any radix, a float in
/// any spelling Rust's float parser takes with a digit (`1e5`, `.5`, `1.`), or a YAML
/// non-finite float (`.inf`, `-.NaN`). What this says no to is a string for sure: `5m`,
/// `30d`, `v1.2`, `2xx`.
fn could_be_number(t: &str) -> bool {
    let s = t.strip_prefix(['+', '-']).unwrap_or(t);
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
        return true;
    }
    // `.5`, `.inf`, `-.NaN`. Without the dot, `inf` and `nan` are strings: Rust's parser
    // reads them as non-finite, which serde-saphyr refuses for a float without a digit.
    if s.starts_with('.') {
        return true;
    }
    // Otherwise only digits, signs, dots and exponents, with a digit among them (Rust's
    // parser wants one; `e`, `E`, `-e` are strings).
    b.iter().any(u8::is_ascii_digit)
        && b.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
}

/// The plain decimal spellings: `0`, `42`, `-7`, `99.9`, `-0.5`. Anything else that may be a
/// number (`1e3`, `+1`, `0x1F`, `.5`, `1.`, an integer beyond 64 bits) is `None`.
fn decimal(t: &str) -> Option<Number> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (negative, unsigned) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if digits(unsigned) {
        // A leading zero reached here only as `0` itself (`-0` is left to serde-saphyr).
        if negative {
            if unsigned.starts_with('0') {
                return None;
            }
            return t.parse::<i64>().ok().map(Number::from);
        }
        return unsigned.parse::<u64>().ok().map(Number::from);
    }
    let (whole, fraction) = unsigned.split_once('.')?;
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let f = t.parse::<f64>().ok()?;
    f.is_finite().then_some(Number::Float(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// What serde-saphyr reads, with slogate's options.
    fn saphyr(text: &str) -> Option<Value> {
        serde_saphyr::from_str_with_options::<Value>(text, super::super::options()).ok()
    }

    /// Both readers agree, or this one gives up; `read` says which.
    fn agree(text: &str) -> bool {
        match read(text) {
            Some(fast) => {
                assert_eq!(
                    format!("{:?}", Some(&fast)),
                    format!("{:?}", saphyr(text).as_ref()),
                    "{text:?}"
                );
                true
            }
            None => false,
        }
    }

    #[test]
    fn scalars_resolve_as_serde_saphyr_resolves_them() {
        let known = [
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "true",
            "True",
            "TRUE",
            "false",
            "False",
            "FALSE",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "nULL",
            "tRUE",
            "0",
            "7",
            "42",
            "-7",
            "18446744073709551615",
            "-9223372036854775808",
            "99.9",
            "-0.5",
            "0.0",
            "-0.0",
            "00.5",
            "0755",
            "-0755",
            "+0755",
            "1_000",
            "1_0.5",
            "5m",
            "30d",
            "2xx",
            "v1.2",
            "abc",
            "x-y",
            "a b",
            "http://x/y?z=1",
            "sum(rate(x[{{.window}}]))",
            "inf",
            "Inf",
            "infinity",
            "nan",
            "NaN",
            "-inf",
            "+nan",
            "-Infinity",
            "E",
            "dead",
            "beef",
            "0d",
            "1d",
            "café",
        ];
        for s in known {
            assert!(agree(&format!("k: {s}\n")), "gave up on {s:?}");
            assert!(agree(&format!("- {s}\n")), "gave up on {s:?}");
        }
    }

    #[test]
    fn it_gives_up_where_it_is_not_sure() {
        let unsure = [
            "1e3",
            "1E+3",
            "+1",
            "0x1F",
            "0o17",
            "0b11",
            ".5",
            "1.",
            "-0",
            ".inf",
            "-.inf",
            ".nan",
            "+.inf",
            "18446744073709551616",
            "-9223372036854775809",
            "1.2.3",
            "2024-01-01",
            "1e999",
            "e5",
            "1e",
            "12e",
            "--1",
        ];
        for s in unsure {
            assert!(!agree(&format!("k: {s}\n")), "answered {s:?}");
        }
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "<<: {a: 1}\nb: 2\n",
            "a: 1\na: 2\n",
            "? [a]\n: 1\n",
            "1: a\n",
            "null: a\n",
            "true: a\n",
            "a: [1, 2\n",
            "a:\n\tb: 1\n",
            "--- a\n",
            "%YAML 1.2\n--- a\n",
        ] {
            assert!(!agree(text), "answered {text:?}");
        }
        let deep = format!("{}1{}", "[".repeat(DEPTH + 1), "]".repeat(DEPTH + 1));
        assert!(read(&deep).is_none());
        let shallow = format!("{}1{}", "[".repeat(DEPTH - 1), "]".repeat(DEPTH - 1));
        assert!(agree(&shallow));
    }

    #[test]
    fn collections_keys_and_styles_read_alike() {
        for text in [
            "a: 1\n",
            "b: [1, 2.5, x, 'y', \"z\\n\"]\n",
            "c: {d: e, f: null}\n",
            "a: 1\nb: [1, 2.5, x, 'y', \"z\\n\"]\nc: {d: e, f: null}\n",
            "- a\n- - b\n  - c\n- {}\n- []\n-\n",
            "'quoted key': 1\n\"other\": |\n  line\n  two\nfolded: >\n  a\n  b\n",
            "'1': a\n\"true\": b\n'': c\n",
            "multi: first\n  second line\n",
            "k: v # comment\n# line comment\n",
            "just a scalar\n",
            "spec:\n  template:\n    metadata:\n      labels: {app: x}\n",
            "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\nj: 10\n",
            "{a, b: 1}\n",
            "[a: 1, b]\n",
            "? a\n: 1\n",
            "a:\n  - 1\n  -\n  - ''\n",
            "a: \"\"\nb: ''\nc: ~\n",
            "a: [[[], {}], {b: [c]}]\n",
            "key with spaces: value with:colon # and a comment\n",
            "url: http://example.com:8080/path\n",
            "a: -x\nb: +x\nd: x.\n",
        ] {
            assert!(agree(text), "gave up on {text:?}");
        }
        // Duplicates among many keys are found too (the sorted check).
        let many: String = (0..20).map(|i| format!("k{i}: 1\n")).collect();
        assert!(agree(&many));
        assert!(!agree(&format!("{many}k7: 2\n")));
    }

    /// 20,000 random texts from YAML pieces (indentation, block and flow collections, keys,
    /// quotes, anchors, aliases, tags, merge keys, comments, block scalars; a fixed-seed
    /// generator), most of them broken: whenever this reader answers, it is serde-saphyr's
    /// value.
    #[test]
    fn random_texts_agree_or_are_left_to_serde_saphyr() {
        const PIECES: &[&str] = &[
            "a",
            "b",
            ": ",
            ":",
            "- ",
            "-",
            "\n",
            "  ",
            "    ",
            "{",
            "}",
            "[",
            "]",
            ", ",
            "'q'",
            "\"d\"",
            "\"e\\n\"",
            "1",
            "0.5",
            "-2",
            "true",
            "null",
            "~",
            "&x ",
            "*x",
            "!t ",
            "<<",
            "? ",
            " #c",
            "|\n  t\n",
            ">\n  f\n",
            "0x1",
            "1e3",
            "5m",
            "''",
            "\t",
            "---",
            "...",
            "%",
            "\"",
            "'",
            "a: 1\n",
            "- 2\n",
            "k:\n  - v\n",
        ];
        let mut rng = StdRng::seed_from_u64(0x7ee5);
        let mut next = |n: usize| rng.random_range(0..n);
        let mut answered = 0;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..1 + next(16) {
                text.push_str(PIECES[next(PIECES.len())]);
            }
            text.push('\n');
            if !super::super::has_document_markers(&text) && agree(&text) {
                answered += 1;
            }
        }
        eprintln!("tree reader: {answered} of 20000 random texts answered");
        // Enough of them are valid and plain for the comparison to mean something.
        assert!(answered > 2_000, "{answered} answered");
    }

    /// Generated scalars of every shape near the numbers: each answer is serde-saphyr's.
    #[test]
    fn generated_scalars_agree_or_are_left_to_serde_saphyr() {
        let alphabet = [
            "0", "1", "9", ".", "-", "+", "e", "_", "x", "d", "m", "n", "a", "i", "f",
        ];
        let mut answered = 0;
        let mut total = 0;
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let s = format!("{a}{b}{c}");
                    // Not scalars in this position: a sequence entry, a document marker.
                    if s.starts_with("- ") || s == "---" || s == "..." {
                        continue;
                    }
                    for text in [format!("k: {s}\n"), format!("- {s}\n")] {
                        total += 1;
                        if agree(&text) {
                            answered += 1;
                        }
                    }
                }
            }
        }
        // Most shapes are answered here, not left to serde-saphyr.
        assert!(answered * 2 > total, "{answered} of {total}");
    }
}
