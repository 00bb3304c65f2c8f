//! Sendan's pure domain: the event envelope and catalogue, one module per aggregate — the node lifecycle
//! (`nodes`), machines and bootstrap (`machines`), the live cluster spec (`specs`), per-node NixOS systems
//! (`systems`), pool rollouts (`rollouts`), native services with their node agents (`services`) and BMC power
//! requests (`power`) — and
//! `fleet`, which only composes them. No I/O, no clock, no
//! randomness: time and ids arrive in the input, so every replica computes the same log from the same proposals.
//!
//! Below the aggregates, and naming none of them: identifiers (`ids`), the catalogue of kinds (`kind`), who may
//! emit what (`emitters`), the lifecycle table (`lifecycle`), NixOS vocabulary (`nixos`), hardware facts, the
//! declaration model (`spec`), caps (`bounds`), rejections, and `read` — the one interface through which an
//! aggregate reads another. Above them: `event` (the payload of every kind), `fleet`, `log`, `record`, `chain`,
//! `upgrade` and `wire`.

/// The catalogue: every event kind with its frozen numeric code, handed to `$m`. Codes are what storage records,
/// so kinds may be added anywhere but a code is never reused or renumbered.
macro_rules! with_catalogue {
    ($m:ident) => {
        $m! {
            // Node lifecycle (nodes/events.rs, and machines/events.rs for MachineDiscovered): 1–13.
            1 => MachineDiscovered,
            2 => NodeCommissioned,
            3 => NodeInstallRequested,
            4 => NodeInstallStarted,
            5 => NodeInstallFailed,
            6 => NodeActivated,
            7 => NodeDrainRequested,
            8 => NodeUncordoned,
            9 => NodeReprovisionRequested,
            10 => NodeRescueRequested,
            11 => NodeFailed,
            12 => NodeRetired,
            13 => NodeRebound,
            // Cluster spec (specs/events.rs).
            14 => SpecApplied,
            // Node access (nodes/events.rs).
            15 => NodeTokenIssued,
            // Cordons and drains (nodes/events.rs).
            16 => NodeCordoned,
            17 => NodeDrainStarted,
            18 => NodeDrained,
            // Machines and bootstrap (machines/events.rs): 20–39.
            20 => BootstrapTokenIssued,
            21 => BootstrapTokenClaimed,
            22 => BootstrapTokenExchanged,
            23 => InstallProgressed,
            24 => InstallPlanRefused,
            25 => EnrollmentConflicted,
            26 => EnrollmentRefused,
            27 => MachinePhonedHome,
            // Node systems (systems/events.rs) and pool rollouts (rollouts/events.rs): 40–59.
            40 => NodeSystemSet,
            41 => NodePinned,
            42 => NodeUnpinned,
            43 => RolloutStarted,
            44 => RolloutWaveStarted,
            45 => RolloutCompleted,
            46 => RolloutHalted,
            47 => RolloutNodesReverted,
            48 => RolloutReverted,
            49 => SystemReported,
            50 => SystemPrefetched,
            51 => SystemPrefetchFailed,
            52 => SystemActivating,
            53 => SystemProfileSet,
            54 => SystemSwitched,
            55 => SystemHealthFailed,
            56 => SystemConfirmed,
            57 => SystemRolledBack,
            58 => RolloutMemberLeft,
            59 => RolloutDrainsMembers,
            // Services and node agents (services/events.rs): 60–79.
            60 => InstancePlaced,
            61 => InstanceRescheduled,
            62 => InstanceStopRequested,
            63 => InstanceStarted,
            64 => InstanceHealthy,
            65 => InstanceUnhealthy,
            66 => InstanceExited,
            67 => InstanceStopped,
            68 => NodeAgentStarted,
            69 => NodeAgentLost,
            70 => NodeAgentReturned,
            71 => InstanceMigrated,
            // Service deployments (services/events.rs).
            72 => DeploymentStarted,
            73 => InstanceUpdated,
            74 => DeploymentPromoted,
            75 => DeploymentEnded,
            // Power (power/events.rs): 80–89.
            80 => PowerRequested,
            81 => PowerCompleted,
            82 => PowerObserved,
        }
    };
}

/// `EventData` for a payload about one node (its `node` field), emitted by `$emitters`.
macro_rules! about_node {
    ($name:ident, $emitters:expr) => {
        impl $crate::emitters::EventData for $name {
            const EMITTERS: $crate::emitters::Emitters = $emitters;
            fn node(&self) -> Option<&$crate::ids::NodeId> {
                Some(&self.node)
            }
        }
    };
}

// Below the aggregates.
pub mod bounds;
pub mod emitters;
pub mod facts;
pub mod ids;
pub mod kind;
pub mod lifecycle;
pub mod nixos;
pub mod read;
pub mod rejection;
pub mod spec;

// The aggregates: each a folder with its events, state, rules (`check`), fold (`evolve`), planner and views.
pub mod machines;
pub mod nodes;
pub mod power;
pub mod rollouts;
pub mod services;
pub mod specs;
pub mod systems;

// Above them.
pub mod chain;
pub mod event;
pub mod fleet;
pub mod log;
pub mod record;
pub mod upgrade;
pub mod wire;

pub use event::{Event, Payload, Proposal};
pub use fleet::{FleetState, check, evolve};
pub use ids::{Actor, EventId, Hash, InstanceId, MachineId, NodeId, Timestamp};
pub use kind::EventKind;
pub use lifecycle::NodeState;
pub use rejection::Rejection;
