//! CI fails when `crds/` differs from what the types generate.

#[test]
fn crds_directory_matches_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let stale = ferroflux_crdgen::stale_files(&dir).expect("read crds/");
    assert!(
        stale.is_empty(),
        "crds/ is stale ({}): run `cargo run -p ferroflux-crdgen` and commit the result",
        stale.join(", ")
    );
}
