//! Node agents' heartbeats, kept in the leader's memory only: a heartbeat is not an event, only a change of
//! liveness is (`NodeAgentLost`, `NodeAgentReturned`, proposed by the liveness controller). A follower passes the
//! heartbeats it receives on to the leader; a new leader starts with none and waits one whole deadline before it
//! declares any agent lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use sendan_core::NodeId;

#[derive(Default)]
pub struct Liveness {
    beats: Mutex<HashMap<NodeId, Instant>>,
}

impl Liveness {
    /// `node`'s agent was heard from now.
    pub fn beat(&self, node: NodeId) {
        self.beats.lock().unwrap_or_else(|p| p.into_inner()).insert(node, Instant::now());
    }

    /// When `node`'s agent was last heard from by this member (while it leads).
    pub fn last(&self, node: &NodeId) -> Option<Instant> {
        self.beats.lock().unwrap_or_else(|p| p.into_inner()).get(node).copied()
    }

    /// Forget every heartbeat: a member that becomes leader counts only what it hears itself.
    pub fn clear(&self) {
        self.beats.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
