//! openraft's storage conformance suite, run against the redb log store and state machine.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use sendan_raft::{LogStore, MemberId, StateMachine, TypeConfig, open_stores};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<MemberId>> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (log, sm) = open_stores(dir.path(), 100).expect("stores open in an empty dir");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}
