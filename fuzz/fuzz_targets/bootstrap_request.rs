//! Fuzz target: the netboot and bootstrap request path with nothing but attacker-chosen input — a MAC as iPXE
//! would send it, a bearer token, and phone-home facts — against a fleet that already knows some machines.
//!
//! Properties, for any input:
//! - nothing panics;
//! - a MAC that normalizes does so idempotently; the iPXE script for it is lines of text with no `$` (iPXE
//!   would expand it) beyond its own and no line break inside a line;
//! - a token verifies only if it is exactly the token minted for what it claims (MAC, expiry, epoch): any
//!   other bytes are forged or malformed;
//! - the endpoint's pre-check (`identity_refusal`) and `check` of the `MachinePhonedHome` it would propose
//!   agree: a phone-home the pre-check lets through is never refused for its identity, and one it refuses is
//!   refused by `check` too, so a stale pre-check can never let a hijack into the log;
//! - a refused phone-home changes nothing; an accepted one leaves the known machines' facts alone except its own.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sendan_core::event::{
    MachineDiscovered, MachinePhonedHome, NodeActivated, NodeCommissioned, NodeInstallRequested, NodeInstallStarted,
};
use sendan_core::facts::{Dmi, HardwareFacts, Nic};
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};
use sendan_core::machines::identity::identity_refusal;
use sendan_core::machines::netboot::{self, Boot, StatelessToken};
use sendan_core::{Payload, Proposal, Rejection, log};

const SECRET: &str = "fuzz-cluster-secret";
const NOW: i64 = 1_790_000_000_000;
/// The MACs of the known machines; inputs pick among them and their own.
const MACS: [&str; 4] = ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// How far each known machine got: 0 discovered, 1 commissioned, 2 installing, 3 active.
    stages: [u8; 3],
    raw_mac: &'a str,
    token: &'a str,
    /// Phone-home facts: NIC picks, DMI picks and free text.
    nics: Vec<u8>,
    uuid: Option<u8>,
    serial: Option<u8>,
    machine_id: Option<&'a str>,
    body: &'a [u8],
    ttl_ms: u32,
}

fn known(i: usize) -> HardwareFacts {
    HardwareFacts {
        dmi: Dmi {
            system_uuid: Some(format!("4c4c4544-0000-0000-0000-00000000000{i}")),
            serial: Some(format!("SER-{i}")),
            vendor: Some("Acme".into()),
            product: None,
        },
        nics: vec![Nic { name: "eth0".into(), mac: MACS[i].into(), ..Nic::default() }],
        ..HardwareFacts::default()
    }
}

fn apply(state: &mut FleetState, seq: &mut u128, actor: Actor, payload: impl Into<Payload>) -> Result<(), Rejection> {
    *seq += 1;
    let p = Proposal {
        id: EventId::from_u128(*seq),
        time: Timestamp(NOW),
        actor,
        comment: None,
        cause: None,
        payload: payload.into(),
    };
    log::append(state, &[p]).map(|_| ()).map_err(|b| b.rejection)
}

fn fleet(stages: [u8; 3]) -> FleetState {
    let (mut state, mut seq) = (FleetState::default(), 0);
    for (i, stage) in stages.iter().enumerate() {
        let facts = known(i);
        let machine = facts.machine_key().unwrap();
        let node = NodeId::new(format!("n{i}")).unwrap();
        apply(&mut state, &mut seq, Actor::Admin, MachineDiscovered { machine: machine.clone(), facts }).unwrap();
        if stage % 4 >= 1 {
            let c = NodeCommissioned {
                node: node.clone(),
                machine: machine.clone(),
                class: None,
                pool: None,
                profile: None,
                rule: None,
            };
            apply(&mut state, &mut seq, Actor::Admin, c).unwrap();
        }
        if stage % 4 >= 2 {
            apply(&mut state, &mut seq, Actor::Admin, NodeInstallRequested { node: node.clone() }).unwrap();
            apply(&mut state, &mut seq, Actor::Admin, NodeInstallStarted { node: node.clone() }).unwrap();
        }
        if stage % 4 >= 3 {
            apply(&mut state, &mut seq, Actor::Admin, NodeActivated { node }).unwrap();
        }
    }
    state
}

fuzz_target!(|input: Input<'_>| {
    let state = fleet(input.stages);

    // Netboot: the MAC as iPXE sends it, the script for it.
    if let Ok(mac) = netboot::normalize_mac(input.raw_mac) {
        assert_eq!(netboot::normalize_mac(&mac).as_deref(), Ok(mac.as_str()));
        let image =
            netboot::Image { kernel: "http://k".into(), initrd: "http://i".into(), cmdline: input.raw_mac.into() };
        let script = match netboot::boot_for(&state, &mac) {
            Boot::Installer { why, .. } => {
                let t = StatelessToken {
                    mac: mac.clone(),
                    expires: netboot::bootstrap_expiry(Timestamp(NOW), i64::from(input.ttl_ms)),
                    epoch: netboot::bootstrap_epoch(&state, &mac),
                };
                netboot::installer_script(
                    Some(&image),
                    &why,
                    "http://10.0.0.1:7770",
                    &netboot::bootstrap_token(SECRET, &t),
                )
            }
            Boot::Rescue { node, why } => netboot::rescue_script(Some(&image), &why, "http://s", &node),
            Boot::LocalDisk { why } => netboot::local_disk_script(&why),
        };
        assert!(script.starts_with("#!ipxe\n") && !script.contains('$') && !script.contains('\r'), "{script:?}");
    }

    // A bearer token verifies only as exactly what it claims to be.
    if let Some(t) = netboot::verify_bootstrap_token(SECRET, input.token) {
        assert_eq!(netboot::bootstrap_token(SECRET, &t), input.token, "only a minted token verifies");
    }

    // Phone-home: the pre-check and `check` agree.
    let mut facts = match sendan_core::machines::install::decode_phone_home(input.body) {
        Ok(f) if !f.nics.is_empty() => f,
        _ => HardwareFacts::default(),
    };
    for (i, pick) in input.nics.iter().take(4).enumerate() {
        let mac = if *pick < 128 {
            MACS[usize::from(*pick) % MACS.len()].to_owned()
        } else {
            format!("52:54:00:aa:00:{pick:02x}")
        };
        facts.nics.push(Nic { name: format!("eth{i}"), mac, ..Nic::default() });
    }
    if let Some(u) = input.uuid {
        facts.dmi.system_uuid = Some(format!("4c4c4544-0000-0000-0000-00000000000{}", u % 8));
    }
    if let Some(s) = input.serial {
        facts.dmi.serial = Some(format!("SER-{}", s % 8));
        facts.dmi.vendor = Some("acme".into());
    }
    facts.machine_id = input.machine_id.map(str::to_owned);
    let (Some(nic), Ok(machine)) = (facts.nics.first().map(|n| n.mac.clone()), facts.machine_key()) else { return };
    if facts.check().is_err() || !netboot::is_unicast_mac(&nic) {
        return;
    }
    let pre = identity_refusal(&state, &nic, &machine, &facts);
    let event = MachinePhonedHome {
        machine: machine.clone(),
        facts: facts.clone(),
        mac: nic,
        token: Hash::of(input.token.as_bytes()),
        expires: Timestamp(NOW + 3_600_000),
    };
    let p = Proposal {
        id: EventId::from_u128(u128::MAX),
        time: Timestamp(NOW),
        actor: Actor::Bootstrap(machine.clone()),
        comment: None,
        cause: None,
        payload: event.into(),
    };
    let mut after = state.clone();
    match (pre, log::append(&mut after, &[p])) {
        (None, Err(b)) => assert!(
            !matches!(b.rejection, Rejection::IdentityRefused { .. }),
            "pre-check passed, check refused: {}",
            b.rejection
        ),
        (Some(r), Ok(_)) => panic!("the pre-check refused ({r}) but check accepted"),
        (Some(_), Err(b)) => {
            assert!(matches!(b.rejection, Rejection::IdentityRefused { .. }), "{}", b.rejection);
            assert_eq!(after, state, "a refusal changes nothing");
        }
        (None, Ok(_)) => {
            for (id, m) in &state.machines.records {
                if *id != machine {
                    assert_eq!(after.machine(id).map(|a| &a.facts), Some(&m.facts), "machine {id} was changed");
                }
            }
            let _: &MachineId = &machine;
        }
    }
});
