//! The `GitOpsRepo` port: everything the error-budget guard and `promote` need from the
//! GitOps repository, expressed without any reference to how Git is driven.
//!
//! The adapter on real git lives in `crate::adapters::git` (`GitCli`).
//!
//! The commit and trailer types it speaks are in [`crate::model::commit`] and
//! [`crate::model::trailers`] (the revert commit format is described there).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::commit::{CommitInfo, RevertRequest, Sha};
use crate::model::trailers::{is_trailer_key, override_reason, Trailer};

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
    /// Pull-request mode: the forge already has a pull request from this breach's branch
    /// (found by listing pull requests by head branch); nothing was done.
    PullRequestExists {
        /// The pull request's head commit, as the forge reports it.
        sha: Sha,
        branch: String,
        url: String,
        number: u64,
        state: PullRequestState,
    },
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
    #[error("`git {command}` could not be run: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
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
    /// Something read from git that is not what was expected (the message says what).
    #[error("i/o: {0}")]
    Io(String),
    /// A commit time in git's log that is not a number: the parse error is the source.
    #[error("i/o: bad commit time {value:?}")]
    CommitTime {
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    /// Reading or writing a file of the work tree.
    #[error("i/o: {what}: {source}")]
    File {
        /// What was done, with the path: `writing apps/x/kustomization.yaml`.
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("background task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
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

/// Where a pull request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestState {
    Open,
    Merged,
    /// Closed without merging: somebody declined the revert.
    Closed,
}

impl PullRequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            PullRequestState::Open => "open",
            PullRequestState::Merged => "merged",
            PullRequestState::Closed => "closed",
        }
    }
}

/// A pull request found on the forge by its head branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingPullRequest {
    pub number: u64,
    pub url: String,
    pub state: PullRequestState,
    /// The head commit.
    pub head_sha: String,
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
    /// The forge configuration is unusable (the message names the key).
    #[error("{0}")]
    Config(String),
}

/// Opens pull requests on a forge (GitHub, GitLab, Gitea).
#[async_trait]
pub trait PullRequestApi: Send + Sync {
    async fn open(&self, spec: &PullRequestSpec) -> Result<PullRequest, PullRequestError>;

    /// The most recent pull request (open, merged or closed) whose head is `head` in this
    /// repository, if any. The head branch carries the idempotency key, so this is how a
    /// pull request opened earlier (by this process, before a restart, or by another
    /// replica) is found before a new one is opened.
    async fn find(&self, head: &str) -> Result<Option<ExistingPullRequest>, PullRequestError>;
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
