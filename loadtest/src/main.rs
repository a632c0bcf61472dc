//! `herald-loadtest`: see the crate docs (lib.rs) and loadtest/README.md.

fn main() {
    if let Err(e) = herald_loadtest::cli::main() {
        // The message alone: it says what to do; a backtrace would bury it.
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
