//! Shared fixtures for Sendan's multi-node and end-to-end tests.
