//! `sendan-agent node`: runs the service instances the scheduler places on its node. It follows the node's
//! events, fetches each instance's package with the same trusted-key fetch as the nix-agent, runs it (a
//! transient systemd unit where systemd is PID 1, else a supervised process group) with its ports and
//! environment, health-checks it, restarts it by its restart policy, stops what the log no longer runs here, and
//! reports transitions only. It heartbeats the leader; heartbeats are not events. [`plan`] is the pure brain,
//! [`runner`] starts and stops processes, [`health`] probes them, [`agent`] runs the loop.

pub mod agent;
pub mod config;
pub mod health;
pub mod plan;
pub mod runner;

pub use agent::{NodeAgentError, run};
pub use config::{Config, ConfigFile};
