//! The live cluster spec aggregate: which ClusterSpec document is live (`SpecApplied`) and every spec ever
//! applied, by digest. `events.rs` holds its one event, `rules.rs` what `check` asks of it, `fold.rs` how
//! `evolve` records it. The declaration model itself (`ClusterSpec`, its validation) is `crate::spec`, below the
//! aggregates.

pub mod events;
pub mod fold;
pub mod rules;

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::ids::Hash;
use crate::rejection::Rejection;
use crate::spec::{ClusterSpec, LiveSpec};

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
