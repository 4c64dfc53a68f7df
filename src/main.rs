//! The `nezuko` binary: everything lives in the library; see `nezuko --help`.

/// mimalloc instead of glibc's allocator: the service allocates small, short-lived buffers for
/// every update on many threads, where glibc's arenas spent a quarter of the CPU (malloc,
/// free, consolidation) in `nezuko bench verify`. Built with `no_thp`: with transparent huge pages
/// its arenas made 1,000 idle bots 211 MB resident instead of 145 MB (`nezuko bench fleet`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    nezuko::cli::main()
}
