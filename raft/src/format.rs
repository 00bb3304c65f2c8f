//! The one place this crate frames what it stores besides events (Raft log entries, vote, committed and purged
//! log ids, applied index, membership, fleet checkpoints, snapshot headers): a format-version byte, then postcard.
//! Events are framed by `sendan_core::record`. A record of another format is an error naming it, never garbage.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// The format of every record framed here.
pub(crate) const RECORD_FORMAT: u8 = 1;

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // infallible: postcard writes owned, well-formed values into a Vec, which has no way to fail.
    postcard::to_extend(v, vec![RECORD_FORMAT]).expect("postcard encoding into a Vec")
}

pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT, body)) => postcard::from_bytes(body).map_err(StoreError::decode(what)),
        Some((other, _)) => Err(StoreError::Layout(format!(
            "a stored {what} has record format {other}; this build reads format {RECORD_FORMAT}"
        ))),
        None => Err(StoreError::Layout(format!("a stored {what} is empty"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_their_format_and_another_format_is_named() {
        let bytes = encode(&(7u64, "seven"));
        assert_eq!(bytes[0], RECORD_FORMAT);
        assert_eq!(decode::<(u64, String)>("pair", &bytes).unwrap(), (7, "seven".to_owned()));
        let mut future = bytes.clone();
        future[0] = 2;
        let err = decode::<(u64, String)>("pair", &future).unwrap_err().to_string();
        assert!(err.contains("record format 2; this build reads format 1"), "{err}");
        assert!(decode::<(u64, String)>("pair", &[]).is_err());
    }
}
