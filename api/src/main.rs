//! The `sendan` binary: server and operator CLI.

fn main() -> std::process::ExitCode {
    sendan_api::cli::main()
}
