//! Differential test of promote's kustomization edit against the real kustomize v5
//! (`tools/bin/kustomize`, built by `scripts/install-tools`).
//!
//! For every kustomization in `tests/fixtures/kustomize/real-world` (copied from public
//! repositories, see the README there) and `tests/fixtures/kustomize/cases`, and for each of
//! three edits (a new tag for the first listed image, a digest for it, and an image that is
//! not listed yet):
//!
//! - `kustomize edit set image` edits one copy, `slogate::promote::kustomize::set_image`
//!   (what `slogate promote` writes) another;
//! - both edited `images:` lists are rendered by `kustomize build` on the same Deployment
//!   (one container per image name): the rendered images must be equal;
//! - slogate's text keeps every comment line and every line outside the edited entry, in
//!   order, and the entries' order.
//!
//! Where slogate refuses an input that kustomize edits (flow-style `images: [...]`), or both
//! refuse it (invalid YAML), the test checks that too; `tests/fixtures/kustomize/README.md`
//! lists these documented differences and `README.md` (Promote) states the refusal.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use slogate::model::yaml::Value;
use slogate::promote::image::ImageRef;
use slogate::promote::kustomize::{self, ImageEdit};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize")
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    out.sort();
    out
}

const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const NEW_IMAGE: &str = "example.com/team/new-app";

/// The edits of the differential: (kustomize argument, slogate edit). `first` is the first
/// entry's name and `newName`. promote keeps an entry's `newName` when it sets a tag or a
/// digest, while kustomize's `NAME:TAG` form drops it, so the kustomize argument repeats the
/// `newName` (`NAME=NEWNAME:TAG`), as a user keeping it would write.
fn edits(first: Option<(&str, Option<&str>)>) -> Vec<(String, ImageEdit)> {
    let mut out = Vec::new();
    if let Some((name, new_name)) = first {
        let target = match new_name {
            Some(n) => format!("{name}={n}"),
            None => name.to_string(),
        };
        out.push((
            format!("{target}:v9.9.9"),
            ImageEdit {
                name: name.to_string(),
                new_name: None,
                to: Some(ImageRef::Tag("v9.9.9".into())),
            },
        ));
        out.push((
            format!("{target}@{DIGEST}"),
            ImageEdit {
                name: name.to_string(),
                new_name: None,
                to: Some(ImageRef::Digest(DIGEST.into())),
            },
        ));
    }
    out.push((
        format!("{NEW_IMAGE}:1.0.0"),
        ImageEdit {
            name: NEW_IMAGE.to_string(),
            new_name: None,
            to: Some(ImageRef::Tag("1.0.0".into())),
        },
    ));
    out
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The `images` list of a kustomization text, as YAML.
fn images_of(text: &str) -> Value {
    let doc: Value = slogate::model::yaml::from_str(text).expect("kustomization parses");
    doc.get("images").cloned().unwrap_or(Value::Null)
}

/// Render an `images` list with `kustomize build` on a Deployment with one container per
/// image name (plus `extra`): the container images, in container order.
fn rendered(kustomize: &Path, images: &Value, names: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let containers: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| serde_json::json!({"name": format!("c{i}"), "image": n}))
        .collect();
    let deploy = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {"template": {"spec": {"containers": containers}}},
    });
    std::fs::write(dir.path().join("deploy.yaml"), deploy.to_string()).unwrap();
    let k = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["deploy.yaml"],
        "images": serde_json::to_value(images).unwrap(),
    });
    std::fs::write(dir.path().join("kustomization.yaml"), k.to_string()).unwrap();
    let (ok, out) = run(Command::new(kustomize).arg("build").arg(dir.path()));
    assert!(ok, "kustomize build: {out}");
    let doc: Value = slogate::model::yaml::from_str(&out).unwrap();
    doc["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["image"].as_str().unwrap().to_string())
        .collect()
}

/// Lines of `before` that slogate must keep, in order: comments and every line that is not
/// part of an `images` entry touched by the edit.
fn kept_in_order(before: &str, after: &str, edited_name: &str) -> Result<(), String> {
    let mut touched = false;
    let mut rest = after.lines();
    for line in before.lines() {
        let t = line.trim_start();
        if t.starts_with("- ") || t == "-" {
            touched = t.contains(edited_name);
        } else if !line.starts_with(' ') && !line.starts_with('-') {
            touched = false;
        }
        if line.starts_with("images:") {
            // `images: []` loses its brackets when the first entry comes; its comment stays.
            let comment = line.find(" #").map(|i| &line[i..]).unwrap_or("");
            if !rest.any(|l| l.starts_with("images:") && l.ends_with(comment)) {
                return Err(format!("the `images:` line {line:?} lost its comment"));
            }
            continue;
        }
        let must_keep = t.starts_with('#') || !touched || t.starts_with("- ");
        if must_keep && !rest.any(|l| l == line) {
            return Err(format!("line {line:?} is gone or out of order"));
        }
    }
    Ok(())
}

fn names_in_order(images: &Value) -> Vec<String> {
    images
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn promote_edits_like_kustomize_edit_set_image() {
    let Some(kustomize) = common::tools::require_tool("kustomize") else {
        return;
    };
    let mut inputs = files("real-world");
    assert!(
        inputs.len() >= 10,
        "expected ≥10 real kustomizations: {inputs:?}"
    );
    inputs.extend(files("cases"));

    let mut compared = 0;
    for input in &inputs {
        let rel = input
            .strip_prefix(fixtures())
            .unwrap()
            .display()
            .to_string();
        let text = std::fs::read_to_string(input).unwrap();
        let parsed: Result<Value, _> = slogate::model::yaml::from_str(&text);
        let entry = parsed
            .as_ref()
            .ok()
            .and_then(|d| d.get("images"))
            .and_then(|i| i.get(0));
        let field = |k: &str| {
            entry
                .and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (first, first_new_name) = (field("name"), field("newName"));
        let first = first.as_deref().map(|n| (n, first_new_name.as_deref()));
        for (arg, edit) in edits(first) {
            let dir = tempfile::tempdir().unwrap();
            let kfile = dir.path().join("kustomization.yaml");
            std::fs::write(&kfile, &text).unwrap();
            let (k_ok, k_out) = run(Command::new(&kustomize)
                .current_dir(dir.path())
                .args(["edit", "set", "image", &arg]));
            let ours = kustomize::set_image(&rel, &text, &edit);

            let flow = text
                .lines()
                .any(|l| l.starts_with("images: [") && !l.starts_with("images: []"));
            if parsed.is_err() {
                // Invalid YAML: both refuse; slogate names the file.
                assert!(!k_ok, "{rel}: kustomize edited invalid YAML: {k_out}");
                let e = ours.expect_err("slogate refuses invalid YAML").to_string();
                assert!(e.contains(&rel) && e.contains("invalid YAML"), "{rel}: {e}");
                continue;
            }
            if flow {
                // Documented refusal: flow-style lists with entries.
                assert!(k_ok, "{rel} {arg}: kustomize: {k_out}");
                let e = ours
                    .expect_err("slogate refuses a flow-style images list")
                    .to_string();
                assert!(e.contains("flow-style list"), "{rel}: {e}");
                continue;
            }
            assert!(k_ok, "{rel} {arg}: kustomize edit failed: {k_out}");
            let ours = ours.unwrap_or_else(|e| panic!("{rel} {arg}: slogate: {e}"));
            let theirs = std::fs::read_to_string(&kfile).unwrap();

            let (ki, si) = (images_of(&theirs), images_of(&ours));
            let mut names = names_in_order(&ki);
            names.extend(names_in_order(&si));
            names.sort();
            names.dedup();
            assert_eq!(
                rendered(&kustomize, &ki, &names),
                rendered(&kustomize, &si, &names),
                "{rel} {arg}: rendered images differ\nkustomize:\n{theirs}\nslogate:\n{ours}"
            );
            // Entry order: the original entries in their order, a new one at the end.
            let before = names_in_order(&images_of(&text));
            let after = names_in_order(&si);
            assert_eq!(
                &after[..before.len()],
                &before[..],
                "{rel} {arg}: entry order"
            );
            kept_in_order(&text, &ours, &edit.name)
                .unwrap_or_else(|e| panic!("{rel} {arg}: {e}\n{ours}"));
            if rel == "cases/comments-and-digest.yaml" && arg.contains('@') {
                // The digest takes the tag's line: quoting and inline comment stay.
                let want = format!("    digest: \"{DIGEST}\"   # current prod version\n");
                assert!(ours.contains(&want), "{ours}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 30, "only {compared} edits compared");
}
