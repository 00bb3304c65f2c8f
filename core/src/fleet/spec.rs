//! The live cluster spec and every spec ever applied: `SpecApplied`'s rules and fold.

use std::sync::Arc;

use imbl::OrdMap;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::FleetState;
use crate::event::SpecApplied;
use crate::ids::{Hash, NodeId};
use crate::rejection::Rejection;
use crate::spec::ClusterSpec;

/// The spec that is live, with the event that made it so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSpec {
    /// The seq of the `SpecApplied` event.
    pub seq: u64,
    pub digest: Hash,
    pub spec: Arc<ClusterSpec>,
}

/// Stored as its canonical document and parsed back: the spec types are JSON-shaped (internally tagged
/// enums), which postcard cannot carry.
impl Serialize for LiveSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.seq, self.digest, self.spec.canonical_json()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LiveSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (seq, digest, document): (u64, Hash, String) = Deserialize::deserialize(d)?;
        let spec = ClusterSpec::from_json(&document).map_err(D::Error::custom)?;
        Ok(LiveSpec { seq, digest, spec: Arc::new(spec) })
    }
}

/// What the log knows about specs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecState {
    pub live: Option<Arc<LiveSpec>>,
    /// Every digest ever applied, with the seq of its first `SpecApplied`.
    pub applied: OrdMap<Hash, u64>,
}

/// Parse and validate a document the way `check` does; `Ok` means it may become the live spec.
pub fn parse(document: &str, digest: &Hash) -> Result<ClusterSpec, Rejection> {
    let spec = ClusterSpec::from_json(document).map_err(|e| Rejection::InvalidSpec { reason: e.to_string() })?;
    spec.validate().map_err(|e| Rejection::InvalidSpec { reason: e.to_string() })?;
    let actual = spec.digest();
    if actual != *digest {
        return Err(Rejection::InvalidSpec {
            reason: format!("the document's digest is {actual}, not the {digest} it was submitted with"),
        });
    }
    Ok(spec)
}

pub(super) fn check(state: &FleetState, p: &SpecApplied) -> Result<(), Rejection> {
    if let Some(live) = &state.spec.live
        && live.digest == p.digest
    {
        return Err(Rejection::SpecUnchanged { digest: p.digest, seq: live.seq });
    }
    parse(&p.document, &p.digest).map(|_| ())
}

pub(super) fn evolve(state: &mut FleetState, seq: u64, p: &SpecApplied) {
    // `check` accepted the document, so it parses; a log that says otherwise keeps the previous spec.
    let Ok(spec) = ClusterSpec::from_json(&p.document) else { return };
    state.spec.live = Some(Arc::new(LiveSpec { seq, digest: p.digest, spec: Arc::new(spec) }));
    state.spec.applied.entry(p.digest).or_insert(seq);
}

/// The fleet's nodes whose declaration the new spec changes (added, removed or different): they carry
/// `SpecApplied` in their history.
pub(super) fn affected_nodes(state: &FleetState, p: &SpecApplied) -> Vec<NodeId> {
    let Ok(new) = ClusterSpec::from_json(&p.document) else { return Vec::new() };
    let old = state.spec.live.as_ref().map(|l| l.spec.clone());
    state
        .nodes
        .keys()
        .filter(|id| {
            let before = old.as_ref().and_then(|s| s.nodes.get(id.as_str()));
            before != new.nodes.get(id.as_str())
        })
        .cloned()
        .collect()
}
