//! Sendan's pure domain: the event envelope and catalogue, the node lifecycle, the fleet projection, the
//! hash chain and the stored record format. No I/O, no clock, no randomness: time and ids arrive in the
//! input, so every replica computes the same log from the same proposals.

pub mod bounds;
pub mod chain;
pub mod enrollment;
pub mod event;
pub mod facts;
pub mod fleet;
pub mod ids;
pub mod install;
pub mod lifecycle;
pub mod log;
pub mod netboot;
pub mod record;
pub mod rejection;
pub mod rollout;
pub mod spec;
pub mod wire;

pub use event::{Event, EventKind, Payload, Proposal};
pub use fleet::{FleetState, check, evolve};
pub use ids::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};
pub use lifecycle::NodeState;
pub use rejection::Rejection;
