//! Given the fixture cluster with one thing changed, then validation reports exactly the named problems.

use serde_json::{Value, json};

use crate::spec::fixture;

/// The messages validation gives for the fixture after `change`.
fn errors_after(change: impl FnOnce(&mut Value)) -> Vec<String> {
    match fixture::with(change).validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn then_rejects(change: impl FnOnce(&mut Value), expected: &[&str]) {
    let mut got = errors_after(change);
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

fn node<'a>(doc: &'a mut Value, name: &str) -> &'a mut Value {
    &mut doc["nodes"][name]
}

fn web(doc: &mut Value) -> &mut Value {
    &mut doc["services"]["web"]
}

#[test]
fn given_the_fixture_then_it_validates() {
    assert_eq!(fixture::spec().validate(), Ok(()));
}

#[test]
fn given_invalid_names_then_the_cluster_and_nodes_are_named() {
    then_rejects(
        |d| d["name"] = "Lab_1".into(),
        &[
            "cluster name 'Lab_1' is not valid: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
        ],
    );
    then_rejects(
        |d| {
            let cp = d["nodes"].as_object_mut().unwrap().remove("cp-2").unwrap();
            d["nodes"]["cp_2"] = cp;
        },
        &[
            "node name 'cp_2' is not a valid hostname: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
            "enrollment rule 'cp-2' uses unknown node 'cp-2'",
        ],
    );
}

#[test]
fn given_unknown_references_then_the_referrer_and_the_name_are_given() {
    then_rejects(|d| node(d, "cp-1")["class"] = "gpu".into(), &["node cp-1 uses unknown class 'gpu'"]);
    then_rejects(|d| node(d, "cp-1")["rack"] = "rack9".into(), &["node cp-1 uses unknown rack 'rack9'"]);
    then_rejects(
        |d| d["racks"]["rack2"]["datacenter"] = "osa1".into(),
        &["rack 'rack2' uses unknown datacenter 'osa1'"],
    );
    then_rejects(
        |d| d["ipPools"]["rack2-v4"]["vlan"] = "storage".into(),
        &["ip pool 'rack2-v4' uses unknown vlan 'storage'"],
    );
    then_rejects(
        |d| d["classes"]["worker"]["diskLayout"] = "raid10".into(),
        &["class 'worker' uses unknown disk layout 'raid10'"],
    );
    then_rejects(|d| d["pools"]["workers"]["profile"] = "gpu".into(), &["pool 'workers' uses unknown profile 'gpu'"]);
    then_rejects(
        |d| d["bgp"]["peers"]["rack1-tor"]["rack"] = "rack3".into(),
        &["bgp peer 'rack1-tor' uses unknown rack 'rack3'"],
    );
    then_rejects(
        |d| d["enrollmentRules"]["workers"]["bind"] = json!({ "pool": "gpu-nodes", "profile": "gpu" }),
        &[
            "enrollment rule 'workers' uses unknown pool 'gpu-nodes'",
            "enrollment rule 'workers' uses unknown profile 'gpu'",
        ],
    );
    then_rejects(
        |d| {
            d["enrollmentRules"]["workers"]["match"]["switchPorts"] = json!([{ "switch": "rack3-tor", "port": "swp1" }])
        },
        &["enrollment rule 'workers' uses unknown switch 'rack3-tor'"],
    );
}

#[test]
fn given_site_conflicts_then_both_parties_are_named() {
    then_rejects(
        |d| d["racks"]["rack2"]["switches"] = json!(["rack2-tor", "rack1-tor"]),
        &["switch 'rack1-tor' is declared in racks 'rack1' and 'rack2'"],
    );
    then_rejects(|d| d["vlans"]["backup"] = json!({ "id": 20 }), &["vlans 'backup' and 'prod' both use id 20"]);
    then_rejects(|d| d["bgp"]["asn"] = Value::Null, &["bgp declares peers but no asn for the cluster"]);
    then_rejects(|d| d["vlans"]["prod"]["id"] = 5000.into(), &["vlan 'prod': id 5000 is outside 1..4094"]);
}

#[test]
fn given_ip_pool_mistakes_then_the_pool_and_the_address_are_named() {
    then_rejects(
        |d| d["ipPools"]["rack2-v4"]["gateway"] = "10.0.2.15".into(),
        &["ip pool 'rack2-v4': gateway 10.0.2.15 is not a usable address in 10.0.2.0/28"],
    );
    then_rejects(
        |d| {
            d["ipPools"]["rack2-v4"]["reserved"] =
                json!([{ "from": "10.0.2.9", "to": "10.0.2.6" }, { "from": "10.0.3.1", "to": "10.0.3.1" }])
        },
        &[
            "ip pool 'rack2-v4': reserved range 10.0.2.9-10.0.2.6 is empty (its start is after its end)",
            "ip pool 'rack2-v4': reserved range 10.0.3.1 is not inside 10.0.2.0/28",
        ],
    );
    then_rejects(
        |d| d["ipPools"]["lab-wide"] = json!({ "cidr": "10.0.0.0/16" }),
        &[
            "ip pools 'lab-wide' (10.0.0.0/16) and 'rack1-v4' (10.0.1.0/28) overlap",
            "ip pools 'lab-wide' (10.0.0.0/16) and 'rack2-v4' (10.0.2.0/28) overlap",
        ],
    );
}

#[test]
fn given_pool_mistakes_then_the_pool_is_named() {
    then_rejects(
        |d| d["pools"]["gpus"] = json!({ "class": "worker", "size": 2, "namePattern": "gpu-{index}" }),
        &["pool 'gpus' has size 2 but no racks to place its nodes in"],
    );
    then_rejects(
        |d| d["pools"]["spare"] = json!({ "class": "worker", "namePattern": "spare" }),
        &["pool 'spare': namePattern 'spare' must contain {index}"],
    );
    then_rejects(
        |d| d["pools"]["workers"]["ipPools"].as_object_mut().unwrap().remove("rack2").map(drop).unwrap(),
        &["pool 'workers' names no ip pool for its rack 'rack2'"],
    );
    then_rejects(
        |d| d["pools"]["workers"]["ipPools"]["rack3"] = "rack1-v4".into(),
        &["pool 'workers' names an ip pool for rack 'rack3', which is not one of its racks"],
    );
    then_rejects(|d| d["pools"]["workers"]["indexWidth"] = 0.into(), &["pool 'workers': indexWidth 0 is outside 1..6"]);
}

#[test]
fn given_generated_members_that_do_not_follow_their_pool_then_the_server_notices() {
    then_rejects(
        |d| d["nodes"].as_object_mut().unwrap().remove("worker-04").map(drop).unwrap(),
        &["pool 'workers' generates worker-04 but the spec has no such node"],
    );
    then_rejects(
        |d| {
            let mut extra = d["nodes"]["worker-04"].clone();
            extra["network"]["address"] = "10.0.2.4".into();
            d["nodes"]["worker-05"] = extra;
        },
        &["node worker-05 is marked as generated by pool 'workers', which does not generate that name"],
    );
    then_rejects(
        |d| node(d, "worker-04")["pool"] = Value::Null,
        &["node worker-04 is marked as generated but names no pool"],
    );
    then_rejects(
        |d| node(d, "worker-02")["rack"] = "rack1".into(),
        &[
            "node worker-02 is placed in rack 'rack1' with ip pool 'rack2-v4', but pool 'workers' places it in rack 'rack2' with ip pool 'rack2-v4'",
        ],
    );
    then_rejects(
        |d| node(d, "worker-01")["generated"] = false.into(),
        &["node worker-01 is declared twice: by pool 'workers' and in nodes"],
    );
    then_rejects(
        |d| node(d, "worker-01")["class"] = "control".into(),
        &["node worker-01 has class 'control' but its pool 'workers' has class 'worker'"],
    );
}

#[test]
fn given_system_targets_that_are_not_exactly_one_thing_then_they_are_refused() {
    then_rejects(
        |d| {
            node(d, "cp-1")["system"]["storePath"] =
                "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-cp-1".into()
        },
        &["node cp-1 must set exactly one of system.flake or system.storePath"],
    );
    then_rejects(
        |d| node(d, "cp-1")["system"] = json!({ "storePath": "/nix/store/not-a-hash-nixos-system-cp-1" }),
        &[
            "node cp-1: system.storePath '/nix/store/not-a-hash-nixos-system-cp-1' is not a store path such as /nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-01",
        ],
    );
    let errors = errors_after(|d| d["profiles"]["base"]["system"]["flake"] = Value::Null);
    assert!(
        errors.contains(&"profile 'base' must set exactly one of system.flake or system.storePath".to_owned()),
        "{errors:?}"
    );
}

#[test]
fn given_static_addresses_that_break_their_pool_then_the_node_and_the_rule_are_named() {
    then_rejects(
        |d| node(d, "cp-1")["network"]["address"] = "10.0.2.9".into(),
        &["node cp-1: address 10.0.2.9 is not a usable address of ip pool 'rack1-v4' (10.0.1.0/28)"],
    );
    then_rejects(
        |d| node(d, "cp-1")["network"]["address"] = "10.0.1.1".into(),
        &["node cp-1: address 10.0.1.1 is the gateway of ip pool 'rack1-v4'"],
    );
    then_rejects(
        |d| node(d, "cp-1")["network"]["address"] = "10.0.1.3".into(),
        &["node cp-1: address 10.0.1.3 is reserved in ip pool 'rack1-v4' (10.0.1.2-10.0.1.4)"],
    );
}

#[test]
fn given_duplicate_addresses_then_every_holder_is_named() {
    then_rejects(
        |d| {
            node(d, "cp-2")["rack"] = "rack1".into();
            node(d, "cp-2")["network"] = json!({ "ipPool": "rack1-v4", "address": "10.0.1.5" });
        },
        &["duplicate address 10.0.1.5: nodes cp-1 and cp-2"],
    );
    then_rejects(
        |d| node(d, "cp-1")["network"]["address"] = "10.0.1.2".into(),
        &[
            "node cp-1: address 10.0.1.2 is reserved in ip pool 'rack1-v4' (10.0.1.2-10.0.1.4)",
            "duplicate address 10.0.1.2: node cp-1 and bgp peer 'rack1-tor'",
        ],
    );
    // Allocated addresses are checked too: the document may not come from Nix.
    then_rejects(
        |d| node(d, "worker-03")["network"]["address"] = "10.0.1.6".into(),
        &["duplicate address 10.0.1.6: nodes worker-01 and worker-03"],
    );
}

#[test]
fn given_more_allocated_nodes_than_free_addresses_then_the_first_without_one_is_named() {
    // A /29 leaves rack1 one free address (.6) after the gateway, the reserved .2-.4 and cp-1's .5.
    then_rejects(
        |d| d["ipPools"]["rack1-v4"]["cidr"] = "10.0.1.0/29".into(),
        &[
            "node worker-03: address 10.0.1.7 is not a usable address of ip pool 'rack1-v4' (10.0.1.0/29)",
            "pool 'workers' is exhausted: ip pool 'rack1-v4' (10.0.1.0/29) has no free address for worker-03",
        ],
    );
    // Nodes outside any pool are named without one.
    then_rejects(
        |d| {
            d["ipPools"]["oob"] = json!({ "cidr": "10.0.9.0/30" });
            for (i, name) in ["bmc-1", "bmc-2", "bmc-3"].iter().enumerate() {
                let mut bmc = d["nodes"]["cp-1"].clone();
                bmc["network"] = json!({ "ipPool": "oob", "address": format!("10.0.9.{}", i + 1), "allocated": true });
                d["nodes"][*name] = bmc;
            }
        },
        &[
            "node bmc-3: address 10.0.9.3 is not a usable address of ip pool 'oob' (10.0.9.0/30)",
            "ip pool 'oob' (10.0.9.0/30) has no free address for bmc-3",
        ],
    );
}

#[test]
fn given_rules_that_cannot_match_or_bind_then_the_rule_is_named() {
    then_rejects(
        |d| d["enrollmentRules"]["workers"]["bind"]["node"] = "cp-1".into(),
        &["enrollment rule 'workers' must bind to exactly one of node or pool"],
    );
    then_rejects(
        |d| d["enrollmentRules"]["cp-1"]["match"]["macs"] = json!([]),
        &["enrollment rule 'cp-1': match.macs is empty, so the rule can never match"],
    );
    then_rejects(
        |d| d["enrollmentRules"]["workers"]["match"]["cpuThreads"] = json!({ "min": 32, "max": 16 }),
        &["enrollment rule 'workers': match.cpuThreads 32..16 is empty, so the rule can never match"],
    );
    then_rejects(
        |d| d["enrollmentRules"]["cp-1"]["match"]["macs"] = json!(["52-54-00-00-01-01"]),
        &["enrollment rule 'cp-1': match.macs: '52-54-00-00-01-01' is not a MAC address such as 52:54:00:12:34:56"],
    );
}

#[test]
fn given_rules_that_can_match_the_same_machine_at_one_priority_then_both_are_named() {
    then_rejects(
        |d| {
            d["enrollmentRules"]["big-workers"] =
                json!({ "priority": 10, "match": { "cpuThreads": { "min": 32 } }, "bind": { "pool": "workers" } })
        },
        &["enrollment rules 'big-workers' and 'workers' can match the same machine at priority 10"],
    );
    then_rejects(
        |d| d["enrollmentRules"]["cp-1-spare"] = json!({ "priority": 100, "match": { "macs": ["52:54:00:00:01:01".to_uppercase()] }, "bind": { "node": "cp-1" } }),
        &["enrollment rules 'cp-1' and 'cp-1-spare' can match the same machine at priority 100"],
    );
    // A different priority, or a criterion that separates them, is fine.
    then_rejects(
        |d| {
            d["enrollmentRules"]["small-workers"] =
                json!({ "priority": 10, "match": { "cpuThreads": { "max": 15 } }, "bind": { "pool": "workers" } })
        },
        &[],
    );
    then_rejects(|d| d["enrollmentRules"]["catch-all"] = json!({ "priority": 0, "bind": { "pool": "workers" } }), &[]);
}

#[test]
fn given_disk_layout_mistakes_then_the_layout_and_the_device_are_named() {
    let esp = json!({ "size": "512M", "type": "EF00", "content": { "type": "filesystem", "format": "vfat", "mountpoint": "/boot" } });
    let layout = |d: &mut Value| d["diskLayouts"]["single"].clone();
    then_rejects(
        |d| {
            let mut empty = layout(d);
            empty["disko"]["devices"]["disk"] = json!({});
            empty["bootDisks"] = json!([]);
            d["diskLayouts"]["empty"] = empty;
        },
        &["disk layout 'empty' declares no disks"],
    );
    then_rejects(
        |d| d["diskLayouts"]["single"]["bootDisks"] = json!([]),
        &["disk layout 'single' has no boot disk: set bootDisks or give a disk an EFI system partition (type EF00)"],
    );
    then_rejects(
        |d| d["diskLayouts"]["single"]["bootDisks"] = json!(["root", "data2"]),
        &["disk layout 'single' references disk 'data2' which is not declared in disko.devices.disk"],
    );
    then_rejects(
        |d| {
            let disks = &mut d["diskLayouts"]["single"]["disko"]["devices"]["disk"];
            disks["data"] = json!({ "selector": { "index": 1 }, "content": { "type": "gpt", "partitions": {
                "md": { "size": "100%", "content": { "type": "mdraid", "name": "md0" } } } } });
            d["diskLayouts"]["single"]["disko"]["devices"]["zpool"] = json!({ "tank": {} });
            d["diskLayouts"]["single"]["bootDisks"] = json!(["root", "data"]);
        },
        &[
            "disk layout 'single': boot disk 'data' has no EFI system partition (type EF00)",
            "disk layout 'single' references mdadm array 'md0' which is not declared in disko.devices.mdadm",
            "disk layout 'single' declares zpool 'tank' but nothing is a member of it",
        ],
    );
    then_rejects(
        |d| {
            let disks = &mut d["diskLayouts"]["single"]["disko"]["devices"]["disk"];
            disks["fallback"] = json!({ "content": { "type": "gpt", "partitions": { "ESP": esp } } });
        },
        &[
            "disk layout 'single': disks 'fallback' and 'root' have the same selector, so they would resolve to the same disk",
        ],
    );
}

#[test]
fn given_service_mistakes_then_the_service_is_named() {
    then_rejects(
        |d| {
            web(d)["package"] = Value::Null;
            web(d)["command"] = Value::Null;
        },
        &["service 'web' needs a package or a command"],
    );
    then_rejects(
        |d| web(d)["health"]["tcp"] = json!({ "port": 8080 }),
        &["service 'web': health must set exactly one of http, tcp or exec"],
    );
    then_rejects(
        |d| web(d)["health"]["timeoutSeconds"] = 30.into(),
        &["service 'web': health.timeoutSeconds (30) must not exceed intervalSeconds (10)"],
    );
    then_rejects(
        |d| web(d)["update"]["canary"] = 3.into(),
        &["service 'web': update.canary (3) must not exceed replicas (2)"],
    );
    then_rejects(
        |d| web(d)["update"]["minHealthySeconds"] = 300.into(),
        &["service 'web': update.healthyDeadlineSeconds (300) must exceed minHealthySeconds (300)"],
    );
    then_rejects(|d| web(d)["pools"] = json!(["gpus"]), &["service 'web' uses unknown pool 'gpus'"]);
    then_rejects(
        |d| web(d)["budget"] = json!({ "maxUnavailable": 1, "minHealthy": 1 }),
        &["service 'web': budget sets both maxUnavailable and minHealthy; set one"],
    );
    then_rejects(
        |d| web(d)["budget"] = json!({ "minHealthy": 3 }),
        &["service 'web': budget.minHealthy (3) must not exceed replicas (2)"],
    );
    then_rejects(
        |d| web(d)["health"]["http"]["port"] = 0.into(),
        &["service 'web': health check port must be from 1 to 65535"],
    );
}

#[test]
fn given_a_service_on_an_empty_pool_or_too_few_nodes_then_it_is_refused() {
    then_rejects(
        |d| {
            d["pools"]["gpus"] = json!({ "class": "worker", "namePattern": "gpu-{index}" });
            d["services"]["web"]["pools"] = json!(["gpus"]);
        },
        &["service 'web' selects pool 'gpus' which is empty"],
    );
    then_rejects(
        |d| d["services"]["web"]["replicas"] = 5.into(),
        &["service 'web' wants 5 replicas but at most 4 fit: 4 eligible nodes, at most 1 per node"],
    );
    then_rejects(
        |d| {
            d["services"]["web"]["replicas"] = 3.into();
            d["services"]["web"]["constraints"] = json!({ "racks": ["rack2"] });
        },
        &["service 'web' wants 3 replicas but at most 2 fit: 2 eligible nodes, at most 1 per node"],
    );
    then_rejects(
        |d| {
            d["services"]["web"]["replicas"] = 3.into();
            d["services"]["web"]["constraints"] = json!({ "racks": ["rack2"], "maxPerNode": 2 });
        },
        &[],
    );
}

#[test]
fn given_malformed_bootstrap_settings_then_each_value_is_named() {
    then_rejects(
        |d| {
            d["bootstrap"]["servers"] = json!(["10.0.1.5:7770"]);
            d["bootstrap"]["trustedPublicKeys"] = json!(["cache.example.com-1:short="]);
        },
        &[
            "bootstrap: servers: '10.0.1.5:7770' is not an http:// or https:// URL",
            "bootstrap: trustedPublicKeys: 'cache.example.com-1:short=' is not a Nix public key such as cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
        ],
    );
    then_rejects(
        |d| d["bootstrap"]["servers"] = json!([]),
        &["bootstrap: servers must not be empty: installers need a Sendan server URL to phone home to"],
    );
}

#[test]
fn given_several_problems_then_all_are_reported_one_per_line() {
    let spec = fixture::with(|d| {
        node(d, "cp-1")["class"] = "gpu".into();
        d["services"]["web"]["replicas"] = 9.into();
    });
    let text = spec.validate().unwrap_err().to_string();
    assert_eq!(
        text,
        "node cp-1 uses unknown class 'gpu'\nservice 'web' wants 9 replicas but at most 4 fit: 4 eligible nodes, at most 1 per node"
    );
}
