//! `MetricsSource` on a real Prometheus, through prometheus-http-query.
//!
//! Every call is bounded by the configured timeout: the reqwest client carries it, and
//! Prometheus is asked to stop evaluating at the same deadline (`timeout` parameter).
//! Queries are sent as POST so that long PromQL expressions are not limited by URL length.
//!
//! `instant_label_values` (the evaluation cycle's batched recording-rule reads: one element
//! per SLO, 10,000 elements per answer at platform scale) bypasses prometheus-http-query,
//! which builds a `HashMap<String, String>` per element: the answer is decoded with a serde
//! visitor (`label_values`) that keeps one label's value and the sample value and skips the
//! rest of each element without allocating. No maintained crate offers that projection.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_http_query::response::Data;
use prometheus_http_query::{Client, Error as PromError};

use crate::ports::metrics::{LabelValue, MetricsError, MetricsSource, Sample, Series};
use crate::ports::BoxError;

/// A Prometheus HTTP API client.
#[derive(Clone)]
pub struct Prometheus {
    client: Client,
    /// The same reqwest client, for the requests decoded here.
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Prometheus {
    /// Build a client for `url` (e.g. `http://prometheus:9090`). Fails on a malformed URL.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, MetricsError> {
        let bad_url = |message: String| MetricsError::InvalidUrl {
            url: url.to_string(),
            message,
        };
        let client_error = |what, hint, e: BoxError| MetricsError::Client {
            url: url.to_string(),
            what,
            hint,
            source: e.into(),
        };
        let parsed = url::Url::parse(url).map_err(|e| {
            client_error("invalid URL", "; expected e.g. http://host:9090", e.into())
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad_url(format!(
                "unsupported scheme {:?}; expected http or https",
                parsed.scheme()
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| client_error("cannot build HTTP client", "", e.into()))?;
        let client = Client::from(http.clone(), url.trim_end_matches('/'))
            .map_err(|e| client_error("invalid URL", "", e.into()))?;
        Ok(Prometheus {
            client,
            http,
            url: url.to_string(),
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn map_err(&self, query: &str, e: PromError) -> MetricsError {
        match e {
            PromError::Prometheus(p) => MetricsError::Query {
                query: query.to_string(),
                message: format!("{:?}: {}", p.error_type(), p.message()),
            },
            PromError::Client(c) => match c.inner() {
                Some(r) if r.is_timeout() => MetricsError::Timeout {
                    url: self.url.clone(),
                    query: query.to_string(),
                    timeout_secs: self.timeout.as_secs(),
                },
                Some(r) if r.is_connect() || r.is_request() => MetricsError::Unreachable {
                    url: self.url.clone(),
                    query: query.to_string(),
                    message: error_chain(r),
                },
                Some(r) => MetricsError::Unexpected {
                    query: query.to_string(),
                    message: error_chain(r),
                },
                None => MetricsError::Unexpected {
                    query: query.to_string(),
                    message: c.to_string(),
                },
            },
            other => MetricsError::Unexpected {
                query: query.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// `POST /api/v1/query`, decoded by `label_values::decode`.
    async fn query_label_values(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
        label: &str,
    ) -> Result<Vec<LabelValue>, MetricsError> {
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("query", query);
            form.append_pair("timeout", &format!("{}ms", self.server_timeout_ms()));
            if let Some(t) = at {
                form.append_pair("time", &t.timestamp().to_string());
            }
            form.finish()
        };
        let endpoint = format!("{}/api/v1/query", self.url.trim_end_matches('/'));
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                MetricsError::Timeout {
                    url: self.url.clone(),
                    query: query.to_string(),
                    timeout_secs: self.timeout.as_secs(),
                }
            } else if e.is_connect() || e.is_request() {
                MetricsError::Unreachable {
                    url: self.url.clone(),
                    query: query.to_string(),
                    message: error_chain(&e),
                }
            } else {
                MetricsError::Unexpected {
                    query: query.to_string(),
                    message: error_chain(&e),
                }
            }
        };
        let response = self
            .http
            .post(endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        label_values::decode(&body, label).map_err(|message| {
            match label_values::api_error(&body) {
                // Prometheus' own error answer (400 bad_data, 422 execution, 503 timeout…).
                Some((kind, error)) => MetricsError::Query {
                    query: query.to_string(),
                    message: format!("{kind}: {error}"),
                },
                None => MetricsError::Unexpected {
                    query: query.to_string(),
                    message: format!("HTTP {status}: {message}"),
                },
            }
        })
    }

    /// Prometheus' own evaluation timeout, slightly under the client's so that Prometheus
    /// answers with an error instead of the connection being cut.
    fn server_timeout_ms(&self) -> i64 {
        i64::try_from(self.timeout.as_millis().saturating_sub(250).max(1000)).unwrap_or(i64::MAX)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

fn labels(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[async_trait::async_trait]
impl MetricsSource for Prometheus {
    async fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError> {
        let mut q = self.client.query(query).timeout(self.server_timeout_ms());
        if let Some(t) = at {
            q = q.at(t.timestamp());
        }
        let res = q.post().await.map_err(|e| self.map_err(query, e))?;
        match res.data() {
            Data::Vector(v) => Ok(v
                .iter()
                .map(|s| Sample {
                    labels: labels(s.metric()),
                    value: s.sample().value(),
                })
                .collect()),
            Data::Scalar(s) => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: s.value(),
            }]),
            Data::Matrix(_) => Err(MetricsError::Unexpected {
                query: query.to_string(),
                message: "got a range vector; expected an instant vector or scalar".into(),
            }),
        }
    }

    async fn instant_label_values(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
        label: &str,
    ) -> Result<Vec<LabelValue>, MetricsError> {
        self.query_label_values(query, at, label).await
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Series>, MetricsError> {
        let res = self
            .client
            .query_range(
                query,
                start.timestamp(),
                end.timestamp(),
                step.as_secs_f64(),
            )
            .timeout(self.server_timeout_ms())
            .post()
            .await
            .map_err(|e| self.map_err(query, e))?;
        match res.data() {
            Data::Matrix(m) => Ok(m
                .iter()
                .map(|r| Series {
                    labels: labels(r.metric()),
                    points: r
                        .samples()
                        .iter()
                        .map(|s| (s.timestamp(), s.value()))
                        .collect(),
                })
                .collect()),
            _ => Err(MetricsError::Unexpected {
                query: query.to_string(),
                message: "expected a range vector".into(),
            }),
        }
    }
}

/// A streaming decode of `/api/v1/query` answers into [`LabelValue`]s.
mod label_values {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;

    use crate::ports::metrics::LabelValue;

    /// Decode a success answer (vector or scalar). `Err` carries a reason for any other body:
    /// an error answer, a matrix, or malformed JSON.
    pub fn decode(body: &[u8], label: &str) -> Result<Vec<LabelValue>, String> {
        let mut out = Vec::new();
        // One UTF-8 check of the whole body (fast on ASCII), then strings are borrowed from
        // it: checking each string again was a tenth of the decoding.
        let text = std::str::from_utf8(body).map_err(|e| format!("invalid UTF-8: {e}"))?;
        let mut de = serde_json::Deserializer::from_str(text);
        Envelope {
            label,
            out: &mut out,
        }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// `(errorType, error)` of an error answer.
    pub fn api_error(body: &[u8]) -> Option<(String, String)> {
        #[derive(Deserialize)]
        struct ApiError {
            status: String,
            #[serde(rename = "errorType", default)]
            error_type: String,
            #[serde(default)]
            error: String,
        }
        let e: ApiError = serde_json::from_slice(body).ok()?;
        (e.status == "error").then_some((e.error_type, e.error))
    }

    /// A JSON string borrowed from the body, or owned when it held escapes. (serde's own
    /// `Cow<str>` always copies outside derived structs: a key and a value per label of
    /// every element, 90,000 allocations per answer at 10,000 SLOs.)
    struct Text<'de>(Cow<'de, str>);

    impl<'de> Deserialize<'de> for Text<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Text<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Borrowed(s)))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Owned(s.to_string())))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// The sample value: Prometheus sends it as a string (`"0.5"`, `"NaN"`, `"+Inf"`).
    fn parse_value(v: &str) -> Option<f64> {
        match v {
            "+Inf" | "Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            other => other.parse().ok(),
        }
    }

    struct Envelope<'o, 'l> {
        label: &'l str,
        out: &'o mut Vec<LabelValue>,
    }

    impl<'de> DeserializeSeed<'de> for Envelope<'_, '_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Envelope<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a Prometheus API answer")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut status: Option<String> = None;
            let mut data = false;
            while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                match key.as_ref() {
                    "status" => status = Some(map.next_value()?),
                    "data" => {
                        map.next_value_seed(Data {
                            label: self.label,
                            out: &mut *self.out,
                        })?;
                        data = true;
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            match status.as_deref() {
                Some("success") if data => Ok(()),
                Some("success") => Err(de::Error::custom("answer without data")),
                Some(s) => Err(de::Error::custom(format!("status {s:?}"))),
                None => Err(de::Error::custom("answer without status")),
            }
        }
    }

    /// `data`: `{resultType, result}` in either order.
    struct Data<'o, 'l> {
        label: &'l str,
        out: &'o mut Vec<LabelValue>,
    }

    impl<'de> DeserializeSeed<'de> for Data<'_, '_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    /// A `result` whose type is not known yet (it may come before `resultType`).
    enum Pending {
        None,
        Vector(Vec<LabelValue>),
        Scalar(f64),
        Other,
    }

    impl<'de> Visitor<'de> for Data<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("the data of a Prometheus query answer")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut kind: Option<String> = None;
            let mut result = Pending::None;
            while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                match key.as_ref() {
                    "resultType" => kind = Some(map.next_value()?),
                    "result" => {
                        result = match kind.as_deref() {
                            Some("vector") | None => {
                                let mut v = Vec::new();
                                // Before `resultType`, a vector is assumed; a scalar's
                                // `[t, "v"]` then fails here and is reported as such.
                                map.next_value_seed(Elements {
                                    label: self.label,
                                    out: &mut v,
                                })?;
                                Pending::Vector(v)
                            }
                            Some("scalar") => {
                                let (_t, Text(v)): (f64, Text<'de>) = map.next_value()?;
                                Pending::Scalar(parse_value(&v).ok_or_else(|| {
                                    de::Error::custom(format!("sample value {v:?}"))
                                })?)
                            }
                            Some(_) => {
                                map.next_value::<IgnoredAny>()?;
                                Pending::Other
                            }
                        }
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            match (kind.as_deref(), result) {
                (Some("vector"), Pending::Vector(v)) => {
                    *self.out = v;
                    Ok(())
                }
                (Some("scalar"), Pending::Scalar(value)) => {
                    *self.out = vec![LabelValue { label: None, value }];
                    Ok(())
                }
                (Some("matrix"), _) => Err(de::Error::custom(
                    "got a range vector; expected an instant vector or scalar",
                )),
                (Some(k), _) => Err(de::Error::custom(format!(
                    "result type {k:?}; expected an instant vector or scalar"
                ))),
                (None, _) => Err(de::Error::custom("data without resultType")),
            }
        }
    }

    /// The `result` array of a vector.
    struct Elements<'o, 'l> {
        label: &'l str,
        out: &'o mut Vec<LabelValue>,
    }

    impl<'de> DeserializeSeed<'de> for Elements<'_, '_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Elements<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an instant vector")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            if let Some(n) = seq.size_hint() {
                self.out.reserve(n);
            }
            while let Some(e) = seq.next_element_seed(Element { label: self.label })? {
                self.out.push(e);
            }
            Ok(())
        }
    }

    /// One `{metric: {…}, value: [t, "v"]}`.
    struct Element<'l> {
        label: &'l str,
    }

    impl<'de> DeserializeSeed<'de> for Element<'_> {
        type Value = LabelValue;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<LabelValue, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Element<'_> {
        type Value = LabelValue;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an instant vector element")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelValue, A::Error> {
            let mut label = None;
            let mut value = None;
            while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                match key.as_ref() {
                    "metric" => label = map.next_value_seed(Metric { label: self.label })?,
                    "value" => {
                        let (_t, Text(v)): (f64, Text<'de>) = map.next_value()?;
                        value = Some(
                            parse_value(&v)
                                .ok_or_else(|| de::Error::custom(format!("sample value {v:?}")))?,
                        );
                    }
                    // Native histograms (`histogram`) and anything newer: not a float sample.
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let value = value.ok_or_else(|| de::Error::custom("element without a float value"))?;
            Ok(LabelValue { label, value })
        }
    }

    /// A `metric` object: keeps the one label's value.
    struct Metric<'l> {
        label: &'l str,
    }

    impl<'de> DeserializeSeed<'de> for Metric<'_> {
        type Value = Option<Box<str>>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Box<str>>, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Metric<'_> {
        type Value = Option<Box<str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a label set")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Box<str>>, A::Error> {
            let mut found = None;
            while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                if key.as_ref() == self.label {
                    let Text(v) = map.next_value()?;
                    found = Some(v.as_ref().into());
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn lv(label: Option<&str>, value: f64) -> LabelValue {
            LabelValue {
                label: label.map(Into::into),
                value,
            }
        }

        #[test]
        fn a_vector_keeps_one_label_and_the_value() {
            let body = br#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"x","sloth_id":"a-b","sloth_slo":"b"},"value":[1700000000.5,"0.25"]},
                {"metric":{"sloth_slo":"c"},"value":[1700000000,"NaN"]},
                {"value":[1700000000,"+Inf"],"metric":{"sloth_id":"esc\"aped\u00e9"}}]}}"#;
            let got = decode(body, "sloth_id").unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0], lv(Some("a-b"), 0.25));
            assert_eq!(got[1].label, None);
            assert!(got[1].value.is_nan());
            assert_eq!(got[2], lv(Some("esc\"apedé"), f64::INFINITY));
        }

        #[test]
        fn result_before_result_type_and_scalars_decode() {
            let body = br#"{"data":{"result":[{"metric":{},"value":[1,"-Inf"]}],"resultType":"vector"},"status":"success"}"#;
            assert_eq!(
                decode(body, "x").unwrap(),
                vec![lv(None, f64::NEG_INFINITY)]
            );
            let body = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2e3"]}}"#;
            assert_eq!(decode(body, "x").unwrap(), vec![lv(None, 2000.0)]);
            let body = br#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["w"]}"#;
            assert_eq!(decode(body, "x").unwrap(), vec![]);
        }

        #[test]
        fn errors_matrices_and_garbage_are_refused() {
            let err =
                br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
            assert!(decode(err, "x").is_err());
            assert_eq!(
                api_error(err),
                Some(("bad_data".into(), "parse error at char 3".into()))
            );
            let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#;
            assert!(decode(matrix, "x").unwrap_err().contains("range vector"));
            for bad in [
                &b"not json"[..],
                br#"{"status":"success"}"#,
                br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#,
                br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#,
                br#"{"status":"success","data":{"resultType":"vector","result":[]}} trailing"#,
            ] {
                assert!(decode(bad, "x").is_err(), "{}", String::from_utf8_lossy(bad));
                assert_eq!(api_error(bad), None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URL that does not parse: the message as before, url's error as the source.
    #[test]
    fn a_bad_url_keeps_the_parse_error() {
        let e = Prometheus::new("not a url", Duration::from_secs(1)).unwrap_err();
        let MetricsError::Client { what, source, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(*what, "invalid URL");
        assert!(source.is::<url::ParseError>(), "{source:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "invalid Prometheus URL \"not a url\": invalid URL: {source}; expected e.g. \
                 http://host:9090"
            )
        );
        let e = Prometheus::new("ftp://x", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, MetricsError::InvalidUrl { .. }), "{e:?}");
    }
}
