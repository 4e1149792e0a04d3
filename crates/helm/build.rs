//! Links the `ferroflux-helm` CLI as a position-dependent executable: the dynamic loader then
//! has no relative relocations to apply to it at every start (a visible share of a
//! millisecond-scale `template` run). The library is unaffected.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bin=ferroflux-helm=-no-pie");
    }
}
