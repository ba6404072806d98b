//! A fake Git forge on wiremock, for tests that run `slogate run` in `gitops.mode:
//! pull-request`: GitHub, GitLab or Gitea, each with the endpoints and answers slogate's
//! forge client uses (see `src/adapters/git/pr.rs` for the documented request shapes).
//!
//! Unlike a list of canned answers, it keeps the pull requests it was asked to open, as a
//! forge does:
//! - opening one needs the right token and a head branch that exists on the bare remote (its
//!   tip becomes the pull request's head sha);
//! - a second open pull request from the same head branch is refused as the forge refuses it
//!   (GitHub `422 … already exists`, GitLab and Gitea `409`);
//! - listing filters by head branch as the forge does (GitHub `head=owner:branch`, GitLab
//!   `source_branch`, Gitea: all of them, filtered by the client);
//! - a test can merge or close one ([`FakeForge::set_state`]).
//!
//! A forge cannot run here (no network, no GitHub), which is why this is wiremock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Github,
    Gitlab,
    Gitea,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Github => "github",
            Kind::Gitlab => "gitlab",
            Kind::Gitea => "gitea",
        }
    }
}

/// One pull request the fake forge holds.
#[derive(Debug, Clone)]
pub struct Pr {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    /// `open`, `merged` or `closed`.
    pub state: String,
    pub sha: String,
}

#[derive(Default)]
struct Held {
    prs: Vec<Pr>,
    /// Requests to open a pull request, refused ones included.
    opens: u32,
}

pub struct FakeForge {
    pub kind: Kind,
    pub server: MockServer,
    held: Arc<Mutex<Held>>,
    _rt: tokio::runtime::Runtime,
}

pub const OWNER: &str = "acme";
pub const REPO: &str = "gitops";
pub const PROJECT: &str = "platform/gitops";

struct Responder {
    kind: Kind,
    token: String,
    remote: PathBuf,
    base_url: Arc<Mutex<String>>,
    held: Arc<Mutex<Held>>,
}

fn err(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "message": message }))
}

impl Responder {
    fn authorised(&self, r: &Request) -> bool {
        let h = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        match self.kind {
            Kind::Github => h("authorization") == format!("Bearer {}", self.token),
            Kind::Gitlab => h("private-token") == self.token,
            Kind::Gitea => h("authorization") == format!("token {}", self.token),
        }
    }

    fn pulls_path(&self) -> String {
        match self.kind {
            Kind::Github => format!("/repos/{OWNER}/{REPO}/pulls"),
            Kind::Gitlab => "/api/v4/projects/platform%2Fgitops/merge_requests".into(),
            Kind::Gitea => format!("/api/v1/repos/{OWNER}/{REPO}/pulls"),
        }
    }

    /// The tip of `branch` on the bare remote.
    fn tip(&self, branch: &str) -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&self.remote)
            .args(["rev-parse", "--verify", "-q"])
            .arg(format!("refs/heads/{branch}"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn render(&self, p: &Pr) -> Value {
        let base = self.base_url.lock().unwrap().clone();
        match self.kind {
            Kind::Gitlab => json!({
                "iid": p.number,
                "web_url": format!("{base}/{PROJECT}/-/merge_requests/{}", p.number),
                "state": if p.state == "open" { "opened" } else { p.state.as_str() },
                "source_branch": p.head,
                "target_branch": p.base,
                "sha": p.sha,
            }),
            Kind::Github | Kind::Gitea => json!({
                "number": p.number,
                "html_url": format!("{base}/{OWNER}/{REPO}/pull/{}", p.number),
                "state": if p.state == "open" { "open" } else { "closed" },
                "merged_at": if p.state == "merged" { json!("2026-01-01T00:00:00Z") } else { Value::Null },
                "merged": p.state == "merged",
                "head": {"ref": p.head, "sha": p.sha},
                "base": {"ref": p.base},
            }),
        }
    }

    fn open(&self, body: &Value) -> ResponseTemplate {
        let s = |k: &str| body[k].as_str().unwrap_or("").to_string();
        let (head, base, title, text) = match self.kind {
            Kind::Gitlab => (
                s("source_branch"),
                s("target_branch"),
                s("title"),
                s("description"),
            ),
            _ => (s("head"), s("base"), s("title"), s("body")),
        };
        let mut held = self.held.lock().unwrap();
        held.opens += 1;
        if held.prs.iter().any(|p| p.head == head && p.state == "open") {
            return match self.kind {
                Kind::Github => ResponseTemplate::new(422).set_body_json(json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "code": "custom",
                                "message": format!("A pull request already exists for {OWNER}:{head}.")}]
                })),
                Kind::Gitlab => ResponseTemplate::new(409).set_body_json(json!({
                    "message": [format!("Another open merge request already exists for this source branch: !1")]
                })),
                Kind::Gitea => err(409, "pull request already exists for these targets"),
            };
        }
        let Some(sha) = self.tip(&head) else {
            return err(422, "head branch does not exist");
        };
        if self.tip(&base).is_none() || title.is_empty() {
            return err(422, "invalid base or title");
        }
        let pr = Pr {
            number: held.prs.len() as u64 + 1,
            head,
            base,
            title,
            body: text,
            state: "open".into(),
            sha,
        };
        let out = self.render(&pr);
        held.prs.push(pr);
        ResponseTemplate::new(201).set_body_json(out)
    }

    fn list(&self, r: &Request) -> ResponseTemplate {
        let q: Vec<(String, String)> = r
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |k: &str| q.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        if get("state").as_deref() != Some("all") {
            return err(400, "the test forge expects state=all");
        }
        let filter: Option<String> = match self.kind {
            Kind::Github => match get("head") {
                Some(h) => match h.split_once(':') {
                    Some((OWNER, b)) => Some(b.to_string()),
                    _ => return err(422, "head must be owner:branch"),
                },
                None => None,
            },
            Kind::Gitlab => get("source_branch"),
            Kind::Gitea => None,
        };
        let held = self.held.lock().unwrap();
        let items: Vec<Value> = held
            .prs
            .iter()
            .rev()
            .filter(|p| filter.as_ref().is_none_or(|b| &p.head == b))
            .map(|p| self.render(p))
            .collect();
        ResponseTemplate::new(200).set_body_json(items)
    }
}

impl Respond for Responder {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        if !self.authorised(r) {
            return err(401, "Bad credentials");
        }
        if r.url.path() != self.pulls_path() {
            return err(404, "Not Found");
        }
        match r.method.as_str() {
            "POST" => match serde_json::from_slice::<Value>(&r.body) {
                Ok(b) => self.open(&b),
                Err(_) => err(400, "Problems parsing JSON"),
            },
            "GET" => self.list(r),
            _ => err(405, "Method Not Allowed"),
        }
    }
}

impl FakeForge {
    /// A forge of `kind` for the bare repository `remote`, accepting `token`.
    pub fn start(kind: Kind, remote: PathBuf, token: &str) -> FakeForge {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let held = Arc::new(Mutex::new(Held::default()));
        let base_url = Arc::new(Mutex::new(String::new()));
        let server = rt.block_on(async {
            let server = MockServer::start().await;
            Mock::given(any())
                .respond_with(Responder {
                    kind,
                    token: token.to_string(),
                    remote,
                    base_url: base_url.clone(),
                    held: held.clone(),
                })
                .mount(&server)
                .await;
            server
        });
        *base_url.lock().unwrap() = server.uri();
        FakeForge {
            kind,
            server,
            held,
            _rt: rt,
        }
    }

    /// The `api_url` slogate is configured with.
    pub fn api_url(&self) -> String {
        match self.kind {
            Kind::Github => self.server.uri(),
            Kind::Gitlab => format!("{}/api/v4", self.server.uri()),
            Kind::Gitea => format!("{}/api/v1", self.server.uri()),
        }
    }

    /// The `gitops.forge` section (YAML flow mappings, indented for `gitops:`), with the
    /// token read from `token_file` and http allowed (wiremock serves plain http).
    pub fn config(&self, token_file: &std::path::Path) -> String {
        let target = match self.kind {
            Kind::Gitlab => format!("project: {PROJECT}"),
            _ => format!("owner: {OWNER}\n    repo: {REPO}"),
        };
        format!(
            "  forge:\n    type: {}\n    api_url: {}\n    {target}\n    token: {{file: {}}}\n    allow_http: true\n    timeout: 10s\n",
            self.kind.name(),
            self.api_url(),
            token_file.display()
        )
    }

    pub fn prs(&self) -> Vec<Pr> {
        self.held.lock().unwrap().prs.clone()
    }

    /// How many times slogate asked to open a pull request (refused ones included).
    pub fn open_requests(&self) -> u32 {
        self.held.lock().unwrap().opens
    }

    /// Merge or close pull request `number` (`merged`, `closed`).
    pub fn set_state(&self, number: u64, state: &str) {
        let mut held = self.held.lock().unwrap();
        let pr = held
            .prs
            .iter_mut()
            .find(|p| p.number == number)
            .expect("pull request");
        pr.state = state.to_string();
    }
}
