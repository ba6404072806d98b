//! The daemon's live set of SLOs, reloaded from spec files when they change.
//!
//! Changes are found by polling a fingerprint of the files' names and contents (cheap, and
//! robust to Kubernetes ConfigMap volumes, which swap a symlink rather than writing files).
//! A file that fails to load is reported and skipped, and the last good version of that
//! file's SLOs is kept. A configured directory that cannot be listed (any error: too many
//! open files, permissions, a broken symlink) keeps the last good SLOs of all its files.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use crate::slo::spec::{self, Diagnostic};
use crate::slo::Slo;

/// What one reload did.
#[derive(Debug, Default)]
pub struct Reload {
    /// The spec set changed (new SLOs were taken into use).
    pub changed: bool,
    /// Problems in the current files; the files named here keep their previous SLOs.
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug)]
pub struct SloStore {
    paths: Vec<PathBuf>,
    fingerprint: Option<u64>,
    /// Shared with each cycle's targets (an evaluation reads them; nothing copies them).
    slos: Vec<Arc<Slo>>,
    failing_files: BTreeSet<PathBuf>,
}

impl SloStore {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        SloStore {
            paths,
            fingerprint: None,
            slos: Vec::new(),
            failing_files: BTreeSet::new(),
        }
    }

    pub fn slos(&self) -> &[Arc<Slo>] {
        &self.slos
    }

    /// Files whose latest version failed to load.
    pub fn failing_files(&self) -> &BTreeSet<PathBuf> {
        &self.failing_files
    }

    /// Reload when the files changed since the last call.
    pub fn reload(&mut self) -> Reload {
        let fp = fingerprint(&self.paths);
        if Some(fp) == self.fingerprint {
            return Reload::default();
        }
        self.fingerprint = Some(fp);
        let report = spec::load_paths(&self.paths);
        let bad: HashSet<PathBuf> = report.errors.iter().map(|d| d.file.clone()).collect();
        // A configured path that cannot be listed or read (too many open files, a ConfigMap
        // volume mid-swap, a permission or symlink error) keeps every SLO loaded from under
        // it: a listing error says nothing about which files are gone.
        let unlistable: Vec<&PathBuf> = self.paths.iter().filter(|p| bad.contains(*p)).collect();
        let kept =
            |file: &PathBuf| bad.contains(file) || unlistable.iter().any(|p| file.starts_with(p));
        let mut errors = report.errors;
        // Failing files keep their previous SLOs; good files contribute their new ones. A new
        // SLO that collides with a kept one loses: the kept one is the known-good version.
        let mut next: Vec<Arc<Slo>> = self
            .slos
            .iter()
            .filter(|s| kept(&s.origin.file))
            .cloned()
            .collect();
        let mut seen: HashSet<String> = next.iter().map(|s| s.id.clone()).collect();
        for s in report.slos {
            if kept(&s.origin.file) {
                continue;
            }
            if !seen.insert(s.id.clone()) {
                errors.push(Diagnostic {
                    severity: spec::Severity::Error,
                    file: s.origin.file.clone(),
                    doc_index: Some(s.origin.doc_index),
                    field: String::new(),
                    message: format!(
                        "duplicate SLO id {}: it is still defined by the last good version of a file that now fails to load; expected unique ids",
                        s.id
                    ),
                });
                continue;
            }
            next.push(Arc::new(s));
        }
        next.sort_by(|a, b| {
            (&a.origin.file, a.origin.doc_index, &a.id).cmp(&(
                &b.origin.file,
                b.origin.doc_index,
                &b.id,
            ))
        });
        let changed = next != self.slos;
        self.slos = next;
        self.failing_files = bad.into_iter().collect();
        release_free_memory();
        Reload {
            changed,
            errors,
            warnings: report.warnings,
        }
    }
}

/// Give the memory a load freed back to the operating system. Files are parsed on several
/// threads, and glibc's malloc keeps each thread's freed parse trees (YAML values, PromQL
/// syntax trees, the texts) in that thread's arena, out of reach of the threads that run the
/// evaluation: at 10,000 SLOs that is about 8 MiB of the peak RSS of `run --once` (measured
/// with heaptrack and `MALLOC_ARENA_MAX=1`). `malloc_trim` returns every arena's free pages;
/// it changes no allocation. Other allocators keep their own policy.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases pages malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hash of every spec file's path and content (directories expanded like the loader does).
fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in paths {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
                .collect(),
            Err(_) => vec![p.clone()],
        };
        files.sort();
        for f in files {
            f.hash(&mut h);
            match std::fs::read(&f) {
                Ok(bytes) => bytes.hash(&mut h),
                Err(e) => e.kind().to_string().hash(&mut h),
            }
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(slo: &str) -> String {
        format!(
            r#"version: "prometheus/v1"
service: "checkout"
slos:
  - name: "{slo}"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{{code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate(http_requests_total[{{{{.window}}}}]))
    alerting:
      page_alert: {{disable: true}}
      ticket_alert: {{disable: true}}
"#
        )
    }

    fn ids(s: &SloStore) -> Vec<String> {
        s.slos().iter().map(|x| x.id.clone()).collect()
    }

    /// A directory that cannot be listed (here a symlink loop: ELOOP, which even root
    /// cannot list) keeps every SLO of its files; once it can be listed again, a removed
    /// file's SLOs go.
    #[test]
    fn a_listing_error_keeps_the_last_good_slos() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("slos");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.yml"), spec("availability")).unwrap();
        std::fs::write(dir.join("b.yml"), spec("latency")).unwrap();
        let mut store = SloStore::new(vec![dir.clone()]);
        let r = store.reload();
        assert!(r.changed && r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(ids(&store), ["checkout-availability", "checkout-latency"]);

        let aside = tmp.path().join("aside");
        std::fs::rename(&dir, &aside).unwrap();
        std::os::unix::fs::symlink(&dir, &dir).unwrap();
        let r = store.reload();
        assert!(!r.errors.is_empty(), "the listing error is reported");
        assert!(!r.changed, "nothing unloaded");
        assert_eq!(ids(&store), ["checkout-availability", "checkout-latency"]);
        assert!(store.failing_files().contains(&dir));

        // Listable again, with b.yml removed: its SLO goes, a.yml's stays.
        std::fs::remove_file(&dir).unwrap();
        std::fs::rename(&aside, &dir).unwrap();
        std::fs::remove_file(dir.join("b.yml")).unwrap();
        let r = store.reload();
        assert!(r.changed && r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(ids(&store), ["checkout-availability"]);
        assert!(store.failing_files().is_empty());
    }
}
