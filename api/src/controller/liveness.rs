//! The liveness controller (`system:liveness`): on the leader, turns node agents' heartbeats into the events
//! that matter — `NodeAgentLost` when a running agent was not heard from for a whole deadline (counted from when
//! this member became leader, at the earliest), `NodeAgentReturned` when a lost one is heard again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sendan_core::event::{NodeAgentLost, NodeAgentReturned};
use sendan_core::fleet::FleetState;
use sendan_core::wire::ProposalIn;
use sendan_core::{EventId, NodeId, Timestamp};

use super::Controller;
use crate::app::App;

pub struct LivenessController {
    app: Arc<App>,
    /// When this member became leader (`None` while it does not lead).
    leading_since: Option<Instant>,
    /// When this leader proposed each loss: only a heartbeat after it is a return.
    lost_at: HashMap<NodeId, Instant>,
}

impl LivenessController {
    pub fn new(app: Arc<App>) -> Self {
        LivenessController { app, leading_since: None, lost_at: HashMap::new() }
    }
}

impl Controller for LivenessController {
    fn name(&self) -> &'static str {
        "liveness"
    }

    fn leading(&mut self, leading: bool) {
        match (leading, self.leading_since) {
            (true, None) => {
                // Heartbeats heard before leading were not this leader's to count.
                self.app.liveness.clear();
                self.lost_at.clear();
                self.leading_since = Some(Instant::now());
            }
            (false, Some(_)) => self.leading_since = None,
            _ => {}
        }
    }

    fn reconcile(&mut self, fleet: &FleetState, now_log: Timestamp) -> Vec<Vec<ProposalIn>> {
        let Some(since) = self.leading_since else { return Vec::new() };
        let deadline = self.app.config.agent_deadline;
        let now = Instant::now();
        let mut out = Vec::new();
        for (node, agent) in fleet.services.agents.iter() {
            let heard = self.app.liveness.last(node);
            if agent.running {
                let last = heard.map_or(since, |h| h.max(since));
                // An agent that started (or returned) recently is given its deadline from then: its first
                // heartbeat follows its announcement.
                let since_event = Duration::from_millis(now_log.0.saturating_sub(agent.since_at.0).max(0) as u64);
                let silent = now.saturating_duration_since(last).min(since_event);
                if silent > deadline {
                    self.lost_at.insert(node.clone(), now);
                    let id = EventId::derive(&[b"agent-lost", node.as_str().as_bytes(), &agent.since.to_be_bytes()]);
                    out.push(vec![ProposalIn {
                        id: Some(id),
                        comment: Some(format!(
                            "no heartbeat from node {node}'s agent for {:.1} s (deadline {} s)",
                            silent.as_secs_f64(),
                            deadline.as_secs()
                        )),
                        cause: Some(agent.since),
                        payload: NodeAgentLost { node: node.clone(), silent_ms: silent.as_millis() as u64 }.into(),
                    }]);
                }
            } else if let Some(h) = heard
                && self.lost_at.get(node).is_none_or(|lost| h > *lost)
                && now.saturating_duration_since(h) < deadline
            {
                let id = EventId::derive(&[b"agent-returned", node.as_str().as_bytes(), &agent.since.to_be_bytes()]);
                out.push(vec![ProposalIn {
                    id: Some(id),
                    comment: Some(format!("node {node}'s agent is heard again")),
                    cause: Some(agent.since),
                    payload: NodeAgentReturned { node: node.clone() }.into(),
                }]);
            }
        }
        out
    }

    fn period(&self) -> Duration {
        Duration::from_millis(500)
    }
}
