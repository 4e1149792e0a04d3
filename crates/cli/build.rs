//! Links the `ferroflux` binary as a position-dependent executable: the dynamic loader then has
//! no relative relocations to apply to its 30 MB at every start, a visible share of a
//! millisecond-scale `helm template` or `kustomize build`. Left to rustc for a static
//! (crt-static) build, where `-no-pie` on top of a static-pie link crashes at start.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if os == "linux" && !features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bin=ferroflux=-no-pie");
    }
}
