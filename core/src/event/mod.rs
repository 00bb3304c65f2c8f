//! The event envelope and the catalogue of event kinds.
//!
//! A [`Proposal`] is what a client asks for; an [`Event`] is a proposal the log accepted, with its dense
//! `seq` and its place in the hash chain. Every kind is listed once, in the `events!` table below, with a
//! frozen numeric code: the code, not the declaration order, is what storage records, so kinds may be
//! added anywhere but a code is never reused.

/// `EventData` for a payload about one node (its `node` field), emitted by `$emitters`. Defined before the
/// submodules so that each of them can use it.
macro_rules! about_node {
    ($name:ident, $emitters:expr) => {
        impl $crate::event::EventData for $name {
            const EMITTERS: $crate::event::Emitters = $emitters;
            fn node(&self) -> Option<&$crate::ids::NodeId> {
                Some(&self.node)
            }
        }
    };
}

mod access;
mod bootstrap;
mod lifecycle;
mod spec;
mod systems;

use std::fmt;

use serde::de::{self, Error as _};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use access::*;
pub use bootstrap::*;
pub use lifecycle::*;
pub use spec::*;
pub use systems::*;

use crate::ids::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};

/// The schema version every newly accepted event is stamped with. Older versions are upgraded in
/// [`crate::record`].
pub const FORMAT_VERSION: u16 = 1;

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

macro_rules! events {
    ($( $code:literal => $name:ident ),* $(,)?) => {
        /// The body of an event: one variant per kind, each wrapping that kind's struct.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Payload {
            $( $name($name), )*
        }

        /// The kind of an event, without its data.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $( $name, )*
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$( EventKind::$name, )*];

            pub fn name(self) -> &'static str {
                match self { $( EventKind::$name => stringify!($name), )* }
            }

            /// The frozen numeric code stored in records and indexes.
            pub fn code(self) -> u16 {
                match self { $( EventKind::$name => $code, )* }
            }

            pub fn from_code(code: u16) -> Option<EventKind> {
                match code { $( $code => Some(EventKind::$name), )* _ => None }
            }

            pub fn from_name(name: &str) -> Option<EventKind> {
                match name { $( stringify!($name) => Some(EventKind::$name), )* _ => None }
            }

            pub fn emitters(self) -> Emitters {
                match self { $( EventKind::$name => <$name as EventData>::EMITTERS.or(Emitters::ADMIN), )* }
            }
        }

        impl Payload {
            pub fn kind(&self) -> EventKind {
                match self { $( Payload::$name(_) => EventKind::$name, )* }
            }

            pub fn node(&self) -> Option<&NodeId> {
                match self { $( Payload::$name(p) => p.node(), )* }
            }

            pub fn machine(&self) -> Option<&MachineId> {
                match self { $( Payload::$name(p) => p.machine(), )* }
            }
        }

        $( impl From<$name> for Payload {
            fn from(p: $name) -> Payload { Payload::$name(p) }
        } )*

        mod json {
            use serde::{Deserialize, Serialize};
            use super::*;

            #[derive(Serialize)]
            #[serde(tag = "type")]
            pub(super) enum PayloadRef<'a> { $( $name(&'a $name), )* }

            #[derive(Deserialize)]
            #[serde(tag = "type")]
            pub(super) enum PayloadOwned { $( $name($name), )* }

            impl<'a> From<&'a Payload> for PayloadRef<'a> {
                fn from(p: &'a Payload) -> Self {
                    match p { $( Payload::$name(x) => PayloadRef::$name(x), )* }
                }
            }

            impl From<PayloadOwned> for Payload {
                fn from(p: PayloadOwned) -> Self {
                    match p { $( PayloadOwned::$name(x) => Payload::$name(x), )* }
                }
            }
        }

        /// Binary form: the kind's code, then the kind's struct.
        fn serialize_binary<S: Serializer>(p: &Payload, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&p.kind().code())?;
            match p { $( Payload::$name(x) => t.serialize_element(x)?, )* }
            t.end()
        }

        fn deserialize_binary_element<'de, A: de::SeqAccess<'de>>(code: u16, seq: &mut A) -> Result<Payload, A::Error> {
            let missing = || A::Error::custom("event payload is truncated");
            match code {
                $( $code => Ok(Payload::$name(seq.next_element::<$name>()?.ok_or_else(missing)?)), )*
                other => Err(A::Error::custom(format_args!("unknown event kind code {other}"))),
            }
        }
    };
}

// The catalogue. Codes are frozen: add new kinds with new codes, never renumber or reuse one.
events! {
    // Node lifecycle (lifecycle.rs): 1–13.
    1 => MachineDiscovered,
    2 => NodeCommissioned,
    3 => NodeInstallRequested,
    4 => NodeInstallStarted,
    5 => NodeInstallFailed,
    6 => NodeActivated,
    7 => NodeDrainRequested,
    8 => NodeUncordoned,
    9 => NodeReprovisionRequested,
    10 => NodeRescueRequested,
    11 => NodeFailed,
    12 => NodeRetired,
    13 => NodeRebound,
    // Cluster spec (spec.rs).
    14 => SpecApplied,
    // Access (access.rs).
    15 => NodeTokenIssued,
    // Bootstrap and enrollment (bootstrap.rs): 20–39.
    20 => BootstrapTokenIssued,
    21 => BootstrapTokenClaimed,
    22 => BootstrapTokenExchanged,
    23 => InstallProgressed,
    24 => InstallPlanRefused,
    25 => EnrollmentConflicted,
    26 => EnrollmentRefused,
    27 => MachinePhonedHome,
    // Systems and rollouts (systems.rs): 40–57.
    40 => NodeSystemSet,
    41 => NodePinned,
    42 => NodeUnpinned,
    43 => RolloutStarted,
    44 => RolloutWaveStarted,
    45 => RolloutCompleted,
    46 => RolloutHalted,
    47 => RolloutNodesReverted,
    48 => RolloutReverted,
    49 => SystemReported,
    50 => SystemPrefetched,
    51 => SystemPrefetchFailed,
    52 => SystemActivating,
    53 => SystemProfileSet,
    54 => SystemSwitched,
    55 => SystemHealthFailed,
    56 => SystemConfirmed,
    57 => SystemRolledBack,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EventKind {
    type Err = crate::ids::InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::from_name(s).ok_or_else(|| crate::ids::InvalidValue {
            what: "event type",
            value: s.chars().take(80).collect(),
            why: "it is not a known event type (see `sendan events types`)",
        })
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(self.name()) } else { s.serialize_u16(self.code()) }
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(D::Error::custom)
        } else {
            let code = u16::deserialize(d)?;
            EventKind::from_code(code).ok_or_else(|| D::Error::custom(format_args!("unknown event kind code {code}")))
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { json::PayloadRef::from(self).serialize(s) } else { serialize_binary(self, s) }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return json::PayloadOwned::deserialize(d).map(Payload::from);
        }
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event kind code followed by its payload")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
                let code: u16 = seq.next_element()?.ok_or_else(|| A::Error::custom("event kind code is missing"))?;
                deserialize_binary_element(code, &mut seq)
            }
        }
        d.deserialize_tuple(2, V)
    }
}

/// An event as a client proposes it, stamped by the server with the actor and the leader's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The idempotency key: re-submitting an applied id returns the original `seq`.
    pub id: EventId,
    pub time: Timestamp,
    pub actor: Actor,
    /// Why, in the operator's words (`--comment`); kept in the audit trail.
    pub comment: Option<String>,
    pub payload: Payload,
}

/// An accepted event: a proposal with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Dense, starting at 1.
    pub seq: u64,
    pub id: EventId,
    /// The leader's clock at proposal, raised to the previous event's time so that time never goes back
    /// along the log.
    pub time: Timestamp,
    pub actor: Actor,
    pub comment: Option<String>,
    pub payload: Payload,
    /// The schema version this event was written with.
    pub version: u16,
    /// The previous event's hash ([`Hash::GENESIS`] for seq 1).
    pub prev: Hash,
    /// `sha256(prev ‖ seq ‖ canonical bytes)`, see [`crate::chain`].
    pub hash: Hash,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }
    pub fn node(&self) -> Option<&NodeId> {
        self.payload.node()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_are_unique_and_names_round_trip() {
        let mut codes: Vec<u16> = EventKind::ALL.iter().map(|k| k.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), EventKind::ALL.len());
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.name()), Some(*k));
            assert_eq!(EventKind::from_code(k.code()), Some(*k));
        }
    }

    #[test]
    fn payload_is_tagged_in_json_and_coded_in_postcard() {
        let p = Payload::NodeDrainRequested(NodeDrainRequested { node: NodeId::new("n1").unwrap() });
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"type":"NodeDrainRequested","node":"n1"}"#);
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), p);
        let bin = postcard::to_allocvec(&p).unwrap();
        assert_eq!(bin, [7, 2, b'n', b'1']);
        assert_eq!(postcard::from_bytes::<Payload>(&bin).unwrap(), p);
    }

    #[test]
    fn json_payload_refuses_unknown_fields_and_types() {
        let err = serde_json::from_str::<Payload>(r#"{"type":"NodeDrainRequested","node":"n1","x":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
        let err = serde_json::from_str::<Payload>(r#"{"type":"NodeExploded","node":"n1"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `NodeExploded`"), "{err}");
    }
}
