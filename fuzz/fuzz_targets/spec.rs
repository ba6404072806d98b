//! SLO specs, every format (Sloth `prometheus/v1`, Sloth's `PrometheusServiceLevel` CRD,
//! OpenSLO v1alpha and v1), through `slo::spec::parse_str`: the parse `slogate validate`,
//! `slogate rules` and the daemon's SLO store run on each file's text. Must not panic on
//! any input. A spec that loads without errors must also generate and render its rules
//! (what `slogate rules` does next) without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use slogate::slo::rules::{self, RuleOptions};
use slogate::slo::spec;

fuzz_target!(|data: &[u8]| {
    // Files are read as UTF-8 (`spec::read_capped` refuses anything else).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let report = spec::parse_str(Path::new("fuzz.yml"), text);
    for d in report.diagnostics() {
        let _ = d.to_string();
    }
    if report.is_ok() && !report.slos.is_empty() {
        let opts = RuleOptions {
            plugins: report.plugins.clone(),
            ..RuleOptions::default()
        };
        match rules::generate(&report.slos, &opts) {
            Ok(files) => {
                for f in files {
                    let _ = f.render();
                }
            }
            Err(errors) => {
                for e in errors {
                    let _ = e.to_string();
                }
            }
        }
    }
});
