//! Bootstrap access, netboot, enrollment and lifecycle verbs against a real `sendan server` process, through real
//! `sendan` and `sendan-agent` processes where an operator or a machine would use them: what each token may and
//! may not do (every refusal checked, and that a bootstrap token works once), which iPXE script each machine
//! gets, `sendan enroll --dry-run`, and `sendan node <verb>` with the state named when a verb is illegal.

use std::process::Command;
use std::time::Duration;

use sendan_api::client::{Client, ClientError, EventFilter};
use sendan_core::facts::HardwareFacts;
use sendan_core::machines::install::{PhoneHome, TokenExchange};
use sendan_core::{Hash, NodeState};
use sendan_tests::bootstrap::{
    CLUSTER, Machine, NETBOOT_FLAGS, cmdline_value, fixture, kernel_cmdline, sendan, sendan_ok,
};
use sendan_tests::procs::ProcCluster;
use sendan_tests::{binary, wait_until};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@vm-1";

fn facts(name: &str) -> HardwareFacts {
    sendan_agents::facts::collect(&fixture(name)).unwrap()
}

/// The status and message of a refused request.
fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api { status, message, .. }) => (status, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn started(flags: &[&str]) -> ProcCluster {
    let c = ProcCluster::start(1, flags).await;
    tokio::task::block_in_place(|| sendan_ok(&c, 1, &["apply", CLUSTER]));
    c
}

/// Property: without a token only the netboot script and the probes answer (401 elsewhere); a bootstrap token
/// phones home once (a second phone-home is 403), only with facts that carry the NIC it was issued for, may not
/// phone home through `/v1/events`, reads nothing but its own plan, reports only its own node's install, and
/// stops working once exchanged for the node token (403 naming the exchange, phone-home included); the node token
/// it was exchanged for speaks for that node only (403 for anything else). No refusal changes the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_does_what_its_scope_allows_and_nothing_else() {
    let c = started(NETBOOT_FLAGS).await;
    let addr = &c.addrs[&1];
    let anonymous = Client::new(addr, None);
    for path in ["/v1/bootstrap/plan", "/v1/nodes", "/v1/machines"] {
        let (s, m) = refused(anonymous.get::<Value, _>(path, &()).await);
        assert_eq!(s, 401, "{path}: {m}");
    }
    let (s, _) = refused(anonymous.post::<Value, _>("/v1/bootstrap/phone-home", &json!({})).await);
    assert_eq!(s, 401);
    let (s, m) =
        refused(Client::new(addr, Some("sendan-boot-forged".into())).get::<Value, _>("/v1/bootstrap/plan", &()).await);
    assert_eq!((s, m.as_str()), (401, "the bearer token is not valid on this cluster"));

    // Asked again (in any MAC spelling) within the same minute, netboot hands out the same token: it records
    // nothing, so the token is derived, not looked up. (Two asks that straddle a minute are asked again.)
    let script = loop {
        let (a, b) =
            (anonymous.ipxe("52:54:00:3c:9a:11").await.unwrap(), anonymous.ipxe("52-54-00-3C-9A-11").await.unwrap());
        let expiry =
            |s: &str| cmdline_value(&kernel_cmdline(s), "token").map(|t| t.split('-').nth(3).map(str::to_owned));
        if expiry(&a) == expiry(&b) {
            assert_eq!(a, b, "the same token is handed out again");
            break a;
        }
    };
    let token = cmdline_value(&kernel_cmdline(&script), "token").unwrap();
    let boot = Client::new(addr, Some(token.clone()));
    let admin = c.client(1);
    let before = admin.member().await.unwrap().seq;

    for (what, r) in [
        ("the fleet", boot.get::<Value, _>("/v1/nodes", &()).await),
        ("machines", boot.get::<Value, _>("/v1/machines", &()).await),
        ("events", boot.get::<Value, _>("/v1/events", &()).await),
        ("a dry run", boot.post::<Value, _>("/v1/enroll/dry-run", &facts("qemu-vm")).await),
    ] {
        let (s, m) = refused(r);
        assert_eq!(s, 403, "{what}: {m}");
        assert!(m.starts_with("a bootstrap token may only phone home"), "{m}");
    }
    let (s, m) = refused(boot.get::<Value, _>("/v1/bootstrap/plan", &()).await);
    assert_eq!(s, 409);
    assert!(m.starts_with("phone home first"), "{m}");
    let (s, m) = refused(
        boot.submit_once(&[sendan_tests::proposal(1, json!({"type": "MachineDiscovered", "machine": "x"}))]).await,
    );
    assert_eq!(s, 403);
    assert!(m.contains("an installer phones home with POST /v1/bootstrap/phone-home"), "{m}");
    // Facts of another machine do not carry the NIC the token was issued for.
    let (s, m) =
        refused(boot.post::<Value, _>("/v1/bootstrap/phone-home", &PhoneHome { facts: facts("mini-pc") }).await);
    assert_eq!(s, 403);
    assert!(
        m.contains(
            "the facts do not list the NIC with MAC 52:54:00:3c:9a:11, which the bootstrap token was issued for"
        ),
        "{m}"
    );
    assert_eq!(admin.member().await.unwrap().seq, before, "refusals change nothing");

    // Its own facts: phoned home, once. The same phone-home again (an answer lost on the way) is answered the
    // same; another one with the same token is refused.
    let home: Value = boot.post("/v1/bootstrap/phone-home", &PhoneHome { facts: facts("qemu-vm") }).await.unwrap();
    assert_eq!(home["machine"], "5f0c2b7e-3a41-4d8e-9b6a-1c2d3e4f5a6b");
    let again: Value = boot.post("/v1/bootstrap/phone-home", &PhoneHome { facts: facts("qemu-vm") }).await.unwrap();
    assert_eq!(again["seq"], home["seq"], "a retry is the original phone-home");
    let mut changed = facts("qemu-vm");
    changed.memory_bytes += 1 << 30;
    let (s, m) = refused(boot.post::<Value, _>("/v1/bootstrap/phone-home", &PhoneHome { facts: changed }).await);
    assert_eq!(s, 403);
    assert!(
        m.contains("machine 5f0c2b7e-3a41-4d8e-9b6a-1c2d3e4f5a6b phoned home with it at seq")
            && m.contains("works once"),
        "{m}"
    );

    // Enrollment binds it to vm-1 and requests the install; the plan is its to fetch.
    let plan: Value = wait_until("vm-1's plan is served", LONG, || async {
        boot.get::<Value, _>("/v1/bootstrap/plan", &()).await.ok()
    })
    .await;
    assert_eq!((plan["node"].as_str(), plan["plan"]["hostname"].as_str()), (Some("vm-1"), Some("vm-1")));
    assert_eq!(plan["disks"]["root"]["device"], "/dev/disk/by-id/virtio-vm-7f3a-os");

    // Another node exists (the board, which two rules conflict over, bound by an operator); the installer may
    // not report about it, nor activate itself.
    let board = facts("arm-board");
    let mut setup = vec![sendan_core::wire::ProposalIn {
        id: None,
        comment: None,
        cause: None,
        payload: sendan_core::event::MachineDiscovered { machine: board.machine_key().unwrap(), facts: board }.into(),
    }];
    admin.submit(&mut setup, LONG).await.unwrap();
    tokio::task::block_in_place(|| sendan_ok(&c, 1, &["node", "accept", "dc:a6:32:4f:8e:01", "--as", "lab-9"]));
    for (payload, status, words) in [
        (
            json!({"type": "NodeInstallFailed", "node": "lab-9", "reason": "x"}),
            403,
            "may only submit events about its own machine",
        ),
        (json!({"type": "NodeActivated", "node": "vm-1"}), 403, "may not submit this kind of event"),
        (
            json!({"type": "NodeTokenIssued", "node": "vm-1", "token": Hash::of(b"t")}),
            403,
            "may not submit this kind of event",
        ),
    ] {
        let (s, m) = refused(boot.submit_once(&[sendan_tests::proposal(2, payload)]).await);
        assert_eq!(s, status, "{m}");
        assert!(m.contains(words), "{m}");
    }
    boot.submit_once(&[sendan_tests::proposal(3, json!({"type": "NodeInstallStarted", "node": "vm-1"}))])
        .await
        .unwrap();

    // The exchange: the node token is generated here; the server records its hash.
    let node_token = "sendan-node-generated-by-the-installer-0123456789abcdef0123456789abcdef";
    let exchange = TokenExchange { ssh_host_key: KEY.into(), token_hash: Hash::of(node_token.as_bytes()) };
    let bad = TokenExchange { ssh_host_key: "ssh-dss AAAA".into(), ..exchange.clone() };
    let (s, m) = refused(boot.post::<Value, _>("/v1/bootstrap/node-token", &bad).await);
    assert_eq!(s, 400, "{m}");
    let done: Value = boot.post("/v1/bootstrap/node-token", &exchange).await.unwrap();
    assert_eq!(done["node"], "vm-1");
    for r in [
        boot.get::<Value, _>("/v1/bootstrap/plan", &()).await,
        boot.post::<Value, _>("/v1/bootstrap/node-token", &exchange).await,
        boot.post::<Value, _>("/v1/bootstrap/phone-home", &PhoneHome { facts: facts("qemu-vm") }).await,
    ] {
        let (s, m) = refused(r);
        assert_eq!(s, 403, "{m}");
        assert!(m.contains("was exchanged for node vm-1's token") && m.contains("works once"), "{m}");
    }

    // The node token speaks for vm-1 only.
    let node = Client::new(addr, Some(node_token.into()));
    assert_eq!(node.node("vm-1", None).await.unwrap().node.state, NodeState::Installing);
    for (what, r) in [
        ("another node", node.node("lab-9", None).await.map(|_| ())),
        ("machines", node.machines(None).await.map(|_| ())),
        ("the plan endpoint of installers", node.get::<Value, _>("/v1/bootstrap/plan", &()).await.map(|_| ())),
    ] {
        assert_eq!(refused(r).0, 403, "a node token may not read {what}");
    }
    let (s, m) = refused(
        node.submit_once(&[sendan_tests::proposal(4, json!({"type": "NodeActivated", "node": "lab-9"}))]).await,
    );
    assert_eq!(s, 403);
    assert!(m.contains("only submit events about its own node, not lab-9"), "{m}");
    node.submit_once(&[sendan_tests::proposal(5, json!({"type": "NodeActivated", "node": "vm-1"}))]).await.unwrap();
    let logged =
        serde_json::to_string(&admin.events(&EventFilter { limit: Some(1000), ..Default::default() }).await.unwrap())
            .unwrap();
    assert!(!logged.contains(&token) && !logged.contains(node_token), "no token is ever an event");
}

/// Property: the netboot script follows the machine's node: unknown and to-be-installed machines boot the
/// configured installer with the server and a token, active ones their disk, nodes in rescue the rescue image;
/// a member without images says so; a malformed MAC is a 400 naming it. An installer without ssh-keygen stops
/// with that error before it changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netboot_scripts_follow_the_node() {
    let c = started(NETBOOT_FLAGS).await;
    let anonymous = Client::new(&c.addrs[&1], None);
    let (s, m) = refused(anonymous.ipxe("52:54:00:zz:00:01").await);
    assert_eq!(s, 400);
    assert!(m.contains("MAC address `52:54:00:zz:00:01` is not valid"), "{m}");

    // An installer image without ssh-keygen stops before it reports anything: the host key is made on the node
    // or not at all, and the node stays `install-pending` for a fixed image.
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Machine::new(dir.path(), "qemu-vm", None);
    vm.netboot(&anonymous.ipxe("52:54:00:3c:9a:11").await.unwrap());
    vm.start_install_with("dry-run", LONG.as_secs(), &[("PATH", "/nonexistent")]);
    let (status, log) = vm.finished(LONG).await;
    assert!(!status.success() && log.contains("`ssh-keygen` is not installed"), "{log}");
    let vm1 = c.client(1).node("vm-1", None).await.unwrap();
    assert_eq!(vm1.node.state, NodeState::InstallPending, "nothing was reported: {log}");
    assert!(!vm.target.exists());

    // Netbooted again with OpenSSH, the VM installs (dry run) and checks in.
    vm.netboot(&anonymous.ipxe("52:54:00:3c:9a:11").await.unwrap());
    vm.start_install("dry-run", LONG.as_secs());
    let (status, log) = vm.finished(LONG).await;
    assert!(status.success(), "{log}");
    assert!(vm.checkin().status.success());
    assert_eq!(
        anonymous.ipxe("52:54:00:3c:9a:11").await.unwrap(),
        "#!ipxe\n# sendan: node vm-1 is `active`; boot from the local disk\nexit\n"
    );
    tokio::task::block_in_place(|| sendan_ok(&c, 1, &["node", "rescue", "vm-1"]));
    let rescue = anonymous.ipxe("52:54:00:3c:9a:11").await.unwrap();
    assert_eq!(
        rescue,
        "#!ipxe\n# sendan: node vm-1 is `rescue`\n\
         kernel --name kernel http://boot.test/rescue/bzImage initrd=initrd sendan.server=http://{} sendan.node=vm-1\n\
         initrd --name initrd http://boot.test/rescue/initrd\nboot\n"
            .replace("{}", &c.addrs[&1])
    );
    // Reprovisioning wipes and installs again: the installer boots, with a new token.
    tokio::task::block_in_place(|| sendan_ok(&c, 1, &["node", "reprovision", "vm-1", "--comment", "new disk"]));
    let again = anonymous.ipxe("52:54:00:3c:9a:11").await.unwrap();
    assert!(
        again.contains("http://boot.test/installer/bzImage") && again.contains("sendan.token=sendan-boot-"),
        "{again}"
    );
    // `--mode plan` (the default) phones home and prints the plan, and reports nothing else.
    vm.netboot(&again);
    let admin = c.client(1);
    wait_until("vm-1 is requested for install again", LONG, || async {
        (admin.node("vm-1", None).await.ok()?.node.state == NodeState::InstallPending).then_some(())
    })
    .await;
    let before = admin.member().await.unwrap().seq;
    vm.start_install("plan", LONG.as_secs());
    let (status, log) = vm.finished(LONG).await;
    assert!(status.success(), "{log}");
    let printed: String = log.lines().filter(|l| !l.starts_with("sendan-agent: ")).collect::<Vec<_>>().join("\n");
    let plan: sendan_core::machines::install::ServedPlan = serde_json::from_str(&printed).expect("the plan, as JSON");
    assert_eq!(
        (plan.node.as_str(), plan.state, plan.plan.network.address.to_string()),
        ("vm-1", NodeState::InstallPending, "10.20.1.21".into())
    );
    let after = admin.events(&EventFilter { after: Some(before), ..Default::default() }).await.unwrap();
    let kinds: Vec<String> = after.events.iter().map(|e| e.kind().to_string()).collect();
    assert_eq!(kinds, ["MachinePhonedHome"], "a plan-only run reports nothing but its phone-home");

    // A member with no images configured tells the machine so, and hands out no token.
    let bare = ProcCluster::start(1, &[]).await;
    let script = Client::new(&bare.addrs[&1], None).ipxe("52:54:00:00:00:99").await.unwrap();
    assert!(
        script.contains(
            "echo sendan: this server has no installer image configured (installer-kernel, installer-initrd)"
        )
    );
    assert!(!script.contains("sendan.token"), "{script}");
    assert_eq!(bare.client(1).member().await.unwrap().seq, 0, "nothing was issued");
}

/// Property: `sendan enroll --dry-run` explains, per rule and criterion, which rule binds a machine's facts and
/// whether its layout fits, and changes nothing; without LLDP the rack rule cannot match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_dry_run_explains_the_binding() {
    let c = started(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = |lldp: &str| {
        let out = Command::new(binary("sendan-agent"))
            .args(["facts", "--root"])
            .arg(fixture("rack-server"))
            .args(["--lldp", lldp])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let lldp = sendan_tests::bootstrap::repo().join("tests/fixtures/bootstrap/rack-server.lldp");
    let with = dir.path().join("with-lldp.json");
    std::fs::write(&with, agent(lldp.to_str().unwrap())).unwrap();
    let without = dir.path().join("without.json");
    std::fs::write(&without, agent("off")).unwrap();
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["enroll", "--dry-run", with.to_str().unwrap()]));
    for line in [
        "location: rack r01 (switch ports: r01-tor-a:Ethernet12, r01-tor-b:Ethernet12)",
        "rule 'storage-servers' (priority 50, binds pool storage): matches",
        "    ok    racks: rack r01 is one of r01",
        "    FAIL  systemUuids: DMI system uuid 4c4c4544-0058-4b10-8032-b7c04f514b33 is not one of",
        "result: binds node storage-01 (class storage, pool storage, profile server) by rule 'storage-servers'",
        "layout: 'storage-zfs' fits: data1 → sda (/dev/disk/by-id/ata-ST4000NM0035-1V4107_ZC1ABCDE)",
    ] {
        assert!(out.contains(line), "the dry run lacks {line:?}:\n{out}");
    }
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["enroll", "--dry-run", without.to_str().unwrap()]));
    assert!(out.contains("FAIL  racks: the rack is unknown: the machine reported no LLDP neighbours"), "{out}");
    assert!(
        out.contains("result: no rule matches; the machine stays `discovered` until `sendan node accept`"),
        "{out}"
    );
    let json = tokio::task::block_in_place(|| {
        sendan_ok(&c, 1, &["--output", "json", "enroll", "--dry-run", with.to_str().unwrap()])
    });
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["outcome"]["result"], "binds");
    assert_eq!(c.client(1).member().await.unwrap().seq, 1, "a dry run records nothing");
    // Without --dry-run, the facts are recorded and enrollment binds the machine.
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["enroll", with.to_str().unwrap()]));
    assert!(out.contains("machine 4c4c4544-0058-4b10-8032-b7c04f514b33 recorded at seq 2"), "{out}");
    wait_until("storage-01 is bound and requested for install", LONG, || async {
        let v = c.client(1).node("storage-01", None).await.ok()?;
        (v.node.state == NodeState::InstallPending).then_some(())
    })
    .await;
}

/// Property: every lifecycle verb records one audited event with its comment and prints the new state; an
/// illegal verb exits non-zero naming the node's state and what the verb needs, and records nothing; a
/// replacement machine is bound with `rebind`, releasing the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_verbs_are_audited_and_illegal_ones_name_the_state() {
    // No spec: enrollment stays out of the way, so every move here is the operator's.
    let c = ProcCluster::start(1, &[]).await;
    let admin = c.client(1);
    let mut discover = Vec::new();
    for name in ["mini-pc", "arm-board"] {
        let f = facts(name);
        discover.push(sendan_core::wire::ProposalIn {
            id: None,
            comment: None,
            cause: None,
            payload: sendan_core::event::MachineDiscovered { machine: f.machine_key().unwrap(), facts: f }.into(),
        });
    }
    admin.submit(&mut discover, LONG).await.unwrap();
    let old = "e2f4a6b8c0d24e6f8a0b2c4d6e8f0a1b";
    let verb = |args: &[&str]| tokio::task::block_in_place(|| sendan_ok(&c, 1, args));
    let illegal = |args: &[&str], words: &str| {
        let out = tokio::task::block_in_place(|| sendan(&c, 1, args));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() && err.contains(words), "{args:?}: {err}");
    };
    assert!(
        verb(&["node", "commission", "lab-9", "--machine", old, "--comment", "by hand"])
            .contains("it is `commissioned` now")
    );
    illegal(
        &["node", "drain", "lab-9"],
        "node lab-9 is `commissioned`; `NodeDrainStarted` needs `active` or `draining`; allowed now:",
    );
    assert!(verb(&["node", "install", "lab-9", "--comment", "go"]).contains("it is `install-pending` now"));
    let mut events = vec![
        sendan_tests::proposal(100, json!({"type": "NodeInstallStarted", "node": "lab-9"})),
        sendan_tests::proposal(101, json!({"type": "NodeActivated", "node": "lab-9"})),
    ];
    admin.submit(&mut events, LONG).await.unwrap();
    assert!(verb(&["node", "drain", "lab-9", "--comment", "kernel update"]).contains("it is `draining` now"));
    assert!(verb(&["node", "uncordon", "lab-9"]).contains("it is `active` now"));
    illegal(&["node", "reprovision", "lab-9"], "node lab-9 is `active`; `NodeReprovisionRequested` needs one of");
    assert!(verb(&["node", "rescue", "lab-9"]).contains("it is `rescue` now"));
    assert!(verb(&["node", "reprovision", "lab-9"]).contains("it is `reprovisioning` now"));
    // Replacement hardware: the board takes lab-9 over; the mini PC is released.
    assert!(
        verb(&["node", "rebind", "lab-9", "--machine", "dc:a6:32:4f:8e:01", "--comment", "mainboard died"])
            .contains("it is `commissioned` now")
    );
    illegal(&["node", "accept", old, "--as", "lab-9"], "node lab-9 already exists and is `commissioned`");
    assert!(verb(&["node", "retire", "lab-9"]).contains("it is `retired` now"));
    illegal(&["node", "install", "lab-9"], "allowed now: nothing (the state is terminal)");
    let json: Value = serde_json::from_str(&verb(&["--output", "json", "node", "show", "lab-9"])).unwrap();
    let history: Vec<(String, Value)> = json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["comment"].clone()))
        .collect();
    let expected = [
        ("NodeCommissioned", json!("by hand")),
        ("NodeInstallRequested", json!("go")),
        ("NodeInstallStarted", Value::Null),
        ("NodeActivated", Value::Null),
        ("NodeDrainStarted", json!("kernel update")),
        ("NodeUncordoned", Value::Null),
        ("NodeRescueRequested", Value::Null),
        ("NodeReprovisionRequested", Value::Null),
        ("NodeRebound", json!("mainboard died")),
        ("NodeRetired", Value::Null),
    ];
    assert_eq!(history, expected.map(|(k, v)| (k.to_owned(), v)), "illegal verbs record nothing");
    let machines = admin.machines(None).await.unwrap();
    let released = machines.machines.iter().find(|m| m.machine.id.as_str() == old).unwrap();
    assert_eq!(released.machine.node, None, "the replaced machine is released");
}

/// Property: a member with `--boot-dir` serves the files below it at `/v1/boot/files/…` with what iPXE and a
/// resuming download rely on — the whole file with a strong ETag, a byte range as 206 with its `Content-Range`,
/// 304 for a matching `If-None-Match`, the whole file again when `If-Range` names another version — and the netboot
/// script points at them; a path out of the directory is a 400 that says why, a missing file a 404, and a member
/// without a boot directory says how to give it one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boot_directory_is_served_with_ranges_and_etags_and_nothing_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(boot.join("installer")).unwrap();
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    std::fs::write(boot.join("installer/bzImage"), &body).unwrap();
    std::fs::write(boot.join("installer/initrd"), b"initrd").unwrap();
    std::fs::write(dir.path().join("secret"), b"not served").unwrap();
    let boot_s = boot.display().to_string();
    let flags = [
        "--boot-dir",
        boot_s.as_str(),
        "--installer-kernel",
        "installer/bzImage",
        "--installer-initrd",
        "installer/initrd",
    ];
    let c = ProcCluster::start(1, &flags).await;
    let base = format!("http://{}/v1/boot/files", c.addrs[&1]);
    let http = sendan_tests::http();

    let whole = http.get(format!("{base}/installer/bzImage")).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "a strong ETag: {etag}");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), body.as_slice());

    let part = http.get(format!("{base}/installer/bzImage")).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(part.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &body[100..200]);

    let same = http.get(format!("{base}/installer/bzImage")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(same.status(), 304);

    let stale = http
        .get(format!("{base}/installer/bzImage"))
        .header("range", "bytes=100-199")
        .header("if-range", "\"another-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "a range of another version is not what the client has");
    assert_eq!(stale.bytes().await.unwrap().len(), body.len());
    let fresh = http
        .get(format!("{base}/installer/bzImage"))
        .header("range", "bytes=0-9")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 206);

    let script = Client::new(&c.addrs[&1], None).ipxe("52:54:00:aa:bb:01").await.unwrap();
    assert!(script.contains(&format!("kernel --name kernel {base}/installer/bzImage ")), "{script}");
    assert!(script.contains(&format!("initrd --name initrd {base}/installer/initrd")), "{script}");

    // Encoded slashes reach the server as they are (a client would normalize a literal `..` away).
    let out = http.get(format!("{base}/installer%2F..%2F..%2Fsecret")).send().await.unwrap();
    assert_eq!(out.status(), 400);
    assert!(out.text().await.unwrap().contains("not a plain relative path"));
    let missing = http.get(format!("{base}/installer/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let bare = ProcCluster::start(1, &[]).await;
    let none = http.get(format!("http://{}/v1/boot/files/x", bare.addrs[&1])).send().await.unwrap();
    assert_eq!(none.status(), 404);
    assert!(none.text().await.unwrap().contains("start it with --boot-dir"));
}
