//! The stored form of an event, and the one place where old formats are upgraded.
//!
//! A record is `[RECORD_V1][postcard(seq)][prev: 32 bytes][hash: 32 bytes][body]`. The body is the
//! event's canonical bytes — the bytes the hash covers — and starts with its own schema version:
//! `postcard(version, id, time, actor, comment, cause, payload)` (version 2; version 1 had no `cause`).
//! Verification hashes the body exactly as stored, so a future change to the in-memory types can never make an
//! old record look tampered with. Bodies of older versions are decoded by [`crate::upgrade`].

use serde::{Deserialize, Serialize};

use crate::event::{Event, FORMAT_VERSION, Payload, Proposal};
use crate::ids::{Actor, EventId, Hash, Timestamp};

/// The framing version of a record (the first byte).
pub const RECORD_V1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is empty")]
    Empty,
    #[error("record framing version {0} is not supported by this build")]
    UnknownFraming(u8),
    #[error("event schema version {0} is not supported by this build")]
    UnknownVersion(u16),
    #[error("the record does not decode: {0}")]
    Malformed(String),
    #[error("the record has {0} bytes left over after the event")]
    TrailingBytes(usize),
}

pub(crate) fn malformed(e: postcard::Error) -> RecordError {
    RecordError::Malformed(e.to_string())
}

#[derive(Serialize)]
struct BodyRef<'a> {
    version: u16,
    id: &'a EventId,
    time: Timestamp,
    actor: &'a Actor,
    comment: &'a Option<String>,
    cause: Option<u64>,
    payload: &'a Payload,
}

/// Version 2 of the body, after its version field.
#[derive(Deserialize)]
struct BodyV2 {
    id: EventId,
    time: Timestamp,
    actor: Actor,
    comment: Option<String>,
    cause: Option<u64>,
    payload: Payload,
}

/// The canonical bytes of an event with the current schema version: what the chain hashes.
pub fn encode_body(
    id: &EventId,
    time: Timestamp,
    actor: &Actor,
    comment: &Option<String>,
    cause: Option<u64>,
    payload: &Payload,
) -> Vec<u8> {
    let body = BodyRef { version: FORMAT_VERSION, id, time, actor, comment, cause, payload };
    // infallible: postcard writes owned, well-formed values into a Vec, which has no way to fail.
    postcard::to_allocvec(&body).expect("postcard encoding into a Vec")
}

/// The body fields of a stored event, upgraded to the current in-memory types.
pub struct DecodedBody {
    pub version: u16,
    pub id: EventId,
    pub time: Timestamp,
    pub actor: Actor,
    pub comment: Option<String>,
    pub cause: Option<u64>,
    pub payload: Payload,
}

/// Decode canonical bytes of any supported schema version.
pub fn decode_body(body: &[u8]) -> Result<DecodedBody, RecordError> {
    let (version, rest) = postcard::take_from_bytes::<u16>(body).map_err(malformed)?;
    match version {
        1 => crate::upgrade::decode_body_v1(rest),
        2 => {
            let (b, rest) = postcard::take_from_bytes::<BodyV2>(rest).map_err(malformed)?;
            if !rest.is_empty() {
                return Err(RecordError::TrailingBytes(rest.len()));
            }
            let (id, time, actor, comment, cause, payload) = (b.id, b.time, b.actor, b.comment, b.cause, b.payload);
            Ok(DecodedBody { version, id, time, actor, comment, cause, payload })
        }
        v => Err(RecordError::UnknownVersion(v)),
    }
}

/// What an event says, apart from where and when it was applied: the digest of its actor, comment and payload.
/// An id re-sent with the same content is a retry (answered with the original receipt); with other content it is
/// a different event reusing the id (refused).
pub fn content_digest(actor: &Actor, comment: &Option<String>, payload: &Payload) -> Hash {
    // infallible: postcard writes owned, well-formed values into a Vec, which has no way to fail.
    Hash::of(&postcard::to_allocvec(&(actor, comment, payload)).expect("postcard encoding into a Vec"))
}

/// The link of the hash chain: `sha256(prev ‖ seq as 8 big-endian bytes ‖ body)`.
pub fn link(prev: &Hash, seq: u64, body: &[u8]) -> Hash {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(prev.0);
    h.update(seq.to_be_bytes());
    h.update(body);
    Hash(h.finalize().into())
}

/// Turn an accepted proposal into the event at `seq` after `prev`, at `time`.
pub fn seal(proposal: &Proposal, seq: u64, time: Timestamp, prev: Hash) -> Event {
    seal_with_record(proposal, seq, time, prev).0
}

/// [`seal`], also returning the event's stored record (encoding the body once for both).
pub fn seal_with_record(proposal: &Proposal, seq: u64, time: Timestamp, prev: Hash) -> (Event, Vec<u8>) {
    let body = encode_body(&proposal.id, time, &proposal.actor, &proposal.comment, proposal.cause, &proposal.payload);
    let hash = link(&prev, seq, &body);
    let event = Event {
        seq,
        id: proposal.id,
        time,
        actor: proposal.actor.clone(),
        comment: proposal.comment.clone(),
        cause: proposal.cause,
        payload: proposal.payload.clone(),
        version: FORMAT_VERSION,
        prev,
        hash,
    };
    let record = frame(seq, &prev, &hash, &body);
    (event, record)
}

/// The stored record of `event` as this build writes it (the current schema version); [`encode`] is for events
/// this build sealed — an event decoded from an older record keeps its own stored bytes.
pub fn encode(event: &Event) -> Vec<u8> {
    let body = encode_body(&event.id, event.time, &event.actor, &event.comment, event.cause, &event.payload);
    frame(event.seq, &event.prev, &event.hash, &body)
}

fn frame(seq: u64, prev: &Hash, hash: &Hash, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 80);
    out.push(RECORD_V1);
    // infallible: a u64 into a Vec.
    out = postcard::to_extend(&seq, out).expect("postcard encoding into a Vec");
    out.extend_from_slice(&prev.0);
    out.extend_from_slice(&hash.0);
    out.extend_from_slice(body);
    out
}

/// The parts of a record, without decoding the body: what verification needs.
pub struct RawRecord<'a> {
    pub seq: u64,
    pub prev: Hash,
    pub hash: Hash,
    pub body: &'a [u8],
}

pub fn split(bytes: &[u8]) -> Result<RawRecord<'_>, RecordError> {
    let (&tag, rest) = bytes.split_first().ok_or(RecordError::Empty)?;
    if tag != RECORD_V1 {
        return Err(RecordError::UnknownFraming(tag));
    }
    let (seq, rest) = postcard::take_from_bytes::<u64>(rest).map_err(malformed)?;
    if rest.len() < 64 {
        return Err(RecordError::Malformed("the record is shorter than its two hashes".into()));
    }
    let (prev, rest) = rest.split_at(32);
    let (hash, body) = rest.split_at(32);
    let array = |b: &[u8]| <[u8; 32]>::try_from(b).map_err(|_| RecordError::Malformed("a hash is not 32 bytes".into()));
    Ok(RawRecord { seq, prev: Hash(array(prev)?), hash: Hash(array(hash)?), body })
}

/// Decode a stored record (any supported version) into an event.
pub fn decode(bytes: &[u8]) -> Result<Event, RecordError> {
    let raw = split(bytes)?;
    let b = decode_body(raw.body)?;
    Ok(Event {
        seq: raw.seq,
        id: b.id,
        time: b.time,
        actor: b.actor,
        comment: b.comment,
        cause: b.cause,
        payload: b.payload,
        version: b.version,
        prev: raw.prev,
        hash: raw.hash,
    })
}
