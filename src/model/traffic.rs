//! Traffic weights and the route they apply to: what the Rollout spec names and the
//! `TrafficRouter` port reads and writes.

use serde::{Deserialize, Serialize};

/// Weights in percent; `stable + canary == 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub stable: u32,
    pub canary: u32,
}

impl Weights {
    /// `canary` percent to the canary, the rest to stable (clamped to 100).
    pub fn canary(canary: u32) -> Self {
        let canary = canary.min(100);
        Weights {
            stable: 100 - canary,
            canary,
        }
    }
}

/// Which object and route to shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum TrafficTarget {
    /// An Istio `networking.istio.io/v1` VirtualService.
    VirtualService {
        namespace: String,
        name: String,
        /// `spec.http[].name` of the route to shift.
        route: String,
        destinations: IstioDestinations,
    },
    /// A Gateway API `gateway.networking.k8s.io/v1` HTTPRoute. The rule shifted is the
    /// one whose backendRefs hold both the stable and the canary backend.
    HttpRoute {
        namespace: String,
        name: String,
        stable: BackendRef,
        canary: BackendRef,
    },
}

/// How the stable and canary destinations of an Istio route are told apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum IstioDestinations {
    /// One host, two subsets of a DestinationRule.
    Subset {
        host: String,
        stable_subset: String,
        canary_subset: String,
    },
    /// Two hosts (two Services).
    Host {
        stable_host: String,
        canary_host: String,
    },
}

/// A Gateway API backendRef (a Service by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A header step's match: requests carrying **all** these headers go to the canary, ahead of
/// the weighted route (`{headers: {x-canary: "true"}}`). Header names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMatch {
    pub headers: std::collections::BTreeMap<String, HeaderValue>,
}

/// How one header's value is matched: a plain string is an exact match; `{prefix: …}` and
/// `{regex: …}` select the others. Regexes are RE2 syntax (what Envoy runs) and must match
/// the whole value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Exact(String),
    Prefix { prefix: String },
    Regex { regex: String },
}

impl HeaderValue {
    /// The value as a regular expression matching the whole header value (Gateway API's
    /// `RegularExpression` for exact and prefix matches): a prefix `abc` is `^abc.*`, which
    /// means the same under full-match (Envoy) and search semantics.
    pub fn as_regex(&self) -> String {
        match self {
            HeaderValue::Exact(v) => format!("^{}$", regex::escape(v)),
            HeaderValue::Prefix { prefix } => format!("^{}.*", regex::escape(prefix)),
            HeaderValue::Regex { regex } => regex.clone(),
        }
    }

    /// The simplest form meaning the same: a regex that is `^<literal>.*` is a prefix and
    /// `^<literal>$` an exact match (what a Gateway API route reads back as).
    pub fn canonical(&self) -> HeaderValue {
        let HeaderValue::Regex { regex: r } = self else {
            return self.clone();
        };
        let literal = |body: &str| -> Option<String> {
            let lit = unescape_literal(body)?;
            (regex::escape(&lit) == body).then_some(lit)
        };
        if let Some(body) = r.strip_prefix('^') {
            if let Some(lit) = body.strip_suffix(".*").and_then(literal) {
                return HeaderValue::Prefix { prefix: lit };
            }
            if let Some(lit) = body.strip_suffix('$').and_then(literal) {
                return HeaderValue::Exact(lit);
            }
        }
        self.clone()
    }
}

/// The literal a `regex::escape`d string stands for; `None` when it holds regex syntax.
fn unescape_literal(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            c if regex::escape(&c.to_string()).len() == c.len_utf8() => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

impl HeaderMatch {
    /// The same match with every value in its [`HeaderValue::canonical`] form; two matches
    /// route the same requests when their canonical forms are equal.
    pub fn canonical(&self) -> HeaderMatch {
        HeaderMatch {
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.canonical()))
                .collect(),
        }
    }

    /// `x-canary: "true", x-user: prefix "beta-"` for messages.
    pub fn describe(&self) -> String {
        self.headers
            .iter()
            .map(|(k, v)| match v {
                HeaderValue::Exact(x) => format!("{k}: {x:?}"),
                HeaderValue::Prefix { prefix } => format!("{k}: prefix {prefix:?}"),
                HeaderValue::Regex { regex } => format!("{k}: regex {regex:?}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What slogate sets on a route: the weights and, during a header step, the header-match
/// route to the canary placed ahead of the weighted one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    #[serde(flatten)]
    pub weights: Weights,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_match: Option<HeaderMatch>,
}

impl Routing {
    /// Weights only, no header route.
    pub fn weights(weights: Weights) -> Self {
        Routing {
            weights,
            header_match: None,
        }
    }

    /// Whether the two route the same requests the same way.
    pub fn same(&self, other: &Routing) -> bool {
        self.weights == other.weights
            && self.header_match.as_ref().map(HeaderMatch::canonical)
                == other.header_match.as_ref().map(HeaderMatch::canonical)
    }

    /// `100/0 stable/canary` or `100/0 stable/canary + header route (x-canary: "true")`.
    pub fn describe(&self) -> String {
        let w = format!(
            "{}/{} stable/canary",
            self.weights.stable, self.weights.canary
        );
        match &self.header_match {
            Some(h) => format!("{w} + header route to the canary ({})", h.describe()),
            None => w,
        }
    }
}

impl From<Weights> for Routing {
    fn from(w: Weights) -> Self {
        Routing::weights(w)
    }
}
