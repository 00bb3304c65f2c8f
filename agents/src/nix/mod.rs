//! `sendan-agent nix`: keeps a node on its desired NixOS system. It follows the node's events, fetches the decided
//! closure (signatures checked), asks the control plane before touching anything, sets the profile, runs
//! `switch-to-configuration`, health-gates the result, gets the confirmation acknowledged in time — or re-activates
//! the system that ran before — and reports every step as an event. [`plan`] is the pure brain, [`host`] does
//! the work on the machine, [`agent`] runs the loop, [`state`] is what survives a restart.

pub mod agent;
pub mod config;
pub mod host;
pub mod plan;
pub mod state;

pub use agent::{AgentError, run};
pub use config::{Config, ConfigFile};
