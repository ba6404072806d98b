//! Go-built test tools (kube-apiserver, Sloth, kustomize, …) that `./scripts/test` builds and
//! caches under the cargo target directory's `tools/` folder (`tools/bin/NAME`, CRDs under
//! `tools/crds/`). `scripts/test` exports that folder as `SLOGATE_TOOLS`; without it the
//! default `target/tools` next to the manifest is used.
//!
//! Like `require_bin`, a missing tool FAILS the test unless `SLOGATE_E2E=0` is set explicitly.

use std::path::PathBuf;

/// The tools folder: `$SLOGATE_TOOLS`, else `$CARGO_TARGET_DIR/tools`, else `target/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLOGATE_TOOLS") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("tools")
}

/// `tools/bin/NAME`, or `None` when it is missing and `SLOGATE_E2E=0`; panics otherwise.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let path = tools_dir().join("bin").join(name);
    if path.is_file() {
        return Some(path);
    }
    if !super::e2e_enabled() {
        eprintln!("SKIPPED: {} not found and SLOGATE_E2E=0", path.display());
        return None;
    }
    panic!(
        "{} not found. Run ./scripts/test, which builds the Go test tools into {}, or set \
         SLOGATE_E2E=0 to skip end-to-end tests explicitly",
        path.display(),
        tools_dir().display()
    )
}

/// `tools/bin/NAME` for Prometheus 3's `prometheus3` or `promtool3`, checked to report a 3.x
/// version (so a test named for Prometheus 3 cannot silently run another one).
pub fn require_prometheus3(name: &str) -> Option<PathBuf> {
    let path = require_tool(name)?;
    let out = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}", path.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("version 3."),
        "{} is not Prometheus 3 (`--version` says {text:?}); rebuild with scripts/install-tools --force",
        path.display()
    );
    Some(path)
}
