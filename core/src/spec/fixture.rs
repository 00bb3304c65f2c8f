//! The spec of `nix/tests/fixtures/small.nix`, as `nix/lib` evaluates it, for unit tests. The t30_nix_lib
//! integration test fails when the checked-in JSON and the Nix fixture drift apart.

use super::ClusterSpec;

pub(crate) const JSON: &str = include_str!("fixture.json");

/// The fixture, if it parses (it does: the tests say so) — for the fleet's schema probe, outside tests.
pub(crate) fn parsed() -> Option<ClusterSpec> {
    ClusterSpec::from_json(JSON).ok()
}

#[cfg(test)]
pub(crate) fn json() -> serde_json::Value {
    serde_json::from_str(JSON).expect("fixture.json is JSON")
}

#[cfg(test)]
pub(crate) fn spec() -> ClusterSpec {
    ClusterSpec::from_json(JSON).expect("fixture.json is a ClusterSpec")
}

/// The fixture with one change, made on its JSON form (so tests can also break what the types would prevent).
#[cfg(test)]
pub(crate) fn with(change: impl FnOnce(&mut serde_json::Value)) -> ClusterSpec {
    let mut doc = json();
    change(&mut doc);
    ClusterSpec::from_json(&doc.to_string()).expect("the changed fixture parses")
}
