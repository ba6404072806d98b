//! Running the `git` CLI: a hermetic environment, credentials through the environment only,
//! a timeout on every invocation, and redaction of every string that leaves this module.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::adapters::git::config::{Auth, RepoConfig, Secret};
use crate::ports::gitops::GitOpsError;

/// Environment variables that carry the https credentials to the credential helper.
pub(crate) const ENV_USERNAME: &str = "SLOGATE_GIT_USERNAME";
pub(crate) const ENV_PASSWORD: &str = "SLOGATE_GIT_PASSWORD";

/// The credential helper: prints the username and password from the environment when git
/// asks (`get`), ignores `store`/`erase`. Only variable *names* appear here; the values are
/// in the environment of the git process, not in its arguments or in any config file.
pub(crate) const CREDENTIAL_HELPER: &str = "!f() { test \"$1\" = get || exit 0; \
printf 'username=%s\\npassword=%s\\n' \"$SLOGATE_GIT_USERNAME\" \"$SLOGATE_GIT_PASSWORD\"; }; f";

/// Inherited variables that would make git look at another repository, another config,
/// or ask somebody for a password.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_TRACE",
    "GIT_TRACE_CURL",
    "GIT_TRACE_PACKET",
    "GIT_CURL_VERBOSE",
];

/// Replaces known secrets and URL passwords/userinfo with `***`.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(crate) fn new(secrets: Vec<String>) -> Self {
        Self {
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
        }
    }

    pub(crate) fn redact(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        redact_url_userinfo(&out)
    }
}

/// Replace the userinfo of every `scheme://user[:password]@host` in `s` with `***`.
pub fn redact_url_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Quote for a POSIX shell (GIT_SSH_COMMAND is run by `sh`).
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Raw result of a git run that exited (successfully or not).
#[derive(Debug)]
pub(crate) struct Output {
    pub code: Option<i32>,
    /// Standard output, lossily decoded (machine formats are ASCII).
    pub stdout: String,
    /// Standard output as bytes (patches may hold non-UTF-8 file content).
    pub stdout_raw: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Options of one run.
#[derive(Default)]
pub(crate) struct RunOpts<'a> {
    pub stdin: Option<&'a [u8]>,
    /// Talks to the remote: gets the credentials.
    pub network: bool,
    /// Run somewhere other than the work tree (for `clone`/`init`).
    pub cwd: Option<&'a Path>,
}

/// Runs git for one repository configuration.
#[derive(Clone)]
pub(crate) struct GitRunner {
    workdir: PathBuf,
    timeout: Duration,
    /// Non-secret environment.
    env: Vec<(String, String)>,
    /// Git configuration passed through `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n`.
    config: Vec<(String, String)>,
    /// Secret environment, only for network commands.
    secret_env: Vec<(String, Secret)>,
    pub(crate) redactor: Redactor,
}

impl GitRunner {
    /// Build a runner, reading the credentials now.
    pub(crate) fn new(cfg: &RepoConfig) -> Result<Self, GitOpsError> {
        let mut env: Vec<(String, String)> = vec![
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GCM_INTERACTIVE".into(), "never".into()),
            ("LC_ALL".into(), "C".into()),
            ("LANG".into(), "C".into()),
            ("LANGUAGE".into(), "C".into()),
            ("GIT_AUTHOR_NAME".into(), cfg.author_name.clone()),
            ("GIT_AUTHOR_EMAIL".into(), cfg.author_email.clone()),
            ("GIT_COMMITTER_NAME".into(), cfg.author_name.clone()),
            ("GIT_COMMITTER_EMAIL".into(), cfg.author_email.clone()),
        ];
        let mut config: Vec<(String, String)> = vec![
            ("gc.auto".into(), "0".into()),
            ("maintenance.auto".into(), "false".into()),
            ("commit.gpgsign".into(), "false".into()),
            ("core.autocrlf".into(), "false".into()),
            ("core.quotePath".into(), "false".into()),
            ("advice.detachedHead".into(), "false".into()),
            ("init.defaultBranch".into(), "main".into()),
            // Forget any credential helper; ours (below) is the only one.
            ("credential.helper".into(), String::new()),
        ];
        let mut secret_env = Vec::new();
        let mut secrets = Vec::new();
        let ssh = cfg
            .ssh_program
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ssh".into());
        match &cfg.auth {
            Auth::None => {
                env.push((
                    "GIT_SSH_COMMAND".into(),
                    format!("{} -o BatchMode=yes", shell_quote(&ssh)),
                ));
            }
            Auth::Token { token, username } => {
                let t = token.read()?;
                secrets.push(t.expose().to_string());
                let user = username.clone().unwrap_or_else(|| "x-access-token".into());
                secret_env.push((ENV_USERNAME.into(), Secret::new(user)));
                secret_env.push((ENV_PASSWORD.into(), t));
            }
            Auth::Basic { username, password } => {
                let p = password.read()?;
                secrets.push(p.expose().to_string());
                secret_env.push((ENV_USERNAME.into(), Secret::new(username.clone())));
                secret_env.push((ENV_PASSWORD.into(), p));
            }
            Auth::SshKey {
                key_file,
                known_hosts_file,
            } => {
                let mut c = format!(
                    "{} -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes",
                    shell_quote(&ssh),
                    shell_quote(&key_file.to_string_lossy())
                );
                if let Some(kh) = known_hosts_file {
                    c.push_str(" -o UserKnownHostsFile=");
                    c.push_str(&shell_quote(&kh.to_string_lossy()));
                }
                env.push(("GIT_SSH_COMMAND".into(), c));
            }
        }
        if matches!(cfg.auth, Auth::Token { .. } | Auth::Basic { .. }) {
            let origin = cfg.http_origin().ok_or_else(|| {
                GitOpsError::Config("token/basic auth needs an http(s) url with a host".into())
            })?;
            // Scoped to the remote's origin: a redirect elsewhere gets no credentials.
            config.push((
                format!("credential.{origin}.helper"),
                CREDENTIAL_HELPER.into(),
            ));
        }
        config.extend(cfg.extra_git_config.iter().cloned());
        Ok(Self {
            workdir: cfg.workdir.clone(),
            timeout: cfg.timeout,
            env,
            config,
            secret_env,
            redactor: Redactor::new(secrets),
        })
    }

    pub(crate) fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The command that `run` would spawn (exposed for tests that inspect its arguments).
    pub(crate) fn command(&self, args: &[&str], opts: &RunOpts<'_>) -> Command {
        let mut cmd = Command::new("git");
        cmd.args(args);
        cmd.current_dir(opts.cwd.unwrap_or(&self.workdir));
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.env("GIT_CONFIG_COUNT", self.config.len().to_string());
        for (i, (k, v)) in self.config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        if opts.network {
            for (k, v) in &self.secret_env {
                cmd.env(k, v.expose());
            }
        } else {
            cmd.env_remove(ENV_USERNAME);
            cmd.env_remove(ENV_PASSWORD);
        }
        cmd
    }

    fn describe(&self, args: &[&str]) -> String {
        self.redactor.redact(&args.join(" "))
    }

    /// Run git and return its output whatever its exit code. Errors only when git could
    /// not be started or timed out (it is then killed with its process group).
    pub(crate) fn run_raw(&self, args: &[&str], opts: RunOpts<'_>) -> Result<Output, GitOpsError> {
        let described = self.describe(args);
        tracing::debug!(command = %described, "git");
        let mut cmd = self.command(args, &opts);
        cmd.stdin(if opts.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped());
        cmd.stderr(Stdio::piped());
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|source| GitOpsError::Spawn {
            command: described.clone(),
            source,
        })?;
        let stdin_thread = match (opts.stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                Some(thread::spawn(move || {
                    let _ = pipe.write_all(&data);
                }))
            }
            _ => None,
        };
        let mut out_pipe = child.stdout.take().expect("piped stdout");
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let out_thread = thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out_pipe.read_to_end(&mut b);
            b
        });
        let err_thread = thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err_pipe.read_to_end(&mut b);
            b
        });
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(2);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(source) => {
                    return Err(GitOpsError::Spawn {
                        command: described,
                        source,
                    })
                }
            }
            if Instant::now() >= deadline {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(command = %described, timeout = ?self.timeout, "git timed out, killed");
                return Err(GitOpsError::Timeout {
                    command: described,
                    timeout: self.timeout,
                });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        if let Some(t) = stdin_thread {
            let _ = t.join();
        }
        // Children that outlive git (they should not) could keep the pipes open; do not
        // let them hang us past the deadline.
        let stdout = join_until(out_thread, deadline);
        let stderr = join_until(err_thread, deadline);
        Ok(Output {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stdout_raw: stdout,
            stderr: self
                .redactor
                .redact(String::from_utf8_lossy(&stderr).trim()),
        })
    }

    /// Run git; a non-zero exit is an error naming the (redacted) command, code and stderr.
    pub(crate) fn run_opts(&self, args: &[&str], opts: RunOpts<'_>) -> Result<String, GitOpsError> {
        let out = self.run_raw(args, opts)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.failure(args, &out))
        }
    }

    pub(crate) fn run(&self, args: &[&str]) -> Result<String, GitOpsError> {
        self.run_opts(args, RunOpts::default())
    }

    /// The error for a failed run.
    pub(crate) fn failure(&self, args: &[&str], out: &Output) -> GitOpsError {
        let mut stderr = out.stderr.clone();
        if stderr.len() > 4000 {
            let mut cut = 4000;
            while !stderr.is_char_boundary(cut) {
                cut -= 1;
            }
            stderr.truncate(cut);
            stderr.push_str(" […]");
        }
        GitOpsError::Command {
            command: self.describe(args),
            code: out.code,
            stderr,
        }
    }
}

fn kill_group(pid: u32) {
    // Git may have children (ssh, git-remote-https, helpers): kill the whole group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn join_until(h: thread::JoinHandle<Vec<u8>>, deadline: Instant) -> Vec<u8> {
    let grace = deadline.max(Instant::now() + Duration::from_secs(1));
    while !h.is_finished() && Instant::now() < grace {
        thread::sleep(Duration::from_millis(5));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        Vec::new()
    }
}
