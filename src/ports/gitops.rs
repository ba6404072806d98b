//! The `GitOpsRepo` port: everything the error-budget guard and `promote` need from the
//! GitOps repository, expressed without any reference to how Git is driven.
//!
//! The adapter on real git lives in `crate::adapters::git` (`GitCli`).
//!
//! # Revert commit format
//!
//! A slogate revert is one commit whose message ends with a trailer block (git's trailer
//! syntax, one `Key: value` per line after a blank line). Keys are stable and parsed by
//! [`RevertTrailers::from_trailers`]:
//!
//! | key | count | meaning |
//! | --- | --- | --- |
//! | `Slogate-Breach` | 1 | idempotency key of the breach ([`RevertRequest::breach_id`]) |
//! | `Slogate-Reverts` | 1 per commit | full sha of a reverted commit, newest first |
//! | `Slogate-Reason` | 1 | why (single line) |
//! | `Slogate-SLO` | 0..1 | the SLO id |
//! | `Slogate-Budget-Consumed` | 0..1 | budget consumed as a ratio, 3 decimals (`0.963`) |
//! | `Slogate-App-Path` | 1 | the GitOps path that was reverted |
//! | `Slogate-Known-Good` | 0..1 | the known-good commit the revert goes back to |
//! | `Slogate-Unreverted` | 0..n | (pull-request mode only) a commit that conflicted and was left in place |
//!
//! `Slogate-Reverts` carries one sha per trailer (git's convention for repeated keys);
//! the parser also accepts several space- or comma-separated shas in one value, so a
//! hand-written trailer is understood too.
//!
//! A human can mark a commit with `Slogate-Override: <reason>`; [`override_reason`] finds it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A full hexadecimal commit id.
pub type Sha = String;

pub const TRAILER_BREACH: &str = "Slogate-Breach";
pub const TRAILER_REVERTS: &str = "Slogate-Reverts";
pub const TRAILER_REASON: &str = "Slogate-Reason";
pub const TRAILER_SLO: &str = "Slogate-SLO";
pub const TRAILER_BUDGET: &str = "Slogate-Budget-Consumed";
pub const TRAILER_APP_PATH: &str = "Slogate-App-Path";
pub const TRAILER_KNOWN_GOOD: &str = "Slogate-Known-Good";
pub const TRAILER_UNREVERTED: &str = "Slogate-Unreverted";
pub const TRAILER_OVERRIDE: &str = "Slogate-Override";

/// One `Key: value` trailer of a commit message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

impl Trailer {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A commit as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: Sha,
    pub subject: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// Committer time.
    pub time: DateTime<Utc>,
    pub trailers: Vec<Trailer>,
}

impl CommitInfo {
    /// True when this commit is itself a slogate revert (it must never be reverted).
    pub fn is_slogate_revert(&self) -> bool {
        is_slogate_revert(&self.trailers)
    }

    /// The `Slogate-Override` reason, if a human put one on this commit.
    pub fn override_reason(&self) -> Option<String> {
        override_reason(&self.trailers)
    }
}

/// What to revert and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevertRequest {
    /// Path of the app in the GitOps repo, relative to its root (`apps/checkout/overlays/prod`).
    /// Only changes under this path are reverted.
    pub app_path: String,
    /// Last commit known to be good. `Some`: revert every commit touching `app_path` after it.
    /// `None`: revert only the most recent commit touching `app_path`.
    pub known_good: Option<Sha>,
    /// Human-readable reason, one line (newlines are folded into spaces).
    pub reason: String,
    pub slo_id: Option<String>,
    /// Budget consumed as a ratio (0.963 = 96.3%).
    pub budget_consumed: Option<f64>,
    /// Idempotency key: one breach gives at most one revert commit.
    pub breach_id: String,
    /// Extra trailers appended after slogate's own.
    #[serde(default)]
    pub extra_trailers: Vec<Trailer>,
}

/// What [`GitOpsRepo::revert`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RevertOutcome {
    /// One revert commit was pushed to the configured branch.
    Reverted {
        sha: Sha,
        /// Reverted commits, newest first.
        reverted: Vec<Sha>,
    },
    /// Pull-request mode: a branch with the revert commit was pushed and a PR/MR opened.
    PullRequestOpened {
        /// The revert commit (tip of `branch`).
        sha: Sha,
        branch: String,
        url: String,
        number: u64,
        reverted: Vec<Sha>,
        /// Commits that conflicted and were left out of the PR (named, with their
        /// conflicting files, in its body).
        unreverted: Vec<Sha>,
    },
    /// A commit (or, in pull-request mode, a revert branch with an open PR) for this
    /// breach already exists; nothing was done.
    AlreadyReverted { sha: Sha },
    /// No commit touching the app path needs reverting.
    NothingToRevert,
    /// The revert conflicts; nothing was pushed and the remote is untouched.
    Conflict {
        /// Conflicting commits, newest first.
        shas: Vec<Sha>,
        /// Files (under the app path) that conflict, sorted, deduplicated.
        files: Vec<String>,
    },
}

/// What [`GitOpsRepo::commit_files`] / [`GitOpsRepo::commit_edit`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommitOutcome {
    /// A new commit was pushed.
    Pushed { sha: Sha },
    /// The files already had that content; nothing was committed. `head` is the branch head.
    Unchanged { head: Sha },
}

impl CommitOutcome {
    /// The branch head after the call.
    pub fn sha(&self) -> &str {
        match self {
            CommitOutcome::Pushed { sha } => sha,
            CommitOutcome::Unchanged { head } => head,
        }
    }
}

/// The error an edit closure returns.
pub type EditError = Box<dyn std::error::Error + Send + Sync>;

/// An edit of one file: fresh content in, new content out. It is called again on the new
/// content after every non-fast-forward retry, so it must be a pure function of its input.
pub type EditFn = Arc<dyn Fn(&str) -> Result<String, EditError> + Send + Sync>;

/// Errors of the GitOps port. Every string in here has been redacted: no credential
/// (token, password, URL userinfo) ever appears in an error.
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    /// A git command exited non-zero.
    #[error("`git {command}` failed (exit code {code:?}): {stderr}")]
    Command {
        /// The git command line (arguments after `git`), redacted.
        command: String,
        code: Option<i32>,
        /// Its standard error, redacted and trimmed.
        stderr: String,
    },
    /// A git command did not finish in time and was killed.
    #[error("`git {command}` timed out after {timeout:?} and was killed")]
    Timeout { command: String, timeout: Duration },
    /// Git could not be started.
    #[error("`git {command}` could not be run: {message}")]
    Spawn { command: String, message: String },
    /// The push kept being rejected as non-fast-forward.
    #[error("push to `{branch}` rejected as non-fast-forward {attempts} times; gave up")]
    PushRejected { branch: String, attempts: u32 },
    /// The remote refused the push for another reason (protected branch, hook…).
    #[error("remote refused push to `{branch}`: {message}")]
    PushRefused { branch: String, message: String },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unknown commit `{0}`")]
    UnknownCommit(String),
    #[error("known-good commit `{known_good}` is not an ancestor of `{branch}`")]
    KnownGoodNotAncestor { known_good: String, branch: String },
    #[error("editing `{path}` failed: {message}")]
    Edit { path: String, message: String },
    #[error("pull request: {0}")]
    PullRequest(#[from] PullRequestError),
    #[error("i/o: {0}")]
    Io(String),
    #[error("background task failed: {0}")]
    Task(String),
}

/// The GitOps repository port.
///
/// Every method works on a fresh view of the remote branch (it fetches first). Methods that
/// write never force-push: on a non-fast-forward they fetch and redo their change on the new
/// head, a bounded number of times.
#[async_trait]
pub trait GitOpsRepo: Send + Sync {
    /// Clone (first time) or fetch, and reset the work tree to the remote branch head.
    /// Returns that head.
    async fn sync(&self) -> Result<Sha, GitOpsError>;

    /// Head of the remote branch (after a fetch).
    async fn head(&self) -> Result<Sha, GitOpsError>;

    /// Commits that touched `path`, newest first: those after `since` when given, otherwise
    /// the most recent ones (bounded by the adapter's history limit). Merge commits are
    /// left out (their changes appear through the merged commits).
    async fn commits_touching(
        &self,
        path: &str,
        since: Option<&str>,
    ) -> Result<Vec<CommitInfo>, GitOpsError>;

    /// Trailers of one commit, as git parses them.
    async fn read_trailers(&self, sha: &str) -> Result<Vec<Trailer>, GitOpsError>;

    /// The `Slogate-Override` reason on a commit, if any.
    async fn override_reason(&self, sha: &str) -> Result<Option<String>, GitOpsError> {
        Ok(override_reason(&self.read_trailers(sha).await?))
    }

    /// Revert what `req` names, in one commit, and push it (or open a pull request).
    /// Idempotent on `req.breach_id`.
    async fn revert(&self, req: &RevertRequest) -> Result<RevertOutcome, GitOpsError>;

    /// Write whole files (`(path, new content)`) in one commit and push it. On a
    /// non-fast-forward retry the same contents are written again on the new head.
    async fn commit_files(
        &self,
        changes: Vec<(String, String)>,
        message: &str,
    ) -> Result<CommitOutcome, GitOpsError>;

    /// Edit one existing file through `edit` in one commit and push it. On a
    /// non-fast-forward retry `edit` is applied again to the fresh content of the new head.
    async fn commit_edit(
        &self,
        path: &str,
        edit: EditFn,
        message: &str,
    ) -> Result<CommitOutcome, GitOpsError>;
}

// ---------------------------------------------------------------------------------------
// Pull requests
// ---------------------------------------------------------------------------------------

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestSpec {
    /// Branch with the change.
    pub head: String,
    /// Branch to merge into.
    pub base: String,
    pub title: String,
    pub body: String,
}

/// An opened pull (or merge) request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// GitHub/Gitea `number`, GitLab `iid`.
    pub number: u64,
    /// Web URL for humans.
    pub url: String,
}

/// Errors of a [`PullRequestApi`]. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullRequestError {
    /// A pull request for this head branch is already open.
    #[error("a pull request for this branch already exists")]
    AlreadyExists,
    #[error("{provider} answered HTTP {status}: {body}")]
    Http {
        provider: &'static str,
        status: u16,
        body: String,
    },
    #[error("{provider} request failed: {message}")]
    Transport {
        provider: &'static str,
        message: String,
    },
    #[error("credentials: {0}")]
    Credentials(String),
}

/// Opens pull requests on a forge (GitHub, GitLab, Gitea).
#[async_trait]
pub trait PullRequestApi: Send + Sync {
    async fn open(&self, spec: &PullRequestSpec) -> Result<PullRequest, PullRequestError>;
}

// ---------------------------------------------------------------------------------------
// Trailer helpers (pure)
// ---------------------------------------------------------------------------------------

fn is_trailer_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Parse the trailer block of a commit message: the last paragraph, if every line of it is
/// `Key: value` (continuation lines starting with whitespace are folded into the value).
pub fn parse_trailers(message: &str) -> Vec<Trailer> {
    let trimmed = message.trim_end();
    let last = match trimmed.rfind("\n\n") {
        Some(i) => &trimmed[i + 2..],
        None => return Vec::new(), // a subject alone has no trailers
    };
    let mut out: Vec<Trailer> = Vec::new();
    for line in last.lines() {
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some(t) => {
                    t.value.push(' ');
                    t.value.push_str(line.trim());
                    continue;
                }
                None => return Vec::new(),
            }
        }
        match line.split_once(':') {
            Some((k, v)) if is_trailer_key(k.trim_end()) => {
                out.push(Trailer::new(k.trim_end(), v.trim()));
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// Parse git's `%(trailers:only,unfold)` output: one `Key: value` per line.
pub fn parse_trailer_lines(text: &str) -> Vec<Trailer> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            is_trailer_key(k).then(|| Trailer::new(k, v.trim()))
        })
        .collect()
}

/// Values of every trailer with `key` (case-insensitive, as git compares keys).
pub fn trailer_values<'a>(trailers: &'a [Trailer], key: &str) -> Vec<&'a str> {
    trailers
        .iter()
        .filter(|t| t.key.eq_ignore_ascii_case(key))
        .map(|t| t.value.as_str())
        .collect()
}

/// Shas named by `Slogate-Reverts` trailers, in order. Accepts one sha per trailer and
/// several shas per trailer separated by spaces or commas.
pub fn reverted_shas(trailers: &[Trailer]) -> Vec<Sha> {
    trailer_values(trailers, TRAILER_REVERTS)
        .into_iter()
        .flat_map(|v| v.split([' ', ',', '\t']))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// True when these trailers belong to a slogate revert commit.
pub fn is_slogate_revert(trailers: &[Trailer]) -> bool {
    trailers.iter().any(|t| {
        t.key.eq_ignore_ascii_case(TRAILER_REVERTS) || t.key.eq_ignore_ascii_case(TRAILER_BREACH)
    })
}

/// The reason of a `Slogate-Override` trailer, if present (the first one).
pub fn override_reason(trailers: &[Trailer]) -> Option<String> {
    trailer_values(trailers, TRAILER_OVERRIDE)
        .first()
        .map(|s| s.to_string())
}

/// The trailers of a slogate revert, parsed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RevertTrailers {
    pub breach_id: Option<String>,
    pub reverts: Vec<Sha>,
    pub reason: Option<String>,
    pub slo_id: Option<String>,
    pub budget_consumed: Option<f64>,
    pub app_path: Option<String>,
    pub known_good: Option<Sha>,
    pub unreverted: Vec<Sha>,
}

impl RevertTrailers {
    pub fn from_trailers(trailers: &[Trailer]) -> Self {
        let first = |k: &str| trailer_values(trailers, k).first().map(|s| s.to_string());
        Self {
            breach_id: first(TRAILER_BREACH),
            reverts: reverted_shas(trailers),
            reason: first(TRAILER_REASON),
            slo_id: first(TRAILER_SLO),
            budget_consumed: first(TRAILER_BUDGET).and_then(|s| s.parse().ok()),
            app_path: first(TRAILER_APP_PATH),
            known_good: first(TRAILER_KNOWN_GOOD),
            unreverted: trailer_values(trailers, TRAILER_UNREVERTED)
                .into_iter()
                .flat_map(|v| v.split([' ', ',']))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Parse the trailers of a whole commit message.
    pub fn from_message(message: &str) -> Self {
        Self::from_trailers(&parse_trailers(message))
    }
}

/// Fold a value into one trailer-safe line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Format trailers as the block that ends a commit message (no leading blank line).
pub fn format_trailers(trailers: &[Trailer]) -> String {
    let mut out = String::new();
    for t in trailers {
        out.push_str(&t.key);
        out.push_str(": ");
        out.push_str(&one_line(&t.value));
        out.push('\n');
    }
    out
}

impl fmt::Display for Trailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.value)
    }
}

/// Validate a trailer key (letters, digits and `-`).
pub fn validate_trailer_key(key: &str) -> Result<(), GitOpsError> {
    if is_trailer_key(key) {
        Ok(())
    } else {
        Err(GitOpsError::InvalidRequest(format!(
            "trailer key `{key}` must be letters, digits and `-`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trailer_block_and_revert_fields() {
        let msg = "slogate: revert apps/x\n\nbody text\n\n- abc subject\n\n\
                   Slogate-Breach: b-1\nSlogate-Reverts: aaa\nSlogate-Reverts: bbb ccc\n\
                   Slogate-Reason: burn\nSlogate-SLO: checkout-availability\n\
                   Slogate-Budget-Consumed: 0.963\nSlogate-App-Path: apps/x\n";
        let t = RevertTrailers::from_message(msg);
        assert_eq!(t.breach_id.as_deref(), Some("b-1"));
        assert_eq!(t.reverts, vec!["aaa", "bbb", "ccc"]);
        assert_eq!(t.slo_id.as_deref(), Some("checkout-availability"));
        assert_eq!(t.budget_consumed, Some(0.963));
        assert_eq!(t.app_path.as_deref(), Some("apps/x"));
        assert!(is_slogate_revert(&parse_trailers(msg)));
    }

    #[test]
    fn body_that_is_not_a_trailer_block_yields_nothing() {
        assert!(parse_trailers("subject only").is_empty());
        assert!(parse_trailers("subject\n\nplain prose here\nSlogate-Reverts: x").is_empty());
        assert!(parse_trailers("Slogate-Reverts: x").is_empty());
    }

    #[test]
    fn override_is_detected_case_insensitively() {
        let t = parse_trailers("fix\n\nslogate-override: known flaky canary\n");
        assert_eq!(override_reason(&t).as_deref(), Some("known flaky canary"));
        assert!(!is_slogate_revert(&t));
    }

    #[test]
    fn format_folds_newlines() {
        let s = format_trailers(&[Trailer::new("Slogate-Reason", "a\nb  c")]);
        assert_eq!(s, "Slogate-Reason: a b c\n");
    }
}
