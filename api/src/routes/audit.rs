//! `GET /v1/audit/verify`: recompute the hash chain over this member's whole log.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sendan_core::chain::ChainBreak;
use sendan_core::wire::VerifyView;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::Auth;

pub async fn verify(State(app): State<Arc<App>>, auth: Auth) -> Result<Json<VerifyView>, ApiError> {
    auth.admin()?;
    let reader = app.node.reader.clone();
    let fleet = reader.fleet();
    reader.caught_up().await?;
    let report = tokio::task::spawn_blocking(move || reader.verify()).await.map_err(ApiError::internal)??;
    let mut broken = report.broken;
    // The stored chain must also end where the applied state says it does.
    if broken.is_none() && report.verified >= fleet.seq && report.verified > 0 {
        let at = app.node.reader.event(fleet.seq)?;
        if at.map(|e| e.hash) != Some(fleet.head) {
            broken = Some(ChainBreak {
                seq: fleet.seq,
                problem: "the stored event does not match the applied state's head".into(),
            });
        }
    }
    Ok(Json(VerifyView {
        ok: broken.is_none(),
        verified: report.verified,
        head: report.head,
        broken,
        member: app.node.id,
    }))
}
