//! The kinds of events, without their data: names, frozen numeric codes (what storage and the by-type index
//! record), and the human and binary forms. Generated from the one catalogue table (`with_catalogue!` in
//! `lib.rs`), below every aggregate, so rejections and rules can name kinds without knowing their payloads.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! define_kinds {
    ($( $code:literal => $name:ident ),* $(,)?) => {
        /// The kind of an event, without its data.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $( $name, )*
        }

        impl EventKind {
            /// Every kind, in catalogue order: what the fuzz targets and the property tests enumerate.
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
        }
    };
}

with_catalogue!(define_kinds);

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

impl schemars::JsonSchema for EventKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventKind".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        schemars::json_schema!({ "type": "string", "description": "The type of an event.", "enum": names })
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
}
