//! The one way slogate reads and writes YAML: an untyped value tree ([`Value`]), the budgeted
//! readers every YAML input goes through ([`parse_stream`], [`from_str`]) and the writer
//! ([`to_string`]).
//!
//! Parsing is `serde-saphyr` (maintained, panic-free, fuzzed; built on `granit-parser`) with
//! one [`budget`] for every input: nesting depth, alias replay (a "billion laughs" document is
//! refused instead of expanded), anchors, nodes, events, documents and scalar bytes. Each
//! limit costs a counter, so a document is read in time linear in its size. File size caps
//! stay with the callers (`slo::spec::read_capped`).
//!
//! Why a hand-written value tree: serde-saphyr deserialises straight into typed structs and
//! has no untyped value of its own, but the spec readers walk an untyped tree to report every
//! problem of a document with its field path and to warn about unknown keys.
//! `serde_json::Value` would lose the key order (warnings follow the file) and non-string
//! keys. [`Value`] keeps both, and reads like the `serde_yaml::Value` it replaces.
//!
//! Why a second reader (`tree`): for the plain one-document file (no anchors, tags or
//! merge keys, no scalar of uncertain type), building the value straight from the parser's
//! events takes a third of serde-saphyr's time; it gives up on anything else, which
//! serde-saphyr then reads.
//!
//! Why a document map ([`parse_stream`]): serde-saphyr skips empty documents of a stream,
//! but diagnostics name a document by its index in the file, empty ones included. One pass
//! of the same parser's event stream (linear, no alias expansion) finds where each document
//! starts and which are empty.

use std::fmt;
use std::io::Cursor;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

mod tree;

/// The deepest nesting of collections accepted (a Rollout or PrometheusRule nests about
/// ten levels).
pub const MAX_DEPTH: usize = 64;
/// The most alias uses (`*name`) in one input.
pub const MAX_ALIASES: usize = 1_000;
/// The most parser events that aliases may replay in one input: what stops a
/// "billion laughs" document.
pub const MAX_ALIAS_REPLAYED_EVENTS: usize = 100_000;
/// The most nodes (scalars, lists and mappings) in one input.
pub const MAX_NODES: usize = 1_000_000;
/// The most YAML documents in one file.
pub const MAX_DOCUMENTS: usize = 10_000;

/// A problem reading or writing YAML.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum YamlError {
    /// The text is not valid YAML, or does not have the shape expected.
    #[error("{message}")]
    Invalid { message: String },
    /// The input goes beyond one of the limits of [`budget`].
    #[error("{message}")]
    Limit { message: String },
    /// A value cannot be written as YAML (or converted between trees).
    #[error("cannot write YAML: {message}")]
    Write { message: String },
}

impl YamlError {
    fn invalid(message: impl Into<String>) -> Self {
        YamlError::Invalid {
            message: message.into(),
        }
    }

    /// Whether a limit of the budget refused the input.
    pub fn is_limit(&self) -> bool {
        matches!(self, YamlError::Limit { .. })
    }
}

/// The limits every YAML input is read with.
pub fn budget() -> Option<serde_saphyr::Budget> {
    serde_saphyr::budget! {
        max_depth: MAX_DEPTH,
        // The parser's own nesting limit for flow collections, met when it scans ahead.
        flow_nesting_limit: MAX_DEPTH + 1,
        max_aliases: MAX_ALIASES,
        max_anchors: MAX_ALIASES,
        max_nodes: MAX_NODES,
        max_events: 4 * MAX_NODES,
        max_documents: MAX_DOCUMENTS,
        max_recorded_anchor_events: MAX_ALIAS_REPLAYED_EVENTS,
    }
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: budget(),
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
        },
        // YAML 1.2, as serde_yaml read it: `yes`/`on` are strings, `0755` and `1_000` too.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        // `.nan` and `.inf` are numbers; the readers say what range they expect.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
    }
}

/// Where a YAML error is: ` at line L column C`, or nothing.
fn at(e: &serde_saphyr::Error) -> String {
    match e.location() {
        Some(l) if l.line() > 0 => format!(" at line {} column {}", l.line(), l.column()),
        _ => String::new(),
    }
}

/// The limit a serde-saphyr error reports, if it is a budget breach (also when it is
/// wrapped in the alias that replayed it).
fn limit_of(e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error as E;
    Some(match e.without_snippet() {
        E::AliasError { error, .. } => return limit_of(error),
        E::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => {
                format!("the YAML nests deeper than {MAX_DEPTH} levels (the depth limit)")
            }
            BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => {
                format!("the YAML uses more than {MAX_ALIASES} aliases, or too many per anchor (the alias limit)")
            }
            BudgetBreach::RecordedAnchorEvents { .. }
            | BudgetBreach::RecordedAnchorBytes { .. } => alias_expansion(),
            BudgetBreach::Anchors { .. } => {
                format!("the YAML defines more than {MAX_ALIASES} anchors (the anchor limit)")
            }
            BudgetBreach::Documents { .. } => format!(
                "the file has more than {MAX_DOCUMENTS} YAML documents (the document limit)"
            ),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
                format!("the YAML has more than {MAX_NODES} nodes (the node limit)")
            }
            other => format!("the YAML exceeds a parsing limit ({other:?})"),
        },
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => alias_expansion(),
        _ => return None,
    })
}

fn alias_expansion() -> String {
    format!(
        "the YAML's aliases expand to more than {MAX_ALIAS_REPLAYED_EVENTS} nodes (the alias expansion limit, against \"billion laughs\" documents)"
    )
}

/// An error of serde-saphyr as a [`YamlError`]; budget breaches name the limit.
fn convert(e: serde_saphyr::Error) -> YamlError {
    if let Some(what) = limit_of(&e) {
        return YamlError::Limit {
            message: format!("{what}{}", at(&e)),
        };
    }
    let text = e.to_string();
    // The message without its source excerpt: the first line says it all.
    let first = text.lines().next().unwrap_or_default().trim();
    if first.contains("recursion limit exceeded") {
        // The parser's nesting limit (`flow_nesting_limit` of the budget).
        return YamlError::Limit {
            message: format!(
                "the YAML nests deeper than {MAX_DEPTH} levels (the depth limit){}",
                at(&e)
            ),
        };
    }
    if first.contains(" line ") {
        YamlError::invalid(first)
    } else {
        YamlError::invalid(format!("{first}{}", at(&e)))
    }
}

/// Read one YAML document into `T`, within the [`budget`]. An empty input reads as null.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str_with_options(text, options()).map_err(convert)
}

/// One document of a stream with its index in the file (empty documents count).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub index: usize,
    pub value: Value,
}

/// What a multi-document stream gave: its non-empty documents, then the error that stopped
/// the reading, if any, with the index of the document it is in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    pub documents: Vec<Document>,
    pub error: Option<(usize, YamlError)>,
    /// How many documents the file has, empty ones included (up to the error).
    pub count: usize,
}

/// Where each document starts (1-based line) and whether it is empty (null).
struct DocMap {
    starts: Vec<(usize, bool)>,
}

impl DocMap {
    /// One pass over the parser's events (no alias expansion, so linear). It stops at the
    /// first syntax error or at the depth limit: the deserialiser reports that error.
    fn scan(text: &str) -> DocMap {
        let mut starts: Vec<(usize, bool)> = Vec::new();
        let mut depth = 0usize;
        let mut first_node = false;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            match event {
                Event::DocumentStart(..) => {
                    starts.push((span.start.line(), false));
                    first_node = true;
                }
                Event::Scalar(ref v, style, _, ref tag) if first_node => {
                    let null = tag.is_none()
                        && style == ScalarStyle::Plain
                        && matches!(v.as_ref(), "" | "~" | "null" | "Null" | "NULL");
                    if let Some(last) = starts.last_mut() {
                        last.1 = null;
                    }
                    first_node = false;
                }
                Event::SequenceStart(..) | Event::MappingStart(..) | Event::Alias(..) => {
                    first_node = false;
                    if !matches!(event, Event::Alias(..)) {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            break;
                        }
                    }
                }
                Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
                Event::StreamEnd => break,
                _ => {}
            }
            if starts.len() > MAX_DOCUMENTS {
                break;
            }
        }
        DocMap { starts }
    }

    /// The document a 1-based line is in.
    fn doc_at(&self, line: usize) -> usize {
        self.starts
            .iter()
            .rposition(|(start, _)| *start <= line)
            .unwrap_or(0)
    }
}

/// Read a stream of YAML documents (`---` separated), within the [`budget`] (counted over the
/// whole file). Documents before an error are kept; a syntax error or a limit ends the
/// reading, another error (such as a duplicate key) skips only its document.
pub fn parse_stream(text: &str) -> Stream {
    read_stream(text, true)
}

/// [`parse_stream`]; `single_fast` allows skipping the document map for a one-document text.
fn read_stream(text: &str, single_fast: bool) -> Stream {
    // The usual file: one document and no marker line. Built straight from the parser's
    // events when [`tree`] is sure of every node, else read from the string (serde-saphyr's
    // reader input decodes the text again in chunks); anything else, an empty document or
    // an error included, is read below as before.
    if single_fast && !has_document_markers(text) {
        let value = tree::read(text)
            .or_else(|| serde_saphyr::from_str_with_options::<Value>(text, options()).ok());
        if let Some(value) = value.filter(|v| !v.is_null()) {
            return Stream {
                documents: vec![Document { index: 0, value }],
                error: None,
                count: 1,
            };
        }
    }
    let (values, failure) = read_until_error(text);
    // The usual file: one document and no marker line. It is document 0 of 1, which the
    // document map would say too; not scanning for it saves a second parse of the text.
    if single_fast && failure.is_none() && values.len() == 1 && !has_document_markers(text) {
        return Stream {
            documents: values
                .into_iter()
                .map(|value| Document { index: 0, value })
                .collect(),
            error: None,
            count: 1,
        };
    }
    let map = DocMap::scan(text);
    let mut non_empty = map
        .starts
        .iter()
        .enumerate()
        .filter(|(_, (_, null))| !null)
        .map(|(i, _)| i);
    let documents: Vec<Document> = values
        .into_iter()
        .map(|value| Document {
            index: non_empty.next().unwrap_or(map.starts.len()),
            value,
        })
        .collect();
    let error = failure.map(|e| {
        let line = e.location().map(|l| l.line() as usize).unwrap_or(0);
        let index = if line == 0 {
            non_empty.next().unwrap_or(0)
        } else {
            map.doc_at(line)
        };
        (index, convert(e))
    });
    Stream {
        documents,
        error,
        count: map.starts.len(),
    }
}

/// The documents of `text` up to its first error, and that error.
fn read_until_error(text: &str) -> (Vec<Value>, Option<serde_saphyr::Error>) {
    let mut cursor = Cursor::new(text.as_bytes());
    let mut opts = options();
    if let Some(b) = opts.budget.as_mut() {
        b.max_reader_input_bytes = Some(text.len() + 1);
    }
    let mut values = Vec::new();
    for item in serde_saphyr::read_with_options::<_, Value>(&mut cursor, opts) {
        match item {
            Ok(value) => values.push(value),
            // serde-saphyr ends the iteration after syntax errors and limits; other errors
            // skip the document, but one error per file is enough to report, and what
            // follows may be a consequence.
            Err(e) => return (values, Some(e)),
        }
    }
    (values, None)
}

/// Whether a line of `text` may start or end a document (`---`, `...`) or hold a directive
/// (`%`); YAML also breaks lines at a lone carriage return. A byte order mark anywhere counts
/// too. Without any, the text is one document at most.
fn has_document_markers(text: &str) -> bool {
    text.contains('\u{feff}')
        || text
            .split(['\n', '\r'])
            .any(|line| line.starts_with("---") || line.starts_with("...") || line.starts_with('%'))
}

/// The non-empty documents of a stream, or its first error (for inputs slogate writes or
/// ships, where one error is enough).
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let stream = parse_stream(text);
    match stream.error {
        Some((i, e)) => Err(YamlError::invalid(format!("document {i}: {e}"))),
        None => Ok(stream.documents.into_iter().map(|d| d.value).collect()),
    }
}

/// Serialise to YAML text, formatted as slogate has always written it (as serde_yaml did,
/// so generated files keep their bytes): block style, lists not indented under their key,
/// strings plain unless YAML 1.2 would read them as something else or their characters
/// need quotes, then single-quoted (double-quoted when they need escapes), multi-line
/// strings as literal blocks (`|`).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, YamlError> {
    let v = to_value(value)?;
    serde_saphyr::to_string_with_options(&Emit(&v), ser_options()).map_err(|e| YamlError::Write {
        message: e.to_string(),
    })
}

fn ser_options() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! {
        indent_step: 2,
        compact_list_indent: true,
        prefer_block_scalars: false,
        yaml_12: true,
        no_lang_directive: true,
    }
}

/// Whether the writer would quote `s` as a value (it knows YAML's plain-scalar rules).
fn needs_quotes(s: &str) -> bool {
    match serde_saphyr::to_string_with_options(&s, ser_options()) {
        Ok(out) => out.starts_with(['\'', '"']),
        Err(_) => true,
    }
}

/// [`Value`] as the writer sees it: quoting chosen per string, multi-line strings as
/// literal block scalars.
struct Emit<'a>(&'a Value);

impl Serialize for Emit<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(t) if t.contains('\n') => serde_saphyr::LitStr(t).serialize(s),
            Value::String(t) if needs_quotes(t) => {
                if t.chars().any(char::is_control) {
                    serde_saphyr::DoubleQuoted(t.as_str()).serialize(s)
                } else {
                    serde_saphyr::SingleQuoted(t.as_str()).serialize(s)
                }
            }
            Value::Sequence(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Emit(v))?;
                }
                seq.end()
            }
            Value::Mapping(m) => {
                // Keys are written as they are (the writer quotes them when it must).
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, &Emit(v))?;
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

/// Any serialisable value as a [`Value`] (through JSON's data model: keys become strings).
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, YamlError> {
    value.serialize(ValueSerializer)
}

/// A [`Value`] as any deserialisable type (through JSON's data model: keys become strings).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, YamlError> {
    let json = serde_json::to_value(&value).map_err(|e| YamlError::invalid(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| YamlError::invalid(e.to_string()))
}

// ---- the value tree ------------------------------------------------------------------------

/// A YAML number: an integer (signed or not) or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    PosInt(u64),
    NegInt(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(&self) -> Option<f64> {
        Some(match *self {
            Number::PosInt(u) => u as f64,
            Number::NegInt(i) => i as f64,
            Number::Float(f) => f,
        })
    }
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Number::PosInt(u) => Some(u),
            Number::NegInt(i) => u64::try_from(i).ok(),
            Number::Float(_) => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Number::PosInt(u) => i64::try_from(u).ok(),
            Number::NegInt(i) => Some(i),
            Number::Float(_) => None,
        }
    }
    pub fn is_f64(&self) -> bool {
        matches!(self, Number::Float(_))
    }
    pub fn is_u64(&self) -> bool {
        matches!(self, Number::PosInt(_))
    }
    pub fn is_i64(&self) -> bool {
        self.as_i64().is_some()
    }
}

impl fmt::Display for Number {
    /// As YAML writes it: `5`, `99.9`, `1.0`, `.inf`, `.nan`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::PosInt(u) => write!(f, "{u}"),
            Number::NegInt(i) => write!(f, "{i}"),
            Number::Float(x) if x.is_nan() => f.write_str(".nan"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { ".inf" } else { "-.inf" })
            }
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl From<u64> for Number {
    fn from(u: u64) -> Self {
        Number::PosInt(u)
    }
}
impl From<i64> for Number {
    fn from(i: i64) -> Self {
        if i >= 0 {
            Number::PosInt(i as u64)
        } else {
            Number::NegInt(i)
        }
    }
}
impl From<f64> for Number {
    fn from(f: f64) -> Self {
        Number::Float(f)
    }
}

/// An untyped YAML value. Mappings keep their keys in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Sequence(Sequence),
    Mapping(Mapping),
}

/// A YAML list.
pub type Sequence = Vec<Value>;

static NULL: Value = Value::Null;

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Number(_))
    }
    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }
    pub fn is_mapping(&self) -> bool {
        matches!(self, Value::Mapping(_))
    }
    pub fn is_sequence(&self) -> bool {
        matches!(self, Value::Sequence(_))
    }
    pub fn as_mapping(&self) -> Option<&Mapping> {
        match self {
            Value::Mapping(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_mapping_mut(&mut self) -> Option<&mut Mapping> {
        match self {
            Value::Mapping(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_sequence(&self) -> Option<&Sequence> {
        match self {
            Value::Sequence(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_sequence_mut(&mut self) -> Option<&mut Sequence> {
        match self {
            Value::Sequence(s) => Some(s),
            _ => None,
        }
    }
    /// A mapping's value for `key` (a string key), or a list's item for a number.
    pub fn get<I: Index>(&self, index: I) -> Option<&Value> {
        index.index_into(self)
    }
    pub fn get_mut<I: Index>(&mut self, index: I) -> Option<&mut Value> {
        index.index_into_mut(self)
    }
}

/// What [`Value::get`] and `value[…]` accept: a string key or a list index.
pub trait Index {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value>;
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value>;
    /// `value[key] = …` on a mapping (or null) inserts the key.
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value;
}

impl Index for str {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        v.as_mapping()?.get(self)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        v.as_mapping_mut()?.get_mut(self)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        if v.is_null() {
            *v = Value::Mapping(Mapping::new());
        }
        match v {
            Value::Mapping(m) => m.entry(self),
            other => panic!("cannot index {} with a key", kind(other)),
        }
    }
}

impl Index for String {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        self.as_str().index_into(v)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        self.as_str().index_into_mut(v)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        self.as_str().index_or_insert(v)
    }
}

impl Index for usize {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        v.as_sequence()?.get(*self)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        v.as_sequence_mut()?.get_mut(*self)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        match v {
            Value::Sequence(s) => {
                let len = s.len();
                s.get_mut(*self)
                    .unwrap_or_else(|| panic!("index {self} out of a list of {len}"))
            }
            other => panic!("cannot index {} with a number", kind(other)),
        }
    }
}

impl<T: Index + ?Sized> Index for &T {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        (**self).index_into(v)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        (**self).index_into_mut(v)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        (**self).index_or_insert(v)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
    }
}

/// `value["key"]`, `value[0]`: null when absent (as serde_yaml and serde_json do).
impl<I: Index> std::ops::Index<I> for Value {
    type Output = Value;
    fn index(&self, index: I) -> &Value {
        index.index_into(self).unwrap_or(&NULL)
    }
}

/// `value["key"] = …` inserts into a mapping (panics on other types, as serde_yaml does;
/// used by tests and by code building documents, never on input).
impl<I: Index> std::ops::IndexMut<I> for Value {
    fn index_mut(&mut self, index: I) -> &mut Value {
        index.index_or_insert(self)
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}
impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}
impl PartialEq<String> for Value {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == Some(other.as_str())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<u64> for Value {
    fn from(u: u64) -> Self {
        Value::Number(u.into())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Number(i.into())
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Number(f.into())
    }
}
impl From<Mapping> for Value {
    fn from(m: Mapping) -> Self {
        Value::Mapping(m)
    }
}
impl From<Sequence> for Value {
    fn from(s: Sequence) -> Self {
        Value::Sequence(s)
    }
}

/// A YAML mapping, in file order. Keys are unique (the reader refuses duplicates).
/// Two mappings are equal when they have the same entries, in any order (as in YAML).
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    entries: Vec<(Value, Value)>,
}

impl PartialEq for Mapping {
    fn eq(&self, other: &Mapping) -> bool {
        self.len() == other.len()
            && (self.entries == other.entries
                || self
                    .entries
                    .iter()
                    .all(|(k, v)| other.get_value(k) == Some(v)))
    }
}

impl Mapping {
    pub fn new() -> Self {
        Mapping::default()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(k, _)| k.as_str() == Some(key))
    }
    /// The value of a string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.position(key).map(|i| &mut self.entries[i].1)
    }
    /// The value of any key.
    pub fn get_value(&self, key: &Value) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }
    /// Set a key's value (in place when it exists, at the end when new); the old value.
    pub fn insert(&mut self, key: impl Into<Value>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }
    /// Remove a string key, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }
    /// A string key's value, inserted as null when absent.
    pub fn entry(&mut self, key: &str) -> &mut Value {
        let i = match self.position(key) {
            Some(i) => i,
            None => {
                self.entries.push((Value::from(key), Value::Null));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Value, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }
    pub fn keys(&self) -> impl Iterator<Item = &Value> {
        self.entries.iter().map(|(k, _)| k)
    }
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }
    /// Keep the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&Value, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<'a> IntoIterator for &'a Mapping {
    type Item = (&'a Value, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Value, Value)>,
        fn(&'a (Value, Value)) -> (&'a Value, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl IntoIterator for Mapping {
    type Item = (Value, Value);
    type IntoIter = std::vec::IntoIter<(Value, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(Value, Value)> for Mapping {
    fn from_iter<T: IntoIterator<Item = (Value, Value)>>(iter: T) -> Self {
        let mut m = Mapping::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(Number::PosInt(u)) => s.serialize_u64(*u),
            Value::Number(Number::NegInt(i)) => s.serialize_i64(*i),
            Value::Number(Number::Float(f)) => s.serialize_f64(*f),
            Value::String(t) => s.serialize_str(t),
            Value::Sequence(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Mapping(m) => m.serialize(s),
        }
    }
}

impl Serialize for Mapping {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Mapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mapping, D::Error> {
        match Value::deserialize(d)? {
            Value::Mapping(m) => Ok(m),
            Value::Null => Ok(Mapping::new()),
            other => Err(de::Error::custom(format!(
                "expected a mapping, found {}",
                kind(&other)
            ))),
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Value, E> {
        match i64::try_from(i) {
            Ok(i) => Ok(Value::Number(i.into())),
            Err(_) => Ok(Value::Number(Number::Float(i as f64))),
        }
    }
    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Value, E> {
        match u64::try_from(u) {
            Ok(u) => Ok(Value::Number(u.into())),
            Err(_) => Ok(Value::Number(Number::Float(u as f64))),
        }
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Number(Number::Float(f)))
    }
    fn visit_char<E: de::Error>(self, c: char) -> Result<Value, E> {
        Ok(Value::String(c.to_string()))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Sequence(
            b.iter().map(|&x| Value::from(u64::from(x))).collect(),
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // Duplicate keys are refused by the reader, so entries are pushed as they come
        // (linear, whatever the mapping's size).
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Value, Value>()? {
            entries.push((k, v));
        }
        Ok(Value::Mapping(Mapping { entries }))
    }
}

// ---- Serialize → Value ------------------------------------------------------------------

/// Builds a [`Value`] from any `Serialize` type, keeping field order (what [`to_string`]
/// writes). Map keys stay values (a number key stays a number).
struct ValueSerializer;

fn write_err(m: impl fmt::Display) -> YamlError {
    YamlError::Write {
        message: m.to_string(),
    }
}

impl serde::ser::Error for YamlError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        write_err(msg)
    }
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = YamlError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder<SeqBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder<MapBuilder>;

    fn serialize_bool(self, v: bool) -> Result<Value, YamlError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, YamlError> {
        Ok(i64::from(v).into())
    }
    fn serialize_i16(self, v: i16) -> Result<Value, YamlError> {
        Ok(i64::from(v).into())
    }
    fn serialize_i32(self, v: i32) -> Result<Value, YamlError> {
        Ok(i64::from(v).into())
    }
    fn serialize_i64(self, v: i64) -> Result<Value, YamlError> {
        Ok(v.into())
    }
    fn serialize_u8(self, v: u8) -> Result<Value, YamlError> {
        Ok(u64::from(v).into())
    }
    fn serialize_u16(self, v: u16) -> Result<Value, YamlError> {
        Ok(u64::from(v).into())
    }
    fn serialize_u32(self, v: u32) -> Result<Value, YamlError> {
        Ok(u64::from(v).into())
    }
    fn serialize_u64(self, v: u64) -> Result<Value, YamlError> {
        Ok(v.into())
    }
    fn serialize_f32(self, v: f32) -> Result<Value, YamlError> {
        Ok(f64::from(v).into())
    }
    fn serialize_f64(self, v: f64) -> Result<Value, YamlError> {
        Ok(v.into())
    }
    fn serialize_char(self, v: char) -> Result<Value, YamlError> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, YamlError> {
        Ok(v.into())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, YamlError> {
        Ok(Value::Sequence(
            v.iter().map(|&b| Value::from(u64::from(b))).collect(),
        ))
    }
    fn serialize_none(self) -> Result<Value, YamlError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, YamlError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, YamlError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, YamlError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, YamlError> {
        Ok(variant.into())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Value, YamlError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Value, YamlError> {
        let mut m = Mapping::new();
        m.insert(variant, v.serialize(ValueSerializer)?);
        Ok(Value::Mapping(m))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, YamlError> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, YamlError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, YamlError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<SeqBuilder>, YamlError> {
        Ok(VariantBuilder(variant, self.serialize_seq(Some(len))?))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapBuilder, YamlError> {
        Ok(MapBuilder(Mapping::new(), None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapBuilder, YamlError> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<VariantBuilder<MapBuilder>, YamlError> {
        Ok(VariantBuilder(variant, self.serialize_map(None)?))
    }
}

struct SeqBuilder(Vec<Value>);

impl serde::ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = YamlError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), YamlError> {
        self.0.push(v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, YamlError> {
        Ok(Value::Sequence(self.0))
    }
}

impl serde::ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = YamlError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), YamlError> {
        serde::ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, YamlError> {
        serde::ser::SerializeSeq::end(self)
    }
}

impl serde::ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = YamlError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), YamlError> {
        serde::ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, YamlError> {
        serde::ser::SerializeSeq::end(self)
    }
}

struct MapBuilder(Mapping, Option<Value>);

impl serde::ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = YamlError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), YamlError> {
        self.1 = Some(k.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), YamlError> {
        let key = self
            .1
            .take()
            .ok_or_else(|| write_err("a map value without its key"))?;
        self.0.insert(key, v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, YamlError> {
        Ok(Value::Mapping(self.0))
    }
}

impl serde::ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = YamlError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), YamlError> {
        self.0.insert(key, v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, YamlError> {
        Ok(Value::Mapping(self.0))
    }
}

struct VariantBuilder<B>(&'static str, B);

impl serde::ser::SerializeTupleVariant for VariantBuilder<SeqBuilder> {
    type Ok = Value;
    type Error = YamlError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), YamlError> {
        serde::ser::SerializeSeq::serialize_element(&mut self.1, v)
    }
    fn end(self) -> Result<Value, YamlError> {
        let mut m = Mapping::new();
        m.insert(self.0, serde::ser::SerializeSeq::end(self.1)?);
        Ok(Value::Mapping(m))
    }
}

impl serde::ser::SerializeStructVariant for VariantBuilder<MapBuilder> {
    type Ok = Value;
    type Error = YamlError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), YamlError> {
        serde::ser::SerializeStruct::serialize_field(&mut self.1, key, v)
    }
    fn end(self) -> Result<Value, YamlError> {
        let mut m = Mapping::new();
        m.insert(self.0, serde::ser::SerializeStruct::end(self.1)?);
        Ok(Value::Mapping(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-document text read without the document map reads as with it; texts with
    /// marker lines (or a lone carriage return before one) take the map.
    #[test]
    fn one_document_without_the_map_reads_as_with_it() {
        for text in [
            "a: 1\n",
            "# c\na: [1, 2]\n",
            "a: |\n  ---\n  ...\nb: 2\n",
            "a: \"x\n --- y\"\n",
            "~\n",
            "[1, 2]",
            "a: 1\r---\rb: 2\r",
            "---\na: 1\n",
            "a: 1\n...\n",
            "%YAML 1.2\n---\na: 1\n",
            "\u{feff}a: 1\n",
            "a: 1\n---\n",
            "---\n---\na: 1\n",
            "",
            "# only a comment\n",
            "a: [1\n",
            "a: 1\na: 2\n",
            "a: &x {b: [1, 2.5, .inf, -.nan, 0x1f, 0o17, 1e3, 0755, 1_000]}\nc: *x\n",
            "<<: {a: 1}\nb: !!str 2\nc: !custom 3\nd: yes\ne: null\nf: ~\ng:\n",
            "a: >-\n  folded\n  text\nb: '\\n'\nc: \"\\t\\u00e9\"\n? [k]\n: v\n",
            "- 1\n- [2, {3: 4}]\n- \"x\"\n",
            "a: \"unterminated\n",
            "a:\n\t- tab\n",
            "plain scalar only\n",
            "null\n",
            "a: *undefined\n",
        ] {
            // Compared as printed: NaN is not equal to itself.
            assert_eq!(
                format!("{:?}", read_stream(text, true)),
                format!("{:?}", read_stream(text, false)),
                "{text:?}"
            );
        }
        assert!(!has_document_markers("a: |\n  ---\n"));
        assert!(has_document_markers("a: 1\r---\rb: 2"));
        assert_eq!(read_stream("a: 1\r---\rb: 2\r", true).count, 2);
    }

    /// The same equivalence over every YAML file the repository holds: real-world specs,
    /// rules, manifests and fixtures (which also hold broken and hostile inputs).
    #[test]
    fn every_yaml_file_of_the_repository_reads_as_with_the_map() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for d in ["tests/fixtures", "examples", "deploy", "rules"] {
            yaml_files(&root.join(d), &mut files);
        }
        assert!(files.len() > 100, "{} files", files.len());
        let mut single = 0;
        for f in &files {
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            let fast = read_stream(&text, true);
            let slow = read_stream(&text, false);
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{}", f.display());
            single += usize::from(fast.count == 1 && !has_document_markers(&text));
        }
        // The fast path was taken, for most of them.
        assert!(single > files.len() / 3, "{single} of {}", files.len());
    }

    /// Every YAML file of the repository (and every document of a multi-document one): the
    /// event-built tree is serde-saphyr's value, or the tree reader gives up.
    #[test]
    fn every_yaml_document_of_the_repository_builds_as_serde_saphyr_reads_it() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for d in [
            "tests/fixtures",
            "examples",
            "deploy",
            "rules",
            "dashboards",
        ] {
            yaml_files(&root.join(d), &mut files);
        }
        let (mut answered, mut total) = (0, 0);
        for f in &files {
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            for doc in text.split("\n---") {
                if has_document_markers(doc) {
                    continue;
                }
                total += 1;
                let Some(built) = tree::read(doc) else {
                    continue;
                };
                answered += 1;
                let read = serde_saphyr::from_str_with_options::<Value>(doc, options());
                assert_eq!(
                    format!("{:?}", Ok::<_, String>(&built)),
                    format!("{:?}", read.as_ref().map_err(|e| e.to_string())),
                    "{}",
                    f.display()
                );
            }
        }
        eprintln!("tree reader: {answered} of {total} documents");
        assert!(total > 100, "{total} documents");
        // Nearly all real documents are plain enough for the tree reader.
        assert!(answered * 10 > total * 7, "{answered} of {total}");
    }

    fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                yaml_files(&p, out);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
                out.push(p);
            }
        }
    }

    /// Nine levels of ten aliases: 10^9 nodes once expanded, in a few hundred bytes.
    pub(crate) fn billion_laughs() -> String {
        let mut bomb = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        bomb
    }

    #[test]
    fn an_alias_bomb_is_refused_naming_the_limit() {
        let e = from_str::<Value>(&billion_laughs()).unwrap_err();
        assert!(e.is_limit(), "{e:?}");
        assert!(e.to_string().contains("alias"), "{e}");
        let s = parse_stream(&format!("a: 1\n---\n{}", billion_laughs()));
        assert_eq!(s.documents.len(), 1);
        let (doc, e) = s.error.unwrap();
        assert_eq!(doc, 1);
        assert!(e.is_limit() && e.to_string().contains("alias"), "{e}");
        // A few aliases are fine.
        let v: Value = from_str("a: &x {b: 1}\nc: *x\n").unwrap();
        assert_eq!(v["c"]["b"].as_u64(), Some(1));
    }

    #[test]
    fn deep_nesting_is_refused_naming_the_depth_limit() {
        for text in [
            format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)),
            (0..MAX_DEPTH + 1)
                .map(|i| format!("{}k:\n", "  ".repeat(i)))
                .collect(),
        ] {
            let e = from_str::<Value>(&text).unwrap_err();
            assert!(e.to_string().contains("depth limit"), "{e}");
            let e = parse_stream(&text).error.unwrap().1;
            assert!(e.to_string().contains("depth limit"), "{e}");
        }
    }

    #[test]
    fn documents_keep_their_index_in_the_file() {
        let s = parse_stream("---\n---\na: 1\n---\n# only a comment\n---\nb: [1, 2\n");
        assert_eq!(s.count, 4);
        assert_eq!(s.documents.len(), 1);
        assert_eq!(s.documents[0].index, 1);
        assert_eq!(s.documents[0].value["a"].as_u64(), Some(1));
        let (i, e) = s.error.unwrap();
        assert_eq!(i, 3, "{e}");
        assert!(!e.is_limit());
        assert!(e.to_string().contains("line "), "{e}");
        // A duplicate key is an error of its document.
        let s = parse_stream("a: 1\n---\nb: 1\nb: 2\n");
        assert_eq!(s.documents.len(), 1);
        assert_eq!(s.error.unwrap().0, 1);
    }

    #[test]
    fn values_read_as_yaml_1_2_and_keep_key_order() {
        let v: Value = from_str("z: yes\ny: 0755\nx: 1.0\nw: .inf\n1: one\n").unwrap();
        let keys: Vec<String> = v
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(keys, ["z", "y", "x", "w", "Number(PosInt(1))"]);
        assert_eq!(v["z"], "yes");
        assert_eq!(v["y"], "0755");
        assert!(matches!(v["w"], Value::Number(Number::Float(f)) if f.is_infinite()));
        assert_eq!(
            match &v["x"] {
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            },
            "1.0"
        );
    }

    #[test]
    fn writes_as_serde_yaml_did() {
        let v: Value = from_str(
            "a: 'true'\nb: '1.5'\nc: 0.1.0\nd: ''\ne: \"it's: x\"\nf: \"x\\ty\"\ng: |-\n  l1\n  l2\nh: [1, {i: j}]\nk: {}\nl: []\n",
        )
        .unwrap();
        assert_eq!(
            to_string(&v).unwrap(),
            "a: 'true'\nb: '1.5'\nc: 0.1.0\nd: ''\ne: 'it''s: x'\nf: \"x\\ty\"\ng: |-\n  l1\n  l2\nh:\n- 1\n- i: j\nk: {}\nl: []\n"
        );
    }
}
