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
//! Every request has a timeout. The token is read from its source for each request and
//! never appears in an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::adapters::git::config::{Secret, SecretSource};
use crate::adapters::git::runner::Redactor;
use crate::adapters::http;
use crate::ports::gitops::{PullRequest, PullRequestApi, PullRequestError, PullRequestSpec};

/// Which forge opens the pull requests, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum ForgeConfig {
    Github {
        /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
        api_url: String,
        owner: String,
        repo: String,
        token: SecretSource,
    },
    Gitlab {
        /// `https://gitlab.example.com/api/v4`.
        api_url: String,
        /// Numeric id or `group/subgroup/project` path.
        project: String,
        token: SecretSource,
    },
    Gitea {
        /// `https://gitea.example.com/api/v1`.
        api_url: String,
        owner: String,
        repo: String,
        token: SecretSource,
    },
}

impl ForgeConfig {
    /// Build the API client; `timeout` bounds every request.
    pub fn build(&self, timeout: Duration) -> Result<Arc<dyn PullRequestApi>, PullRequestError> {
        Ok(match self.clone() {
            ForgeConfig::Github {
                api_url,
                owner,
                repo,
                token,
            } => Arc::new(GitHubPulls::new(api_url, owner, repo, token, timeout)?),
            ForgeConfig::Gitlab {
                api_url,
                project,
                token,
            } => Arc::new(GitLabMergeRequests::new(api_url, project, token, timeout)?),
            ForgeConfig::Gitea {
                api_url,
                owner,
                repo,
                token,
            } => Arc::new(GiteaPulls::new(api_url, owner, repo, token, timeout)?),
        })
    }
}

fn client(provider: &'static str, timeout: Duration) -> Result<reqwest::Client, PullRequestError> {
    http::client_builder(timeout, timeout)
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

#[async_trait]
impl PullRequestApi for GitLabMergeRequests {
    async fn open(&self, spec: &PullRequestSpec) -> Result<PullRequest, PullRequestError> {
        const P: &str = "gitlab";
        let token = read_token(&self.token)?;
        let url = format!(
            "{}/projects/{}/merge_requests",
            self.api_url,
            http::encode_segment(&self.project)
        );
        let req = self
            .client
            .post(url)
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
        let dir = std::env::temp_dir().join(format!("slogate-pr-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(name);
        std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
        SecretSource::File(f)
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

    #[test]
    fn forge_config_deserializes() {
        let c: ForgeConfig = serde_json::from_value(json!({
            "provider": "gitlab", "api_url": "https://gl/api/v4", "project": "g/p",
            "token": {"env": "GL_TOKEN"}
        }))
        .unwrap();
        assert!(matches!(c, ForgeConfig::Gitlab { .. }));
        assert!(!format!("{c:?}").contains(TOKEN));
    }
}
