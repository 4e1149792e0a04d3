//! Links the `ferroflux-helm` CLI as a position-dependent executable: the dynamic loader then
//! has no relative relocations to apply to it at every start (a visible share of a
//! millisecond-scale `template` run). The library is unaffected.
//!
//! A static build (`-C target-feature=+crt-static`, as `bench/corpus_bench.py` makes it) is
//! left to rustc: there `-C relocation-model=static` gives the non-PIE executable, and
//! `-no-pie` on top of a static-pie link would produce a binary that crashes at start.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if os == "linux" && !features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bin=ferroflux-helm=-no-pie");
    }
}
