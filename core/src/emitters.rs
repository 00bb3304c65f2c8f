//! Who may emit an event, and what each payload tells the envelope about itself (its node and machine, which
//! drive the by-node index and token scoping). Below the aggregates: every payload struct implements
//! [`EventData`].

use crate::ids::{MachineId, NodeId};

/// The actors allowed to emit a kind of event; the admin may emit every kind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Emitters(u8);

impl Emitters {
    /// Nobody besides the admin.
    pub const NONE: Emitters = Emitters(0);
    pub const ADMIN: Emitters = Emitters(1);
    pub const SYSTEM: Emitters = Emitters(2);
    /// A node's agent, about its own node only.
    pub const NODE: Emitters = Emitters(4);
    /// A netbooted installer, about its own machine (or the node it was bound to) only.
    pub const BOOTSTRAP: Emitters = Emitters(8);

    pub const fn or(self, other: Emitters) -> Emitters {
        Emitters(self.0 | other.0)
    }
    pub const fn contains(self, other: Emitters) -> bool {
        self.0 & other.0 == other.0
    }
}

/// What each payload type tells the envelope about itself.
pub trait EventData {
    /// Besides the admin, who may emit this kind.
    const EMITTERS: Emitters;
    /// The node this event is about, if any (drives the by-node index and node-token scoping).
    fn node(&self) -> Option<&NodeId> {
        None
    }
    /// The machine this event is about, if any (drives bootstrap-token scoping).
    fn machine(&self) -> Option<&MachineId> {
        None
    }
}
