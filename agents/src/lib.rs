//! Node-side programs of Sendan.
