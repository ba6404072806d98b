//! The kustomization editor of `slogate promote` (`promote::kustomize`) on arbitrary text:
//! `read_images`, `read_image` and `set_image`. Must not panic on any input.
//!
//! Edits are the ones promote can make: the image name is one listed in the file (with
//! `--copy-tag` promote takes it from the source overlay unchecked), a name not listed (a
//! listed one with a suffix, and a plain `--image` name), and the new tag or digest is a
//! valid one (promote checks it): fixed ones and those the file's own entries hold.
//!
//! Invariants of a successful edit: the edited text reads back (`read_image`) with the
//! image at the new tag or digest and the new name; and making the same edit again returns
//! the edited text byte for byte (the editor's promise for an entry that already says what
//! the edit asks for).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slogate::promote::image::{self, ImageRef};
use slogate::promote::kustomize::{self, ImageEdit};

const FILE: &str = "overlays/prod/kustomization.yaml";

fn check(text: &str, edit: &ImageEdit) {
    let Ok(out) = kustomize::set_image(FILE, text, edit) else {
        return;
    };
    let shown = || format!("{edit:?}\n--- before\n{text}\n--- after\n{out}");
    let entry = kustomize::read_image(FILE, &out, &edit.name)
        .unwrap_or_else(|e| panic!("the edited text does not read back: {e}\n{}", shown()));
    assert_eq!(entry.current(), edit.to, "not at the new tag: {}", shown());
    if let Some(n) = &edit.new_name {
        assert_eq!(entry.new_name.as_ref(), Some(n), "not the new name: {}", shown());
    }
    match kustomize::set_image(FILE, &out, edit) {
        Ok(again) => assert_eq!(again, out, "the same edit again changed: {}", shown()),
        Err(e) => panic!("the same edit again failed: {e}\n{}", shown()),
    }
}

fuzz_target!(|data: &[u8]| {
    // Files are read from a git checkout as UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut names = vec!["registry.example.com/shop/checkout".to_string()];
    let mut refs = vec![
        ImageRef::Tag("v2.0.1".into()),
        ImageRef::Digest(format!("sha256:{}", "ab".repeat(32))),
    ];
    if let Ok(entries) = kustomize::read_images(FILE, text) {
        for e in entries.iter().take(3) {
            names.push(e.name.clone());
            names.push(format!("{}-fuzz", e.name));
            if let Some(r) = e.current() {
                if image::check_ref("fuzz", Some(&r)).is_ok() && !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
    }
    for name in &names {
        let _ = kustomize::read_image(FILE, text, name);
    }
    for (i, name) in names.iter().enumerate() {
        for (j, to) in refs.iter().enumerate() {
            let new_name =
                ((i + j) % 3 == 2).then(|| "registry.example.com/mirror/checkout".to_string());
            let edit = ImageEdit {
                name: name.clone(),
                new_name,
                to: Some(to.clone()),
            };
            check(text, &edit);
        }
    }
});
