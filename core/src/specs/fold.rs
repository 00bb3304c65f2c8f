//! How `evolve` records `SpecApplied`: the document becomes the live spec.

use std::sync::Arc;

use super::SpecState;
use super::events::SpecApplied;
use crate::ids::NodeId;
use crate::spec::{ClusterSpec, LiveSpec};

/// The document becomes the live spec; the spec live before, if any.
pub fn applied(specs: &mut SpecState, seq: u64, p: &SpecApplied) -> Option<Arc<LiveSpec>> {
    // `check` accepted the document, so it parses; a log that says otherwise keeps the previous spec.
    let Ok(spec) = ClusterSpec::from_json(&p.document) else { return specs.live.clone() };
    let before = specs.live.replace(Arc::new(LiveSpec { seq, digest: p.digest, spec: Arc::new(spec) }));
    specs.applied.entry(p.digest).or_insert(seq);
    before
}

/// Of `nodes`, those whose declaration the spec now live changes from `before` (added, removed or different):
/// they carry the `SpecApplied` in their history.
pub fn affected(specs: &SpecState, before: Option<&LiveSpec>, nodes: impl Iterator<Item = NodeId>) -> Vec<NodeId> {
    let now = specs.live.as_ref().map(|l| &l.spec);
    nodes
        .filter(|id| {
            let old = before.and_then(|s| s.spec.nodes.get(id.as_str()));
            old != now.and_then(|s| s.nodes.get(id.as_str()))
        })
        .collect()
}
