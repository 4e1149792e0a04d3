//! The `ferroflux` binary; everything is in the library.

// `helm template` and `kustomize build` allocate many small strings and maps; mimalloc is
// markedly faster at that than the system allocator (as in `ferroflux-helm`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ferroflux_cli::main()
}
