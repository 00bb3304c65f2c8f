//! Fuzz target: the stored record format, `sendan_core::record`, and chain verification,
//! `sendan_core::chain::Verifier::push`.
//!
//! Records are read back from disk and from snapshots sent by peers, so neither decoding nor verifying
//! may panic on any bytes. When a record decodes, encoding its event gives bytes that decode to the same
//! event; and the event, sealed with a correct link at its seq, passes verification.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sendan_core::chain::Verifier;
use sendan_core::{Event, record};

fuzz_target!(|bytes: &[u8]| {
    // Verification from genesis, and from just before the seq the record claims, so that the `prev` and
    // hash checks are reached too.
    let _ = Verifier::default().push(1, bytes);
    let raw = record::split(bytes).ok().map(|r| (r.seq, r.prev));
    if let Some((seq, prev)) = raw
        && (1..u64::MAX).contains(&seq)
    {
        let mut v = Verifier::resume(seq - 1, prev);
        if v.push(seq, bytes).is_ok() {
            assert_eq!((v.seq(), v.head()), (seq, record::split(bytes).unwrap().hash));
        }
    }

    let Ok(event) = record::decode(bytes) else { return };
    let encoded = record::encode(&event);
    let again =
        record::decode(&encoded).unwrap_or_else(|e| panic!("the re-encoded record of {event:?} does not decode: {e}"));
    // Re-encoding writes this build's schema version; everything else is the same event.
    assert_eq!(Event { version: event.version, ..again }, event, "the re-encoded record decodes to another event");

    // The same event with the hash this build computes for it is a valid link after its `prev`.
    if (1..u64::MAX).contains(&event.seq) {
        let body =
            record::encode_body(&event.id, event.time, &event.actor, &event.comment, event.cause, &event.payload);
        let sealed = Event { hash: record::link(&event.prev, event.seq, &body), ..event };
        let mut v = Verifier::resume(sealed.seq - 1, sealed.prev);
        v.push(sealed.seq, &record::encode(&sealed))
            .unwrap_or_else(|e| panic!("a freshly sealed record fails verification: {e}"));
        assert_eq!(v.head(), sealed.hash);
    }
});
