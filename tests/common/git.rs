//! A real bare git remote in a temp dir, with a "developer" clone that pushes commits to
//! it, for tests of the GitOps port users (guard, promote, demo).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Plain git, hermetic (no user or system config).
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_env(dir, args, &[])
}

/// [`git`] with extra environment variables.
pub fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct GitRemote {
    pub tmp: TempDir,
    pub remote: PathBuf,
    pub dev: PathBuf,
}

impl GitRemote {
    /// An empty bare remote on branch `main` and a developer clone.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("remote.git");
        let dev = tmp.path().join("dev");
        git(
            tmp.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                remote.to_str().unwrap(),
            ],
        );
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                remote.to_str().unwrap(),
                dev.to_str().unwrap(),
            ],
        );
        git(&dev, &["checkout", "-q", "-b", "main"]);
        GitRemote { tmp, remote, dev }
    }

    pub fn url(&self) -> String {
        self.remote.to_str().unwrap().to_string()
    }

    /// A fresh work directory for a slogate process.
    pub fn workdir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Commit files on top of the remote head and push. `msg` may carry trailers.
    pub fn commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        self.commit_dated(files, msg, None)
    }

    /// [`commit`](Self::commit) with author and committer dates at `when` (unix seconds).
    pub fn commit_at(&self, files: &[(&str, &str)], msg: &str, when: i64) -> String {
        self.commit_dated(files, msg, Some(when))
    }

    fn commit_dated(&self, files: &[(&str, &str)], msg: &str, when: Option<i64>) -> String {
        let d = &self.dev;
        if !git(d, &["ls-remote", "origin", "refs/heads/main"])
            .trim()
            .is_empty()
        {
            git(d, &["fetch", "-q", "origin"]);
            git(d, &["reset", "-q", "--hard", "origin/main"]);
        }
        for (p, content) in files {
            let full = d.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        git(d, &["add", "-A"]);
        match when {
            None => {
                git(d, &["commit", "-q", "-m", msg]);
            }
            Some(t) => {
                let date = format!("@{t} +0000");
                git_env(
                    d,
                    &["commit", "-q", "-m", msg],
                    &[("GIT_AUTHOR_DATE", &date), ("GIT_COMMITTER_DATE", &date)],
                );
            }
        }
        git(d, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
        git(d, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// `git` on the bare remote.
    pub fn remote_git(&self, args: &[&str]) -> String {
        let mut a = vec!["--git-dir", self.remote.to_str().unwrap()];
        a.extend_from_slice(args);
        git(self.tmp.path(), &a)
    }

    /// Full messages of the remote's commits, newest first.
    pub fn log(&self) -> Vec<(String, String)> {
        self.remote_git(&["log", "--format=%H%x00%B%x1e", "main"])
            .split('\x1e')
            .filter(|s| !s.trim().is_empty())
            .filter_map(|s| {
                let (h, b) = s.trim_start().split_once('\0')?;
                Some((h.to_string(), b.trim().to_string()))
            })
            .collect()
    }

    /// Content of a file at the remote head.
    pub fn show(&self, path: &str) -> String {
        self.remote_git(&["show", &format!("main:{path}")])
    }
}

/// A Kustomize overlay file naming an image tag.
pub fn kustomization(app: &str, tag: &str) -> String {
    format!(
        "# {app} production overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: example/{app}\n    newTag: {tag} # set by CI\n"
    )
}
