//! The rollout controller: runs the pure planner [`sendan_core::rollouts::planner::decide`] on the leader and
//! proposes its decisions (waves, completions, halts, revert batches, members leaving) as `system:rollout`, each
//! with the seq of the event that caused it.

use std::time::Duration;

use sendan_core::Timestamp;
use sendan_core::fleet::FleetState;
use sendan_core::wire::ProposalIn;

use super::Controller;

pub struct RolloutController;

impl Controller for RolloutController {
    fn name(&self) -> &'static str {
        "rollout"
    }

    fn reconcile(&mut self, fleet: &FleetState, now: Timestamp) -> Vec<Vec<ProposalIn>> {
        sendan_core::rollouts::planner::decide(&fleet.rollouts, fleet, now)
            .into_iter()
            .map(|d| {
                let payload = d.payload();
                vec![ProposalIn { id: Some(d.id), comment: Some(d.comment), cause: Some(d.cause), payload }]
            })
            .collect()
    }

    /// Health deadlines pass without any event: look again every second while nothing is applied.
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
}
