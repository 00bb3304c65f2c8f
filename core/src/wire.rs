//! The JSON shapes of the HTTP API, shared by the server, the CLI and the agents.
//!
//! An event travels flat: `{"id": …, "type": "NodeDrainRequested", "node": "n1", "comment": …}` going
//! in, plus `seq`, `time`, `actor`, `version`, `prev` and `hash` coming out. Decoding a submission is
//! strict (unknown fields, unknown types and malformed ids are errors naming the event) and never panics.

use std::collections::HashSet;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::event::{Event, Payload};
use crate::ids::{Actor, EventId, Hash, Timestamp};

/// The most events one submission may carry.
pub const MAX_BATCH: usize = 10_000;
pub use crate::bounds::MAX_COMMENT;

/// One event as a client proposes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalIn {
    /// The idempotency key; the server picks a random one when it is missing (then a retry is a new
    /// event, so clients that retry should always send one).
    pub id: Option<EventId>,
    pub comment: Option<String>,
    /// The seq of the event that caused this one, if the proposer names one.
    pub cause: Option<u64>,
    pub payload: Payload,
}

/// A submission the server cannot read. `index` is the position of the offending event in a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", index.map(|i| format!("event {i}: ")).unwrap_or_default())]
pub struct WireError {
    pub index: Option<usize>,
    pub message: String,
}

fn wire_err(index: Option<usize>, message: impl Into<String>) -> WireError {
    WireError { index, message: message.into() }
}

/// Decode a `POST /v1/events` body: one event object, or an array of them.
pub fn decode_submission(body: &[u8]) -> Result<Vec<ProposalIn>, WireError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| wire_err(None, format!("the body is not valid JSON ({e})")))?;
    let items = match value {
        Value::Array(items) => items,
        v @ Value::Object(_) => vec![v],
        _ => return Err(wire_err(None, "expected an event object or an array of event objects")),
    };
    if items.is_empty() {
        return Err(wire_err(None, "the batch is empty; send at least one event"));
    }
    if items.len() > MAX_BATCH {
        return Err(wire_err(None, format!("the batch has {} events; at most {MAX_BATCH} are allowed", items.len())));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = proposal_from_value(item).map_err(|m| wire_err(Some(i), m))?;
        if let Some(id) = p.id
            && !seen.insert(id)
        {
            return Err(wire_err(Some(i), format!("id {id} appears twice in the batch")));
        }
        out.push(p);
    }
    Ok(out)
}

fn proposal_from_value(value: Value) -> Result<ProposalIn, String> {
    // Every string and list within its cap, and text printable, before anything is read from it.
    crate::bounds::check_event_json(&value).map_err(|e| e.to_string())?;
    let Value::Object(mut map) = value else {
        return Err("expected an object with a `type` field".into());
    };
    let id = match map.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<EventId>().map_err(|e| e.to_string())?),
        Some(_) => return Err("`id` must be a UUID string".into()),
    };
    let comment = match map.remove("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_COMMENT => Some(s),
        Some(Value::String(_)) => return Err(format!("`comment` is longer than {MAX_COMMENT} bytes")),
        Some(_) => return Err("`comment` must be a string".into()),
    };
    let cause = match map.remove("cause") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|c| c > 0) => n.as_u64(),
        Some(_) => return Err("`cause` must be the seq of an event (a positive integer)".into()),
    };
    match map.get("type") {
        Some(Value::String(_)) => {}
        Some(_) => return Err("`type` must be a string naming the event type".into()),
        None => return Err("the event has no `type` (such as \"NodeDrainRequested\")".into()),
    }
    let payload = Payload::deserialize(Value::Object(map)).map_err(|e| e.to_string())?;
    Ok(ProposalIn { id, comment, cause, payload })
}

impl ProposalIn {
    /// This proposal with every string made reportable ([`crate::bounds::clean_event_json`]): control
    /// characters become spaces and over-long text is cut at its cap. Agents send what they quote this way.
    pub fn cleaned(&self) -> ProposalIn {
        let mut json = self.to_json();
        crate::bounds::clean_event_json(&mut json);
        proposal_from_value(json).unwrap_or_else(|_| self.clone())
    }

    pub fn to_json(&self) -> Value {
        let mut map = match serde_json::to_value(&self.payload) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some(id) = self.id {
            map.insert("id".into(), Value::String(id.to_string()));
        }
        if let Some(c) = &self.comment {
            map.insert("comment".into(), Value::String(c.clone()));
        }
        if let Some(c) = self.cause {
            map.insert("cause".into(), Value::from(c));
        }
        Value::Object(map)
    }
}

impl Serialize for ProposalIn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    seq: u64,
    id: &'a EventId,
    time: Timestamp,
    actor: &'a Actor,
    #[serde(flatten)]
    payload: &'a Payload,
    comment: &'a Option<String>,
    cause: Option<u64>,
    version: u16,
    prev: &'a Hash,
    hash: &'a Hash,
}

/// Events are JSON-only values: storage goes through [`crate::record`].
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EventOut {
            seq: self.seq,
            id: &self.id,
            time: self.time,
            actor: &self.actor,
            payload: &self.payload,
            comment: &self.comment,
            cause: self.cause,
            version: self.version,
            prev: &self.prev,
            hash: &self.hash,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = Map::<String, Value>::deserialize(d)?;
        fn take<T: serde::de::DeserializeOwned, E: serde::de::Error>(
            map: &mut Map<String, Value>,
            key: &'static str,
        ) -> Result<T, E> {
            let v = map.remove(key).unwrap_or(Value::Null);
            serde_json::from_value(v).map_err(|e| E::custom(format_args!("`{key}`: {e}")))
        }
        let seq = take(&mut map, "seq")?;
        let id = take(&mut map, "id")?;
        let time = take(&mut map, "time")?;
        let actor = take(&mut map, "actor")?;
        let comment = take(&mut map, "comment")?;
        let cause = take(&mut map, "cause")?;
        let version = take(&mut map, "version")?;
        let prev = take(&mut map, "prev")?;
        let hash = take(&mut map, "hash")?;
        let payload = Payload::deserialize(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Event { seq, id, time, actor, comment, cause, payload, version, prev, hash })
    }
}

/// The answer to a submission: one receipt per event, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    pub events: Vec<Receipt>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: EventId,
    pub seq: u64,
    pub hash: Hash,
    /// The id had been applied before: this is the original `seq`, not a second copy.
    pub duplicate: bool,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Stable and machine-readable: `illegal_transition`, `bad_request`, `unauthorized`, …
    pub code: String,
    /// A sentence a person can act on.
    pub message: String,
    /// The position of the offending event in a batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Structured detail (for a rejection, the rejection itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// `GET /v1/events` and `GET /v1/nodes/{id}/history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` for the next page; `None` when this page reached the end of the log.
    pub next: Option<u64>,
    /// The last seq applied on the answering member.
    pub head: u64,
}

/// `GET /v1/nodes`: the fleet after event `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesView {
    pub seq: u64,
    pub nodes: Vec<crate::nodes::NodeRecord>,
    /// Machines that phoned home and are bound to no node (`discovered`).
    pub machines: Vec<crate::machines::MachineRecord>,
}

/// `GET /v1/nodes/{id}`: one node after event `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub seq: u64,
    pub node: crate::nodes::NodeRecord,
    pub machine: Option<crate::machines::MachineRecord>,
    /// The lifecycle events legal in the node's state.
    pub allowed: Vec<crate::EventKind>,
}

/// `GET /v1/audit/verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyView {
    pub ok: bool,
    /// Events verified from seq 1.
    pub verified: u64,
    /// The recomputed hash of the last verified event.
    pub head: Hash,
    /// Where the chain breaks, if it does.
    pub broken: Option<crate::chain::ChainBreak>,
    pub member: u64,
}

/// One member as it reports itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: u64,
    pub addr: String,
    /// `leader`, `follower`, `candidate`, `learner` or `unreachable`.
    pub role: String,
    pub voter: bool,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The last log index covered by this member's latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Raft log entries up to this index have been compacted away on this member.
    pub purged_index: Option<u64>,
    /// The last event seq applied, and its hash.
    pub seq: u64,
    pub head: Hash,
    /// Why the member could not be asked, when `role` is `unreachable`.
    pub error: Option<String>,
}

/// `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub leader: Option<u64>,
    pub term: u64,
    pub members: Vec<MemberStatus>,
}

/// `POST /v1/cluster/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub id: u64,
    pub addr: String,
}

/// `GET /v1/spec` and `GET /v1/specs/{digest}`: an applied spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpecView {
    /// The seq of the `SpecApplied` event.
    pub seq: u64,
    pub digest: Hash,
    /// Whether it is the live spec (at the seq asked about).
    pub live: bool,
    pub spec: crate::spec::ClusterSpec,
}

/// `POST /v1/spec/plan`: what applying a document would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    /// The live spec's digest, if a spec is live.
    pub live: Option<Hash>,
    /// The submitted document's digest.
    pub digest: Hash,
    pub diff: crate::spec::SpecDiff,
}

/// `POST /v1/nodes/{id}/token`: a new node token, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub node: crate::NodeId,
    pub token: String,
    /// The seq of the `NodeTokenIssued` event.
    pub seq: u64,
}

/// `GET /v1/nodes/{id}/system`: the node's desired and running system, pin and latest attempt, and where to fetch
/// closures from — what its `sendan-agent nix` acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSystemView {
    pub seq: u64,
    pub node: crate::NodeId,
    /// The node's lifecycle state.
    pub state: crate::NodeState,
    pub system: crate::systems::NodeSystem,
    /// The live spec's `bootstrap.substituters` and `bootstrap.trustedPublicKeys`.
    pub substituters: Vec<String>,
    pub trusted_public_keys: Vec<String>,
    /// The open rollout the node is a member of.
    pub rollout: Option<u64>,
}

/// `GET /v1/rollouts`: every rollout, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutsView {
    pub seq: u64,
    pub rollouts: Vec<crate::rollouts::view::RolloutView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_event_and_a_batch_both_decode() {
        let one = br#"{"id":"0190f5a4-7c1e-7a4b-9d3e-5f0c2b1a9e77","type":"NodeDrainRequested","node":"n1","comment":"disk"}"#;
        let p = decode_submission(one).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].comment.as_deref(), Some("disk"));
        assert_eq!(p[0].to_json(), serde_json::from_slice::<Value>(one).unwrap());
        let two = br#"[{"type":"NodeRetired","node":"a"},{"type":"NodeRetired","node":"b"}]"#;
        assert_eq!(decode_submission(two).unwrap().len(), 2);
    }

    #[test]
    fn malformed_submissions_name_the_event_and_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"nope", "not valid JSON"),
            (b"[]", "empty"),
            (b"42", "expected an event object"),
            (br#"[{"type":"NodeRetired","node":"a"},{"node":"b"}]"#, "event 1: the event has no `type`"),
            (br#"{"type":"NodeRetired","node":"a","oops":1}"#, "unknown field `oops`"),
            (br#"{"type":"NodeRetired","node":"a b"}"#, "node id `a b` is not valid"),
            (br#"{"type":"NodeRetired","node":"a","id":"x"}"#, "must be a UUID"),
            (
                br#"{"type":"NodeFailed","node":"a","reason":"\u001b[2Jgone"}"#,
                "`reason` contains the control character U+001B",
            ),
            (
                br#"{"type":"NodeRetired","node":"a","comment":"\u0007"}"#,
                "`comment` contains the control character U+0007",
            ),
            (
                br#"[{"type":"NodeRetired","node":"a","id":"0190f5a4-7c1e-7a4b-9d3e-5f0c2b1a9e77"},
                    {"type":"NodeRetired","node":"b","id":"0190f5a4-7c1e-7a4b-9d3e-5f0c2b1a9e77"}]"#,
                "appears twice",
            ),
        ];
        for (body, want) in cases {
            let err = decode_submission(body).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }
}
