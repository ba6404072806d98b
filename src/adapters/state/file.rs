//! The embedded file [`StateStore`]: the default outside a cluster, used by local runs, the
//! demo and the guard's own records (known-good commits, freezes, handled breaches).
//!
//! Layout under the root directory:
//! - `docs/<key>.json`: one document, `{"version": N, "value": …}`;
//! - `decisions.jsonl`: the decision log, one JSON record per line, append-only;
//! - `.deleted-version`: the highest version of any deleted document. A document created
//!   after a delete starts above it, so versions of one key never repeat: a writer holding
//!   a version of a deleted document cannot overwrite the document created in its place.
//! - `.lock`: an advisory lock (`flock`) held during every write, so that the daemon and
//!   CLI commands (`slogate rollout approve`, `slogate promote`) sharing a directory see
//!   each other's writes and compare-and-swap stays correct across processes.
//!
//! Durability: a document is written to a temporary file, fsynced, renamed over the old one,
//! and the directory is fsynced; a crash leaves the old or the new version, never a torn
//! one. A decision record is appended and fsynced before `append_decision` returns. A torn
//! log line (a crash during an append) is ignored when reading.
//!
//! All file work runs on tokio's blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::memory::take_last;
use crate::ports::state::{
    validate_key, DecisionQuery, DecisionRecord, StateError, StateStore, Versioned,
};

/// The file store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: Arc<PathBuf>,
}

fn io_err(path: &Path, e: impl Into<std::io::Error>) -> StateError {
    StateError::Io {
        path: path.display().to_string(),
        source: e.into(),
    }
}

impl FileStore {
    /// Open (creating when needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        let docs = root.join("docs");
        fs::create_dir_all(&docs).map_err(|e| io_err(&docs, e))?;
        Ok(FileStore {
            root: Arc::new(root),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn doc_path(&self, key: &str) -> PathBuf {
        self.root.join("docs").join(format!("{key}.json"))
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("decisions.jsonl")
    }

    /// Take the store-wide write lock; released when the file is dropped.
    fn lock(&self) -> Result<File, StateError> {
        let path = self.root.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        f.lock().map_err(|e| io_err(&path, e))?;
        Ok(f)
    }

    fn read_doc(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        let path = self.doc_path(key);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Undecodable {
                        key: key.to_string(),
                        at: Some(path.display().to_string()),
                        source: Box::new(e),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn put_blocking(
        &self,
        key: &str,
        value: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<u64, StateError> {
        validate_key(key)?;
        let _lock = self.lock()?;
        let found = self.read_doc(key)?.map(|d| d.version);
        if found != expected {
            return Err(StateError::Conflict {
                key: key.to_string(),
                expected,
                found,
            });
        }
        let version = match found {
            Some(v) => v + 1,
            None => self.deleted_high_water()? + 1,
        };
        let path = self.doc_path(key);
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.join("docs"));
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let bytes = serde_json::to_vec_pretty(&Versioned { version, value })
            .map_err(|e| io_err(&path, e))?;
        self.write_durably(&path, &bytes)?;
        Ok(version)
    }

    /// Replace `path` with `bytes`: a temporary file, fsynced, renamed over it, and the
    /// directory fsynced. A crash leaves the old content or the new, never a torn file.
    fn write_durably(&self, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.to_path_buf());
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        {
            let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
            f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
            f.sync_all().map_err(|e| io_err(&tmp, e))?;
        }
        fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&dir, e))
    }

    fn high_water_path(&self) -> PathBuf {
        self.root.join(".deleted-version")
    }

    /// The highest version ever deleted (0 when nothing was).
    fn deleted_high_water(&self) -> Result<u64, StateError> {
        let path = self.high_water_path();
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|e| StateError::Undecodable {
                key: ".deleted-version".into(),
                at: Some(format!("{}: expected a version number", path.display())),
                source: Box::new(e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn delete_blocking(&self, key: &str, expected: u64) -> Result<(), StateError> {
        validate_key(key)?;
        let _lock = self.lock()?;
        let found = self.read_doc(key)?.map(|d| d.version);
        if found != Some(expected) {
            return Err(StateError::Conflict {
                key: key.to_string(),
                expected: Some(expected),
                found,
            });
        }
        // Raised (durably) before the document goes, so a crash in between cannot let its
        // successor reuse a version.
        if expected > self.deleted_high_water()? {
            self.write_durably(&self.high_water_path(), expected.to_string().as_bytes())?;
        }
        let path = self.doc_path(key);
        fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err(dir, e))?;
        }
        Ok(())
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let docs = self.root.join("docs");
        let mut out = Vec::new();
        let mut stack = vec![docs.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&dir, e))?;
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Some(rel) = p
                    .strip_prefix(&docs)
                    .ok()
                    .and_then(|r| r.to_str())
                    .and_then(|r| r.strip_suffix(".json"))
                {
                    let key = rel.replace(std::path::MAIN_SEPARATOR, "/");
                    if key.starts_with(prefix) {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn append_blocking(&self, record: &DecisionRecord) -> Result<(), StateError> {
        let path = self.log_path();
        let mut line = serde_json::to_vec(record).map_err(|e| io_err(&path, e))?;
        line.push(b'\n');
        let _lock = self.lock()?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        // A torn line left by a crash has no newline: start on a fresh line so this
        // record stays readable.
        let len = f.metadata().map_err(|e| io_err(&path, e))?.len();
        if len > 0 && !ends_with_newline(&path, len)? {
            f.write_all(b"\n").map_err(|e| io_err(&path, e))?;
        }
        f.write_all(&line).map_err(|e| io_err(&path, e))?;
        f.sync_all().map_err(|e| io_err(&path, e))
    }

    fn decisions_blocking(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        let path = self.log_path();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path, e)),
        };
        let mut out = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| io_err(&path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<DecisionRecord>(&line) {
                Ok(r) if query.matches(&r) => out.push(r),
                Ok(_) => {}
                // A record cut short by a crash mid-append: it was never acknowledged (the
                // next append starts a fresh line after it).
                Err(e) if e.is_eof() => {
                    tracing::warn!(path = %path.display(), line = i + 1, "ignoring a torn line of the decision log");
                }
                Err(e) => {
                    return Err(StateError::Undecodable {
                        key: "decisions".into(),
                        at: Some(format!("{} line {}", path.display(), i + 1)),
                        source: Box::new(e),
                    })
                }
            }
        }
        Ok(take_last(out, query.limit))
    }
}

fn ends_with_newline(path: &Path, len: u64) -> Result<bool, StateError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    f.seek(SeekFrom::Start(len - 1))
        .map_err(|e| io_err(path, e))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map_err(|e| io_err(path, e))?;
    Ok(b[0] == b'\n')
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(StateError::Task)?
}

#[async_trait]
impl StateStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        validate_key(key)?;
        let (s, key) = (self.clone(), key.to_string());
        blocking(move || s.read_doc(&key)).await
    }

    async fn put(
        &self,
        key: &str,
        value: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<u64, StateError> {
        let (s, key) = (self.clone(), key.to_string());
        blocking(move || s.put_blocking(&key, value, expected)).await
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        let (s, key) = (self.clone(), key.to_string());
        blocking(move || s.delete_blocking(&key, expected)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let (s, prefix) = (self.clone(), prefix.to_string());
        blocking(move || s.list_blocking(&prefix)).await
    }

    async fn append_decision(&self, record: &DecisionRecord) -> Result<(), StateError> {
        let (s, record) = (self.clone(), record.clone());
        blocking(move || s.append_blocking(&record)).await
    }

    async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        let (s, query) = (self.clone(), query.clone());
        blocking(move || s.decisions_blocking(&query)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::state::DecisionKind;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn record(subject: &str, secs: i64) -> DecisionRecord {
        DecisionRecord::new(
            Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
            DecisionKind::Guard,
            subject,
            "schedule",
            "rollback",
            "budget 96% consumed",
        )
    }

    /// An I/O failure names the path and keeps the `io::Error` as its source.
    #[test]
    fn io_errors_keep_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let e = FileStore::open(&file).unwrap_err();
        assert!(e.to_string().contains("not-a-dir"), "{e}");
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<std::io::Error>(), "{source:?}");
    }

    #[tokio::test]
    async fn documents_survive_reopen_and_cas_holds_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileStore::open(dir.path()).unwrap();
        assert_eq!(
            a.put("guard/checkout", json!({"frozen": true}), None)
                .await
                .unwrap(),
            1
        );
        // A second store on the same directory (another process, e.g. the CLI).
        let b = FileStore::open(dir.path()).unwrap();
        let got = b.get("guard/checkout").await.unwrap().unwrap();
        assert_eq!((got.version, got.value), (1, json!({"frozen": true})));
        assert!(matches!(
            b.put("guard/checkout", json!({}), None).await,
            Err(StateError::Conflict {
                found: Some(1),
                expected: None,
                ..
            })
        ));
        assert_eq!(
            b.put("guard/checkout", json!({"frozen": false}), Some(1))
                .await
                .unwrap(),
            2
        );
        assert!(matches!(
            a.put("guard/checkout", json!({}), Some(1)).await,
            Err(StateError::Conflict { found: Some(2), .. })
        ));
        a.put("rollout/prod/checkout", json!(1), None)
            .await
            .unwrap();
        assert_eq!(
            a.list("").await.unwrap(),
            vec![
                "guard/checkout".to_string(),
                "rollout/prod/checkout".to_string()
            ]
        );
        assert_eq!(
            a.list("rollout/").await.unwrap(),
            vec!["rollout/prod/checkout".to_string()]
        );
        assert!(a.get("../etc/passwd").await.is_err());
    }

    #[tokio::test]
    async fn concurrent_creators_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = FileStore::open(dir.path()).unwrap();
            tasks.push(tokio::spawn(async move {
                s.put("breach/x", json!(i), None).await.is_ok()
            }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += t.await.unwrap() as usize;
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn decision_log_appends_filters_and_skips_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        for (i, subj) in ["checkout", "search", "checkout"].iter().enumerate() {
            s.append_decision(&record(subj, i as i64)).await.unwrap();
        }
        // Simulate a crash in the middle of an append.
        let log = dir.path().join("decisions.jsonl");
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(br#"{"id":"torn","time":"2023-"#).unwrap();
        drop(f);
        let all = s.decisions(&DecisionQuery::default()).await.unwrap();
        assert_eq!(all.len(), 3);
        let q = DecisionQuery {
            subject: Some("checkout".into()),
            limit: Some(1),
            ..Default::default()
        };
        let got = s.decisions(&q).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].time, all[2].time);
        // The next append starts on a fresh line and everything stays readable.
        s.append_decision(&record("search", 9)).await.unwrap();
        let reopened = FileStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened
                .decisions(&DecisionQuery::default())
                .await
                .unwrap()
                .len(),
            4
        );
    }

    #[tokio::test]
    async fn delete_is_a_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        crate::adapters::state::testing::delete_is_a_compare_and_swap(&s).await;
    }

    #[tokio::test]
    async fn versions_do_not_repeat_after_a_delete_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        let v1 = s.put("approvals/x", json!(1), None).await.unwrap();
        let v2 = s.put("approvals/x", json!(2), Some(v1)).await.unwrap();
        s.delete("approvals/x", v2).await.unwrap();
        // Another process (a CLI command) opening the directory afterwards.
        let other = FileStore::open(dir.path()).unwrap();
        let v3 = other.put("approvals/x", json!(3), None).await.unwrap();
        assert!(v3 > v2, "{v3} after {v2}");
        assert!(matches!(
            s.put("approvals/x", json!("stale"), Some(v2)).await,
            Err(StateError::Conflict { .. })
        ));
        // A corrupt high-water mark is an error naming the file, not a version reused.
        std::fs::write(dir.path().join(".deleted-version"), "x\n").unwrap();
        let e = s.put("new", json!(0), None).await.unwrap_err();
        assert!(e.to_string().contains(".deleted-version"), "{e}");
        let StateError::Undecodable { source, .. } = &e else {
            panic!("{e:?}");
        };
        assert!(source.is::<std::num::ParseIntError>(), "{source:?}");
    }

    /// A document or a decision-log line that does not decode names the file (and the line),
    /// and keeps serde's error as the source.
    #[tokio::test]
    async fn an_undecodable_document_or_line_keeps_the_decoder_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        s.put("guard/x", json!(1), None).await.unwrap();
        let doc = dir.path().join("docs/guard/x.json");
        std::fs::write(&doc, "{").unwrap();
        let e = s.get("guard/x").await.unwrap_err();
        let StateError::Undecodable { key, at, source } = &e else {
            panic!("{e:?}");
        };
        let serde = source
            .downcast_ref::<serde_json::Error>()
            .expect("serde's error");
        assert_eq!(
            (key.as_str(), at.clone()),
            ("guard/x", Some(doc.display().to_string()))
        );
        assert_eq!(
            e.to_string(),
            format!("state `guard/x` is corrupt: {}: {serde}", doc.display())
        );
        let log = dir.path().join("decisions.jsonl");
        std::fs::write(&log, "{}\n").unwrap();
        let e = s.decisions(&DecisionQuery::default()).await.unwrap_err();
        let StateError::Undecodable { source, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(
            e.to_string(),
            format!(
                "state `decisions` is corrupt: {} line 1: {source}",
                log.display()
            )
        );
    }
}
