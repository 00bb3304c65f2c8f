//! Netboot and the installer's endpoints: `GET /v1/boot/ipxe?mac=…` (the only unauthenticated endpoint besides
//! the probes), and, with the bootstrap token from that script, `POST /v1/bootstrap/phone-home`,
//! `GET /v1/bootstrap/plan` and `POST /v1/bootstrap/node-token`; and the operator's view of refused phone-homes.
//! Install progress is ordinary events on `POST /v1/events`, scoped to the installer's own node.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use sendan_core::event::{BootstrapTokenExchanged, MachineDiscovered, MachinePhonedHome, NodeTokenIssued};
use sendan_core::facts::HardwareFacts;
use sendan_core::fleet::FleetState;
use sendan_core::lifecycle::NodeState;
use sendan_core::machines::TokenStatus;
use sendan_core::machines::identity::identity_refusal;
use sendan_core::machines::install::{self, Exchanged, PhoneHomeView, PlanUnavailable, ServedPlan, TokenExchange};
use sendan_core::rejection::IdentityRefusal;
use sendan_core::wire::{ProposalIn, SubmitResponse};
use sendan_core::{EventId, MachineId, Payload, Rejection};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::Principal;
use crate::bootstrap::wait_applied;
use crate::error::ApiError;
use crate::extract::{Auth, BootstrapBody, P, Q};
use sendan_core::wire::{RefusedPhoneHome, RefusedView};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpxeParams {
    /// The MAC the machine netboots from (iPXE's `${mac}`).
    pub mac: String,
}

/// The iPXE script for a machine, by the MAC it netboots from. Records nothing.
pub async fn ipxe(State(app): State<Arc<App>>, Q(p): Q<IpxeParams>) -> Result<Response, ApiError> {
    let mac =
        sendan_core::machines::netboot::normalize_mac(&p.mac).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !sendan_core::machines::netboot::is_unicast_mac(&mac) {
        return Err(ApiError::bad_request(format!(
            "MAC {mac} is a broadcast, multicast or all-zero address; a NIC netboots from its own unicast address"
        )));
    }
    let script = crate::bootstrap::netboot_script(&app, &mac);
    Ok(([("content-type", "text/plain; charset=utf-8")], script).into_response())
}

fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the {what} is not valid: {e}")))
}

fn id(parts: &[&[u8]]) -> Option<EventId> {
    Some(EventId::derive(parts))
}

/// Record the installer's facts and open its installer session, as one `MachinePhonedHome` event of
/// `bootstrap:<machine>`. A phone-home whose facts claim an identity the token does not prove — a machine the log
/// knows by other NICs, the NIC or the DMI identity of another machine, a machine whose node is installed — is
/// refused with 403 before anything is proposed: counted in `/metrics`, logged with its source address, kept in
/// this member's list of recent refusals, and never an event. A token phones home once; the same phone-home sent
/// again (a lost answer) gets the same answer.
pub async fn phone_home(
    State(app): State<Arc<App>>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: Auth,
    BootstrapBody(body): BootstrapBody,
) -> Result<Json<PhoneHomeView>, ApiError> {
    let (token, mac, claimed, expires) = auth.installer()?;
    let facts = install::decode_phone_home(&body).map_err(ApiError::bad_request)?;
    let machine = facts
        .machine_key()
        .map_err(|e| ApiError::bad_request(format!("the facts cannot identify the machine: {e}")))?;
    let fleet = app.node.reader.fleet();
    if let Some(other) = claimed.filter(|m| **m != machine)
        && let Some(TokenStatus::Claimed { seq, .. }) = fleet.machines.bootstrap.token(&token).map(|t| &t.status)
    {
        let rejection = Rejection::BootstrapTokenUsed { machine: other.clone(), seq: *seq };
        return Err(ApiError::Rejected { rejection, index: 0 });
    }
    if claimed.is_none()
        && let Some(refusal) = identity_refusal(&*fleet, mac, &machine, &facts)
    {
        return Err(refuse(&app, source, mac, &machine, facts, refusal));
    }
    let principal = Principal::Bootstrap { token, mac: mac.to_owned(), machine: Some(machine.clone()), expires };
    let events = vec![ProposalIn {
        id: id(&[b"phone-home", &token.0]),
        comment: Some(format!("phoned home from the NIC with MAC {mac}")),
        cause: None,
        payload: MachinePhonedHome {
            machine: machine.clone(),
            facts: facts.clone(),
            mac: mac.to_owned(),
            token,
            expires,
        }
        .into(),
    }];
    let receipt = match crate::write::submit(&app, &principal, events).await {
        Ok(r) => r,
        Err(ApiError::Rejected { rejection: Rejection::IdentityRefused { refusal }, .. }) => {
            return Err(refuse(&app, source, mac, &machine, facts, refusal));
        }
        Err(ApiError::Rejected { rejection: Rejection::IdReused { seq, .. }, .. }) => {
            return Err(ApiError::Rejected {
                rejection: Rejection::BootstrapTokenUsed { machine: machine.clone(), seq },
                index: 0,
            });
        }
        Err(e) => return Err(e),
    };
    let seq = receipt.events[0].seq;
    wait_applied(&app, seq).await?;
    let fleet = app.node.reader.fleet();
    let node = fleet.machine(&machine).and_then(|m| m.node.clone());
    let state = node.as_ref().and_then(|n| fleet.node(n)).map(|n| n.state).unwrap_or(NodeState::Discovered);
    Ok(Json(PhoneHomeView { machine, seq, node, state }))
}

/// Count, log and keep a refused phone-home; the 403 it is answered with.
fn refuse(
    app: &App,
    source: SocketAddr,
    mac: &str,
    machine: &MachineId,
    facts: HardwareFacts,
    refusal: IdentityRefusal,
) -> ApiError {
    app.metrics.phone_home_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let message = refusal.to_string();
    tracing::warn!(%source, %mac, %machine, reason = %message, "refused a phone-home");
    let entry = RefusedPhoneHome {
        id: 0,
        time: crate::write::now(),
        source: source.to_string(),
        mac: mac.to_owned(),
        machine: Some(machine.clone()),
        refusal: refusal.clone(),
        message,
        facts,
    };
    app.refusals.lock().expect("refusals lock").push(entry);
    ApiError::Rejected { rejection: Rejection::IdentityRefused { refusal }, index: 0 }
}

/// `GET /v1/machines/refused`: this member's recent phone-home refusals, oldest first (admin).
pub async fn refused(State(app): State<Arc<App>>, auth: Auth) -> Result<Json<RefusedView>, ApiError> {
    auth.admin()?;
    let refused = app.refusals.lock().expect("refusals lock").list();
    Ok(Json(RefusedView { member: app.node.id, refused }))
}

/// `POST /v1/machines/refused/{id}/accept`: an operator vouches for a refused phone-home (a replaced NIC, say):
/// its facts are recorded as the machine's, as `MachineDiscovered` by the admin, so the machine's next netboot
/// phones home as that machine.
pub async fn accept_refused(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(refusal): P<u64>,
) -> Result<Json<SubmitResponse>, ApiError> {
    auth.admin()?;
    let entry = app.refusals.lock().expect("refusals lock").get(refusal).cloned().ok_or_else(|| {
        ApiError::NotFound(format!(
            "member {} holds no refused phone-home {refusal} (each member keeps its own {} most recent; list them \
             with `sendan machines --refused` against the member that refused it)",
            app.node.id,
            crate::guard::Refusals::MAX
        ))
    })?;
    let machine = entry.machine.clone().ok_or_else(|| ApiError::bad_request("the refused facts name no machine"))?;
    let events = vec![ProposalIn {
        id: id(&[b"accept-refused", &app.node.id.to_be_bytes(), &refusal.to_be_bytes()]),
        comment: Some(format!(
            "accepted the phone-home member {} refused from {} (MAC {}): {}",
            app.node.id, entry.source, entry.mac, entry.message
        )),
        cause: None,
        payload: MachineDiscovered { machine, facts: entry.facts }.into(),
    }];
    crate::write::submit(&app, &Principal::Admin, events).await.map(Json)
}

fn not_ready(code: &'static str, message: String) -> ApiError {
    ApiError::NotReady { code, message }
}

fn phoned_home(machine: Option<&MachineId>) -> Result<&MachineId, ApiError> {
    machine.ok_or_else(|| {
        not_ready("not_phoned_home", "phone home first: POST /v1/bootstrap/phone-home with the machine's facts".into())
    })
}

/// The plan of the node `machine` is bound to, for its installer. Codes: `not_enrolled` and `plan_not_ready`
/// (wait: enrollment or an operator has yet to act), `plan_refused`, `no_plan` and `not_installing` (do not).
pub fn installer_plan(fleet: &FleetState, machine: &MachineId) -> Result<ServedPlan, ApiError> {
    let m = fleet.machine(machine).ok_or_else(|| ApiError::NotFound(format!("machine {machine} is unknown")))?;
    let Some(node) = &m.node else {
        let why = fleet
            .machines
            .bootstrap
            .enrollment
            .get(machine)
            .filter(|p| p.seen == m.last_seen)
            .map(|p| sendan_core::machines::enrollment::problem_sentence(&p.problem))
            .unwrap_or_else(|| {
                format!(
                    "enrollment has not bound it (if no rule matches it, an operator can: \
                     `sendan node accept {machine} --as NODE`)"
                )
            });
        return Err(not_ready("not_enrolled", format!("machine {machine} is not bound to a node: {why}")));
    };
    let n =
        fleet.node(node).ok_or_else(|| ApiError::internal(format!("node {node} of machine {machine} is missing")))?;
    match n.state {
        NodeState::InstallPending | NodeState::Installing => install::plan_for(fleet, node).map_err(|e| match e {
            PlanUnavailable::DoesNotFit { .. } => not_ready("plan_refused", e.to_string()),
            other => not_ready("no_plan", format!("node {node} has no install plan: {other}")),
        }),
        NodeState::Commissioned | NodeState::Reprovisioning => {
            match fleet.machines.bootstrap.refusals.get(node).filter(|r| r.since == n.since) {
                Some(r) => Err(not_ready(
                    "plan_refused",
                    format!(
                        "node {node}'s install plan was refused at seq {}: disk layout '{}' does not fit: {}",
                        r.seq,
                        r.layout,
                        r.reasons.join("; ")
                    ),
                )),
                None => Err(not_ready(
                    "plan_not_ready",
                    format!("node {node} is `{}`; its install has not been requested yet", n.state),
                )),
            }
        }
        other => Err(not_ready("not_installing", format!("node {node} is `{other}`; there is nothing to install"))),
    }
}

pub async fn plan(State(app): State<Arc<App>>, auth: Auth) -> Result<Json<ServedPlan>, ApiError> {
    let (_, _, machine, _) = auth.installer()?;
    installer_plan(&app.node.reader.fleet(), phoned_home(machine)?).map(Json)
}

/// Spend the bootstrap token: record the SSH host key generated on the node and the hash of the node token the
/// installer generated (`NodeTokenIssued`), in one batch as `system:bootstrap` — the server, not the
/// installer, writes the token hash it was given into the log.
pub async fn node_token(
    State(app): State<Arc<App>>,
    auth: Auth,
    BootstrapBody(body): BootstrapBody,
) -> Result<Json<Exchanged>, ApiError> {
    let (token, _, machine, _) = auth.installer()?;
    let machine = phoned_home(machine)?;
    let TokenExchange { ssh_host_key, token_hash } = json(&body, "token exchange")?;
    let fleet = app.node.reader.fleet();
    let node = fleet.machine(machine).and_then(|m| m.node.clone()).ok_or_else(|| {
        not_ready("not_enrolled", format!("machine {machine} is not bound to a node; there is nothing to exchange for"))
    })?;
    // The phone-home that opened this session: a token phones home once, and the machine's latest phone-home is
    // the one with the session's token.
    let cause = fleet.machine(machine).map(|m| m.last_seen);
    let events = vec![
        ProposalIn {
            id: id(&[b"exchange/spent", &token.0]),
            comment: None,
            cause,
            payload: BootstrapTokenExchanged { token, node: node.clone(), ssh_host_key }.into(),
        },
        ProposalIn {
            id: id(&[b"exchange/issued", &token.0]),
            comment: Some("generated by the installer; exchanged for its bootstrap token".into()),
            cause,
            payload: NodeTokenIssued { node: node.clone(), token: token_hash }.into(),
        },
    ];
    let receipt = crate::write::submit(&app, &Principal::System("bootstrap"), events).await?;
    let seq = receipt.events[1].seq;
    wait_applied(&app, seq).await?;
    Ok(Json(Exchanged { node, seq }))
}

/// An installer's token may submit its own install events on `POST /v1/events`, but never phone home there:
/// the phone-home endpoint alone claims a token, with the hash of the token the request authenticated with.
pub fn only_install_reports(principal: &Principal, items: &[ProposalIn]) -> Result<(), ApiError> {
    if !matches!(principal, Principal::Bootstrap { .. }) {
        return Ok(());
    }
    match items.iter().position(|p| {
        matches!(
            p.payload,
            Payload::MachineDiscovered(_) | Payload::BootstrapTokenClaimed(_) | Payload::MachinePhonedHome(_)
        )
    }) {
        Some(i) => Err(ApiError::Forbidden(format!(
            "event {i}: an installer phones home with POST /v1/bootstrap/phone-home, which records its facts and \
             claims its token; it may not submit `{}` itself",
            items[i].payload.kind()
        ))),
        None => Ok(()),
    }
}
