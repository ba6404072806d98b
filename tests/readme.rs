//! README.md is tested, so that a newcomer can trust it:
//!
//! - every command line of a ```sh, ```bash or ```console block that starts with `slogate `
//!   or `cargo run --release -- ` is parsed by the real clap parser ([`slogate::cli::Cli`]);
//!   a line that does not parse fails with its line number;
//! - the self-contained ones ([`RUN`]) are run with the built binary from the repository
//!   root, as written: their exit code must be 0, or the `exit N` their comment states, and a
//!   ```console block's shown output must be exactly what they print. `rules -o DIR` writes
//!   to a temporary directory and must equal `DIR` when the repository has it; `> FILE` is
//!   captured and must equal `FILE` when the repository has it. Commands that need a
//!   cluster, a Prometheus, a git remote or a daemon are only parsed ([`PARSE_ONLY`], with
//!   why); every subcommand must be in one of the two lists;
//! - the CLI reference has a `### \`slogate <command>\`` section for every subcommand, and a
//!   table row for every flag naming its short form, default and environment variable; and
//!   every flag in its tables exists;
//! - the configuration reference has a table row for every key of the daemon's `Config`
//!   (walked through serde, so a new key fails here until it is documented), and every key
//!   in its tables exists;
//! - every ```yaml block that is a daemon configuration (or a part of one) loads with the
//!   daemon's own loader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, Parser};
use slogate::cli::Cli;
use slogate::runtime::config::Config;

/// Subcommands whose README examples are run: they read only the repository's files.
const RUN: &[&str] = &["validate", "rules", "crd", "judge"];

/// Subcommands whose README examples are only parsed, and why.
const PARSE_ONLY: &[(&str, &str)] = &[
    (
        "run",
        "the daemon: needs a Prometheus, and serves until stopped",
    ),
    ("budget", "needs a Prometheus"),
    ("analyze", "needs a Prometheus"),
    (
        "promote",
        "needs a GitOps remote and a Prometheus, and pushes a commit",
    ),
    (
        "approve",
        "writes an approval into a slogate state directory or a daemon",
    ),
    (
        "decisions",
        "reads the state directory or the API of a running slogate",
    ),
    (
        "rollout",
        "talks to a running daemon, or queues into its state directory",
    ),
    (
        "demo",
        "runs a whole scenario; tests/demo.rs runs it and checks the outcome",
    ),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("read README.md")
}

fn fail_if_any(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Markdown

/// A fenced code block: its language and its lines with their 1-based line numbers.
struct Block {
    lang: String,
    lines: Vec<(usize, String)>,
    /// Line number of the opening fence.
    start: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match open.take() {
                Some((b, _)) => out.push(b),
                None => {
                    open = Some((
                        Block {
                            lang: rest.trim().to_string(),
                            lines: Vec::new(),
                            start: n,
                        },
                        indent,
                    ))
                }
            }
            continue;
        }
        if let Some((b, indent)) = open.as_mut() {
            // Blocks inside list items are indented; their content is indented the same way.
            let cut = line
                .char_indices()
                .take_while(|(j, c)| *j < *indent && *c == ' ')
                .count();
            b.lines.push((n, line[cut..].to_string()));
        }
    }
    assert!(open.is_none(), "README.md: a code block is never closed");
    out
}

/// The text of the `## …` section whose heading starts with `heading`, up to the next
/// `## ` heading (headings inside code blocks do not count: the README has none there).
fn section(text: &str, heading: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            inside = line.starts_with(heading);
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "README.md has no section `{heading}`");
    out
}

/// `### ` subsections of a section: title → body. The text before the first one is `""`.
fn subsections(section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut title = String::new();
    let mut body = String::new();
    for line in section.lines() {
        if let Some(t) = line.strip_prefix("### ") {
            out.insert(std::mem::take(&mut title), std::mem::take(&mut body));
            title = t.trim().to_string();
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    out.insert(title, body);
    out
}

/// Table rows (lines starting with `|`, without the header separator) of a text.
fn table_rows(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| ---"))
        .collect()
}

/// The `code` spans of a table row's first cell.
fn first_cell_codes(row: &str) -> Vec<String> {
    let cell = row
        .trim_start_matches('|')
        .split(" | ")
        .next()
        .unwrap_or("");
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Shell lines

/// Split a shell line into words, the way sh would for the simple commands the README
/// shows: whitespace, single and double quotes, backslash escapes, and a `#` comment.
/// Anything fancier (pipes, substitutions, variables) is refused, so that a README command
/// always means exactly what the test runs.
fn shell_words(line: &str) -> Result<(Vec<String>, String), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => {
                let comment: String = chars.collect();
                return Ok((words, comment.trim().to_string()));
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some('$') | Some('`') => {
                            return Err("substitutions are not supported here".into())
                        }
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("a trailing backslash".into()),
                }
            }
            '|' | ';' | '&' | '<' | '$' | '`' | '(' | ')' => {
                return Err(format!(
                    "shell syntax `{c}` is not supported in README commands"
                ))
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok((words, String::new()))
}

/// A slogate command found in the README.
#[derive(Debug)]
struct ReadmeCommand {
    line: usize,
    text: String,
    /// The arguments after `slogate` (or `cargo run --release --`).
    args: Vec<String>,
    /// `> FILE`.
    stdout_to: Option<String>,
    /// `exit N` in the line's comment.
    exit: Option<i32>,
    /// A console block's shown output, when the command is in one.
    output: Option<Vec<String>>,
}

/// Numbered lines.
type Lines = Vec<(usize, String)>;

/// Joins `\` continuations: (first line number, logical line).
fn logical_lines(lines: &[(usize, String)]) -> Lines {
    let mut out: Lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, l) in lines {
        let (start, mut text) = match pending.take() {
            Some((s, t)) => (s, t + " " + l.trim()),
            None => (*n, l.trim().to_string()),
        };
        if text.ends_with('\\') {
            text.pop();
            pending = Some((start, text.trim_end().to_string()));
        } else {
            out.push((start, text));
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

fn parse_exit(comment: &str) -> Option<i32> {
    let i = comment.find("exit ")?;
    comment[i + 5..]
        .chars()
        .next()
        .and_then(|c| c.to_digit(10))
        .map(|d| d as i32)
}

/// Every slogate command of the README's sh, bash and console blocks.
fn readme_commands(text: &str) -> Result<Vec<ReadmeCommand>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for b in blocks(text) {
        let console = b.lang == "console";
        if !(console || b.lang == "sh" || b.lang == "bash") {
            continue;
        }
        // In a console block, `$ ` lines are commands and the lines up to the next one are
        // their output.
        // (command lines, shown output)
        let mut groups: Vec<(Lines, Vec<String>)> = Vec::new();
        if console {
            for (n, l) in &b.lines {
                if let Some(cmd) = l.strip_prefix("$ ") {
                    groups.push((vec![(*n, cmd.to_string())], Vec::new()));
                } else if let Some(g) = groups.last_mut() {
                    if g.0
                        .last()
                        .is_some_and(|(_, c)| c.trim_end().ends_with('\\'))
                    {
                        g.0.push((*n, l.clone()));
                    } else {
                        g.1.push(l.trim_end().to_string());
                    }
                } else {
                    errors.push(format!(
                        "README.md:{n}: console block (line {}) output before any `$ ` command",
                        b.start
                    ));
                }
            }
        } else {
            groups.push((b.lines.clone(), Vec::new()));
        }
        for (lines, output) in groups {
            for (n, line) in logical_lines(&lines) {
                let rest = if let Some(r) = line.strip_prefix("slogate ") {
                    r
                } else if line == "slogate" {
                    ""
                } else if let Some(r) = line.strip_prefix("cargo run --release -- ") {
                    r
                } else {
                    continue; // another tool (kubectl, scripts/test, …) or a comment
                };
                match shell_words(rest) {
                    Err(e) => errors.push(format!("README.md:{n}: `{line}`: {e}")),
                    Ok((mut args, comment)) => {
                        let mut stdout_to = None;
                        if let Some(i) = args.iter().position(|a| a.starts_with('>')) {
                            // `> FILE` or `>FILE`, last on the line.
                            let (target, end) = if args[i] == ">" {
                                (args.get(i + 1).cloned(), i + 2)
                            } else {
                                (Some(args[i][1..].to_string()), i + 1)
                            };
                            match target {
                                Some(t) if !t.is_empty() && end == args.len() => {
                                    stdout_to = Some(t);
                                    args.truncate(i);
                                }
                                _ => errors.push(format!(
                                    "README.md:{n}: `{line}`: `>` must end the command, with a file"
                                )),
                            }
                        }
                        out.push(ReadmeCommand {
                            line: n,
                            text: line.clone(),
                            args,
                            stdout_to,
                            exit: parse_exit(&comment),
                            output: console.then(|| output.clone()),
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn has_subcommand(name: &str) -> bool {
    Cli::command().find_subcommand(name).is_some()
}

// ---------------------------------------------------------------------------------------
// Commands

#[test]
fn every_readme_command_parses_and_the_self_contained_ones_run() {
    let text = readme();
    let cmds = readme_commands(&text).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(
        cmds.len() >= 20,
        "only {} slogate commands found in README.md: is the extraction broken?",
        cmds.len()
    );

    // Every subcommand is either run or only parsed, with a reason.
    let mut failures = Vec::new();
    for sc in Cli::command().get_subcommands() {
        let name = sc.get_name();
        if !RUN.contains(&name) && !PARSE_ONLY.iter().any(|(n, _)| *n == name) {
            failures.push(format!(
                "subcommand `{name}`: add it to RUN (self-contained) or PARSE_ONLY (with why) in tests/readme.rs"
            ));
        }
    }
    fail_if_any("subcommand lists", &failures);

    let mut ran = 0;
    for c in &cmds {
        let sub = c.args.first().map(String::as_str).unwrap_or("");
        let argv = std::iter::once("slogate".to_string()).chain(c.args.iter().cloned());
        if let Err(e) = Cli::try_parse_from(argv) {
            use clap::error::ErrorKind;
            if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or("");
                failures.push(format!("README.md:{}: `{}`: {first}", c.line, c.text));
                continue;
            }
        }
        if RUN.contains(&sub) {
            if let Err(e) = run(c) {
                failures.push(format!("README.md:{}: `{}`: {e}", c.line, c.text));
            }
            ran += 1;
        } else if !PARSE_ONLY.iter().any(|(n, _)| *n == sub) && sub != "--help" {
            failures.push(format!(
                "README.md:{}: `{}`: unknown subcommand `{sub}`",
                c.line, c.text
            ));
        }
    }
    fail_if_any("README commands", &failures);
    assert!(ran >= 6, "only {ran} README commands were run");
}

/// Run a self-contained README command from the repository root.
fn run(c: &ReadmeCommand) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut args = c.args.clone();
    // `rules -o DIR`: write into a temporary directory instead of the repository.
    let mut out_dir: Option<String> = None;
    if args.first().map(String::as_str) == Some("rules") {
        let mut i = 1;
        while i < args.len() {
            if (args[i] == "-o" || args[i] == "--out") && i + 1 < args.len() {
                out_dir = Some(std::mem::replace(
                    &mut args[i + 1],
                    tmp.path().display().to_string(),
                ));
                i += 1;
            } else if let Some(d) = args[i].strip_prefix("--out=") {
                out_dir = Some(d.to_string());
                args[i] = format!("--out={}", tmp.path().display());
            }
            i += 1;
        }
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slogate"));
    cmd.args(&args).current_dir(repo());
    for (k, _) in std::env::vars() {
        if k.starts_with("SLOGATE_") {
            cmd.env_remove(k);
        }
    }
    // Logs are not part of the documented output.
    cmd.env("SLOGATE_LOG", "off");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run slogate: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let want = c.exit.unwrap_or(0);
    if out.status.code() != Some(want) {
        return Err(format!(
            "exit {:?}, the README says {want}{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status.code(),
            if c.exit.is_none() {
                " (no `# exit N` comment)"
            } else {
                ""
            }
        ));
    }
    if let Some(shown) = &c.output {
        let got: Vec<String> = stdout
            .lines()
            .chain(stderr.lines())
            .map(|l| l.trim_end().to_string())
            .collect();
        if &got != shown {
            return Err(format!(
                "the output shown differs from what it prints:\n--- shown\n{}\n--- printed\n{}",
                shown.join("\n"),
                got.join("\n")
            ));
        }
    }
    if let Some(f) = &c.stdout_to {
        let p = repo().join(f);
        if p.exists() {
            let want = std::fs::read_to_string(&p).map_err(|e| format!("{f}: {e}"))?;
            if want != stdout {
                return Err(format!("its output differs from {f}"));
            }
        }
    }
    if let Some(d) = out_dir {
        let dir = repo().join(&d);
        let mut written = 0;
        for e in std::fs::read_dir(tmp.path()).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            written += 1;
            if dir.is_dir() {
                let got = std::fs::read(e.path()).map_err(|e| e.to_string())?;
                let theirs = dir.join(e.file_name());
                if std::fs::read(&theirs).ok().as_deref() != Some(got.as_slice()) {
                    return Err(format!(
                        "it writes {} differently from the repository's {}",
                        e.file_name().to_string_lossy(),
                        theirs.strip_prefix(repo()).unwrap_or(&theirs).display()
                    ));
                }
            }
        }
        if written == 0 {
            return Err(format!("it wrote nothing into -o {d}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CLI reference

/// Every argument of a command and of its subcommands, with the subcommands' names.
fn args_of(cmd: &clap::Command) -> (Vec<clap::Arg>, Vec<String>) {
    let mut args: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .cloned()
        .collect();
    let mut subs = Vec::new();
    for sc in cmd.get_subcommands() {
        if sc.get_name() == "help" {
            continue;
        }
        subs.push(sc.get_name().to_string());
        let (a, s) = args_of(sc);
        for x in a {
            if !args.iter().any(|y| y.get_id() == x.get_id()) {
                args.push(x);
            }
        }
        subs.extend(s);
    }
    (args, subs)
}

/// Check that `body`'s tables document `arg`: its long flag (or positional value name), short
/// flag, default and environment variable.
fn check_arg(arg: &clap::Arg, body: &str, where_: &str, failures: &mut Vec<String>) {
    let Some(long) = arg.get_long() else {
        let name = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|s| s.to_string())
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        if !body.contains(&format!("`{name}")) {
            failures.push(format!("{where_}: the argument `{name}` is not documented"));
        }
        return;
    };
    let flag = format!("`--{long}`");
    let rows: Vec<&str> = table_rows(body)
        .into_iter()
        .filter(|r| {
            first_cell_codes(r)
                .iter()
                .any(|c| *c == flag[1..flag.len() - 1])
        })
        .collect();
    let Some(row) = rows.first() else {
        failures.push(format!("{where_}: no table row for {flag}"));
        return;
    };
    if let Some(s) = arg.get_short() {
        if !row.contains(&format!("`-{s}`")) {
            failures.push(format!("{where_}: the row of {flag} does not name `-{s}`"));
        }
    }
    if arg.get_action().takes_values() {
        for d in arg.get_default_values() {
            let d = d.to_string_lossy();
            let ok = if d == env!("CARGO_PKG_VERSION") {
                row.contains("slogate's version")
            } else {
                row.contains(&format!("`{d}`"))
            };
            if !ok {
                failures.push(format!(
                    "{where_}: the row of {flag} does not state its default `{d}`"
                ));
            }
        }
    }
    if let Some(env) = arg.get_env() {
        let env = env.to_string_lossy();
        if !row.contains(&format!("`{env}`")) {
            failures.push(format!(
                "{where_}: the row of {flag} does not name its environment variable `{env}`"
            ));
        }
    }
}

#[test]
fn the_cli_reference_documents_every_command_and_flag() {
    let text = readme();
    let reference = section(&text, "## CLI reference");
    let subs = subsections(&reference);
    let mut failures = Vec::new();
    let cli = Cli::command();

    // Global flags, in the text before the first command.
    let intro = subs.get("").cloned().unwrap_or_default();
    for a in cli.get_arguments().filter(|a| a.is_global_set()) {
        check_arg(a, &intro, "CLI reference (global flags)", &mut failures);
    }
    for code in ["**0**", "**1**", "**2**"] {
        if !intro.contains(code) {
            failures.push(format!("CLI reference: exit code {code} is not explained"));
        }
    }

    let mut documented = BTreeSet::new();
    for title in subs.keys().filter(|t| !t.is_empty()) {
        match title
            .strip_prefix("`slogate ")
            .and_then(|t| t.strip_suffix('`'))
        {
            Some(name) => {
                documented.insert(name.to_string());
            }
            None => failures.push(format!(
                "CLI reference: heading `### {title}` is not of the form ### `slogate <command>`"
            )),
        }
    }
    for sc in cli.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sc.get_name();
        let title = format!("`slogate {name}`");
        let Some(body) = subs.get(&title) else {
            failures.push(format!("CLI reference: no section ### {title}"));
            continue;
        };
        // The demo's flags are documented in its own section.
        let flags_body = if name == "demo" {
            section(&text, "## The demo")
        } else {
            body.clone()
        };
        let where_ = format!("CLI reference, {title}");
        let (args, nested) = args_of(sc);
        for n in &nested {
            if !body.contains(&format!("`{n}`")) {
                failures.push(format!("{where_}: the subcommand `{n}` is not described"));
            }
        }
        for a in &args {
            check_arg(a, &flags_body, &where_, &mut failures);
        }
        // Every flag in the tables exists.
        for row in table_rows(body) {
            for code in first_cell_codes(row) {
                if let Some(long) = code.strip_prefix("--") {
                    if !args.iter().any(|a| a.get_long() == Some(long)) {
                        failures.push(format!(
                            "{where_}: the table documents `{code}`, which `slogate {name}` does not have"
                        ));
                    }
                }
            }
        }
    }
    for name in &documented {
        if !has_subcommand(name) {
            failures.push(format!(
                "CLI reference documents `slogate {name}`, which does not exist"
            ));
        }
    }
    fail_if_any("CLI reference", &failures);
}

// ---------------------------------------------------------------------------------------
// Configuration reference

/// Every key path of a serde type, found by deserialising it from a deserializer that
/// answers every field it is asked for (`a.b`, `list[].field`). Values that this
/// deserializer cannot make up (a socket address, an internally tagged enum, `file|kube`)
/// fail; their path is remembered as a leaf and skipped on the next attempt.
mod keys {
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::fmt;

    use serde::de::{
        self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
        Visitor,
    };

    #[derive(Debug)]
    pub struct Error {
        msg: String,
        path: Option<String>,
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} (at {:?})", self.msg, self.path)
        }
    }

    impl std::error::Error for Error {}

    impl de::Error for Error {
        fn custom<T: fmt::Display>(msg: T) -> Self {
            Error {
                msg: msg.to_string(),
                path: None,
            }
        }
    }

    fn tag(mut e: Error, path: &str) -> Error {
        if e.path.is_none() {
            e.path = Some(path.to_string());
        }
        e
    }

    fn join(parent: &str, field: &str) -> String {
        if parent.is_empty() {
            field.to_string()
        } else {
            format!("{parent}.{field}")
        }
    }

    #[derive(Default)]
    struct Walk {
        paths: BTreeSet<String>,
        skip: BTreeSet<String>,
    }

    struct Tracer<'a> {
        w: &'a RefCell<Walk>,
        path: String,
    }

    macro_rules! answer {
        ($($name:ident => |$v:ident| $e:expr;)*) => {
            $(fn $name<V: Visitor<'de>>(self, $v: V) -> Result<V::Value, Error> { $e })*
        };
    }

    impl<'de> de::Deserializer<'de> for Tracer<'_> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("a self-describing value (a leaf)"))
        }

        answer! {
            deserialize_bool => |v| v.visit_bool(false);
            deserialize_i8 => |v| v.visit_u64(1);
            deserialize_i16 => |v| v.visit_u64(1);
            deserialize_i32 => |v| v.visit_u64(1);
            deserialize_i64 => |v| v.visit_u64(1);
            deserialize_u8 => |v| v.visit_u64(1);
            deserialize_u16 => |v| v.visit_u64(1);
            deserialize_u32 => |v| v.visit_u64(1);
            deserialize_u64 => |v| v.visit_u64(1);
            deserialize_f32 => |v| v.visit_f64(0.5);
            deserialize_f64 => |v| v.visit_f64(0.5);
            deserialize_char => |v| v.visit_char('a');
            deserialize_str => |v| v.visit_str("1s");
            deserialize_string => |v| v.visit_str("1s");
            deserialize_bytes => |v| v.visit_bytes(b"");
            deserialize_byte_buf => |v| v.visit_bytes(b"");
            deserialize_unit => |v| v.visit_unit();
            deserialize_ignored_any => |v| v.visit_unit();
            deserialize_identifier => |v| v.visit_str("");
            deserialize_map => |v| v.visit_map(NoFields);
        }

        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_some(self)
        }
        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            _n: &'static str,
            v: V,
        ) -> Result<V::Value, Error> {
            v.visit_unit()
        }
        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _n: &'static str,
            v: V,
        ) -> Result<V::Value, Error> {
            v.visit_newtype_struct(self)
        }
        fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            let path = format!("{}[]", self.path);
            v.visit_seq(OneElement(Some(Tracer { w: self.w, path })))
        }
        fn deserialize_tuple<V: Visitor<'de>>(self, _l: usize, _v: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("a tuple (a leaf)"))
        }
        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            _n: &'static str,
            _l: usize,
            _v: V,
        ) -> Result<V::Value, Error> {
            Err(de::Error::custom("a tuple struct (a leaf)"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _n: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            {
                let mut w = self.w.borrow_mut();
                for f in fields {
                    w.paths.insert(join(&self.path, f));
                }
            }
            v.visit_map(Fields {
                w: self.w,
                path: self.path,
                fields,
                i: 0,
            })
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _n: &'static str,
            variants: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            let Some(first) = variants.first() else {
                return Err(de::Error::custom("an enum without variants"));
            };
            v.visit_enum(FirstVariant {
                t: self,
                variant: first,
            })
        }
    }

    struct NoFields;

    impl<'de> MapAccess<'de> for NoFields {
        type Error = Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            _k: K,
        ) -> Result<Option<K::Value>, Error> {
            Ok(None)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _v: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("no value"))
        }
    }

    struct Fields<'a> {
        w: &'a RefCell<Walk>,
        path: String,
        fields: &'static [&'static str],
        i: usize,
    }

    impl<'de> MapAccess<'de> for Fields<'_> {
        type Error = Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            k: K,
        ) -> Result<Option<K::Value>, Error> {
            while let Some(f) = self.fields.get(self.i) {
                if self.w.borrow().skip.contains(&join(&self.path, f)) {
                    self.i += 1;
                    continue;
                }
                let de: de::value::StrDeserializer<'static, Error> = f.into_deserializer();
                return k.deserialize(de).map(Some);
            }
            Ok(None)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, v: V) -> Result<V::Value, Error> {
            let path = join(&self.path, self.fields[self.i]);
            self.i += 1;
            v.deserialize(Tracer {
                w: self.w,
                path: path.clone(),
            })
            .map_err(|e| tag(e, &path))
        }
    }

    struct OneElement<'a>(Option<Tracer<'a>>);

    impl<'de> SeqAccess<'de> for OneElement<'_> {
        type Error = Error;
        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, Error> {
            match self.0.take() {
                None => Ok(None),
                Some(t) => {
                    let path = t.path.clone();
                    seed.deserialize(t).map(Some).map_err(|e| tag(e, &path))
                }
            }
        }
    }

    struct FirstVariant<'a> {
        t: Tracer<'a>,
        variant: &'static str,
    }

    impl<'de, 'a> EnumAccess<'de> for FirstVariant<'a> {
        type Error = Error;
        type Variant = Tracer<'a>;
        fn variant_seed<V: DeserializeSeed<'de>>(
            self,
            seed: V,
        ) -> Result<(V::Value, Tracer<'a>), Error> {
            let de: de::value::StrDeserializer<'static, Error> = self.variant.into_deserializer();
            Ok((seed.deserialize(de)?, self.t))
        }
    }

    impl<'de> VariantAccess<'de> for Tracer<'_> {
        type Error = Error;
        fn unit_variant(self) -> Result<(), Error> {
            Ok(())
        }
        fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
            seed.deserialize(self)
        }
        fn tuple_variant<V: Visitor<'de>>(self, _l: usize, _v: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("a tuple variant (a leaf)"))
        }
        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            de::Deserializer::deserialize_struct(self, "", fields, v)
        }
    }

    /// Every key path of `T` (`section.key`, `list[].key`), structs included.
    pub fn paths<T: de::DeserializeOwned>() -> BTreeSet<String> {
        let w = RefCell::new(Walk::default());
        loop {
            match T::deserialize(Tracer {
                w: &w,
                path: String::new(),
            }) {
                Ok(_) => return w.into_inner().paths,
                Err(e) => {
                    let Some(p) = e.path.clone() else {
                        panic!("cannot walk the configuration's keys: {e}")
                    };
                    assert!(
                        w.borrow_mut().skip.insert(p),
                        "cannot walk the configuration's keys: {e}"
                    );
                }
            }
        }
    }

    /// The paths that have no keys below them.
    pub fn leaves(paths: &BTreeSet<String>) -> BTreeSet<String> {
        paths
            .iter()
            .filter(|p| {
                !paths.iter().any(|q| {
                    q.len() > p.len()
                        && q.starts_with(p.as_str())
                        && matches!(q.as_bytes()[p.len()], b'.' | b'[')
                })
            })
            .cloned()
            .collect()
    }
}

#[test]
fn the_config_walk_finds_nested_keys() {
    let paths = keys::paths::<Config>();
    for k in [
        "prometheus.url",
        "server.listen",
        "gitops.auth",
        "guard.apps[].argocd.sync_options",
        "webhook.auth.basic.password_env",
        "notifications[].type",
        "rollouts.state",
        "leader_election.name",
        "api.token",
    ] {
        assert!(paths.contains(k), "{k} not found in {paths:?}");
    }
    let leaves = keys::leaves(&paths);
    assert!(leaves.contains("gitops.auth") && !leaves.contains("guard.apps"));
}

#[test]
fn the_configuration_reference_documents_every_key() {
    let text = readme();
    let reference = section(&text, "## Configuration reference");
    let documented: BTreeSet<String> = table_rows(&reference)
        .into_iter()
        .flat_map(first_cell_codes)
        .filter(|c| c != "Key")
        .collect();
    let paths = keys::paths::<Config>();
    let mut failures = Vec::new();
    for k in keys::leaves(&paths) {
        if !documented.contains(&k) {
            failures.push(format!(
                "configuration key `{k}` has no row in the configuration reference"
            ));
        }
    }
    for k in &documented {
        if !paths.contains(k) {
            failures.push(format!(
                "the configuration reference documents `{k}`, which is not a configuration key"
            ));
        }
    }
    fail_if_any("configuration reference", &failures);
}

#[test]
fn every_configuration_example_loads() {
    let text = readme();
    let top: BTreeSet<String> = keys::paths::<Config>()
        .into_iter()
        .filter(|p| !p.contains(['.', '[']))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for b in blocks(&text).into_iter().filter(|b| b.lang == "yaml") {
        let body: String = b.lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        let Ok(slogate::model::yaml::Value::Mapping(mut m)) =
            slogate::model::yaml::from_str::<slogate::model::yaml::Value>(&body)
        else {
            continue;
        };
        if m.is_empty()
            || !m
                .keys()
                .all(|k| k.as_str().is_some_and(|k| top.contains(k)))
        {
            continue; // an SLO spec, an Alertmanager snippet, …
        }
        // A part of a configuration: add what any configuration needs.
        let key = |k: &str| slogate::model::yaml::Value::String(k.to_string());
        if !m.contains_key("prometheus") {
            m.insert(
                key("prometheus"),
                slogate::model::yaml::from_str::<slogate::model::yaml::Value>(
                    "{url: http://prometheus:9090}",
                )
                .unwrap(),
            );
        }
        if m.contains_key("guard") && !m.contains_key("gitops") {
            m.insert(
                key("gitops"),
                slogate::model::yaml::from_str::<slogate::model::yaml::Value>(
                    "{url: /srv/gitops.git}",
                )
                .unwrap(),
            );
        }
        let f: PathBuf = dir.path().join(format!("line-{}.yaml", b.start));
        std::fs::write(&f, slogate::model::yaml::to_string(&m).unwrap()).unwrap();
        checked += 1;
        if let Err(e) = Config::load_with_env(&f, Some(HashMap::new())) {
            failures.push(format!(
                "README.md:{}: this configuration does not load: {e}",
                b.start
            ));
        }
    }
    fail_if_any("configuration examples", &failures);
    assert!(
        checked >= 6,
        "only {checked} configuration examples found in README.md"
    );
}

#[test]
fn shell_words_split_like_sh() {
    let (w, c) = shell_words(r#"judge --a 'x y' "q\"z" b\ c  # exit 1: why"#).unwrap();
    assert_eq!(w, ["judge", "--a", "x y", "q\"z", "b c"]);
    assert_eq!(parse_exit(&c), Some(1));
    assert!(shell_words("rules x | head").is_err());
    assert!(shell_words("rules $DIR").is_err());
    let lines = logical_lines(&[
        (3, "slogate a \\".to_string()),
        (4, "  --b c".to_string()),
        (5, "slogate d".to_string()),
    ]);
    assert_eq!(
        lines,
        [
            (3, "slogate a --b c".to_string()),
            (5, "slogate d".to_string())
        ]
    );
}
