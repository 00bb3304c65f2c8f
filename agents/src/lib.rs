//! Node-side programs of Sendan.

pub mod client;
pub mod facts;
