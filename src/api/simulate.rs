//! `/simulate`: how a changed zone, pool or GeoIP database would move the clients (see
//! [`crate::simulate`]), without changing anything. `GET ?geoip=PATH` tries another database;
//! `POST` a JSON body with a zone's new TOML text, or one pool's new definition, and
//! optionally `geoip`.

use std::path::PathBuf;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State as AxumState};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::zones::{authorize, read_zone};
use super::{Api, ApiError};
use crate::config::TokenScope;
use crate::store::edit;
use crate::zone::spec::PoolSpec;

/// What to try.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The zone changed.
    zone: Option<String>,
    /// The zone's whole new TOML document…
    toml: Option<String>,
    /// …or one pool's name and new definition.
    pool: Option<String>,
    spec: Option<PoolSpec>,
    /// Another GeoIP database: a path on the server (needs a write token).
    geoip: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoOnly {
    geoip: Option<PathBuf>,
}

/// `GET /simulate?geoip=PATH`.
pub async fn get(
    AxumState(api): AxumState<Api>,
    headers: HeaderMap,
    query: Result<Query<GeoOnly>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let change = Change {
        geoip: q.geoip,
        ..Change::default()
    };
    simulate(api, &headers, change).await
}

/// `POST /simulate`.
pub async fn post(
    AxumState(api): AxumState<Api>,
    headers: HeaderMap,
    change: Result<Json<Change>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(change) = change.map_err(ApiError::rejected)?;
    simulate(api, &headers, change).await
}

async fn simulate(api: Api, headers: &HeaderMap, change: Change) -> Result<Json<Value>, ApiError> {
    // Opening a file of the server's takes as much trust as a change.
    let scope = match change.geoip {
        Some(_) => TokenScope::Write,
        None => TokenScope::Read,
    };
    api.tokens.check(headers, scope, None)?;
    let zone = match (&change.zone, change.toml, change.pool, change.spec) {
        (None, None, None, None) => None,
        (Some(zone), Some(text), None, None) => {
            let origin = authorize(&api, zone, headers, TokenScope::Read)?;
            Some((origin, text))
        }
        (Some(zone), None, Some(pool), Some(spec)) => {
            let origin = authorize(&api, zone, headers, TokenScope::Read)?;
            let mut doc = edit::parse(&read_zone(&api, &origin)?.text)?;
            edit::set_pool(&mut doc, &origin, &pool, &spec)?;
            Some((origin, doc.to_string()))
        }
        _ => {
            return Err(ApiError::bad_request(
                "give zone with toml, or zone with pool and spec (and/or geoip)",
            ));
        }
    };
    let control = api.control.clone();
    let report = tokio::task::spawn_blocking(move || {
        let zone = zone.as_ref().map(|(origin, text)| (origin, text.as_str()));
        let after = control
            .preview(zone, change.geoip.as_deref())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok::<_, ApiError>(crate::simulate::simulate(&control.snapshot(), &after))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    serde_json::to_value(report)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}
