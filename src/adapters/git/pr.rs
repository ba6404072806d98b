//! Opening pull/merge requests on GitHub, GitLab and Gitea through their REST APIs.
//!
//! Request shapes (as documented by each forge):
//! - GitHub: `POST {api}/repos/{owner}/{repo}/pulls`, `Authorization: Bearer <token>`,
//!   `Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28`,
//!   body `{"title","head","base","body"}`; answers `201` with `number`, `html_url`;
//!   `422` when a pull request for the head branch already exists.
//! - GitLab: `POST {api}/projects/{id}/merge_requests` (`{api}` ends in `/api/v4`, `id` is the
//!   numeric id or the URL-encoded path `group%2Fproject`), `PRIVATE-TOKEN: <token>`,
//!   body `{"source_branch","target_branch","title","description","remove_source_branch"}`;
//!   answers `201` with `iid`, `web_url`; `409` when one already exists.
//! - Gitea (and Forgejo): `POST {api}/repos/{owner}/{repo}/pulls` (`{api}` ends in `/api/v1`),
//!   `Authorization: token <token>`, body `{"head","base","title","body"}`; answers `201` with
//!   `number`, `html_url`; `409` when one already exists.
//!
//! Finding the pull request of a branch (before opening one: the branch carries the
//! idempotency key), open, merged or closed:
//! - GitHub: `GET {api}/repos/{owner}/{repo}/pulls?state=all&head={owner}:{branch}`;
//!   `state` is `open`/`closed`, `merged_at` set when merged, `head.ref`, `head.sha`.
//! - GitLab: `GET {api}/projects/{id}/merge_requests?source_branch={branch}&state=all`;
//!   `state` is `opened`/`closed`/`locked`/`merged`, `sha` the head.
//! - Gitea: `GET {api}/repos/{owner}/{repo}/pulls?state=all&sort=recentupdate&limit=50`
//!   (its list has no head filter: the 50 most recently updated are filtered by
//!   `head.ref`), `merged` a boolean.
//!
//! Every request has a timeout, and follows no redirect (a `3xx` is an error): reqwest
//! would resend GitLab's `PRIVATE-TOKEN` header to the new location. [`ForgeConfig`]
//! refuses a plain-http API URL unless `allow_http`. The token is read from its source for
//! each request and never appears in an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use crate::adapters::git::config::{Secret, SecretSource};
use crate::adapters::git::runner::Redactor;
use crate::adapters::http;
use crate::ports::gitops::{
    ExistingPullRequest, PullRequest, PullRequestApi, PullRequestError, PullRequestSpec,
    PullRequestState,
};
use crate::slo::PromDuration;

/// Which forge: `github` (and GitHub Enterprise Server), `gitlab`, `gitea` (and Forgejo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitlab,
    Gitea,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
        }
    }
}

/// The `gitops.forge` section: which forge opens the revert pull requests, and how to
/// reach it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConfig {
    #[serde(rename = "type")]
    pub kind: ForgeKind,
    /// The REST API base URL. Default `https://api.github.com` for `github` and
    /// `https://gitlab.com/api/v4` for `gitlab`; required for `gitea`
    /// (`https://HOST/api/v1`), GitHub Enterprise Server (`https://HOST/api/v3`) and a
    /// self-hosted GitLab (`https://HOST/api/v4`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// `github`, `gitea`: the repository's owner (user or organisation).
    #[serde(default)]
    pub owner: Option<String>,
    /// `github`, `gitea`: the repository's name.
    #[serde(default)]
    pub repo: Option<String>,
    /// `gitlab`: the project's numeric id or its `group/subgroup/project` path.
    #[serde(default)]
    pub project: Option<String>,
    /// The API token: `{file: PATH}` or `{env: VAR}`, read at each request.
    pub token: SecretSource,
    /// Allow a plain `http://` API URL (a forge on the same host, tests). Default false:
    /// the token is only ever sent over https.
    #[serde(default)]
    pub allow_http: bool,
    /// Timeout of each API request (connection included). Default 30s.
    #[serde(default = "default_forge_timeout")]
    pub timeout: PromDuration,
}

fn default_forge_timeout() -> PromDuration {
    PromDuration::from_secs(30)
}

impl ForgeConfig {
    /// The API base URL, with the forge's public default where it has one.
    pub fn api_url(&self) -> Option<String> {
        match (&self.api_url, self.kind) {
            (Some(u), _) => Some(u.clone()),
            (None, ForgeKind::Github) => Some("https://api.github.com".into()),
            (None, ForgeKind::Gitlab) => Some("https://gitlab.com/api/v4".into()),
            (None, ForgeKind::Gitea) => None,
        }
    }

    /// Static checks; errors name the key under `at` (`gitops.forge`).
    pub fn check(&self, at: &str) -> Result<(), String> {
        let kind = self.kind.as_str();
        let Some(api) = self.api_url() else {
            return Err(format!(
                "{at}.api_url: expected the Gitea API base URL (https://HOST/api/v1), found nothing"
            ));
        };
        let u = url::Url::parse(&api)
            .map_err(|e| format!("{at}.api_url: expected an https URL, found {api:?} ({e})"))?;
        match u.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(format!(
                    "{at}.api_url: expected an https URL, found {api}: the token would travel in clear text; set {at}.allow_http: true to allow http (a forge on this host, tests)"
                ))
            }
            other => {
                return Err(format!(
                    "{at}.api_url: expected an https URL, found scheme {other:?}"
                ))
            }
        }
        if u.host_str().is_none() || !u.username().is_empty() || u.password().is_some() {
            return Err(format!(
                "{at}.api_url: expected https://HOST[/PATH] without credentials (the token goes in {at}.token)"
            ));
        }
        let missing = |k: &str| {
            Err(format!(
                "{at}.{k}: expected a value for type {kind}, found nothing"
            ))
        };
        let unused = |k: &str| Err(format!("{at}.{k}: not used by type {kind}; remove it"));
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        match self.kind {
            ForgeKind::Github | ForgeKind::Gitea => {
                if blank(&self.owner) {
                    return missing("owner");
                }
                if blank(&self.repo) {
                    return missing("repo");
                }
                if self.project.is_some() {
                    return unused("project");
                }
            }
            ForgeKind::Gitlab => {
                if blank(&self.project) {
                    return missing("project");
                }
                if self.owner.is_some() {
                    return unused("owner");
                }
                if self.repo.is_some() {
                    return unused("repo");
                }
            }
        }
        if self.timeout.as_millis() < 100 {
            return Err(format!(
                "{at}.timeout: expected at least 100ms, found {}",
                self.timeout
            ));
        }
        Ok(())
    }

    /// Check the config, read the token once (so a missing Secret stops the daemon at
    /// start, naming its source) and build the API client.
    pub fn build(&self, at: &str) -> Result<Arc<dyn PullRequestApi>, PullRequestError> {
        self.check(at).map_err(PullRequestError::Config)?;
        read_token(&self.token)
            .map_err(|e| PullRequestError::Config(format!("{at}.token: {e}")))?;
        // `check` made sure these are present.
        let api_url = self.api_url().unwrap_or_default();
        let owner = self.owner.clone().unwrap_or_default();
        let repo = self.repo.clone().unwrap_or_default();
        let timeout = self.timeout.as_std();
        let token = self.token.clone();
        Ok(match self.kind {
            ForgeKind::Github => Arc::new(GitHubPulls::new(api_url, owner, repo, token, timeout)?),
            ForgeKind::Gitlab => Arc::new(GitLabMergeRequests::new(
                api_url,
                self.project.clone().unwrap_or_default(),
                token,
                timeout,
            )?),
            ForgeKind::Gitea => Arc::new(GiteaPulls::new(api_url, owner, repo, token, timeout)?),
        })
    }
}

/// The forge client: `timeout` for each request and the connection, and no redirects
/// followed (a redirect is an error): reqwest would resend GitLab's `PRIVATE-TOKEN`
/// header to wherever it is sent, and a redirect from an API endpoint is not expected.
fn client(provider: &'static str, timeout: Duration) -> Result<reqwest::Client, PullRequestError> {
    http::client_builder(timeout, timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PullRequestError::Transport {
            provider,
            message: e.to_string(),
        })
}

fn read_token(src: &SecretSource) -> Result<Secret, PullRequestError> {
    src.read()
        .map_err(|e| PullRequestError::Credentials(e.to_string()))
}

fn base(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

#[derive(Deserialize)]
struct NumberAndUrl {
    number: u64,
    html_url: String,
}

#[derive(Deserialize)]
struct IidAndUrl {
    iid: u64,
    web_url: String,
}

/// Send a request and map the answer. `exists` tells whether an error status means
/// "a pull request for this branch already exists".
async fn send(
    provider: &'static str,
    req: reqwest::RequestBuilder,
    token: &Secret,
    exists: impl Fn(u16, &str) -> bool,
) -> Result<(u16, String), PullRequestError> {
    let redactor = Redactor::new(vec![token.expose().to_string()]);
    let resp = req.send().await.map_err(|e| PullRequestError::Transport {
        provider,
        message: redactor.redact(&e.to_string()),
    })?;
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        // Redirects are not followed (see `client`): say so rather than show a 3xx body.
        return Err(PullRequestError::Http {
            provider,
            status,
            body: "the forge answered with a redirect, which slogate does not follow (the token must not go to another address): check api_url".into(),
        });
    }
    let text = resp.text().await.map_err(|e| PullRequestError::Transport {
        provider,
        message: redactor.redact(&e.to_string()),
    })?;
    if (200..300).contains(&status) {
        return Ok((status, text));
    }
    if exists(status, &text) {
        return Err(PullRequestError::AlreadyExists);
    }
    let mut body = redactor.redact(&text);
    if body.len() > 500 {
        let mut cut = 500;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    Err(PullRequestError::Http {
        provider,
        status,
        body,
    })
}

fn decode<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    text: &str,
) -> Result<T, PullRequestError> {
    serde_json::from_str(text).map_err(|e| PullRequestError::Transport {
        provider,
        message: format!("unexpected response: {e}"),
    })
}

/// What differs between the forges whose pull-request endpoint has the `owner/repo`
/// shape ([`OwnerRepoPulls`]): the provider name, the authentication header and how an
/// answer says that a pull request for the branch already exists.
pub trait OwnerRepoForge: Send + Sync + 'static {
    /// The provider name in errors.
    const PROVIDER: &'static str;
    /// Add the authentication (and any forge-specific headers) to the request.
    fn authenticate(req: reqwest::RequestBuilder, token: &Secret) -> reqwest::RequestBuilder;
    /// True when an error answer means "a pull request for this branch already exists".
    fn already_exists(status: u16, body: &str) -> bool;
    /// The query that lists the pull requests from `head` (GitHub filters by
    /// `owner:branch`; Gitea's list has no head filter, so recent ones are listed and
    /// filtered here).
    fn list_query(owner: &str, head: &str) -> Vec<(&'static str, String)>;
}

/// One pull request in a GitHub or Gitea list answer.
#[derive(Deserialize)]
struct ListedPull {
    number: u64,
    html_url: String,
    /// `open` or `closed`.
    state: String,
    /// GitHub: when it was merged (null when not).
    #[serde(default)]
    merged_at: Option<String>,
    /// Gitea: whether it was merged.
    #[serde(default)]
    merged: Option<bool>,
    head: ListedHead,
}

#[derive(Deserialize)]
struct ListedHead {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
}

/// The newest pull request from `head` in a list answer (the forges list newest first;
/// the highest number is taken to be sure).
fn newest_from(head: &str, listed: Vec<ListedPull>) -> Option<ExistingPullRequest> {
    listed
        .into_iter()
        .filter(|p| p.head.branch == head)
        .max_by_key(|p| p.number)
        .map(|p| {
            let merged = p.merged.unwrap_or(false) || p.merged_at.is_some();
            ExistingPullRequest {
                number: p.number,
                url: p.html_url,
                state: if merged {
                    PullRequestState::Merged
                } else if p.state == "open" {
                    PullRequestState::Open
                } else {
                    PullRequestState::Closed
                },
                head_sha: p.head.sha,
            }
        })
}

/// GitHub and GitHub Enterprise Server.
pub struct GitHub;

impl OwnerRepoForge for GitHub {
    const PROVIDER: &'static str = "github";
    fn authenticate(req: reqwest::RequestBuilder, token: &Secret) -> reqwest::RequestBuilder {
        req.header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .bearer_auth(token.expose())
    }
    fn already_exists(status: u16, body: &str) -> bool {
        status == 422 && body.contains("already exists")
    }
    fn list_query(owner: &str, head: &str) -> Vec<(&'static str, String)> {
        vec![
            ("state", "all".into()),
            ("head", format!("{owner}:{head}")),
            ("per_page", "100".into()),
        ]
    }
}

/// Gitea and Forgejo.
pub struct Gitea;

impl OwnerRepoForge for Gitea {
    const PROVIDER: &'static str = "gitea";
    fn authenticate(req: reqwest::RequestBuilder, token: &Secret) -> reqwest::RequestBuilder {
        req.header("Authorization", format!("token {}", token.expose()))
    }
    fn already_exists(status: u16, _body: &str) -> bool {
        status == 409
    }
    fn list_query(_owner: &str, _head: &str) -> Vec<(&'static str, String)> {
        // Revert pull requests are recent: the 50 most recently updated are enough.
        vec![
            ("state", "all".into()),
            ("sort", "recentupdate".into()),
            ("limit", "50".into()),
        ]
    }
}

/// `POST {api}/repos/{owner}/{repo}/pulls`, the endpoint GitHub and Gitea share, with the
/// same body (`title`, `head`, `base`, `body`) and answer (`number`, `html_url`).
pub struct OwnerRepoPulls<F> {
    client: reqwest::Client,
    api_url: String,
    owner: String,
    repo: String,
    token: SecretSource,
    forge: std::marker::PhantomData<F>,
}

/// GitHub (and GitHub Enterprise Server) pull requests.
pub type GitHubPulls = OwnerRepoPulls<GitHub>;

/// Gitea and Forgejo pull requests.
pub type GiteaPulls = OwnerRepoPulls<Gitea>;

impl<F: OwnerRepoForge> OwnerRepoPulls<F> {
    pub fn new(
        api_url: impl Into<String>,
        owner: impl Into<String>,
        repo: impl Into<String>,
        token: SecretSource,
        timeout: Duration,
    ) -> Result<Self, PullRequestError> {
        Ok(Self {
            client: client(F::PROVIDER, timeout)?,
            api_url: base(&api_url.into()),
            owner: owner.into(),
            repo: repo.into(),
            token,
            forge: std::marker::PhantomData,
        })
    }

    /// `{api}/repos/{owner}/{repo}/pulls`.
    fn pulls_url(&self) -> String {
        format!(
            "{}/repos/{}/{}/pulls",
            self.api_url,
            http::encode_segment(&self.owner),
            http::encode_segment(&self.repo)
        )
    }
}

#[async_trait]
impl<F: OwnerRepoForge> PullRequestApi for OwnerRepoPulls<F> {
    async fn open(&self, spec: &PullRequestSpec) -> Result<PullRequest, PullRequestError> {
        let token = read_token(&self.token)?;
        let req = self.client.post(self.pulls_url()).json(&json!({
            "title": spec.title,
            "head": spec.head,
            "base": spec.base,
            "body": spec.body,
        }));
        let req = F::authenticate(req, &token);
        let (_, text) = send(F::PROVIDER, req, &token, F::already_exists).await?;
        let r: NumberAndUrl = decode(F::PROVIDER, &text)?;
        Ok(PullRequest {
            number: r.number,
            url: r.html_url,
        })
    }

    async fn find(&self, head: &str) -> Result<Option<ExistingPullRequest>, PullRequestError> {
        let token = read_token(&self.token)?;
        let req = self
            .client
            .get(self.pulls_url())
            .query(&F::list_query(&self.owner, head));
        let req = F::authenticate(req, &token);
        let (_, text) = send(F::PROVIDER, req, &token, |_, _| false).await?;
        let listed: Vec<ListedPull> = decode(F::PROVIDER, &text)?;
        Ok(newest_from(head, listed))
    }
}

/// GitLab merge requests.
pub struct GitLabMergeRequests {
    client: reqwest::Client,
    api_url: String,
    project: String,
    token: SecretSource,
}

impl GitLabMergeRequests {
    pub fn new(
        api_url: impl Into<String>,
        project: impl Into<String>,
        token: SecretSource,
        timeout: Duration,
    ) -> Result<Self, PullRequestError> {
        Ok(Self {
            client: client("gitlab", timeout)?,
            api_url: base(&api_url.into()),
            project: project.into(),
            token,
        })
    }
}

impl GitLabMergeRequests {
    /// `{api}/projects/{id}/merge_requests`.
    fn merge_requests_url(&self) -> String {
        format!(
            "{}/projects/{}/merge_requests",
            self.api_url,
            http::encode_segment(&self.project)
        )
    }
}

#[async_trait]
impl PullRequestApi for GitLabMergeRequests {
    async fn open(&self, spec: &PullRequestSpec) -> Result<PullRequest, PullRequestError> {
        const P: &str = "gitlab";
        let token = read_token(&self.token)?;
        let req = self
            .client
            .post(self.merge_requests_url())
            .header("PRIVATE-TOKEN", token.expose())
            .json(&json!({
                "source_branch": spec.head,
                "target_branch": spec.base,
                "title": spec.title,
                "description": spec.body,
                "remove_source_branch": true,
            }));
        let (_, text) = send(P, req, &token, |status, _| status == 409).await?;
        let r: IidAndUrl = decode(P, &text)?;
        Ok(PullRequest {
            number: r.iid,
            url: r.web_url,
        })
    }

    async fn find(&self, head: &str) -> Result<Option<ExistingPullRequest>, PullRequestError> {
        const P: &str = "gitlab";
        #[derive(Deserialize)]
        struct Listed {
            iid: u64,
            web_url: String,
            /// `opened`, `closed`, `locked` or `merged`.
            state: String,
            source_branch: String,
            sha: String,
        }
        let token = read_token(&self.token)?;
        let req = self
            .client
            .get(self.merge_requests_url())
            .header("PRIVATE-TOKEN", token.expose())
            .query(&[
                ("source_branch", head),
                ("state", "all"),
                ("per_page", "100"),
            ]);
        let (_, text) = send(P, req, &token, |_, _| false).await?;
        let listed: Vec<Listed> = decode(P, &text)?;
        Ok(listed
            .into_iter()
            .filter(|m| m.source_branch == head)
            .max_by_key(|m| m.iid)
            .map(|m| ExistingPullRequest {
                number: m.iid,
                url: m.web_url,
                state: match m.state.as_str() {
                    "merged" => PullRequestState::Merged,
                    "opened" | "locked" => PullRequestState::Open,
                    _ => PullRequestState::Closed,
                },
                head_sha: m.sha,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "tok-s3cr3t-0123456789";

    fn spec() -> PullRequestSpec {
        PullRequestSpec {
            head: "slogate/revert-b-42".into(),
            base: "main".into(),
            title: "slogate: revert 1 commit touching apps/checkout".into(),
            body: "burn rate too high".into(),
        }
    }

    /// A token file (tests never mutate the process environment: git children read it
    /// concurrently).
    fn token_file(name: &str) -> SecretSource {
        SecretSource::File(token_path(name))
    }

    fn token_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("slogate-pr-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(name);
        std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
        f
    }

    #[tokio::test]
    async fn github_request_shape() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/repos/acme/gitops/pulls"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("accept", "application/vnd.github+json"))
            .and(header("x-github-api-version", "2022-11-28"))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "title": "slogate: revert 1 commit touching apps/checkout",
                "head": "slogate/revert-b-42",
                "base": "main",
                "body": "burn rate too high",
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "number": 17,
                "html_url": "https://github.com/acme/gitops/pull/17",
                "state": "open"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let api = GitHubPulls::new(
            server.uri(),
            "acme",
            "gitops",
            token_file("SLOGATE_TEST_GH_TOKEN"),
            Duration::from_secs(5),
        )
        .unwrap();
        let pr = api.open(&spec()).await.unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 17,
                url: "https://github.com/acme/gitops/pull/17".into()
            }
        );
        let reqs = server.received_requests().await.unwrap();
        assert!(
            reqs[0].headers.get("user-agent").is_some(),
            "GitHub requires a User-Agent"
        );
    }

    #[tokio::test]
    async fn github_existing_pr_is_already_exists_and_errors_hide_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/repos/acme/gitops/pulls"))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "custom",
                            "message": "A pull request already exists for acme:slogate/revert-b-42."}]
            })))
            .mount(&server)
            .await;
        let api = GitHubPulls::new(
            server.uri(),
            "acme",
            "gitops",
            token_file("SLOGATE_TEST_GH_TOKEN2"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            api.open(&spec()).await,
            Err(PullRequestError::AlreadyExists)
        );

        // An error whose body echoes the token does not leak it.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(401).set_body_string(format!("bad credentials {TOKEN}")),
            )
            .mount(&server)
            .await;
        let api = GitHubPulls::new(
            server.uri(),
            "acme",
            "gitops",
            token_file("SLOGATE_TEST_GH_TOKEN3"),
            Duration::from_secs(5),
        )
        .unwrap();
        let err = api.open(&spec()).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(matches!(err, PullRequestError::Http { status: 401, .. }));
    }

    #[tokio::test]
    async fn gitlab_request_shape() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/platform%2Fgitops/merge_requests"))
            .and(header("private-token", TOKEN))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "source_branch": "slogate/revert-b-42",
                "target_branch": "main",
                "title": "slogate: revert 1 commit touching apps/checkout",
                "description": "burn rate too high",
                "remove_source_branch": true,
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "id": 901, "iid": 5,
                "web_url": "https://gitlab.example.com/platform/gitops/-/merge_requests/5"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let api = GitLabMergeRequests::new(
            format!("{}/api/v4/", server.uri()),
            "platform/gitops",
            token_file("SLOGATE_TEST_GL_TOKEN"),
            Duration::from_secs(5),
        )
        .unwrap();
        let pr = api.open(&spec()).await.unwrap();
        assert_eq!(pr.number, 5);
        assert_eq!(
            pr.url,
            "https://gitlab.example.com/platform/gitops/-/merge_requests/5"
        );
        let reqs = server.received_requests().await.unwrap();
        assert!(reqs[0].headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn gitlab_conflict_is_already_exists() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/42/merge_requests"))
            .respond_with(ResponseTemplate::new(409).set_body_json(json!({
                "message": ["Another open merge request already exists for this source branch: !5"]
            })))
            .mount(&server)
            .await;
        let api = GitLabMergeRequests::new(
            format!("{}/api/v4", server.uri()),
            "42",
            token_file("SLOGATE_TEST_GL_TOKEN2"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            api.open(&spec()).await,
            Err(PullRequestError::AlreadyExists)
        );
    }

    #[tokio::test]
    async fn gitea_request_shape() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/repos/acme/gitops/pulls"))
            .and(header("authorization", format!("token {TOKEN}").as_str()))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "head": "slogate/revert-b-42",
                "base": "main",
                "title": "slogate: revert 1 commit touching apps/checkout",
                "body": "burn rate too high",
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "number": 3,
                "html_url": "https://gitea.example.com/acme/gitops/pulls/3"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let api = GiteaPulls::new(
            format!("{}/api/v1", server.uri()),
            "acme",
            "gitops",
            token_file("SLOGATE_TEST_GITEA_TOKEN"),
            Duration::from_secs(5),
        )
        .unwrap();
        let pr = api.open(&spec()).await.unwrap();
        assert_eq!(pr.number, 3);
        assert_eq!(pr.url, "https://gitea.example.com/acme/gitops/pulls/3");
    }

    #[tokio::test]
    async fn requests_time_out() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let api = GiteaPulls::new(
            server.uri(),
            "a",
            "b",
            token_file("SLOGATE_TEST_GITEA_TOKEN2"),
            Duration::from_millis(200),
        )
        .unwrap();
        // Without the timeout the delayed 201 would open the pull request.
        let err = api.open(&spec()).await.unwrap_err();
        assert!(matches!(err, PullRequestError::Transport { .. }), "{err:?}");
    }

    fn forge(yaml: serde_json::Value) -> ForgeConfig {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn forge_config_deserializes_with_defaults_and_checks_keys() {
        let c = forge(json!({
            "type": "gitlab", "project": "g/p", "token": {"env": "GL_TOKEN"}
        }));
        assert_eq!(c.kind, ForgeKind::Gitlab);
        assert_eq!(c.api_url().as_deref(), Some("https://gitlab.com/api/v4"));
        assert!(!c.allow_http);
        assert_eq!(c.timeout, PromDuration::from_secs(30));
        c.check("gitops.forge").unwrap();
        let gh = forge(json!({"type": "github", "owner": "acme", "token": {"file": "/t"}}));
        assert_eq!(
            gh.check("gitops.forge").unwrap_err(),
            "gitops.forge.repo: expected a value for type github, found nothing"
        );
        let gt = forge(json!({"type": "gitea", "owner": "a", "repo": "b", "token": {"env": "T"}}));
        assert!(gt
            .check("gitops.forge")
            .unwrap_err()
            .starts_with("gitops.forge.api_url: expected the Gitea API base URL"));
        let gl =
            forge(json!({"type": "gitlab", "project": "p", "owner": "o", "token": {"env": "T"}}));
        assert_eq!(
            gl.check("gitops.forge").unwrap_err(),
            "gitops.forge.owner: not used by type gitlab; remove it"
        );
        let err = serde_json::from_value::<ForgeConfig>(json!({
            "type": "bitbucket", "token": {"env": "T"}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("github"), "{err}");
    }

    /// A plain-http API URL is refused unless `allow_http`, before any request is made.
    #[tokio::test]
    async fn http_api_urls_are_refused_unless_allowed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&server)
            .await;
        let mut c = forge(json!({
            "type": "gitea", "api_url": format!("{}/api/v1", server.uri()),
            "owner": "acme", "repo": "gitops",
        "token": {"file": token_path("SLOGATE_TEST_HTTP_REFUSED")}
        }));
        let err = c.build("gitops.forge").err().expect("http refused");
        let shown = err.to_string();
        assert!(
            shown.starts_with("gitops.forge.api_url: expected an https URL, found http://"),
            "{shown}"
        );
        assert!(shown.contains("allow_http: true"), "{shown}");
        assert!(server.received_requests().await.unwrap().is_empty());
        c.allow_http = true;
        let api = c.build("gitops.forge").unwrap();
        assert_eq!(api.find("slogate/revert-x").await.unwrap(), None);
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        // Neither can a typo'd scheme sneak through.
        c.api_url = Some("ftp://gitea.example.com/api/v1".into());
        assert!(c.build("gitops.forge").is_err());
    }

    /// A redirect is never followed, so the token never reaches the redirect's target
    /// (reqwest would resend GitLab's `PRIVATE-TOKEN` header there).
    #[tokio::test]
    async fn redirects_are_refused_and_the_token_stays_home() {
        let elsewhere = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "iid": 1, "web_url": "https://evil.example/mr/1"
            })))
            .mount(&elsewhere)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&elsewhere)
            .await;
        let server = MockServer::start().await;
        for (status, m) in [(307, "POST"), (302, "GET")] {
            Mock::given(method(m))
                .respond_with(ResponseTemplate::new(status).insert_header(
                    "location",
                    format!("{}/api/v4/projects/p/merge_requests", elsewhere.uri()).as_str(),
                ))
                .mount(&server)
                .await;
        }
        let api = forge(json!({
            "type": "gitlab", "api_url": format!("{}/api/v4", server.uri()),
            "project": "platform/gitops", "allow_http": true,
            "token": {"file": token_path("SLOGATE_TEST_REDIRECT")}
        }))
        .build("gitops.forge")
        .unwrap();
        let err = api.open(&spec()).await.unwrap_err();
        assert!(
            matches!(&err, PullRequestError::Http { status: 307, body, .. } if body.contains("redirect")),
            "{err:?}"
        );
        let err = api.find("slogate/revert-b-42").await.unwrap_err();
        assert!(
            matches!(err, PullRequestError::Http { status: 302, .. }),
            "{err:?}"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        assert!(
            elsewhere.received_requests().await.unwrap().is_empty(),
            "a redirect was followed"
        );
    }

    #[tokio::test]
    async fn find_lists_by_head_branch_on_each_forge() {
        let server = MockServer::start().await;
        let head = "slogate/revert-b-42";
        Mock::given(method("GET"))
            .and(path("/repos/acme/gitops/pulls"))
            .and(wiremock::matchers::query_param("state", "all"))
            .and(wiremock::matchers::query_param(
                "head",
                "acme:slogate/revert-b-42",
            ))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
                "number": 17, "html_url": "https://github.com/acme/gitops/pull/17",
                "state": "closed", "merged_at": "2026-01-01T00:00:00Z",
                "head": {"ref": head, "sha": "abc123"}
            }])))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/platform%2Fgitops/merge_requests"))
            .and(wiremock::matchers::query_param("source_branch", head))
            .and(wiremock::matchers::query_param("state", "all"))
            .and(header("private-token", TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
                "iid": 5, "web_url": "https://gl/mr/5", "state": "opened",
                "source_branch": head, "sha": "def456"
            }])))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/repos/acme/gitops/pulls"))
            .and(wiremock::matchers::query_param("state", "all"))
            .and(header("authorization", format!("token {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"number": 4, "html_url": "https://gt/pulls/4", "state": "open", "merged": false,
                 "head": {"ref": "someone-elses-branch", "sha": "111"}},
                {"number": 3, "html_url": "https://gt/pulls/3", "state": "closed", "merged": false,
                 "head": {"ref": head, "sha": "222"}}
            ])))
            .expect(2)
            .mount(&server)
            .await;
        let t = Duration::from_secs(5);
        let gh = GitHubPulls::new(server.uri(), "acme", "gitops", token_file("F1"), t).unwrap();
        let gl = GitLabMergeRequests::new(
            format!("{}/api/v4", server.uri()),
            "platform/gitops",
            token_file("F2"),
            t,
        )
        .unwrap();
        let gt = GiteaPulls::new(
            format!("{}/api/v1", server.uri()),
            "acme",
            "gitops",
            token_file("F3"),
            t,
        )
        .unwrap();
        let found = |n: u64, url: &str, state, sha: &str| {
            Some(ExistingPullRequest {
                number: n,
                url: url.into(),
                state,
                head_sha: sha.into(),
            })
        };
        assert_eq!(
            gh.find(head).await.unwrap(),
            found(
                17,
                "https://github.com/acme/gitops/pull/17",
                PullRequestState::Merged,
                "abc123"
            )
        );
        assert_eq!(
            gl.find(head).await.unwrap(),
            found(5, "https://gl/mr/5", PullRequestState::Open, "def456")
        );
        assert_eq!(
            gt.find(head).await.unwrap(),
            found(3, "https://gt/pulls/3", PullRequestState::Closed, "222")
        );
        assert_eq!(gt.find("slogate/revert-other").await.unwrap(), None);
    }
}
