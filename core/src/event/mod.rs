//! The event envelope and the payload of every kind.
//!
//! A [`Proposal`] is what a client asks for; an [`Event`] is a proposal the log accepted, with its dense
//! `seq`, its place in the hash chain and the seq of the event that caused it, if one did. The kinds and their
//! frozen codes are one table (`with_catalogue!` in `lib.rs`); each kind's struct lives with its aggregate
//! (`nodes/events.rs`, `machines/events.rs`, `specs/events.rs`, `systems/events.rs`, `rollouts/events.rs`) and is
//! re-exported here.

use std::fmt;

use serde::de::{self, Error as _};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::emitters::{Emitters, EventData};
pub use crate::kind::EventKind;
pub use crate::machines::events::*;
pub use crate::nixos::{SwitchAction, SystemKind, switch_succeeded, system_kind};
pub use crate::nodes::events::*;
pub use crate::power::events::*;
pub use crate::rollouts::events::*;
pub use crate::services::events::*;
pub use crate::specs::events::*;
pub use crate::systems::events::*;

use crate::ids::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};

/// The schema version every newly accepted event is stamped with: 2 added `cause` to the envelope (and the halt's
/// `revert` list); version 1 records are upgraded in [`crate::upgrade`].
pub const FORMAT_VERSION: u16 = 2;

macro_rules! define_payload {
    ($( $code:literal => $name:ident ),* $(,)?) => {
        /// The body of an event: one variant per kind, each wrapping that kind's struct.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Payload {
            $( $name($name), )*
        }

        impl EventKind {
            /// Who may emit events of this kind (the admin may emit every kind).
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

            /// The JSON form of a payload: the kind's name as `type`, beside the kind's fields.
            #[derive(Deserialize, schemars::JsonSchema)]
            #[serde(tag = "type")]
            #[schemars(rename = "Payload")]
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

        pub(crate) fn deserialize_binary_element<'de, A: de::SeqAccess<'de>>(code: u16, seq: &mut A) -> Result<Payload, A::Error> {
            let missing = || A::Error::custom("event payload is truncated");
            match code {
                $( $code => Ok(Payload::$name(seq.next_element::<$name>()?.ok_or_else(missing)?)), )*
                other => Err(A::Error::custom(format_args!("unknown event kind code {other}"))),
            }
        }
    };
}

with_catalogue!(define_payload);

impl schemars::JsonSchema for Payload {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Payload".into()
    }
    /// One object schema per kind (`type` and the kind's fields), without `additionalProperties: false`: a
    /// payload travels flat beside the envelope's fields, so the envelope's schema (`Event`, `Proposal`) closes
    /// the object instead, with `unevaluatedProperties: false`.
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = json::PayloadOwned::json_schema(generator);
        if let Some(variants) = schema.get_mut("oneOf").and_then(|v| v.as_array_mut()) {
            for v in variants.iter_mut().filter_map(|v| v.as_object_mut()) {
                v.remove("additionalProperties");
            }
        }
        schema
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

impl From<crate::rollouts::planner::RolloutMove> for Payload {
    fn from(m: crate::rollouts::planner::RolloutMove) -> Payload {
        use crate::rollouts::planner::RolloutMove as M;
        match m {
            M::WaveStarted(e) => e.into(),
            M::Drain(e) => e.into(),
            M::Uncordon(e) => e.into(),
            M::Completed(e) => e.into(),
            M::Halted(e) => e.into(),
            M::NodesReverted(e) => e.into(),
            M::Reverted(e) => e.into(),
            M::MemberLeft(e) => e.into(),
        }
    }
}

impl From<crate::services::planner::Decision> for Payload {
    fn from(d: crate::services::planner::Decision) -> Payload {
        use crate::services::planner::Decision as D;
        match d {
            D::Place(p) => p.into(),
            D::Reschedule(r) => r.into(),
            D::Migrate(m) => m.into(),
            D::Update(u) => u.into(),
            D::Stop(s) => s.into(),
        }
    }
}

impl From<crate::services::planner::DeploymentMove> for Payload {
    fn from(m: crate::services::planner::DeploymentMove) -> Payload {
        use crate::services::planner::DeploymentMove as M;
        match m {
            M::Start(s) => s.into(),
            M::End(e) => e.into(),
        }
    }
}

impl crate::rollouts::planner::RolloutDecision {
    /// The event the decision proposes.
    pub fn payload(&self) -> Payload {
        self.event.clone().into()
    }
}

impl crate::machines::enrollment::EnrollmentDecision {
    /// The event that carries the decision out, under the live spec `spec`.
    #[allow(clippy::wrong_self_convention)]
    pub fn payload(&self, spec: crate::ids::Hash) -> Payload {
        use crate::machines::enrollment::EnrollmentDecision as D;
        match self.clone() {
            D::Bind { machine, binding, .. } => NodeCommissioned {
                node: binding.node,
                machine,
                class: Some(binding.class),
                pool: binding.pool,
                profile: Some(binding.profile),
                rule: Some(binding.rule),
            }
            .into(),
            D::Conflict { machine, priority, rules, .. } => {
                EnrollmentConflicted { machine, spec, priority, rules }.into()
            }
            D::Refuse { machine, rule, reasons, .. } => EnrollmentRefused { machine, spec, rule, reasons }.into(),
            D::RequestInstall { node, .. } => NodeInstallRequested { node }.into(),
            D::RefusePlan { node, layout, reasons, .. } => InstallPlanRefused { node, spec, layout, reasons }.into(),
        }
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
    /// The seq of the event that caused this one: every controller decision names the event it was decided on;
    /// an operator's event may name one. `check` refuses a cause that is not an event of the log.
    pub cause: Option<u64>,
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
    /// The seq of the event that caused this one, if one did (`None` in records of version 1).
    pub cause: Option<u64>,
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

    /// A payload travels flat beside the envelope's fields in JSON, so no kind may have a field the envelope
    /// has: it would be overwritten (or make the event undecodable).
    #[test]
    fn no_payload_field_shares_a_name_with_the_envelope() {
        const ENVELOPE: [&str; 9] = ["seq", "id", "time", "actor", "comment", "cause", "version", "prev", "hash"];
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<Payload>().to_value();
        let variants = schema["oneOf"].as_array().expect("one schema per kind");
        assert_eq!(variants.len(), EventKind::ALL.len());
        for v in variants {
            let kind = &v["properties"]["type"]["const"];
            for field in v["properties"].as_object().into_iter().flatten().map(|(k, _)| k.as_str()) {
                assert!(!ENVELOPE.contains(&field), "{kind}'s field `{field}` is also an envelope field");
            }
        }
    }
}
