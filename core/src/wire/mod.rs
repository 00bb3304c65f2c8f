//! The HTTP contract: every JSON body the API reads or answers, shared by the server, the CLI and the agents.
//!
//! These are the API's own types, not the core's state records: an answer about a node is a [`Node`] built
//! from the node's record, field by field, so the state can change shape (a new aggregate, a checkpoint
//! format) without changing what clients read, and a change to what clients read is a change in this folder.
//! State records implement no `JsonSchema`, so none can appear in the OpenAPI document
//! (`GET /v1/openapi.json`), which is generated from these types.
//!
//! **One casing rule:** every field Sendan's API defines is `snake_case`. The documents declared in Nix — the
//! ClusterSpec (`GET /v1/spec`'s `spec`, the body of `POST /v1/spec/plan`) and the install plan `nix/lib`
//! derives from it (a served plan's `plan`) — keep the attribute names they are written with (`camelCase`, like
//! NixOS options), and their paths in a spec diff are those names.
//!
//! - `events.rs`: submissions going in; events, receipts, pages and errors coming out.
//! - `nodes.rs`: nodes, machines, declared nodes, installs and node tokens.
//! - `systems.rs`: a node's NixOS system and rollouts.
//! - `services.rs`: services, instances, endpoints, the scheduler's dry run, a node agent's instances and
//!   heartbeats. A task (what an instance runs) is part of the service's Nix declaration and keeps its names.
//! - `cluster.rs`: the audit, cluster membership and applied specs.
//! - The bootstrap edge (`/v1/bootstrap/*`) answers with [`ServedPlan`], [`PhoneHomeView`] and [`Exchanged`],
//!   computed by `machines::install`.

mod cluster;
mod events;
mod nodes;
mod services;
mod systems;

pub use cluster::*;
pub use events::*;
pub use nodes::*;
pub use services::*;
pub use systems::*;

pub use crate::machines::enrollment::{DeclaredNode, Explanation};
pub use crate::machines::install::{Exchanged, PhoneHome, PhoneHomeView, ServedPlan, TokenExchange};
pub use crate::rollouts::view::{Counts, RolloutView, WaveView};
