//! Fuzz target: decoding a phone-home body (`sendan_core::machines::install::decode_phone_home`), what the server runs on
//! every `POST /v1/bootstrap/phone-home` from a machine nobody vouched for.
//!
//! Properties, for any bytes:
//! - nothing panics;
//! - whatever decodes is within every cap of `sendan_core::bounds` with printable text (`HardwareFacts::check`
//!   agrees), so it can go into an event;
//! - decoded facts round-trip through JSON (what the API answers) and postcard (what the log stores) unchanged;
//! - the machine key is derived without panicking, and when there is one it is a valid machine id;
//! - `cleaned()` changes nothing in facts that already passed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sendan_core::facts::HardwareFacts;
use sendan_core::machines::install::{PhoneHome, decode_phone_home};

fuzz_target!(|data: &[u8]| {
    let Ok(facts) = decode_phone_home(data) else { return };
    facts.check().expect("decoded facts pass their own check");
    let json = serde_json::to_vec(&PhoneHome { facts: facts.clone() }).expect("facts serialise");
    assert_eq!(decode_phone_home(&json).expect("what was decoded decodes again"), facts);
    let stored = postcard::to_allocvec(&facts).expect("facts encode");
    assert_eq!(postcard::from_bytes::<HardwareFacts>(&stored).expect("stored facts decode"), facts);
    if let Ok(key) = facts.machine_key() {
        assert!(sendan_core::MachineId::new(key.as_str()).is_ok());
    }
    assert_eq!(facts.cleaned(), facts, "cleaning printable facts within their caps changes nothing");
});
