//! The scheduler (`system:scheduler`): runs the pure planner [`sendan_core::services::planner::plan`] on the
//! leader and proposes its decisions — deployment steps (start, revert, end), replacements, hand-overs from
//! draining nodes and to a deployment's new version, stops, placements, and
//! `NodeDrained` for a draining node whose agent reported everything stopped — each with the seq of the event it was
//! decided on and an id derived from the instance it concerns, so deciding again (another pass, another leader)
//! is answered with the original seq. `check` applies the planner's own filters to every placement.

use std::time::Duration;

use sendan_core::Timestamp;
use sendan_core::fleet::FleetState;
use sendan_core::wire::ProposalIn;

use super::Controller;

/// Decisions per submission: one Raft entry carries many placements, each checked on its own.
const BATCH: usize = 256;

pub struct SchedulerController;

impl Controller for SchedulerController {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn reconcile(&mut self, fleet: &FleetState, now: Timestamp) -> Vec<Vec<ProposalIn>> {
        let plan = sendan_core::services::planner::plan(&fleet.services, fleet, now);
        let mut proposals: Vec<ProposalIn> = plan
            .deployments
            .into_iter()
            .map(|d| ProposalIn {
                id: Some(d.id),
                comment: Some(d.comment),
                cause: Some(d.cause),
                payload: d.step.into(),
            })
            .collect();
        proposals.extend(plan.decisions.into_iter().map(|d| ProposalIn {
            id: Some(d.id),
            comment: Some(d.comment),
            cause: Some(d.cause),
            payload: d.decision.into(),
        }));
        proposals.extend(plan.drained.into_iter().map(|d| ProposalIn {
            id: Some(d.id),
            comment: Some(d.comment),
            cause: Some(d.cause),
            payload: d.event.into(),
        }));
        proposals.chunks(BATCH).map(<[ProposalIn]>::to_vec).collect()
    }

    /// Reschedule delays pass without any event: look again every second while nothing is applied.
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
}
