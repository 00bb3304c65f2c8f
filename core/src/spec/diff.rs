//! What applying a spec would change against the live one: `sendan plan`'s answer, computed without
//! writing anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ClusterSpec;

/// One declared object added, removed or changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub op: Op,
    /// `node`, `class`, `pool`, `rule`, `disk layout`, `profile`, `service`, `ip pool`, `rack`, …
    pub object: String,
    pub name: String,
    /// For a change, each differing field as `field: old → new` (long values abbreviated).
    pub details: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Change,
    Remove,
}

/// The plan: every change, in a stable order (by section, then name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpecDiff {
    pub changes: Vec<Change>,
}

impl SpecDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, op: Op) -> usize {
        self.changes.iter().filter(|c| c.op == op).count()
    }
}

/// The sections of a spec that are maps of named objects, with the name each object is called by.
const SECTIONS: &[(&str, &str)] = &[
    ("datacenters", "datacenter"),
    ("racks", "rack"),
    ("vlans", "vlan"),
    ("ipPools", "ip pool"),
    ("classes", "class"),
    ("pools", "pool"),
    ("enrollmentRules", "rule"),
    ("diskLayouts", "disk layout"),
    ("profiles", "profile"),
    ("nodes", "node"),
    ("services", "service"),
];

/// The changes that turn `old` (the live spec, if any) into `new`.
pub fn diff(old: Option<&ClusterSpec>, new: &ClusterSpec) -> SpecDiff {
    let to_value = |s: &ClusterSpec| serde_json::to_value(s).unwrap_or(Value::Null);
    let new_v = to_value(new);
    let old_v = old.map(to_value).unwrap_or(Value::Null);
    let mut changes = Vec::new();
    for (key, object) in SECTIONS {
        let empty = serde_json::Map::new();
        let o = old_v.get(key).and_then(Value::as_object).unwrap_or(&empty);
        let n = new_v.get(key).and_then(Value::as_object).unwrap_or(&empty);
        let names: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
        for name in names {
            let change = match (o.get(name), n.get(name)) {
                (None, Some(v)) => {
                    Change { op: Op::Add, object: object.to_string(), name: name.clone(), details: summary(object, v) }
                }
                (Some(_), None) => {
                    Change { op: Op::Remove, object: object.to_string(), name: name.clone(), details: vec![] }
                }
                (Some(a), Some(b)) if a != b => Change {
                    op: Op::Change,
                    object: object.to_string(),
                    name: name.clone(),
                    details: field_changes(a, b),
                },
                _ => continue,
            };
            changes.push(change);
        }
    }
    for (key, object) in [("name", "cluster name"), ("bgp", "bgp"), ("bootstrap", "bootstrap")] {
        let (a, b) = (old_v.get(key), new_v.get(key));
        if old.is_some() && a != b {
            let details = match (a, b) {
                (Some(a @ Value::Object(_)), Some(b @ Value::Object(_))) => field_changes(a, b),
                (a, b) => vec![format!("{} → {}", short(a.unwrap_or(&Value::Null)), short(b.unwrap_or(&Value::Null)))],
            };
            changes.push(Change { op: Op::Change, object: object.into(), name: String::new(), details });
        }
    }
    SpecDiff { changes }
}

/// A few identifying fields of an added object.
fn summary(object: &str, v: &Value) -> Vec<String> {
    let fields: &[&str] = match object {
        "node" => &["class", "pool", "rack", "system", "network"],
        "pool" => &["class", "size", "racks"],
        "rule" => &["priority", "bind"],
        "service" => &["replicas", "pools"],
        "class" => &["profile", "diskLayout"],
        _ => &[],
    };
    fields.iter().filter_map(|f| v.get(*f).filter(|x| !x.is_null()).map(|x| format!("{f}: {}", short(x)))).collect()
}

/// `field: old → new` for each top-level field that differs.
fn field_changes(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec![format!("{} → {}", short(a), short(b))];
    };
    let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
    keys.into_keys()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!("{k}: {} → {}", short(a.get(k).unwrap_or(&Value::Null)), short(b.get(k).unwrap_or(&Value::Null)))
        })
        .collect()
}

/// A value on one line, abbreviated past 96 characters.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            // Objects with one meaningful field (such as a system target) read better as that field.
            let set: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
            match set.as_slice() {
                [(k, v)] => format!("{k}={}", short(v)),
                _ => v.to_string(),
            }
        }
        other => other.to_string(),
    };
    if s.chars().count() > 96 { format!("{}…", s.chars().take(95).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::fixture;

    #[test]
    fn the_same_spec_changes_nothing() {
        let s = fixture::with(|_| {});
        assert!(diff(Some(&s), &s).is_empty());
    }

    #[test]
    fn a_first_spec_adds_everything() {
        let s = fixture::with(|_| {});
        let d = diff(None, &s);
        assert_eq!(d.count(Op::Add), d.changes.len());
        assert!(d.changes.iter().any(|c| c.object == "node"));
    }

    #[test]
    fn a_changed_system_names_the_node_and_both_systems() {
        let old = fixture::with(|_| {});
        let (name, _) = old.nodes.iter().next().unwrap();
        let name = name.clone();
        let new = fixture::with(|v| {
            v["nodes"][&name]["system"] = serde_json::json!({"flake": null, "storePath": "/nix/store/new-system"});
        });
        let d = diff(Some(&old), &new);
        let c = d.changes.iter().find(|c| c.object == "node" && c.name == name).expect("the node changed");
        assert_eq!(c.op, Op::Change);
        assert!(
            c.details.iter().any(|x| x.starts_with("system: ") && x.ends_with("→ storePath=/nix/store/new-system")),
            "{c:?}"
        );
    }
}
