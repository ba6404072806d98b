//! A `TrafficRouter` over a JSON file `{"stable": 90, "canary": 10}`: local runs, the demo,
//! and end-to-end tests whose test app reads the file to split its traffic.
//!
//! Same semantics as the Kubernetes routers: `set_weights` refuses to overwrite weights that
//! differ from what slogate last set ([`TrafficError::ManualChange`]), and reads the file back
//! after writing ([`TrafficError::ReadBack`]). Writes are atomic: the new content goes to a
//! temporary file in the same directory, is flushed to disk, and is renamed over the old file,
//! so a reader sees the old or the new weights, never a torn file. Other keys in the file are
//! kept. A missing file is [`TrafficError::NotFound`] for reads; the first write
//! (`expected == None`) creates it.
//!
//! A header step writes its match next to the weights,
//! `{"stable": 100, "canary": 0, "headerMatch": {"headers": {"x-canary": "true"}}}`: a test
//! app reading the file sends the requests that carry those headers to the canary. The key is
//! removed with the next weighted step, on promotion and on abort.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::model::traffic::{HeaderMatch, Routing, Weights};
use crate::ports::traffic::{TrafficError, TrafficRouter};
use crate::ports::BoxError;

/// Weights in a local JSON file.
#[derive(Debug)]
pub struct FileRouter {
    path: PathBuf,
    /// Serialises this process's read-compare-write cycles.
    lock: tokio::sync::Mutex<()>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The file's key for a header step's match.
const HEADER_KEY: &str = "headerMatch";

enum Read {
    Missing,
    Found {
        routing: Routing,
        rest: Map<String, Value>,
    },
}

impl FileRouter {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRouter {
            path: path.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn target(&self) -> String {
        format!("weights file {}", self.path.display())
    }

    fn shape(&self, message: String) -> TrafficError {
        TrafficError::Shape {
            target: self.target(),
            message,
        }
    }

    fn io(&self, what: &'static str, e: impl Into<BoxError>) -> TrafficError {
        TrafficError::Api {
            target: self.target(),
            what,
            source: e.into(),
        }
    }

    fn encode(&self, what: &'static str, source: serde_json::Error) -> TrafficError {
        TrafficError::Encode {
            target: self.target(),
            what,
            source,
        }
    }

    async fn read(&self) -> Result<Read, TrafficError> {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
            Err(e) => return Err(self.io("read", e)),
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            self.shape(format!(
                "not JSON ({e}); expected {{\"stable\": 90, \"canary\": 10}}"
            ))
        })?;
        let Value::Object(mut map) = value else {
            return Err(
                self.shape("expected a JSON object {\"stable\": 90, \"canary\": 10}".to_string())
            );
        };
        let mut field = |key: &str| -> Result<u32, TrafficError> {
            let v = map.remove(key);
            v.as_ref()
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    self.shape(format!(
                        "`{key}` is {}; expected a non-negative integer",
                        v.map_or("missing".to_string(), |v| v.to_string())
                    ))
                })
        };
        let weights = Weights {
            stable: field("stable")?,
            canary: field("canary")?,
        };
        let header_match = match map.remove(HEADER_KEY) {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value::<HeaderMatch>(v.clone()).map_err(|e| {
                self.shape(format!(
                    "`{HEADER_KEY}` is {v}: {e}; expected {{\"headers\": {{\"x-canary\": \"true\"}}}}"
                ))
            })?),
        };
        Ok(Read::Found {
            routing: Routing {
                weights,
                header_match,
            },
            rest: map,
        })
    }

    async fn write(
        &self,
        routing: &Routing,
        mut rest: Map<String, Value>,
    ) -> Result<(), TrafficError> {
        rest.insert("stable".into(), routing.weights.stable.into());
        rest.insert("canary".into(), routing.weights.canary.into());
        if let Some(h) = &routing.header_match {
            let v = serde_json::to_value(h)
                .map_err(|e| self.encode("serialising the header match", e))?;
            rest.insert(HEADER_KEY.into(), v);
        }
        let mut text = serde_json::to_string_pretty(&Value::Object(rest))
            .map_err(|e| self.encode("serialising", e))?;
        text.push('\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, text.as_bytes()))
            .await
            .map_err(|e| self.io("write", e))?
            .map_err(|e| self.io("write", e))
    }
}

/// Write `data` to a temporary sibling of `path`, flush it, and rename it over `path`.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the weights path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Persist the rename itself; best effort where directories cannot be opened.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait]
impl TrafficRouter for FileRouter {
    async fn routing(&self) -> Result<Routing, TrafficError> {
        match self.read().await? {
            Read::Missing => Err(TrafficError::NotFound {
                target: self.target(),
            }),
            Read::Found { routing, .. } => Ok(routing),
        }
    }

    async fn set_routing(
        &self,
        expected: Option<&Routing>,
        routing: &Routing,
    ) -> Result<Routing, TrafficError> {
        let weights = routing.weights;
        if weights.stable + weights.canary != 100 {
            return Err(self.shape(format!(
                "asked to set {weights:?}: stable + canary must be 100"
            )));
        }
        let _guard = self.lock.lock().await;
        let rest = match (self.read().await?, expected) {
            (Read::Missing, None) => Map::new(),
            (Read::Missing, Some(_)) => {
                return Err(TrafficError::NotFound {
                    target: self.target(),
                })
            }
            (Read::Found { routing: found, .. }, Some(expected)) if !found.same(expected) => {
                return Err(TrafficError::ManualChange {
                    target: self.target(),
                    expected: expected.clone(),
                    found,
                })
            }
            (Read::Found { routing: found, .. }, _) if found == *routing => return Ok(found),
            (Read::Found { rest, .. }, _) => rest,
        };
        self.write(routing, rest).await?;
        match self.read().await? {
            Read::Found { routing: read, .. } if read == *routing => Ok(read),
            Read::Found { routing: read, .. } => Err(TrafficError::ReadBack {
                target: self.target(),
                wrote: routing.clone(),
                read,
            }),
            Read::Missing => Err(TrafficError::NotFound {
                target: self.target(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> (tempfile::TempDir, FileRouter) {
        let dir = tempfile::tempdir().unwrap();
        let r = FileRouter::new(dir.path().join("weights.json"));
        (dir, r)
    }

    #[tokio::test]
    async fn first_write_creates_the_file_and_reads_back() {
        let (_dir, r) = router();
        assert!(matches!(
            r.weights().await,
            Err(TrafficError::NotFound { .. })
        ));
        let w = r.set_weights(None, Weights::canary(10)).await.unwrap();
        assert_eq!(
            w,
            Weights {
                stable: 90,
                canary: 10
            }
        );
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(r.path()).unwrap()).unwrap();
        assert_eq!(on_disk, serde_json::json!({"stable": 90, "canary": 10}));
        assert_eq!(r.weights().await.unwrap(), Weights::canary(10));
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(_dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("weights.json")]);
    }

    #[tokio::test]
    async fn steps_when_the_file_holds_what_was_set_and_keeps_other_keys() {
        let (_dir, r) = router();
        std::fs::write(r.path(), r#"{"stable": 90, "canary": 10, "note": "demo"}"#).unwrap();
        let w = r
            .set_weights(Some(Weights::canary(10)), Weights::canary(25))
            .await
            .unwrap();
        assert_eq!(w, Weights::canary(25));
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(r.path()).unwrap()).unwrap();
        assert_eq!(
            on_disk,
            serde_json::json!({"stable": 75, "canary": 25, "note": "demo"})
        );
    }

    #[tokio::test]
    async fn a_hand_edit_is_a_manual_change_and_nothing_is_written() {
        let (_dir, r) = router();
        let edited = r#"{"stable": 50, "canary": 50}"#;
        std::fs::write(r.path(), edited).unwrap();
        let e = r
            .set_weights(Some(Weights::canary(10)), Weights::canary(25))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            TrafficError::ManualChange {
                target: r.target(),
                expected: Weights::canary(10).into(),
                found: Weights::canary(50).into(),
            }
        );
        assert_eq!(std::fs::read_to_string(r.path()).unwrap(), edited);
    }

    #[tokio::test]
    async fn bad_content_is_a_shape_error() {
        let (_dir, r) = router();
        std::fs::write(r.path(), r#"{"stable": 90}"#).unwrap();
        let e = r.weights().await.unwrap_err();
        assert!(
            matches!(&e, TrafficError::Shape { message, .. } if message == "`canary` is missing; expected a non-negative integer"),
            "{e}"
        );
        std::fs::write(r.path(), "90/10").unwrap();
        assert!(matches!(r.weights().await, Err(TrafficError::Shape { .. })));
        assert!(matches!(
            r.set_weights(
                None,
                Weights {
                    stable: 50,
                    canary: 60
                }
            )
            .await,
            Err(TrafficError::Shape { .. })
        ));
    }

    #[tokio::test]
    async fn a_header_step_writes_its_match_and_the_next_step_removes_it() {
        let (_dir, r) = router();
        std::fs::write(r.path(), r#"{"stable": 100, "canary": 0, "note": "demo"}"#).unwrap();
        let h: HeaderMatch =
            serde_json::from_value(serde_json::json!({"headers": {"x-canary": "true"}})).unwrap();
        let header_step = Routing {
            weights: Weights::canary(0),
            header_match: Some(h.clone()),
        };
        let read = r
            .set_routing(Some(&Weights::canary(0).into()), &header_step)
            .await
            .unwrap();
        assert_eq!(read, header_step);
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(r.path()).unwrap()).unwrap();
        assert_eq!(
            on_disk,
            serde_json::json!({"stable": 100, "canary": 0, "note": "demo",
                               "headerMatch": {"headers": {"x-canary": "true"}}})
        );
        // Guarded like weights: expecting no header route is a manual change now.
        let e = r
            .set_weights(Some(Weights::canary(0)), Weights::canary(10))
            .await
            .unwrap_err();
        assert!(matches!(e, TrafficError::ManualChange { .. }), "{e}");
        let read = r
            .set_routing(Some(&header_step), &Weights::canary(10).into())
            .await
            .unwrap();
        assert_eq!(read, Weights::canary(10).into());
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(r.path()).unwrap()).unwrap();
        assert_eq!(
            on_disk,
            serde_json::json!({"stable": 90, "canary": 10, "note": "demo"})
        );
    }

    #[tokio::test]
    async fn expected_weights_but_no_file_is_not_found() {
        let (_dir, r) = router();
        assert!(matches!(
            r.set_weights(Some(Weights::canary(10)), Weights::canary(25))
                .await,
            Err(TrafficError::NotFound { .. })
        ));
        assert!(!r.path().exists());
    }
}
