//! Read-only views and actions: endpoint health, explain, reload, the OpenAPI document.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Query, State as AxumState};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::parse_zone;
use super::{Api, ApiError};
use crate::config::TokenScope;
use crate::health::Status;

/// `GET /health`: every probed endpoint with its state, last result and latency, since when.
pub async fn health(
    AxumState(api): AxumState<Api>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    api.tokens.check(&headers, TokenScope::Read, None)?;
    let records = api.control.probe_records();
    let snapshot = api.control.snapshot();
    let zones = &snapshot.zones;
    let mut out = Vec::new();
    for (slot, key) in zones.probes.iter().enumerate() {
        let record = records.get(key).cloned().unwrap_or_default();
        let (ok, result) = match &record.last_result {
            Some(Ok(r)) => (Some(true), Some(r.clone())),
            Some(Err(r)) => (Some(false), Some(r.clone())),
            None => (None, None),
        };
        let since = record
            .since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (decided, opinions) = super::ops::decision(&api, key, record.status);
        out.push(json!({
            "address": key.addr,
            "check": key.to_string(),
            "state": decided,
            "own": record.status,
            "opinions": opinions,
            "since": since,
            "last_ok": ok,
            "last_result": result,
            "last_latency_ms": record.last_latency.map(|l| l.as_secs_f64() * 1000.0),
            "pools": zones.probe_users[slot],
        }));
    }
    let down = out
        .iter()
        .filter(|e| e["state"] == json!(Status::Down))
        .count();
    let registrations = super::ops::registrations(&api);
    Ok(Json(
        json!({ "endpoints": out, "down": down, "registrations": registrations, "set": super::ops::set(&api) }),
    ))
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    name: String,
    #[serde(rename = "type", default = "default_type")]
    rtype: String,
    client: IpAddr,
}

fn default_type() -> String {
    "A".into()
}

/// `GET /explain?name=…&type=…&client=…`: what `meridian explain` prints, as JSON.
pub async fn explain(
    AxumState(api): AxumState<Api>,
    headers: HeaderMap,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    api.tokens.check(&headers, TokenScope::Read, None)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let name = parse_zone(&q.name).map_err(ApiError::bad_request)?;
    let rtype = q
        .rtype
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{} is not a record type", q.rtype)))?;
    let mut explanation = crate::explain::explain(&api.control.snapshot(), &name, rtype, q.client);
    explanation.mark_registered(&api.control.registrations());
    Ok(Json(
        serde_json::to_value(explanation).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// `POST /reload`: re-read the zones folder and the GeoIP database, all or nothing.
pub async fn reload(
    AxumState(api): AxumState<Api>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    api.tokens.check(&headers, TokenScope::Write, None)?;
    let state = api.control.clone();
    match tokio::task::spawn_blocking(move || state.reload()).await {
        Ok(Ok(zones)) => {
            tracing::info!(zones, "reloaded zones (API)");
            Ok(Json(json!({ "zones": zones })))
        }
        Ok(Err(e)) => Err(ApiError {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({ "error": format!("reload refused, the old zones keep serving: {e}") }),
        }),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

/// `GET /writes/{id}`: whether a change answered with `"outcome": "unknown"` was committed (in
/// a nameserver set; its marker lasts at least 50 minutes).
pub async fn write_outcome(
    AxumState(api): AxumState<Api>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    api.tokens.check(&headers, TokenScope::Read, None)?;
    let Some(cluster) = api.control.cluster().cloned() else {
        return Err(ApiError::not_found(
            "not in a nameserver set: every change's outcome is in its answer",
        ));
    };
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::invalid("id", "not a write id"));
    }
    let lookup = id.clone();
    let found = tokio::task::spawn_blocking(move || cluster.write_committed(&lookup))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    match found {
        Some(revision) => Ok(Json(
            json!({ "id": id, "committed": true, "revision": revision }),
        )),
        None if crate::control::Cluster::write_too_old(&id) => Err(ApiError {
            status: axum::http::StatusCode::GONE,
            body: json!({
                "error": format!(
                    "write {id} is older than its marker's {} seconds: whether it committed can \
                     no longer be told; read what it changed",
                    crate::control::cluster::MARKER_KEPT.as_secs()
                ),
                "id": id,
            }),
        }),
        None => Err(ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            body: json!({
                "error": format!("write {id} was not committed"),
                "id": id,
                "committed": false,
            }),
        }),
    }
}
