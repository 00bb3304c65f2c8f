//! The power aggregate: for each node with a BMC, the power request being carried out, how the last one went,
//! and the power state last observed. `events.rs` holds its events, `rules.rs` what `check` asks of them,
//! `fold.rs` how `evolve` records them. The BMC itself is driven by the leader's power controller (`sendan-api`),
//! never from here.

pub mod events;
pub mod fold;
pub mod rules;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use self::events::{BootOverride, Power, PowerAction, PowerOutcome};
use crate::ids::{NodeId, Timestamp};

/// What the log knows about nodes' power.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerState {
    pub nodes: OrdMap<NodeId, NodePower>,
}

impl PowerState {
    pub fn get(&self, node: &NodeId) -> Option<&NodePower> {
        self.nodes.get(node)
    }

    /// Every request not carried out yet, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = (&NodeId, &PowerRequest)> {
        let mut all: Vec<_> = self.nodes.iter().filter_map(|(n, p)| Some((n, p.pending.as_ref()?))).collect();
        all.sort_by_key(|(_, r)| r.seq);
        all.into_iter()
    }
}

/// One node's power, as the log knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePower {
    /// The request being carried out.
    pub pending: Option<PowerRequest>,
    /// How the last request ended.
    pub last: Option<PowerResult>,
    /// The power state last reported by the BMC, and the seq of the event that recorded it.
    pub observed: Option<(Power, u64)>,
}

/// A request (`PowerRequested` at `seq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerRequest {
    pub seq: u64,
    pub time: Timestamp,
    pub action: Option<PowerAction>,
    pub boot: Option<BootOverride>,
    pub force: bool,
}

impl PowerRequest {
    /// `reboot`, `boot pxe (once) then reboot`, `boot disk`: how a person reads it.
    pub fn describe(&self) -> String {
        describe(self.action, self.boot)
    }
}

/// How request `request` ended (`PowerCompleted` at `seq`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerResult {
    pub request: PowerRequest,
    pub seq: u64,
    pub outcome: PowerOutcome,
    pub error: Option<String>,
}

/// A request's action and boot override, as a person reads them.
pub fn describe(action: Option<PowerAction>, boot: Option<BootOverride>) -> String {
    let boot = boot.map(|b| format!("boot {}{}", b.device.as_str(), if b.once { " once" } else { "" }));
    match (boot, action) {
        (Some(b), Some(a)) => format!("{b}, then {}", a.as_str()),
        (Some(b), None) => b,
        (None, Some(a)) => a.as_str().to_owned(),
        (None, None) => "nothing".to_owned(),
    }
}
