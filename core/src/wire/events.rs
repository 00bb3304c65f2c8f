//! Events on the wire: submissions going in, events, receipts, pages and errors coming out.
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

/// The fields an event carries beside its payload's, for the JSON Schema of [`Event`].
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct EventEnvelope {
    /// Its place in the log, from 1, dense.
    seq: u64,
    /// Its idempotency key.
    id: EventId,
    /// When the leader accepted it.
    time: Timestamp,
    /// Who proposed it, from the token it was sent with.
    actor: Actor,
    comment: Option<String>,
    /// The seq of the event that caused it, when a controller emitted it (or a proposer named one); absent
    /// (null) on events recorded before causes existed.
    cause: Option<u64>,
    /// The record format it was written in.
    version: u16,
    /// The hash of the event before it (all zeros for the first).
    prev: Hash,
    /// sha256 over its record and `prev`: the chain link.
    hash: Hash,
}

/// The fields a proposal may carry beside its payload's, for the JSON Schema of [`ProposalIn`].
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct ProposalEnvelope {
    /// The idempotency key (a UUID); a retry with the same id and content answers the original seq.
    id: Option<EventId>,
    comment: Option<String>,
    /// The seq of an earlier event that caused this one.
    cause: Option<u64>,
}

/// An object schema made of `envelope`'s properties and a payload's: an `allOf` of the two, closed by
/// `unevaluatedProperties: false` (so a field neither knows is refused, as decoding refuses it).
fn with_payload<E: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
    description: &str,
) -> schemars::Schema {
    let envelope = generator.subschema_for::<E>();
    let payload = generator.subschema_for::<Payload>();
    schemars::json_schema!({ "description": description, "allOf": [envelope, payload], "unevaluatedProperties": false })
}

impl schemars::JsonSchema for Event {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Event".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        with_payload::<EventEnvelope>(generator, "An event of the log: its envelope and, flat beside it, its payload.")
    }
}

impl schemars::JsonSchema for ProposalIn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Proposal".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        with_payload::<ProposalEnvelope>(
            generator,
            "An event as a client proposes it: a payload and, optionally, an id, a comment and a cause.",
        )
    }
}

/// `POST /v1/events`: one proposal or a batch of them (applied atomically, in order).
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
pub enum Submission {
    One(ProposalIn),
    Batch(Vec<ProposalIn>),
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SubmitResponse {
    pub events: Vec<Receipt>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Receipt {
    pub id: EventId,
    pub seq: u64,
    pub hash: Hash,
    /// The id had been applied before: this is the original `seq`, not a second copy.
    pub duplicate: bool,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` for the next page; `None` when this page reached the end of the log.
    pub next: Option<u64>,
    /// The last seq applied on the answering member.
    pub head: u64,
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
                "`reason` contains the unprintable character U+001B",
            ),
            (
                br#"{"type":"NodeRetired","node":"a","comment":"\u0007"}"#,
                "`comment` contains the unprintable character U+0007",
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
