//! Power through BMCs, end to end: `sendan node power|boot-device` against real `sendan server` processes whose
//! leader drives `sushy-emulator --fake` (Redfish over verified TLS with basic auth; power changes land seconds
//! later; no PowerCycle) and pyghmi's fake BMC through `ipmitool -I lanplus`. Every emulator binds 127.0.0.1.
//!
//! Properties:
//! - each action reaches the emulator as Ironic maps it, and the log records the request, then its completion
//!   with the power state the BMC reported (`PowerRequested` → `PowerCompleted`);
//! - a wrong password or an ambiguous Redfish service is a failed request whose error a person can act on, and
//!   the CLI exits 1 saying it;
//! - a request recorded by a leader that dies before finishing is carried out by the next leader, and completed
//!   exactly once;
//! - no password is ever in the log: the spec names a file.

use std::process::Command;
use std::time::Duration;

use sendan_api::client::{Client, EventFilter};
use sendan_core::Payload;
use sendan_core::event::{Power, PowerOutcome};
use sendan_core::spec::ClusterSpec;
use sendan_tests::bmc::{FakeSystem, Ipmi, Redfish};
use sendan_tests::nixfake::{enroll, spec};
use sendan_tests::procs::ProcCluster;
use sendan_tests::{binary, wait_until};
use serde_json::json;

const SYSTEM: &str = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-lab";
const KEY: &str = "cache.lab-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
const R1: &str = "5a3e0c1d-2b4f-4a6e-8d9c-0e1f2a3b4c01";
const R2: &str = "5a3e0c1d-2b4f-4a6e-8d9c-0e1f2a3b4c02";
const NODES: [&str; 5] = ["r-1", "r-2", "r-3", "i-1", "i-2"];
const PATIENCE: Duration = Duration::from_secs(120);

/// `sendan ARGS` against member `member`: exit success, stdout and stderr.
fn sendan(cluster: &ProcCluster, member: u64, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("sendan"))
        .args(["--server", &format!("http://{}", cluster.addrs[&member])])
        .arg("--token-file")
        .arg(cluster.dir.path().join("admin.token"))
        .args(args)
        .output()
        .expect("sendan runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn ok(cluster: &ProcCluster, member: u64, args: &[&str]) -> String {
    let (success, out, err) = sendan(cluster, member, args);
    assert!(success, "sendan {args:?} failed:\n{out}\n{err}");
    out
}

/// r-1 and r-2 on the Redfish emulator (r-2 with a wrong password), r-3 on it without naming its system (the
/// service manages two); i-1 on the IPMI emulator, i-2 with a wrong password.
fn declaration(redfish: &Redfish, ipmi: &Ipmi) -> ClusterSpec {
    let nodes: Vec<(&str, &str)> = NODES.iter().map(|n| (*n, SYSTEM)).collect();
    let mut doc: serde_json::Value =
        serde_json::from_str(&spec("lab", &nodes, "http://127.0.0.1:9", KEY).canonical_json()).unwrap();
    let rf = |system: Option<String>, password: &std::path::Path| {
        let mut b = json!({
            "driver": "redfish", "address": redfish.url, "user": redfish.user,
            "passwordFile": password, "caFile": redfish.ca_file,
        });
        if let Some(s) = system {
            b["system"] = s.into();
        }
        b
    };
    doc["nodes"]["r-1"]["bmc"] = rf(Some(redfish.system_path(R1)), &redfish.password_file);
    doc["nodes"]["r-2"]["bmc"] = rf(Some(redfish.system_path(R2)), &redfish.wrong_password_file());
    doc["nodes"]["r-3"]["bmc"] = rf(None, &redfish.password_file);
    let im = |password: &std::path::Path| json!({ "driver": "ipmi", "address": ipmi.address, "user": ipmi.user, "passwordFile": password });
    doc["nodes"]["i-1"]["bmc"] = im(&ipmi.password_file);
    doc["nodes"]["i-2"]["bmc"] = im(&ipmi.wrong_password_file());
    let spec = ClusterSpec::from_json(&doc.to_string()).expect("the power spec parses");
    spec.validate().expect("the power spec is valid");
    spec
}

/// Every event of the log, in order.
async fn log(admin: &Client) -> Vec<sendan_core::Event> {
    let mut all = Vec::new();
    loop {
        let f = EventFilter {
            after: all.last().map(|e: &sendan_core::Event| e.seq),
            limit: Some(1000),
            ..Default::default()
        };
        let page = admin.events(&f).await.expect("the log reads");
        let done = page.next.is_none();
        all.extend(page.events);
        if done {
            return all;
        }
    }
}

/// The completions of request `request`.
async fn completions(admin: &Client, request: u64) -> Vec<sendan_core::event::PowerCompleted> {
    log(admin)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Payload::PowerCompleted(c) if c.request == request => Some(c),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_requests_reach_redfish_and_ipmi_bmcs_and_survive_a_leader_change() {
    let redfish = tokio::task::block_in_place(|| {
        Redfish::start(&[FakeSystem::new("r-1", R1, true), FakeSystem::new("r-2", R2, false)])
    });
    let ipmi = tokio::task::block_in_place(|| Ipmi::start(true));
    let mut cluster = ProcCluster::start(3, &["--power-deadline-secs", "60"]).await;
    let admin = cluster.client(1);
    sendan_api::cli::spec::apply(&admin, &declaration(&redfish, &ipmi)).await.unwrap();
    enroll(&admin, &NODES).await;

    // Status asks the BMC now, and records what the log did not know.
    let status = ok(&cluster, 2, &["node", "power", "r-1", "status"]);
    assert!(status.contains("power:    on (the BMC, just now)"), "{status}");
    assert!(status.contains(&format!("bmc:      redfish {} as admin", redfish.url)), "{status}");

    // Off: ForceOff, polled until the emulator lands it (it takes up to ~11 s).
    let out = ok(&cluster, 1, &["node", "power", "r-1", "off"]);
    assert!(out.contains("node r-1: `off` done"), "{out}");
    assert_eq!(redfish.power(R1).await, "Off");
    // The next boot, set through the BMC: the emulator keeps a one-time override as `Continuous`.
    ok(&cluster, 1, &["node", "boot-device", "r-1", "pxe", "--once"]);
    assert_eq!(redfish.boot(R1).await.0, "Pxe");

    // A reboot recorded, then the leader killed at once: the next leader carries it out, completed once.
    let leader = cluster.leader().await;
    let other = cluster.addrs.keys().copied().find(|m| *m != leader).unwrap();
    let (success, out, err) =
        sendan(&cluster, other, &["node", "power", "r-1", "reboot", "--no-wait", "--output", "json"]);
    assert!(success, "{out}\n{err}");
    let request = serde_json::from_str::<serde_json::Value>(&out).unwrap()["request"].as_u64().unwrap();
    cluster.kill9(leader);
    let survivor = cluster.client(other);
    let done = wait_until("the next leader completes the reboot", PATIENCE, || async {
        let v = survivor.node_power("r-1", None, false).await.ok()?;
        v.last.filter(|l| l.request.seq == request)
    })
    .await;
    assert_eq!(done.outcome, PowerOutcome::Done, "{done:?}");
    assert_eq!(redfish.power(R1).await, "On", "reboot of a machine that was off powers it on");
    assert_eq!(completions(&survivor, request).await.len(), 1, "one completion per request");
    cluster.restart(leader);

    // A wrong password: the request fails, the CLI says why and exits 1.
    let (success, out, err) = sendan(&cluster, other, &["node", "power", "r-2", "on"]);
    assert!(!success, "{out}\n{err}");
    assert!(out.contains("node r-2: `on` failed") && out.contains("refused user 'admin'"), "{out}\n{err}");
    assert_eq!(redfish.power(R2).await, "Off", "nothing changed");
    // A service with two systems and no `system` declared: say which.
    let (success, out, _) = sendan(&cluster, other, &["node", "power", "r-3", "on"]);
    assert!(!success && out.contains("manages 2 systems") && out.contains("bmc.system"), "{out}");

    // IPMI: off, reboot from off (= on), a one-time PXE boot, soft-off.
    ok(&cluster, other, &["node", "power", "i-1", "off"]);
    assert_eq!(ipmi.power(), "off");
    ok(&cluster, other, &["node", "power", "i-1", "reboot"]);
    assert_eq!(ipmi.power(), "on");
    ok(&cluster, other, &["node", "boot-device", "i-1", "pxe", "--once"]);
    let state = ipmi.state();
    assert_eq!((state.bootdev.as_str(), state.persistent), ("network", false), "{state:?}");
    ok(&cluster, other, &["node", "power", "i-1", "soft-off"]);
    assert_eq!(ipmi.power(), "off");
    let (success, out, _) = sendan(&cluster, other, &["node", "power", "i-2", "status"]);
    assert!(!success && out.contains("refused user 'admin'"), "{out}");

    // `node show` tells the power story; the log holds no password.
    let show = ok(&cluster, other, &["node", "show", "i-1"]);
    assert!(show.contains("power:    off (recorded at seq") && show.contains("last:     `soft-off` done"), "{show}");
    let events = serde_json::to_string(&log(&survivor).await).unwrap();
    for secret in [redfish.password(), std::fs::read_to_string(&ipmi.password_file).unwrap()] {
        assert!(!events.contains(secret.trim()), "a BMC password is in the log");
    }
    let observed: Vec<Power> = log(&survivor)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Payload::PowerCompleted(c) if c.node.as_str() == "i-1" => c.power,
            _ => None,
        })
        .collect();
    assert_eq!(observed, [Power::Off, Power::On, Power::On, Power::Off]);
}
