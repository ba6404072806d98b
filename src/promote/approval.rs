//! Approvals of one exact change.
//!
//! A change is (repository, target overlay, image name, new tag or digest). Its key is the
//! SHA-256 of a canonical, versioned text of those four, so an approval for `v2` never
//! counts for `v3`, for another overlay, or for another repository. The approval is the
//! state document `promote-approval/<key>` (the actor, the time and an optional comment),
//! and every approval is also written to the decision log as an `Operator` record.
//!
//! The repository is compared in a normal form: without credentials in the URL, a trailing
//! `/` or a trailing `.git`. The target path is the overlay directory, relative, without
//! `./`, a trailing `/` or a `kustomization.yaml` file name.

use std::path::{Component, Path};

use chrono::{DateTime, Utc};

use super::image::{self, ImageRef};

pub use crate::model::approval::{Approval, ApprovalRequest, Change, PREFIX};

impl Change {
    /// Build a change from user input, normalising the repository and the target.
    pub fn new(repo: &str, target: &str, image: &str, to: ImageRef) -> Result<Self, String> {
        Ok(Change {
            repo: normalize_repo(repo)?,
            target: normalize_target(target).map_err(|e| format!("target {e}"))?,
            image: image.to_string(),
            to,
        })
    }

    /// The text that is hashed. Versioned, one field per line, so no two changes share it.
    pub fn canonical(&self) -> String {
        let (kind, value) = match &self.to {
            ImageRef::Tag(t) => ("tag", t),
            ImageRef::Digest(d) => ("digest", d),
        };
        format!(
            "slogate-promote-approval/v1\nrepo={}\ntarget={}\nimage={}\n{kind}={value}\n",
            self.repo, self.target, self.image
        )
    }

    /// The approval key: the SHA-256 of [`Change::canonical`], as 64 lowercase hex digits.
    ///
    /// It must be collision resistant: with a weak hash, someone allowed to run `promote`
    /// could craft a change whose key equals an approved one and pass the gate.
    pub fn key(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.canonical().as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The state-store key of this change's approval.
    pub fn state_key(&self) -> String {
        format!("{PREFIX}{}", self.key())
    }
}

/// True when `k` looks like an approval key.
pub fn valid_key(k: &str) -> bool {
    k.len() == 64 && k.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Approval {
    pub fn new(change: &Change, actor: &str, comment: Option<&str>, at: DateTime<Utc>) -> Self {
        let (tag, digest) = match &change.to {
            ImageRef::Tag(t) => (Some(t.clone()), None),
            ImageRef::Digest(d) => (None, Some(d.clone())),
        };
        Approval {
            key: change.key(),
            repo: change.repo.clone(),
            target: change.target.clone(),
            image: change.image.clone(),
            tag,
            digest,
            actor: actor.to_string(),
            at,
            comment: comment.map(str::to_string),
        }
    }
}

impl ApprovalRequest {
    /// Check every field; errors name the field and say what was expected.
    pub fn change(&self) -> Result<Change, String> {
        let spec = image::parse(&self.image).map_err(|e| format!("image: {e}"))?;
        let Some(to) = spec.to else {
            return Err(format!(
                "image: `{}` has no tag or digest: expected NAME=TAG or NAME@DIGEST (an \
                 approval is for one exact version)",
                self.image
            ));
        };
        check_actor(&self.actor)?;
        if let Some(c) = &self.comment {
            if c.len() > 1000 {
                return Err("comment: expected at most 1000 bytes".into());
            }
        }
        Change::new(&self.repo, &self.target, &spec.name, to)
    }
}

/// An actor: a user or bot name, one line, at most 200 bytes.
pub fn check_actor(actor: &str) -> Result<(), String> {
    if actor.trim().is_empty() {
        return Err("actor: expected who approves (a user or bot name), found nothing".into());
    }
    if actor.len() > 200 || actor.chars().any(char::is_control) {
        return Err("actor: expected one line of at most 200 bytes".into());
    }
    Ok(())
}

/// The repository URL in a normal form (see the module doc).
pub fn normalize_repo(repo: &str) -> Result<String, String> {
    let r = repo.trim();
    if r.is_empty() {
        return Err("repo: expected the GitOps repository URL, found nothing".into());
    }
    let mut r = crate::adapters::git::redact_url_userinfo(r);
    if let Ok(mut u) = url::Url::parse(&r) {
        if u.scheme().len() > 1 && (!u.username().is_empty() || u.password().is_some()) {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            r = u.to_string();
        }
    }
    let mut r = r.trim_end_matches('/').to_string();
    if let Some(s) = r.strip_suffix(".git") {
        r = s.trim_end_matches('/').to_string();
    }
    Ok(r)
}

/// The kustomization file names kustomize looks for, in its order.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// An overlay directory relative to the repository root, in a normal form.
pub fn normalize_target(path: &str) -> Result<String, String> {
    let p = path.trim();
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "`{path}`: expected a directory relative to the repository root, without `..`"
                ))
            }
        }
    }
    if parts
        .last()
        .is_some_and(|l| KUSTOMIZATION_FILES.contains(&l.as_str()))
    {
        parts.pop();
    }
    if parts.is_empty() {
        return Err(format!(
            "`{path}`: expected an overlay directory such as overlays/prod, not the repository root"
        ));
    }
    if parts.first().is_some_and(|f| f == ".git") {
        return Err(format!("`{path}`: expected an overlay directory, not .git"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(repo: &str, target: &str, tag: &str) -> Change {
        Change::new(
            repo,
            target,
            "registry.local/checkout",
            ImageRef::Tag(tag.into()),
        )
        .unwrap()
    }

    /// The key is the SHA-256 of the canonical text (expected value from `sha256sum`), so
    /// approvals stored by earlier versions keep their keys.
    #[test]
    fn the_key_is_the_sha256_of_the_canonical_text() {
        let c = Change::new(
            "https://git.example.com/acme/gitops.git",
            "./overlays/prod/",
            "checkout",
            ImageRef::Tag("v2".into()),
        )
        .unwrap();
        assert_eq!(
            c.canonical(),
            "slogate-promote-approval/v1\nrepo=https://git.example.com/acme/gitops\n\
             target=overlays/prod\nimage=checkout\ntag=v2\n"
        );
        assert_eq!(
            c.key(),
            "b0547e5235f17a8f3f8e94c7b0e227ab4e043165a3dac92974a5a6f809015d3f"
        );
    }

    #[test]
    fn the_key_names_one_exact_change() {
        let a = change(
            "https://git.example.com/shop/gitops.git",
            "overlays/prod",
            "v2",
        );
        assert!(valid_key(&a.key()));
        assert_eq!(a.state_key(), format!("promote-approval/{}", a.key()));
        // Spellings of the same repository and overlay give the same key.
        for (repo, target) in [
            ("https://git.example.com/shop/gitops", "./overlays/prod/"),
            (
                "https://git.example.com/shop/gitops/",
                "overlays/prod/kustomization.yaml",
            ),
            (
                "https://bot:secret@git.example.com/shop/gitops.git",
                "overlays//prod",
            ),
        ] {
            assert_eq!(change(repo, target, "v2").key(), a.key(), "{repo} {target}");
        }
        // Anything else differs.
        assert_ne!(
            change("https://git.example.com/shop/gitops", "overlays/prod", "v3").key(),
            a.key()
        );
        assert_ne!(
            change("https://git.example.com/shop/other", "overlays/prod", "v2").key(),
            a.key()
        );
        assert_ne!(
            change(
                "https://git.example.com/shop/gitops",
                "overlays/staging",
                "v2"
            )
            .key(),
            a.key()
        );
        let other_image = Change::new(
            "https://git.example.com/shop/gitops",
            "overlays/prod",
            "registry.local/cart",
            ImageRef::Tag("v2".into()),
        )
        .unwrap();
        assert_ne!(other_image.key(), a.key());
        let digest = Change::new(
            "https://git.example.com/shop/gitops",
            "overlays/prod",
            "registry.local/checkout",
            ImageRef::Digest("v2".into()),
        )
        .unwrap();
        assert_ne!(
            digest.key(),
            a.key(),
            "a tag and a digest with the same text differ"
        );
        assert!(!change("x", "o", "v1").canonical().contains("secret"));
    }

    #[test]
    fn targets_and_requests_are_checked() {
        assert!(normalize_target("../prod").is_err());
        assert!(normalize_target("/abs/prod").is_err());
        assert!(normalize_target(".").is_err());
        assert!(normalize_target("kustomization.yaml").is_err());
        assert_eq!(
            normalize_target("apps/x/overlays/prod/Kustomization").unwrap(),
            "apps/x/overlays/prod"
        );
        let mut r = ApprovalRequest {
            repo: "/srv/git/gitops.git".into(),
            target: "overlays/prod".into(),
            image: "checkout".into(),
            actor: "alice".into(),
            comment: None,
        };
        assert!(r.change().unwrap_err().contains("one exact version"));
        r.image = "checkout=v2".into();
        assert_eq!(r.change().unwrap().repo, "/srv/git/gitops");
        r.actor = " ".into();
        assert!(r.change().unwrap_err().starts_with("actor:"));
        r.actor = "a\nb".into();
        assert!(r.change().unwrap_err().starts_with("actor:"));
    }
}
