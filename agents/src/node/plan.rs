//! The node agent's brain, pure: from what the log assigns the node (each instance with the status the log last
//! recorded) and what runs here (each local instance, alive or not, with its health and restarts), the steps
//! that bring them together — start, restart after the policy's delay, stop, kill an unhealthy one — and the
//! reports that bring the log up to date with what runs. Reports follow *transitions*: one is due only when what
//! the agent sees differs from the status the log holds, so a restarted agent reports nothing it reported before.

use std::collections::{BTreeMap, BTreeSet};

use sendan_core::event::{InstanceExited, InstanceHealthy, InstanceStarted, InstanceStopped, InstanceUnhealthy};
use sendan_core::services::InstanceStatus;
use sendan_core::wire::AssignedInstance;
use sendan_core::{EventId, InstanceId, NodeId, Payload};
use serde::{Deserialize, Serialize};

/// What the agent knows of one instance it runs (or ran): kept in its state directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Local {
    pub id: InstanceId,
    pub service: String,
    /// The ports it was started with.
    pub ports: BTreeMap<String, u16>,
    /// The process group leader (or the unit's main process) and its start time in clock ticks since boot, so a
    /// restarted agent recognises its own process and not a later one with the same pid.
    pub pid: Option<u32>,
    pub start_ticks: Option<u64>,
    /// The transient systemd unit, when it runs as one.
    pub unit: Option<String>,
    /// When it was (re)started, ms since the epoch, and when it was restarted before (within any interval).
    pub started_ms: i64,
    pub restarts: Vec<i64>,
    /// How it last ended, once it did.
    pub exit: Option<Exit>,
    pub health: Health,
}

impl Local {
    pub fn new(id: InstanceId, service: &str) -> Local {
        Local {
            id,
            service: service.to_owned(),
            ports: BTreeMap::new(),
            pid: None,
            start_ticks: None,
            unit: None,
            started_ms: 0,
            restarts: Vec::new(),
            exit: None,
            health: Health::Unknown,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at_ms: i64,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    #[default]
    Unknown,
    Healthy,
    Unhealthy(String),
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Fetch its package, allocate its ports and start it.
    Start(InstanceId),
    /// Start it again (its restart policy allows it, its delay has passed).
    Restart(InstanceId),
    /// Stop it (SIGTERM, then SIGKILL past the grace); then report `InstanceStopped` when the log wants that.
    Stop { id: InstanceId, report: bool },
    /// End a process that failed its health check; it is then handled as an exit.
    Kill { id: InstanceId, reason: String },
    /// Tell the log, with an id derived from the instance, the report's kind and the log status it follows (a
    /// retry is the same event).
    Report { id: EventId, payload: Payload },
    /// Drop the record of an instance that neither the log nor the machine holds any more.
    Forget(InstanceId),
}

fn report(d: &AssignedInstance, payload: Payload) -> Step {
    let kind = payload.kind();
    let id =
        EventId::derive(&[b"node-agent", d.id.as_str().as_bytes(), kind.name().as_bytes(), &d.since.to_be_bytes()]);
    Step::Report { id, payload }
}

/// How many of `restarts` fall within the last `interval_ms` before `now_ms`.
pub fn recent(restarts: &[i64], interval_ms: i64, now_ms: i64) -> u32 {
    restarts.iter().filter(|t| **t > now_ms - interval_ms).count() as u32
}

/// The steps that bring what runs on `node` (`locals`, of which `alive` run now) and the log's view of it
/// (`desired`) together, at `now_ms`. `address` is where instances are published.
pub fn plan(
    node: &NodeId,
    address: &str,
    desired: &[AssignedInstance],
    locals: &BTreeMap<InstanceId, Local>,
    alive: &BTreeSet<InstanceId>,
    now_ms: i64,
) -> Vec<Step> {
    use InstanceStatus as S;
    let mut out = Vec::new();
    for d in desired {
        let (id, live) = (d.id.clone(), alive.contains(&d.id));
        if !d.assigned {
            // Asked to stop, or replaced while this node was away.
            if live {
                out.push(Step::Stop { id, report: true });
            } else {
                out.push(report(d, InstanceStopped { instance: id, node: node.clone() }.into()));
            }
            continue;
        }
        if d.status == S::Failed {
            // Failed for good: it waits for the scheduler's replacement and runs nowhere meanwhile.
            if live {
                out.push(Step::Stop { id, report: false });
            }
            continue;
        }
        let Some(l) = locals.get(&d.id) else {
            out.push(Step::Start(id));
            continue;
        };
        if live {
            if matches!(d.status, S::Pending | S::Restarting) {
                let started = InstanceStarted {
                    instance: id,
                    node: node.clone(),
                    address: address.to_owned(),
                    ports: l.ports.clone(),
                    restarts: l.restarts.len() as u32,
                };
                out.push(report(d, started.into()));
                continue;
            }
            match &l.health {
                Health::Healthy if matches!(d.status, S::Running | S::Unhealthy) => {
                    out.push(report(d, InstanceHealthy { instance: id, node: node.clone() }.into()));
                }
                Health::Unhealthy(why) if matches!(d.status, S::Running | S::Healthy) => {
                    let p = InstanceUnhealthy { instance: id, node: node.clone(), reason: why.clone() };
                    out.push(report(d, p.into()));
                }
                Health::Unhealthy(why) => {
                    // The log knows it is unhealthy: restart it by its policy.
                    out.push(Step::Kill { id, reason: format!("it failed its health check: {why}") });
                }
                _ => {}
            }
            continue;
        }
        // It does not run: restart it by its policy, or report that it failed for good.
        let policy = &d.task.restart;
        let exit = l.exit.clone().unwrap_or(Exit {
            code: None,
            signal: None,
            at_ms: now_ms,
            reason: "it was not running when the agent looked".into(),
        });
        let may_restart = recent(&l.restarts, i64::from(policy.interval_seconds) * 1000, now_ms) < policy.attempts;
        let exited = |restarting: bool| InstanceExited {
            instance: d.id.clone(),
            node: node.clone(),
            exit_code: exit.code,
            signal: exit.signal,
            restarting,
            reason: if restarting {
                exit.reason.clone()
            } else {
                format!(
                    "{}; its {} restart(s) within {} s are used up",
                    exit.reason, policy.attempts, policy.interval_seconds
                )
            },
        };
        if !may_restart {
            out.push(report(d, exited(false).into()));
        } else if d.status != S::Restarting {
            out.push(report(d, exited(true).into()));
        } else if now_ms >= exit.at_ms + i64::from(policy.delay_seconds) * 1000 {
            out.push(Step::Restart(id));
        }
    }
    let held: BTreeSet<&InstanceId> = desired.iter().map(|d| &d.id).collect();
    for id in locals.keys().filter(|id| !held.contains(id)) {
        // The log no longer holds it: stop what runs, forget the rest.
        if alive.contains(id) {
            out.push(Step::Stop { id: id.clone(), report: false });
        } else {
            out.push(Step::Forget(id.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendan_core::Hash;
    use sendan_core::services::Task;
    use sendan_core::spec::RestartPolicy;

    fn n() -> NodeId {
        NodeId::new("n1").unwrap()
    }

    fn id(s: &str) -> InstanceId {
        InstanceId::new(s).unwrap()
    }

    fn desired(i: &str, status: InstanceStatus, assigned: bool) -> AssignedInstance {
        AssignedInstance {
            id: id(i),
            service: "web".into(),
            version: Hash::of(b"v"),
            task: Task {
                restart: RestartPolicy { attempts: 2, interval_seconds: 60, delay_seconds: 5 },
                ..Task::default()
            },
            assigned,
            status,
            since: 7,
            ports: BTreeMap::new(),
            restarts: 0,
        }
    }

    fn local(i: &str) -> Local {
        Local { pid: Some(100), started_ms: 1_000, ..Local::new(id(i), "web") }
    }

    fn kinds(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Report { payload, .. } => payload.kind().name().to_owned(),
                other => format!("{other:?}").split([' ', '(', '{']).next().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_new_assignment_is_started_and_then_reported_once() {
        let d = [desired("web.1", InstanceStatus::Pending, true)];
        let none = BTreeMap::new();
        assert_eq!(plan(&n(), "10.0.0.1", &d, &none, &BTreeSet::new(), 0), [Step::Start(id("web.1"))]);
        let locals = BTreeMap::from([(id("web.1"), local("web.1"))]);
        let alive = BTreeSet::from([id("web.1")]);
        assert_eq!(kinds(&plan(&n(), "10.0.0.1", &d, &locals, &alive, 0)), ["InstanceStarted"]);
        // Once the log says running, nothing more until health is known.
        let d = [desired("web.1", InstanceStatus::Running, true)];
        assert!(plan(&n(), "10.0.0.1", &d, &locals, &alive, 0).is_empty());
    }

    #[test]
    fn reports_follow_transitions_only() {
        let mut l = local("web.1");
        l.health = Health::Healthy;
        let locals = BTreeMap::from([(id("web.1"), l.clone())]);
        let alive = BTreeSet::from([id("web.1")]);
        let running = [desired("web.1", InstanceStatus::Running, true)];
        assert_eq!(kinds(&plan(&n(), "a", &running, &locals, &alive, 0)), ["InstanceHealthy"]);
        let healthy = [desired("web.1", InstanceStatus::Healthy, true)];
        assert!(plan(&n(), "a", &healthy, &locals, &alive, 0).is_empty(), "no report of what the log knows");
        l.health = Health::Unhealthy("503".into());
        let locals = BTreeMap::from([(id("web.1"), l)]);
        assert_eq!(kinds(&plan(&n(), "a", &healthy, &locals, &alive, 0)), ["InstanceUnhealthy"]);
        let unhealthy = [desired("web.1", InstanceStatus::Unhealthy, true)];
        assert_eq!(kinds(&plan(&n(), "a", &unhealthy, &locals, &alive, 0)), ["Kill"]);
    }

    #[test]
    fn an_exit_is_restarted_after_its_delay_until_the_policy_is_used_up() {
        let mut l = local("web.1");
        l.exit = Some(Exit { code: Some(1), signal: None, at_ms: 10_000, reason: "exited with status 1".into() });
        let locals = BTreeMap::from([(id("web.1"), l.clone())]);
        let dead = BTreeSet::new();
        let healthy = [desired("web.1", InstanceStatus::Healthy, true)];
        let steps = plan(&n(), "a", &healthy, &locals, &dead, 10_000);
        assert!(
            matches!(&steps[..], [Step::Report { payload: Payload::InstanceExited(e), .. }] if e.restarting && e.exit_code == Some(1))
        );
        let restarting = [desired("web.1", InstanceStatus::Restarting, true)];
        assert!(plan(&n(), "a", &restarting, &locals, &dead, 14_000).is_empty(), "the delay is 5 s");
        assert_eq!(plan(&n(), "a", &restarting, &locals, &dead, 15_000), [Step::Restart(id("web.1"))]);
        // Two restarts within the minute: the third exit is final.
        l.restarts = vec![5_000, 9_000];
        let locals = BTreeMap::from([(id("web.1"), l)]);
        let steps = plan(&n(), "a", &restarting, &locals, &dead, 15_000);
        assert!(
            matches!(&steps[..], [Step::Report { payload: Payload::InstanceExited(e), .. }] if !e.restarting && e.reason.contains("used up"))
        );
    }

    #[test]
    fn what_the_log_no_longer_runs_here_is_stopped_and_reported_or_forgotten() {
        let locals = BTreeMap::from([(id("web.1"), local("web.1")), (id("web.2"), local("web.2"))]);
        let alive = BTreeSet::from([id("web.1"), id("web.2")]);
        let moved = [desired("web.1", InstanceStatus::Healthy, false)];
        let steps = plan(&n(), "a", &moved, &locals, &alive, 0);
        assert_eq!(
            steps,
            [Step::Stop { id: id("web.1"), report: true }, Step::Stop { id: id("web.2"), report: false }]
        );
        let steps = plan(&n(), "a", &moved, &locals, &BTreeSet::new(), 0);
        assert_eq!(kinds(&steps), ["InstanceStopped", "Forget"]);
    }

    #[test]
    fn report_ids_are_stable_for_the_same_log_status() {
        let d = [desired("web.1", InstanceStatus::Pending, true)];
        let locals = BTreeMap::from([(id("web.1"), local("web.1"))]);
        let alive = BTreeSet::from([id("web.1")]);
        let a = plan(&n(), "a", &d, &locals, &alive, 0);
        let b = plan(&n(), "a", &d, &locals, &alive, 99);
        assert_eq!(a, b, "a retry is the same event");
    }
}
