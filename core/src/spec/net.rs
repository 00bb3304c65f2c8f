//! IPv4 values of the spec: CIDRs, address ranges, and the arithmetic allocation and its checks need.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 network in CIDR notation (`10.20.1.0/24`). Host bits must be zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    network: Ipv4Addr,
    prefix_length: u8,
}

impl Cidr {
    pub fn new(network: Ipv4Addr, prefix_length: u8) -> Result<Cidr, String> {
        if prefix_length > 32 {
            return Err(format!("prefix length {prefix_length} is larger than 32"));
        }
        let cidr = Cidr { network, prefix_length };
        let masked = Ipv4Addr::from(u32::from(network) & cidr.mask());
        if masked != network {
            return Err(format!("{network}/{prefix_length} has host bits set; did you mean {masked}/{prefix_length}?"));
        }
        Ok(cidr)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix_length(&self) -> u8 {
        self.prefix_length
    }

    fn mask(&self) -> u32 {
        if self.prefix_length == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix_length)) }
    }

    /// The network address, as an integer.
    pub fn first(&self) -> u32 {
        u32::from(self.network)
    }

    /// The broadcast address, as an integer.
    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        (self.first()..=self.last()).contains(&u32::from(address))
    }

    /// The addresses a host may use: all but the network and broadcast address, except in /31 and /32
    /// (RFC 3021), where every address is usable.
    pub fn usable(&self) -> std::ops::RangeInclusive<u32> {
        if self.prefix_length >= 31 { self.first()..=self.last() } else { self.first() + 1..=self.last() - 1 }
    }

    pub fn is_usable(&self, address: Ipv4Addr) -> bool {
        self.usable().contains(&u32::from(address))
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_length)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not an IPv4 CIDR such as 10.0.1.0/24");
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix_length: u8 = len.parse().map_err(|_| bad())?;
        if prefix_length > 32 {
            return Err(bad());
        }
        Cidr::new(network, prefix_length)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An IPv4 network in CIDR notation, host bits zero, such as 10.20.1.0/24.",
            "type": "string",
            "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$"
        })
    }
}

/// An inclusive range of addresses; a single address has `from == to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRange {
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
}

impl AddressRange {
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        (u32::from(self.from)..=u32::from(self.to)).contains(&u32::from(address))
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to { write!(f, "{}", self.from) } else { write!(f, "{}-{}", self.from, self.to) }
    }
}

/// How many integers of `within` are covered by the union of `intervals` (inclusive, possibly overlapping).
pub(crate) fn covered(within: std::ops::RangeInclusive<u32>, intervals: impl IntoIterator<Item = (u32, u32)>) -> u64 {
    let (lo, hi) = (*within.start(), *within.end());
    let mut clipped: Vec<(u32, u32)> = intervals
        .into_iter()
        .filter(|&(a, b)| a <= b && b >= lo && a <= hi)
        .map(|(a, b)| (a.max(lo), b.min(hi)))
        .collect();
    clipped.sort_unstable();
    let mut total = 0u64;
    let mut current: Option<(u32, u32)> = None;
    for (a, b) in clipped {
        current = match current {
            Some((ca, cb)) if u64::from(a) <= u64::from(cb) + 1 => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += u64::from(cb - ca) + 1;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = current {
        total += u64::from(cb - ca) + 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_strictly_and_know_their_usable_addresses() {
        let c: Cidr = "10.0.1.0/28".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.1.0/28");
        assert_eq!(c.usable(), u32::from(Ipv4Addr::new(10, 0, 1, 1))..=u32::from(Ipv4Addr::new(10, 0, 1, 14)));
        assert!(c.contains(Ipv4Addr::new(10, 0, 1, 15)));
        assert!(!c.is_usable(Ipv4Addr::new(10, 0, 1, 15)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 1, 16)));
        let p2p: Cidr = "10.0.0.0/31".parse().unwrap();
        assert!(p2p.is_usable(Ipv4Addr::new(10, 0, 0, 0)) && p2p.is_usable(Ipv4Addr::new(10, 0, 0, 1)));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.last(), u32::MAX);

        assert_eq!(
            "10.0.1.5/24".parse::<Cidr>().unwrap_err(),
            "10.0.1.5/24 has host bits set; did you mean 10.0.1.0/24?"
        );
        for bad in ["10.0.1.0", "10.0.1.0/33", "10.0.1/24", "10.0.1.0/", "10.0.1.0/+4", "x/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} parsed");
        }
        let other: Cidr = "10.0.1.8/29".parse().unwrap();
        assert!(c.overlaps(&other) && other.overlaps(&c));
        assert!(!c.overlaps(&"10.0.1.16/28".parse().unwrap()));
    }

    #[test]
    fn covered_counts_the_union_of_clipped_intervals() {
        assert_eq!(covered(10..=20, []), 0);
        assert_eq!(covered(10..=20, [(5, 12), (11, 11), (13, 13), (18, 30)]), 3 + 1 + 3);
        assert_eq!(covered(10..=20, [(21, 30), (0, 9), (15, 14)]), 0);
        assert_eq!(covered(0..=u32::MAX, [(0, u32::MAX)]), 1 << 32);
    }
}
