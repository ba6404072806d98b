//! Edit the `images:` list of a `kustomization.yaml` without touching anything else.
//!
//! A YAML library round trip would drop comments and re-quote values, and a GitOps repo's
//! kustomization files are written (and reviewed) by humans. So the edit is done on the
//! text, line by line, and a YAML parse guards it on both sides:
//!
//! 1. **Parse** the file with [`crate::model::yaml`] (invalid YAML is refused, and the parse is the
//!    reference for what the file means).
//! 2. **Scan** the text for the top-level `images:` block list and its entries: the lines
//!    of each entry, the keys at the entry's key column, and the exact byte span of each
//!    single-line scalar value with its quoting style (plain, `'single'`, `"double"`).
//!    The entries the scan finds must be the ones the parse found (same names, same
//!    values, same order), or the file is refused as one the scanner does not understand.
//! 3. **Edit** only the spans and lines that must change: replace a value in its own
//!    quoting style (a plain value that would not read back as the same string is
//!    double-quoted), delete a line, or insert lines at the entry's indentation. Every
//!    other byte is copied: comments, blank lines, key order, quoting, CRLF line ends, a
//!    missing final newline, a byte-order mark.
//! 4. **Verify** by parsing the result and comparing it with the original parse changed
//!    by exactly the intended fields. Any difference is an error and the file is left as
//!    it was.
//!
//! Setting a tag removes the entry's `digest` (kustomize prefers a digest over a tag) and
//! setting a digest removes its `newTag`, as `kustomize edit set image` does. An image
//! that is not listed gets a new entry at the end of the list.
//!
//! Supported: block lists (`images:` followed by `- name: …` entries, the dash indented
//! or not), entries whose keys start on the dash line or on the next line, any comments,
//! an empty `images: []`, and no `images` field at all (it is added at the end of the
//! file, as `kustomize edit set image` adds it). When a digest replaces a tag, the digest
//! takes the `newTag:` line, so an inline comment there stays. Refused with an error naming
//! the line: flow lists with entries (`images: [{name: a}]`), flow-mapping entries,
//! anchors, aliases, tags and multi-line values in the fields that change.

use crate::model::yaml::{self, Mapping, Value};
use serde::Serialize;

use super::image::ImageRef;

/// One entry of `images:`, as kustomize reads it (values as written, quotes removed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageEntry {
    /// What the image runs at: the digest when set (kustomize prefers it), else the tag.
    pub fn current(&self) -> Option<ImageRef> {
        match (&self.digest, &self.new_tag) {
            (Some(d), _) => Some(ImageRef::Digest(d.clone())),
            (None, Some(t)) => Some(ImageRef::Tag(t.clone())),
            (None, None) => None,
        }
    }
}

/// The change to make to one image's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEdit {
    /// The entry's `name`.
    pub name: String,
    /// A new `newName`, when it changes.
    pub new_name: Option<String>,
    /// The new tag or digest.
    pub to: Option<ImageRef>,
}

/// Why a kustomization could not be read or edited. Every message names the file and
/// says what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KustomizeError {
    /// The file is not YAML: the parser's error is the source.
    #[error("{file}: invalid YAML: {source}")]
    Yaml {
        file: String,
        #[source]
        source: yaml::YamlError,
    },
    #[error("{file}: expected a Kustomization (a YAML mapping at the top level), found {found}")]
    NotAMapping { file: String, found: String },
    #[error(
        "{file}: no top-level `images` field: expected an `images:` list with one \
         `- name: IMAGE` entry per image (`images: []` when there is none yet)"
    )]
    NoImages { file: String },
    #[error("{file}: field `images`: expected a list of entries, found {found}")]
    ImagesNotAList { file: String, found: String },
    #[error("{file}: field `images[{index}]`: {message}")]
    Entry {
        file: String,
        index: usize,
        message: String,
    },
    #[error(
        "{file}: image `{name}` is listed {count} times under `images`: expected one entry \
         per image name"
    )]
    Duplicate {
        file: String,
        name: String,
        count: usize,
    },
    #[error("{file}: image `{name}` is not listed under `images` (listed: {listed})")]
    NotListed {
        file: String,
        name: String,
        listed: String,
    },
    #[error("{file}: line {line}: {what} is not supported: expected {expected}")]
    Unsupported {
        file: String,
        line: usize,
        what: String,
        expected: String,
    },
    #[error("{file}: refusing the edit, the result does not check out: {message}")]
    Verify { file: String, message: String },
}

// ---------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------

/// Every entry of `images:` (in file order). A file without `images` is an error.
pub fn read_images(file: &str, text: &str) -> Result<Vec<ImageEntry>, KustomizeError> {
    let (_, body) = split_bom(text);
    let doc = parse_doc(file, body)?;
    let from_parse = entries_from_value(file, &doc)?;
    let lines = split_lines(body);
    match scan(file, &lines) {
        Ok(scan) => {
            cross_check(file, &from_parse, &scan)?;
            Ok(scan.entries())
        }
        // A layout the editor does not handle can still be read: the parse is exact for
        // every value that is a string.
        Err(KustomizeError::Unsupported { .. }) => from_parse
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.into_entry(file, i))
            .collect(),
        Err(e) => Err(e),
    }
}

/// The entry of one image. Errors when it is missing or listed twice.
pub fn read_image(file: &str, text: &str, name: &str) -> Result<ImageEntry, KustomizeError> {
    let entries = read_images(file, text)?;
    let found: Vec<&ImageEntry> = entries.iter().filter(|e| e.name == name).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(KustomizeError::NotListed {
            file: file.into(),
            name: name.into(),
            listed: listed(&entries),
        }),
        many => Err(KustomizeError::Duplicate {
            file: file.into(),
            name: name.into(),
            count: many.len(),
        }),
    }
}

/// Apply `edit` to the text of a kustomization. Returns the new text, which is the input
/// itself, byte for byte, when the entry already says what the edit asks for.
pub fn set_image(file: &str, text: &str, edit: &ImageEdit) -> Result<String, KustomizeError> {
    let (bom, body) = split_bom(text);
    let doc = parse_doc(file, body)?;
    let (sets, removes) = planned_changes(file, edit)?;
    if doc.get("images").is_none() {
        // A line that reads as an `images:` key although the YAML has none (it is inside a
        // multi-line quoted string): a field added now would make the next edit read two
        // (found by the `kustomize` fuzz target).
        if let Some(&line) = images_key_lines(&split_lines(body)).1.first() {
            return Err(unsupported(
                file,
                line,
                "an `images:` line that the YAML reads as part of a string",
                "one `images` field",
            ));
        }
        // As `kustomize edit set image` does: add the field, with the one entry.
        return add_images_field(file, bom, body, &doc, &edit.name, &sets);
    }
    let from_parse = entries_from_value(file, &doc)?;
    let lines = split_lines(body);
    let scan = scan(file, &lines)?;
    cross_check(file, &from_parse, &scan)?;

    let matching: Vec<usize> = scan
        .items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.name.as_deref() == Some(edit.name.as_str()))
        .map(|(i, _)| i)
        .collect();
    if matching.len() > 1 {
        return Err(KustomizeError::Duplicate {
            file: file.into(),
            name: edit.name.clone(),
            count: matching.len(),
        });
    }
    let mut ops: Vec<Op> = Vec::new();
    match matching.first() {
        Some(&i) => edit_item(file, &lines, &scan.items[i], &sets, &removes, &mut ops)?,
        None => append_item(&scan, &edit.name, &sets, &mut ops),
    }
    if ops.is_empty() {
        return Ok(text.to_string());
    }
    let out = apply(&lines, ops);
    verify(file, &doc, &out, &edit.name, &sets, &removes)?;
    Ok(format!("{bom}{out}"))
}

type Sets = Vec<(&'static str, String)>;

/// The fields an edit sets and removes: a tag removes the digest and a digest removes the
/// tag, as `kustomize edit set image` does.
fn planned_changes(
    file: &str,
    edit: &ImageEdit,
) -> Result<(Sets, Vec<&'static str>), KustomizeError> {
    let mut sets: Sets = Vec::new();
    let mut removes: Vec<&'static str> = Vec::new();
    if let Some(n) = &edit.new_name {
        sets.push(("newName", n.clone()));
    }
    match &edit.to {
        Some(ImageRef::Tag(t)) => {
            sets.push(("newTag", t.clone()));
            removes.push("digest");
        }
        Some(ImageRef::Digest(d)) => {
            sets.push(("digest", d.clone()));
            removes.push("newTag");
        }
        None => {}
    }
    if sets.is_empty() {
        return Err(KustomizeError::Verify {
            file: file.into(),
            message: "the edit changes nothing: expected a new tag, digest or name".into(),
        });
    }
    Ok((sets, removes))
}

/// The edited text must parse to the original document with exactly these changes.
fn verify(
    file: &str,
    doc: &Value,
    out: &str,
    name: &str,
    sets: &[(&str, String)],
    removes: &[&str],
) -> Result<(), KustomizeError> {
    let mut expected = doc.clone();
    apply_to_value(&mut expected, name, sets, removes);
    let got = yaml::from_str::<Value>(out).map_err(|e| KustomizeError::Verify {
        file: file.into(),
        message: format!("the edited text is not valid YAML ({e})"),
    })?;
    if got != expected {
        return Err(KustomizeError::Verify {
            file: file.into(),
            message: "the edited text means something else than the intended change".into(),
        });
    }
    Ok(())
}

/// A kustomization without `images`: append the field with one entry at the end of the
/// file (every other byte kept), as `kustomize edit set image` adds it.
fn add_images_field(
    file: &str,
    bom: &str,
    body: &str,
    doc: &Value,
    name: &str,
    sets: &[(&'static str, String)],
) -> Result<String, KustomizeError> {
    let eol = if body.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = body.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str("images:");
    out.push_str(eol);
    out.push_str(&format!("- name: {}{eol}", render(name, Style::Plain)));
    for (key, value) in sets {
        out.push_str(&format!("  {key}: {}{eol}", render(value, Style::Plain)));
    }
    verify(file, doc, &out, name, sets, &[])?;
    Ok(format!("{bom}{out}"))
}

fn listed(entries: &[ImageEntry]) -> String {
    if entries.is_empty() {
        "none".into()
    } else {
        entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---------------------------------------------------------------------------------------
// The parse side
// ---------------------------------------------------------------------------------------

const FIELDS: [&str; 4] = ["name", "newName", "newTag", "digest"];

fn split_bom(text: &str) -> (&str, &str) {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
    }
}

fn parse_doc(file: &str, body: &str) -> Result<Value, KustomizeError> {
    let doc: Value = yaml::from_str(body).map_err(|source| KustomizeError::Yaml {
        file: file.into(),
        source,
    })?;
    if !doc.is_mapping() {
        return Err(KustomizeError::NotAMapping {
            file: file.into(),
            found: kind_of(&doc).into(),
        });
    }
    Ok(doc)
}

/// A field of an entry as the parse sees it.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    Absent,
    Str(String),
    /// A number or boolean: kustomize (Go) reads the text as written, which the scan has.
    Scalar(Value),
}

#[derive(Debug, Clone)]
struct ParsedEntry {
    fields: [Parsed; 4],
}

impl ParsedEntry {
    fn into_entry(self, file: &str, index: usize) -> Result<ImageEntry, KustomizeError> {
        let mut out: [Option<String>; 4] = Default::default();
        for (slot, (f, key)) in out.iter_mut().zip(self.fields.into_iter().zip(FIELDS)) {
            *slot = match f {
                Parsed::Absent => None,
                Parsed::Str(s) => Some(s),
                Parsed::Scalar(v) => {
                    return Err(KustomizeError::Entry {
                        file: file.into(),
                        index,
                        message: format!(
                            "field `{key}` is {}: expected a string (quote it)",
                            kind_of(&v)
                        ),
                    })
                }
            };
        }
        let [name, new_name, new_tag, digest] = out;
        Ok(ImageEntry {
            name: name.unwrap_or_default(),
            new_name,
            new_tag,
            digest,
        })
    }
}

/// The `images` entries of the parsed document, checked.
fn entries_from_value(file: &str, doc: &Value) -> Result<Vec<ParsedEntry>, KustomizeError> {
    let images = match doc.get("images") {
        None => return Err(KustomizeError::NoImages { file: file.into() }),
        Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(s)) => s,
        Some(other) => {
            return Err(KustomizeError::ImagesNotAList {
                file: file.into(),
                found: kind_of(other).into(),
            })
        }
    };
    let mut out = Vec::with_capacity(images.len());
    for (index, item) in images.iter().enumerate() {
        let entry_err = |message: String| KustomizeError::Entry {
            file: file.into(),
            index,
            message,
        };
        let Value::Mapping(m) = item else {
            return Err(entry_err(format!(
                "expected a mapping with `name` and `newTag`, `newName` or `digest`, found {}",
                kind_of(item)
            )));
        };
        let mut fields: [Parsed; 4] = [
            Parsed::Absent,
            Parsed::Absent,
            Parsed::Absent,
            Parsed::Absent,
        ];
        for (slot, key) in fields.iter_mut().zip(FIELDS) {
            *slot = match m.get(key) {
                None => Parsed::Absent,
                Some(Value::String(s)) => Parsed::Str(s.clone()),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Parsed::Scalar(v.clone()),
                Some(v) => {
                    return Err(entry_err(format!(
                        "field `{key}` is {}: expected a string",
                        kind_of(v)
                    )))
                }
            };
        }
        match &fields[0] {
            Parsed::Str(s) if !s.is_empty() => {}
            Parsed::Absent => {
                return Err(entry_err("has no `name`: expected the image name".into()))
            }
            _ => {
                return Err(entry_err(
                    "field `name`: expected a non-empty string".into(),
                ))
            }
        }
        out.push(ParsedEntry { fields });
    }
    Ok(out)
}

/// The parse and the scan must agree on every entry and every field of interest.
fn cross_check(file: &str, parsed: &[ParsedEntry], scan: &Scan) -> Result<(), KustomizeError> {
    let mismatch = |what: String| KustomizeError::Unsupported {
        file: file.into(),
        line: scan.key_line + 1,
        what: format!("this layout of `images` ({what})"),
        expected: "a plain block list of `- name: …` entries, one key per line".into(),
    };
    if parsed.len() != scan.items.len() {
        return Err(mismatch(format!(
            "the YAML has {} entries, the lines show {}",
            parsed.len(),
            scan.items.len()
        )));
    }
    for (i, (p, item)) in parsed.iter().zip(&scan.items).enumerate() {
        for (f, key) in p.fields.iter().zip(FIELDS) {
            let scanned = item.field(key);
            let same = match (f, scanned) {
                (Parsed::Absent, None) => true,
                (Parsed::Str(s), Some(fl)) => fl.decoded() == Some(s.as_str()),
                (Parsed::Scalar(_), Some(fl)) => matches!(
                    &fl.value,
                    ValueKind::Scalar(sp) if sp.style == Style::Plain
                ),
                _ => false,
            };
            if !same {
                // Say what the scanner saw on that line when it can.
                if let Some(fl) = scanned {
                    let what = match (&fl.value, fl.continued) {
                        (ValueKind::Other(w), _) => Some((*w).to_string()),
                        (ValueKind::Scalar(_), true) => Some("a multi-line value".into()),
                        (ValueKind::Empty, _) => Some("a value on the next lines".into()),
                        _ => None,
                    };
                    if let Some(what) = what {
                        return Err(unsupported(
                            file,
                            fl.line,
                            format!("{what} for `{key}`"),
                            "a plain or quoted string on the key's line",
                        ));
                    }
                }
                return Err(mismatch(format!(
                    "entry {i}, field `{key}` reads differently"
                )));
            }
        }
    }
    Ok(())
}

/// The document with the intended change, to compare the edited text's parse against.
fn apply_to_value(doc: &mut Value, name: &str, sets: &[(&str, String)], removes: &[&str]) {
    let Value::Mapping(root) = doc else { return };
    let images = root.entry("images");
    if images.is_null() {
        *images = Value::Sequence(Vec::new());
    }
    let Value::Sequence(list) = images else {
        return;
    };
    let found = list
        .iter_mut()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name));
    match found {
        Some(Value::Mapping(m)) => {
            for (k, v) in sets {
                m.insert(Value::String((*k).into()), Value::String(v.clone()));
            }
            for k in removes {
                m.remove(k);
            }
        }
        _ => {
            let mut m = Mapping::new();
            m.insert("name", Value::String(name.into()));
            for (k, v) in sets {
                m.insert(Value::String((*k).into()), Value::String(v.clone()));
            }
            list.push(Value::Mapping(m));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The text side
// ---------------------------------------------------------------------------------------

/// One line: its content without the line end, and the line end (`\n`, `\r\n`, or empty
/// for a last line without one).
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    eol: &'a str,
}

fn split_lines(body: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                let (text, eol) = if i > 0 && rest.as_bytes()[i - 1] == b'\r' {
                    (&rest[..i - 1], &rest[i - 1..=i])
                } else {
                    (&rest[..i], &rest[i..=i])
                };
                out.push(Line { text, eol });
                rest = &rest[i + 1..];
            }
            None => {
                out.push(Line {
                    text: rest,
                    eol: "",
                });
                rest = "";
            }
        }
    }
    out
}

fn indent(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

/// Blank or comment-only: no structure.
/// A document start marker: `---` alone or followed by a space or tab (`---apiVersion: x`
/// is a key).
fn is_document_start(s: &str) -> bool {
    s.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn is_noise(s: &str) -> bool {
    let t = s.trim_start_matches([' ', '\t']);
    t.is_empty() || t.starts_with('#')
}

/// A sequence entry line at `col`: `-` followed by a space or the end of the line.
fn is_dash_at(s: &str, col: usize) -> bool {
    indent(s) == col && {
        let rest = &s[col..];
        rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ScalarSpan {
    /// Byte range of the value (with its quotes) in the line.
    start: usize,
    end: usize,
    style: Style,
    decoded: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ValueKind {
    /// Nothing after the colon (a nested value or null follows).
    Empty,
    Scalar(ScalarSpan),
    /// Something the editor does not rewrite: what it is.
    Other(&'static str),
}

#[derive(Debug, Clone)]
struct Field {
    key: String,
    line: usize,
    value: ValueKind,
    /// Lines deeper than the key column follow it (a multi-line or nested value).
    continued: bool,
}

impl Field {
    fn decoded(&self) -> Option<&str> {
        match &self.value {
            ValueKind::Scalar(s) if !self.continued => Some(&s.decoded),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Item {
    dash_line: usize,
    /// Column of the entry's keys.
    key_col: usize,
    /// Whether the first key is on the dash line.
    key_on_dash: bool,
    fields: Vec<Field>,
    /// The last line that is not blank or a comment.
    last_line: usize,
    name: Option<String>,
}

impl Item {
    fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }
}

#[derive(Debug, Clone)]
struct Scan {
    key_line: usize,
    key_indent: usize,
    /// Column of the dashes, when the list has entries.
    seq_indent: Option<usize>,
    items: Vec<Item>,
    /// `images: []`: the byte range to remove (the brackets and the space before them).
    flow_empty: Option<(usize, usize)>,
}

impl Scan {
    fn entries(&self) -> Vec<ImageEntry> {
        self.items
            .iter()
            .map(|it| {
                let get = |k: &str| it.field(k).and_then(Field::decoded).map(str::to_string);
                ImageEntry {
                    name: it.name.clone().unwrap_or_default(),
                    new_name: get("newName"),
                    new_tag: get("newTag"),
                    digest: get("digest"),
                }
            })
            .collect()
    }
}

/// Parse a mapping key starting at byte `col`: returns the key and the byte index just
/// after its colon, or `None` when the line is not `key: …` there.
fn parse_key(s: &str, col: usize) -> Option<(String, usize)> {
    let rest = s.get(col..)?;
    let (key, after) = if rest.starts_with('"') || rest.starts_with('\'') {
        let span = quoted(rest, 0)?;
        (span.decoded, col + span.end)
    } else {
        // A plain key ends at the first `:` followed by a space or the end of the line.
        let bytes = rest.as_bytes();
        let mut i = 0;
        loop {
            if i >= bytes.len() {
                return None;
            }
            if bytes[i] == b'#' && (i == 0 || bytes[i - 1] == b' ') {
                return None;
            }
            if bytes[i] == b':'
                && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t')
            {
                break;
            }
            i += 1;
        }
        let key = rest[..i].trim_end();
        let indicator = key.starts_with([
            '[', '{', '&', '*', '!', '|', '>', '%', '@', '`', '?', '#', ',', ']', '}',
        ]) || key == "-"
            || key.starts_with("- ");
        if key.is_empty() || indicator {
            return None;
        }
        return Some((key.to_string(), col + i + 1));
    };
    // After a quoted key: optional spaces, then the colon.
    let tail = &s[after..];
    let sp = tail.len() - tail.trim_start_matches(' ').len();
    let tail = &tail[sp..];
    if tail.starts_with(':') && (tail.len() == 1 || tail[1..].starts_with([' ', '\t'])) {
        Some((key, after + sp + 1))
    } else {
        None
    }
}

/// A quoted scalar starting at byte `at` of `s`; `None` when it does not close on the line
/// or has an escape this scanner does not know.
fn quoted(s: &str, at: usize) -> Option<ScalarSpan> {
    let rest = &s[at..];
    let q = rest.chars().next()?;
    let mut decoded = String::new();
    let mut chars = rest.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if q == '\'' {
            if c == '\'' {
                if matches!(chars.peek(), Some((_, '\''))) {
                    decoded.push('\'');
                    chars.next();
                    continue;
                }
                return Some(ScalarSpan {
                    start: at,
                    end: at + i + 1,
                    style: Style::Single,
                    decoded,
                });
            }
            decoded.push(c);
        } else {
            match c {
                '"' => {
                    return Some(ScalarSpan {
                        start: at,
                        end: at + i + 1,
                        style: Style::Double,
                        decoded,
                    })
                }
                '\\' => {
                    let (_, e) = chars.next()?;
                    let simple = match e {
                        '0' => Some('\0'),
                        'a' => Some('\u{7}'),
                        'b' => Some('\u{8}'),
                        't' | '\t' => Some('\t'),
                        'n' => Some('\n'),
                        'v' => Some('\u{b}'),
                        'f' => Some('\u{c}'),
                        'r' => Some('\r'),
                        'e' => Some('\u{1b}'),
                        ' ' => Some(' '),
                        '"' => Some('"'),
                        '/' => Some('/'),
                        '\\' => Some('\\'),
                        'N' => Some('\u{85}'),
                        '_' => Some('\u{a0}'),
                        'L' => Some('\u{2028}'),
                        'P' => Some('\u{2029}'),
                        _ => None,
                    };
                    match (simple, e) {
                        (Some(ch), _) => decoded.push(ch),
                        (None, 'x' | 'u' | 'U') => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let mut hex = String::new();
                            for _ in 0..n {
                                hex.push(chars.next()?.1);
                            }
                            let code = u32::from_str_radix(&hex, 16).ok()?;
                            decoded.push(char::from_u32(code)?);
                        }
                        _ => return None,
                    }
                }
                _ => decoded.push(c),
            }
        }
    }
    None
}

/// The value after a key's colon (byte `from` of `s`).
fn parse_value(s: &str, from: usize) -> ValueKind {
    let rest = &s[from..];
    let lead = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let start = from + lead;
    let v = &s[start..];
    if v.is_empty() || v.starts_with('#') {
        return ValueKind::Empty;
    }
    let first = v.as_bytes()[0];
    match first {
        b'"' | b'\'' => match quoted(s, start) {
            Some(span) => {
                let after = s[span.end..].trim_start_matches([' ', '\t']);
                if after.is_empty()
                    || (after.starts_with('#') && s[span.end..].starts_with([' ', '\t']))
                {
                    ValueKind::Scalar(span)
                } else {
                    ValueKind::Other("text after a quoted value")
                }
            }
            None => ValueKind::Other("a quoted value that spans several lines"),
        },
        b'|' | b'>' => ValueKind::Other("a block scalar (`|` or `>`)"),
        b'[' | b'{' => ValueKind::Other("a flow collection (`[…]` or `{…}`)"),
        b'&' => ValueKind::Other("an anchor (`&…`)"),
        b'*' => ValueKind::Other("an alias (`*…`)"),
        b'!' => ValueKind::Other("a tag (`!…`)"),
        b'@' | b'`' => ValueKind::Other("a reserved indicator (`@` or `` ` ``)"),
        _ => {
            // A plain scalar ends before ` #` or at the end of the line.
            let bytes = v.as_bytes();
            let mut end = v.len();
            for i in 1..bytes.len() {
                if bytes[i] == b'#' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                    end = i;
                    break;
                }
            }
            let text = v[..end].trim_end_matches([' ', '\t']);
            ValueKind::Scalar(ScalarSpan {
                start,
                end: start + text.len(),
                style: Style::Plain,
                decoded: text.to_string(),
            })
        }
    }
}

fn unsupported(file: &str, line: usize, what: impl Into<String>, expected: &str) -> KustomizeError {
    KustomizeError::Unsupported {
        file: file.into(),
        line: line + 1,
        what: what.into(),
        expected: expected.into(),
    }
}

const BLOCK_LIST: &str = "a block list: `images:` followed by `- name: IMAGE` lines";

/// Find the top-level `images:` block and its entries.
/// The top-level indentation (that of the first line with content) and the lines that
/// read, line by line, as a top-level `images` key.
fn images_key_lines(lines: &[Line<'_>]) -> (usize, Vec<usize>) {
    let top = lines
        .iter()
        .find(|l| !is_noise(l.text) && !is_document_start(l.text) && !l.text.starts_with('%'))
        .map(|l| indent(l.text))
        .unwrap_or(0);
    let keys = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !is_noise(l.text) && indent(l.text) == top)
        .filter(|(_, l)| parse_key(l.text, top).is_some_and(|(k, _)| k == "images"))
        .map(|(i, _)| i)
        .collect();
    (top, keys)
}

fn scan(file: &str, lines: &[Line<'_>]) -> Result<Scan, KustomizeError> {
    let (top, keys) = images_key_lines(lines);
    if let Some(&second) = keys.get(1) {
        return Err(unsupported(
            file,
            second,
            "a second `images` key",
            "one `images` field",
        ));
    }
    let key_line = keys.first().copied();
    // The callers scan only when the parse found `images`: not finding it here means the
    // scanner misreads the layout.
    let Some(key_line) = key_line else {
        return Err(unsupported(
            file,
            0,
            "a layout where the top-level `images` key is not found line by line",
            "`images:` at the indentation of the file's first key",
        ));
    };
    let kl = lines[key_line].text;
    let (_, after_colon) = parse_key(kl, top)
        .ok_or_else(|| unsupported(file, key_line, "this `images` key", BLOCK_LIST))?;
    let mut out = Scan {
        key_line,
        key_indent: top,
        seq_indent: None,
        items: Vec::new(),
        flow_empty: None,
    };
    // What follows the colon on the key line.
    let rest = &kl[after_colon..];
    let trimmed = rest.trim_start_matches([' ', '\t']);
    if !(trimmed.is_empty() || trimmed.starts_with('#')) {
        let empty_flow = trimmed.starts_with("[]") && {
            let after = trimmed[2..].trim_start_matches([' ', '\t']);
            after.is_empty() || (after.starts_with('#') && trimmed[2..].starts_with([' ', '\t']))
        };
        if empty_flow {
            let bracket = after_colon + (rest.len() - trimmed.len());
            let start = if bracket > after_colon {
                bracket - 1
            } else {
                bracket
            };
            out.flow_empty = Some((start, bracket + 2));
            return Ok(out);
        }
        let what = match trimmed.as_bytes()[0] {
            b'[' => "a flow-style list (`images: [...]`)",
            b'&' => "an anchor on `images`",
            b'*' => "an alias for `images`",
            b'!' => "a tag on `images`",
            _ => "a value on the `images:` line",
        };
        return Err(unsupported(file, key_line, what, BLOCK_LIST));
    }

    // The block: entries start with a dash at the sequence column.
    let mut i = key_line + 1;
    let first = (i..lines.len()).find(|&j| !is_noise(lines[j].text));
    let Some(first) = first else { return Ok(out) };
    let fi = indent(lines[first].text);
    let is_list = fi >= top && is_dash_at(lines[first].text, fi);
    if !is_list {
        if fi > top {
            return Err(unsupported(
                file,
                first,
                "a mapping under `images`",
                BLOCK_LIST,
            ));
        }
        return Ok(out); // `images:` with nothing: null, an empty list
    }
    let seq = fi;
    out.seq_indent = Some(seq);
    i = first;
    let mut current: Option<Item> = None;
    while i < lines.len() {
        let t = lines[i].text;
        if is_noise(t) {
            i += 1;
            continue;
        }
        let ind = indent(t);
        if ind < seq || (ind == seq && !is_dash_at(t, seq)) {
            break; // the end of the list
        }
        if ind == seq {
            if let Some(done) = current.take() {
                out.items.push(done);
            }
            current = Some(start_item(file, lines, i, seq)?);
            i += 1;
            continue;
        }
        // A line inside the current entry.
        let Some(item) = current.as_mut() else {
            return Err(unsupported(file, i, "this line", BLOCK_LIST));
        };
        item.last_line = i;
        if item.key_col == usize::MAX {
            item.key_col = ind;
        }
        if ind == item.key_col {
            let Some((key, after)) = parse_key(t, ind) else {
                return Err(unsupported(
                    file,
                    i,
                    "a line that is not `key: value` in an image entry",
                    "one `key: value` per line",
                ));
            };
            item.fields.push(Field {
                key,
                line: i,
                value: parse_value(t, after),
                continued: false,
            });
        } else if ind > item.key_col {
            match item.fields.last_mut() {
                Some(f) => f.continued = true,
                None => return Err(unsupported(file, i, "this indentation", BLOCK_LIST)),
            }
        } else {
            return Err(unsupported(
                file,
                i,
                "a line indented between the dash and the entry's keys",
                "the keys of an entry aligned",
            ));
        }
        i += 1;
    }
    if let Some(done) = current.take() {
        out.items.push(done);
    }
    for item in &mut out.items {
        item.name = item
            .field("name")
            .and_then(Field::decoded)
            .map(str::to_string);
    }
    Ok(out)
}

/// An entry starting with the dash at `line`.
fn start_item(
    file: &str,
    lines: &[Line<'_>],
    line: usize,
    seq: usize,
) -> Result<Item, KustomizeError> {
    let t = lines[line].text;
    let after_dash = &t[seq + 1..];
    let gap = after_dash.len() - after_dash.trim_start_matches(' ').len();
    let content = &after_dash[gap..];
    let mut item = Item {
        dash_line: line,
        key_col: usize::MAX,
        key_on_dash: false,
        fields: Vec::new(),
        last_line: line,
        name: None,
    };
    if content.is_empty() || content.starts_with('#') {
        return Ok(item); // keys start on the next line
    }
    if content.starts_with(['{', '[']) {
        return Err(unsupported(
            file,
            line,
            "a flow-style entry (`- {name: …}`)",
            "one `key: value` per line",
        ));
    }
    let col = seq + 1 + gap;
    let Some((key, after)) = parse_key(t, col) else {
        return Err(unsupported(
            file,
            line,
            "an entry that is not a mapping",
            "`- name: IMAGE` followed by `newTag: …`",
        ));
    };
    item.key_col = col;
    item.key_on_dash = true;
    item.fields.push(Field {
        key,
        line,
        value: parse_value(t, after),
        continued: false,
    });
    Ok(item)
}

// ---------------------------------------------------------------------------------------
// Rendering values
// ---------------------------------------------------------------------------------------

/// True when `v` can be written as a plain scalar and reads back as that very string in
/// YAML 1.1 and 1.2 (so neither slogate's reader nor kustomize's Go YAML sees a number, boolean,
/// null, timestamp or sexagesimal number).
pub fn plain_safe(v: &str) -> bool {
    let Some(first) = v.chars().next() else {
        return false;
    };
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '+'))
    {
        return false;
    }
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return false;
    }
    if v.ends_with(':') || v.contains("::") {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "yes" | "n" | "no" | "true" | "false" | "on" | "off" | "null" | "nan" | "inf"
    ) {
        return false;
    }
    // Anything number-like or date-like starting with a digit: quote it. Tags such as
    // `1.2.3` are strings in YAML, but `1.10`, `1e3`, `1:20`, `0x1f` and `2024-01-02` are
    // not, and the distinction is not worth a reviewer's doubt.
    if first.is_ascii_digit() {
        let only_digits_and_dots_or_dashes = v
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
        let dots = v.matches('.').count();
        let looks_numeric = v.chars().all(|c| {
            c.is_ascii_hexdigit()
                || matches!(c, '.' | '_' | '+' | '-' | ':' | 'x' | 'o' | 'X' | 'O')
        });
        if looks_numeric && !(only_digits_and_dots_or_dashes && dots >= 2) {
            return false;
        }
    }
    true
}

fn double_quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn render(v: &str, style: Style) -> String {
    match style {
        Style::Plain if plain_safe(v) => v.to_string(),
        Style::Single if !v.chars().any(char::is_control) => format!("'{}'", v.replace('\'', "''")),
        _ => double_quote(v),
    }
}

// ---------------------------------------------------------------------------------------
// Edits
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Replace bytes `start..end` of a line.
    Splice {
        line: usize,
        start: usize,
        end: usize,
        with: String,
    },
    /// Replace a line's content.
    SetLine {
        line: usize,
        text: String,
    },
    Delete {
        line: usize,
    },
    /// Insert lines after `line`.
    InsertAfter {
        line: usize,
        texts: Vec<String>,
    },
}

fn edit_item(
    file: &str,
    lines: &[Line<'_>],
    item: &Item,
    sets: &[(&'static str, String)],
    removes: &[&'static str],
    ops: &mut Vec<Op>,
) -> Result<(), KustomizeError> {
    let name_style = match item.field("name").map(|f| &f.value) {
        Some(ValueKind::Scalar(s)) => s.style,
        _ => Style::Plain,
    };
    let single_line = |f: &Field| -> Result<ScalarSpan, KustomizeError> {
        match (&f.value, f.continued) {
            (ValueKind::Scalar(s), false) => Ok(s.clone()),
            (ValueKind::Scalar(_), true) => Err(unsupported(
                file,
                f.line,
                format!("a multi-line value for `{}`", f.key),
                "a value on one line",
            )),
            (ValueKind::Empty, _) => Err(unsupported(
                file,
                f.line,
                format!("an empty or nested value for `{}`", f.key),
                "a string on the same line",
            )),
            (ValueKind::Other(what), _) => Err(unsupported(
                file,
                f.line,
                format!("{what} for `{}`", f.key),
                "a plain or quoted string on one line",
            )),
        }
    };
    let mut new_lines = Vec::new();
    for (key, value) in sets {
        match item.field(key) {
            Some(f) => {
                let span = single_line(f)?;
                if span.decoded != *value {
                    ops.push(Op::Splice {
                        line: f.line,
                        start: span.start,
                        end: span.end,
                        with: render(value, span.style),
                    });
                }
            }
            None => new_lines.push((*key, value.clone())),
        }
    }
    for key in removes {
        let Some(f) = item.field(key) else { continue };
        let span = single_line(f)?;
        let on_dash_line = f.line == item.dash_line && item.key_on_dash;
        if !on_dash_line && !new_lines.is_empty() {
            // A key to add takes the removed key's line, so that what follows the value
            // there (an inline comment such as `newTag: v1 # pinned`) stays.
            let (new_key, new_value) = new_lines.remove(0);
            let line = lines[f.line].text;
            ops.push(Op::SetLine {
                line: f.line,
                text: format!(
                    "{}{new_key}: {}{}",
                    &line[..item.key_col],
                    render(&new_value, span.style),
                    &line[span.end..]
                ),
            });
            continue;
        }
        if on_dash_line {
            // The key shares the line with the dash: move the next key up to the dash.
            let next = item.fields.iter().find(|g| g.line > f.line);
            let Some(next) = next else {
                return Err(unsupported(
                    file,
                    f.line,
                    format!("removing `{key}`, the entry's only key"),
                    "an entry with a `name`",
                ));
            };
            if removes.contains(&next.key.as_str()) {
                return Err(unsupported(
                    file,
                    f.line,
                    "an entry starting with both `newTag` and `digest`",
                    "`- name: IMAGE` first",
                ));
            }
            // `moved` starts at the key column on both lines, so byte offsets of a splice
            // planned on the next key's line are valid on the dash line too.
            let dash = lines[f.line].text;
            let moved = &lines[next.line].text[item.key_col..];
            ops.push(Op::SetLine {
                line: f.line,
                text: format!("{}{moved}", &dash[..item.key_col]),
            });
            for op in ops.iter_mut() {
                if let Op::Splice { line, .. } = op {
                    if *line == next.line {
                        *line = f.line;
                    }
                }
            }
            ops.push(Op::Delete { line: next.line });
        } else {
            ops.push(Op::Delete { line: f.line });
        }
    }
    if !new_lines.is_empty() {
        ops.push(Op::InsertAfter {
            line: item.last_line,
            texts: new_lines
                .into_iter()
                .map(|(key, value)| {
                    format!(
                        "{}{key}: {}",
                        " ".repeat(item.key_col),
                        render(&value, name_style)
                    )
                })
                .collect(),
        });
    }
    Ok(())
}

fn append_item(scan: &Scan, name: &str, sets: &[(&'static str, String)], ops: &mut Vec<Op>) {
    let (seq, gap, style, after) = match (scan.seq_indent, scan.items.first(), scan.items.last()) {
        (Some(seq), Some(first), Some(last)) => {
            let gap = first.key_col.saturating_sub(seq + 1).max(1);
            let style = match first.field("name").map(|f| &f.value) {
                Some(ValueKind::Scalar(s)) => s.style,
                _ => Style::Plain,
            };
            (seq, gap, style, last.last_line)
        }
        _ => (scan.key_indent + 2, 1, Style::Plain, scan.key_line),
    };
    if let Some((start, end)) = scan.flow_empty {
        ops.push(Op::Splice {
            line: scan.key_line,
            start,
            end,
            with: String::new(),
        });
    }
    let key_col = seq + 1 + gap;
    let mut texts = vec![format!(
        "{}-{}name: {}",
        " ".repeat(seq),
        " ".repeat(gap),
        render(name, style)
    )];
    for (key, value) in sets {
        texts.push(format!(
            "{}{key}: {}",
            " ".repeat(key_col),
            render(value, style)
        ));
    }
    ops.push(Op::InsertAfter { line: after, texts });
}

/// Apply the operations; untouched lines are copied as they are.
fn apply(lines: &[Line<'_>], ops: Vec<Op>) -> String {
    let eol = lines
        .iter()
        .find(|l| !l.eol.is_empty())
        .map(|l| l.eol)
        .unwrap_or("\n");
    let ends_without_newline = lines.last().is_some_and(|l| l.eol.is_empty());
    let mut text: Vec<Option<String>> = lines.iter().map(|l| Some(l.text.to_string())).collect();
    let mut ends: Vec<String> = lines.iter().map(|l| l.eol.to_string()).collect();
    let mut inserts: Vec<Vec<String>> = vec![Vec::new(); lines.len()];
    // Splices on one line are applied right to left so byte offsets stay valid.
    let mut splices: Vec<(usize, usize, usize, String)> = Vec::new();
    for op in ops {
        match op {
            Op::Splice {
                line,
                start,
                end,
                with,
            } => splices.push((line, start, end, with)),
            Op::SetLine { line, text: t } => text[line] = Some(t),
            Op::Delete { line } => text[line] = None,
            Op::InsertAfter { line, texts } => inserts[line].extend(texts),
        }
    }
    splices.sort_by_key(|s| std::cmp::Reverse((s.0, s.1)));
    for (line, start, end, with) in splices {
        if let Some(t) = text[line].as_mut() {
            t.replace_range(start..end, &with);
        }
    }
    let mut out_lines: Vec<(String, String)> = Vec::new();
    for (i, t) in text.into_iter().enumerate() {
        if let Some(t) = t {
            out_lines.push((t, std::mem::take(&mut ends[i])));
        }
        for ins in inserts[i].drain(..) {
            out_lines.push((ins, eol.to_string()));
        }
    }
    let n = out_lines.len();
    let mut out = String::new();
    for (i, (t, mut e)) in out_lines.into_iter().enumerate() {
        if i + 1 == n {
            e = if ends_without_newline {
                String::new()
            } else {
                eol.to_string()
            };
        } else if e.is_empty() {
            e = eol.to_string();
        }
        out.push_str(&t);
        out.push_str(&e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "overlays/prod/kustomization.yaml";
    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn tag(name: &str, t: &str) -> ImageEdit {
        ImageEdit {
            name: name.into(),
            new_name: None,
            to: Some(ImageRef::Tag(t.into())),
        }
    }

    fn digest(name: &str, d: &str) -> ImageEdit {
        ImageEdit {
            name: name.into(),
            new_name: None,
            to: Some(ImageRef::Digest(d.into())),
        }
    }

    /// Fuzzing (fuzz target `kustomize`) found this: the scanner took `---apiVersion: …`
    /// for a document marker, so an added `images` field could not be read back (and a file
    /// with such a first line was reported as having no `images` field).
    #[test]
    fn a_key_starting_with_three_dashes_is_not_a_document_marker() {
        let text = "---apiVersion: appsggggggggggggggggggggggggggggggggggggggggas in base/deployment.yaml\n   m/shop/payments:latest\n";
        let edit = tag("registry.example.com/shop/checkout", "v2.0.1");
        let out = set(text, &edit);
        assert!(out.starts_with(text), "{out}");
        let e = read_image(F, &out, "registry.example.com/shop/checkout").unwrap();
        assert_eq!(e.current(), Some(ImageRef::Tag("v2.0.1".into())));
        assert_eq!(set(&out, &edit), out);
        // A real marker still is one.
        let marked = "---\n  images:\n  - name: a\n    newTag: v1\n";
        assert_eq!(
            read_image(F, marked, "a").unwrap().new_tag.as_deref(),
            Some("v1")
        );
    }

    fn set(text: &str, edit: &ImageEdit) -> String {
        set_image(F, text, edit).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str, edit: &ImageEdit) -> String {
        set_image(F, text, edit)
            .map(|t| panic!("expected an error, got:\n{t}"))
            .unwrap_err()
            .to_string()
    }

    /// Lines that differ between two texts of the same length in lines.
    fn changed_lines(a: &str, b: &str) -> Vec<(String, String)> {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split('\n').collect(), b.split('\n').collect());
        assert_eq!(a.len(), b.len(), "same number of lines");
        a.iter()
            .zip(&b)
            .filter(|(x, y)| x != y)
            .map(|(x, y)| (x.to_string(), y.to_string()))
            .collect()
    }

    const COMMENTED: &str = "\
# Production overlay. Edited by CI: only `images` changes.
apiVersion: kustomize.config.k8s.io/v1beta1   # trailing comment
kind: Kustomization

resources:
  - ../../base # the base
# images are bumped by `slogate promote`
images:   # keep this comment
  # checkout is the storefront
  - name: registry.local/shop/checkout   # the app
    # tag comment above the tag
    newTag: v1.4.0  # bumped by CI
  - name: registry.local/shop/payments
    newName: registry.local/shop/payments-fips
    newTag: \"2.0.1\" # quoted

  # a comment after the list
patches:
  - path: replicas.yaml   # newTag: v1.4.0 in a comment stays
";

    #[test]
    fn changes_only_the_tag_and_keeps_every_comment() {
        let out = set(COMMENTED, &tag("registry.local/shop/checkout", "v1.5.0"));
        assert_eq!(
            changed_lines(COMMENTED, &out),
            vec![(
                "    newTag: v1.4.0  # bumped by CI".into(),
                "    newTag: v1.5.0  # bumped by CI".into()
            )]
        );
        // Already there: the very same bytes.
        assert_eq!(
            set(&out, &tag("registry.local/shop/checkout", "v1.5.0")),
            out
        );
        let e = read_image(F, &out, "registry.local/shop/checkout").unwrap();
        assert_eq!(e.new_tag.as_deref(), Some("v1.5.0"));
        assert_eq!(e.current(), Some(ImageRef::Tag("v1.5.0".into())));
    }

    #[test]
    fn keeps_the_quoting_style_of_the_value() {
        let out = set(COMMENTED, &tag("registry.local/shop/payments", "2.1.0"));
        assert_eq!(
            changed_lines(COMMENTED, &out),
            vec![(
                "    newTag: \"2.0.1\" # quoted".into(),
                "    newTag: \"2.1.0\" # quoted".into()
            )]
        );
        let single = "images:\n- name: 'checkout'\n  newTag: 'v1' # single\n";
        assert_eq!(
            set(single, &tag("checkout", "v2")),
            "images:\n- name: 'checkout'\n  newTag: 'v2' # single\n"
        );
        // A plain value that would not read back as a string gets double quotes.
        let plain = "images:\n- name: checkout\n  newTag: v1\n";
        assert_eq!(
            set(plain, &tag("checkout", "1.10")),
            "images:\n- name: checkout\n  newTag: \"1.10\"\n"
        );
        assert_eq!(
            set(plain, &tag("checkout", "1.2.3")),
            "images:\n- name: checkout\n  newTag: 1.2.3\n"
        );
        assert_eq!(
            set(plain, &tag("checkout", "yes")),
            "images:\n- name: checkout\n  newTag: \"yes\"\n"
        );
    }

    #[test]
    fn a_number_tag_reads_as_written() {
        let text = "images:\n  - name: checkout\n    newTag: 1.10\n";
        let e = read_image(F, text, "checkout").unwrap();
        assert_eq!(e.new_tag.as_deref(), Some("1.10"), "as kustomize reads it");
        assert_eq!(
            set(text, &tag("checkout", "1.11")),
            "images:\n  - name: checkout\n    newTag: \"1.11\"\n"
        );
    }

    #[test]
    fn name_later_in_the_entry_and_keys_on_the_line_after_the_dash() {
        let later = "images:\n  - newName: ghcr.io/acme/checkout # mirror\n    newTag: v1\n    name: checkout\n  - name: other\n    newTag: v9\n";
        assert_eq!(
            set(later, &tag("checkout", "v2")),
            later.replace("newTag: v1", "newTag: v2")
        );
        let dash_alone = "images:\n  -   # entry\n    name: checkout\n    newTag: v1\n";
        assert_eq!(
            set(dash_alone, &tag("checkout", "v2")),
            dash_alone.replace("v1", "v2")
        );
        let quoted_keys = "images:\n  - \"name\": checkout\n    'newTag': v1\n";
        assert_eq!(
            set(quoted_keys, &tag("checkout", "v2")),
            quoted_keys.replace("v1", "v2")
        );
        let compact = "images:\n- name: checkout\n  newTag: v1\nresources:\n- base\n";
        assert_eq!(
            set(compact, &tag("checkout", "v2")),
            compact.replace("v1", "v2")
        );
        let wide = "images:\n    -    name: checkout\n         newTag: v1\n";
        assert_eq!(set(wide, &tag("checkout", "v2")), wide.replace("v1", "v2"));
    }

    #[test]
    fn crlf_and_a_missing_final_newline_are_kept() {
        let crlf = "# c\r\nimages:\r\n  - name: checkout # x\r\n    newTag: v1\r\nresources:\r\n  - base\r\n";
        assert_eq!(
            set(crlf, &tag("checkout", "v2")),
            crlf.replace("newTag: v1", "newTag: v2")
        );
        // A new field goes in with CRLF too.
        let out = set(crlf, &tag("payments", "v3"));
        assert_eq!(
            out,
            "# c\r\nimages:\r\n  - name: checkout # x\r\n    newTag: v1\r\n  - name: payments\r\n    newTag: v3\r\nresources:\r\n  - base\r\n"
        );
        let no_nl = "images:\n  - name: checkout\n    newTag: v1 # last";
        assert_eq!(
            set(no_nl, &tag("checkout", "v2")),
            "images:\n  - name: checkout\n    newTag: v2 # last"
        );
        // Inserting after the last line keeps the file without a final newline.
        let no_tag = "images:\n  - name: checkout";
        assert_eq!(
            set(no_tag, &tag("checkout", "v2")),
            "images:\n  - name: checkout\n    newTag: v2"
        );
        let bom = "\u{feff}images:\n  - name: checkout\n    newTag: v1\n";
        assert_eq!(set(bom, &tag("checkout", "v2")), bom.replace("v1", "v2"));
    }

    #[test]
    fn a_missing_entry_is_appended_in_the_list_style() {
        let out = set(COMMENTED, &tag("registry.local/shop/cart", "v7"));
        let want = COMMENTED.replace(
            "    newTag: \"2.0.1\" # quoted\n",
            "    newTag: \"2.0.1\" # quoted\n  - name: registry.local/shop/cart\n    newTag: v7\n",
        );
        assert_eq!(out, want);
        let quoted = "images:\n- name: \"checkout\"\n  newTag: \"v1\"\n";
        assert_eq!(
            set(quoted, &tag("cart", "v2")),
            "images:\n- name: \"checkout\"\n  newTag: \"v1\"\n- name: \"cart\"\n  newTag: \"v2\"\n"
        );
        let empty_flow = "resources: [base]\nimages: [] # none yet\nlabels:\n  - pairs: {a: b}\n";
        assert_eq!(
            set(empty_flow, &tag("checkout", "v1")),
            "resources: [base]\nimages: # none yet\n  - name: checkout\n    newTag: v1\nlabels:\n  - pairs: {a: b}\n"
        );
        let null = "images:\n# nothing yet\nresources: []\n";
        assert_eq!(
            set(null, &tag("checkout", "v1")),
            "images:\n  - name: checkout\n    newTag: v1\n# nothing yet\nresources: []\n"
        );
    }

    #[test]
    fn a_tag_replaces_a_digest_and_a_digest_a_tag() {
        let with_digest = format!(
            "images:\n  - name: checkout\n    digest: {D1} # pinned\n  - name: b\n    newTag: v1\n"
        );
        // The new key takes the removed key's line, keeping its inline comment.
        assert_eq!(
            set(&with_digest, &tag("checkout", "v2")),
            "images:\n  - name: checkout\n    newTag: v2 # pinned\n  - name: b\n    newTag: v1\n"
        );
        let with_tag =
            "images:\n  - name: checkout # app\n    newTag: v1\n    newName: x/checkout\n";
        assert_eq!(
            set(with_tag, &digest("checkout", D2)),
            format!(
                "images:\n  - name: checkout # app\n    digest: {D2}\n    newName: x/checkout\n"
            )
        );
        // The removed key shares the line with the dash: the next key moves up.
        let dash = format!("images:\n  - digest: {D1}\n    # the name\n    name: checkout\n");
        assert_eq!(
            set(&dash, &tag("checkout", "v2")),
            "images:\n  - name: checkout\n    # the name\n    newTag: v2\n"
        );
        let dash2 = "images:\n  - newTag: v1\n    newName: a/b\n    name: checkout\n";
        assert_eq!(
            set(
                dash2,
                &ImageEdit {
                    name: "checkout".into(),
                    new_name: Some("c/d".into()),
                    to: Some(ImageRef::Digest(D2.into()))
                }
            ),
            format!("images:\n  - newName: c/d\n    name: checkout\n    digest: {D2}\n")
        );
        let e = read_image(F, &with_digest, "checkout").unwrap();
        assert_eq!(e.current(), Some(ImageRef::Digest(D1.into())));
    }

    #[test]
    fn errors_name_the_file_the_field_and_what_was_expected() {
        let e = read_image(F, "resources:\n  - base\n", "checkout")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(F) && e.contains("no top-level `images` field"),
            "{e}"
        );
        let dup =
            "images:\n  - name: checkout\n    newTag: v1\n  - name: checkout\n    newTag: v0\n";
        let e = err(dup, &tag("checkout", "v2"));
        assert!(e.contains("`checkout` is listed 2 times"), "{e}");
        let e = read_image(F, dup, "checkout").unwrap_err().to_string();
        assert!(e.contains("listed 2 times"), "{e}");
        let e = err("images:\n  - name: a\n  newTag: [\n", &tag("a", "v2"));
        assert!(e.contains("invalid YAML"), "{e}");
        // The parser's error is the source, shown after the file.
        let bad = read_images(F, "images:\n  - name: a\n  newTag: [\n").unwrap_err();
        let KustomizeError::Yaml { file, source } = &bad else {
            panic!("{bad:?}");
        };
        assert_eq!(file, F);
        assert_eq!(bad.to_string(), format!("{F}: invalid YAML: {source}"));
        let e = err(
            "images: [{name: checkout, newTag: v1}]\n",
            &tag("checkout", "v2"),
        );
        assert!(e.contains("line 1") && e.contains("flow-style list"), "{e}");
        let e = err(
            "images:\n  - {name: checkout, newTag: v1}\n",
            &tag("checkout", "v2"),
        );
        assert!(
            e.contains("line 2") && e.contains("flow-style entry"),
            "{e}"
        );
        let e = err(
            "images:\n  - name: checkout\n    newTag: &t v1\n",
            &tag("checkout", "v2"),
        );
        assert!(e.contains("line 3") && e.contains("anchor"), "{e}");
        let e = err(
            "images:\n  - name: checkout\n    newTag: |\n      v1\n",
            &tag("checkout", "v2"),
        );
        assert!(e.contains("line 3") && e.contains("block scalar"), "{e}");
        let e = err(
            "images:\n  - name: checkout\n    newTag: v1\n      continued\n",
            &tag("checkout", "v2"),
        );
        assert!(e.contains("line 3") && e.contains("multi-line"), "{e}");
        let e = err("images:\n  name: checkout\n", &tag("checkout", "v2"));
        assert!(
            e.contains("field `images`: expected a list") && e.contains("a mapping"),
            "{e}"
        );
        let e = err("images:\n  - checkout\n", &tag("checkout", "v2"));
        assert!(
            e.contains("`images[0]`") && e.contains("expected a mapping"),
            "{e}"
        );
        let e = err("images:\n  - newTag: v1\n", &tag("checkout", "v2"));
        assert!(e.contains("`images[0]`") && e.contains("no `name`"), "{e}");
        let e = err("- a\n- b\n", &tag("checkout", "v2"));
        assert!(
            e.contains("expected a Kustomization") && e.contains("a list"),
            "{e}"
        );
        let e = read_image(F, COMMENTED, "ghost").unwrap_err().to_string();
        assert!(
            e.contains("`ghost` is not listed")
                && e.contains("registry.local/shop/checkout, registry.local/shop/payments"),
            "{e}"
        );
    }

    #[test]
    fn values_with_hashes_and_colons_are_read_exactly() {
        let text = "images:\n  - name: registry.local:5000/checkout#not-a-comment\n    newTag: v1 #comment\n";
        let e = read_image(F, text, "registry.local:5000/checkout#not-a-comment").unwrap();
        assert_eq!(e.new_tag.as_deref(), Some("v1"));
        let dq = "images:\n  - name: \"a\\u0062c\"\n    newTag: \"v\\x31\"\n";
        let e = read_image(F, dq, "abc").unwrap();
        assert_eq!(e.new_tag.as_deref(), Some("v1"));
        assert_eq!(
            set(dq, &tag("abc", "v2")),
            "images:\n  - name: \"a\\u0062c\"\n    newTag: \"v2\"\n"
        );
    }

    #[test]
    fn an_images_line_inside_a_multi_line_string_is_refused_not_doubled() {
        // Found by the `kustomize` fuzz target: the quoted value runs on to the `"` of the
        // second entry, so `images:` is text inside it and the file has no images field.
        let text = "imseages:\n  - name: a\n    newTag: \"v1 (disabled)\n\nimages:\n  - name: shop/checkout\n    newTag: %v1.4.0\"\n";
        let doc: Value = yaml::from_str(text).unwrap();
        assert!(doc.get("images").is_none(), "{doc:?}");
        let edit = ImageEdit {
            name: "shop/checkout".into(),
            new_name: None,
            to: Some(ImageRef::Tag("v2".into())),
        };
        match set_image("k.yaml", text, &edit) {
            Err(KustomizeError::Unsupported { line, what, .. }) => {
                assert_eq!(line, 5);
                assert!(what.contains("part of a string"), "{what}");
            }
            other => panic!("{other:?}"),
        }
        let found = include_str!("../../tests/fixtures/fuzz/kustomize-images-in-a-string.yaml");
        let edit = ImageEdit {
            name: "registry.example.com/shop/checkout".into(),
            new_name: None,
            to: Some(ImageRef::Tag("v2.0.1".into())),
        };
        assert!(matches!(
            set_image("k.yaml", found, &edit),
            Err(KustomizeError::Unsupported { .. })
        ));
    }

    #[test]
    fn a_missing_images_field_is_added_at_the_end() {
        let out = set(
            "# app\nresources:\n  - base # the base\n",
            &tag("checkout", "v2"),
        );
        assert_eq!(
            out,
            "# app\nresources:\n  - base # the base\nimages:\n- name: checkout\n  newTag: v2\n"
        );
        // No final newline, CRLF line ends: both kept.
        let out = set("resources:\r\n- base", &tag("checkout", "v2"));
        assert_eq!(
            out,
            "resources:\r\n- base\r\nimages:\r\n- name: checkout\r\n  newTag: v2\r\n"
        );
    }

    #[test]
    fn a_digest_takes_the_tag_line_and_keeps_its_comment() {
        let text = "images:\n  - name: checkout # app\n    newTag: v1 # pinned by hand\n    newName: x/y\n";
        let out = set(
            text,
            &ImageEdit {
                name: "checkout".into(),
                new_name: None,
                to: Some(ImageRef::Digest(D1.into())),
            },
        );
        assert_eq!(
            out,
            format!("images:\n  - name: checkout # app\n    digest: {D1} # pinned by hand\n    newName: x/y\n")
        );
        // And back: the tag takes the digest's line.
        let back = set(&out, &tag("checkout", "v2"));
        assert_eq!(
            back,
            "images:\n  - name: checkout # app\n    newTag: v2 # pinned by hand\n    newName: x/y\n"
        );
    }

    #[test]
    fn a_flow_list_can_still_be_read() {
        let text = "images: [{name: checkout, newTag: v3}]\n";
        let e = read_image(F, text, "checkout").unwrap();
        assert_eq!(e.new_tag.as_deref(), Some("v3"));
    }

    #[test]
    fn other_top_level_keys_named_alike_are_not_confused() {
        let text = "configMapGenerator:\n  - name: x\n    literals:\n      - images=1\nimages:\n  - name: checkout\n    newTag: v1\nextra:\n  images:\n    - name: checkout\n      newTag: v0\n";
        assert_eq!(
            set(text, &tag("checkout", "v2")),
            text.replacen("newTag: v1", "newTag: v2", 1)
        );
    }

    #[test]
    fn plain_safety() {
        for ok in [
            "v1",
            "v1.2.3",
            "1.2.3",
            "latest",
            "sha256:abc",
            "main-3f2a1b",
            "12-alpine",
            "a_b",
        ] {
            assert!(plain_safe(ok), "{ok}");
        }
        for no in [
            "",
            "1.10",
            "1",
            "1e3",
            "0x1f",
            "2024-01-02",
            "yes",
            "No",
            "null",
            "1:20",
            "-v",
            ".5",
            "a b",
            "a:",
            "~",
        ] {
            assert!(!plain_safe(no), "{no}");
        }
    }
}
