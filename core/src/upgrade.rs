//! The one place where old formats are upgraded, in two halves.
//!
//! **Decoding** (used by [`crate::record`]): a body of record version 1 — `(id, time, actor, comment, payload)`,
//! with no `cause`, and `RolloutHalted` without its `revert` list — is decoded into today's types; the record keeps
//! its own bytes and version, so the chain still verifies.
//!
//! **Folding** (used by [`crate::fleet::evolve`]): in version 1 the fold itself decided a few things that events
//! now carry or the rollout controller proposes: which members a halt put back at once, that a revert puts back
//! only members still on their wave's decision, and that a member leaves its rollout when it is pinned before its
//! agent starts or when another decision replaces the rollout's. [`fold_legacy`] derives those decisions from the
//! state before each version-1 event exactly as that release's fold did, and folds the event with them — so a log
//! written by the release before folds to the same state, while `fleet`'s folds stay rule-free.
//!
//! Frozen fixtures: `core/tests/fixtures/records-v1.txt` (one record of every kind of version 1) and
//! `tests/fixtures/upgrade-8028c4f/` (a whole data directory of that release).

use serde::Deserialize;
use serde::de::{self, Error as _};

use crate::event::{Payload, RolloutHalted, RolloutMemberLeft, RolloutNodesReverted};
use crate::fleet::{self, FleetState};
use crate::ids::{Actor, EventId, NodeId, Timestamp};
use crate::kind::EventKind;
use crate::read::FleetRead;
use crate::record::{DecodedBody, RecordError, malformed};
use crate::rollouts::{MemberOutcome, planner};
use crate::{Event, event};

/// `RolloutHalted` as version 1 stored it: no `revert` list (the fold derived it).
#[derive(Deserialize)]
struct RolloutHaltedV1 {
    rollout: u64,
    reason: String,
}

/// A version-1 payload: every kind as today, but `RolloutHalted`.
struct PayloadV1(Payload);

impl<'de> Deserialize<'de> for PayloadV1 {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = PayloadV1;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an event kind code followed by its version-1 payload")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<PayloadV1, A::Error> {
                let code: u16 = seq.next_element()?.ok_or_else(|| A::Error::custom("event kind code is missing"))?;
                if code == EventKind::RolloutHalted.code() {
                    let v1: RolloutHaltedV1 =
                        seq.next_element()?.ok_or_else(|| A::Error::custom("event payload is truncated"))?;
                    let halted = RolloutHalted { rollout: v1.rollout, reason: v1.reason, revert: Vec::new() };
                    return Ok(PayloadV1(halted.into()));
                }
                event::deserialize_binary_element(code, &mut seq).map(PayloadV1)
            }
        }
        d.deserialize_tuple(2, V)
    }
}

/// A proposal as Raft log entries of releases before `cause` hold it (their `Request::AppendV1`): no cause, and
/// a version-1 payload. Written by no build any more; read so that an upgraded member replays its own log.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ProposalV1 {
    pub id: EventId,
    pub time: Timestamp,
    pub actor: Actor,
    pub comment: Option<String>,
    #[serde(deserialize_with = "payload_v1")]
    pub payload: Payload,
}

fn payload_v1<'de, D: de::Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
    PayloadV1::deserialize(d).map(|p| p.0)
}

/// Only so that the Raft request type derives `Serialize`; nothing writes a version-1 proposal.
impl serde::Serialize for ProposalV1 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.id, self.time, &self.actor, &self.comment, &self.payload).serialize(s)
    }
}

impl From<ProposalV1> for crate::Proposal {
    fn from(p: ProposalV1) -> crate::Proposal {
        crate::Proposal { id: p.id, time: p.time, actor: p.actor, comment: p.comment, cause: None, payload: p.payload }
    }
}

#[derive(Deserialize)]
struct BodyV1 {
    id: EventId,
    time: Timestamp,
    actor: Actor,
    comment: Option<String>,
    payload: PayloadV1,
}

/// Decode a version-1 body (after its version field).
pub(crate) fn decode_body_v1(rest: &[u8]) -> Result<DecodedBody, RecordError> {
    let (b, rest) = postcard::take_from_bytes::<BodyV1>(rest).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(RecordError::TrailingBytes(rest.len()));
    }
    Ok(DecodedBody {
        version: 1,
        id: b.id,
        time: b.time,
        actor: b.actor,
        comment: b.comment,
        cause: None,
        payload: b.payload.0,
    })
}

/// The members of rollout `id` a version-1 revert batch (or halt) put back: of `nodes`, those not yet put back
/// and still on their wave's decision.
fn still_on_wave(state: &FleetState, id: u64, nodes: &[NodeId]) -> Vec<NodeId> {
    let Some(r) = state.rollouts.get(id) else { return Vec::new() };
    let mut out = Vec::new();
    for w in &r.waves {
        for wn in w.nodes.iter().filter(|wn| nodes.contains(&wn.node) && wn.revert.is_none()) {
            if state.decision(&wn.node).is_some_and(|d| d.seq == w.seq) {
                out.push(wn.node.clone());
            }
        }
    }
    out
}

/// Fold a version-1 event (whose seq, head and time `state` already moved to) the way its release did: the
/// decisions that release's fold made are derived here and folded as events carry them today. Returns the nodes
/// the event is indexed under.
pub(crate) fn fold_legacy(state: &mut FleetState, e: &Event) -> Vec<NodeId> {
    let index = match &e.payload {
        Payload::RolloutHalted(p) => {
            // Put back at once: every moved member in flight or failed, still on its wave's decision.
            let candidates: Vec<NodeId> = state
                .rollouts
                .get(p.rollout)
                .map(|r| {
                    r.waves
                        .iter()
                        .flat_map(|w| &w.nodes)
                        .filter(|wn| matches!(wn.outcome, MemberOutcome::InFlight | MemberOutcome::Failed { .. }))
                        .map(|wn| wn.node.clone())
                        .collect()
                })
                .unwrap_or_default();
            let revert = still_on_wave(state, p.rollout, &candidates);
            fleet::fold(state, e, &RolloutHalted { revert, ..p.clone() }.into())
        }
        Payload::RolloutNodesReverted(p) => {
            let nodes = still_on_wave(state, p.rollout, &p.nodes);
            fleet::fold(state, e, &RolloutNodesReverted { nodes, ..p.clone() }.into())
        }
        other => fleet::fold(state, e, other),
    };
    // A member left its rollout within the same fold when it was pinned before its agent started, or when
    // another decision replaced the rollout's.
    let mut leaving = Vec::new();
    for r in state.rollouts.open() {
        for w in &r.waves {
            for wn in &w.nodes {
                if let Some(why) = planner::leaving(state, r, w, wn) {
                    leaving.push(RolloutMemberLeft { rollout: r.id, node: wn.node.clone(), why });
                }
            }
        }
    }
    for left in leaving {
        crate::rollouts::fold::member_left(&mut state.rollouts, e.seq, &left);
    }
    index
}
