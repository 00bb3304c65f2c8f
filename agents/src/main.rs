//! The `sendan-agent` binary.
fn main() {}
