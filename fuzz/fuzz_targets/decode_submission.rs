//! Fuzz target: the `POST /v1/events` body decoder, `sendan_core::wire::decode_submission`.
//!
//! Any bytes at all may arrive from the network, so decoding must never panic. When a body decodes, the
//! proposals must survive the trip back through their own JSON form: encoding each with
//! `ProposalIn::to_json` and decoding the result gives the same proposals, both as a batch and, for a
//! single proposal, as a bare object.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sendan_core::wire::{ProposalIn, decode_submission};
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let Ok(proposals) = decode_submission(body) else { return };
    assert!(!proposals.is_empty(), "an accepted submission carries at least one event");

    let batch = Value::Array(proposals.iter().map(ProposalIn::to_json).collect());
    let bytes = serde_json::to_vec(&batch).expect("a JSON value serialises");
    let again =
        decode_submission(&bytes).unwrap_or_else(|e| panic!("re-encoded submission {batch} does not decode: {e}"));
    assert_eq!(again, proposals, "re-encoded submission {batch} decodes to other proposals");

    if let [one] = proposals.as_slice() {
        let bytes = serde_json::to_vec(&one.to_json()).expect("a JSON value serialises");
        let again = decode_submission(&bytes).expect("a single re-encoded event decodes");
        assert_eq!(again.as_slice(), std::slice::from_ref(one));
    }
});
