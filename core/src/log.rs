//! Appending a batch of proposals to the log, atomically, and folding events into state.
//!
//! This is the function every replica runs on every committed Raft entry, so it must be deterministic:
//! the result depends only on the state and the proposals (whose time the leader fixed).

use serde::{Deserialize, Serialize};

use crate::event::{Event, Proposal};
use crate::fleet::{self, FleetState};
use crate::ids::NodeId;
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
    append_indexed(state, proposals).map(|v| v.into_iter().map(|s| s.event).collect())
}

/// An accepted event with what storing it needs.
pub struct Sealed {
    pub event: Event,
    /// The nodes it is indexed under ([`fleet::evolve_indexed`]).
    pub nodes: Vec<NodeId>,
    /// Its stored record ([`crate::record`]).
    pub record: Vec<u8>,
}

/// [`append`], also returning each event's index nodes and stored record.
pub fn append_indexed(state: &mut FleetState, proposals: &[Proposal]) -> Result<Vec<Sealed>, BatchRejection> {
    if let [p] = proposals {
        // One proposal: once it passes `check`, nothing can fail, so no copy of the state is needed.
        fleet::check(state, p).map_err(|rejection| BatchRejection { index: 0, rejection })?;
        return Ok(vec![seal_and_evolve(state, p)]);
    }
    let mut work = state.clone();
    let mut events = Vec::with_capacity(proposals.len());
    for (index, p) in proposals.iter().enumerate() {
        fleet::check(&work, p).map_err(|rejection| BatchRejection { index, rejection })?;
        events.push(seal_and_evolve(&mut work, p));
    }
    *state = work;
    Ok(events)
}

fn seal_and_evolve(state: &mut FleetState, p: &Proposal) -> Sealed {
    // Time never goes back along the log, whatever the clocks of successive leaders say.
    let time = p.time.max(state.last_time);
    let (event, record) = crate::record::seal_with_record(p, state.seq + 1, time, state.head);
    let nodes = fleet::evolve_indexed(state, &event);
    Sealed { event, nodes, record }
}

/// Fold accepted events into `state`, in order.
pub fn fold<'a>(state: &mut FleetState, events: impl IntoIterator<Item = &'a Event>) {
    for e in events {
        fleet::evolve(state, e);
    }
}
