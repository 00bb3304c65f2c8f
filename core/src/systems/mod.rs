//! The node systems aggregate: which NixOS system each node should run (its latest *decision*: a `SpecApplied`
//! that changed the node's system, an operator's `NodeSystemSet`, a rollout's wave or revert), whether it is
//! pinned, what it runs and booted, and the latest attempt of its `sendan-agent nix`. `events.rs` holds the
//! events it owns, `rules.rs` what `check` asks of them, `fold.rs` how `evolve` records them. Pool rollouts are
//! their own aggregate (`crate::rollouts`); their decisions reach this one through `fleet`.
//!
//! A decision's seq identifies it; agent reports name it. Only the latest attempt of a node is kept here; the log
//! holds every one.

pub mod events;
pub mod fold;
pub mod rules;

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::ids::NodeId;
use crate::nixos::SwitchAction;

/// Everything the log says about systems.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemsState {
    pub nodes: OrdMap<NodeId, Arc<NodeSystem>>,
}

impl SystemsState {
    pub fn get(&self, id: &NodeId) -> Option<&NodeSystem> {
        self.nodes.get(id).map(Arc::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: &NodeId) -> &mut NodeSystem {
        Arc::make_mut(self.nodes.entry(id.clone()).or_default())
    }
}

/// One node's system: what it should run, whether it is pinned, what it runs, and its latest attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSystem {
    pub desired: Option<Desired>,
    pub pinned: Option<Pin>,
    /// The running system, as the agent last reported or confirmed it.
    pub current: Option<String>,
    /// The booted system, as the agent last reported it.
    pub booted: Option<String>,
    /// The latest decision the agent acted on.
    pub attempt: Option<Attempt>,
    /// The seq of the last event about the node's system.
    pub updated: u64,
}

impl NodeSystem {
    /// The confirmed decision whose system takes effect only at a reboot that has not happened yet, and its store
    /// path: its action was `boot`, or its switch said a reboot is needed (exit 100, or a new kernel, initrd or
    /// modules), and the node has not booted it since. A `test` activation is never rebooted into (it leaves the
    /// boot default alone).
    pub fn pending_reboot(&self) -> Option<(u64, &str)> {
        let a = self.attempt.as_ref().filter(|a| a.phase == AttemptPhase::Confirmed && a.action.sets_profile())?;
        let path = a.path.as_deref()?;
        let staged = a.action == SwitchAction::Boot && self.current.as_deref() != Some(path);
        let needed = a.reboot_required || staged;
        (needed && self.booted.as_deref() != Some(path)).then_some((a.decision, path))
    }
}

/// A decision: the system a node should run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The seq of the deciding event; agent reports name it.
    pub seq: u64,
    /// A store path or a flake reference.
    pub system: String,
    pub action: SwitchAction,
    pub source: Source,
    /// The rollout that decided, for `rollout` and `revert` decisions.
    pub rollout: Option<u64>,
}

/// Who decided a node's system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A `SpecApplied` that changed the node's system.
    Spec,
    /// `sendan node set-system`.
    Operator,
    /// A rollout wave.
    Rollout,
    /// A halted rollout putting back what the node wanted before.
    Revert,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Spec => "the spec",
            Source::Operator => "an operator",
            Source::Rollout => "a rollout",
            Source::Revert => "a rollout's revert",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub seq: u64,
    pub reason: String,
}

/// How far the agent got with one decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub decision: u64,
    /// The store path being activated (known once prefetched).
    pub path: Option<String>,
    pub action: SwitchAction,
    /// The system remembered to roll back to.
    pub previous: Option<String>,
    pub phase: AttemptPhase,
    /// The last `switch-to-configuration` exit code (of the rollback, once rolled back).
    pub exit_code: Option<i32>,
    pub reboot_required: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The seq of the attempt's latest report.
    pub updated: u64,
}

/// The phases of an attempt. `PrefetchFailed`, `Confirmed`, `RolledBack` and `RollbackFailed` finish it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptPhase {
    Prefetched,
    PrefetchFailed,
    Activating,
    ProfileSet,
    Switched,
    SwitchFailed,
    HealthFailed,
    Confirmed,
    RolledBack,
    RollbackFailed,
}

impl AttemptPhase {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            AttemptPhase::PrefetchFailed
                | AttemptPhase::Confirmed
                | AttemptPhase::RolledBack
                | AttemptPhase::RollbackFailed
        )
    }

    /// Between `SystemActivating` and the attempt's end: the node may be away from a healthy system.
    pub fn is_activating(self) -> bool {
        matches!(
            self,
            AttemptPhase::Activating
                | AttemptPhase::ProfileSet
                | AttemptPhase::Switched
                | AttemptPhase::SwitchFailed
                | AttemptPhase::HealthFailed
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            AttemptPhase::Prefetched => "prefetched",
            AttemptPhase::PrefetchFailed => "prefetch-failed",
            AttemptPhase::Activating => "activating",
            AttemptPhase::ProfileSet => "profile-set",
            AttemptPhase::Switched => "switched",
            AttemptPhase::SwitchFailed => "switch-failed",
            AttemptPhase::HealthFailed => "health-failed",
            AttemptPhase::Confirmed => "confirmed",
            AttemptPhase::RolledBack => "rolled-back",
            AttemptPhase::RollbackFailed => "rollback-failed",
        }
    }
}
