//! The demo's GitOps repository: a real bare remote and a Kustomize app laid out as teams
//! lay them out (`apps/checkout/base`, `overlays/staging`, `overlays/prod`).
//!
//! Only the seeding, the simulated Argo CD's reads of the remote and the final `git log`
//! run git directly here (blocking, hermetic: no user or system git config is read).
//! Every later commit, by the simulated developer or by slogate, goes through the real
//! git adapter ([`crate::adapters::git::GitCli`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The app's directory in the repository.
pub const APP_DIR: &str = "apps/checkout";
/// The production overlay: what the rollout and the guard watch.
pub const PROD: &str = "apps/checkout/overlays/prod";
pub const STAGING: &str = "apps/checkout/overlays/staging";
/// The image entries of the overlays (`images:` in kustomization.yaml).
pub const STABLE_IMAGE: &str = "example/checkout";
pub const CANARY_IMAGE: &str = "example/checkout-canary";

/// A git command or a file write of the demo's repository that failed. `Io` and `Spawn`
/// keep the io::Error as the source and show it in their message.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Git exited non-zero: `message` is its standard error.
    #[error("git {args}: {message}")]
    Failed { args: String, message: String },
    /// Git could not be started.
    #[error("git {args}: cannot run git: {source}")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    /// A directory or file of the repository could not be written (`what` says which).
    #[error("git {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Run git with no user or system configuration, returning stdout.
pub fn git(cwd: &Path, args: &[&str]) -> Result<String, GitError> {
    git_as(cwd, args, ("Platform Team", "platform@example.com"), None)
}

/// Commit `files` as `who` (name, email) at `when` (the simulated time, so that the
/// guard's post-deploy verification sees the deploy when it happened in the simulation)
/// in the clone `work` of `remote` (made on first use), and push. Returns the sha.
pub fn commit_at(
    remote: &Path,
    work: &Path,
    files: &[(String, String)],
    message: &str,
    who: (&str, &str),
    when: chrono::DateTime<chrono::Utc>,
) -> Result<String, GitError> {
    let url = remote.display().to_string();
    if !work.join(".git").exists() {
        let parent = work.parent().unwrap_or(work);
        let dest = work.display().to_string();
        git(parent, &["clone", "--quiet", &url, &dest])?;
    }
    git(work, &["fetch", "--quiet", "origin"])?;
    git(work, &["checkout", "--quiet", "-B", "main", "origin/main"])?;
    for (path, text) in files {
        let full = work.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|source| GitError::Io {
                what: format!("mkdir {}", parent.display()),
                source,
            })?;
        }
        std::fs::write(&full, text).map_err(|source| GitError::Io {
            what: format!("write {path}"),
            source,
        })?;
    }
    git(work, &["add", "--all"])?;
    let date = format!("@{} +0000", when.timestamp());
    git_as(
        work,
        &["commit", "--quiet", "-m", message],
        who,
        Some(&date),
    )?;
    git(work, &["push", "--quiet", "origin", "HEAD:main"])?;
    Ok(git(work, &["rev-parse", "HEAD"])?.trim().to_string())
}

fn git_as(
    cwd: &Path,
    args: &[&str],
    (name, email): (&str, &str),
    date: Option<&str>,
) -> Result<String, GitError> {
    let fail = |message: String| GitError::Failed {
        args: args.join(" "),
        message,
    };
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", name)
        .env("GIT_AUTHOR_EMAIL", email)
        .env("GIT_COMMITTER_NAME", name)
        .env("GIT_COMMITTER_EMAIL", email)
        .envs(
            date.into_iter()
                .flat_map(|d| [("GIT_AUTHOR_DATE", d), ("GIT_COMMITTER_DATE", d)]),
        )
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .map_err(|source| GitError::Spawn {
            args: args.join(" "),
            source,
        })?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The production overlay's kustomization.yaml.
pub fn prod_overlay(stable: &str, canary: &str, db_pool_size: u32) -> String {
    format!(
        "# checkout in production: the stable Deployment and the canary Deployment that
# slogate's Rollout shifts traffic to. A release sets the canary's tag; slogate promotes
# it to the stable tag once the canary has passed every step.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: {STABLE_IMAGE}
    newTag: {stable}
  - name: {CANARY_IMAGE}
    newTag: {canary}
configMapGenerator:
  - name: checkout-config
    behavior: merge
    literals:
      - DB_POOL_SIZE={db_pool_size}
"
    )
}

/// The staging overlay's kustomization.yaml.
pub fn staging_overlay(tag: &str) -> String {
    format!(
        "# checkout in staging: every release lands here first; `slogate promote` moves a
# tag from here to the production canary.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: {CANARY_IMAGE}
    newTag: {tag}
"
    )
}

const BASE_KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - service.yaml
configMapGenerator:
  - name: checkout-config
    literals:
      - DB_POOL_SIZE=20
";

const BASE_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
spec:
  replicas: 3
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      containers:
        - name: checkout
          image: example/checkout
          envFrom:
            - configMapRef: {name: checkout-config}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout-canary
spec:
  replicas: 1
  selector:
    matchLabels: {app: checkout, track: canary}
  template:
    metadata:
      labels: {app: checkout, track: canary}
    spec:
      containers:
        - name: checkout
          image: example/checkout-canary
          envFrom:
            - configMapRef: {name: checkout-config}
";

const BASE_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: checkout
spec:
  selector: {app: checkout}
  ports:
    - port: 80
      targetPort: 8080
";

/// Create `<dir>/remote.git` (bare) with the app at v1 in staging and production, plus
/// slogate's own specs under `slogate/`. Returns the remote's path.
pub fn seed(dir: &Path, slos: &str, rollout: &str, windows: &str) -> Result<PathBuf, GitError> {
    let io = |what: &str, source: std::io::Error| GitError::Io {
        what: what.to_string(),
        source,
    };
    let remote = dir.join("remote.git");
    std::fs::create_dir_all(&remote).map_err(|e| io("mkdir remote.git", e))?;
    git(
        &remote,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    )?;
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).map_err(|e| io("mkdir seed", e))?;
    git(&seed, &["init", "--quiet", "--initial-branch=main"])?;
    let files = [
        (
            format!("{APP_DIR}/base/kustomization.yaml"),
            BASE_KUSTOMIZATION.to_string(),
        ),
        (
            format!("{APP_DIR}/base/deployment.yaml"),
            BASE_DEPLOYMENT.to_string(),
        ),
        (
            format!("{APP_DIR}/base/service.yaml"),
            BASE_SERVICE.to_string(),
        ),
        (
            format!("{STAGING}/kustomization.yaml"),
            staging_overlay("v1"),
        ),
        (
            format!("{PROD}/kustomization.yaml"),
            prod_overlay("v1", "v1", 20),
        ),
        ("slogate/slos.yml".to_string(), slos.to_string()),
        ("slogate/rollout.yaml".to_string(), rollout.to_string()),
        ("slogate/windows.yml".to_string(), windows.to_string()),
    ];
    for (path, text) in &files {
        let full = seed.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("mkdir", e))?;
        }
        std::fs::write(&full, text).map_err(|e| io(path, e))?;
    }
    git(&seed, &["add", "--all"])?;
    git(
        &seed,
        &[
            "commit",
            "--quiet",
            "-m",
            "checkout: v1 in staging and production",
        ],
    )?;
    let url = remote.display().to_string();
    git(&seed, &["push", "--quiet", &url, "main"])?;
    std::fs::remove_dir_all(&seed).map_err(|e| io("rm seed", e))?;
    Ok(remote)
}

/// A file's content at the head of the remote's `main`.
pub fn show(remote: &Path, path: &str) -> Result<String, GitError> {
    git(remote, &["show", &format!("main:{path}")])
}

/// One commit of the remote, newest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogEntry {
    pub sha: String,
    pub author: String,
    pub subject: String,
    /// `Key: value` trailers of the message.
    pub trailers: Vec<(String, String)>,
}

/// The remote's history, newest first.
pub fn log(remote: &Path) -> Result<Vec<LogEntry>, GitError> {
    let text = git(
        remote,
        &[
            "log",
            "main",
            "--format=%H%x1f%an%x1f%s%x1f%(trailers:only,unfold)%x1e",
        ],
    )?;
    Ok(text
        .split('\x1e')
        .filter_map(|rec| {
            let mut f = rec.trim_start_matches('\n').split('\x1f');
            let sha = f.next()?.trim().to_string();
            if sha.is_empty() {
                return None;
            }
            let author = f.next()?.to_string();
            let subject = f.next()?.to_string();
            let trailers = f
                .next()
                .unwrap_or("")
                .lines()
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect();
            Some(LogEntry {
                sha,
                author,
                subject,
                trailers,
            })
        })
        .collect())
}

/// What the simulated Argo CD reads from the production overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub stable: String,
    pub canary: String,
    pub db_pool_size: u32,
}

/// Parse the production overlay (as the demo writes it; layout kept by slogate's edits).
pub fn deployed(overlay: &str) -> Result<Deployed, String> {
    let doc: crate::model::yaml::Value = crate::model::yaml::from_str(overlay)
        .map_err(|e| format!("{PROD}/kustomization.yaml: {e}"))?;
    let tag = |image: &str| -> Result<String, String> {
        doc.get("images")
            .and_then(|v| v.as_sequence())
            .and_then(|s| {
                s.iter()
                    .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(image))
            })
            .and_then(|e| e.get("newTag"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{PROD}/kustomization.yaml: images: no newTag for {image}"))
    };
    let db_pool_size = doc
        .get("configMapGenerator")
        .and_then(|v| v.as_sequence())
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("literals").and_then(|l| l.as_sequence()))
        .flatten()
        .filter_map(|l| l.as_str()?.strip_prefix("DB_POOL_SIZE=")?.parse().ok())
        .next()
        .unwrap_or(20);
    Ok(Deployed {
        stable: tag(STABLE_IMAGE)?,
        canary: tag(CANARY_IMAGE)?,
        db_pool_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prod_overlay_reads_back_as_written() {
        assert_eq!(
            deployed(&prod_overlay("v2", "v3", 2)).unwrap(),
            Deployed {
                stable: "v2".into(),
                canary: "v3".into(),
                db_pool_size: 2
            }
        );
        assert!(deployed("images: []").unwrap_err().contains("no newTag"));
    }
}
