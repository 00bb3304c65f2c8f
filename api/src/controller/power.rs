//! The power controller (`system:power`): on the leader, carries out every pending power request through the
//! node's BMC (`crate::power`) and records how it went as `PowerCompleted`.
//!
//! Unlike the other controllers its work takes seconds (a BMC applies a change, then is polled until it reports
//! it), so each request runs as its own task while the loop goes on. A request is idempotent by its id (the seq of
//! its `PowerRequested`): its completion carries an id derived from it, and `check` accepts one completion per
//! request. A leader that loses leadership mid-request abandons it; the next leader finds it still pending in the
//! log and carries it out again — at least once, which every action allows (power on twice is on; a second
//! reboot of a machine that was rebooting is another reboot, never a lost one).

use std::collections::{HashMap, HashSet};

use futures_util::FutureExt;
use std::sync::Arc;
use std::time::Duration;

use sendan_core::event::{PowerCompleted, PowerOutcome};
use sendan_core::power::PowerRequest;
use sendan_core::wire::ProposalIn;
use sendan_core::{EventId, NodeId};
use sendan_raft::types::ServerState;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;

pub const NAME: &str = "power";

/// Run the power controller on `app` until the member shuts down.
pub fn spawn(app: Arc<App>) {
    tokio::spawn(async move {
        let mut applied = app.node.reader.subscribe();
        let mut shutdown = app.shutdown.subscribe();
        // Requests this leader is carrying out, by request id; those whose completion it recorded.
        let mut running: HashMap<u64, JoinHandle<bool>> = HashMap::new();
        let mut done: HashSet<u64> = HashSet::new();
        loop {
            let leading = app.node.raft.metrics().borrow().state == ServerState::Leader;
            if !leading {
                for (_, task) in running.drain() {
                    task.abort();
                }
                done.clear();
            } else {
                let fleet = app.node.reader.fleet();
                let pending: HashSet<u64> = fleet.power.pending().map(|(_, r)| r.seq).collect();
                let finished: Vec<u64> = running.iter().filter(|(_, t)| t.is_finished()).map(|(s, _)| *s).collect();
                for (seq, task) in finished.into_iter().filter_map(|s| running.remove_entry(&s)) {
                    // A completion that could not be recorded leaves the request pending: it is carried out again.
                    if task.now_or_never().and_then(Result::ok) == Some(true) {
                        done.insert(seq);
                    }
                }
                done.retain(|seq| pending.contains(seq));
                for (node, request) in fleet.power.pending() {
                    if running.contains_key(&request.seq) || done.contains(&request.seq) {
                        continue;
                    }
                    let bmc = fleet.bmc(node).cloned();
                    let (app, node, request) = (app.clone(), node.clone(), *request);
                    running.insert(request.seq, tokio::spawn(carry_out(app, node, request, bmc)));
                }
            }
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait_for(|stop| *stop) => {
                    for (_, task) in running.drain() {
                        task.abort();
                    }
                    return;
                }
            }
        }
    });
}

/// Carry out `request` and submit its completion; whether the log has it now.
async fn carry_out(app: Arc<App>, node: NodeId, request: PowerRequest, bmc: Option<sendan_core::spec::Bmc>) -> bool {
    let deadline = app.config.power_deadline;
    let what = request.describe();
    tracing::info!(%node, request = request.seq, %what, "carrying out a power request");
    let (outcome, error, power) = match &bmc {
        None => {
            let why = "the live spec no longer declares a BMC for the node; nothing was done";
            (PowerOutcome::Failed, Some(why.to_owned()), None)
        }
        Some(bmc) => match crate::power::Driver::connect(bmc).await {
            Err(e) => (PowerOutcome::Failed, Some(e.0), None),
            Ok(driver) => match crate::power::execute(&driver, request.action, request.boot, deadline).await {
                Ok(power) => (PowerOutcome::Done, None, Some(power)),
                // After a failure, what the BMC says now (if it answers) is still worth recording.
                Err(e) => (PowerOutcome::Failed, Some(e.0), driver.power().await.ok()),
            },
        },
    };
    match &error {
        None => tracing::info!(%node, request = request.seq, "power request done"),
        Some(e) => tracing::warn!(%node, request = request.seq, error = %e, "power request failed"),
    }
    let event = ProposalIn {
        id: Some(EventId::derive(&[b"power-completed", node.as_str().as_bytes(), &request.seq.to_be_bytes()])),
        comment: Some(match &error {
            None => format!("{what}: done"),
            Some(e) => format!("{what}: {e}"),
        }),
        cause: Some(request.seq),
        payload: PowerCompleted { node: node.clone(), request: request.seq, outcome, error, power }.into(),
    };
    match crate::write::submit(&app, &Principal::System(NAME), vec![event]).await {
        Ok(_) => true,
        Err(ApiError::Rejected { rejection, .. }) => {
            // Completed already (by an earlier leader): the log has a completion.
            tracing::debug!(%node, request = request.seq, %rejection, "a power completion was refused");
            true
        }
        Err(e) => {
            tracing::warn!(%node, request = request.seq, error = %e, "a power completion could not be submitted");
            false
        }
    }
}
