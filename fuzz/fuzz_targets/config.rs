//! The daemon configuration through `Config::parse_in`, the function `Config::load` (and so
//! `slogate run --config`) calls on the file's text, as YAML and as TOML. The environment is
//! given empty, so no `SLOGATE_*` variable of the fuzzing process leaks in. Must not panic
//! on any input; a configuration that loads must describe itself (`backends_line`, the
//! guarded apps, the git adapter's settings, the server limits) without panicking.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use slogate::runtime::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `cluster: auto` resolves differently in a pod: let the input's length pick.
    let in_cluster = data.len() % 2 == 1;
    for file in ["slogate.yaml", "slogate.toml"] {
        match Config::parse_in(Path::new(file), text, Some(HashMap::new()), in_cluster) {
            Ok(cfg) => {
                let _ = cfg.backends_line();
                let _ = cfg.guarded_apps();
                let _ = cfg.repo_config();
                let _ = cfg.server.limits();
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
