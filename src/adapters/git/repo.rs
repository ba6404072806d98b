//! The blocking git work behind [`super::GitCli`]. Every function here runs on a
//! `spawn_blocking` thread while holding the adapter's work-tree lock.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::adapters::git::config::{RepoConfig, RevertMode};
use crate::adapters::git::runner::{GitRunner, RunOpts};
use crate::model::commit::{CommitInfo, RevertRequest, Sha};
use crate::model::trailers::{
    format_trailers, is_slogate_revert, one_line, parse_trailer_lines, reverted_shas,
    trailer_values, RevertTrailers, Trailer, TRAILER_APP_PATH, TRAILER_BREACH, TRAILER_BUDGET,
    TRAILER_KNOWN_GOOD, TRAILER_REASON, TRAILER_REVERTS, TRAILER_SLO, TRAILER_UNREVERTED,
};
use crate::ports::gitops::{validate_trailer_key, EditError, GitOpsError};

/// Called right before each push attempt with the attempt number (0-based). Lets tests
/// inject a concurrent push; `None` in production.
pub(crate) type BeforePushHook = Arc<dyn Fn(u32) + Send + Sync>;

/// An edit to apply on a fresh checkout: current content (`None`: file absent) → new content.
pub(crate) type FileEdit = Arc<dyn Fn(Option<&str>) -> Result<String, EditError> + Send + Sync>;

const LOG_FORMAT: &str =
    "--format=%H%x1f%s%x1f%an <%ae>%x1f%ct%x1f%(trailers:only=true,unfold=true)%x1e";

/// One commit that conflicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflicted {
    pub commit: CommitInfo,
    pub files: Vec<String>,
}

/// Result of preparing a revert locally (nothing pushed yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Prepared {
    Already {
        sha: Sha,
    },
    Nothing,
    Conflict {
        shas: Vec<Sha>,
        files: Vec<String>,
    },
    Commit {
        sha: Sha,
        reverted: Vec<CommitInfo>,
        unreverted: Vec<Conflicted>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushResult {
    Pushed,
    /// Rejected because the remote moved on (non-fast-forward, or lost a ref-update race).
    Stale,
}

/// A revert branch pushed (or found) in pull-request mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrBranch {
    pub sha: Sha,
    pub branch: String,
    pub title: String,
    pub body: String,
    pub reverted: Vec<Sha>,
    pub unreverted: Vec<Sha>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrPrepared {
    Done(Prepared),
    Branch(PrBranch),
}

/// How old a fetch the first round of a pushed revert may build on (see
/// [`Repo::revert_and_push`]).
pub(crate) const REUSE_FETCH: std::time::Duration = std::time::Duration::from_secs(5);

/// The blocking operations on one work tree.
pub(crate) struct Repo<'a> {
    pub cfg: &'a RepoConfig,
    pub git: GitRunner,
    pub hook: Option<BeforePushHook>,
    /// When the last successful fetch of this work tree started (shared by the adapter's
    /// clones, read and written under its work-tree lock).
    pub fetched: &'a Mutex<Option<Instant>>,
}

pub(crate) fn is_hex_sha(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A relative path inside the repository: no `..`, not absolute, not under `.git`.
pub(crate) fn validate_repo_path(p: &str) -> Result<String, GitOpsError> {
    let trimmed = p.trim_end_matches('/');
    let path = Path::new(trimmed);
    let bad = |why: &str| Err(GitOpsError::InvalidRequest(format!("path `{p}` {why}")));
    if trimmed.is_empty() || trimmed == "." {
        return bad("is empty (the whole repository is never reverted)");
    }
    if trimmed.contains(['\n', '\r', '\0']) {
        return bad("contains a control character");
    }
    let mut first = true;
    for c in path.components() {
        match c {
            Component::Normal(s) => {
                if first && s == ".git" {
                    return bad("is inside .git");
                }
            }
            Component::CurDir => {}
            _ => return bad("must be relative, without `..`"),
        }
        first = false;
    }
    Ok(trimmed.to_string())
}

fn pathspec(p: &str) -> String {
    format!(":(literal){p}")
}

/// Branch for a pull-request revert: `slogate/revert-<breach id, sanitized and short>`.
pub(crate) fn pr_branch_name(breach_id: &str) -> String {
    let clean: String = breach_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches('-');
    let short = if clean.len() <= 40 && clean == breach_id {
        clean.to_string()
    } else {
        // Long or rewritten ids get a hash of the full id so two breaches never share a branch.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in breach_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        let prefix: String = clean.chars().take(24).collect();
        format!("{}-{:08x}", prefix.trim_matches('-'), h as u32)
            .trim_start_matches('-')
            .to_string()
    };
    format!("slogate/revert-{short}")
}

/// Refuse any push argument that could rewrite remote history. This is the only place
/// a push command line is built.
fn push_args(dst_branch: &str) -> Vec<String> {
    let refspec = format!("HEAD:refs/heads/{dst_branch}");
    let args = vec![
        "push".to_string(),
        "--porcelain".to_string(),
        "--no-verify".to_string(),
        "origin".to_string(),
        refspec,
    ];
    let forbidden_long = concat!("--", "force"); // also catches the lease and if-includes variants
    for a in &args[1..] {
        assert!(
            !a.starts_with(forbidden_long)
                && a != "-f"
                && a != "--mirror"
                && a != "--delete"
                && a != "--prune"
                && !a.starts_with('+')
                && !a.contains(":+"),
            "slogate never force-pushes (argument {a:?})"
        );
    }
    args
}

fn parse_log(out: &str) -> Result<Vec<CommitInfo>, GitOpsError> {
    let mut commits = Vec::new();
    for rec in out.split('\u{1e}') {
        let rec = rec.trim_start_matches('\n');
        if rec.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = rec.splitn(5, '\u{1f}').collect();
        if f.len() != 5 {
            return Err(GitOpsError::Io(format!(
                "unexpected git log record: {rec:?}"
            )));
        }
        let secs: i64 = f[3]
            .trim()
            .parse()
            .map_err(|source| GitOpsError::CommitTime {
                value: f[3].to_string(),
                source,
            })?;
        let time: DateTime<Utc> = DateTime::from_timestamp(secs, 0).unwrap_or_default();
        commits.push(CommitInfo {
            sha: f[0].trim().to_string(),
            subject: f[1].to_string(),
            author: f[2].to_string(),
            time,
            trailers: parse_trailer_lines(f[4]),
        });
    }
    Ok(commits)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

impl Repo<'_> {
    fn remote_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.cfg.branch)
    }

    fn net(&self) -> RunOpts<'static> {
        RunOpts {
            network: true,
            ..Default::default()
        }
    }

    fn wd(&self) -> &Path {
        self.git.workdir()
    }

    /// Create the local repository (first run) and point `origin` at the configured url.
    fn ensure_repo(&self) -> Result<(), GitOpsError> {
        let wd = self.wd().to_path_buf();
        if !wd.join(".git").exists() {
            fs::create_dir_all(&wd).map_err(|source| GitOpsError::File {
                what: format!("creating {}", wd.display()),
                source,
            })?;
            self.git.run_opts(
                &["init", "-q"],
                RunOpts {
                    cwd: Some(&wd),
                    ..Default::default()
                },
            )?;
            self.git.run(&["remote", "add", "origin", &self.cfg.url])?;
            tracing::info!(workdir = %wd.display(), "initialised gitops work tree");
        } else {
            let cur = self
                .git
                .run_raw(&["remote", "get-url", "origin"], RunOpts::default())?;
            if !cur.success() {
                self.git.run(&["remote", "add", "origin", &self.cfg.url])?;
            } else if cur.stdout.trim() != self.cfg.url {
                self.git
                    .run(&["remote", "set-url", "origin", &self.cfg.url])?;
            }
        }
        Ok(())
    }

    /// Fetch the remote branch (no change to the work tree) and check it exists.
    fn fetch(&self) -> Result<(), GitOpsError> {
        // The remote is checked (and the repository created) until a fetch succeeds; after
        // that only this process touches the work tree's configuration.
        let fetched_before = self
            .fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !fetched_before || !self.wd().join(".git").exists() {
            self.ensure_repo()?;
        }
        let started = Instant::now();
        self.git.run_opts(
            &["fetch", "--prune", "--no-tags", "--quiet", "origin"],
            self.net(),
        )?;
        let remote = self.remote_ref();
        let verify = format!("{remote}^{{commit}}");
        if !self
            .git
            .run_raw(
                &["rev-parse", "--verify", "-q", &verify],
                RunOpts::default(),
            )?
            .success()
        {
            return Err(GitOpsError::Config(format!(
                "branch `{}` does not exist on the remote",
                self.cfg.branch
            )));
        }
        *self.fetched.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
        Ok(())
    }

    /// Make the remote-tracking branch at least as fresh as the remote was at `asked`:
    /// fetch, unless a fetch that started at or after `asked` already succeeded (it saw
    /// everything pushed before then). For reads of history; the work tree is not touched.
    /// `Ok(true)` when it fetched, `Ok(false)` when it shared the earlier fetch.
    pub(crate) fn fetch_since(&self, asked: Instant) -> Result<bool, GitOpsError> {
        let last = *self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t >= asked) && self.wd().join(".git").exists() {
            return Ok(false);
        }
        self.fetch()?;
        Ok(true)
    }

    /// Fetch, and reset the work tree to the remote branch head. Any local state (an
    /// unpushed commit of a crashed run, a half-applied patch) is discarded.
    pub(crate) fn sync(&self) -> Result<Sha, GitOpsError> {
        self.fetch()?;
        self.reset_to_remote()
    }

    /// Reset the work tree to the remote-tracking branch as last fetched; its head.
    fn reset_to_remote(&self) -> Result<Sha, GitOpsError> {
        self.reset_to(&self.remote_ref())?;
        self.rev_parse("HEAD")
    }

    /// Discard everything local and check out `branch` at `target`.
    fn reset_to(&self, target: &str) -> Result<(), GitOpsError> {
        let lock = self.wd().join(".git/index.lock");
        if lock.exists() {
            // Left by a killed git; we hold the only lock on this work tree.
            let _ = fs::remove_file(&lock);
        }
        // Fails harmlessly on an unborn HEAD.
        let _ = self
            .git
            .run_raw(&["reset", "-q", "--hard"], RunOpts::default())?;
        self.git.run(&["clean", "-q", "-d", "-x", "-f"])?;
        self.git
            .run(&["checkout", "-q", "-B", &self.cfg.branch, target])?;
        self.git.run(&["reset", "-q", "--hard", target])?;
        Ok(())
    }

    pub(crate) fn rev_parse(&self, rev: &str) -> Result<Sha, GitOpsError> {
        Ok(self
            .git
            .run(&["rev-parse", "--verify", "-q", rev])?
            .trim()
            .to_string())
    }

    /// Resolve a known-good sha and check it is an ancestor of the remote branch.
    fn resolve_known_good(&self, kg: &str) -> Result<Sha, GitOpsError> {
        if !is_hex_sha(kg) {
            return Err(GitOpsError::InvalidRequest(format!(
                "known-good `{kg}` is not a commit id"
            )));
        }
        let out = self.git.run_raw(
            &["rev-parse", "--verify", "-q", &format!("{kg}^{{commit}}")],
            RunOpts::default(),
        )?;
        if !out.success() {
            return Err(GitOpsError::UnknownCommit(kg.to_string()));
        }
        let full = out.stdout.trim().to_string();
        let anc = self.git.run_raw(
            &["merge-base", "--is-ancestor", &full, &self.remote_ref()],
            RunOpts::default(),
        )?;
        match anc.code {
            Some(0) => Ok(full),
            Some(1) => Err(GitOpsError::KnownGoodNotAncestor {
                known_good: kg.to_string(),
                branch: self.cfg.branch.clone(),
            }),
            _ => Err(self
                .git
                .failure(&["merge-base", "--is-ancestor", &full], &anc)),
        }
    }

    /// Commits touching `path` on the remote branch, newest first (no merges).
    pub(crate) fn commits_touching(
        &self,
        path: &str,
        since: Option<&str>,
    ) -> Result<Vec<CommitInfo>, GitOpsError> {
        let path = validate_repo_path(path)?;
        let ps = pathspec(&path);
        let remote = self.remote_ref();
        let limit = format!("-n{}", self.cfg.history_limit);
        let range;
        let mut args: Vec<&str> = vec!["log", "--no-merges", "--topo-order", LOG_FORMAT];
        match since {
            Some(kg) => {
                let kg = self.resolve_known_good(kg)?;
                range = format!("{kg}..{remote}");
                args.push(&range);
            }
            None => {
                args.push(&limit);
                args.push(&remote);
            }
        }
        args.extend(["--", &ps]);
        parse_log(&self.git.run(&args)?)
    }

    pub(crate) fn read_trailers(&self, sha: &str) -> Result<Vec<Trailer>, GitOpsError> {
        if !is_hex_sha(sha) {
            return Err(GitOpsError::InvalidRequest(format!(
                "`{sha}` is not a commit id"
            )));
        }
        let rev = format!("{sha}^{{commit}}");
        if !self
            .git
            .run_raw(&["rev-parse", "--verify", "-q", &rev], RunOpts::default())?
            .success()
        {
            return Err(GitOpsError::UnknownCommit(sha.to_string()));
        }
        let out = self.git.run(&[
            "log",
            "-1",
            "--format=%(trailers:only=true,unfold=true)",
            &rev,
        ])?;
        Ok(parse_trailer_lines(&out))
    }

    /// A commit on the remote branch carrying `Slogate-Breach: <breach_id>`, searched after
    /// the known-good commit (unbounded) and among the last `history_limit` commits.
    pub(crate) fn find_breach_commit(
        &self,
        breach_id: &str,
        known_good: Option<&str>,
    ) -> Result<Option<Sha>, GitOpsError> {
        let grep = format!("--grep={TRAILER_BREACH}: {breach_id}");
        let fmt = "--format=%H%x1f%(trailers:only=true,unfold=true)%x1e";
        let remote = self.remote_ref();
        let limit = format!("-n{}", self.cfg.history_limit);
        let mut ranges: Vec<Vec<String>> = vec![vec![limit, remote.clone()]];
        if let Some(kg) = known_good {
            let kg = self.resolve_known_good(kg)?;
            ranges.push(vec![format!("{kg}..{remote}")]);
        }
        for range in ranges {
            let mut args: Vec<&str> = vec!["log", "-F", &grep, fmt];
            args.extend(range.iter().map(String::as_str));
            let out = self.git.run(&args)?;
            for rec in out.split('\u{1e}') {
                let rec = rec.trim_start_matches('\n');
                let Some((sha, trailers)) = rec.split_once('\u{1f}') else {
                    continue;
                };
                let t = parse_trailer_lines(trailers);
                if trailer_values(&t, TRAILER_BREACH).contains(&breach_id) {
                    return Ok(Some(sha.trim().to_string()));
                }
            }
        }
        Ok(None)
    }

    /// The commits a request reverts, newest first: commits touching the path after the
    /// known-good one, minus slogate's own reverts and minus commits a slogate revert
    /// already reverted. Without a known-good commit: the newest commit touching the path,
    /// unless it is a slogate revert (then nothing).
    pub(crate) fn revert_candidates(
        &self,
        req: &RevertRequest,
    ) -> Result<Vec<CommitInfo>, GitOpsError> {
        let mut commits = self.commits_touching(&req.app_path, req.known_good.as_deref())?;
        if req.known_good.is_none() {
            // Only the newest commit touching the path. If that is slogate's own revert,
            // the last change already was a rollback: never dig further back blindly.
            commits.truncate(1);
        }
        let already: BTreeSet<String> = commits
            .iter()
            .filter(|c| is_slogate_revert(&c.trailers))
            .flat_map(|c| reverted_shas(&c.trailers))
            .filter(|s| s.len() >= 7)
            .collect();
        let out: Vec<CommitInfo> = commits
            .into_iter()
            .filter(|c| !is_slogate_revert(&c.trailers))
            .filter(|c| !already.iter().any(|s| c.sha.starts_with(s.as_str())))
            .collect();
        Ok(out)
    }

    fn empty_tree(&self) -> Result<Sha, GitOpsError> {
        Ok(self
            .git
            .run_opts(
                &["hash-object", "-t", "tree", "--stdin"],
                RunOpts {
                    stdin: Some(b""),
                    ..Default::default()
                },
            )?
            .trim()
            .to_string())
    }

    fn parent_or_empty(&self, sha: &str) -> Result<String, GitOpsError> {
        let parent = format!("{sha}^");
        let out = self.git.run_raw(
            &["rev-parse", "--verify", "-q", &parent],
            RunOpts::default(),
        )?;
        if out.success() {
            Ok(out.stdout.trim().to_string())
        } else {
            self.empty_tree()
        }
    }

    fn files_of(&self, from: &str, to: &str, ps: &str) -> Result<Vec<String>, GitOpsError> {
        let out = self
            .git
            .run(&["diff", "--name-only", "-z", from, to, "--", ps])?;
        Ok(out
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }

    /// Reverse-apply the app-path part of `c` on the index and work tree (three-way), and
    /// commit it when `commit`. `Ok(None)` on success, `Ok(Some(files))` on conflict (work
    /// tree restored to HEAD).
    fn revert_one(
        &self,
        c: &CommitInfo,
        ps: &str,
        commit: bool,
    ) -> Result<Option<Vec<String>>, GitOpsError> {
        let parent = self.parent_or_empty(&c.sha)?;
        let diff_args = [
            "diff",
            "--binary",
            "--full-index",
            "--no-renames",
            &parent,
            &c.sha,
            "--",
            ps,
        ];
        let diff = self.git.run_raw(&diff_args, RunOpts::default())?;
        if !diff.success() {
            return Err(self.git.failure(&diff_args, &diff));
        }
        // Raw bytes: the patch carries file content, which need not be UTF-8.
        let patch = diff.stdout_raw;
        if patch.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let applied = self.git.run_raw(
            &["apply", "-R", "--3way", "--whitespace=nowarn"],
            RunOpts {
                stdin: Some(&patch),
                ..Default::default()
            },
        )?;
        if applied.success() {
            if !commit {
                return Ok(None);
            }
            self.git.run(&[
                "commit",
                "-q",
                "--no-verify",
                "--allow-empty",
                "-m",
                &format!("slogate: partial revert of {}", c.sha),
            ])?;
            return Ok(None);
        }
        let unmerged = self
            .git
            .run(&["diff", "--name-only", "-z", "--diff-filter=U"])?;
        let mut files: Vec<String> = unmerged
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if files.is_empty() {
            files = self.files_of(&parent, &c.sha, ps)?;
        }
        tracing::info!(commit = %c.sha, files = ?files, "revert conflicts");
        self.git.run(&["reset", "-q", "--hard", "HEAD"])?;
        self.git.run(&["clean", "-q", "-d", "-f"])?;
        Ok(Some(files))
    }

    fn validate_request(req: &RevertRequest) -> Result<(), GitOpsError> {
        validate_repo_path(&req.app_path)?;
        let id = &req.breach_id;
        if id.trim().is_empty()
            || id.len() > 200
            || id.chars().any(char::is_control)
            || id.trim() != id
        {
            return Err(GitOpsError::InvalidRequest(
                "breach_id must be one non-empty line of at most 200 characters, without surrounding spaces".into(),
            ));
        }
        if let Some(b) = req.budget_consumed {
            if !b.is_finite() {
                return Err(GitOpsError::InvalidRequest(
                    "budget_consumed must be finite".into(),
                ));
            }
        }
        for t in &req.extra_trailers {
            validate_trailer_key(&t.key)?;
        }
        Ok(())
    }

    /// Fetch, check idempotence, revert locally in one commit. Pushes nothing.
    #[cfg(test)]
    pub(crate) fn prepare_revert(&self, req: &RevertRequest) -> Result<Prepared, GitOpsError> {
        Self::validate_request(req)?;
        let head = self.sync()?;
        self.prepare_on_synced(req, head)
    }

    /// The revert on the work tree just reset to the remote branch, whose head is `base`.
    fn prepare_on_synced(&self, req: &RevertRequest, base: Sha) -> Result<Prepared, GitOpsError> {
        if let Some(sha) = self.find_breach_commit(&req.breach_id, req.known_good.as_deref())? {
            tracing::info!(breach = %req.breach_id, %sha, "breach already reverted");
            return Ok(Prepared::Already { sha });
        }
        let candidates = self.revert_candidates(req)?;
        if candidates.is_empty() {
            return Ok(Prepared::Nothing);
        }
        let path = validate_repo_path(&req.app_path)?;
        let ps = pathspec(&path);
        let mut reverted = Vec::new();
        let mut unreverted = Vec::new();
        let n = candidates.len();
        // Each revert but the last is committed on its own, so that a conflict in a later
        // one (whose changes are then discarded) keeps the earlier ones; the last stays in
        // the index, and all of them become one commit below.
        let mut committed = false;
        for (i, c) in candidates.into_iter().enumerate() {
            let keep = i + 1 < n;
            match self.revert_one(&c, &ps, keep)? {
                None => {
                    committed |= keep;
                    reverted.push(c)
                }
                Some(files) => unreverted.push(Conflicted { commit: c, files }),
            }
        }
        let partial_ok = self.cfg.mode == RevertMode::PullRequest && !reverted.is_empty();
        if !unreverted.is_empty() && !partial_ok {
            self.reset_to(&base)?;
            let shas = unreverted.iter().map(|u| u.commit.sha.clone()).collect();
            let files: BTreeSet<String> = unreverted
                .iter()
                .flat_map(|u| u.files.iter().cloned())
                .collect();
            return Ok(Prepared::Conflict {
                shas,
                files: files.into_iter().collect(),
            });
        }
        if committed {
            self.git.run(&["reset", "-q", "--soft", &base])?;
        }
        let unchanged = self
            .git
            .run_raw(&["diff", "--cached", "--quiet", &base], RunOpts::default())?;
        if unchanged.success() {
            // The reverts cancel out (e.g. a commit and its manual undo): nothing to do.
            self.reset_to(&base)?;
            return Ok(Prepared::Nothing);
        }
        let message = revert_message(req, &path, &reverted, &unreverted);
        self.git.run_opts(
            &["commit", "-q", "--no-verify", "-F", "-"],
            RunOpts {
                stdin: Some(message.as_bytes()),
                ..Default::default()
            },
        )?;
        let sha = self.rev_parse("HEAD")?;
        Ok(Prepared::Commit {
            sha,
            reverted,
            unreverted,
        })
    }

    /// Push HEAD to `dst` without ever forcing.
    pub(crate) fn push(&self, dst: &str, attempt: u32) -> Result<PushResult, GitOpsError> {
        if let Some(h) = &self.hook {
            h(attempt);
        }
        let args = push_args(dst);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.git.run_raw(&args, self.net())?;
        if out.success() {
            return Ok(PushResult::Pushed);
        }
        let status_lines: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('!')).collect();
        let all = format!("{}\n{}", status_lines.join("\n"), out.stderr);
        let stale = [
            "non-fast-forward",
            "fetch first",
            "stale info",
            "cannot lock ref",
            "failed to update ref",
            "incorrect old value",
        ];
        if status_lines.iter().any(|l| l.contains("[rejected]"))
            || stale.iter().any(|s| all.contains(s))
        {
            tracing::info!(
                branch = dst,
                attempt,
                "push rejected as stale; will refetch and redo"
            );
            return Ok(PushResult::Stale);
        }
        if let Some(l) = status_lines
            .iter()
            .find(|l| l.contains("[remote rejected]"))
        {
            return Err(GitOpsError::PushRefused {
                branch: dst.to_string(),
                message: self.git.redactor.redact(l),
            });
        }
        Err(self.git.failure(&args, &out))
    }

    /// Revert and push to the branch, redoing the revert on a new head after a rejection.
    ///
    /// The first round may build on a fetch that started at most [`REUSE_FETCH`] ago (the
    /// guard reads the app's history, fetching, just before it asks for the revert), but
    /// only to make a commit and push it: the push, which never forces, refuses a revert
    /// built on a head the remote has left, and that refusal is redone on a new fetch
    /// without counting as one of the `push_retries`. Any other outcome of that round
    /// (already reverted, nothing to revert, a conflict, an error) is decided again on a
    /// new fetch: a commit pushed since the earlier fetch must not be missed.
    pub(crate) fn revert_and_push(&self, req: &RevertRequest) -> Result<Prepared, GitOpsError> {
        Self::validate_request(req)?;
        let attempts = self.cfg.push_retries + 1;
        let mut reuse = Instant::now().checked_sub(REUSE_FETCH);
        let mut attempt = 0;
        while attempt < attempts {
            let shared = match reuse.take() {
                Some(since) => !self.fetch_since(since)?,
                None => {
                    self.fetch()?;
                    false
                }
            };
            let head = self.reset_to_remote()?;
            let prepared = match self.prepare_on_synced(req, head) {
                Ok(p @ Prepared::Commit { .. }) => p,
                // An earlier fetch decides nothing but a push, which the remote checks:
                // "already reverted", "nothing to revert", a conflict or an error (an
                // unknown known-good commit) are only answered from a fetch of this call.
                _ if shared => continue,
                other => return other,
            };
            match self.push(&self.cfg.branch, attempt)? {
                PushResult::Pushed => return Ok(prepared),
                PushResult::Stale if shared => {}
                PushResult::Stale => attempt += 1,
            }
        }
        Err(GitOpsError::PushRejected {
            branch: self.cfg.branch.clone(),
            attempts,
        })
    }

    /// Pull-request mode: push the revert to its own branch (or find it from an earlier
    /// run). The caller opens the pull request.
    pub(crate) fn revert_to_branch(&self, req: &RevertRequest) -> Result<PrPrepared, GitOpsError> {
        Self::validate_request(req)?;
        let branch = pr_branch_name(&req.breach_id);
        let attempts = self.cfg.push_retries + 1;
        for attempt in 0..attempts {
            let head = self.sync()?;
            let pr_ref = format!("refs/remotes/origin/{branch}");
            let exists = self.git.run_raw(
                &["rev-parse", "--verify", "-q", &pr_ref],
                RunOpts::default(),
            )?;
            if exists.success() {
                let sha = exists.stdout.trim().to_string();
                let trailers = self.read_trailers(&sha)?;
                if !trailer_values(&trailers, TRAILER_BREACH).contains(&req.breach_id.as_str()) {
                    return Err(GitOpsError::Config(format!(
                        "branch `{branch}` exists on the remote but is not the revert of breach `{}`",
                        req.breach_id
                    )));
                }
                return Ok(PrPrepared::Branch(
                    self.pr_branch_from_commit(&sha, &branch)?,
                ));
            }
            let prepared = self.prepare_on_synced(req, head)?;
            let Prepared::Commit { sha, .. } = &prepared else {
                return Ok(PrPrepared::Done(prepared));
            };
            let sha = sha.clone();
            match self.push(&branch, attempt)? {
                PushResult::Pushed => {
                    let b = self.pr_branch_from_commit(&sha, &branch)?;
                    // Leave the work tree on the remote branch head.
                    self.reset_to(&self.remote_ref())?;
                    return Ok(PrPrepared::Branch(b));
                }
                PushResult::Stale => continue,
            }
        }
        Err(GitOpsError::PushRejected { branch, attempts })
    }

    fn pr_branch_from_commit(&self, sha: &str, branch: &str) -> Result<PrBranch, GitOpsError> {
        let title = self
            .git
            .run(&["log", "-1", "--format=%s", sha])?
            .trim()
            .to_string();
        let body = self
            .git
            .run(&["log", "-1", "--format=%b", sha])?
            .trim()
            .to_string();
        let trailers = self.read_trailers(sha)?;
        let reverted = reverted_shas(&trailers);
        let unreverted = RevertTrailers::from_trailers(&trailers).unreverted;
        Ok(PrBranch {
            sha: sha.to_string(),
            branch: branch.to_string(),
            title,
            body,
            reverted,
            unreverted,
        })
    }

    /// Apply `edits` on a fresh head, commit, push; redo on the new head after a rejection.
    pub(crate) fn commit_and_push(
        &self,
        edits: &[(String, FileEdit)],
        message: &str,
    ) -> Result<(Sha, bool), GitOpsError> {
        if message.trim().is_empty() {
            return Err(GitOpsError::InvalidRequest(
                "commit message is empty".into(),
            ));
        }
        let mut paths = Vec::new();
        for (p, _) in edits {
            paths.push(validate_repo_path(p)?);
        }
        if paths.is_empty() {
            return Err(GitOpsError::InvalidRequest("no file to commit".into()));
        }
        let attempts = self.cfg.push_retries + 1;
        for attempt in 0..attempts {
            let head = self.sync()?;
            for (path, (_, edit)) in paths.iter().zip(edits) {
                let full = self.safe_join(path)?;
                let current = match fs::read(&full) {
                    Ok(b) => Some(String::from_utf8(b).map_err(|_| GitOpsError::Edit {
                        path: path.clone(),
                        message: "file is not UTF-8".into(),
                    })?),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(source) => {
                        return Err(GitOpsError::File {
                            what: format!("reading {path}"),
                            source,
                        })
                    }
                };
                let new = edit(current.as_deref()).map_err(|e| GitOpsError::Edit {
                    path: path.clone(),
                    message: self.git.redactor.redact(&e.to_string()),
                })?;
                if current.as_deref() != Some(new.as_str()) {
                    if let Some(dir) = full.parent() {
                        fs::create_dir_all(dir).map_err(|source| GitOpsError::File {
                            what: format!("creating dir for {path}"),
                            source,
                        })?;
                    }
                    fs::write(&full, new).map_err(|source| GitOpsError::File {
                        what: format!("writing {path}"),
                        source,
                    })?;
                }
            }
            let mut add: Vec<String> = vec!["add".into(), "-A".into(), "--".into()];
            add.extend(paths.iter().map(|p| pathspec(p)));
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            self.git.run(&add)?;
            if self
                .git
                .run_raw(&["diff", "--cached", "--quiet", "HEAD"], RunOpts::default())?
                .success()
            {
                return Ok((head, false));
            }
            self.git.run_opts(
                &["commit", "-q", "--no-verify", "-F", "-"],
                RunOpts {
                    stdin: Some(message.as_bytes()),
                    ..Default::default()
                },
            )?;
            let sha = self.rev_parse("HEAD")?;
            match self.push(&self.cfg.branch, attempt)? {
                PushResult::Pushed => return Ok((sha, true)),
                PushResult::Stale => continue,
            }
        }
        Err(GitOpsError::PushRejected {
            branch: self.cfg.branch.clone(),
            attempts,
        })
    }

    /// `workdir/path`, refusing to go through a symlink (which could point outside).
    fn safe_join(&self, path: &str) -> Result<PathBuf, GitOpsError> {
        let mut cur = self.wd().to_path_buf();
        for c in Path::new(path).components() {
            if let Component::Normal(s) = c {
                cur.push(s);
                if let Ok(m) = fs::symlink_metadata(&cur) {
                    if m.file_type().is_symlink() {
                        return Err(GitOpsError::InvalidRequest(format!(
                            "path `{path}` goes through a symlink"
                        )));
                    }
                }
            }
        }
        Ok(cur)
    }
}

/// The message of a revert commit: what happened in prose, then the trailers.
pub(crate) fn revert_message(
    req: &RevertRequest,
    path: &str,
    reverted: &[CommitInfo],
    unreverted: &[Conflicted],
) -> String {
    let n = reverted.len();
    let mut m = format!(
        "slogate: revert {n} commit{} touching {path}\n\n",
        if n == 1 { "" } else { "s" }
    );
    m.push_str(&one_line(&req.reason));
    m.push_str("\n\n");
    match (&req.slo_id, req.budget_consumed) {
        (Some(slo), Some(b)) => m.push_str(&format!(
            "SLO {slo} has consumed {:.1}% of its error budget.\n",
            b * 100.0
        )),
        (Some(slo), None) => m.push_str(&format!("SLO {slo} breached.\n")),
        (None, Some(b)) => m.push_str(&format!(
            "{:.1}% of the error budget consumed.\n",
            b * 100.0
        )),
        (None, None) => {}
    }
    m.push_str(&format!(
        "Breach {}. Only changes under {path} are reverted; other paths touched by the same commits are left as they are.\n",
        req.breach_id
    ));
    if let Some(kg) = &req.known_good {
        m.push_str(&format!("Last known-good commit: {kg}.\n"));
    }
    m.push_str("\nReverted, newest first:\n");
    for c in reverted {
        m.push_str(&format!(
            "- {} {} ({})\n",
            short(&c.sha),
            one_line(&c.subject),
            c.author
        ));
    }
    if !unreverted.is_empty() {
        m.push_str("\nNot reverted because they conflict (left in place, revert by hand):\n");
        for u in unreverted {
            m.push_str(&format!(
                "- {} {}: {}\n",
                short(&u.commit.sha),
                one_line(&u.commit.subject),
                u.files.join(", ")
            ));
        }
    }
    let mut t = vec![Trailer::new(TRAILER_BREACH, &req.breach_id)];
    t.extend(
        reverted
            .iter()
            .map(|c| Trailer::new(TRAILER_REVERTS, &c.sha)),
    );
    t.extend(
        unreverted
            .iter()
            .map(|u| Trailer::new(TRAILER_UNREVERTED, &u.commit.sha)),
    );
    t.push(Trailer::new(
        TRAILER_REASON,
        one_line(req.reason_code.as_deref().unwrap_or(&req.reason)),
    ));
    if let Some(slo) = &req.slo_id {
        t.push(Trailer::new(TRAILER_SLO, slo));
    }
    if let Some(b) = req.budget_consumed {
        t.push(Trailer::new(TRAILER_BUDGET, format!("{b:.3}")));
    }
    t.push(Trailer::new(TRAILER_APP_PATH, path));
    if let Some(kg) = &req.known_good {
        t.push(Trailer::new(TRAILER_KNOWN_GOOD, kg));
    }
    t.extend(req.extra_trailers.iter().cloned());
    m.push('\n');
    m.push_str(&format_trailers(&t));
    m
}

#[cfg(test)]
mod log_tests {
    use super::*;

    /// A log record whose commit time is not a number: the message names it, the parse
    /// error is the source.
    #[test]
    fn a_bad_commit_time_keeps_the_parse_error() {
        let err = parse_log("abc\u{1f}subject\u{1f}A <a@x>\u{1f}soon\u{1f}\u{1e}").unwrap_err();
        assert_eq!(err.to_string(), "i/o: bad commit time \"soon\"");
        let GitOpsError::CommitTime { value, source } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(value, "soon");
        assert_eq!(source, &"soon".parse::<i64>().unwrap_err());
        let err = parse_log("abc\u{1f}subject\u{1e}").unwrap_err();
        assert!(matches!(err, GitOpsError::Io(_)), "{err:?}");
    }
}
