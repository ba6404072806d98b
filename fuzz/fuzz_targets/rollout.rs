//! Rollout files through `rollout::load::parse_str` (what `slogate validate` and the file
//! Rollout source run on each file's text). Must not panic on any input.
//!
//! Invariant: a Rollout that loads without errors, written as JSON (how the API server
//! hands objects to `rollouts.source: kube`, and JSON is YAML) and loaded again, is the same
//! Rollout.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use slogate::rollout::load;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let report = load::parse_str(Path::new("fuzz.yaml"), text);
    for d in report.errors.iter().chain(&report.warnings) {
        let _ = d.to_string();
    }
    for loaded in &report.rollouts {
        let json = serde_json::to_string(&loaded.rollout).expect("a Rollout serialises");
        match load::from_yaml_str(&json) {
            Ok(again) => assert_eq!(
                again, loaded.rollout,
                "the Rollout changed through JSON: {json}"
            ),
            Err(e) => panic!("a valid Rollout written as JSON does not load again: {e}\n{json}"),
        }
    }
});
