//! `GitCli`: the [`GitOpsRepo`] port on the real `git` command line.
//!
//! # Why the git CLI (and not git2 or gix)
//!
//! - **Push.** gix cannot push. git2 can, but through libgit2, which needs a C build with
//!   libssh2 and OpenSSL, and which implements its own (smaller) subset of transports,
//!   credential handling and ssh configuration.
//! - **Transports and credentials.** The CLI speaks every transport a GitOps repo uses (local
//!   paths, `file://`, `git://`, smart http(s), ssh) and supports credential helpers,
//!   `GIT_SSH_COMMAND`, proxies and custom CA bundles exactly as operators know them from
//!   Argo CD and Flux.
//! - **Behaviour.** Three-way patch application, trailer parsing and push status reporting
//!   are git's own, so what slogate does is what a human would get by typing the same
//!   commands.
//!
//! The price is process spawning (negligible next to network round trips) and parsing
//! output, which is done on machine formats only (`--porcelain`, `-z`, `%x1f`-separated
//! `--format`) with `LC_ALL=C`.
//!
//! # Hermetic, bounded, redacted
//!
//! Every invocation runs with the system and global git config ignored
//! (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`), prompts off
//! (`GIT_TERMINAL_PROMPT=0`, ssh `BatchMode=yes`), inherited `GIT_*` repository variables
//! removed, and in its own process group, killed with its children after
//! [`RepoConfig::timeout`]. Blocking git work runs in `tokio::task::spawn_blocking`, under a
//! lock: one operation at a time per work tree.
//!
//! # Credentials
//!
//! - https token / basic auth: a credential helper, configured through
//!   `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` (environment, so nothing in
//!   `ps`, nothing in `.git/config`) and scoped to the remote's origin, prints the username
//!   and password from two environment variables of the git process. Only network commands
//!   get them. The URL stored in `.git/config` never carries credentials
//!   ([`RepoConfig::validate`] refuses a URL with a password).
//! - ssh: `GIT_SSH_COMMAND="ssh -i KEY -o IdentitiesOnly=yes -o BatchMode=yes
//!   -o StrictHostKeyChecking=yes [-o UserKnownHostsFile=FILE]"`.
//! - Secrets are read from their file or environment variable for every operation (a
//!   rotated token is picked up), are `***` in `Debug`, and are replaced with `***` in every
//!   error string (command line, stderr), as are URL userinfo parts.
//!
//! # What a revert reverts
//!
//! - **Which commits.** With a known-good commit: every non-merge commit that touched the
//!   app path after it. Without one: only the most recent commit that touched the app path
//!   (a conservative rule: without a known-good baseline slogate cannot tell how far back the
//!   breakage goes, and the newest change is the most likely culprit). In both cases
//!   slogate's own revert commits (`Slogate-Reverts`/`Slogate-Breach` trailer) are never
//!   reverted, and neither are commits an earlier slogate revert already reverted.
//! - **Only the app path.** A commit that touched the app path *and* other paths (another
//!   app, a shared base) is reverted only under the app path: slogate reverse-applies
//!   `git diff C^ C -- <app path>` with `git apply -R --3way`, so other apps are never rolled
//!   back by somebody else's breach.
//! - **Newest first, one commit.** Each commit's reverse patch is applied newest first;
//!   the results are squashed into one commit whose message says what happened and ends
//!   with trailers (see [`crate::ports::gitops`]).
//! - **Conflicts.** In push mode, if any commit's reverse patch conflicts, nothing is
//!   pushed: the outcome is [`RevertOutcome::Conflict`] naming the shas and files, and the
//!   work tree is reset to the remote head. In pull-request mode a PR is opened with the
//!   commits that revert cleanly; its body names those that could not be reverted.
//!
//! # Idempotence
//!
//! The key is the breach id, written as a `Slogate-Breach` trailer. Before reverting,
//! slogate fetches and looks for a commit carrying it on the remote branch (after the
//! known-good commit, and among the last [`RepoConfig::history_limit`] commits); if one
//! exists the outcome is [`RevertOutcome::AlreadyReverted`]. Local state never counts:
//! every operation starts by resetting the work tree to the remote head, so a crash after
//! the local commit but before the push leaves nothing behind that could be pushed twice;
//! the next call simply redoes the revert. In pull-request mode the branch
//! `slogate/revert-<breach>` is the key as well: slogate first lists the forge's pull
//! requests from that branch, and if one exists (open, merged, or closed by a human who
//! declined it) the outcome is [`RevertOutcome::PullRequestExists`] and nothing is done;
//! if the branch exists without a pull request (a crash between push and PR creation),
//! the PR is opened from it; "already exists" from the forge (a race with another
//! replica) reports the pull request found.
//!
//! # Never a force push
//!
//! Pushes are built in one place, which asserts that no argument forces
//! (`--force*`, `-f`, `+refspec`, `--mirror`, `--delete`). A rejected push (non-fast-forward,
//! or a lost ref-update race) makes slogate fetch and redo its change on the new head, at
//! most [`RepoConfig::push_retries`] more times. For `commit_edit`, redoing means calling
//! the caller's edit closure again on the fresh file content.

mod config;
mod pr;
mod repo;
pub(crate) mod runner;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;

pub use config::{Auth, RepoConfig, RevertMode, Secret, SecretSource};
pub use pr::{ForgeConfig, ForgeKind, GitHubPulls, GitLabMergeRequests, GiteaPulls};
pub use runner::redact_url_userinfo;

use crate::model::commit::{CommitInfo, RevertRequest, Sha};
use crate::model::trailers::Trailer;
use crate::ports::gitops::{
    CommitOutcome, EditFn, ExistingPullRequest, GitOpsError, GitOpsRepo, PullRequestApi,
    PullRequestError, PullRequestSpec, RevertOutcome,
};
use repo::{BeforePushHook, FileEdit, PrPrepared, Prepared, Repo};
use runner::GitRunner;

struct Inner {
    cfg: RepoConfig,
    lock: Mutex<()>,
    /// When the last successful fetch started: a read asked for at `t` skips its fetch when
    /// one that started at or after `t` succeeded (see `Repo::fetch_since`).
    fetched: Mutex<Option<Instant>>,
    pull_requests: Option<Arc<dyn PullRequestApi>>,
    before_push: Option<BeforePushHook>,
}

/// The git CLI adapter. Cheap to clone; clones share the work-tree lock.
#[derive(Clone)]
pub struct GitCli {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GitCli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCli")
            .field("url", &redact_url_userinfo(&self.inner.cfg.url))
            .field("branch", &self.inner.cfg.branch)
            .field("workdir", &self.inner.cfg.workdir)
            .field("mode", &self.inner.cfg.mode)
            .finish()
    }
}

impl GitCli {
    /// Validate the configuration. Nothing is cloned until the first operation.
    pub fn new(cfg: RepoConfig) -> Result<Self, GitOpsError> {
        cfg.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                lock: Mutex::new(()),
                fetched: Mutex::new(None),
                pull_requests: None,
                before_push: None,
            }),
        })
    }

    /// The forge API used in [`RevertMode::PullRequest`].
    pub fn with_pull_requests(self, api: Arc<dyn PullRequestApi>) -> Self {
        self.map_inner(|i| i.pull_requests = Some(api))
    }

    /// Test hook, called right before each push attempt with the attempt number.
    #[cfg(test)]
    pub(crate) fn with_before_push(self, hook: BeforePushHook) -> Self {
        self.map_inner(|i| i.before_push = Some(hook))
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(i) => i,
            Err(shared) => Inner {
                cfg: shared.cfg.clone(),
                lock: Mutex::new(()),
                fetched: Mutex::new(None),
                pull_requests: shared.pull_requests.clone(),
                before_push: shared.before_push.clone(),
            },
        };
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn config(&self) -> &RepoConfig {
        &self.inner.cfg
    }

    /// Run `f` on a blocking thread with the work-tree lock held.
    async fn blocking<T, F>(&self, f: F) -> Result<T, GitOpsError>
    where
        T: Send + 'static,
        F: FnOnce(&Repo<'_>) -> Result<T, GitOpsError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = inner.lock.lock().unwrap_or_else(|p| p.into_inner());
            let repo = Repo {
                cfg: &inner.cfg,
                git: GitRunner::new(&inner.cfg)?,
                hook: inner.before_push.clone(),
                fetched: &inner.fetched,
            };
            f(&repo)
        })
        .await
        .map_err(GitOpsError::Task)?
    }

    /// Prepare a revert locally (fetch, idempotence check, one local commit) without
    /// pushing: the first half of `revert`, used to simulate a crash before the push.
    #[cfg(test)]
    pub(crate) async fn prepare_revert_only(
        &self,
        req: &RevertRequest,
    ) -> Result<Prepared, GitOpsError> {
        let req = req.clone();
        self.blocking(move |r| r.prepare_revert(&req)).await
    }

    async fn revert_pull_request(&self, req: &RevertRequest) -> Result<RevertOutcome, GitOpsError> {
        let api = self.inner.pull_requests.clone().ok_or_else(|| {
            GitOpsError::Config(
                "pull-request mode needs a pull-request API (with_pull_requests)".into(),
            )
        })?;
        // The branch name carries the idempotency key: a pull request from it (open,
        // merged or closed), opened before a crash or a restart or by another replica, is
        // this breach's revert, and no second one is opened.
        let head = repo::pr_branch_name(&req.breach_id);
        if let Some(found) = api.find(&head).await? {
            return Ok(existing(head, found));
        }
        let r = req.clone();
        let prepared = self.blocking(move |repo| repo.revert_to_branch(&r)).await?;
        let branch = match prepared {
            PrPrepared::Done(p) => return Ok(outcome(p)),
            PrPrepared::Branch(b) => b,
        };
        let spec = PullRequestSpec {
            head: branch.branch.clone(),
            base: self.inner.cfg.branch.clone(),
            title: branch.title.clone(),
            body: branch.body.clone(),
        };
        match api.open(&spec).await {
            Ok(pr) => {
                tracing::info!(branch = %branch.branch, url = %pr.url, breach = %req.breach_id, "opened revert pull request");
                Ok(RevertOutcome::PullRequestOpened {
                    sha: branch.sha,
                    branch: branch.branch,
                    url: pr.url,
                    number: pr.number,
                    reverted: branch.reverted,
                    unreverted: branch.unreverted,
                })
            }
            Err(PullRequestError::AlreadyExists) => {
                // Opened concurrently (another replica): report that one.
                match api.find(&branch.branch).await {
                    Ok(Some(found)) => Ok(existing(branch.branch, found)),
                    _ => Ok(RevertOutcome::AlreadyReverted { sha: branch.sha }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn commit_edits(
        &self,
        edits: Vec<(String, FileEdit)>,
        message: &str,
    ) -> Result<CommitOutcome, GitOpsError> {
        let message = message.to_string();
        let (sha, created) = self
            .blocking(move |r| r.commit_and_push(&edits, &message))
            .await?;
        Ok(if created {
            CommitOutcome::Pushed { sha }
        } else {
            CommitOutcome::Unchanged { head: sha }
        })
    }
}

fn existing(branch: String, found: ExistingPullRequest) -> RevertOutcome {
    tracing::info!(branch = %branch, url = %found.url, state = found.state.as_str(), "the revert pull request exists already");
    RevertOutcome::PullRequestExists {
        sha: found.head_sha,
        branch,
        url: found.url,
        number: found.number,
        state: found.state,
    }
}

fn outcome(p: Prepared) -> RevertOutcome {
    match p {
        Prepared::Already { sha } => RevertOutcome::AlreadyReverted { sha },
        Prepared::Nothing => RevertOutcome::NothingToRevert,
        Prepared::Conflict { shas, files } => RevertOutcome::Conflict { shas, files },
        Prepared::Commit { sha, reverted, .. } => RevertOutcome::Reverted {
            sha,
            reverted: reverted.into_iter().map(|c| c.sha).collect(),
        },
    }
}

#[async_trait]
impl GitOpsRepo for GitCli {
    async fn sync(&self) -> Result<Sha, GitOpsError> {
        self.blocking(|r| r.sync()).await
    }

    async fn head(&self) -> Result<Sha, GitOpsError> {
        self.blocking(|r| r.sync()).await
    }

    async fn commits_touching(
        &self,
        path: &str,
        since: Option<&str>,
    ) -> Result<Vec<CommitInfo>, GitOpsError> {
        let path = path.to_string();
        let since = since.map(str::to_string);
        // History is read from the remote-tracking branch: a fetch suffices (no work-tree
        // reset), and one that started after this call was made is shared.
        let asked = Instant::now();
        self.blocking(move |r| {
            r.fetch_since(asked)?;
            r.commits_touching(&path, since.as_deref())
        })
        .await
    }

    async fn read_trailers(&self, sha: &str) -> Result<Vec<Trailer>, GitOpsError> {
        let sha = sha.to_string();
        let asked = Instant::now();
        self.blocking(move |r| {
            r.fetch_since(asked)?;
            r.read_trailers(&sha)
        })
        .await
    }

    async fn revert(&self, req: &RevertRequest) -> Result<RevertOutcome, GitOpsError> {
        tracing::info!(app_path = %req.app_path, breach = %req.breach_id, known_good = ?req.known_good, "revert requested");
        let result = match self.inner.cfg.mode {
            RevertMode::PullRequest => self.revert_pull_request(req).await,
            RevertMode::Push => {
                let r = req.clone();
                self.blocking(move |repo| repo.revert_and_push(&r))
                    .await
                    .map(outcome)
            }
        };
        match &result {
            Ok(o) => tracing::info!(breach = %req.breach_id, outcome = ?o, "revert finished"),
            Err(e) => tracing::warn!(breach = %req.breach_id, error = %e, "revert failed"),
        }
        result
    }

    async fn commit_files(
        &self,
        changes: Vec<(String, String)>,
        message: &str,
    ) -> Result<CommitOutcome, GitOpsError> {
        let edits = changes
            .into_iter()
            .map(|(p, content)| {
                let f: FileEdit = Arc::new(move |_current: Option<&str>| Ok(content.clone()));
                (p, f)
            })
            .collect();
        self.commit_edits(edits, message).await
    }

    async fn commit_edit(
        &self,
        path: &str,
        edit: EditFn,
        message: &str,
    ) -> Result<CommitOutcome, GitOpsError> {
        let shown = path.to_string();
        let f: FileEdit = Arc::new(move |current: Option<&str>| match current {
            Some(c) => edit(c),
            None => Err(format!("{shown} does not exist on the branch").into()),
        });
        self.commit_edits(vec![(path.to_string(), f)], message)
            .await
    }
}
