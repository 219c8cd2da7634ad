//! Endpoint registration with heartbeats (see `control::registrations`):
//! `PUT /zones/{zone}/pools/{pool}/registrations/{address}` with a `ttl` registers the
//! endpoint, and the same request renews it; `DELETE` removes it; `GET
//! /zones/{zone}/registrations` lists them with the time each has left.

use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::zones::authorize;
use super::{Api, ApiError};
use crate::config::TokenScope;
use crate::control::Registering;
use crate::health::spec::Millis;
use crate::zone::spec::Registered;

/// Shortest and longest TTL a registration may ask for.
const TTL: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(86_400);

/// A registration or renewal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The endpoint leaves the answers this long after its last renewal.
    ttl: Millis,
    #[serde(default = "one")]
    weight: u32,
    /// Geo pools: the datacenter it serves from.
    datacenter: Option<String>,
}

fn one() -> u32 {
    1
}

fn address_of(text: &str) -> Result<IpAddr, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid("address", format!("{text} is not an IP address")))
}

/// `PUT /zones/{zone}/pools/{pool}/registrations/{address}`.
pub async fn put(
    AxumState(api): AxumState<Api>,
    Path((zone, pool, address)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Json<Registration>, JsonRejection>,
) -> Result<Response, ApiError> {
    let address = address_of(&address)?;
    let Json(r) = body.map_err(ApiError::rejected)?;
    let ttl = r.ttl.duration();
    if !TTL.contains(&ttl) {
        return Err(ApiError::invalid("ttl", "must be between 1s and 1 day"));
    }
    if !(1..=crate::policy::MAX_WEIGHT).contains(&r.weight) {
        let max = crate::policy::MAX_WEIGHT;
        return Err(ApiError::invalid(
            "weight",
            format!("must be between 1 and {max}"),
        ));
    }
    let origin = authorize(&api, &zone, &headers, TokenScope::Write)?;
    // The zone must be served (a lookup, not a read: heartbeats come a thousand a second).
    if api.control.snapshot().zones.get(&origin).is_none() {
        return Err(ApiError::not_found(format!("zone {origin} not found")));
    }
    let endpoint = Registered {
        pool: pool.clone(),
        datacenter: r.datacenter,
        address,
        weight: r.weight,
    };
    // A heartbeat renewing its registration is appended here and awaited without a thread.
    if let Some(renewed) = api.control.try_renew(&origin, &endpoint, ttl) {
        if let Err(error) = api.control.store().wait(renewed?).await {
            let control = api.control.clone();
            let _ = tokio::task::spawn_blocking(move || control.after_failed_sync()).await;
            return Err(crate::control::UpdateError::Io(error).into());
        }
        let body = json!({ "pool": pool, "address": address, "ttl_ms": ttl.as_millis() as u64 });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let control = api.control.clone();
    let done = tokio::task::spawn_blocking(move || control.register(&origin, endpoint, ttl))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let status = match done {
        Registering::Added => StatusCode::CREATED,
        Registering::Renewed => StatusCode::OK,
    };
    let body = json!({ "pool": pool, "address": address, "ttl_ms": ttl.as_millis() as u64 });
    Ok((status, Json(body)).into_response())
}

/// `DELETE /zones/{zone}/pools/{pool}/registrations/{address}`.
pub async fn delete(
    AxumState(api): AxumState<Api>,
    Path((zone, pool, address)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let address = address_of(&address)?;
    let origin = authorize(&api, &zone, &headers, TokenScope::Write)?;
    let control = api.control.clone();
    let p = pool.clone();
    let removed = tokio::task::spawn_blocking(move || control.unregister(&origin, &p, address))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    match removed {
        true => {
            Ok(Json(json!({ "pool": pool, "address": address, "deleted": true })).into_response())
        }
        false => Err(ApiError::not_found(format!(
            "no registration of {address} in pool {pool}"
        ))),
    }
}

/// `GET /zones/{zone}/registrations`.
pub async fn list(
    AxumState(api): AxumState<Api>,
    Path(zone): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let origin = authorize(&api, &zone, &headers, TokenScope::Read)?;
    let now = crate::control::unix_ms();
    let zone = origin.to_lowercase().to_ascii();
    let all: Vec<_> = api
        .control
        .registrations()
        .into_iter()
        .filter(|r| r.zone == zone)
        .map(|r| {
            json!({
                "pool": r.endpoint.pool,
                "address": r.endpoint.address,
                "weight": r.endpoint.weight,
                "datacenter": r.endpoint.datacenter,
                "ttl_ms": r.ttl_ms,
                "expires_in_ms": r.expires_ms().saturating_sub(now),
            })
        })
        .collect();
    Ok(Json(json!({ "registrations": all })).into_response())
}
