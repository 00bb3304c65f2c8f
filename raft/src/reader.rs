//! Read queries over a member's applied event log: paged and filtered event lists, node history, the
//! fleet at any seq (time travel), and full chain verification. Reads use MVCC read transactions and
//! never block applying.

use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable};
use sendan_core::chain::{ChainBreak, Verifier};
use sendan_core::fleet::FleetState;
use sendan_core::{Event, EventKind, Hash, NodeId, Timestamp, record};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{DbResult, StoreError};
use crate::state::{BY_NODE, BY_TYPE, EVENTS, Shared, fleet_at};

/// A read handle on one member's state machine. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    pub(crate) shared: Arc<Shared>,
}

/// The most stored-record bytes one page of events holds (at least one event is always returned).
pub const PAGE_BYTES: usize = 2 << 20;

/// A page being filled.
struct Page {
    events: Vec<Event>,
    bytes: usize,
    limit: usize,
    full: bool,
}

impl Page {
    /// Add an event of `bytes` stored bytes; whether the page is now full.
    fn push(&mut self, e: Event, bytes: usize) -> bool {
        self.events.push(e);
        self.bytes += bytes;
        self.full = self.events.len() >= self.limit || self.bytes >= PAGE_BYTES;
        self.full
    }
}

/// Which events to list. `after` is exclusive, `since` inclusive, `until` exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub after: u64,
    pub limit: usize,
    pub node: Option<NodeId>,
    pub kind: Option<EventKind>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// The outcome of recomputing the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// How many events verified, from seq 1.
    pub verified: u64,
    /// The hash of the last verified event.
    pub head: Hash,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
}

impl Reader {
    /// The fleet after the last applied event.
    pub fn fleet(&self) -> Arc<FleetState> {
        self.shared.fleet()
    }

    /// The last seq durable in the store (what [`Reader::events`] can return).
    pub fn seq(&self) -> u64 {
        self.shared.durable_seq()
    }

    /// Notified with the last durable seq whenever it moves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.subscribe()
    }

    /// Wait until the store holds everything applied so far, so a reader sees at least what any client
    /// was already answered. Applying answers before its write is durable (see `state`); this wait is at
    /// most one group commit.
    pub async fn caught_up(&self) -> Result<(), StoreError> {
        let target = self.shared.fleet().seq;
        let mut rx = self.shared.subscribe();
        let wait = rx.wait_for(|d| *d >= target);
        match tokio::time::timeout(std::time::Duration::from_secs(10), wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::Unavailable(match self.shared.failure() {
                Some(e) => format!("the state store failed: {e}"),
                None => format!("the state store did not reach seq {target} in 10s"),
            })),
        }
    }

    /// The fleet as it was right after event `seq`.
    pub fn fleet_at(&self, seq: u64) -> Result<Arc<FleetState>, StoreError> {
        let current = self.fleet();
        if seq >= current.seq {
            if seq > current.seq {
                return Err(StoreError::NotYetApplied { seq, applied: current.seq });
            }
            return Ok(current);
        }
        let txn = self.shared.begin_read()?;
        fleet_at(&txn, seq).map(Arc::new)
    }

    pub fn event(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        let txn = self.shared.begin_read()?;
        get_event(&txn, seq)
    }

    /// Events matching `q`, in seq order, at most `q.limit`.
    pub fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        self.events_page(q).map(|(events, _)| events)
    }

    /// The events `q` asks for, at most [`PAGE_BYTES`] of stored records (and always at least one): whatever the
    /// events hold, a page stays bounded. The flag says whether the page stopped at that bound before `limit`.
    pub fn events_page(&self, q: &EventQuery) -> Result<(Vec<Event>, bool), StoreError> {
        let txn = self.shared.begin_read()?;
        let last = {
            let events = txn.open_table(EVENTS).db("open events")?;
            events.last().db("read last event")?.map(|(k, _)| k.value()).unwrap_or(0)
        };
        let mut lo = q.after.saturating_add(1);
        let mut hi = last;
        // Time never goes back along the log (the core raises each event's time to its predecessor's),
        // so a time window is a seq window found by binary search.
        if let Some(since) = q.since {
            lo = lo.max(first_seq_at_or_after(&txn, since, last)?);
        }
        if let Some(until) = q.until {
            hi = hi.min(first_seq_at_or_after(&txn, until, last)?.saturating_sub(1));
        }
        let mut page = Page { events: Vec::new(), bytes: 0, limit: q.limit, full: false };
        if lo > hi || q.limit == 0 {
            return Ok((page.events, false));
        }
        let wanted = |e: &Event| q.kind.is_none_or(|k| e.kind() == k);
        let events = txn.open_table(EVENTS).db("open events")?;
        if let Some(node) = &q.node {
            let idx = txn.open_table(BY_NODE).db("open node index")?;
            for row in idx.range((node.as_str(), lo)..=(node.as_str(), hi)).db("range node index")? {
                let (k, _) = row.db("read node index")?;
                let seq = k.value().1;
                let Some(v) = events.get(seq).db("read event")? else { continue };
                let e = decode_event(seq, v.value())?;
                if wanted(&e) && page.push(e, v.value().len()) {
                    break;
                }
            }
        } else if let Some(kind) = q.kind {
            let idx = txn.open_table(BY_TYPE).db("open type index")?;
            for row in idx.range((kind.code(), lo)..=(kind.code(), hi)).db("range type index")? {
                let (k, _) = row.db("read type index")?;
                let seq = k.value().1;
                let Some(v) = events.get(seq).db("read event")? else { continue };
                if page.push(decode_event(seq, v.value())?, v.value().len()) {
                    break;
                }
            }
        } else {
            for row in events.range(lo..=hi).db("range events")? {
                let (k, v) = row.db("read event")?;
                if page.push(decode_event(k.value(), v.value())?, v.value().len()) {
                    break;
                }
            }
        }
        let stopped_by_bytes = page.full && page.events.len() < q.limit;
        Ok((page.events, stopped_by_bytes))
    }

    /// Recompute the hash chain over every stored event and name the first bad seq.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let txn = self.shared.begin_read()?;
        let events = txn.open_table(EVENTS).db("open events")?;
        let mut v = Verifier::default();
        for row in events.iter().db("scan events")? {
            let (k, bytes) = row.db("read event")?;
            if let Err(broken) = v.push(k.value(), bytes.value()) {
                return Ok(VerifyReport { verified: v.seq(), head: v.head(), broken: Some(broken) });
            }
        }
        Ok(VerifyReport { verified: v.seq(), head: v.head(), broken: None })
    }

    /// The stored record of `seq`, byte for byte (for peers and for tests).
    pub fn raw_record(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.shared.begin_read()?;
        let events = txn.open_table(EVENTS).db("open events")?;
        Ok(events.get(seq).db("read event")?.map(|v| v.value().to_vec()))
    }
}

fn decode_event(seq: u64, bytes: &[u8]) -> Result<Event, StoreError> {
    record::decode(bytes).map_err(|source| StoreError::Record { seq, source })
}

fn get_event(txn: &ReadTransaction, seq: u64) -> Result<Option<Event>, StoreError> {
    let events = txn.open_table(EVENTS).db("open events")?;
    let v = events.get(seq).db("read event")?;
    v.map(|v| decode_event(seq, v.value())).transpose()
}

/// The first seq whose event time is at or after `t` (`last + 1` if none).
fn first_seq_at_or_after(txn: &ReadTransaction, t: Timestamp, last: u64) -> Result<u64, StoreError> {
    let events = txn.open_table(EVENTS).db("open events")?;
    let (mut lo, mut hi) = (1u64, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let time = match events.get(mid).db("read event")? {
            Some(v) => {
                let raw = record::split(v.value()).map_err(|source| StoreError::Record { seq: mid, source })?;
                record::decode_body(raw.body).map_err(|source| StoreError::Record { seq: mid, source })?.time
            }
            None => return Err(StoreError::MissingEvent { seq: mid }),
        };
        if time >= t { hi = mid } else { lo = mid + 1 }
    }
    Ok(lo)
}
