//! Access events: credentials granted to nodes. Only token hashes ever enter the log.

use serde::{Deserialize, Serialize};

use super::{Emitters, EventData};
use crate::ids::{Hash, NodeId};

/// A node token was issued; it replaces the node's previous token, which stops working. Operator
/// (`sendan node token`) or system (the bootstrap exchange). Keeps: the node exists and is not retired; a
/// token hash belongs to one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTokenIssued {
    pub node: NodeId,
    /// sha256 of the token; the token itself is given to the node once and never stored.
    pub token: Hash,
}

impl EventData for NodeTokenIssued {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}
