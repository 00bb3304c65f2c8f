//! Node-side programs of Sendan.

pub mod facts;
