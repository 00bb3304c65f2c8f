//! The node lifecycle: ten states and the one table of legal moves between them. (A cordon is not a state: a
//! cordoned node is `active` and takes no new instances.)
//!
//! `discovered` is the state of a machine that no node is bound to yet; `NodeCommissioned` is the only
//! way out of it, and from there on the state belongs to the node id. `retired` is terminal.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kind::EventKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    Discovered,
    Commissioned,
    InstallPending,
    Installing,
    Active,
    Draining,
    Reprovisioning,
    Rescue,
    Failed,
    Retired,
}

impl NodeState {
    pub const ALL: [NodeState; 10] = [
        NodeState::Discovered,
        NodeState::Commissioned,
        NodeState::InstallPending,
        NodeState::Installing,
        NodeState::Active,
        NodeState::Draining,
        NodeState::Reprovisioning,
        NodeState::Rescue,
        NodeState::Failed,
        NodeState::Retired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NodeState::Discovered => "discovered",
            NodeState::Commissioned => "commissioned",
            NodeState::InstallPending => "install-pending",
            NodeState::Installing => "installing",
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Reprovisioning => "reprovisioning",
            NodeState::Rescue => "rescue",
            NodeState::Failed => "failed",
            NodeState::Retired => "retired",
        }
    }

    pub fn is_terminal(self) -> bool {
        self == NodeState::Retired
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the lifecycle table.
#[derive(Clone, Copy, Debug)]
pub struct Transition {
    pub event: EventKind,
    pub from: &'static [NodeState],
    pub to: NodeState,
}

use NodeState as S;

/// Every legal lifecycle move. Events not named here do not change a node's state.
pub const TRANSITIONS: &[Transition] = &[
    Transition { event: EventKind::NodeCommissioned, from: &[S::Discovered], to: S::Commissioned },
    Transition {
        event: EventKind::NodeInstallRequested,
        from: &[S::Commissioned, S::Reprovisioning],
        to: S::InstallPending,
    },
    Transition { event: EventKind::NodeInstallStarted, from: &[S::InstallPending], to: S::Installing },
    Transition { event: EventKind::NodeInstallFailed, from: &[S::InstallPending, S::Installing], to: S::Failed },
    Transition { event: EventKind::NodeActivated, from: &[S::Installing, S::Rescue], to: S::Active },
    Transition { event: EventKind::NodeDrainRequested, from: &[S::Active], to: S::Draining },
    // A drain's terms may change while it runs; uncordoning an `active` node clears its cordon.
    Transition { event: EventKind::NodeDrainStarted, from: &[S::Active, S::Draining], to: S::Draining },
    Transition { event: EventKind::NodeUncordoned, from: &[S::Active, S::Draining], to: S::Active },
    Transition {
        event: EventKind::NodeReprovisionRequested,
        from: &[S::Commissioned, S::Draining, S::Failed, S::Rescue],
        to: S::Reprovisioning,
    },
    Transition {
        event: EventKind::NodeRescueRequested,
        from: &[
            S::Commissioned,
            S::InstallPending,
            S::Installing,
            S::Active,
            S::Draining,
            S::Reprovisioning,
            S::Failed,
        ],
        to: S::Rescue,
    },
    Transition {
        event: EventKind::NodeFailed,
        from: &[
            S::Commissioned,
            S::InstallPending,
            S::Installing,
            S::Active,
            S::Draining,
            S::Reprovisioning,
            S::Rescue,
        ],
        to: S::Failed,
    },
    Transition {
        event: EventKind::NodeRetired,
        from: &[S::Commissioned, S::InstallPending, S::Draining, S::Reprovisioning, S::Rescue, S::Failed],
        to: S::Retired,
    },
    Transition {
        event: EventKind::NodeRebound,
        from: &[S::Commissioned, S::InstallPending, S::Reprovisioning, S::Rescue, S::Failed],
        to: S::Commissioned,
    },
];

/// The row for `event`, if `event` is a lifecycle move.
pub fn row(event: EventKind) -> Option<&'static Transition> {
    TRANSITIONS.iter().find(|t| t.event == event)
}

/// Where `event` takes a subject in state `from`; `None` when the move is illegal or `event` is not a
/// lifecycle move.
pub fn next_state(from: NodeState, event: EventKind) -> Option<NodeState> {
    row(event).filter(|t| t.from.contains(&from)).map(|t| t.to)
}

/// The lifecycle events legal in `state`, in table order.
pub fn allowed_events(state: NodeState) -> Vec<EventKind> {
    TRANSITIONS.iter().filter(|t| t.from.contains(&state)).map(|t| t.event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_is_reachable_and_only_retired_is_terminal() {
        for s in NodeState::ALL {
            let reachable = s == S::Discovered || TRANSITIONS.iter().any(|t| t.to == s);
            assert!(reachable, "{s} is unreachable");
            assert_eq!(allowed_events(s).is_empty(), s.is_terminal(), "{s}");
        }
    }

    #[test]
    fn each_event_has_at_most_one_row() {
        for t in TRANSITIONS {
            assert_eq!(TRANSITIONS.iter().filter(|u| u.event == t.event).count(), 1, "{}", t.event);
        }
    }

    #[test]
    fn state_names_match_serde() {
        for s in NodeState::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.name()));
        }
    }
}
