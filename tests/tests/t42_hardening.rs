//! The holes a person on the provisioning network could use, replayed against real `sendan server` processes
//! as an attacker would try them — with nothing but what netboot hands out — and each now closed: a clear 4xx
//! or a bounded answer, and nothing written to the log that should not be. Also the bootstrap threat model's
//! claims (ARCHITECTURE.md, "Bootstrap threat model"), one test each.

use std::time::Duration;

use sendan_api::client::{Client, ClientError, EventFilter};
use sendan_core::NodeState;
use sendan_core::facts::{HardwareFacts, Nic};
use sendan_core::machines::install::PhoneHome;
use sendan_tests::bootstrap::{CLUSTER, NETBOOT_FLAGS, cmdline_value, fixture, kernel_cmdline, sendan, sendan_ok};
use sendan_tests::procs::ProcCluster;
use sendan_tests::{http, proposal, wait_until};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(60);
const VM_MAC: &str = "52:54:00:3c:9a:11";
const VM: &str = "5f0c2b7e-3a41-4d8e-9b6a-1c2d3e4f5a6b";

fn facts(name: &str) -> HardwareFacts {
    sendan_agents::facts::collect(&fixture(name)).unwrap()
}

/// The status, code and message of a refused request.
fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api { status, code, message, .. }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A member with netboot images and the test cluster applied; more `flags` for its server.
async fn started(flags: &[&str]) -> ProcCluster {
    let mut all: Vec<&str> = NETBOOT_FLAGS.to_vec();
    all.extend_from_slice(flags);
    let c = ProcCluster::start(1, &all).await;
    tokio::task::block_in_place(|| sendan_ok(&c, 1, &["apply", CLUSTER]));
    c
}

/// The bootstrap token in the iPXE script netboot answers for `mac`.
async fn token_for(c: &ProcCluster, mac: &str) -> String {
    let script = Client::new(&c.addrs[&1], None).ipxe(mac).await.unwrap();
    cmdline_value(&kernel_cmdline(&script), "token").unwrap_or_else(|| panic!("no token in {script}"))
}

async fn phone_home(c: &ProcCluster, token: &str, facts: &HardwareFacts) -> Result<Value, ClientError> {
    Client::new(&c.addrs[&1], Some(token.into()))
        .post("/v1/bootstrap/phone-home", &PhoneHome { facts: facts.clone() })
        .await
}

async fn seq(c: &ProcCluster) -> u64 {
    c.client(1).member().await.unwrap().seq
}

async fn metric(c: &ProcCluster, name: &str) -> f64 {
    let text = http()
        .get(format!("http://{}/metrics", c.addrs[&1]))
        .bearer_auth("sendan-admin-proc-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// Finding 1 (node hijack), and threat-model claims 1, 2 and 3. Property: a bootstrap token for one NIC cannot make
/// a phone-home speak for a machine the log knows by other NICs — the answer is 403, nothing is recorded, the
/// known machine is unchanged, and the refusal is counted, logged with its source address and listed for the
/// operator — nor for a machine whose node is installed, even from its own NIC, nor with a token handed out before
/// the MAC last phoned home; a token that never phoned home gets neither a plan nor a node token; an installed,
/// draining, failed or retired node is handed no token at all (threat-model claim 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_token_cannot_take_over_another_machine() {
    let c = started(&[]).await;
    let admin = c.client(1);
    let victim = facts("qemu-vm");
    phone_home(&c, &token_for(&c, VM_MAC).await, &victim).await.unwrap();
    wait_until("vm-1 is bound and requested for install", LONG, || async {
        (admin.node("vm-1", None).await.ok()?.node.state == NodeState::InstallPending).then_some(())
    })
    .await;
    let before = seq(&c).await;
    let machine_before = admin.machines(None).await.unwrap().machines.into_iter().find(|m| m.machine.id.as_str() == VM);

    // The attacker netboots from a MAC of its own and claims the victim's DMI uuid.
    let attacker = "52:54:00:66:66:66";
    let token = token_for(&c, attacker).await;
    let mut forged = victim.clone();
    forged.nics = vec![Nic { name: "eth0".into(), mac: attacker.into(), link: true, ..Nic::default() }];
    let (status, code, message) = refused(phone_home(&c, &token, &forged).await);
    assert_eq!((status, code.as_str()), (403, "identity_refused"), "{message}");
    assert!(
        message.contains(&format!("machine {VM}, which the log knows by other NICs, not by MAC {attacker}")),
        "{message}"
    );
    // The victim's NIC under a new identity is refused too.
    let mut other = facts("mini-pc");
    other.nics = victim.nics.clone();
    let (status, _, message) = refused(phone_home(&c, &token_for(&c, VM_MAC).await, &other).await);
    assert_eq!(status, 403);
    assert!(message.contains(&format!("MAC {VM_MAC} belongs to machine {VM}")), "{message}");

    assert_eq!(seq(&c).await, before, "a refusal records nothing");
    let machine_after = admin.machines(None).await.unwrap().machines.into_iter().find(|m| m.machine.id.as_str() == VM);
    assert_eq!(machine_after, machine_before, "the known machine is unchanged");
    let script = Client::new(&c.addrs[&1], None).ipxe(VM_MAC).await.unwrap();
    assert!(script.contains("node vm-1 is `install-pending`"), "the victim's MAC still leads to vm-1: {script}");
    assert_eq!(metric(&c, "sendan_phone_home_refused_total").await, 2.0);
    assert!(c.log(1).contains("refused a phone-home") && c.log(1).contains("source=127.0.0.1:"), "{}", c.log(1));

    // The operator sees the refusals, with where they came from.
    let listed = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["machines", "--refused"]));
    assert!(
        listed.contains(attacker) && listed.contains("127.0.0.1:") && listed.contains("knows by other NICs"),
        "{listed}"
    );
    let view = admin.refused().await.unwrap();
    assert_eq!(view.refused.len(), 2);
    assert_eq!(view.refused[0].machine.as_ref().map(|m| m.as_str()), Some(VM));

    // The attacker's token phoned home for nothing: no plan, no node token.
    let boot = Client::new(&c.addrs[&1], Some(token.clone()));
    let (status, code, _) = refused(boot.get::<Value, _>("/v1/bootstrap/plan", &()).await);
    assert_eq!((status, code.as_str()), (409, "not_phoned_home"));
    let exchange = json!({"sshHostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x", "tokenHash": "00".repeat(32)});
    let (status, _, _) = refused(boot.post::<Value, _>("/v1/bootstrap/node-token", &exchange).await);
    assert_eq!(status, 409);

    // Claim 3: a token handed out before the victim's MAC last phoned home (epoch 0: when the MAC was unknown),
    // validly signed and unexpired but never used, speaks for nothing: a script captured earlier cannot re-bind
    // the machine.
    let old = sendan_core::machines::netboot::StatelessToken {
        mac: VM_MAC.into(),
        expires: sendan_core::Timestamp(i64::MAX / 2),
        epoch: 0,
    };
    let old = sendan_core::machines::netboot::bootstrap_token("proc-cluster-secret", &old);
    let (status, _, message) = refused(phone_home(&c, &old, &victim).await);
    assert_eq!(status, 401, "{message}");
    assert!(message.contains(&format!("handed out before MAC {VM_MAC} last phoned home")), "{message}");

    // Once installed, the victim boots its disk (no token), and a token handed out while it was installing cannot
    // speak for it, even from its own NIC with its own facts.
    let stale = token_for(&c, VM_MAC).await;
    let mut moves = vec![
        proposal(901, json!({"type": "NodeInstallStarted", "node": "vm-1"})),
        proposal(902, json!({"type": "NodeActivated", "node": "vm-1"})),
    ];
    admin.submit(&mut moves, LONG).await.unwrap();
    let script = Client::new(&c.addrs[&1], None).ipxe(VM_MAC).await.unwrap();
    assert!(script.ends_with("boot from the local disk\nexit\n") && !script.contains("sendan.token"), "{script}");
    let (status, _, message) = refused(phone_home(&c, &stale, &victim).await);
    assert_eq!(status, 403);
    assert!(message.contains("bound to node vm-1, which is `active`"), "{message}");

    // An operator who vouches for a refused phone-home (a replaced NIC) records its facts.
    let id = view.refused[0].id;
    let before = seq(&c).await;
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["machines", "--accept-refused", &id.to_string()]));
    assert!(out.contains("recorded the refused phone-home's facts"), "{out}");
    let m = admin.machines(None).await.unwrap().machines.into_iter().find(|m| m.machine.id.as_str() == VM).unwrap();
    assert_eq!(m.machine.facts.nics[0].mac, attacker);
    assert_eq!(seq(&c).await, before + 1);

    // Claim 1: draining, failed and retired nodes boot their disks too; netboot hands out no token for them.
    for (id, event, state) in [
        (903, json!({"type": "NodeDrainRequested", "node": "vm-1"}), "draining"),
        (904, json!({"type": "NodeFailed", "node": "vm-1", "reason": "psu"}), "failed"),
        (905, json!({"type": "NodeRetired", "node": "vm-1"}), "retired"),
    ] {
        admin.submit(&mut [proposal(id, event)], LONG).await.unwrap();
        let script = Client::new(&c.addrs[&1], None).ipxe(attacker).await.unwrap();
        assert!(
            script.contains(&format!("node vm-1 is `{state}`; boot from the local disk"))
                && !script.contains("sendan.token"),
            "{script}"
        );
    }
}

/// Finding 2 (unbounded facts) and claim 5. Property: a phone-home body past the bootstrap limit is refused
/// before it is read (413), a facts field past its cap or a malformed MAC is a 400 naming the field, and an
/// event page stops at its byte cap with `next` continuing — so nothing an installer or a page sends is unbounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_bodies_and_pages_are_bounded() {
    let c = started(&[]).await;
    let token = token_for(&c, VM_MAC).await;
    let before = seq(&c).await;

    // 15 MB declared: refused from the headers alone.
    let mut tcp = TcpStream::connect(&c.addrs[&1]).await.unwrap();
    let head = format!(
        "POST /v1/bootstrap/phone-home HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 15000000\r\n\r\n{{\"facts\":{{\"cpu\":{{\"model\":\""
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let answer = read_some(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let mut big = facts("qemu-vm");
    big.cpu.model = "x".repeat(300);
    let (status, code, message) = refused(phone_home(&c, &token, &big).await);
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(message.contains("`facts.cpu.model` is 300 bytes long; at most 256"), "{message}");
    let mut many = facts("qemu-vm");
    many.nics = (0..200)
        .map(|i| Nic {
            name: format!("e{i}"),
            mac: format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256),
            ..Nic::default()
        })
        .collect();
    let (status, _, message) = refused(phone_home(&c, &token, &many).await);
    assert_eq!(status, 400);
    assert!(message.contains("`facts.nics` has 200 entries; at most 128"), "{message}");
    let mut zz = facts("qemu-vm");
    zz.nics.push(Nic { name: "eth9".into(), mac: "ZZ".into(), ..Nic::default() });
    let (status, _, message) = refused(phone_home(&c, &token, &zz).await);
    assert_eq!(status, 400);
    assert!(message.contains("`facts.nics[1].mac` `ZZ` is not a hardware address"), "{message}");
    assert_eq!(seq(&c).await, before, "nothing was recorded");

    // 1,200 events of 2 KB comments: a page of 10,000 stops at its byte cap; `next` reaches the rest.
    let admin = c.client(1);
    for b in 0..12u128 {
        let mut batch: Vec<_> = (0..100u128)
            .map(|i| {
                let mut p = proposal(
                    10_000 + b * 100 + i,
                    json!({"type": "MachineDiscovered", "machine": format!("m-{b}-{i}")}),
                );
                p.comment = Some("c".repeat(2000));
                p
            })
            .collect();
        admin.submit(&mut batch, LONG).await.unwrap();
    }
    let head = seq(&c).await;
    let resp = http()
        .get(format!("http://{}/v1/events?limit=10000", c.addrs[&1]))
        .bearer_auth("sendan-admin-proc-token")
        .send()
        .await
        .unwrap();
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.len() < 8 << 20, "a page is {} bytes", bytes.len());
    let first: sendan_core::wire::EventPage = serde_json::from_slice(&bytes).unwrap();
    assert!(
        first.events.len() < head as usize && first.next.is_some(),
        "{} events, next {:?}",
        first.events.len(),
        first.next
    );
    let mut total = first.events.len();
    let mut next = first.next;
    while let Some(after) = next {
        let page =
            admin.events(&EventFilter { after: Some(after), limit: Some(10_000), ..Default::default() }).await.unwrap();
        total += page.events.len();
        next = page.next;
    }
    assert_eq!(total as u64, head, "following `next` reaches every event once");
}

/// Read what a server answers on `tcp`, until it has sent something and paused, or closed.
async fn read_some(tcp: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(LONG, tcp.read(&mut buf)).await.expect("an answer").unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Wait until the server closes `tcp` (a read returns end of file or a reset); panics after `LONG`.
async fn closed_by_server(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let reading = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(LONG, reading).await.expect("the server closes the connection");
    String::from_utf8_lossy(&seen).into_owned()
}

/// Finding 3 (no connection timeouts). Property: an idle connection and one whose headers never finish are
/// closed after the header timeout; a body that never comes is answered 408 after the body timeout, and one
/// declared past the limit 413 at once; past `--max-connections` new connections are closed at once with a log
/// line, and the member answers again as soon as they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_in_number_and_time() {
    let c = ProcCluster::start(
        1,
        &["--max-connections", "24", "--http-header-timeout-secs", "2", "--http-body-timeout-secs", "2"],
    )
    .await;
    let addr = c.addrs[&1].clone();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    closed_by_server(&mut idle).await;
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /v1/nodes HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    closed_by_server(&mut partial).await;

    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sendan-admin-proc-token\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":",
    )
    .await
    .unwrap();
    let answer = closed_by_server(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("did not arrive within 2s"), "{answer}");
    let mut huge = TcpStream::connect(&addr).await.unwrap();
    huge.write_all(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sendan-admin-proc-token\r\n\
          Content-Length: 99999999999\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(read_some(&mut huge).await.starts_with("HTTP/1.1 413"));
    drop(huge);

    // 100 idle connections at once: at most 24 are kept, the rest are closed at once.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    wait_until("the connection limit is logged", LONG, || async {
        c.log(1).contains("connection limit reached").then_some(())
    })
    .await;
    drop(held);
    let client = c.client(1);
    let refused = wait_until("the member answers again", LONG, || async {
        let text = http()
            .get(format!("http://{addr}/metrics"))
            .bearer_auth("sendan-admin-proc-token")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("sendan_connections_refused_total "))
            .and_then(|v| v.parse::<u64>().ok())
    })
    .await;
    // Connections that time out meanwhile free their slots, so a few more than 24 may be kept.
    assert!(refused >= 60, "only {refused} connections were refused");
    assert!(client.member().await.is_ok());
}

/// Finding 4 (token flooding) and claim 4. Property: netboot records nothing, so 5,000 requests for random MACs
/// leave the log as it was and a real machine still netboots and phones home; the same MAC asked again within a
/// minute gets the same token; a source past the rate limit gets 429 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netboot_writes_nothing_and_a_flood_locks_out_no_one() {
    let c = started(&["--bootstrap-rate-limit", "0"]).await;
    let before = seq(&c).await;
    let anonymous = Client::new(&c.addrs[&1], None);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..5_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state.to_be_bytes();
        let mac = format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3]);
        let script = anonymous.ipxe(&mac).await.unwrap();
        assert!(script.contains("sendan.token=sendan-boot-"), "{script}");
    }
    assert_eq!(seq(&c).await, before, "netboot wrote nothing");
    assert_eq!(metric(&c, "sendan_bootstrap_rate_limited_total").await, 0.0);
    let home = phone_home(&c, &token_for(&c, VM_MAC).await, &facts("qemu-vm")).await.unwrap();
    assert_eq!(home["machine"], VM);

    // With the default limit (10 a second, bursts of 100) a flooding source is told to slow down.
    let limited = started(&[]).await;
    let raw = http();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..150 {
        let r = raw
            .get(format!("http://{}/v1/boot/ipxe?mac=52:54:00:00:01:{:02x}", limited.addrs[&1], i))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "too_many_requests");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert!(statuses[..90].iter().all(|s| *s == 200), "the burst is served");
    assert!(statuses.contains(&429) && retry_after.is_some(), "{statuses:?}");
    assert!(metric(&limited, "sendan_bootstrap_rate_limited_total").await > 0.0);
}

/// Finding 5 (idempotency that lies). Property: an id re-sent with the same content is answered with the
/// original receipt; with other content (payload or comment) it is a 409 `id_reused` naming the seq it was
/// applied at and changes nothing; and a token that may not submit an event learns nothing from its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_names_one_event() {
    let c = ProcCluster::start(1, &[]).await;
    let admin = c.client(1);
    let mut setup = vec![
        proposal(1, json!({"type": "MachineDiscovered", "machine": "m1"})),
        proposal(2, json!({"type": "NodeCommissioned", "node": "n1", "machine": "m1"})),
    ];
    let receipts = admin.submit(&mut setup, LONG).await.unwrap();
    let original = &receipts.events[0];
    let again = admin.submit_once(&[proposal(1, json!({"type": "MachineDiscovered", "machine": "m1"}))]).await.unwrap();
    assert!(again.events[0].duplicate && again.events[0].seq == original.seq && again.events[0].hash == original.hash);

    let head = seq(&c).await;
    let (status, code, message) =
        refused(admin.submit_once(&[proposal(1, json!({"type": "MachineDiscovered", "machine": "m2"}))]).await);
    assert_eq!((status, code.as_str()), (409, "id_reused"));
    assert!(
        message.contains(&format!("was already applied at seq {} with different content", original.seq)),
        "{message}"
    );
    let mut commented = proposal(1, json!({"type": "MachineDiscovered", "machine": "m1"}));
    commented.comment = Some("another reason".into());
    assert_eq!(refused(admin.submit_once(&[commented]).await).1, "id_reused");
    assert_eq!(seq(&c).await, head, "nothing was applied");

    // A node token sending the admin's id learns neither seq nor hash.
    let node = Client::new(&c.addrs[&1], Some(admin.issue_node_token("n1").await.unwrap().token));
    let (status, code, message) =
        refused(node.submit_once(&[proposal(1, json!({"type": "MachineDiscovered", "machine": "m1"}))]).await);
    assert_eq!((status, code.as_str()), (403, "forbidden"), "{message}");
    assert!(!message.contains(&original.hash.to_hex()), "{message}");
}

/// Finding 6 (terminal injection). Property: control characters and invisible direction marks in any text of an event or of phone-home facts
/// are refused at decode with the field named, and the CLI escapes anything non-printable it prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_the_log_cannot_drive_a_terminal() {
    let c = started(&[]).await;
    let admin = c.client(1);
    let mut setup = vec![
        proposal(1, json!({"type": "MachineDiscovered", "machine": "m1"})),
        proposal(2, json!({"type": "NodeCommissioned", "node": "n1", "machine": "m1"})),
    ];
    admin.submit(&mut setup, LONG).await.unwrap();
    let node = Client::new(&c.addrs[&1], Some(admin.issue_node_token("n1").await.unwrap().token));
    let (status, code, message) = refused(
        node.submit_once(&[proposal(3, json!({"type": "NodeFailed", "node": "n1", "reason": "\u{1b}[2J\u{7}disk"}))])
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "bad_event"));
    assert!(message.contains("`reason` contains the unprintable character U+001B"), "{message}");
    let mut nul = proposal(4, json!({"type": "NodeRetired", "node": "n1"}));
    nul.comment = Some("gone\u{0}".into());
    let (status, _, message) = refused(admin.submit_once(&[nul]).await);
    assert!(status == 400 && message.contains("`comment` contains the unprintable character U+0000"), "{message}");
    let mut vendor = facts("qemu-vm");
    vendor.dmi.vendor = Some("\u{1b}]0;owned\u{7}".into());
    let (status, _, message) = refused(phone_home(&c, &token_for(&c, VM_MAC).await, &vendor).await);
    assert!(status == 400 && message.contains("`facts.dmi.vendor` contains the unprintable character"), "{message}");

    // What the server says back, quoting the caller, reaches the terminal escaped.
    let out = tokio::task::block_in_place(|| sendan(&c, 1, &["node", "show", "n\u{1b}[31mred"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains('\u{1b}') && stderr.contains("\\u{1b}[31mred"), "{stderr}");
    // Invisible direction marks ("Trojan Source") are refused like control characters: a reason cannot read
    // differently on the operator's screen than in the log.
    let (status, _, message) = refused(
        node.submit_once(&[proposal(5, json!({"type": "NodeFailed", "node": "n1", "reason": "ok \u{202e}lanimret"}))])
            .await,
    );
    assert!(status == 400 && message.contains("`reason` contains the unprintable character U+202E"), "{message}");
    let out = tokio::task::block_in_place(|| sendan(&c, 1, &["node", "show", "n\u{202e}1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\u{202e}') && stderr.contains("\\u{202e}"), "{stderr}");
}

/// Finding 7 (metrics cardinality). Property: request metrics are labelled from a fixed set — unknown methods
/// are `other` and unmatched paths `unmatched` — so no number of odd requests grows `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_come_from_a_fixed_set() {
    let c = ProcCluster::start(1, &[]).await;
    let lines = |c: &ProcCluster| {
        let addr = c.addrs[&1].clone();
        async move {
            http()
                .get(format!("http://{addr}/metrics"))
                .bearer_auth("sendan-admin-proc-token")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let _ = lines(&c).await;
    let before = lines(&c).await.lines().count();
    let raw = http();
    for i in 0..2_000 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let _ = raw.request(method, format!("http://{}/v1/x{i}/y", c.addrs[&1])).send().await.unwrap();
    }
    let text = lines(&c).await;
    assert!(text.lines().count() <= before + 4, "{} lines before, {} after:\n{text}", before, text.lines().count());
    assert!(text.contains("route=\"unmatched\",method=\"other\",status=\"404\"}"), "{text}");
}

/// Finding 8 (the smaller holes). Property: each answers as documented — a rescue node recorded by its MAC boots
/// the rescue image; a malformed `Last-Event-ID`, `limit=0` on rollouts, a path that is not UTF-8, a broadcast or
/// multicast MAC and a dry run of `[]` are each a 400 in the JSON error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smaller_holes_answer_as_documented() {
    let c = started(&[]).await;
    let admin = c.client(1);
    let mac = "52:54:00:12:34:56";
    let mut setup = vec![
        proposal(1, json!({"type": "MachineDiscovered", "machine": mac})),
        proposal(2, json!({"type": "NodeCommissioned", "node": "rescued", "machine": mac})),
        proposal(3, json!({"type": "NodeRescueRequested", "node": "rescued"})),
    ];
    admin.submit(&mut setup, LONG).await.unwrap();
    let script = Client::new(&c.addrs[&1], None).ipxe(mac).await.unwrap();
    assert!(script.contains("# sendan: node rescued is `rescue`") && script.contains("rescue/bzImage"), "{script}");

    let raw = http();
    let base = format!("http://{}", c.addrs[&1]);
    let admin_get = |path: &str| raw.get(format!("{base}{path}")).bearer_auth("sendan-admin-proc-token");
    let cases = [
        (admin_get("/v1/events/watch").header("last-event-id", "abc"), "bad_cursor", "Last-Event-ID"),
        (admin_get("/v1/rollouts?limit=0"), "bad_request", "`limit` must be at least 1"),
        (admin_get("/v1/nodes/%ff%fe"), "bad_path", "UTF-8"),
        (raw.get(format!("{base}/v1/boot/ipxe?mac=ff:ff:ff:ff:ff:ff")), "bad_request", "broadcast, multicast"),
        (raw.get(format!("{base}/v1/boot/ipxe?mac=01:00:5e:00:00:fb")), "bad_request", "broadcast, multicast"),
        (
            raw.post(format!("{base}/v1/enroll/dry-run")).bearer_auth("sendan-admin-proc-token").body("[]"),
            "bad_request",
            "expected a JSON object",
        ),
    ];
    for (request, want_code, want_words) in cases {
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or_else(|e| panic!("a JSON error for {want_code}: {e}"));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(want_words), "{body}");
    }
    let kinds: Vec<String> =
        admin.events(&EventFilter::default()).await.unwrap().events.iter().map(|e| e.kind().to_string()).collect();
    assert!(!kinds.iter().any(|k| k.starts_with("Bootstrap")), "nothing about tokens was recorded: {kinds:?}");
}
