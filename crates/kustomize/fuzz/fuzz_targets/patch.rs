//! Fuzzes the strategic-merge and JSON 6902 patch parsers and appliers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        ferroflux_kustomize::fuzz_api::parse_and_apply_patch(text);
    }
});
