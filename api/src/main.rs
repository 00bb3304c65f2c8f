//! The `sendan` binary: server and operator CLI.
fn main() {}
