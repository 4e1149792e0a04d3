//! Fuzzes the kustomization parser and a small in-memory build.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    ferroflux_kustomize::fuzz_api::parse_kustomization(text);
    // first part: kustomization, rest: patch file
    let (k, p) = text.split_once("\n===\n").unwrap_or((text, ""));
    ferroflux_kustomize::fuzz_api::build_mem(k, p);
});
