//! Identifiers and small value types every event carries: node and machine ids, event ids, actors,
//! timestamps and hashes.
//!
//! Each type has one serde form for people (JSON: strings) and one for storage (postcard: compact
//! binary), chosen by `is_human_readable`, so the same value round-trips through both.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An identifier or value that does not have the required shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not valid: {why}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

fn check_ident(what: &'static str, value: &str, max: usize, extra: &[char]) -> Result<(), InvalidValue> {
    let bad = |why| Err(InvalidValue { what, value: value.chars().take(80).collect(), why });
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.len() > max {
        return bad("it is too long");
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("it must start with a letter or digit");
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || extra.contains(&c)) {
        return bad("only letters, digits, `-`, `_` and `.` are allowed");
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, $extra:expr) => {
        $(#[$doc])*
        ///
        /// Cloning is a reference-count increment: ids are copied into every event, record and index.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value = value.into();
                check_ident($what, &value, $max, $extra)?;
                Ok(Self(value.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": concat!("A ", $what, ": letters, digits, `-`, `_` and `.`, starting with a letter or digit."),
                    "minLength": 1,
                    "maxLength": $max,
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(D::Error::custom)
            }
        }
    };
}

string_id!(
    /// A declared node's name (`cp-1`, `worker-07`): what the Nix declaration calls the machine's role.
    NodeId, "node id", 63, &[]
);
string_id!(
    /// A physical machine's key: its DMI system uuid, else its machine-id, else its first MAC.
    MachineId, "machine id", 128, &[':']
);
string_id!(
    /// One placement of a service: `<service>.<number>` (`web.7`), numbered per service and never reused.
    InstanceId, "instance id", 128, &[]
);

/// The client-chosen idempotency key of an event (a UUID).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    pub fn from_u128(v: u128) -> Self {
        Self(uuid::Uuid::from_u128(v))
    }

    /// A deterministic id for a decision: the same parts always give the same id, so a projection that
    /// decides the same thing again (on another pass, or on a new leader) proposes an event the log already
    /// holds, and the log answers with the original seq instead of recording it twice.
    pub fn derive(parts: &[&[u8]]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        let digest: [u8; 32] = h.finalize().into();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for EventId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(EventId).map_err(|_| InvalidValue {
            what: "event id",
            value: s.chars().take(80).collect(),
            why: "it must be a UUID such as 0190f5a4-7c1e-7a4b-9d3e-5f0c2b1a9e77",
        })
    }
}

/// Who proposed an event, taken from the authenticated token, never from the request body.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Actor {
    /// An operator holding the admin token.
    Admin,
    /// A node's own agent, holding that node's token.
    Node(NodeId),
    /// A netbooted installer holding a single-use bootstrap token, before its node token exists.
    Bootstrap(MachineId),
    /// A projection running on the leader (enrollment, rollout controller, scheduler).
    System(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Admin => f.write_str("admin"),
            Actor::Node(n) => write!(f, "node:{n}"),
            Actor::Bootstrap(m) => write!(f, "bootstrap:{m}"),
            Actor::System(c) => write!(f, "system:{c}"),
        }
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Actor {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "admin" => Ok(Actor::Admin),
            Some(("node", n)) => Ok(Actor::Node(n.parse()?)),
            Some(("bootstrap", m)) => Ok(Actor::Bootstrap(m.parse()?)),
            Some(("system", c)) if !c.is_empty() && c.len() <= 63 => Ok(Actor::System(c.to_owned())),
            _ => Err(InvalidValue {
                what: "actor",
                value: s.chars().take(80).collect(),
                why: "expected `admin`, `node:ID`, `bootstrap:MACHINE` or `system:NAME`",
            }),
        }
    }
}

/// A string schema with a description and, when given, a pattern: the JSON form of the ids below.
fn string_schema(description: &str, pattern: Option<&str>) -> schemars::Schema {
    let mut schema = schemars::json_schema!({ "type": "string", "description": description });
    if let Some(p) = pattern {
        schema.insert("pattern".into(), p.into());
    }
    schema
}

impl schemars::JsonSchema for Actor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Actor".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        string_schema(
            "Who proposed the event: `admin`, `node:ID`, `bootstrap:MACHINE` or `system:NAME`.",
            Some("^(admin|node:.+|bootstrap:.+|system:.+)$"),
        )
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

/// Milliseconds since the Unix epoch, UTC. RFC 3339 in JSON, an integer in storage.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }
    pub fn parse_rfc3339(s: &str) -> Result<Self, InvalidValue> {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
            InvalidValue {
                what: "timestamp",
                value: s.chars().take(80).collect(),
                why: "expected RFC 3339, such as 2026-11-23T10:00:00Z",
            }
        })?;
        Ok(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339, UTC, millisecond precision.",
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&self.to_rfc3339()) } else { s.serialize_i64(self.0) }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Timestamp::parse_rfc3339(&s).map_err(D::Error::custom)
        } else {
            i64::deserialize(d).map(Timestamp)
        }
    }
}

/// A sha256 digest: the chain link of an event, or a document digest. Hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev` of the first event.
    pub const GENESIS: Hash = Hash([0; 32]);

    pub fn of(bytes: &[u8]) -> Hash {
        use sha2::Digest;
        Hash(sha2::Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.to_hex()[..12])
    }
}

impl FromStr for Hash {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| InvalidValue {
            what: "hash",
            value: s.chars().take(80).collect(),
            why: "expected 64 hexadecimal digits",
        })?;
        Ok(Hash(out))
    }
}

impl schemars::JsonSchema for Hash {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Hash".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        string_schema("A sha256 digest, 64 lowercase hex digits.", Some("^[0-9a-f]{64}$"))
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&self.to_hex()) } else { self.0.serialize(s) }
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(D::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Hash)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_names_and_refuse_garbage() {
        assert!(NodeId::new("worker-07").is_ok());
        assert!(NodeId::new("cp.1").is_ok());
        for bad in ["", "-x", "a b", "a/b", "é", &"x".repeat(64)] {
            let err = NodeId::new(bad).unwrap_err();
            assert_eq!(err.what, "node id");
        }
        assert!(MachineId::new("52:54:00:12:34:56").is_ok());
    }

    #[test]
    fn derived_ids_are_deterministic_and_distinct() {
        let a = EventId::derive(&[b"enroll", b"m1"]);
        assert_eq!(a, EventId::derive(&[b"enroll", b"m1"]));
        assert_ne!(a, EventId::derive(&[b"enroll", b"m2"]));
        // Parts are length-prefixed: moving a byte between parts changes the id.
        assert_ne!(EventId::derive(&[b"ab", b"c"]), EventId::derive(&[b"a", b"bc"]));
    }

    #[test]
    fn actor_round_trips_as_a_string() {
        for a in ["admin", "node:n1", "bootstrap:m-1", "system:rollout"] {
            let actor: Actor = a.parse().unwrap();
            assert_eq!(actor.to_string(), a);
            assert_eq!(serde_json::to_string(&actor).unwrap(), format!("\"{a}\""));
        }
        assert!("root".parse::<Actor>().is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_in_json_and_integers_in_storage() {
        let t = Timestamp(1_700_000_000_123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2023-11-14T22:13:20.123Z\"");
        let back: Timestamp = serde_json::from_str("\"2023-11-14T22:13:20.123Z\"").unwrap();
        assert_eq!(back, t);
        let bin = postcard::to_allocvec(&t).unwrap();
        assert_eq!(postcard::from_bytes::<Timestamp>(&bin).unwrap(), t);
        assert_eq!(Timestamp::parse_rfc3339("2023-11-14T23:13:20.123+01:00").unwrap(), t);
    }

    #[test]
    fn hashes_are_hex_in_json() {
        let h = Hash::of(b"x");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert_eq!(postcard::from_bytes::<Hash>(&postcard::to_allocvec(&h).unwrap()).unwrap(), h);
    }
}
