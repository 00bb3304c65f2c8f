//! Node-side programs of Sendan.

pub mod checkin;
pub mod client;
pub mod facts;
pub mod install;
pub mod lldp;
pub mod nix;
pub mod node;
