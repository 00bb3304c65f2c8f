//! Sendan's HTTP API server and operator CLI: the `sendan` binary's library.
//!
//! `app` starts a member (a Raft node behind an axum router); `routes` are thin handlers; `write` is the
//! write path; `client` is the HTTP client the CLI, the benchmark and the tests use.

pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod config;
pub mod controller;
pub mod error;
pub mod extract;
pub mod guard;
pub mod liveness;
pub mod metrics;
pub mod openapi;
pub mod power;
pub mod routes;
pub mod serve;
pub mod tls;
pub mod write;
