//! Netboot and the installer's endpoints: `GET /v1/boot/ipxe?mac=…` (the only unauthenticated endpoint besides
//! the probes), and, with the bootstrap token from that script, `POST /v1/bootstrap/phone-home`,
//! `GET /v1/bootstrap/plan` and `POST /v1/bootstrap/node-token`. Install progress is ordinary events on
//! `POST /v1/events`, scoped to the installer's own node.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use sendan_core::event::{BootstrapTokenClaimed, BootstrapTokenExchanged, MachineDiscovered, NodeTokenIssued};
use sendan_core::fleet::FleetState;
use sendan_core::fleet::bootstrap::TokenStatus;
use sendan_core::install::{self, Exchanged, PhoneHome, PhoneHomeView, PlanUnavailable, ServedPlan, TokenExchange};
use sendan_core::lifecycle::NodeState;
use sendan_core::wire::ProposalIn;
use sendan_core::{EventId, MachineId, Payload, Rejection};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::Principal;
use crate::bootstrap::wait_applied;
use crate::error::ApiError;
use crate::extract::{Auth, Body, Q};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpxeParams {
    /// The MAC the machine netboots from (iPXE's `${mac}`).
    pub mac: String,
}

/// The iPXE script for a machine, by the MAC it netboots from.
pub async fn ipxe(State(app): State<Arc<App>>, Q(p): Q<IpxeParams>) -> Result<Response, ApiError> {
    let mac = sendan_core::netboot::normalize_mac(&p.mac).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let script = crate::bootstrap::netboot_script(&app, &mac).await?;
    Ok(([("content-type", "text/plain; charset=utf-8")], script).into_response())
}

fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the {what} is not valid: {e}")))
}

fn id(parts: &[&[u8]]) -> Option<EventId> {
    Some(EventId::derive(parts))
}

/// Record the installer's facts and claim its bootstrap token, in one atomic batch as `bootstrap:<machine>`.
/// A token that phoned home before is refused (403): it works once.
pub async fn phone_home(
    State(app): State<Arc<App>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<PhoneHomeView>, ApiError> {
    let (token, mac, _) = auth.installer()?;
    let fleet = app.node.reader.fleet();
    if let Some(TokenStatus::Claimed { machine, seq }) = fleet.bootstrap.token(&token).map(|t| &t.status) {
        let rejection = Rejection::BootstrapTokenUsed { machine: machine.clone(), seq: *seq };
        return Err(ApiError::Rejected { rejection, index: 0 });
    }
    let PhoneHome { facts } = json(&body, "phone-home")?;
    let machine = facts
        .machine_key()
        .map_err(|e| ApiError::bad_request(format!("the facts cannot identify the machine: {e}")))?;
    let principal = Principal::Bootstrap { token, mac: mac.to_owned(), machine: Some(machine.clone()) };
    let events = vec![
        ProposalIn {
            id: id(&[b"phone-home/facts", &token.0]),
            comment: Some(format!("phoned home from the NIC with MAC {mac}")),
            payload: MachineDiscovered { machine: machine.clone(), facts }.into(),
        },
        ProposalIn {
            id: id(&[b"phone-home/claim", &token.0]),
            comment: None,
            payload: BootstrapTokenClaimed { token, machine: machine.clone() }.into(),
        },
    ];
    let receipt = crate::write::submit(&app, &principal, events).await?;
    let seq = receipt.events[1].seq;
    wait_applied(&app, seq).await?;
    let fleet = app.node.reader.fleet();
    let node = fleet.machine(&machine).and_then(|m| m.node.clone());
    let state = node.as_ref().and_then(|n| fleet.node(n)).map(|n| n.state).unwrap_or(NodeState::Discovered);
    Ok(Json(PhoneHomeView { machine, seq, node, state }))
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
            .bootstrap
            .enrollment
            .get(machine)
            .filter(|p| p.seen == m.last_seen)
            .map(|p| sendan_core::enrollment::problem_sentence(&p.problem))
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
            match fleet.bootstrap.refusals.get(node).filter(|r| r.since == n.since) {
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
    let (_, _, machine) = auth.installer()?;
    installer_plan(&app.node.reader.fleet(), phoned_home(machine)?).map(Json)
}

/// Spend the bootstrap token: record the SSH host key generated on the node and the hash of the node token the
/// installer generated (`NodeTokenIssued`), in one batch as `system:bootstrap` — the server, not the
/// installer, writes the token hash it was given into the log.
pub async fn node_token(
    State(app): State<Arc<App>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Exchanged>, ApiError> {
    let (token, _, machine) = auth.installer()?;
    let machine = phoned_home(machine)?;
    let TokenExchange { ssh_host_key, token_hash } = json(&body, "token exchange")?;
    let fleet = app.node.reader.fleet();
    let node = fleet.machine(machine).and_then(|m| m.node.clone()).ok_or_else(|| {
        not_ready("not_enrolled", format!("machine {machine} is not bound to a node; there is nothing to exchange for"))
    })?;
    let events = vec![
        ProposalIn {
            id: id(&[b"exchange/spent", &token.0]),
            comment: None,
            payload: BootstrapTokenExchanged { token, node: node.clone(), ssh_host_key }.into(),
        },
        ProposalIn {
            id: id(&[b"exchange/issued", &token.0]),
            comment: Some("generated by the installer; exchanged for its bootstrap token".into()),
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
    match items
        .iter()
        .position(|p| matches!(p.payload, Payload::MachineDiscovered(_) | Payload::BootstrapTokenClaimed(_)))
    {
        Some(i) => Err(ApiError::Forbidden(format!(
            "event {i}: an installer phones home with POST /v1/bootstrap/phone-home, which records its facts and \
             claims its token; it may not submit `{}` itself",
            items[i].payload.kind()
        ))),
        None => Ok(()),
    }
}
