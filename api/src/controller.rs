//! Controllers: projections that run on the leader, fold the log into a decision, and propose the events
//! that carry it out as `system:<name>`.
//!
//! A controller is level-triggered: each pass reads the whole fleet as it is now and returns every
//! submission it wants made. Passes run when the log moves and on a timer (for deadlines). Decisions carry
//! ids derived from what they decide ([`sendan_core::EventId::derive`]), so making the same decision again
//! — on the next pass, or on a new leader after a failover — is answered with the original seq instead of
//! being recorded twice. The pure deciding lives in `sendan-core`; this module only runs it.

mod enrollment;
mod liveness;
pub mod power;
mod rollout;
mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use sendan_core::Timestamp;
use sendan_core::fleet::FleetState;
use sendan_core::wire::ProposalIn;
use sendan_raft::types::ServerState;

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;

pub trait Controller: Send + 'static {
    /// The actor name: its events are `system:<name>`.
    fn name(&self) -> &'static str;

    /// The submissions to make now (each one atomic), given the fleet after the last applied event.
    fn reconcile(&mut self, fleet: &FleetState, now: Timestamp) -> Vec<Vec<ProposalIn>>;

    /// The longest time between passes when nothing is applied.
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Told before every pass whether this member leads (a controller that keeps memory of its own resets it
    /// when leadership changes hands).
    fn leading(&mut self, _leading: bool) {}
}

/// Every controller a member runs (each acts only while the member leads).
pub fn spawn_all(app: &Arc<App>) {
    spawn(app.clone(), rollout::RolloutController);
    spawn(app.clone(), enrollment::EnrollmentController);
    spawn(app.clone(), scheduler::SchedulerController);
    spawn(app.clone(), liveness::LivenessController::new(app.clone()));
    power::spawn(app.clone());
}

/// Run `c` on `app` until the member shuts down.
pub fn spawn(app: Arc<App>, mut c: impl Controller) {
    tokio::spawn(async move {
        let mut applied = app.node.reader.subscribe();
        let mut shutdown = app.shutdown.subscribe();
        let principal = Principal::System(c.name());
        loop {
            let leading = app.node.raft.metrics().borrow().state == ServerState::Leader;
            c.leading(leading);
            if leading {
                let fleet = app.node.reader.fleet();
                for events in c.reconcile(&fleet, crate::write::now()) {
                    match crate::write::submit(&app, &principal, events).await {
                        Ok(_) => {}
                        // Another pass (or leader) got there first, or the world moved: the next pass
                        // decides again from the new state.
                        Err(ApiError::Rejected { rejection, .. }) => {
                            tracing::debug!(controller = c.name(), %rejection, "a decision was refused");
                        }
                        Err(e) => {
                            tracing::warn!(controller = c.name(), error = %e, "a decision could not be submitted")
                        }
                    }
                }
            }
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(c.period()) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
}
