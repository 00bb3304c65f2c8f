//! Sendan's replicated log: openraft over redb, snapshots and the peer transport.
