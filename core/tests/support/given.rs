//! The one given/when/then harness of the core's tests (cqrs-es style): `given(history)` folds a legal history
//! through `log::append`; `when(payload)` proposes one event and returns a [`When`] that says `then_ok` (the
//! accepted event's seq; the state moved on) or `then_rejects(code, words)` (nothing changed). Each proposal is
//! submitted as its natural actor — the node for the kinds a node reports, the admin otherwise — unless `as_`
//! says who; each gets a fresh id and the harness's clock (`at` sets it; it advances a millisecond a proposal).

#![allow(dead_code)]

use sendan_core::event::*;
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Actor, EventId, MachineId, NodeId, Timestamp};
use sendan_core::{Rejection, log};

pub fn n(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

pub fn m(s: &str) -> MachineId {
    MachineId::new(s).unwrap()
}

pub struct Given {
    pub state: FleetState,
    next: u128,
    time: i64,
    actor: Option<Actor>,
    cause: Option<u64>,
}

/// A fleet after `history`, each event accepted as its natural actor.
pub fn given(history: impl IntoIterator<Item = Payload>) -> Given {
    let mut g = Given { state: FleetState::default(), next: 0, time: 1_000_000, actor: None, cause: None };
    for p in history {
        g.ok(p);
    }
    g
}

/// Who submits `p` by default: the node itself for the kinds a node reports, the admin otherwise.
pub fn natural_actor(p: &Payload) -> Actor {
    match (p.node(), p.kind().emitters().contains(Emitters::NODE)) {
        (Some(node), true) => Actor::Node(node.clone()),
        _ => Actor::Admin,
    }
}

impl Given {
    /// Proposals from now on carry this time (the leader's clock), until it is set again.
    pub fn at(&mut self, millis: i64) -> &mut Self {
        self.time = millis;
        self
    }

    /// The next proposal is submitted as `actor`.
    pub fn as_(&mut self, actor: Actor) -> &mut Self {
        self.actor = Some(actor);
        self
    }

    /// The next proposal names `seq` as its cause.
    pub fn caused_by(&mut self, seq: u64) -> &mut Self {
        self.cause = Some(seq);
        self
    }

    pub fn proposal(&mut self, payload: impl Into<Payload>) -> Proposal {
        let payload = payload.into();
        self.next += 1;
        self.time += 1;
        Proposal {
            id: EventId::from_u128(self.next),
            time: Timestamp(self.time),
            actor: self.actor.take().unwrap_or_else(|| natural_actor(&payload)),
            comment: None,
            cause: self.cause.take(),
            payload,
        }
    }

    /// Propose `payload`; the outcome, with the state before and after.
    pub fn when(&mut self, payload: impl Into<Payload>) -> When {
        let before = self.state.clone();
        let p = self.proposal(payload);
        let result = log::append(&mut self.state, &[p]).map(|e| e[0].seq).map_err(|b| b.rejection);
        When { before, after: self.state.clone(), result }
    }

    /// `payload` must be accepted; its seq.
    pub fn ok(&mut self, payload: impl Into<Payload>) -> u64 {
        let payload = payload.into();
        let kind = payload.kind();
        match self.when(payload).result {
            Ok(seq) => seq,
            Err(r) => panic!("the given {kind} is legal: {r}"),
        }
    }

    /// `payload` must be refused with `code`, in a sentence containing `words`; nothing changes.
    pub fn refuses(&mut self, payload: impl Into<Payload>, code: &str, words: &str) {
        self.when(payload).then_rejects(code, words);
    }

    pub fn seq(&self) -> u64 {
        self.state.seq
    }
}

pub struct When {
    pub before: FleetState,
    pub after: FleetState,
    pub result: Result<u64, Rejection>,
}

impl When {
    /// The proposal was accepted: its seq.
    pub fn then_ok(self) -> u64 {
        match self.result {
            Ok(seq) => seq,
            Err(r) => panic!("expected acceptance, got: {r}"),
        }
    }

    /// The proposal was accepted and moved node `id` to `state`: the state after it.
    pub fn then_node(self, id: &str, state: sendan_core::NodeState) -> FleetState {
        assert_eq!(self.result.as_ref().err(), None, "expected acceptance");
        assert_eq!(self.after.node(&n(id)).map(|r| r.state), Some(state));
        self.after
    }

    /// The proposal was refused with `code`, in a sentence containing `words`, and nothing changed.
    pub fn then_rejects(self, code: &str, words: &str) {
        let err = self.result.expect_err("expected a rejection");
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(words), "{err:?} should say {words:?}; it says: {err}");
        assert_eq!(self.after, self.before, "a rejection changes nothing");
    }
}
