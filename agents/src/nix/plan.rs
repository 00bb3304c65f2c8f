//! The agent's brain: `plan(desired, observed) -> Vec<Action>`, pure. Given what the control plane wants for the
//! node and what the node looks like (its running system, the local state, the clock), it returns the remaining
//! steps in order; the agent executes the first, records it, and plans again, so a restart anywhere resumes
//! from the recorded step.

use sendan_core::event::{SwitchAction, SystemKind, system_kind};
use sendan_core::wire::NodeSystem;

use super::state::{Activation, Local, Step};

/// What the control plane wants, from `GET /v1/nodes/{id}/system`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub pinned: bool,
    pub decision: Option<Decision>,
    /// The decision whose attempt the log already shows finished (so a lost local state does not redo it).
    pub finished: Option<u64>,
    /// The running and booted systems the log knows.
    pub current: Option<String>,
    pub booted: Option<String>,
    /// A confirmed decision to reboot into now, and its system: the node is drained (nothing runs on it).
    pub reboot: Option<(u64, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub seq: u64,
    pub system: String,
    pub action: SwitchAction,
}

impl Desired {
    pub fn from_view(s: &NodeSystem) -> Desired {
        Desired {
            pinned: s.pinned.is_some(),
            decision: s.desired.as_ref().map(|d| Decision { seq: d.seq, system: d.system.clone(), action: d.action }),
            finished: s.attempt.as_ref().filter(|a| a.phase.is_finished()).map(|a| a.decision),
            current: s.current.clone(),
            booted: s.booted.clone(),
            reboot: None,
        }
    }

    /// What the agent acts on, from the whole `GET /v1/nodes/{id}/system` answer.
    pub fn from_node_view(v: &sendan_core::wire::NodeSystemView) -> Desired {
        let reboot = v.reboot.as_ref().filter(|r| r.drained).map(|r| (r.decision, r.system.clone()));
        Desired { reboot, ..Desired::from_view(&v.system) }
    }
}

/// What the node looks like now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed<'a> {
    pub current: Option<String>,
    pub booted: Option<String>,
    pub local: &'a Local,
    pub now_ms: i64,
    /// A `switch-to-configuration` started before a restart is still running.
    pub leftover_running: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Tell the control plane which systems run and booted (`SystemReported`).
    Report,
    /// The log shows this decision finished already: remember it as handled.
    Skip {
        decision: u64,
    },
    /// The node already runs the decided system: confirm it without activating anything.
    Acknowledge {
        decision: u64,
        path: String,
    },
    /// Fetch the closure (store path) or build it (flake), checking signatures.
    Prefetch {
        decision: u64,
        system: String,
    },
    /// Ask the control plane to begin (`SystemActivating`), remembering the running system.
    Request {
        decision: u64,
        path: String,
        action: SwitchAction,
        previous: Option<String>,
    },
    /// Wait until the control plane accepted or refused the request.
    AwaitAcceptance,
    SetProfile,
    /// Wait for a `switch-to-configuration` started before a restart to finish.
    AwaitLeftover,
    Switch,
    HealthGate,
    /// Get the confirmation accepted before its deadline.
    Confirm,
    /// Re-activate the remembered system.
    RollBack {
        reason: String,
    },
    /// Forget the activation; its decision is handled.
    Finish,
    /// Reboot the drained node into the confirmed decision's system (the boot default).
    Reboot {
        decision: u64,
        path: String,
    },
}

/// The steps after the switch has been started, for an activation that will switch.
fn from_switch() -> Vec<Action> {
    vec![Action::Switch, Action::HealthGate, Action::Confirm, Action::Finish]
}

fn activation_steps(action: SwitchAction) -> Vec<Action> {
    let mut v = Vec::new();
    if action.sets_profile() {
        v.push(Action::SetProfile);
    }
    v.extend(from_switch());
    v
}

/// The remaining steps, in order; empty when there is nothing to do.
pub fn plan(desired: &Desired, observed: &Observed) -> Vec<Action> {
    if let Some(a) = &observed.local.activation {
        return continue_activation(a, observed);
    }
    let mut out = Vec::new();
    let now = (observed.current.clone(), observed.booted.clone());
    let known = (desired.current.clone(), desired.booted.clone());
    if now != known && observed.local.reported.as_ref() != Some(&now) {
        out.push(Action::Report);
    }
    if desired.pinned {
        return out;
    }
    let newer = desired.decision.as_ref().is_some_and(|d| d.seq > observed.local.handled);
    if let Some((decision, path)) = &desired.reboot
        && !newer
        && observed.booted.as_ref() != Some(path)
        && observed.local.rebooted != Some(*decision)
    {
        out.push(Action::Reboot { decision: *decision, path: path.clone() });
        return out;
    }
    let Some(d) = &desired.decision else { return out };
    if d.seq <= observed.local.handled {
        return out;
    }
    if desired.finished == Some(d.seq) {
        out.push(Action::Skip { decision: d.seq });
        return out;
    }
    let fetched = observed.local.prefetched.as_ref().filter(|p| p.decision == d.seq).map(|p| p.path.clone());
    let path =
        fetched.clone().or_else(|| (system_kind(&d.system) == Ok(SystemKind::StorePath)).then(|| d.system.clone()));
    if let Some(path) = &path
        && observed.current.as_ref() == Some(path)
    {
        out.push(Action::Acknowledge { decision: d.seq, path: path.clone() });
        return out;
    }
    match fetched {
        None => {
            out.push(Action::Prefetch { decision: d.seq, system: d.system.clone() });
            // The path is known once fetched; what follows is the same as below.
            out.push(Action::Request {
                decision: d.seq,
                path: path.unwrap_or_default(),
                action: d.action,
                previous: observed.current.clone(),
            });
        }
        Some(path) => {
            out.push(Action::Request { decision: d.seq, path, action: d.action, previous: observed.current.clone() })
        }
    }
    out.push(Action::AwaitAcceptance);
    out.extend(activation_steps(d.action));
    out
}

fn continue_activation(a: &Activation, o: &Observed) -> Vec<Action> {
    let rollback = |reason: String| vec![Action::RollBack { reason }, Action::Finish];
    match &a.step {
        Step::Requested { .. } => {
            let mut v = vec![Action::AwaitAcceptance];
            v.extend(activation_steps(a.action));
            v
        }
        Step::Begun => activation_steps(a.action),
        Step::ProfileSet => from_switch(),
        Step::Switching { .. } if o.leftover_running => {
            let mut v = vec![Action::AwaitLeftover];
            v.extend(from_switch());
            v
        }
        // The agent stopped during the switch: run it again (activating a system twice is harmless) to learn how
        // it went.
        Step::Switching { .. } => from_switch(),
        Step::Switched { exit_code, .. } if !sendan_core::event::switch_succeeded(*exit_code) => {
            rollback(sendan_core::nixos::switch_failure(*exit_code))
        }
        Step::Switched { health_by_ms, .. } if o.now_ms > *health_by_ms => {
            rollback("the health gate did not pass before its deadline".into())
        }
        Step::Switched { .. } => vec![Action::HealthGate, Action::Confirm, Action::Finish],
        Step::Healthy { confirm_by_ms, .. } if o.now_ms > *confirm_by_ms => {
            rollback("the control plane did not acknowledge the confirmation before its deadline".into())
        }
        Step::Healthy { .. } => vec![Action::Confirm, Action::Finish],
        Step::Confirmed | Step::RolledBack => vec![Action::Finish],
        Step::RollingBack { reason, .. } if o.leftover_running => {
            vec![Action::AwaitLeftover, Action::RollBack { reason: reason.clone() }, Action::Finish]
        }
        Step::RollingBack { reason, .. } => rollback(reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::state::Prefetched;

    const OLD: &str = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-old";
    const NEW: &str = "/nix/store/1c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-new";

    fn wants(seq: u64, system: &str) -> Desired {
        Desired {
            decision: Some(Decision { seq, system: system.into(), action: SwitchAction::Switch }),
            current: Some(OLD.into()),
            ..Desired::default()
        }
    }

    fn observed(local: &Local) -> Observed<'_> {
        Observed { current: Some(OLD.into()), booted: None, local, now_ms: 1_000, leftover_running: false }
    }

    fn activation(step: Step) -> Local {
        Local {
            activation: Some(Activation {
                decision: 5,
                path: NEW.into(),
                action: SwitchAction::Switch,
                previous: Some(OLD.into()),
                step,
            }),
            ..Local::default()
        }
    }

    #[test]
    fn a_new_decision_is_fetched_requested_and_activated_in_order() {
        let local = Local::default();
        let p = plan(&wants(5, NEW), &observed(&local));
        assert_eq!(
            p,
            vec![
                Action::Prefetch { decision: 5, system: NEW.into() },
                Action::Request {
                    decision: 5,
                    path: NEW.into(),
                    action: SwitchAction::Switch,
                    previous: Some(OLD.into())
                },
                Action::AwaitAcceptance,
                Action::SetProfile,
                Action::Switch,
                Action::HealthGate,
                Action::Confirm,
                Action::Finish,
            ]
        );
        // `test` leaves the profile alone.
        let mut d = wants(5, NEW);
        d.decision.as_mut().unwrap().action = SwitchAction::Test;
        assert!(!plan(&d, &observed(&local)).contains(&Action::SetProfile));
    }

    #[test]
    fn nothing_happens_when_pinned_handled_finished_or_undecided() {
        let local = Local { handled: 5, ..Local::default() };
        assert_eq!(plan(&wants(5, NEW), &observed(&local)), vec![]);
        let fresh = Local::default();
        let pinned = Desired { pinned: true, ..wants(6, NEW) };
        assert_eq!(plan(&pinned, &observed(&fresh)), vec![]);
        let finished = Desired { finished: Some(6), ..wants(6, NEW) };
        assert_eq!(plan(&finished, &observed(&fresh)), vec![Action::Skip { decision: 6 }]);
        let undecided = Desired { current: Some(OLD.into()), ..Desired::default() };
        assert_eq!(plan(&undecided, &observed(&fresh)), vec![]);
    }

    #[test]
    fn a_node_already_running_the_decision_only_acknowledges_it() {
        let local = Local::default();
        assert_eq!(
            plan(&wants(7, OLD), &observed(&local)),
            vec![Action::Acknowledge { decision: 7, path: OLD.into() }]
        );
        // A flake builds to a path first; if that is what runs, it is acknowledged too.
        let flake = wants(8, "git+https://example.com/infra#nixosConfigurations.n1");
        let local = Local { prefetched: Some(Prefetched { decision: 8, path: OLD.into() }), ..Local::default() };
        assert_eq!(plan(&flake, &observed(&local)), vec![Action::Acknowledge { decision: 8, path: OLD.into() }]);
    }

    #[test]
    fn a_changed_running_system_is_reported_once() {
        let local = Local::default();
        let d = Desired { current: None, ..Desired::default() };
        assert_eq!(plan(&d, &observed(&local)), vec![Action::Report]);
        let local = Local { reported: Some((Some(OLD.into()), None)), ..Local::default() };
        assert_eq!(plan(&d, &observed(&local)), vec![]);
    }

    #[test]
    fn an_activation_resumes_from_its_recorded_step() {
        let steps = |step: Step| plan(&Desired::default(), &observed(&activation(step)));
        assert_eq!(steps(Step::Begun)[0], Action::SetProfile);
        assert_eq!(steps(Step::ProfileSet)[0], Action::Switch);
        // Killed mid-switch: run it again, after the old one if it is still running.
        let switching = Step::Switching { pid: Some(1), unit: None, started_ms: 0 };
        assert_eq!(steps(switching.clone())[0], Action::Switch);
        let local = activation(switching);
        let o = Observed { leftover_running: true, ..observed(&local) };
        assert_eq!(plan(&Desired::default(), &o)[..2], [Action::AwaitLeftover, Action::Switch]);
        assert_eq!(steps(Step::Switched { exit_code: 0, health_by_ms: 2_000 })[0], Action::HealthGate);
        assert_eq!(steps(Step::Switched { exit_code: 100, health_by_ms: 2_000 })[0], Action::HealthGate);
        assert_eq!(steps(Step::Healthy { id: "x".into(), confirm_by_ms: 2_000 })[0], Action::Confirm);
        assert_eq!(steps(Step::Confirmed), vec![Action::Finish]);
        assert_eq!(steps(Step::RolledBack), vec![Action::Finish]);
    }

    #[test]
    fn failures_timeouts_and_lost_confirmations_roll_back() {
        let rolls_back = |step: Step, why: &str| {
            let p = plan(&Desired::default(), &observed(&activation(step)));
            match &p[..] {
                [Action::RollBack { reason }, Action::Finish] => assert!(reason.contains(why), "{reason}"),
                other => panic!("expected a rollback, got {other:?}"),
            }
        };
        rolls_back(Step::Switched { exit_code: 2, health_by_ms: 2_000 }, "exited 2 (activation failed)");
        rolls_back(Step::Switched { exit_code: 4, health_by_ms: 2_000 }, "exited 4 (units failed)");
        rolls_back(Step::Switched { exit_code: -1, health_by_ms: 2_000 }, "timed out");
        rolls_back(Step::Switched { exit_code: 0, health_by_ms: 500 }, "health gate did not pass");
        rolls_back(Step::Healthy { id: "x".into(), confirm_by_ms: 500 }, "did not acknowledge the confirmation");
        let rolling_back = |reason: &str, pid| Step::RollingBack {
            reason: reason.into(),
            pid,
            unit: None,
            started_ms: pid.map(|_| 0),
        };
        rolls_back(rolling_back("health gate failed", None), "health gate failed");
        // Killed during the rollback's own switch: wait for it, then run the rollback again.
        let local = activation(rolling_back("units failed", Some(7)));
        let o = Observed { leftover_running: true, ..observed(&local) };
        let rollback = Action::RollBack { reason: "units failed".into() };
        assert_eq!(plan(&Desired::default(), &o)[..2], [Action::AwaitLeftover, rollback]);
    }

    #[test]
    fn an_activation_under_way_finishes_even_when_pinned_or_superseded() {
        let local = activation(Step::ProfileSet);
        let d = Desired { pinned: true, ..wants(9, OLD) };
        assert_eq!(plan(&d, &observed(&local))[0], Action::Switch);
    }

    #[test]
    fn a_drained_node_is_rebooted_into_its_confirmed_system_once() {
        // Decision 5 confirmed NEW, which needs a reboot; the control plane says the node is drained.
        let local = Local { handled: 5, ..Local::default() };
        let d = Desired { reboot: Some((5, NEW.into())), ..wants(5, NEW) };
        assert_eq!(plan(&d, &observed(&local)), [Action::Reboot { decision: 5, path: NEW.into() }]);
        // Once per decision: back on the old system (the boot loader kept it), the agent reports, never loops.
        let after = Local { rebooted: Some(5), ..local.clone() };
        assert!(!plan(&d, &observed(&after)).iter().any(|a| matches!(a, Action::Reboot { .. })));
        // Booted into it already: nothing to do.
        let booted = Observed { booted: Some(NEW.into()), ..observed(&local) };
        assert!(!plan(&d, &booted).iter().any(|a| matches!(a, Action::Reboot { .. })));
        // A newer decision goes first; pinned nodes are left alone.
        let newer = Desired { reboot: Some((5, NEW.into())), ..wants(9, OLD) };
        assert!(!plan(&newer, &observed(&local)).iter().any(|a| matches!(a, Action::Reboot { .. })));
        let pinned = Desired { pinned: true, ..d };
        assert!(plan(&pinned, &observed(&local)).is_empty());
    }
}
