//! An alert's label set, as the receiver keeps it: sorted by name, the last of a repeated
//! name winning (as when a JSON object is decoded into a map).
//!
//! Written here rather than a `BTreeMap<String, String>`: the receiver decodes one label set
//! per alert and reads four or five labels of it, and a map of owned strings cost two
//! allocations per label (fourteen for Sloth's seven), then as many frees in the writer
//! task, a sixth of the receiver's work under a flood. Here a label set is one text buffer
//! and one vector of bounds, filled straight from the JSON decoder; no crate keeps a small
//! sorted string map in one buffer with a serde decoder that appends into it.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Where one label's name and value are in [`Labels::text`].
#[derive(Debug, Clone, Copy)]
struct Pair {
    name: (usize, usize),
    value: (usize, usize),
}

/// A label set, sorted by name, in one text buffer. Two sets are equal when they hold the
/// same names and values, whatever their buffers hold besides.
#[derive(Clone, Default)]
pub struct Labels {
    text: String,
    pairs: Vec<Pair>,
}

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    fn at(&self, (from, to): (usize, usize)) -> &str {
        // The bounds were taken from `text` at the end of a push of a whole `&str`, so they
        // are in range and on character boundaries; `get` keeps this free of panics anyway.
        self.text.get(from..to).unwrap_or_default()
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.at(self.pairs[i].value))
    }

    /// The position of `name` among the sorted names, or where it would go.
    fn find(&self, name: &str) -> Result<usize, usize> {
        // Alertmanager sends the labels sorted (Go's JSON encoder sorts map keys), so the
        // usual question while decoding is "after the last one?".
        match self.pairs.last() {
            None => return Err(0),
            Some(last) if self.at(last.name) < name => return Err(self.pairs.len()),
            _ => {}
        }
        self.pairs.binary_search_by(|p| self.at(p.name).cmp(name))
    }

    /// Name and value of each label, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.pairs
            .iter()
            .map(|p| (self.at(p.name), self.at(p.value)))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn push_text(&mut self, s: &str) -> (usize, usize) {
        let from = self.text.len();
        self.text.push_str(s);
        (from, self.text.len())
    }

    /// Set label `name` to `value`, replacing any value it had.
    pub fn insert(&mut self, name: &str, value: &str) {
        let value = self.push_text(value);
        self.place(name, value);
    }

    /// Put a pair whose value is already in the buffer at its sorted place.
    fn place(&mut self, name: &str, value: (usize, usize)) {
        match self.find(name) {
            Ok(i) => self.pairs[i].value = value,
            Err(i) => {
                let name = self.push_text(name);
                self.pairs.insert(i, Pair { name, value });
            }
        }
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Labels {}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut l = Labels::new();
        for (k, v) in iter {
            l.insert(k.as_ref(), v.as_ref());
        }
        l
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Appends a JSON string to a buffer, straight from the decoder (borrowed from the body, or
/// from the decoder's scratch when it held escapes): the bounds of where it went.
struct AppendStr<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for AppendStr<'_> {
    type Value = (usize, usize);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for AppendStr<'_> {
    type Value = (usize, usize);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        let from = self.0.len();
        self.0.push_str(s);
        Ok((from, self.0.len()))
    }
}

/// From a JSON object of strings only (`null`, an array or a non-string value is an error).
impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut l = Labels {
                    text: String::with_capacity(256),
                    pairs: Vec::with_capacity(map.size_hint().unwrap_or(8)),
                };
                while let Some(name) = map.next_key_seed(AppendStr(&mut l.text))? {
                    let value = map.next_value_seed(AppendStr(&mut l.text))?;
                    let after_last = l
                        .pairs
                        .last()
                        .is_none_or(|last| l.at(last.name) < l.at(name));
                    if after_last {
                        l.pairs.push(Pair { name, value });
                    } else {
                        // Out of order or repeated: placed by a search. The name's text is
                        // already in the buffer; `place` adds it again only when new.
                        let owned = l.at(name).to_string();
                        l.place(&owned, value);
                    }
                }
                Ok(l)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pairs(l: &Labels) -> Vec<(String, String)> {
        l.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Decoded from JSON, the set is the map serde would decode: sorted, last repeat
    /// winning, escapes resolved; in any order of the names.
    #[test]
    fn decodes_as_a_map_would() {
        let bodies = [
            r#"{"alertname":"A","severity":"page","sloth_id":"x"}"#,
            r#"{"sloth_id":"x","alertname":"A","severity":"page"}"#,
            r#"{"b":"1","a":"2","b":"3","a":"4","c":"5"}"#,
            r#"{"\u00e9t\u00e9":"\"q\"","e":"\n","":"","a\\b":"é"}"#,
            r#"{}"#,
        ];
        for body in bodies {
            let l: Labels = serde_json::from_str(body).unwrap();
            let m: BTreeMap<String, String> = serde_json::from_str(body).unwrap();
            let want: Vec<(String, String)> = m.clone().into_iter().collect();
            assert_eq!(pairs(&l), want, "{body}");
            for (k, v) in &m {
                assert_eq!(l.get(k), Some(v.as_str()), "{body}");
            }
            assert_eq!(l.get("absent"), None);
            assert_eq!(serde_json::to_value(&l).unwrap(), serde_json::json!(m));
            assert_eq!(l, m.iter().collect::<Labels>());
        }
        for bad in [
            r#"null"#,
            r#"[]"#,
            r#"{"a":1}"#,
            r#"{"a":null}"#,
            r#"{"a":"b""#,
        ] {
            assert!(serde_json::from_str::<Labels>(bad).is_err(), "{bad}");
        }
    }

    /// Random insertions agree with a `BTreeMap` (seeded).
    #[test]
    fn inserts_agree_with_a_map() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let (mut l, mut m) = (Labels::new(), BTreeMap::new());
            for _ in 0..next(20) {
                let k = format!("k{}", next(12));
                let v = "v".repeat(next(4) as usize);
                l.insert(&k, &v);
                m.insert(k, v);
            }
            assert_eq!(pairs(&l), m.clone().into_iter().collect::<Vec<_>>());
            assert_eq!(l.len(), m.len());
            assert_eq!(l.is_empty(), m.is_empty());
            assert_eq!(l, m.iter().collect::<Labels>());
        }
    }
}
