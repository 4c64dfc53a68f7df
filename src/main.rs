//! The `nezuko` binary: everything lives in the library; see `nezuko --help`.

fn main() -> std::process::ExitCode {
    nezuko::cli::main()
}
