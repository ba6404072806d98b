//! Every YAML input is read within one budget (`slogate::model::yaml`): an alias bomb
//! ("billion laughs") and deep nesting are refused with exit 2, naming the file and the
//! limit, instead of being expanded or parsed in quadratic time. Through the binary:
//! `slogate validate`, `slogate rules` and `slogate run --once --config`.

use std::path::Path;
use std::process::{Command, Output};

fn slogate(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slogate"))
        .args(args)
        .arg(file)
        .env_remove("SLOGATE_LOG")
        .output()
        .expect("run slogate")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Nine levels of ten aliases under `key`: 10^9 nodes once expanded, in a few hundred bytes.
fn bomb(indent: &str) -> String {
    let mut out =
        format!("{indent}a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 10].join(",");
        out.push_str(&format!("{indent}{name}: &{name} [{refs}]\n"));
    }
    out
}

fn assert_refused(o: &Output, file: &str, limit: &str) {
    let all = text(o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(all.contains(file), "{all}");
    assert!(all.contains(limit), "{all}");
}

const ALIAS_LIMIT: &str = "alias expansion limit";

#[test]
fn an_alias_bomb_spec_is_refused_by_validate_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bomb-spec.yml");
    std::fs::write(
        &spec,
        format!(
            "version: prometheus/v1\nservice: s\nlabels:\n{}slos: []\n",
            bomb("  ")
        ),
    )
    .unwrap();
    let o = slogate(&["validate"], &spec);
    assert_refused(&o, "bomb-spec.yml", ALIAS_LIMIT);
    // Diagnostics keep naming the document.
    assert!(text(&o).contains("bomb-spec.yml[doc 0]"), "{}", text(&o));
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_slogate"))
        .arg("rules")
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .env_remove("SLOGATE_LOG")
        .output()
        .expect("run slogate");
    assert_refused(&o, "bomb-spec.yml", ALIAS_LIMIT);
}

#[test]
fn an_alias_bomb_rollout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bomb-rollout.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: slogate.dev/v1alpha1\nkind: Rollout\nmetadata:\n  name: x\n  labels:\n{}",
            bomb("    ")
        ),
    )
    .unwrap();
    let o = slogate(&["validate"], &file);
    assert_refused(&o, "bomb-rollout.yaml", ALIAS_LIMIT);
    // The daemon's file source reads Rollouts with the same loader.
    let report = slogate::rollout::load::load_paths(std::slice::from_ref(&file));
    let errors = format!("{:?}", report.errors);
    assert!(
        errors.contains("bomb-rollout.yaml") && errors.contains(ALIAS_LIMIT),
        "{errors}"
    );
}

#[test]
fn an_alias_bomb_config_is_refused_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bomb-config.yaml");
    std::fs::write(
        &config,
        format!(
            "prometheus:\n  url: http://127.0.0.1:9\n  x:\n{}",
            bomb("    ")
        ),
    )
    .unwrap();
    let o = slogate(&["run", "--once", "--config"], &config);
    assert_refused(&o, "bomb-config.yaml", ALIAS_LIMIT);
}

#[test]
fn a_400_kb_deeply_nested_spec_is_refused_naming_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        // Flow style: 200,000 levels in 400 KB.
        (
            "deep-flow.yml",
            format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)),
        ),
        // Block style: as deep as 400 KB allows (about 900 levels).
        (
            "deep-block.yml",
            (0..900)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect::<String>(),
        ),
    ] {
        let spec = dir.path().join(name);
        let doc = format!("version: prometheus/v1\nservice: s\nlabels:\n  x: {body}\nslos: []\n");
        let doc = if name == "deep-block.yml" {
            format!("version: prometheus/v1\nservice: s\nslos: []\nlabels:\n{body}")
        } else {
            doc
        };
        assert!(doc.len() > 390_000, "{name}: {} bytes", doc.len());
        std::fs::write(&spec, &doc).unwrap();
        let o = slogate(&["validate"], &spec);
        assert_refused(&o, name, "depth limit");
    }
}

#[test]
fn neither_serde_yaml_nor_yaml_rust2_is_built() {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("Cargo.lock");
    for name in ["serde_yaml", "yaml-rust2", "yaml-rust", "unsafe-libyaml"] {
        assert!(
            !lock.contains(&format!("name = \"{name}\"\n")),
            "{name} is still in Cargo.lock"
        );
    }
    assert!(lock.contains("name = \"serde-saphyr\"\n"));
}
