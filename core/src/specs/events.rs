//! Cluster spec events: the Nix declaration, as a ClusterSpec document, becoming the live desired state.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::emitters::{Emitters, EventData};
use crate::ids::Hash;

/// A ClusterSpec document became the live spec (`sendan apply`). Operator only. Keeps: the document parses,
/// validates and has the stated digest; applying the live spec's digest again is refused, so re-applying
/// records nothing. Every spec ever applied stays fetchable by digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecApplied {
    /// sha256 of the document's canonical JSON.
    pub digest: Hash,
    /// The document, canonical JSON.
    pub document: String,
}

impl EventData for SpecApplied {
    const EMITTERS: Emitters = Emitters::NONE;
}
