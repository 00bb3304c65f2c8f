//! Appending a batch of proposals to the log, atomically, and folding events into state.
//!
//! This is the function every replica runs on every committed Raft entry, so it must be deterministic:
//! the result depends only on the state and the proposals (whose time the leader fixed).

use serde::{Deserialize, Serialize};

use crate::event::{Event, Proposal};
use crate::fleet::{self, FleetState};
use crate::rejection::Rejection;

/// A batch was refused because one of its proposals was; nothing of the batch was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("event {index} of the batch was rejected: {rejection}")]
pub struct BatchRejection {
    /// The position of the refused proposal in the batch.
    pub index: usize,
    pub rejection: Rejection,
}

/// Check and seal `proposals` in order, each seeing the ones before it. Either every proposal is accepted
/// and `state` moves past all of them, or the first refusal is returned and `state` is unchanged.
pub fn append(state: &mut FleetState, proposals: &[Proposal]) -> Result<Vec<Event>, BatchRejection> {
    let mut work = state.clone();
    let mut events = Vec::with_capacity(proposals.len());
    for (index, p) in proposals.iter().enumerate() {
        fleet::check(&work, p).map_err(|rejection| BatchRejection { index, rejection })?;
        // Time never goes back along the log, whatever the clocks of successive leaders say.
        let time = p.time.max(work.last_time);
        let event = crate::record::seal(p, work.seq + 1, time, work.head);
        fleet::evolve(&mut work, &event);
        events.push(event);
    }
    *state = work;
    Ok(events)
}

/// Fold accepted events into `state`, in order.
pub fn fold<'a>(state: &mut FleetState, events: impl IntoIterator<Item = &'a Event>) {
    for e in events {
        fleet::evolve(state, e);
    }
}
