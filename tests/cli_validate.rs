//! `slogate validate`, run as the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/specs")
        .join(path)
}

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slogate"))
        .arg("validate")
        .args(args)
        .env_remove("SLOGATE_LOG")
        .output()
        .expect("run slogate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 fixture path")
}

#[test]
fn good_files_exit_0_with_a_summary() {
    let sloth = fixture("sloth/getting-started.yml");
    let k8s = fixture("sloth/k8s-home-wifi.yml");
    let openslo = fixture("openslo-v1");
    let out = validate(&[path_arg(&sloth), path_arg(&k8s), path_arg(&openslo)]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert_eq!(stdout, "7 SLOs in 5 files OK\n");
}

#[test]
fn warnings_are_printed_but_do_not_fail() {
    let f = fixture("warn/low-objective.yml");
    let out = validate(&[path_arg(&f)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let prefix = format!("{}[doc 0]: ", f.display());
    assert!(
        lines[0].starts_with(&format!("{prefix}slos[0].descripton: warning: ")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("{prefix}slos[0].objective: warning: ")),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("14.4×"));
    assert_eq!(lines[2], "1 SLO in 1 file OK (2 warnings)");
}

#[test]
fn errors_exit_2_and_name_file_document_and_field() {
    let dir = fixture("bad");
    let out = validate(&[path_arg(&dir)]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let sloth = fixture("bad/sloth-errors.yml");
    let kind = fixture("bad/unknown-kind.yml");
    let dangling = fixture("bad/dangling-ref.yml");
    let expected_prefixes = [
        format!("{}[doc 0]: spec.indicatorRef: error: ", dangling.display()),
        format!("{}[doc 0]: labels.__name__: error: ", sloth.display()),
        format!("{}[doc 0]: slos[0].objective: error: ", sloth.display()),
        format!(
            "{}[doc 0]: slos[0].sli.events.error_query: error: ",
            sloth.display()
        ),
        format!(
            "{}[doc 0]: slos[1].sli.events.total_query: error: ",
            sloth.display()
        ),
        format!("{}[doc 0]: slos[1].alerting.name: error: ", sloth.display()),
        format!("{}[doc 1]: kind: error: ", kind.display()),
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), expected_prefixes.len(), "{stdout}");
    for (line, prefix) in lines.iter().zip(&expected_prefixes) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{line}\nexpected prefix {prefix}"
        );
    }
    assert!(lines[2].contains("expected a percentage in (0, 100]"));
    assert!(
        lines[3].contains("not a valid PromQL expression"),
        "{}",
        lines[3]
    );
    assert!(lines[5].contains("needs a name"), "{}", lines[5]);
    assert!(lines[6].contains("\"ServiceLevelThing\""));
    assert!(stderr.contains("7 errors in 3 files"), "{stderr}");
}

#[test]
fn json_output_is_an_array_of_diagnostics() {
    let bad = fixture("bad/sloth-errors.yml");
    let warn = fixture("warn/low-objective.yml");
    let out = validate(&["-o", "json", path_arg(&bad), path_arg(&warn)]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let items = v.as_array().expect("a JSON array");
    assert_eq!(items.len(), 7, "{v:#}");
    let first = &items[0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["file"], path_arg(&bad));
    assert_eq!(first["doc_index"], 0);
    assert_eq!(first["field"], "labels.__name__");
    assert!(first["message"].as_str().unwrap().contains("__name__"));
    let warnings = items.iter().filter(|i| i["severity"] == "warning").count();
    assert_eq!(warnings, 2);

    // Success: stdout stays pure JSON (an empty array); the summary goes to stderr.
    let good = fixture("sloth/no-alerts.yml");
    let out = validate(&["--output", "json", path_arg(&good)]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v, serde_json::json!([]));
    assert!(text(&out.stderr).contains("1 SLO in 1 file OK"));
}

#[test]
fn duplicate_ids_across_files_fail() {
    let a = fixture("sloth/getting-started.yml");
    let b = fixture("sloth/k8s-getting-started.yml");
    let out = validate(&[path_arg(&a), path_arg(&b)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{}[doc 0]: spec.slos[0].name: error: duplicate SLO id",
            b.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("already defined in {}[doc 0]", a.display())));
}

#[test]
fn missing_and_unreadable_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yml");
    let garbage = dir.path().join("garbage.yml");
    std::fs::write(&garbage, [0u8, 159, 146, 150, 10, 255]).unwrap();
    let out = validate(&[path_arg(&missing), path_arg(&garbage)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(&format!("{}: error: cannot read", missing.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: error: not a UTF-8", garbage.display())),
        "{stdout}"
    );
}

#[test]
fn files_are_required() {
    let out = validate(&[]);
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
    assert!(text(&out.stderr).contains("FILES"), "{}", text(&out.stderr));
}

#[test]
fn directories_are_searched_recursively_and_empty_input_fails() {
    // Specs only in subdirectories are found, as Sloth finds them.
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("team-a/checkout");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(
        fixture("sloth/getting-started.yml"),
        nested.join("slos.YAML"),
    )
    .unwrap();
    let out = validate(&[path_arg(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 SLO in 1 file OK"),
        "{}",
        text(&out.stdout)
    );
    let rules = Command::new(env!("CARGO_BIN_EXE_slogate"))
        .args(["rules", path_arg(dir.path())])
        .output()
        .unwrap();
    assert_eq!(rules.status.code(), Some(0), "{}", text(&rules.stderr));
    assert!(
        text(&rules.stdout).contains("sloth-slo-sli-recordings-myservice-requests-availability")
    );

    // No spec file anywhere: exit 2 (Sloth: "0 slo specs have been discovered").
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("sub")).unwrap();
    let out = validate(&[path_arg(empty.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no .yml or .yaml files found"),
        "{}",
        text(&out.stderr)
    );

    // An empty file fails both commands, naming the file.
    let file = empty.path().join("sub/empty.yml");
    std::fs::write(&file, "# nothing yet\n").unwrap();
    let out = validate(&[path_arg(&file)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("empty.yml: error: the file has only empty YAML documents")
            || text(&out.stdout).contains("empty.yml: error: the file is empty"),
        "{}",
        text(&out.stdout)
    );
    let rules = Command::new(env!("CARGO_BIN_EXE_slogate"))
        .args(["rules", path_arg(&file)])
        .output()
        .unwrap();
    assert_eq!(rules.status.code(), Some(2));
    assert!(
        text(&rules.stderr).contains("empty.yml"),
        "{}",
        text(&rules.stderr)
    );
}

/// Size caps: an SLO spec over 16 MiB, a Rollout over 1 MiB and a daemon configuration over
/// 1 MiB are refused with exit 2, naming the file and the limit, before they are parsed; a
/// configuration whose YAML aliases expand without bound ("billion laughs") is refused too.
#[test]
fn oversized_files_and_alias_bombs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Comments only: valid YAML, so only the cap can refuse it.
    let big = |path: &Path, bytes: usize| {
        let line = format!("# {}\n", "x".repeat(97));
        std::fs::write(path, line.repeat(bytes / line.len() + 1)).unwrap();
    };
    let spec = tmp.path().join("huge-spec.yml");
    big(&spec, 16 << 20);
    let o = validate(&[path_arg(&spec)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stdout) + &text(&o.stderr);
    assert!(
        err.contains("huge-spec.yml") && err.contains("limited to 16 MiB"),
        "{err}"
    );

    // Rollout files as the daemon's `rollouts.source: files` reads them.
    let rollout = tmp.path().join("huge-rollout.yml");
    big(&rollout, 1 << 20);
    let report = slogate::rollout::load::load_paths(std::slice::from_ref(&rollout));
    let err = format!("{:?}", report.errors);
    assert!(
        err.contains("huge-rollout.yml") && err.contains("limited to 1 MiB"),
        "{err}"
    );

    let run = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_slogate"))
            .args(["run", "--once", "--config"])
            .arg(config)
            .env_remove("SLOGATE_LOG")
            .output()
            .expect("run slogate")
    };
    let config = tmp.path().join("huge.yaml");
    big(&config, 1 << 20);
    let o = run(&config);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("huge.yaml") && err.contains("limited to 1 MiB"),
        "{err}"
    );

    // Nine levels of ten aliases: 10^9 nodes once expanded, in a few hundred bytes.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 10].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let config = tmp.path().join("bomb.yaml");
    std::fs::write(&config, bomb).unwrap();
    let o = run(&config);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("bomb.yaml") && err.contains("not valid YAML"),
        "{err}"
    );
}

/// Found by the `spec` fuzz target (`tests/fixtures/fuzz/`): a number in a duration's place
/// that no duration holds made promql-parser panic, and `slogate validate` with it. Now the
/// query is an error that names the number, with exit 2, and nothing panics.
#[test]
fn a_number_too_long_for_a_duration_is_an_error_not_a_crash() {
    let out = validate(&[path_arg(&fixture("../fuzz/spec-duration-number.yml"))]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stdout.contains("total_query") && stdout.contains("not a valid PromQL expression"),
        "{stdout}"
    );
}
