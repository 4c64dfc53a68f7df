//! The `nezuko` binary: everything lives in the library; see `nezuko --help`.

/// mimalloc instead of glibc's allocator: the service allocates small, short-lived buffers for
/// every update on many threads, where glibc's arenas spent a quarter of the CPU (malloc,
/// free, consolidation) in `nezuko bench verify` and kept freed memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    nezuko::cli::main()
}
