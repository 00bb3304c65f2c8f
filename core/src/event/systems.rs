//! NixOS system events: which system a node should run (the spec, an operator, a pool rollout), pinning, and
//! what the node's `sendan-agent nix` reports at every step of an activation.
//!
//! A *decision* is the event that last set a node's desired system; its seq identifies it. Every agent report
//! names the decision it acts on, so reports, rollouts and confirmations refer to one activation unambiguously.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Emitters, EventData};
use crate::ids::NodeId;

/// `switch-to-configuration`'s verb: `switch` (activate now and make it the boot default), `boot` (boot
/// default only, active after the next reboot) or `test` (activate now, boot default unchanged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchAction {
    #[default]
    Switch,
    Boot,
    Test,
}

impl SwitchAction {
    pub const ALL: [SwitchAction; 3] = [SwitchAction::Switch, SwitchAction::Boot, SwitchAction::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            SwitchAction::Switch => "switch",
            SwitchAction::Boot => "boot",
            SwitchAction::Test => "test",
        }
    }

    /// Whether the system profile (the boot default) is set before switching; `test` leaves it alone.
    pub fn sets_profile(self) -> bool {
        self != SwitchAction::Test
    }
}

impl fmt::Display for SwitchAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SwitchAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SwitchAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a switch action; use switch, boot or test"))
    }
}

/// What a system string names: a store path to fetch, or a flake output to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemKind {
    StorePath,
    Flake,
}

/// Classify a desired system: a store path (`/nix/store/<hash>-<name>`) or a flake reference with an attribute
/// (`<ref>#<attr>`). The error is the end of a sentence saying what is wrong.
pub fn system_kind(system: &str) -> Result<SystemKind, String> {
    const NIX_BASE32: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    if system.len() > 1024 {
        return Err("it is longer than 1024 characters".into());
    }
    if system.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters".into());
    }
    if let Some(rest) = system.strip_prefix("/nix/store/") {
        let (hash, name) = rest.split_at_checked(32).unwrap_or(("", ""));
        let ok = hash.len() == 32
            && hash.chars().all(|c| NIX_BASE32.contains(c))
            && name.len() > 1
            && name.starts_with('-')
            && !name.contains('/');
        return if ok {
            Ok(SystemKind::StorePath)
        } else {
            Err("it is not a store path such as /nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-01"
                .into())
        };
    }
    match system.split_once('#') {
        Some((r, attr)) if !r.is_empty() && !attr.is_empty() && !attr.contains('#') => Ok(SystemKind::Flake),
        _ => Err("it is neither a store path (/nix/store/…) nor a flake reference with an attribute \
                  (such as git+https://git.example.com/infra#nixosConfigurations.worker-01.config.system.build.toplevel)"
            .into()),
    }
}

/// An operator chose the node's system explicitly (`sendan node set-system`). Operator only. Keeps: the system
/// is a store path or a flake reference; the node exists, is not retired, is not pinned and is in no running
/// rollout. It becomes the node's desired system (a decision).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSystemSet {
    pub node: NodeId,
    pub system: String,
    #[serde(default)]
    pub action: SwitchAction,
}
about_node!(NodeSystemSet, Emitters::NONE);

/// The node is pinned: its agent and the rollout controller leave its system alone until it is unpinned
/// (an activation already under way still finishes). Operator only. Keeps: the node exists and is not pinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePinned {
    pub node: NodeId,
    /// Why, for the next operator.
    pub reason: String,
}
about_node!(NodePinned, Emitters::NONE);

/// The node follows its desired system again. Operator only. Keeps: the node is pinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeUnpinned {
    pub node: NodeId,
}
about_node!(NodeUnpinned, Emitters::NONE);

/// A pool starts moving to a new system (`sendan rollout start`); the rollout's id is this event's seq. Operator
/// only. Keeps: a live spec declares the pool and it has active members; no other rollout of the pool is running;
/// `1 ≤ max_unavailable`, `canary ≤ max_unavailable`, `health_timeout_secs ≥ 1`; the system is valid. Its members
/// are fixed now: the pool's nodes in the live spec, in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutStarted {
    pub pool: String,
    pub system: String,
    #[serde(default)]
    pub action: SwitchAction,
    /// At most this many members are away from a healthy system at once.
    pub max_unavailable: u32,
    /// How many members go first, alone, before any other member moves; a failing canary stops the rollout.
    #[serde(default)]
    pub canary: u32,
    /// Failed members tolerated after the canaries; one more stops the rollout and reverts the pool.
    #[serde(default)]
    pub max_failures: u32,
    /// How long a member of a wave has to confirm its new system before it counts as failed.
    pub health_timeout_secs: u32,
}

impl EventData for RolloutStarted {
    const EMITTERS: Emitters = Emitters::NONE;
}

/// The rollout controller moved a wave of members to the rollout's system: each one's desired system is now the
/// rollout's (a decision at this seq), and what it wanted before is remembered for a revert. System (the rollout
/// controller) or operator. Keeps: the rollout is running; waves are numbered 1, 2, … in order; every earlier
/// wave has settled; the nodes are members not yet moved, active and not pinned; the first wave holds at most
/// `canary` nodes when there are canaries; the wave plus the members already unhealthy fit in `max_unavailable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutWaveStarted {
    pub rollout: u64,
    pub wave: u32,
    pub nodes: Vec<NodeId>,
}

impl EventData for RolloutWaveStarted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// Every member that was not skipped runs the rollout's system. System (the rollout controller). Keeps: the
/// rollout is running, no member is pending or in flight, and failures stayed within `max_failures`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutCompleted {
    pub rollout: u64,
}

impl EventData for RolloutCompleted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// The rollout stops moving members: a canary failed, more than `max_failures` members failed, the budget is used
/// up by unhealthy members, or an operator halted it (`sendan rollout abort`). It turns to reverting: every moved
/// member not confirmed on the new system is put back at once (a decision at this seq: what it wanted before the
/// wave), confirmed ones follow in `RolloutNodesReverted` batches; members never moved keep their system. System
/// (the rollout controller) or operator. Keeps: the rollout is running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutHalted {
    pub rollout: u64,
    pub reason: String,
}

impl EventData for RolloutHalted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// A halted rollout puts a batch of confirmed members back on what they wanted before (decisions at this seq).
/// System (the rollout controller) or operator. Keeps: the rollout is reverting; the nodes are members confirmed
/// on the rollout's system and not yet put back; the batch plus the members already unavailable fit in
/// `max_unavailable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutNodesReverted {
    pub rollout: u64,
    pub nodes: Vec<NodeId>,
}

impl EventData for RolloutNodesReverted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// A halted rollout ended: no moved member is left to put back or still being put back. System (the rollout
/// controller) or operator. Keeps: the rollout is reverting and nothing of it is in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutReverted {
    pub rollout: u64,
}

impl EventData for RolloutReverted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// The agent says which system the node runs (`/run/current-system`) and booted (`/run/booted-system`), when it
/// starts and whenever that differs from what the log says. Node agent. Keeps: the paths are store paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemReported {
    pub node: NodeId,
    pub current: Option<String>,
    pub booted: Option<String>,
}
about_node!(SystemReported, Emitters::NODE);

/// The agent fetched the decided system's closure (a store path from the substituters, signatures checked, or a
/// flake output built). Node agent. Keeps: `decision` is the node's desired decision and `system` its system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemPrefetched {
    pub node: NodeId,
    pub decision: u64,
    pub system: String,
    /// The store path fetched (for a flake, the one it built).
    pub path: String,
}
about_node!(SystemPrefetched, Emitters::NODE);

/// The closure could not be fetched (unreachable or unsigned substituters, wrong signatures, a failed build);
/// nothing was activated and the agent gives this decision up. Node agent. Keeps: as `SystemPrefetched`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemPrefetchFailed {
    pub node: NodeId,
    pub decision: u64,
    pub system: String,
    pub error: String,
}
about_node!(SystemPrefetchFailed, Emitters::NODE);

/// The agent is about to activate `path`, remembering `previous` (the running system) to roll back to. The
/// agent touches nothing before the log accepts this, so the control plane can still refuse an activation.
/// Node agent. Keeps: `decision` is the node's desired decision; the node is not pinned; no other activation of
/// the node is unfinished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemActivating {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub action: SwitchAction,
    pub previous: Option<String>,
}
about_node!(SystemActivating, Emitters::NODE);

/// The system profile now points at `path` (`nix-env --profile … --set`). Node agent. Keeps: it belongs to the
/// node's unfinished activation of `decision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemProfileSet {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub profile: String,
}
about_node!(SystemProfileSet, Emitters::NODE);

/// `switch-to-configuration` finished: exit 0 (ok) or 100 (ok, reboot required) succeed; 1 (error),
/// 2 (activation failed), 4 (units failed) and anything else (or a timeout, reported as -1) fail and lead to a
/// rollback. `reboot_required` also compares the booted kernel, initrd and modules with the new ones. Node agent.
/// Keeps: it belongs to the node's unfinished activation of `decision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSwitched {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub exit_code: i32,
    pub reboot_required: bool,
}
about_node!(SystemSwitched, Emitters::NODE);

impl SystemSwitched {
    pub fn succeeded(&self) -> bool {
        switch_succeeded(self.exit_code)
    }
}

/// Whether `switch-to-configuration` exiting with `code` means the system was activated.
pub fn switch_succeeded(code: i32) -> bool {
    code == 0 || code == 100
}

/// The health gate failed within its deadline (systemd units, HTTP probes, commands). The agent rolls back next.
/// Node agent. Keeps: it belongs to the node's unfinished activation of `decision`, whose switch succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemHealthFailed {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub failures: Vec<String>,
}
about_node!(SystemHealthFailed, Emitters::NODE);

/// The node runs its decided system, healthy: the confirmation round-trip. Accepting it is the control plane's
/// acknowledgement; an agent that gets none within its deadline rolls back. `switched` is false when the node
/// already ran the system and nothing was activated. Node agent. Keeps: with `switched`, it finishes the node's
/// unfinished activation of `decision`, whose switch succeeded; without, `decision` is the node's desired one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfirmed {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub switched: bool,
}
about_node!(SystemConfirmed, Emitters::NODE);

/// The agent re-activated the remembered system `to` (profile reset, `<to>/bin/switch-to-configuration`) after
/// the activation of `decision` failed, timed out or lost its confirmation. `exit_code` is the rollback switch's;
/// when it is not 0 or 100 the node needs an operator. Node agent. Keeps: it belongs to the node's activation of
/// `decision`, which it finishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemRolledBack {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub to: String,
    pub reason: String,
    pub exit_code: i32,
}
about_node!(SystemRolledBack, Emitters::NODE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_are_store_paths_or_flake_references() {
        let p = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-01";
        assert_eq!(system_kind(p), Ok(SystemKind::StorePath));
        assert_eq!(system_kind("git+https://git.example.com/lab#nixosConfigurations.x"), Ok(SystemKind::Flake));
        for bad in [
            "",
            "/nix/store/short-x",
            "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-a/b",
            "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6e-x",
            "/etc/passwd",
            "flake#",
            "a b#c",
            "#attr",
        ] {
            assert!(system_kind(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn switch_actions_round_trip() {
        for a in SwitchAction::ALL {
            assert_eq!(a.as_str().parse::<SwitchAction>(), Ok(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        }
        assert!("reboot".parse::<SwitchAction>().is_err());
        assert!(switch_succeeded(0) && switch_succeeded(100));
        assert!(!switch_succeeded(2) && !switch_succeeded(4) && !switch_succeeded(-1));
    }
}
