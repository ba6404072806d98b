//! The promotion commit's edit: the canary's version becomes the stable workload's version
//! in the app's manifest, as a human would edit it (one line per occurrence, comments,
//! quotes and layout kept).
//!
//! Which file: `spec.gitops.path` itself when it names a YAML file, otherwise its
//! `kustomization.yaml` (a Kustomize overlay).
//!
//! What changes, on every line where the value is the *stable* version being replaced:
//! - a Kustomize `images:` entry's `newTag: <stable>`;
//! - an `image: <repository>:<stable>` of a container;
//! - the workloads' version label (`spec.workloads.versionLabel`, default `version`):
//!   `version: <stable>`.
//!
//! When nothing names the stable version but the file already names the canary version
//! (the promotion was pushed before a crash, or by someone else), the content is returned
//! unchanged, so the GitOps port reports "unchanged" rather than failing: the edit is
//! idempotent. When the stable version is unknown, a file with exactly one `newTag:` is
//! edited; anything else is an error that names the file and what was expected.

use regex::Regex;

/// The file a promotion edits, relative to the repository root.
pub fn manifest_file(gitops_path: &str) -> String {
    let p = gitops_path.trim_matches('/');
    if p.ends_with(".yaml") || p.ends_with(".yml") {
        p.to_string()
    } else {
        format!("{p}/kustomization.yaml")
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromotionEditError {
    #[error("no image tag or `{label}` label `{from}` to replace with `{to}`: expected an `images:` entry with `newTag: {from}`, an `image: <repository>:{from}` or a `{label}: {from}` line")]
    NotFound {
        from: String,
        to: String,
        label: String,
    },
    #[error("the stable version is unknown and the file has {count} `newTag:` entries: expected exactly one")]
    Ambiguous { count: usize },
    /// The label does not make a pattern: regex's error is the source.
    #[error("invalid version label `{label}`")]
    Label {
        label: String,
        #[source]
        source: regex::Error,
    },
}

/// Replace the stable version `from` with `to` (see the module docs).
pub fn promote_edit(
    content: &str,
    from: Option<&str>,
    to: &str,
    version_label: &str,
) -> Result<String, PromotionEditError> {
    let re = Regex::new(&format!(
        r#"^(?P<pre>\s*(?:-\s+)?(?P<key>newTag|image|{}):[ \t]*)(?P<q>["']?)(?P<val>[^"'#\s]+)(?P<q2>["']?)(?P<post>\s*(?:#.*)?)$"#,
        regex::escape(version_label)
    ))
    .map_err(|source| PromotionEditError::Label {
        label: version_label.to_string(),
        source,
    })?;
    let trailing_newline = content.ends_with('\n');
    let mut changed = 0usize;
    let mut already = false;
    let mut new_tags = 0usize;
    let mut lines: Vec<String> = Vec::new();
    for line in content.lines() {
        let Some(c) = re.captures(line) else {
            lines.push(line.to_string());
            continue;
        };
        let key = &c["key"];
        let val = &c["val"];
        // The version part of the value: the tag of an image reference, else the value.
        let (head, version) = if key == "image" {
            match val.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (format!("{repo}:"), tag),
                _ => {
                    lines.push(line.to_string());
                    continue;
                }
            }
        } else {
            (String::new(), val)
        };
        if key == "newTag" {
            new_tags += 1;
        }
        let replace = match from {
            Some(f) => version == f,
            None => key == "newTag",
        };
        if version == to && key != version_label {
            already = true;
        }
        if replace && version != to {
            changed += 1;
            lines.push(format!(
                "{}{}{head}{to}{}{}",
                &c["pre"], &c["q"], &c["q2"], &c["post"]
            ));
        } else {
            lines.push(line.to_string());
        }
    }
    if from.is_none() && new_tags != 1 && !already {
        return Err(PromotionEditError::Ambiguous { count: new_tags });
    }
    if changed == 0 && !already {
        return Err(PromotionEditError::NotFound {
            from: from.unwrap_or("?").to_string(),
            to: to.to_string(),
            label: version_label.to_string(),
        });
    }
    let mut out = lines.join("\n");
    if trailing_newline {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUST: &str = "# prod overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: example/checkout\n    newTag: v1 # set by CI\n  - name: example/checkout-canary\n    newTag: \"v2\"\n";

    #[test]
    fn kustomize_new_tag_is_replaced_and_the_rest_kept() {
        let out = promote_edit(KUST, Some("v1"), "v2", "version").unwrap();
        assert_eq!(
            out,
            KUST.replace("newTag: v1 # set by CI", "newTag: v2 # set by CI")
        );
        // Idempotent: a second edit changes nothing and is not an error.
        assert_eq!(
            promote_edit(&out, Some("v1"), "v2", "version").unwrap(),
            out
        );
    }

    #[test]
    fn images_and_labels_of_a_plain_manifest() {
        let m = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    metadata:\n      labels:\n        app: checkout\n        version: v1\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com:5000/checkout:v1\n";
        let out = promote_edit(m, Some("v1"), "v2", "version").unwrap();
        assert!(out.contains("        version: v2\n"), "{out}");
        assert!(
            out.contains("image: registry.example.com:5000/checkout:v2\n"),
            "{out}"
        );
        assert!(out.contains("apiVersion: apps/v1"));
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = promote_edit("kind: Kustomization\n", Some("v1"), "v2", "version").unwrap_err();
        assert!(e.to_string().contains("newTag: v1"), "{e}");
        let e = promote_edit(KUST, None, "v3", "version").unwrap_err();
        assert_eq!(e, PromotionEditError::Ambiguous { count: 2 });
        let one = "images:\n  - name: x\n    newTag: v1\n";
        assert_eq!(
            promote_edit(one, None, "v3", "version").unwrap(),
            "images:\n  - name: x\n    newTag: v3\n"
        );
    }

    #[test]
    fn manifest_file_of_a_path() {
        assert_eq!(
            manifest_file("apps/checkout/overlays/prod/"),
            "apps/checkout/overlays/prod/kustomization.yaml"
        );
        assert_eq!(
            manifest_file("apps/checkout/deploy.yaml"),
            "apps/checkout/deploy.yaml"
        );
    }
}
