//! Sendan's HTTP API server and operator CLI.
