//! The enrollment controller (`system:enrollment`): runs `sendan_core::machines::enrollment::decide` on the leader and
//! proposes each decision — bind a discovered machine to its node, record why one cannot be bound, request
//! the install of a bound node whose layout fits, record why one does not fit — with an id derived from what it
//! decides, so deciding again is answered with the original seq.

use sendan_core::Timestamp;
use sendan_core::fleet::FleetState;
use sendan_core::machines::enrollment;
use sendan_core::wire::ProposalIn;

use super::Controller;

pub struct EnrollmentController;

impl Controller for EnrollmentController {
    fn name(&self) -> &'static str {
        "enrollment"
    }

    fn reconcile(&mut self, fleet: &FleetState, _now: Timestamp) -> Vec<Vec<ProposalIn>> {
        let Some(live) = fleet.live() else { return Vec::new() };
        enrollment::decide(&fleet.machines, fleet)
            .into_iter()
            .map(|d| {
                vec![ProposalIn {
                    id: Some(d.event_id(live.digest)),
                    comment: Some(d.comment()),
                    cause: Some(d.cause(live.seq)),
                    payload: d.payload(live.digest),
                }]
            })
            .collect()
    }
}
