//! Bootstrap end to end, with real processes only: three `sendan server` members with netboot images
//! configured, the test cluster (`tests/fixtures/bootstrap`) applied with `sendan apply` (real Nix), and four
//! `sendan-agent install` processes, one per hardware fixture, booted with the kernel command line their iPXE
//! scripts give them. Installs are dry runs (`--mode dry-run`): disko and nixos-install are recorded, never run,
//! and nothing is written outside each machine's temporary target and work directories.

use std::collections::BTreeMap;
use std::time::Duration;

use sendan_api::client::{Client, ClientError, EventFilter};
use sendan_core::{Event, EventKind, Hash, NodeState, Payload};
use sendan_tests::bootstrap::{CLUSTER, Machine, NETBOOT_FLAGS, cmdline_value, sendan, sendan_ok};
use sendan_tests::procs::ProcCluster;
use sendan_tests::wait_until;

const LONG: Duration = Duration::from_secs(120);

async fn history(c: &Client, node: &str) -> Vec<Event> {
    c.history(node, &EventFilter { limit: Some(1000), ..Default::default() }).await.unwrap().events
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind()).collect()
}

/// Property: machines nobody typed in netboot, phone home and are bound by the applied spec's rules — a pool
/// member found by its LLDP rack, two nodes by DMI uuid and machine-id, and a board two rules conflict over,
/// which waits until an operator accepts it — fetch their plans, report every install step and reach `active`
/// at their first-boot check-in; a machine whose disks do not fit its node's layout is refused before
/// anything is written, and a second netboot leaves it bound to its node; each node's audit history tells its
/// story in order, identically on every member; spent bootstrap tokens no longer work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn machines_netboot_phone_home_and_reach_active_or_are_refused() {
    let c = ProcCluster::start(3, NETBOOT_FLAGS).await;
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["apply", CLUSTER]));
    assert!(out.contains("Applied spec"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    // Each machine netboots from a different member.
    let fleet: [(&'static str, &str, Option<&str>, u64); 4] = [
        ("rack-server", "b8:ce:f6:5a:1c:40", Some("rack-server.lldp"), 1),
        ("qemu-vm", "52:54:00:3c:9a:11", None, 2),
        ("mini-pc", "7c:83:34:b9:0a:11", None, 3),
        ("arm-board", "dc:a6:32:4f:8e:01", None, 1),
    ];
    let mut machines: BTreeMap<&str, Machine> = BTreeMap::new();
    let mut tokens: BTreeMap<&str, String> = BTreeMap::new();
    for (name, mac, lldp, member) in fleet {
        let mut m = Machine::new(dir.path(), name, lldp);
        // The netboot script is the one endpoint besides the probes that needs no token.
        let script = Client::new(&c.addrs[&member], None).ipxe(mac).await.unwrap();
        assert!(script.starts_with("#!ipxe\n# sendan: MAC ") && script.contains(" is unknown;"), "{script}");
        assert!(script.contains("kernel --name kernel http://boot.test/installer/bzImage initrd=initrd"), "{script}");
        let cmdline = m.netboot(&script);
        assert_eq!(cmdline_value(&cmdline, "server").as_deref(), Some(format!("http://{}", c.addrs[&member]).as_str()));
        tokens.insert(name, cmdline_value(&cmdline, "token").expect("a bootstrap token"));
        m.start_install("dry-run", LONG.as_secs());
        machines.insert(name, m);
    }
    let admin = c.client(1);

    // mini-pc is bound to edge-1 by its machine-id, but edge-1's mirrored layout needs two SSDs: refused, with
    // nothing written.
    let m = machines.get_mut("mini-pc").unwrap();
    let (status, log) = m.finished(LONG).await;
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("the server will not install this machine: node edge-1's install plan was refused at seq")
            && log.contains("disk layout 'mirrored' does not fit: disk 'os-b' needs the disk at index 1 among those matching its selector, but 1 match"),
        "{log}"
    );
    assert!(!m.target.exists() && !m.work.exists(), "a refused install writes nothing");
    let edge = admin.node("edge-1", None).await.unwrap();
    assert_eq!(edge.node.state, NodeState::Commissioned);
    let show = tokio::task::block_in_place(|| sendan_ok(&c, 2, &["node", "show", "edge-1"]));
    assert!(
        show.contains("install:  REFUSED at seq") && show.contains("disk layout 'mirrored' does not fit"),
        "{show}"
    );
    assert!(show.contains("InstallPlanRefused"), "{show}");

    // The board matches two rules at priority 10: a conflict, recorded and shown, while its installer waits.
    let conflict = wait_until("the board's conflict is recorded", LONG, || async {
        let view = admin.machines(None).await.ok()?;
        view.machines.into_iter().find(|m| m.machine.id.as_str() == "dc:a6:32:4f:8e:01")?.problem
    })
    .await;
    assert_eq!(
        conflict,
        "enrollment rules 'pi-by-eth0', 'pi-by-wlan0' all match at priority 10; make them exclusive or bind it with `sendan node accept`"
    );
    let listed = tokio::task::block_in_place(|| sendan_ok(&c, 3, &["machines"]));
    assert!(listed.contains("dc:a6:32:4f:8e:01") && listed.contains("all match at priority 10"), "{listed}");

    // The rack server (pool member by rack, from LLDP) and the VM (by DMI uuid) install and check in.
    for name in ["rack-server", "qemu-vm"] {
        let m = machines.get_mut(name).unwrap();
        let (status, log) = m.finished(LONG).await;
        assert!(status.success(), "{name}: {log}");
        assert!(log.contains("rehearsed the install of node"), "{log}");
        if name == "qemu-vm" {
            // Another machine's host key (a disk moved to other hardware, a cloned image) does not check in.
            let public = m.target.join("etc/ssh/ssh_host_ed25519_key.pub");
            let real = std::fs::read_to_string(&public).unwrap();
            let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherMachineOtherMachineOtherMachineOtherMa root@other\n";
            std::fs::write(&public, other).unwrap();
            let out = m.checkin();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && stderr.contains("this is not the machine that was installed"), "{stderr}");
            std::fs::write(&public, real).unwrap();
        }
        let out = m.checkin();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("checked in: `active`"));
    }
    assert!(machines.get_mut("arm-board").unwrap().running(), "the board's installer waits for an operator");

    // An operator resolves the conflict; the waiting installer carries on.
    let out = tokio::task::block_in_place(|| {
        sendan_ok(&c, 1, &["node", "accept", "dc:a6:32:4f:8e:01", "--as", "pi-1", "--comment", "eth0 is the uplink"])
    });
    assert!(
        out.contains("node pi-1: `NodeCommissioned` recorded at seq") && out.contains("it is `commissioned` now"),
        "{out}"
    );
    let board = machines.get_mut("arm-board").unwrap();
    let (status, log) = board.finished(LONG).await;
    assert!(status.success(), "{log}");
    assert!(board.checkin().status.success());
    // Its profile builds a flake: the dry run recorded the build and the install from its output.
    let commands = std::fs::read_to_string(board.work.join("commands.sh")).unwrap();
    assert!(
        commands.contains("nix --extra-experimental-features 'nix-command flakes' build --no-link --print-out-paths")
    );
    assert!(commands.contains("nixos-install --root"), "{commands}");

    for (node, rule) in [("storage-01", Some("storage-servers")), ("vm-1", Some("vm-1")), ("pi-1", None)] {
        let v = admin.node(node, None).await.unwrap();
        assert_eq!((v.node.state, v.node.rule.as_deref()), (NodeState::Active, rule), "{node}");
    }

    // The storage server's story, in order: bound by its rule, install requested, the installer's reports, the
    // token exchange, the first-boot check-in.
    let story = history(&admin, "storage-01").await;
    use EventKind as K;
    assert_eq!(
        kinds(&story),
        [
            K::NodeCommissioned,
            K::NodeInstallRequested,
            K::InstallProgressed,
            K::NodeInstallStarted,
            K::InstallProgressed,
            K::InstallProgressed,
            K::InstallProgressed,
            K::BootstrapTokenExchanged,
            K::NodeTokenIssued,
            K::NodeActivated,
        ]
    );
    let uuid = "4c4c4544-0058-4b10-8032-b7c04f514b33";
    let actors: Vec<String> = story.iter().map(|e| e.actor.to_string()).collect();
    let installer = format!("bootstrap:{uuid}");
    assert_eq!(
        actors,
        [
            "system:enrollment",
            "system:enrollment",
            &installer,
            &installer,
            &installer,
            &installer,
            &installer,
            "system:bootstrap",
            "system:bootstrap",
            "node:storage-01",
        ]
    );
    let Payload::NodeCommissioned(bound) = &story[0].payload else { panic!() };
    assert_eq!((bound.machine.as_str(), bound.pool.as_deref()), (uuid, Some("storage")));
    let show = tokio::task::block_in_place(|| sendan_ok(&c, 3, &["node", "show", "storage-01"]));
    for line in
        ["state:    active", "rule=storage-servers", "step=plan-fetched", "host key: ssh-ed25519 ", "NodeActivated"]
    {
        assert!(show.contains(line), "`node show` lacks {line:?}:\n{show}");
    }
    let pi = history(&admin, "pi-1").await;
    assert_eq!((pi[0].actor.to_string().as_str(), pi[0].comment.as_deref()), ("admin", Some("eth0 is the uplink")));

    // What the dry run left in the target: the host key reported, and the node token whose hash is recorded.
    let rack = &machines["rack-server"];
    let key = std::fs::read_to_string(rack.target.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
    let Payload::BootstrapTokenExchanged(x) = &story[7].payload else { panic!() };
    assert_eq!(x.ssh_host_key, key.trim());
    let token = std::fs::read_to_string(rack.target.join("var/lib/sendan-agent/token")).unwrap();
    let Payload::NodeTokenIssued(issued) = &story[8].payload else { panic!() };
    assert_eq!(issued.token, Hash::of(token.trim().as_bytes()), "only the hash of the node-generated token is logged");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(rack.target.join("var/lib/sendan-agent/token")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let commands = std::fs::read_to_string(rack.work.join("commands.sh")).unwrap();
    assert!(
        commands.starts_with("disko --mode destroy,format,mount --yes-wipe-all-disks --root-mountpoint"),
        "{commands}"
    );
    let disko: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rack.work.join("disko.json")).unwrap()).unwrap();
    assert_eq!(
        disko["disko"]["devices"]["disk"]["system"]["device"],
        "/dev/disk/by-id/nvme-SAMSUNG_MZQL23T8HCLS-00A07_S64HNE0R123456_1"
    );

    // A spent bootstrap token works no more; an installed node netboots from its disk.
    let spent = Client::new(&c.addrs[&1], Some(tokens["rack-server"].clone()));
    match spent.get::<serde_json::Value, _>("/v1/bootstrap/plan", &()).await.unwrap_err() {
        ClientError::Api { status, message, .. } => {
            assert_eq!(status, 403, "{message}");
            assert!(message.contains("was exchanged for node storage-01's token") && message.contains("works once"));
        }
        other => panic!("{other}"),
    }
    let script = Client::new(&c.addrs[&2], None).ipxe("b8:ce:f6:5a:1c:40").await.unwrap();
    assert_eq!(script, "#!ipxe\n# sendan: node storage-01 is `active`; boot from the local disk\nexit\n");

    // The refused machine netboots again: a new token, a new phone-home, still edge-1, still refused.
    let mini = machines.get_mut("mini-pc").unwrap();
    let script = Client::new(&c.addrs[&3], None).ipxe("7c:83:34:b9:0a:11").await.unwrap();
    assert!(script.contains("# sendan: node edge-1 is `commissioned`; the installer installs it"), "{script}");
    let cmdline = mini.netboot(&script);
    assert_ne!(cmdline_value(&cmdline, "token").unwrap(), tokens["mini-pc"], "the first token was claimed");
    mini.start_install("plan", 30);
    let (status, log) = mini.finished(LONG).await;
    assert!(!status.success() && log.contains("node edge-1's install plan was refused"), "{log}");
    // Its phone-home and the refusal decided again on its new facts join edge-1's history (its netboot
    // recorded nothing).
    let edge = wait_until("the refusal is decided again on the new facts", LONG, || async {
        let h = history(&admin, "edge-1").await;
        (h.last().map(|e| e.kind()) == Some(K::InstallPlanRefused) && h.len() > 2).then_some(h)
    })
    .await;
    assert_eq!(kinds(&edge[edge.len() - 2..]), [K::MachinePhonedHome, K::InstallPlanRefused]);
    assert_eq!(admin.node("edge-1", None).await.unwrap().node.machine.as_str(), "e2f4a6b8c0d24e6f8a0b2c4d6e8f0a1b");

    // Every member holds the same log.
    let head = admin.member().await.unwrap();
    for id in [2, 3] {
        c.wait_seq(id, head.seq, LONG).await;
    }
    let mut verified = Vec::new();
    for id in 1..=3 {
        let v = c.client(id).verify().await.unwrap();
        assert!(v.ok, "member {id}: {v:?}");
        verified.push((v.verified, v.head));
    }
    assert!(verified.windows(2).all(|w| w[0] == w[1]), "every member verifies the same chain: {verified:?}");
    let out = tokio::task::block_in_place(|| sendan(&c, 1, &["audit", "verify"]));
    assert!(out.status.success());
    // Every decision enrollment recorded names the event it was taken on.
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let filter = sendan_api::client::EventFilter { after: Some(after), limit: Some(5000), ..Default::default() };
        let page = admin.events(&filter).await.unwrap();
        after = page.events.last().map(|e| e.seq).unwrap_or(after);
        all.extend(page.events);
        if page.next.is_none() {
            break;
        }
    }
    sendan_tests::assert_causes(&all);
}
