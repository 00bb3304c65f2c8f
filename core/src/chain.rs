//! Verifying the hash chain over stored records, naming the first bad `seq`.

use serde::{Deserialize, Serialize};

use crate::ids::Hash;
use crate::record::{self, RecordError};

/// Where and how the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, schemars::JsonSchema)]
#[error("the chain breaks at seq {seq}: {problem}")]
pub struct ChainBreak {
    pub seq: u64,
    pub problem: String,
}

/// Checks records one by one, in order, from a trusted starting point (genesis, or a verified
/// checkpoint).
#[derive(Debug, Clone)]
pub struct Verifier {
    next: u64,
    head: Hash,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier { next: 1, head: Hash::GENESIS }
    }
}

impl Verifier {
    /// Continue after `seq` whose hash is `head`.
    pub fn resume(seq: u64, head: Hash) -> Self {
        Verifier { next: seq + 1, head }
    }

    /// Check the record stored under key `key`. Every byte of the record is covered: the framing and
    /// seq against the key, `prev` against the previous link, and the body and `hash` by recomputing it.
    pub fn push(&mut self, key: u64, bytes: &[u8]) -> Result<(), ChainBreak> {
        let brk = |problem: String| ChainBreak { seq: key, problem };
        if key != self.next {
            return Err(brk(format!("expected seq {} next, found {key}", self.next)));
        }
        let raw = record::split(bytes).map_err(|e: RecordError| brk(e.to_string()))?;
        if raw.seq != key {
            return Err(brk(format!("the record says seq {} but is stored as {key}", raw.seq)));
        }
        if raw.prev != self.head {
            return Err(brk("its `prev` does not match the hash of the event before it".into()));
        }
        record::decode_body(raw.body).map_err(|e| brk(e.to_string()))?;
        let hash = record::link(&raw.prev, key, raw.body);
        if hash != raw.hash {
            return Err(brk("its stored hash does not match its contents".into()));
        }
        self.head = hash;
        self.next += 1;
        Ok(())
    }

    /// The last verified seq (0 if none).
    pub fn seq(&self) -> u64 {
        self.next - 1
    }

    pub fn head(&self) -> Hash {
        self.head
    }
}
