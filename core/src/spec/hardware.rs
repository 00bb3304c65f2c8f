//! Hardware policy and enrollment rules against what a machine reports ([`HardwareFacts`]): class admission,
//! rule matching, choosing the rule that binds a machine, and the static check for rules that overlap.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ClusterSpec, DiskRequirement, HardwarePolicy, Match, Range, Rule};
use crate::facts::{Disk, HardwareFacts};

/// A port on a switch, as LLDP reports it (`r01-tor-a`, `Ethernet12`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchPort {
    pub switch: String,
    pub port: String,
}

/// Where a machine was found: the switch ports its NICs are cabled to, and the rack those switches belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub rack: Option<String>,
    pub ports: Vec<SwitchPort>,
}

impl Location {
    /// The location the switch ports imply: the rack that declares the first port's switch.
    pub fn from_ports(spec: &ClusterSpec, ports: Vec<SwitchPort>) -> Location {
        let rack = ports.iter().find_map(|p| {
            spec.racks.iter().find(|(_, r)| r.switches.contains(&p.switch)).map(|(name, _)| name.clone())
        });
        Location { rack, ports }
    }
}

impl HardwarePolicy {
    /// `Ok` when the machine meets every minimum; otherwise one sentence per unmet requirement, such as
    /// "8 CPU threads; needs at least 16".
    pub fn admits(&self, facts: &HardwareFacts) -> Result<(), Vec<String>> {
        let mut unmet = Vec::new();
        if facts.cpu.threads < self.min_cpu_threads {
            unmet.push(format!("{} CPU threads; needs at least {}", facts.cpu.threads, self.min_cpu_threads));
        }
        if facts.memory_bytes < self.min_memory_bytes {
            unmet.push(format!(
                "{} of memory; needs at least {}",
                binary_size(facts.memory_bytes),
                binary_size(self.min_memory_bytes)
            ));
        }
        if self.virtualization && !facts.cpu.virtualization.iter().any(|v| v == "vmx" || v == "svm") {
            unmet.push("the CPU has no virtualization extensions (vmx or svm); needs them".to_owned());
        }
        let disks: Vec<&Disk> = facts.disks.iter().filter(|d| !d.removable).collect();
        let filled = assign_disks(&self.disks, &disks);
        for (req, found) in self.disks.iter().zip(filled) {
            if found < req.count {
                unmet.push(format!("needs {}; found {found}", describe_disks(req)));
            }
        }
        let nics = facts
            .nics
            .iter()
            .filter(|n| self.nics.min_speed_mbps.is_none_or(|min| n.speed_mbps.is_some_and(|s| s >= min)))
            .count();
        if nics < self.nics.min_count as usize {
            let speed = self.nics.min_speed_mbps.map(|s| format!(" of at least {s} Mb/s")).unwrap_or_default();
            unmet.push(format!("needs {} NICs{speed}; found {nics}", self.nics.min_count));
        }
        if unmet.is_empty() { Ok(()) } else { Err(unmet) }
    }
}

impl super::Class {
    /// Whether a machine may become a node of this class; see [`HardwarePolicy::admits`].
    pub fn admits(&self, facts: &HardwareFacts) -> Result<(), Vec<String>> {
        self.hardware.admits(facts)
    }
}

impl DiskRequirement {
    pub fn accepts(&self, disk: &Disk) -> bool {
        !disk.removable
            && disk.size_bytes >= self.min_size_bytes
            && self.max_size_bytes.is_none_or(|max| disk.size_bytes <= max)
            && self.rotational.is_none_or(|r| disk.rotational == r)
    }
}

/// How many disks each requirement gets when every requirement needs its own disks: a maximum bipartite
/// matching between requirement slots and disks (Kuhn's augmenting paths; sizes are tiny).
fn assign_disks(reqs: &[DiskRequirement], disks: &[&Disk]) -> Vec<u32> {
    let slots: Vec<usize> =
        reqs.iter().enumerate().flat_map(|(i, r)| std::iter::repeat_n(i, r.count as usize)).collect();
    let mut owner: Vec<Option<usize>> = vec![None; disks.len()];
    fn augment(
        slot: usize,
        slots: &[usize],
        reqs: &[DiskRequirement],
        disks: &[&Disk],
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for d in 0..disks.len() {
            if seen[d] || !reqs[slots[slot]].accepts(disks[d]) {
                continue;
            }
            seen[d] = true;
            if owner[d].is_none_or(|other| augment(other, slots, reqs, disks, owner, seen)) {
                owner[d] = Some(slot);
                return true;
            }
        }
        false
    }
    for slot in 0..slots.len() {
        let mut seen = vec![false; disks.len()];
        augment(slot, &slots, reqs, disks, &mut owner, &mut seen);
    }
    let mut filled = vec![0u32; reqs.len()];
    for slot in owner.into_iter().flatten() {
        filled[slots[slot]] += 1;
    }
    filled
}

fn describe_disks(req: &DiskRequirement) -> String {
    let kind = match req.rotational {
        Some(true) => "rotational ",
        Some(false) => "non-rotational ",
        None => "",
    };
    let noun = if req.count == 1 { "disk" } else { "disks" };
    let size = match (req.min_size_bytes, req.max_size_bytes) {
        (0, None) => String::new(),
        (min, None) => format!(" of at least {}", decimal_size(min)),
        (0, Some(max)) => format!(" of at most {}", decimal_size(max)),
        (min, Some(max)) => format!(" of {} to {}", decimal_size(min), decimal_size(max)),
    };
    format!("{} {kind}{noun}{size}", req.count)
}

fn scaled(bytes: u64, base: f64, units: &[&str]) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    let text = format!("{value:.1}");
    format!("{} {}", text.strip_suffix(".0").unwrap_or(&text), units[unit])
}

/// Memory sizes: 64424509440 -> "60 GiB".
pub(crate) fn binary_size(bytes: u64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

/// Disk sizes, as vendors label them: 800000000000 -> "800 GB".
pub(crate) fn decimal_size(bytes: u64) -> String {
    scaled(bytes, 1000.0, &["B", "KB", "MB", "GB", "TB", "PB"])
}

fn in_set(set: &Option<Vec<String>>, value: Option<&str>, case_insensitive: bool) -> bool {
    let Some(set) = set else { return true };
    let Some(value) = value else { return false };
    set.iter().any(|s| if case_insensitive { s.eq_ignore_ascii_case(value) } else { s == value })
}

fn in_range(range: &Option<Range>, value: u64) -> bool {
    range.as_ref().is_none_or(|r| r.contains(value))
}

impl Rule {
    /// Whether every criterion the rule sets holds for this machine.
    pub fn matches(&self, facts: &HardwareFacts, location: &Location) -> bool {
        let m = &self.matches;
        let macs_ok =
            m.macs.as_ref().is_none_or(|set| facts.macs().any(|mac| set.iter().any(|s| s.eq_ignore_ascii_case(&mac))));
        let ports_ok = m.switch_ports.as_ref().is_none_or(|set| location.ports.iter().any(|p| set.contains(p)));
        in_set(&m.machine_ids, facts.machine_id.as_deref().map(str::trim), false)
            && in_set(&m.system_uuids, facts.dmi.system_uuid.as_deref().map(str::trim), true)
            && in_set(&m.dmi_serials, facts.dmi.serial.as_deref().map(str::trim), false)
            && macs_ok
            && in_range(&m.cpu_threads, u64::from(facts.cpu.threads))
            && in_range(&m.memory_bytes, facts.memory_bytes)
            && in_range(&m.disk_count, facts.disks.iter().filter(|d| !d.removable).count() as u64)
            && in_set(&m.racks, location.rack.as_deref(), false)
            && ports_ok
    }
}

impl Match {
    /// The set criteria by name, each with whether its values compare case-insensitively.
    pub fn sets(&self) -> [(&'static str, Option<Vec<String>>, bool); 6] {
        let ports =
            self.switch_ports.as_ref().map(|ps| ps.iter().map(|p| format!("{}\u{0}{}", p.switch, p.port)).collect());
        [
            ("machineIds", self.machine_ids.clone(), false),
            ("systemUuids", self.system_uuids.clone(), true),
            ("dmiSerials", self.dmi_serials.clone(), false),
            ("macs", self.macs.clone(), true),
            ("racks", self.racks.clone(), false),
            ("switchPorts", ports, false),
        ]
    }

    /// The range criteria by name.
    pub fn ranges(&self) -> [(&'static str, Option<Range>); 3] {
        [("cpuThreads", self.cpu_threads), ("memoryBytes", self.memory_bytes), ("diskCount", self.disk_count)]
    }

    /// Whether no machine can satisfy both matches. Criteria set in both prove it when their value sets are
    /// disjoint or their ranges do not intersect; a criterion set in only one proves nothing. MACs and switch
    /// ports are treated like the single-valued criteria even though a machine has several (see nix/README.md,
    /// "Enrollment rules"); [`select_rule`] refuses a machine two rules match at the same priority.
    pub fn separated(&self, other: &Match) -> bool {
        let sets = self.sets().into_iter().zip(other.sets()).any(|((_, a, ci), (_, b, _))| match (a, b) {
            (Some(a), Some(b)) => {
                !a.iter().any(|x| b.iter().any(|y| if ci { x.eq_ignore_ascii_case(y) } else { x == y }))
            }
            _ => false,
        });
        let ranges = self.ranges().into_iter().zip(other.ranges()).any(|((_, a), (_, b))| match (a, b) {
            (Some(a), Some(b)) => !a.intersects(&b),
            _ => false,
        });
        sets || ranges
    }
}

/// Two or more rules match one machine at the same, highest, priority.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "enrollment rules {} all match this machine at priority {priority}; make their matches exclusive or give one a higher priority",
    rules.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>().join(", ")
)]
pub struct AmbiguousMatch {
    pub priority: u32,
    pub rules: Vec<String>,
}

/// The rule that binds a machine: the matching rule of highest priority. `Ok(None)` when no rule matches;
/// an error when several match at that priority (never a silent pick).
pub fn select_rule<'a>(
    rules: &'a BTreeMap<String, Rule>,
    facts: &HardwareFacts,
    location: &Location,
) -> Result<Option<(&'a str, &'a Rule)>, AmbiguousMatch> {
    let matching: Vec<(&str, &Rule)> =
        rules.iter().filter(|(_, r)| r.matches(facts, location)).map(|(n, r)| (n.as_str(), r)).collect();
    let Some(top) = matching.iter().map(|(_, r)| r.priority).max() else { return Ok(None) };
    let best: Vec<(&str, &Rule)> = matching.into_iter().filter(|(_, r)| r.priority == top).collect();
    match best.as_slice() {
        [one] => Ok(Some(*one)),
        _ => Err(AmbiguousMatch { priority: top, rules: best.iter().map(|(n, _)| (*n).to_owned()).collect() }),
    }
}

impl fmt::Display for SwitchPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.switch, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Cpu, Dmi, Nic};
    use crate::spec::{Bind, NicRequirement};

    const GIB: u64 = 1 << 30;
    const GB: u64 = 1_000_000_000;

    fn disk(name: &str, size_gb: u64, rotational: bool) -> Disk {
        Disk { name: name.into(), size_bytes: size_gb * GB, rotational, ..Disk::default() }
    }

    fn storage_box() -> HardwareFacts {
        HardwareFacts {
            machine_id: Some("9f3c2a1b0e4d4c5b8a7f6e5d4c3b2a19".into()),
            dmi: Dmi {
                serial: Some("CZ2241A7KQ".into()),
                system_uuid: Some("4C4C4544-0042-3510-8052-B4C04F4E4B31".into()),
                ..Dmi::default()
            },
            cpu: Cpu { threads: 32, virtualization: vec!["vmx".into()], ..Cpu::default() },
            memory_bytes: 126 * GIB,
            disks: vec![
                disk("nvme0n1", 960, false),
                disk("sda", 16_000, true),
                disk("sdb", 16_000, true),
                disk("sdc", 16_000, true),
                disk("sdd", 16_000, true),
                Disk { removable: true, ..disk("sde", 32, false) },
            ],
            nics: vec![
                Nic {
                    name: "enp65s0f0".into(),
                    mac: "B8:CE:F6:12:34:50".into(),
                    speed_mbps: Some(25_000),
                    link: true,
                    ..Nic::default()
                },
                Nic {
                    name: "enp65s0f1".into(),
                    mac: "b8:ce:f6:12:34:51".into(),
                    speed_mbps: Some(25_000),
                    link: true,
                    ..Nic::default()
                },
                Nic {
                    name: "eno1".into(),
                    mac: "3c:ec:ef:00:00:01".into(),
                    speed_mbps: Some(1_000),
                    link: true,
                    ..Nic::default()
                },
            ],
        }
    }

    fn storage_policy() -> HardwarePolicy {
        HardwarePolicy {
            min_cpu_threads: 16,
            min_memory_bytes: 120 * GIB,
            virtualization: false,
            disks: vec![
                DiskRequirement { count: 1, min_size_bytes: 400 * GB, max_size_bytes: None, rotational: Some(false) },
                DiskRequirement { count: 4, min_size_bytes: 8_000 * GB, max_size_bytes: None, rotational: Some(true) },
            ],
            nics: NicRequirement { min_count: 2, min_speed_mbps: Some(25_000) },
        }
    }

    #[test]
    fn given_a_machine_that_meets_the_policy_then_it_is_admitted() {
        assert_eq!(storage_policy().admits(&storage_box()), Ok(()));
    }

    #[test]
    fn given_a_small_machine_then_every_unmet_minimum_is_named() {
        let mut facts = storage_box();
        facts.cpu.threads = 8;
        facts.cpu.virtualization.clear();
        facts.memory_bytes = 62 * GIB + GIB / 2;
        facts.disks.truncate(3);
        facts.nics[1].speed_mbps = None;
        let policy = HardwarePolicy { virtualization: true, ..storage_policy() };
        assert_eq!(
            policy.admits(&facts).unwrap_err(),
            vec![
                "8 CPU threads; needs at least 16",
                "62.5 GiB of memory; needs at least 120 GiB",
                "the CPU has no virtualization extensions (vmx or svm); needs them",
                "needs 4 rotational disks of at least 8 TB; found 2",
                "needs 2 NICs of at least 25000 Mb/s; found 1",
            ]
        );
    }

    #[test]
    fn given_overlapping_disk_requirements_then_each_disk_counts_once_and_the_assignment_is_the_best_one() {
        // A greedy pass would give the NVMe disk to "any disk of 100 GB" and leave "an SSD of 400 GB" unmet.
        let policy = HardwarePolicy {
            disks: vec![
                DiskRequirement { count: 1, min_size_bytes: 100 * GB, max_size_bytes: None, rotational: None },
                DiskRequirement { count: 1, min_size_bytes: 400 * GB, max_size_bytes: None, rotational: Some(false) },
            ],
            ..HardwarePolicy::default()
        };
        let facts = HardwareFacts {
            disks: vec![disk("nvme0n1", 960, false), disk("sda", 200, true)],
            ..HardwareFacts::default()
        };
        assert_eq!(policy.admits(&facts), Ok(()));
        let one_disk = HardwareFacts { disks: vec![disk("nvme0n1", 960, false)], ..HardwareFacts::default() };
        assert_eq!(
            policy.admits(&one_disk).unwrap_err(),
            vec!["needs 1 non-rotational disk of at least 400 GB; found 0"]
        );
    }

    #[test]
    fn given_removable_disks_then_they_never_count() {
        let policy = HardwarePolicy {
            disks: vec![DiskRequirement {
                count: 1,
                min_size_bytes: 0,
                max_size_bytes: Some(64 * GB),
                rotational: None,
            }],
            ..HardwarePolicy::default()
        };
        let facts = HardwareFacts {
            disks: vec![Disk { removable: true, ..disk("sdz", 32, false) }],
            ..HardwareFacts::default()
        };
        assert_eq!(policy.admits(&facts).unwrap_err(), vec!["needs 1 disk of at most 64 GB; found 0"]);
    }

    fn rule(priority: u32, matches: Match) -> Rule {
        Rule { description: None, priority, matches, bind: Bind { pool: Some("storage".into()), ..Bind::default() } }
    }

    fn at_r01() -> Location {
        Location {
            rack: Some("r01".into()),
            ports: vec![SwitchPort { switch: "r01-tor-a".into(), port: "Ethernet12".into() }],
        }
    }

    #[test]
    fn given_each_criterion_then_a_rule_matches_only_machines_that_meet_it() {
        let facts = storage_box();
        let here = at_r01();
        let yes = |m: Match| assert!(rule(1, m.clone()).matches(&facts, &here), "should match: {m:?}");
        let no = |m: Match| assert!(!rule(1, m.clone()).matches(&facts, &here), "should not match: {m:?}");
        let list = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());

        yes(Match::default());
        yes(Match { macs: list(&["b8:ce:f6:12:34:50"]), ..Match::default() });
        yes(Match { macs: list(&["B8:CE:F6:12:34:51"]), ..Match::default() });
        no(Match { macs: list(&["b8:ce:f6:12:34:52"]), ..Match::default() });
        yes(Match { system_uuids: list(&["4c4c4544-0042-3510-8052-b4c04f4e4b31"]), ..Match::default() });
        yes(Match { dmi_serials: list(&["CZ2241A7KQ"]), ..Match::default() });
        no(Match { dmi_serials: list(&["cz2241a7kq"]), ..Match::default() });
        yes(Match { machine_ids: list(&["9f3c2a1b0e4d4c5b8a7f6e5d4c3b2a19"]), ..Match::default() });
        yes(Match { cpu_threads: Some(Range { min: Some(32), max: Some(32) }), ..Match::default() });
        no(Match { cpu_threads: Some(Range { min: Some(33), max: None }), ..Match::default() });
        yes(Match { memory_bytes: Some(Range { min: Some(120 * GIB), max: None }), ..Match::default() });
        yes(Match { disk_count: Some(Range { min: Some(5), max: Some(5) }), ..Match::default() });
        no(Match { disk_count: Some(Range { min: Some(6), max: None }), ..Match::default() });
        yes(Match { racks: list(&["r02", "r01"]), ..Match::default() });
        no(Match { racks: list(&["r02"]), ..Match::default() });
        yes(Match { switch_ports: Some(here.ports.clone()), ..Match::default() });
        no(Match {
            switch_ports: Some(vec![SwitchPort { switch: "r01-tor-a".into(), port: "Ethernet13".into() }]),
            ..Match::default()
        });
        // Every criterion must hold.
        no(Match { racks: list(&["r01"]), disk_count: Some(Range { min: None, max: Some(4) }), ..Match::default() });
        // A criterion about something the machine did not report does not hold.
        let anonymous = HardwareFacts::default();
        assert!(
            !rule(1, Match { dmi_serials: list(&["CZ2241A7KQ"]), ..Match::default() })
                .matches(&anonymous, &Location::default())
        );
    }

    #[test]
    fn given_rules_at_several_priorities_then_the_highest_matching_one_binds() {
        let list = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let rules = BTreeMap::from([
            ("by-serial".to_owned(), rule(100, Match { dmi_serials: list(&["CZ2241A7KQ"]), ..Match::default() })),
            (
                "storage".to_owned(),
                rule(50, Match { disk_count: Some(Range { min: Some(5), max: None }), ..Match::default() }),
            ),
            ("anything".to_owned(), rule(0, Match::default())),
        ]);
        let facts = storage_box();
        assert_eq!(select_rule(&rules, &facts, &at_r01()).unwrap().unwrap().0, "by-serial");
        let other = HardwareFacts { dmi: Dmi::default(), ..facts.clone() };
        assert_eq!(select_rule(&rules, &other, &at_r01()).unwrap().unwrap().0, "storage");
        assert_eq!(select_rule(&BTreeMap::new(), &facts, &at_r01()), Ok(None));
    }

    #[test]
    fn given_two_rules_matching_at_the_top_priority_then_selection_refuses_to_pick() {
        // Disjoint MAC sets pass the static check, but one machine can carry a MAC from each.
        let list = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let rules = BTreeMap::from([
            ("port-0".to_owned(), rule(10, Match { macs: list(&["b8:ce:f6:12:34:50"]), ..Match::default() })),
            ("port-1".to_owned(), rule(10, Match { macs: list(&["b8:ce:f6:12:34:51"]), ..Match::default() })),
        ]);
        assert!(rules["port-0"].matches.separated(&rules["port-1"].matches));
        let err = select_rule(&rules, &storage_box(), &Location::default()).unwrap_err();
        assert_eq!(err, AmbiguousMatch { priority: 10, rules: vec!["port-0".into(), "port-1".into()] });
        assert!(
            err.to_string().starts_with("enrollment rules 'port-0', 'port-1' all match this machine at priority 10")
        );
    }

    #[test]
    fn given_pairs_of_matches_then_separation_follows_the_documented_definition() {
        let list = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let threads = |min, max| Match { cpu_threads: Some(Range { min, max }), ..Match::default() };
        // Disjoint identity sets separate; MACs compare case-insensitively.
        let a = Match { macs: list(&["52:54:00:00:01:01"]), ..Match::default() };
        let b = Match { macs: list(&["52:54:00:00:01:02"]), ..Match::default() };
        let c = Match {
            macs: list(&["52:54:00:00:01:02", "52:54:00:00:01:01".to_uppercase().as_str()]),
            ..Match::default()
        };
        assert!(a.separated(&b));
        assert!(!a.separated(&c));
        // Ranges separate only when they do not intersect; bounds are inclusive.
        assert!(threads(None, Some(15)).separated(&threads(Some(16), None)));
        assert!(!threads(None, Some(16)).separated(&threads(Some(16), None)));
        assert!(!threads(Some(8), None).separated(&threads(Some(16), Some(64))));
        // A criterion set in one rule only proves nothing; a rule without criteria overlaps everything.
        assert!(!a.separated(&threads(Some(16), None)));
        assert!(!Match::default().separated(&a));
        // One separating criterion is enough, even when others intersect.
        let r1 = Match { racks: list(&["r01"]), ..threads(Some(16), None) };
        let r2 = Match { racks: list(&["r02"]), ..threads(Some(16), None) };
        assert!(r1.separated(&r2));
    }

    #[test]
    fn given_switch_ports_then_the_location_names_the_rack_of_their_switch() {
        let spec = crate::spec::fixture::spec();
        let port = SwitchPort { switch: "rack2-tor".into(), port: "swp7".into() };
        assert_eq!(Location::from_ports(&spec, vec![port.clone()]).rack.as_deref(), Some("rack2"));
        let unknown = SwitchPort { switch: "lab-mgmt".into(), port: "1".into() };
        assert_eq!(Location::from_ports(&spec, vec![unknown]).rack, None);
    }

    #[test]
    fn sizes_read_like_their_labels() {
        assert_eq!(binary_size(60 * GIB), "60 GiB");
        assert_eq!(binary_size(62 * GIB + GIB / 2), "62.5 GiB");
        assert_eq!(decimal_size(800 * GB), "800 GB");
        assert_eq!(decimal_size(16_000 * GB), "16 TB");
        assert_eq!(decimal_size(512), "512 B");
    }
}
